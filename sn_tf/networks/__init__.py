"""C51 networks with spectrally normalised layers and the selection grammar."""

from sn_tf.networks.c51_network import (NATURE_CONVS, SNCategoricalQNetwork,
                                        atari_network, minatar_network)
from sn_tf.networks.layer_selection import LayerSelection, parse_layer_selection

__all__ = ["NATURE_CONVS", "LayerSelection", "SNCategoricalQNetwork",
           "atari_network", "minatar_network", "parse_layer_selection"]
