"""Spectrally normalised Keras layers (docs/layers.md)."""

from sn_tf.layers.sn_conv import SNConv2D
from sn_tf.layers.sn_dense import SNDense
from sn_tf.layers.spectral_base import UnitNormal

__all__ = ["SNConv2D", "SNDense", "UnitNormal"]
