"""The one typed configuration object of a training run, and its presets.

Presets hold the hyperparameters of docs/protocol.md#presets, each with its
source there; every field can be
overridden. ``make_config`` validates everything before any work starts, and
its errors name the field (which the launcher exposes as a flag of the same
name), the value and what is allowed.
"""

import dataclasses
import json
import math
from typing import Any, Dict, Optional, Tuple

@dataclasses.dataclass(frozen=True)
class Preset:
  """A named set of ``TrainConfig`` values for one env suite."""
  suite: str
  values: Dict[str, Any]


PRESETS: Dict[str, Preset] = {
    # Reference `c51_minatar`: one update per env step, target every 1k steps,
    # epsilon 1.0 -> 0.01 over 250k steps after a 5k warm-up.
    "minatar": Preset("minatar", dict(
        replay_capacity=100_000, batch_size=32, learning_starts=5_000,
        update_period=1, target_update_period=1_000,
        epsilon_end=0.01, epsilon_decay_steps=250_000,
        num_steps=5_000_000, eval_every=250_000, eval_episodes=100,
        clip_rewards=False)),
    # The paper's Atari protocol (the reference `g55_c51`, whose agent
    # values are Dopamine's `c51_icml.gin`).
    "atari": Preset("atari", dict(
        replay_capacity=1_000_000, batch_size=32, learning_starts=50_000,
        update_period=4, target_update_period=10_000,
        epsilon_end=0.01, epsilon_decay_steps=1_000_000,
        num_steps=50_000_000, eval_every=250_000, eval_episodes=0,
        eval_steps=125_000, clip_rewards=True, atari_protocol="paper",
        atari_network="paper")),
    # The paper's MinAtar DQN studies (docs/protocol.md#minatar_dqn):
    # one update per 4 env steps, target every 4k steps, epsilon 1.0 for 5k
    # steps then linear to 0.01 at 250k, 50 epochs of 100k steps each
    # evaluated on 125k steps at epsilon 0.001, MSE TD loss.
    "minatar_dqn": Preset("minatar", dict(
        agent="dqn", td_loss="mse",
        replay_capacity=100_000, batch_size=32, learning_starts=5_000,
        update_period=4, target_update_period=4_000,
        epsilon_end=0.01, epsilon_decay_steps=245_000,
        num_steps=5_000_000, eval_every=100_000, eval_episodes=0,
        eval_steps=125_000, clip_rewards=False)),
    # Dopamine's C51 (TF agent, `c51.gin`), the one behind its published
    # baselines: its network, TF's Adam, sticky actions, no life-loss
    # terminal, 125k evaluation steps per 250k-step iteration.
    "atari_dopamine": Preset("atari", dict(
        replay_capacity=1_000_000, batch_size=32, learning_starts=20_000,
        update_period=4, target_update_period=8_000,
        epsilon_end=0.01, epsilon_decay_steps=250_000,
        num_steps=50_000_000, eval_every=250_000, eval_episodes=0,
        eval_steps=125_000, clip_rewards=True, atari_protocol="dopamine",
        atari_network="dopamine", adam_epsilon_placement="keras")),
}

# The preset a run gets when none is named: by env suite and agent.
DEFAULT_PRESETS: Dict[Tuple[str, str], str] = {
    ("minatar", "c51"): "minatar",
    ("minatar", "dqn"): "minatar_dqn",
    ("atari", "c51"): "atari",
    ("atari", "dqn"): "atari",
}

AGENTS = ("dqn", "c51")
TD_LOSSES = ("mse", "huber")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
JACOBIAN_METHODS = ("auto", "exact", "power")


def _field(default, help_text: str):
  """A config field with its one-line help (the launcher flag's help)."""
  return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that defines a training run (DQN or C51).

  Step counts are environment (agent) steps; for Atari one agent step is 4
  frames. ``target_update_period`` is in env steps, as in Dopamine. Each
  field is a flag of ``launchers/train.py`` of the same name, with the help
  given here.
  """
  env: str = dataclasses.field(metadata={"help": "minatar:<game> or atari:<Game>."})
  root_dir: str = dataclasses.field(
      metadata={"help": "Run directory (resumed if it exists)."})
  preset: str = _field(
      "minatar", "Hyperparameter preset (docs/protocol.md#presets). Default: "
      "minatar (minatar_dqn with --agent=dqn) for MinAtar envs, atari for "
      "Atari envs.")
  seed: int = _field(0, "Seed of everything (env, network init, exploration, replay).")
  agent: str = _field("c51", "Agent: dqn or c51.")
  # Budget and evaluation.
  num_steps: int = _field(5_000_000, "Env (agent) steps to train for.")
  eval_every: int = _field(250_000, "Evaluate, export and checkpoint every this many steps.")
  eval_episodes: int = _field(
      100, "Episodes per evaluation (0: evaluate by --eval_steps instead).")
  eval_steps: int = _field(
      0, "Env steps per evaluation, the mean return of the episodes they "
      "complete (0: evaluate by --eval_episodes instead).")
  eval_epsilon: float = _field(0.001, "Exploration epsilon during evaluation.")
  eval_max_episode_steps: int = _field(27_000, "Cap on the length of an evaluation episode.")
  checkpoint_every: int = _field(
      0, "Extra checkpoints every this many steps (0: at evaluations only).")
  log_every: int = _field(1_000, "TensorBoard logging period in steps.")
  # Agent and replay.
  num_atoms: int = _field(51, "Atoms of the C51 distribution.")
  min_q_value: float = _field(-10.0, "Lowest atom of the C51 support.")
  max_q_value: float = _field(10.0, "Highest atom of the C51 support.")
  td_loss: str = _field("mse", "DQN loss on the TD error: mse or huber.")
  gamma: float = _field(0.99, "Discount factor.")
  lr: float = _field(2.5e-4, "Learning rate.")
  adam_eps: float = _field(3.125e-4, "Adam epsilon.")
  batch_size: int = _field(32, "Replay batch size.")
  replay_capacity: int = _field(100_000, "Replay buffer size (observation slots).")
  learning_starts: int = _field(5_000, "Replay warm-up: steps before the first update.")
  update_period: int = _field(1, "Env steps per gradient update.")
  target_update_period: int = _field(1_000, "Env steps between target-network copies.")
  epsilon_start: float = _field(1.0, "Exploration epsilon during the warm-up.")
  epsilon_end: float = _field(0.01, "Final exploration epsilon.")
  epsilon_decay_steps: int = _field(250_000, "Steps of linear epsilon decay after the warm-up.")
  clip_rewards: bool = _field(False, "Clip training rewards to [-1, 1].")
  # Network and spectral normalisation.
  spectral: str = _field("none", "Layers to normalise: none, full, -2, -1,-2L, ...")
  conv_norm: str = _field("operator", "SN of convs: operator or reshape.")
  lipschitz_k: float = _field(1.0, "Target Lipschitz constant K of normalised layers.")
  leave_smaller: bool = _field(False, "Only shrink layers with sigma > K.")
  power_iterations: int = _field(1, "Power-iteration steps per training forward pass.")
  act_power_iteration: bool = _field(
      False, "Also iterate in every greedy forward pass of the training "
      "loop's acting, as the reference code (docs/layers.md#power-iteration-lag); "
      "evaluations and exports never iterate.")
  minatar_model: str = _field(
      "16/128", "MinAtar net '<conv filters>/<hidden units>', e.g. 16/128 or "
      "16-16/128 (docs/protocol.md#networks).")
  # Optimiser and spectral schedulers (docs/schedulers.md).
  optimizer: str = _field("adam", "adam, rmsprop or sgd.")
  adam_epsilon_placement: str = _field(
      "reference", "reference (PyTorch, the paper's code) or keras.")
  rmsprop_rho: float = _field(
      0.9, "RMSprop's decay of the squared-gradient average (PyTorch's alpha).")
  rmsprop_eps: float = _field(1e-7, "RMSprop's epsilon.")
  rmsprop_centered: bool = _field(
      False, "Centred RMSprop (divide by the gradient's variance estimate).")
  rmsprop_epsilon_placement: str = _field(
      "keras", "RMSprop epsilon: keras (g / sqrt(v + eps)) or reference "
      "(PyTorch, the paper's code: g / (sqrt(v) + eps)).")
  scheduler: str = _field(
      "none", "Spectral scheduler: none, divout, divgrad, muleps, divlr "
      "(docs/schedulers.md).")
  scheduler_layers: str = _field("-2", "Layers whose rho the scheduler uses (grammar).")
  scheduler_scope: str = _field("global", "DivGrad scope: global or per_layer.")
  # Environment.
  atari_protocol: str = _field("paper", "Atari protocol: paper or dopamine.")
  atari_network: str = _field(
      "paper", "Atari net: paper (Nature CNN, VALID padding, Glorot init) or "
      "dopamine (SAME padding, Dopamine's init) (docs/protocol.md#networks).")
  sticky_action_prob: Optional[float] = _field(
      None, "Sticky-action probability (default: the env's).")
  # Analysis measures (docs/measures.md), at every evaluation on a fixed batch
  # of measure_states replay states (0: off); jacobian_method "auto" is exact
  # for MinAtar and power iteration for Atari.
  measure_states: int = _field(
      256, "Replay states the smoothness/srank measures use at each evaluation (0: off).")
  jacobian_method: str = _field(
      "auto", "Jacobian spectral norm: auto (exact on MinAtar, power "
      "iteration on Atari), exact, power.")
  # Execution.
  tf_threads: int = _field(1, "TF intra/inter-op threads (0: TF's default).")
  # Environments stepped together, each with its own replay stream; one
  # iteration is num_envs env steps and num_envs / update_period updates.
  num_envs: int = _field(
      1, "Environments stepped together, one replay stream each "
      "(num_envs / update_period updates per iteration).")

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_json(cls, text: str) -> "TrainConfig":
    """Reads ``to_json``'s output, also from older sn_tf versions: fields
    added since take their defaults, and the old ``minatar_conv_filters`` /
    ``minatar_fc_units`` become ``minatar_model``."""
    data = json.loads(text)
    if "minatar_conv_filters" in data:
      convs = data.pop("minatar_conv_filters")
      fcs = data.pop("minatar_fc_units", [128])
      data["minatar_model"] = ("-".join(str(c) for c in convs) + "/"
                               + "-".join(str(h) for h in fcs))
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f"config has unknown field(s) {', '.join(unknown)} "
                       "(written by a newer sn_tf?).")
    return cls(**data)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def env_suite(env: str) -> str:
  """``"minatar"`` or ``"atari"``: the suite of a valid env id.

  Raises:
    ValueError: naming ``env``, if the id is not valid.
  """
  from sn_tf.envs import parse_env_id  # pylint: disable=g-import-not-at-top
  try:
    return parse_env_id(env)[0]
  except ValueError as e:
    raise ValueError(f"env={env!r} is not allowed; {e}.") from None


def default_preset(env: str, agent: Optional[str] = None) -> str:
  """The preset of a run on ``env`` that names none (``DEFAULT_PRESETS``);
  ``agent`` None is the default agent, C51."""
  agent = FIELDS["agent"].default if agent is None else agent
  _check(agent in AGENTS, "agent", agent, f"allowed: {', '.join(AGENTS)}")
  return DEFAULT_PRESETS[(env_suite(env), agent)]


def make_config(env: str, root_dir: str, preset: Optional[str] = None,
                **overrides) -> TrainConfig:
  """The one way a run's config is built: the preset's values (by default
  ``default_preset(env, agent)``), then ``overrides`` (None values are
  ignored), validated.

  Raises:
    ValueError: naming the field, the value and what is allowed.
  """
  if preset is None:
    preset = default_preset(env, overrides.get("agent"))
  if preset not in PRESETS:
    raise ValueError(f"preset={preset!r} is not allowed; allowed: "
                     f"{', '.join(PRESETS)}.")
  unknown = sorted(set(overrides) - set(FIELDS))
  if unknown:
    raise ValueError(f"unknown config field(s): {', '.join(unknown)}.")
  values = dict(PRESETS[preset].values)
  values.update({k: v for k, v in overrides.items() if v is not None})
  # A preset evaluates by episodes or by steps; giving the other one
  # replaces the preset's.
  if overrides.get("eval_steps") and overrides.get("eval_episodes") is None:
    values["eval_episodes"] = 0
  if overrides.get("eval_episodes") and overrides.get("eval_steps") is None:
    values["eval_steps"] = 0
  config = TrainConfig(env=env, root_dir=root_dir, preset=preset, **values)
  validate(config)
  return config


def _check(ok: bool, name: str, value, allowed: str) -> None:
  if not ok:
    raise ValueError(f"{name}={value!r} is not allowed; {allowed}.")


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def validate(c: TrainConfig) -> None:
  """Checks every field of ``c`` (see ``make_config``)."""
  # Late import: the env registry imports gymnasium/ale-py.
  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import ATARI_PROTOCOLS
  from sn_tf.layers.sn_conv import NORMS as CONV_NORMS
  # pylint: enable=g-import-not-at-top
  env_suite(c.env)
  _check(isinstance(c.root_dir, str) and bool(c.root_dir.strip()), "root_dir",
         c.root_dir, "give a directory path")
  _check(_is_int(c.seed) and 0 <= c.seed < 2**31, "seed", c.seed,
         "an integer in [0, 2**31)")
  positive_ints = ("num_steps", "eval_every",
                   "eval_max_episode_steps", "log_every", "num_atoms",
                   "batch_size", "replay_capacity", "update_period",
                   "target_update_period", "epsilon_decay_steps",
                   "power_iterations", "tf_threads", "num_envs")
  for name in positive_ints:
    value = getattr(c, name)
    if name == "tf_threads":
      _check(_is_int(value) and value >= 0, name, value,
             "an integer >= 0 (0 = TensorFlow's default)")
    else:
      _check(_is_int(value) and value >= 1, name, value, "an integer >= 1")
  _check(_is_int(c.checkpoint_every) and c.checkpoint_every >= 0,
         "checkpoint_every", c.checkpoint_every,
         "an integer >= 0 (0 = checkpoint at each evaluation)")
  _check(_is_int(c.learning_starts) and c.learning_starts >= 0,
         "learning_starts", c.learning_starts, "an integer >= 0")
  _check(_is_int(c.measure_states) and c.measure_states >= 0, "measure_states",
         c.measure_states, "an integer >= 0 (0 = no smoothness/rank measures)")
  _check(c.jacobian_method in JACOBIAN_METHODS, "jacobian_method",
         c.jacobian_method, f"allowed: {', '.join(JACOBIAN_METHODS)}")
  _check(c.num_atoms >= 2, "num_atoms", c.num_atoms, "an integer >= 2")
  _check(c.target_update_period % c.update_period == 0, "target_update_period",
         c.target_update_period,
         f"a multiple of update_period={c.update_period} (targets are copied "
         "every target_update_period / update_period updates)")
  if c.num_envs > 1:
    for name in ("num_steps", "eval_every", "log_every", "checkpoint_every"):
      _check(getattr(c, name) % c.num_envs == 0, name, getattr(c, name),
             f"a multiple of num_envs={c.num_envs} (the loop advances "
             f"num_envs steps at a time)")
    _check(c.replay_capacity >= 2 * c.batch_size * c.num_envs, "replay_capacity",
           c.replay_capacity, f"at least 2 * batch_size * num_envs = "
           f"{2 * c.batch_size * c.num_envs} (one stream per env)")
  _check(c.replay_capacity >= 2 * c.batch_size, "replay_capacity",
         c.replay_capacity, f"at least 2 * batch_size = {2 * c.batch_size}")
  for name in ("min_q_value", "max_q_value", "lr", "adam_eps",
               "lipschitz_k", "gamma", "rmsprop_eps"):
    value = getattr(c, name)
    _check(isinstance(value, (int, float)) and not isinstance(value, bool)
           and math.isfinite(value), name, value, "a finite number")
  _check(c.max_q_value > c.min_q_value, "max_q_value", c.max_q_value,
         f"greater than min_q_value={c.min_q_value}")
  _check(0.0 <= c.gamma <= 1.0, "gamma", c.gamma, "a number in [0, 1]")
  for name in ("lr", "adam_eps", "lipschitz_k", "rmsprop_eps"):
    _check(getattr(c, name) > 0, name, getattr(c, name), "a number > 0")
  for name in ("eval_epsilon", "epsilon_start", "epsilon_end"):
    value = getattr(c, name)
    _check(isinstance(value, (int, float)) and 0.0 <= value <= 1.0, name,
           value, "a number in [0, 1]")
  _check(isinstance(c.rmsprop_rho, (int, float)) and not isinstance(c.rmsprop_rho, bool)
         and 0.0 <= c.rmsprop_rho < 1.0, "rmsprop_rho", c.rmsprop_rho,
         "a number in [0, 1)")
  for name in ("clip_rewards", "leave_smaller", "act_power_iteration",
               "rmsprop_centered"):
    _check(isinstance(getattr(c, name), bool), name, getattr(c, name),
           "true or false")
  _check(c.conv_norm in CONV_NORMS, "conv_norm", c.conv_norm,
         f"allowed: {', '.join(CONV_NORMS)}")
  _check(c.atari_protocol in ATARI_PROTOCOLS, "atari_protocol",
         c.atari_protocol, f"allowed: {', '.join(ATARI_PROTOCOLS)}")
  _check(c.sticky_action_prob is None
         or (isinstance(c.sticky_action_prob, (int, float))
             and 0.0 <= c.sticky_action_prob <= 1.0),
         "sticky_action_prob", c.sticky_action_prob, "a number in [0, 1]")
  _check(c.agent in AGENTS, "agent", c.agent, f"allowed: {', '.join(AGENTS)}")
  _check(c.td_loss in TD_LOSSES, "td_loss", c.td_loss,
         f"allowed: {', '.join(TD_LOSSES)}")
  _check(c.agent == "dqn" or c.td_loss == "mse", "td_loss", c.td_loss,
         f"a DQN option; agent={c.agent!r} has its own loss (leave td_loss=mse)")
  for name in ("eval_episodes", "eval_steps"):
    _check(_is_int(getattr(c, name)) and getattr(c, name) >= 0, name,
           getattr(c, name), "an integer >= 0")
  _check((c.eval_episodes > 0) != (c.eval_steps > 0), "eval_steps", c.eval_steps,
         f"evaluate either by episodes or by steps: exactly one of "
         f"eval_episodes={c.eval_episodes} and eval_steps={c.eval_steps} is > 0")
  # The layer spec, against the network it will be applied to.
  from sn_tf.networks import ATARI_NETWORKS, network_layer_count, parse_layer_selection  # pylint: disable=g-import-not-at-top
  suite = env_suite(c.env)
  suite_presets = [p for p in PRESETS if PRESETS[p].suite == suite]
  _check(c.preset in suite_presets, "preset", c.preset,
         f"a {suite} env needs preset {' or '.join(suite_presets)}")
  _check(c.atari_network in ATARI_NETWORKS, "atari_network", c.atari_network,
         f"allowed: {', '.join(ATARI_NETWORKS)}")
  num_layers = network_layer_count(suite, minatar_model=c.minatar_model,
                                   atari_network=c.atari_network)
  spectral = parse_layer_selection(c.spectral, num_layers, flag="spectral")
  # pylint: disable=g-import-not-at-top
  from sn_tf import schedulers
  from sn_tf.optimizers import EPSILON_PLACEMENTS
  # pylint: enable=g-import-not-at-top
  _check(c.optimizer in OPTIMIZERS, "optimizer", c.optimizer,
         f"allowed: {', '.join(OPTIMIZERS)}")
  for name in ("adam_epsilon_placement", "rmsprop_epsilon_placement"):
    _check(getattr(c, name) in EPSILON_PLACEMENTS, name, getattr(c, name),
           f"allowed: {', '.join(EPSILON_PLACEMENTS)}")
  schedulers.validate(c, spectral, num_layers)
