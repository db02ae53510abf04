"""The spectral schedulers (docs/schedulers.md), in one home.

A scheduler reproduces on an unnormalised network what spectral
normalisation does to the optimisation, through

    rho = prod_{i in S} rho_i,   rho_i = sigma_i / K   (max(sigma_i / K, 1)
                                                        with leave_smaller)

over the layers S of ``--scheduler_layers``, which run track-only so that
their power iteration advances once per update and rho follows. No gradient
flows through rho.

Each scheduler is one class of ``SCHEDULERS``; it checks its own config
fields, says what it does to the network's output (DivOut) and builds the
run's optimiser (DivGrad, MulEps, DivLR):

* ``none``: no scheduler.
* ``divout``: the network's output divided by rho in every call.
* ``divgrad``: every gradient times 1 / rho (``global``), or each tracked
  kernel's by 1 / rho_i (``per_layer``).
* ``muleps``: Adam's epsilon times rho.
* ``divlr``: each tracked layer's parameters (kernel and bias) stepped with
  Adam's learning rate divided by max(sigma_i / K, 1), the paper code's
  learning-rate variant.

``build_optimizer(config, network)`` is the one factory of a run's optimiser.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import tensorflow as tf

from sn_tf.checks import check
from sn_tf.layers.spectral_base import norm_ratio

# The three schedulers the paper names (the C51 study compares them).
PAPER_SCHEDULERS = ("divout", "divgrad", "muleps")


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
    rho = norm_ratio(layer.spectral_norm_estimate(), self.lipschitz_k,
                     self.leave_smaller)
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


class Scheduler:
  """No scheduler; the base of those that act. ``config`` is the run's."""

  name = "none"

  def __init__(self, config):
    self.config = config

  @classmethod
  def check(cls, config) -> None:
    """Raises ValueError (naming the field) for fields this scheduler cannot
    take; the layer selection itself is checked by ``check_config``."""
    check(config.scheduler_scope == "global", "scheduler_scope",
           config.scheduler_scope, f"per_layer exists for scheduler=divgrad "
           f"only, got scheduler={config.scheduler!r}")

  @classmethod
  def divides_output(cls) -> bool:
    """Whether the network's output is divided by rho (DivOut)."""
    return False

  def rho(self, network) -> Optional[SpectralRho]:
    """rho over the config's ``scheduler_layers`` of ``network``; None
    without a scheduler."""
    if self.name == "none":
      return None
    if self.divides_output():  # the one the network divides by
      return network.divout_rho
    from sn_tf.networks import parse_layer_selection  # pylint: disable=g-import-not-at-top
    c = self.config
    selection = parse_layer_selection(c.scheduler_layers, len(network.sn_layers),
                                      "scheduler_layers")
    return SpectralRho([network.sn_layers[i] for i in sorted(selection.selected)],
                       lipschitz_k=c.lipschitz_k, leave_smaller=c.leave_smaller)

  def optimizer(self, rho: Optional[SpectralRho]) -> tf.keras.optimizers.Optimizer:
    """The run's optimiser, as this scheduler needs it."""
    del rho
    c = self.config
    # pylint: disable-next=g-import-not-at-top
    from sn_tf.optimizers import ReferenceAdam, ReferenceRMSprop
    if c.optimizer == "adam":
      return ReferenceAdam(**_optimizer_kwargs(c))
    if c.optimizer == "rmsprop":
      return ReferenceRMSprop(**_optimizer_kwargs(c))
    return tf.keras.optimizers.SGD(**_optimizer_kwargs(c))


def _optimizer_kwargs(c) -> Dict[str, Any]:
  """The constructor arguments of the config's optimiser."""
  if c.optimizer == "adam":
    return dict(learning_rate=c.lr, epsilon=c.adam_eps,
                epsilon_placement=c.adam_epsilon_placement)
  if c.optimizer == "rmsprop":
    return dict(learning_rate=c.lr, rho=c.rmsprop_rho, epsilon=c.rmsprop_eps,
                centered=c.rmsprop_centered,
                epsilon_placement=c.rmsprop_epsilon_placement)
  return dict(learning_rate=c.lr)


class DivOut(Scheduler):
  """The network's output (Q-values, or C51's logits) divided by rho in
  every call: training, target, acting, evaluation and exported policies."""

  name = "divout"

  @classmethod
  def divides_output(cls) -> bool:
    return True


def output_transform(rho: SpectralRho) -> Callable[[tf.Tensor], tf.Tensor]:
  """DivOut's output transform: ``x -> x / rho()``, with rho read after the
  call's forward pass (a training call's just-advanced vectors)."""
  return lambda x: x / rho()


class DivGrad(Scheduler):
  """Gradients times 1 / rho (``global``) or each tracked kernel's times
  1 / rho_i (``per_layer``), before the optimiser's update."""

  name = "divgrad"

  @classmethod
  def check(cls, config) -> None:
    del config  # both scopes, every optimiser

  def optimizer(self, rho):
    # pylint: disable-next=g-import-not-at-top
    from sn_tf.optimizers import DivGradAdam, DivGradRMSprop, DivGradSGD
    c = self.config
    cls = {"adam": DivGradAdam, "rmsprop": DivGradRMSprop,
           "sgd": DivGradSGD}[c.optimizer]
    if c.scheduler_scope == "per_layer":
      source = dict(layer_rhos=rho.per_layer())
    else:  # RMSprop's own `rho` is its decay: the spectral one is renamed
      source = {"spectral_rho" if c.optimizer == "rmsprop" else "rho": rho}
    return cls(scope=c.scheduler_scope, **source, **_optimizer_kwargs(c))


class _AdamOnly(Scheduler):
  """A scheduler that changes Adam's own step."""

  @classmethod
  def check(cls, config) -> None:
    super().check(config)
    check(config.optimizer == "adam", "scheduler", config.scheduler,
           f"{cls.name} {cls.what}: it needs optimizer=adam, got "
           f"optimizer={config.optimizer!r}")


class MulEps(_AdamOnly):
  """Plain gradients, Adam's epsilon times rho."""

  name = "muleps"
  what = "scales Adam's epsilon"

  def optimizer(self, rho):
    from sn_tf.optimizers import MulEpsAdam  # pylint: disable=g-import-not-at-top
    return MulEpsAdam(rho=rho, **_optimizer_kwargs(self.config))


class DivLR(_AdamOnly):
  """Each tracked layer's kernel and bias stepped with learning rate
  lr / max(sigma_i / K, 1) (the paper code's learning-rate variant)."""

  name = "divlr"
  what = "scales Adam's learning rate per layer"

  def rho(self, network):
    """rho with ``max(., 1)`` factors, whatever ``leave_smaller`` says."""
    rho = super().rho(network)
    return SpectralRho(rho.layers, rho.lipschitz_k, leave_smaller=True)

  def optimizer(self, rho):
    from sn_tf.optimizers import DivLRAdam  # pylint: disable=g-import-not-at-top
    groups = [([layer.kernel, layer.bias], (lambda layer=layer: rho.factor(layer)))
              for layer in rho.layers]
    return DivLRAdam(layer_rhos=groups, **_optimizer_kwargs(self.config))


SCHEDULERS: Dict[str, Type[Scheduler]] = {
    cls.name: cls for cls in (Scheduler, DivOut, DivGrad, MulEps, DivLR)}


def check_config(config) -> None:
  """The scheduler fields of ``config``, against the net's layers and its
  SN selection.

  Raises:
    ValueError: naming the field, the value and what is allowed.
  """
  # pylint: disable=g-import-not-at-top
  from sn_tf.networks import parse_layer_selection
  from sn_tf.networks.architectures import config_layers
  from sn_tf.optimizers import SCOPES
  # pylint: enable=g-import-not-at-top
  c = config
  num_layers, spectral = config_layers(c)
  check(c.scheduler in SCHEDULERS, "scheduler", c.scheduler,
         f"allowed: {', '.join(SCHEDULERS)}")
  check(c.scheduler_scope in SCOPES, "scheduler_scope", c.scheduler_scope,
         f"allowed: {', '.join(SCOPES)}")
  SCHEDULERS[c.scheduler].check(c)
  if c.scheduler == "none":
    return
  layers = parse_layer_selection(c.scheduler_layers, num_layers,
                                 flag="scheduler_layers")
  check(bool(layers.selected), "scheduler_layers", c.scheduler_layers,
         f"at least one layer for scheduler={c.scheduler}")
  both = sorted(layers.selected & spectral.normalised)
  check(not both, "scheduler", c.scheduler,
         f"not together with active SN on the same layers ({both} are in both "
         f"--scheduler_layers={c.scheduler_layers!r} and --spectral={c.spectral!r}); "
         "schedulers act on unnormalised layers")


def scheduler_of(config) -> Scheduler:
  """The config's scheduler."""
  return SCHEDULERS[config.scheduler](config)


def build_optimizer(config, network) -> Tuple[tf.keras.optimizers.Optimizer,
                                              Optional[SpectralRho]]:
  """``(optimizer, rho)`` of a run on ``network``: the one factory of the
  optimiser, and the rho the scheduler reads (None without one)."""
  scheduler = scheduler_of(config)
  rho = scheduler.rho(network)
  return scheduler.optimizer(rho), rho
