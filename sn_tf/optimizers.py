"""Optimisers of the spectral schedulers (docs/schedulers.md), on Keras 2 (tf-keras).

With rho = prod_{i in S} sigma_i / K tracked on an unnormalised network:

* DivGrad: every gradient is multiplied by rho^-1 before the update
  (``scope="global"``), or each tracked layer's kernel gradient by its own
  rho_i^-1 (``scope="per_layer"``, as the reference code does).
* MulEps (Adam only): plain gradients, Adam's epsilon multiplied by rho.
  Since (g/rho) / (sqrt(v/rho^2) + eps) = g / (sqrt(v) + rho*eps), DivGrad-Adam
  and MulEps-Adam agree step for step when rho is constant.
* DivLR (Adam only): each tracked layer's variables step with learning rate
  lr / rho_i.

``rho`` is read at every step from a ``tf.Variable``, a float, or a
zero-argument callable returning a scalar tensor (e.g.
``sn_tf.schedulers.SpectralRho``); it never receives a gradient.

Adam's epsilon placement (docs/schedulers.md#adam-epsilon-placement) is an
option of the Adam classes:
``"keras"`` (TF/Keras: ``lr_t * m / (sqrt(v) + eps)`` with the bias corrections
folded into ``lr_t``) or ``"reference"`` (PyTorch, the reference code:
``lr * m_hat / (sqrt(v_hat) + eps)``). RMSprop's is an option of
``ReferenceRMSprop``: ``g / sqrt(v + eps)`` (Keras) or ``g / (sqrt(v) + eps)``
(PyTorch).
"""

import inspect
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import tensorflow as tf

from sn_tf.checks import one_of

RhoSource = Union[tf.Variable, float, Callable[[], tf.Tensor]]
OPTIMIZERS = ("adam", "rmsprop", "sgd")
EPSILON_PLACEMENTS = ("keras", "reference")
SCOPES = ("global", "per_layer")


def _check_rho(rho, name="rho"):
  if rho is None or isinstance(rho, (tf.Variable, float, int)) or callable(rho):
    if isinstance(rho, bool):
      raise ValueError(f"{name} must be a tf.Variable, a number or a callable, got {rho!r}.")
    if isinstance(rho, (float, int)) and not rho > 0:
      raise ValueError(f"{name} must be > 0, got {rho!r}.")
    return rho
  raise ValueError(f"{name} must be a tf.Variable, a number or a zero-argument "
                   f"callable returning a scalar tensor, got {rho!r}.")


def read_rho(rho: RhoSource, dtype=tf.float32) -> tf.Tensor:
  """The current value of a rho source, as a scalar tensor with no gradient."""
  if rho is None:
    raise ValueError("rho is not set: pass rho= to the optimiser (a tf.Variable, "
                     "a number or a callable) before applying gradients.")
  value = rho() if callable(rho) and not isinstance(rho, tf.Variable) else rho
  return tf.stop_gradient(tf.cast(value, dtype))


class _StepScalars:
  """Holds one apply_gradients call's scalars (a plain object, so the
  optimiser's checkpoint does not track it)."""
  by_key = None


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class ReferenceAdam(tf.keras.optimizers.Adam):
  """Keras Adam with a choice of epsilon placement and an epsilon multiplier.

  Args:
    epsilon_placement: ``"keras"`` or ``"reference"`` (see module docstring).
    **kwargs: every ``tf.keras.optimizers.Adam`` argument.
  """

  def __init__(self, *args, epsilon_placement: str = "reference", **kwargs):
    if epsilon_placement not in EPSILON_PLACEMENTS:
      raise ValueError(f"epsilon_placement must be one of {EPSILON_PLACEMENTS}, "
                       f"got {epsilon_placement!r}.")
    kwargs.setdefault("name", type(self).__name__)
    super().__init__(*args, **kwargs)
    self.epsilon_placement = epsilon_placement
    self._step_scalars = _StepScalars()

  def _epsilon_multiplier(self, dtype) -> tf.Tensor:
    del dtype
    return 1.0

  def apply_gradients(self, grads_and_vars, *args, **kwargs):
    # The step's scalars (lr, beta powers, epsilon) are computed once per
    # device and dtype for all variables of this call, not once per variable.
    self._step_scalars.by_key = {}
    try:
      return super().apply_gradients(grads_and_vars, *args, **kwargs)
    finally:
      self._step_scalars.by_key = None

  def _scalars(self, variable) -> Tuple[tf.Tensor, ...]:
    """``(lr, beta_1_power, beta_2_power, beta_1, beta_2, epsilon)`` of this
    step in ``variable``'s dtype (the epsilon already placed)."""
    # With jit_compile (Keras' default on a GPU) each variable's update is its
    # own XLA function, which cannot share tensors; XLA fuses them anyway.
    cache = None if self.jit_compile else self._step_scalars.by_key
    key = (variable.device, variable.dtype)
    if cache is not None and key in cache:
      return cache[key]
    dtype = variable.dtype
    lr = tf.cast(self.learning_rate, dtype)
    step = tf.cast(self.iterations + 1, dtype)
    # convert_to_tensor keeps a float64 variable's betas in float64 (tf.cast
    # of a Python float goes through float32 first).
    beta_1 = tf.convert_to_tensor(self.beta_1, dtype)
    beta_2 = tf.convert_to_tensor(self.beta_2, dtype)
    beta_1_power = tf.pow(beta_1, step)
    beta_2_power = tf.pow(beta_2, step)
    eps = (tf.convert_to_tensor(self.epsilon, dtype)
           * tf.cast(self._epsilon_multiplier(dtype), dtype))
    if self.epsilon_placement == "reference":
      # lr m_hat / (sqrt(v_hat) + eps)
      #   = lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps sqrt(1 - b2^t)):
      # Keras' placement with a rescaled epsilon.
      eps = eps * tf.sqrt(1 - beta_2_power)
    scalars = (lr, beta_1_power, beta_2_power, beta_1, beta_2, eps)
    if cache is not None:
      cache[key] = scalars
    return scalars

  def update_step(self, gradient, variable):
    if isinstance(gradient, tf.IndexedSlices):
      gradient = tf.convert_to_tensor(gradient)
    lr, beta_1_power, beta_2_power, beta_1, beta_2, eps = self._scalars(variable)
    key = self._var_key(variable)
    m = self._momentums[self._index_dict[key]]
    v = self._velocities[self._index_dict[key]]
    if self.amsgrad:
      v_hat = self._velocity_hats[self._index_dict[key]]
      tf.raw_ops.ResourceApplyAdamWithAmsgrad(
          var=variable.handle, m=m.handle, v=v.handle, vhat=v_hat.handle,
          beta1_power=beta_1_power, beta2_power=beta_2_power, lr=lr,
          beta1=beta_1, beta2=beta_2, epsilon=eps, grad=gradient)
    else:
      # One fused kernel per variable (CPU, GPU and XLA) instead of ~15 ops.
      tf.raw_ops.ResourceApplyAdam(
          var=variable.handle, m=m.handle, v=v.handle,
          beta1_power=beta_1_power, beta2_power=beta_2_power, lr=lr,
          beta1=beta_1, beta2=beta_2, epsilon=eps, grad=gradient)

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["epsilon_placement"] = self.epsilon_placement
    return config


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class ReferenceRMSprop(tf.keras.optimizers.RMSprop):
  """Keras RMSprop with a choice of epsilon placement.

  With ``v <- rho v + (1 - rho) g^2`` (and, ``centered``, the mean gradient
  ``a <- rho a + (1 - rho) g``, ``v`` replaced by ``v - a^2``):

  * ``"keras"``: ``w <- w - lr g / sqrt(v + eps)`` (Keras' own);
  * ``"reference"``: ``w <- w - lr g / (sqrt(v) + eps)`` (PyTorch's RMSprop,
    the paper's code; its ``alpha`` is ``rho`` here).

  Args:
    learning_rate, rho, epsilon, centered: as Keras' RMSprop.
    epsilon_placement: ``"keras"`` or ``"reference"``.
    **kwargs: Keras' other RMSprop arguments; ``momentum`` must be 0 with the
      reference placement (the paper's configs never set it).
  """

  def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7,
               centered=False, *, epsilon_placement: str = "keras", **kwargs):
    if epsilon_placement not in EPSILON_PLACEMENTS:
      raise ValueError(f"epsilon_placement must be one of {EPSILON_PLACEMENTS}, "
                       f"got {epsilon_placement!r}.")
    kwargs.setdefault("name", type(self).__name__)
    super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon,
                     centered=centered, **kwargs)
    if epsilon_placement == "reference" and self.momentum:
      raise ValueError("momentum must be 0 with epsilon_placement='reference', "
                       f"got {self.momentum!r}.")
    self.epsilon_placement = epsilon_placement

  def update_step(self, gradient, variable):
    if self.epsilon_placement == "keras":
      return super().update_step(gradient, variable)
    if isinstance(gradient, tf.IndexedSlices):
      gradient = tf.convert_to_tensor(gradient)
    lr = tf.cast(self.learning_rate, variable.dtype)
    rho = tf.convert_to_tensor(self.rho, variable.dtype)
    eps = tf.convert_to_tensor(self.epsilon, variable.dtype)
    key = self._var_key(variable)
    velocity = self._velocities[self._index_dict[key]]
    velocity.assign(rho * velocity + (1 - rho) * tf.square(gradient))
    second = velocity
    if self.centered:
      average = self._average_gradients[self._index_dict[key]]
      average.assign(rho * average + (1 - rho) * gradient)
      second = velocity - tf.square(average)
    variable.assign_sub(lr * gradient / (tf.sqrt(second) + eps))

  def get_config(self) -> Dict[str, Any]:
    config = super().get_config()
    config["epsilon_placement"] = self.epsilon_placement
    return config


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class MulEpsAdam(ReferenceAdam):
  """MulEps: Adam whose epsilon is ``epsilon * rho`` at each step.

  Args:
    rho: the rho source (see module docstring). Not serialised: ``get_config``
      stores None and the caller sets ``optimizer.rho`` after ``from_config``.
    **kwargs: ``ReferenceAdam`` arguments.
  """

  def __init__(self, *args, rho: Optional[RhoSource] = None, **kwargs):
    super().__init__(*args, **kwargs)
    self.rho = _check_rho(rho)

  def build(self, var_list):
    super().build(var_list)
    if not hasattr(self, "_step_rho"):
      # rho of the current step, read once before any variable is updated
      # (a callable rho would otherwise see the kernels already stepped).
      self._step_rho = self.add_variable(shape=(), dtype=tf.float32,
                                         initializer="ones", name="step_rho")

  def apply_gradients(self, grads_and_vars, *args, **kwargs):
    grads_and_vars = list(grads_and_vars)
    self.build([v for _, v in grads_and_vars])
    self._step_rho.assign(read_rho(self.rho))
    return super().apply_gradients(grads_and_vars, *args, **kwargs)

  def _epsilon_multiplier(self, dtype):
    return tf.cast(self._step_rho, dtype)

  def get_config(self):
    config = super().get_config()
    config["rho"] = self.rho if isinstance(self.rho, (float, int)) else None
    return config


@tf.keras.utils.register_keras_serializable(package="sn_tf")
class DivLRAdam(ReferenceAdam):
  """DivLR: Adam whose learning rate for each group of variables is
  ``lr / rho_i`` at each step (the paper code's learning-rate variant, with
  ``rho_i = max(sigma_i / K, 1)`` of one tracked layer per group); other
  variables step with ``lr``.

  Unlike DivGrad, this is not a rescaling of the gradients: Adam normalises
  gradient scale away, but not the learning rate.

  Args:
    layer_rhos: ``[(variables, rho_i source), ...]``, one group per layer
      (sources as in the module docstring). Not serialised: ``get_config``
      stores None and the caller sets ``layer_rhos`` after ``from_config``.
    **kwargs: ``ReferenceAdam``'s arguments.
  """

  def __init__(self, *args, layer_rhos: Optional[Sequence[Tuple[
      Sequence[tf.Variable], RhoSource]]] = None, **kwargs):
    super().__init__(*args, **kwargs)
    self.layer_rhos = [(list(variables), _check_rho(source, "layer_rhos[i][1]"))
                       for variables, source in (layer_rhos or [])]

  def build(self, var_list):
    super().build(var_list)
    if not hasattr(self, "_group_rhos"):
      # Each group's rho of the current step, read once before any variable
      # is updated (a callable rho would otherwise see stepped kernels).
      self._group_rhos = [self.add_variable(shape=(), dtype=tf.float32,
                                            initializer="ones",
                                            name=f"group_rho_{i}")
                          for i in range(len(self.layer_rhos))]
      self._group_of = {v.ref(): i for i, (variables, _) in enumerate(self.layer_rhos)
                        for v in variables}

  def apply_gradients(self, grads_and_vars, *args, **kwargs):
    grads_and_vars = list(grads_and_vars)
    self.build([v for _, v in grads_and_vars])
    for (_, source), step_rho in zip(self.layer_rhos, self._group_rhos):
      step_rho.assign(read_rho(source))
    return super().apply_gradients(grads_and_vars, *args, **kwargs)

  def _scalars(self, variable):
    lr, *rest = super()._scalars(variable)
    group = self._group_of.get(variable.ref())
    if group is not None:
      lr = lr / tf.cast(self._group_rhos[group], lr.dtype)
    return (lr, *rest)

  def get_config(self):
    config = super().get_config()
    config["layer_rhos"] = None
    return config


class DivGradMixin:
  """Scales gradients by rho^-1 before the wrapped optimiser's update.

  The rho source is ``self.spectral_rho`` (constructor argument ``rho=``, or
  ``spectral_rho=`` where the base optimiser has a ``rho`` of its own, as
  RMSprop does).

  ``scope="global"``: every gradient by ``1 / rho``. ``scope="per_layer"``:
  the kernel gradient of each tracked layer by ``1 / rho_i`` from
  ``layer_rhos = [(kernel_variable, rho_i_source), ...]``; other gradients
  are left alone.
  """

  def _init_divgrad(self, rho, scope, layer_rhos):
    if scope not in SCOPES:
      raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    if scope == "per_layer":
      if not layer_rhos:
        raise ValueError('scope="per_layer" needs layer_rhos=[(kernel, rho_i), ...].')
      for pair in layer_rhos:
        _check_rho(pair[1], "layer_rhos[i][1]")
    elif layer_rhos:
      raise ValueError('layer_rhos is only used with scope="per_layer".')
    self.spectral_rho = _check_rho(rho)
    self.scope = scope
    self.layer_rhos = list(layer_rhos or [])

  def _scaled(self, grads_and_vars):
    grads_and_vars = list(grads_and_vars)
    if self.scope == "global":
      inv = 1.0 / read_rho(self.spectral_rho)
      return [(None if g is None else g * tf.cast(inv, g.dtype), v)
              for g, v in grads_and_vars]
    by_var = {kernel.ref(): source for kernel, source in self.layer_rhos}
    out = []
    for g, v in grads_and_vars:
      source = by_var.get(v.ref())
      if g is not None and source is not None:
        g = g / tf.cast(read_rho(source), g.dtype)
      out.append((g, v))
    return out

  def apply_gradients(self, grads_and_vars, *args, **kwargs):
    return super().apply_gradients(self._scaled(grads_and_vars), *args, **kwargs)

  _rho_arg = "rho"

  def _divgrad_config(self, config):
    config["scope"] = self.scope
    rho = self.spectral_rho
    config[self._rho_arg] = rho if isinstance(rho, (float, int)) else None
    return config


def _divgrad_class(base, name: str, doc: str):
  # RMSprop's own `rho` is its moving-average decay: there the spectral rho
  # is passed as `spectral_rho` instead.
  rho_arg = ("spectral_rho"
             if "rho" in inspect.signature(base.__init__).parameters else "rho")

  def __init__(self, *args, scope: str = "global",
               layer_rhos: Optional[Sequence[Tuple[tf.Variable, RhoSource]]] = None,
               **kwargs):
    rho = kwargs.pop(rho_arg, None)
    kwargs.setdefault("name", name)
    base.__init__(self, *args, **kwargs)
    self._init_divgrad(rho, scope, layer_rhos)

  def get_config(self):
    return self._divgrad_config(base.get_config(self))

  doc += (f" The spectral rho is the `{rho_arg}=` argument (a tf.Variable, a "
          "number or a callable), stored as `spectral_rho`.")
  cls = type(name, (DivGradMixin, base), {
      "__init__": __init__, "get_config": get_config, "__doc__": doc,
      "__module__": __name__, "_rho_arg": rho_arg})
  return tf.keras.utils.register_keras_serializable(package="sn_tf")(cls)


DivGradAdam = _divgrad_class(
    ReferenceAdam, "DivGradAdam",
    "DivGrad with Adam (``ReferenceAdam`` arguments, plus rho/scope/layer_rhos).")
DivGradRMSprop = _divgrad_class(
    ReferenceRMSprop, "DivGradRMSprop",
    "DivGrad with RMSprop (``ReferenceRMSprop`` arguments, plus "
    "spectral_rho/scope/layer_rhos).")
DivGradSGD = _divgrad_class(
    tf.keras.optimizers.SGD, "DivGradSGD",
    "DivGrad with Keras SGD (its arguments, plus rho/scope/layer_rhos).")


def divgrad(base: type, name: Optional[str] = None) -> type:
  """DivGrad version of any Keras optimiser class (e.g. ``Adagrad``)."""
  return _divgrad_class(base, name or f"DivGrad{base.__name__}",
                        f"DivGrad with {base.__name__}.")


def check_config(config) -> None:
  """The optimiser's name and epsilon placements (its numbers have kinds)."""
  one_of(OPTIMIZERS).check("optimizer", config.optimizer)
  for name in ("adam_epsilon_placement", "rmsprop_epsilon_placement"):
    one_of(EPSILON_PLACEMENTS).check(name, getattr(config, name))
