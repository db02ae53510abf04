"""Q-networks with spectrally normalised layers, the paper's architectures and
the layer-selection grammar."""

from sn_tf.networks.architectures import (ATARI_NETWORKS, DEPTH3_MODELS,
                                          NATURE_CONVS, PAPER_MINATAR_MODELS,
                                          SIZE_STUDY_MODELS, MinAtarModel,
                                          atari_network, minatar_network,
                                          network_layer_count,
                                          parse_minatar_model)
from sn_tf.networks.c51_network import SNCategoricalQNetwork
from sn_tf.networks.layer_selection import LayerSelection, parse_layer_selection
from sn_tf.networks.q_network import SNQNetwork

__all__ = ["ATARI_NETWORKS", "DEPTH3_MODELS", "NATURE_CONVS",
           "PAPER_MINATAR_MODELS", "SIZE_STUDY_MODELS", "LayerSelection",
           "MinAtarModel", "SNCategoricalQNetwork", "SNQNetwork",
           "atari_network", "minatar_network", "network_layer_count",
           "parse_layer_selection", "parse_minatar_model"]
