"""rho of the spectral schedulers (docs/schedulers.md), computed in one place.

``rho = prod_{i in S} rho_i`` with ``rho_i = sigma_i / K`` (or
``max(sigma_i / K, 1)`` with ``leave_smaller``), where ``sigma_i`` is the
power-iteration estimate of layer i's spectral norm. The layers run in
track-only mode on an unnormalised network, so their power iteration advances
once per training forward pass (once per train step) and rho follows. No
gradient flows through rho.
"""

from typing import Callable, List, Sequence, Tuple

import tensorflow as tf

SCHEDULERS = ("none", "divout", "divgrad", "muleps")


class SpectralRho:
  """Zero-argument callable returning rho as a scalar float32 tensor.

  Args:
    layers: the SN layers of S (``SNDense``/``SNConv2D``), usually track-only.
    lipschitz_k: K.
    leave_smaller: use ``max(sigma_i / K, 1)``.
  """

  def __init__(self, layers: Sequence[tf.keras.layers.Layer],
               lipschitz_k: float = 1.0, leave_smaller: bool = False):
    if not layers:
      raise ValueError("SpectralRho needs at least one layer.")
    self.layers = list(layers)
    self.lipschitz_k = float(lipschitz_k)
    self.leave_smaller = leave_smaller

  def factor(self, layer) -> tf.Tensor:
    """rho_i of one layer, from its stored power-iteration vectors."""
    rho = layer.spectral_norm_estimate() / self.lipschitz_k
    if self.leave_smaller:
      rho = tf.maximum(rho, 1.0)
    return tf.cast(rho, tf.float32)

  def __call__(self) -> tf.Tensor:
    rho = tf.constant(1.0)
    for layer in self.layers:
      rho = rho * self.factor(layer)
    return tf.stop_gradient(rho)

  def per_layer(self) -> List[Tuple[tf.Variable, Callable[[], tf.Tensor]]]:
    """``[(kernel, rho_i source)]`` for DivGrad's ``scope="per_layer"``."""
    return [(layer.kernel, (lambda layer=layer: self.factor(layer)))
            for layer in self.layers]
