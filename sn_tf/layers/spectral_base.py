"""Shared machinery of the spectrally normalised layers (docs/layers.md#definition).

A linear map ``A`` (a dense kernel, or a convolution seen as a matrix acting on
flattened inputs) is normalised as

    A_hat = A / d,   d = sigma / K            (plain SN)
                     d = max(sigma / K, 1)    (``leave_smaller``)

where ``sigma`` approximates ``||A||_2`` by power iteration (Miyato et al.,
2018) with persistent vectors ``u`` (output space) and ``v`` (input space):

    v <- normalize(A^T u);   u <- normalize(A v);   sigma = u^T A v.

``u`` and ``v`` are non-trainable state; no gradient ever flows through their
update. Whether a gradient flows through ``sigma`` (as a function of ``A`` with
``u``, ``v`` held fixed) is the ``grad_through_sigma`` option.

Subclasses describe ``A`` through two functions of the layer's kernel:
``_forward(kernel, v)`` computes ``A v`` and ``_transpose(kernel, u)`` computes
``A^T u``, with ``u``/``v`` in the shapes ``_u_shape``/``_v_shape``.
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

EPS = 1e-12
# ``exact_spectral_norm`` refuses operators with more entries than this
# (2**26 float64 entries are 512 MB).
MAX_EXACT_ENTRIES = 2**26
# Power-iteration steps run once when a layer is built, so that a layer used
# for inference before any training call (e.g. a target network) already
# divides by a good estimate of ||W||_2 instead of u^T W v of random vectors.
WARMUP_ITERATIONS = 30


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class UnitNormal(tf.keras.initializers.Initializer):
  """Random normal tensor scaled to unit Euclidean norm (over all entries).

  The initial power-iteration vectors (docs/layers.md#definition). Honours the
  global TF seed (``tf.keras.utils.set_random_seed``) when ``seed`` is None.
  """

  def __init__(self, seed: Optional[int] = None):
    self.seed = seed

  def __call__(self, shape, dtype=None, **kwargs):
    dtype = tf.as_dtype(dtype or tf.keras.backend.floatx())
    if self.seed is None:
      x = tf.random.normal(shape, dtype=dtype)
    else:
      x = tf.random.stateless_normal(shape, seed=[self.seed, 0], dtype=dtype)
    return x / tf.maximum(tf.norm(x), EPS)

  def get_config(self):
    return {"seed": self.seed}


def norm_ratio(sigma, lipschitz_k: float, leave_smaller: bool):
  """``sigma / K``, or ``max(sigma / K, 1)`` with ``leave_smaller``: what an
  SN layer divides by (docs/layers.md#definition) and a scheduler's rho_i
  (docs/schedulers.md)."""
  ratio = sigma / lipschitz_k
  if leave_smaller:
    ratio = tf.maximum(ratio, 1.0)
  return ratio


def _normalize(x: tf.Tensor) -> tf.Tensor:
  return x / tf.maximum(tf.norm(x), EPS)


class SpectralMixin:
  """Options, state and the normalisation step shared by SN layers.

  Not a layer on its own: mixed into a Keras layer that owns ``self.kernel``.
  """

  def _init_spectral(self, power_iterations: int, lipschitz_k: float,
                     leave_smaller: bool, active: bool,
                     grad_through_sigma: bool) -> None:
    if (isinstance(power_iterations, bool)
        or not isinstance(power_iterations, int) or power_iterations < 1):
      raise ValueError(
          f"power_iterations must be an integer >= 1, got {power_iterations!r}.")
    try:
      k = float(lipschitz_k)
    except (TypeError, ValueError):
      raise ValueError(
          f"lipschitz_k must be a number > 0, got {lipschitz_k!r}.") from None
    if not k > 0 or k == float("inf"):
      raise ValueError(f"lipschitz_k must be a finite number > 0, got {lipschitz_k!r}.")
    for name, value in (("leave_smaller", leave_smaller), ("active", active),
                        ("grad_through_sigma", grad_through_sigma)):
      if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    self.power_iterations = power_iterations
    self.lipschitz_k = k
    self.leave_smaller = leave_smaller
    self.active = active
    self.grad_through_sigma = grad_through_sigma
    # A track-only layer whose sigma only the logs read need not iterate in
    # every training call: its owner sets this False and calls
    # ``advance_power_iteration`` when it reads sigma.
    self.iterate_in_call = True

  def _spectral_config(self) -> Dict[str, Any]:
    return {
        "power_iterations": self.power_iterations,
        "lipschitz_k": self.lipschitz_k,
        "leave_smaller": self.leave_smaller,
        "active": self.active,
        "grad_through_sigma": self.grad_through_sigma,
    }

  # -- state ---------------------------------------------------------------

  def _build_spectral(self, u_shape: Tuple[int, ...],
                      v_shape: Tuple[int, ...]) -> None:
    """Creates ``u``, ``v`` and ``sigma`` as non-trainable variables."""
    state = dict(
        trainable=False,
        dtype=self.dtype,  # the variable dtype (float32 under mixed precision)
        synchronization=tf.VariableSynchronization.ON_WRITE,
        # Every replica computes the same update from the same kernel.
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
    )
    self.u = self.add_weight(name="u", shape=u_shape,
                             initializer=UnitNormal(), **state)
    self.v = self.add_weight(name="v", shape=v_shape,
                             initializer=UnitNormal(), **state)
    self.sigma = self.add_weight(name="sigma", shape=(),
                                 initializer="zeros", **state)
    # Warm up u, v (and sigma) from the initial kernel, eagerly even when the
    # layer is first built inside a tf.function.
    with tf.init_scope():
      w = tf.cast(self.kernel, self.u.dtype)
      u, v = tf.convert_to_tensor(self.u), tf.convert_to_tensor(self.v)
      for _ in range(WARMUP_ITERATIONS):
        v = _normalize(self._transpose(w, u))
        u = _normalize(self._forward(w, v))
      self.u.assign(u)
      self.v.assign(v)
      self.sigma.assign(tf.reduce_sum(u * self._forward(w, v)))

  # -- the linear map, provided by subclasses --------------------------------

  def _forward(self, kernel: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    raise NotImplementedError

  def _transpose(self, kernel: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    raise NotImplementedError

  # -- normalisation ---------------------------------------------------------

  def _iterate(self, kernel: tf.Tensor, iterations: int,
               differentiable: bool) -> tf.Tensor:
    """``iterations`` power-iteration steps on ``kernel`` from the stored u,
    v; writes u, v and sigma; returns ``sigma = u^T A v``.

    The last step's ``A v`` is both the new u (normalised, without gradient)
    and, dotted with u, sigma: one application of ``A`` fewer than
    recomputing ``A v`` for sigma, with the same values. With
    ``differentiable`` sigma keeps its gradient with respect to the kernel
    (u and v held fixed); u and v never carry one.
    """
    w = tf.stop_gradient(kernel)
    v = self._next_v(w, iterations)
    return self._record(v, self._forward(kernel if differentiable else w, v))

  def _next_v(self, w: tf.Tensor, iterations: int) -> tf.Tensor:
    """The new ``v`` of ``iterations`` power-iteration steps on ``w`` from
    the stored u, v: every step but the last whole, then the last step's
    ``v <- normalize(A^T u)``. The caller applies ``A`` to it once more."""
    if iterations < 1:
      raise ValueError(f"iterations must be >= 1, got {iterations!r}.")
    # The stored vectors enter only as constants: no gradient reaches u or v
    # (a tape watching them included) through the new vectors or sigma.
    u = tf.stop_gradient(tf.convert_to_tensor(self.u))
    v = tf.stop_gradient(tf.convert_to_tensor(self.v))
    for _ in range(iterations - 1):
      v = _normalize(self._transpose(w, u))
      u = _normalize(self._forward(w, v))
    return _normalize(self._transpose(w, u))

  def _record(self, v: tf.Tensor, a_v: tf.Tensor) -> tf.Tensor:
    """Ends a power-iteration step from the new ``v`` and its ``A v``:
    ``u <- normalize(A v)``, ``sigma = u^T A v``; writes u, v and sigma and
    returns sigma (with whatever gradient ``a_v`` carries)."""
    u = _normalize(tf.stop_gradient(a_v))
    sigma = tf.reduce_sum(u * a_v)
    self.u.assign(u)
    self.v.assign(v)
    self.sigma.assign(tf.stop_gradient(sigma))
    return sigma

  def _sigma(self, kernel: tf.Tensor, u: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    """sigma = u^T A v, differentiable w.r.t. the kernel only."""
    if not self.grad_through_sigma:
      kernel = tf.stop_gradient(kernel)
    return tf.reduce_sum(tf.stop_gradient(u) * self._forward(kernel, tf.stop_gradient(v)))

  def spectral_norm_estimate(self) -> tf.Tensor:
    """``u^T A v`` from the stored vectors, without gradient or state change.

    After a training call this is the sigma that call used; before any
    training call it is the estimate of the initial random vectors.
    """
    return tf.stop_gradient(self._sigma(tf.cast(self.kernel, self.u.dtype),
                                        tf.convert_to_tensor(self.u),
                                        tf.convert_to_tensor(self.v)))

  def next_spectral_norm_estimate(self) -> tf.Tensor:
    """The sigma the next training call would divide by: ``power_iterations``
    steps on the current kernel from the stored u, v. Writes nothing (no
    gradient, no state change)."""
    w = tf.stop_gradient(tf.cast(self.kernel, self.u.dtype))
    a_v = self._forward(w, self._next_v(w, self.power_iterations))
    return tf.reduce_sum(_normalize(a_v) * a_v)

  # Whether ``v`` has a leading batch axis of 1 (a conv operator's input).
  _v_batch_axis = False

  def exact_spectral_norm(self, max_entries: int = MAX_EXACT_ENTRIES) -> float:
    """``||A||_2`` of the current kernel in float64, by SVD of ``A`` written
    out as a matrix (``A`` applied to every basis vector of its input space):
    the exact value the power-iteration estimate approaches.

    Raises:
      ValueError: if ``A`` has more than ``max_entries`` entries.
    """
    n_in = self.v.shape.num_elements()
    n_out = self.u.shape.num_elements()
    if n_in * n_out > max_entries:
      raise ValueError(
          f"layer {self.name!r}: its operator is {n_out} x {n_in} "
          f"({n_in * n_out} entries), more than max_entries={max_entries}; "
          "too large to write out for an exact SVD.")
    shape = (n_in,) + (tuple(self.v.shape)[1:] if self._v_batch_axis
                       else tuple(self.v.shape))
    basis = tf.reshape(tf.eye(n_in, dtype=tf.float64), shape)
    columns = self._forward(tf.cast(self.kernel, tf.float64), basis)
    matrix = tf.reshape(columns, (n_in, n_out)).numpy()
    return float(np.linalg.svd(matrix, compute_uv=False)[0])

  def advance_power_iteration(self, iterations: int) -> tf.Tensor:
    """``iterations`` power-iteration steps on the current kernel from the
    stored u, v; records and returns the new sigma (no gradient). For a
    track-only layer with ``iterate_in_call`` False, whose owner advances it
    only when its sigma is read."""
    return tf.stop_gradient(self._iterate(
        tf.cast(self.kernel, self.u.dtype), iterations, differentiable=False))

  def _divisor(self, training) -> Optional[tf.Tensor]:
    """The normaliser ``d`` (docs/layers.md#definition), or None in track-only mode.

    ``d = sigma / K`` (or ``max(sigma / K, 1)`` with ``leave_smaller``), with
    ``sigma = u^T A v``. With ``training`` True the stored vectors first advance
    by power iteration and ``self.sigma`` records the new estimate; otherwise
    the stored u, v are used unchanged and no variable is written. A
    track-only layer with ``iterate_in_call`` False does nothing.
    """
    if not self.active and not self.iterate_in_call:
      return None
    w = tf.cast(self.kernel, self.u.dtype)  # iterate in the variable dtype

    def train_branch():
      return self._iterate(w, self.power_iterations, self.grad_through_sigma)

    def infer_branch():
      return self._sigma(w, tf.convert_to_tensor(self.u),
                         tf.convert_to_tensor(self.v))

    if training is None or isinstance(training, bool):
      sigma = train_branch() if training else infer_branch()
    else:
      sigma = tf.cond(tf.cast(training, tf.bool), train_branch, infer_branch)

    return self._divisor_of(sigma)

  def _divisor_of(self, sigma: tf.Tensor) -> Optional[tf.Tensor]:
    """``d`` from ``sigma`` (None for a track-only layer)."""
    if not self.active:
      return None
    return tf.maximum(norm_ratio(sigma, self.lipschitz_k, self.leave_smaller), EPS)

  # Whether to divide the op's output (True) or the kernel (False) by d.
  _divide_output = False

  def _apply_normalized(self, inputs: tf.Tensor, linear, training) -> tf.Tensor:
    """``linear(inputs, kernel / d)``: the layer's op with the SN kernel.

    ``linear(x, W)`` is linear in ``W``, so this equals
    ``linear(inputs, kernel) / d``. Dense layers divide the output (``[B, out]``
    costs far less than a ``[in, out]`` kernel at small batch, e.g. acting with
    B = 1); conv layers divide the kernel (far smaller than their output). The
    choice is fixed per layer class, never by the batch size, so a traced
    graph and an eager call round identically. Dense layers on a ``[B, in]``
    batch compute ``A v`` in the same matmul (``SNDense._apply_joint``).
    """
    kernel = self.kernel
    if self._joint_applies(inputs, training):
      return self._apply_joint(inputs, linear, kernel, bool(training))
    divisor = self._divisor(training)
    if divisor is None:
      return linear(inputs, kernel)
    divisor = tf.cast(divisor, kernel.dtype)
    if self._divide_output:
      return linear(inputs, kernel) / divisor
    return linear(inputs, kernel / divisor)

  def _joint_applies(self, inputs: tf.Tensor, training) -> bool:
    """Whether the layer computes ``A v`` in the same op as its outputs
    (``SNDense``'s joint pass); not for this layer class."""
    del inputs, training
    return False
