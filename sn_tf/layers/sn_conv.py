"""``SNConv2D``: a Keras ``Conv2D`` layer with spectral normalisation."""

from typing import Any, Dict

import tensorflow as tf

from sn_tf.layers.spectral_base import SpectralMixin

NORMS = ("operator", "reshape")


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class SNConv2D(SpectralMixin, tf.keras.layers.Conv2D):
  """Conv2D layer whose kernel is divided by a spectral norm (docs/layers.md).

  Two norms of the kernel ``W: [kh, kw, cin, cout]``:

  * ``norm="operator"`` (default, the reference code's choice): the exact
    operator norm of the convolution ``x -> conv(x, W)`` as a linear map on
    inputs of the layer's spatial size, with its strides, padding and
    dilation. Power iteration runs on ``u: [1, oh, ow, cout]`` and
    ``v: [1, h, w, cin]`` (channels-first shapes under ``channels_first``),
    applying the conv and its transpose (the gradient of the conv w.r.t. its
    input). The spatial input size must be static and is fixed at build time.
  * ``norm="reshape"`` (Miyato et al., 2018): the norm of the kernel reshaped to
    a ``[kh*kw*cin, cout]`` matrix, with ``u: [cout]`` and ``v: [kh*kw*cin]``.
    An estimate of the operator norm, not a bound in general.

  ``input_scale`` multiplies the layer's input before the convolution, done
  as a multiple of the (normalised) kernel: ``conv(s x, W_hat) =
  conv(x, s W_hat)``, a few thousand multiplies instead of one per input
  value (the Atari nets' 1/255 on a ``[B, 84, 84, 4]`` batch). The norm is
  still that of ``W``.

  Everything else is as in :class:`sn_tf.layers.SNDense`; ``grad_through_sigma``
  defaults to False here (the reference code treats sigma as a constant for
  convs). ``groups`` must be 1.
  """

  def __init__(self, filters, kernel_size, *, power_iterations: int = 1,
               lipschitz_k: float = 1.0, leave_smaller: bool = False,
               active: bool = True, grad_through_sigma: bool = False,
               norm: str = "operator", input_scale: float = 1.0, **kwargs):
    if norm not in NORMS:
      raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
    if (isinstance(input_scale, bool) or not isinstance(input_scale, (int, float))
        or not input_scale > 0 or input_scale == float("inf")):
      raise ValueError(f"input_scale must be a finite number > 0, got {input_scale!r}.")
    self.input_scale = float(input_scale)
    super().__init__(filters, kernel_size, **kwargs)
    if self.groups != 1:
      raise ValueError(f"groups must be 1 for SNConv2D, got {self.groups!r}.")
    self._init_spectral(power_iterations, lipschitz_k, leave_smaller, active,
                        grad_through_sigma)
    self.norm = norm

  def build(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    super().build(input_shape)
    if self.norm == "reshape":
      fan_in = self.kernel.shape[:-1].num_elements()
      self._build_spectral(u_shape=(self.filters,), v_shape=(fan_in,))
      return
    spatial = (input_shape[2:4] if self.data_format == "channels_first"
               else input_shape[1:3])
    if not spatial.is_fully_defined():
      raise ValueError(
          'norm="operator" needs a static spatial input size to define the '
          f"convolution operator; got input shape {input_shape}. Give the "
          'input a fixed height and width or use norm="reshape".')
    v_shape = [1] + input_shape[1:].as_list()
    u_shape = [1] + self.compute_output_shape(input_shape)[1:].as_list()
    self._build_spectral(u_shape=tuple(u_shape), v_shape=tuple(v_shape))
    # Calls on another spatial size would need another operator: refuse them
    # with Keras' own input-spec error.
    self.input_spec = tf.keras.layers.InputSpec(
        shape=[None] + input_shape[1:].as_list())

  @property
  def _v_batch_axis(self) -> bool:
    return self.norm == "operator"

  def _forward(self, kernel, v):
    if self.norm == "reshape":
      return tf.linalg.matvec(tf.reshape(kernel, (-1, self.filters)), v,
                              transpose_a=True)
    return self.convolution_op(v, kernel)

  def _transpose(self, kernel, u):
    if self.norm == "reshape":
      return tf.linalg.matvec(tf.reshape(kernel, (-1, self.filters)), u)
    # A^T u: the transposed convolution (the gradient of <u, A x> w.r.t. x).
    # A dilated kernel is first written out with zeros between its taps,
    # because CPU kernels of the transposed conv do not support dilation.
    dh, dw = self.dilation_rate
    if dh > 1 or dw > 1:
      kh, kw, cin, cout = kernel.shape
      spread = tf.reshape(kernel, (kh, 1, kw, 1, cin, cout))
      spread = tf.pad(spread, [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1],
                               [0, 0], [0, 0]])
      kernel = tf.reshape(spread, (kh * dh, kw * dw, cin, cout))[
          :(kh - 1) * dh + 1, :(kw - 1) * dw + 1]
    return tf.nn.conv2d_transpose(
        u, kernel, output_shape=self.v.shape, strides=self.strides,
        padding=self.padding.upper(), data_format=self._tf_data_format)

  def call(self, inputs, training=None):
    if inputs.dtype.base_dtype != self._compute_dtype_object.base_dtype:
      inputs = tf.cast(inputs, dtype=self._compute_dtype_object)
    input_shape = inputs.shape
    linear = self.convolution_op
    if self.input_scale != 1.0:
      linear = lambda x, kernel: self.convolution_op(x, kernel * self.input_scale)
    outputs = self._apply_normalized(inputs, linear, training)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias,
                               data_format=self._tf_data_format)
    if not tf.executing_eagerly() and input_shape.rank:
      outputs.set_shape(self.compute_output_shape(input_shape))
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config.update(self._spectral_config())
    config["norm"] = self.norm
    config["input_scale"] = self.input_scale
    return config
