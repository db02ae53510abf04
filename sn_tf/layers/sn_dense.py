"""``SNDense``: a Keras ``Dense`` layer with spectral normalisation."""

from typing import Any, Dict

import tensorflow as tf

from sn_tf.layers.spectral_base import SpectralMixin


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class SNDense(SpectralMixin, tf.keras.layers.Dense):
  """Dense layer whose kernel is divided by its spectral norm (docs/layers.md).

  ``y = x @ (W / d) + b`` with ``d = sigma / K`` or, with ``leave_smaller``,
  ``d = max(sigma / K, 1)``; ``sigma ~ ||W||_2`` by power iteration.

  Shapes: inputs ``[..., in]``, kernel ``W: [in, units]``, outputs
  ``[..., units]``. State (non-trainable): ``u: [units]`` (output space),
  ``v: [in]`` (input space), ``sigma: []`` (latest training-time estimate of
  ``||W||_2``, before division by K). At build time u, v and sigma are warmed
  up by ``WARMUP_ITERATIONS`` power-iteration steps on the initial kernel, so
  inference before any training call already divides by a good estimate.

  Args:
    units: as ``tf.keras.layers.Dense``; every other ``Dense`` argument works.
    power_iterations: power-iteration steps per training call (>= 1).
    lipschitz_k: the target Lipschitz constant K (> 0).
    leave_smaller: only shrink the kernel when ``sigma > K``.
    active: False = track-only: iterate and record ``sigma``, apply raw ``W``.
    grad_through_sigma: differentiate through ``sigma(W)`` with u, v fixed
      (True, as PyTorch's ``spectral_norm``) or treat it as a constant.

  ``call(inputs, training)``: the vectors advance and ``sigma`` is written only
  when ``training`` is True; otherwise stored u, v are used and nothing changes.
  """

  def __init__(self, units, *, power_iterations: int = 1,
               lipschitz_k: float = 1.0, leave_smaller: bool = False,
               active: bool = True, grad_through_sigma: bool = True, **kwargs):
    super().__init__(units, **kwargs)
    self._init_spectral(power_iterations, lipschitz_k, leave_smaller, active,
                        grad_through_sigma)

  _divide_output = True
  # ``A v`` is this layer's own matmul with ``v`` as one more input row
  # (``v^T W``), so one op can compute both (``_apply_joint``).
  _v_is_input_row = True

  def _joint_applies(self, inputs: tf.Tensor, training) -> bool:
    """Whether ``_apply_joint`` computes this call: the layer on a
    ``[B, in]`` batch in its variables' dtype, with a Python-bool (or None)
    ``training``, whose output is divided by sigma. A track-only layer keeps
    the plain layer's matmul, so its output stays bitwise that of the plain
    layer."""
    return (self._v_is_input_row
            and self.active
            and (training is None or isinstance(training, bool))
            and inputs.shape.rank == 2
            and inputs.dtype == self.u.dtype)

  def _apply_joint(self, inputs: tf.Tensor, linear, kernel,
                   training: bool) -> tf.Tensor:
    """``linear(inputs, kernel) / d`` with ``A v`` from the same op.

    ``v`` goes in as one more row of the batch: ``[inputs; v^T] W`` gives
    the outputs ``[B, out]`` and ``(A v)^T`` in one pass over the kernel,
    where a separate ``A v`` reads the kernel once more; its gradient, too,
    is one matmul instead of a matmul, an outer product and their sum. The
    values are those of the separate ops up to float rounding. Active
    layers only (``_joint_applies``), so there is always a divisor.
    """
    if training:
      v = self._next_v(tf.stop_gradient(kernel), self.power_iterations)
    else:
      v = tf.stop_gradient(tf.convert_to_tensor(self.v))
    joint = linear(tf.concat([inputs, v[None]], axis=0), kernel)
    outputs, a_v = joint[:-1], joint[-1]
    if not self.grad_through_sigma:
      a_v = tf.stop_gradient(a_v)
    if training:
      sigma = self._record(v, a_v)
    else:
      sigma = tf.reduce_sum(tf.stop_gradient(tf.convert_to_tensor(self.u)) * a_v)
    return outputs / self._divisor_of(sigma)

  def build(self, input_shape):
    super().build(input_shape)
    fan_in, units = self.kernel.shape
    self._build_spectral(u_shape=(units,), v_shape=(fan_in,))

  # A = W^T as a map from R^in to R^units.
  def _forward(self, kernel, v):
    return tf.linalg.matvec(kernel, v, transpose_a=True)

  def _transpose(self, kernel, u):
    return tf.linalg.matvec(kernel, u)

  def _matmul(self, inputs, kernel):
    rank = inputs.shape.rank
    if rank == 2 or rank is None:
      return tf.matmul(inputs, kernel)
    outputs = tf.tensordot(inputs, kernel, [[rank - 1], [0]])
    if not tf.executing_eagerly():
      outputs.set_shape(inputs.shape[:-1].concatenate([self.units]))
    return outputs

  def call(self, inputs, training=None):
    if isinstance(inputs, (tf.SparseTensor, tf.RaggedTensor)):
      raise ValueError("SNDense supports dense tensor inputs only, got "
                       f"{type(inputs).__name__}.")
    if inputs.dtype.base_dtype != self._compute_dtype_object.base_dtype:
      inputs = tf.cast(inputs, dtype=self._compute_dtype_object)
    outputs = self._apply_normalized(inputs, self._matmul, training)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(self._spectral_config())
    return config
