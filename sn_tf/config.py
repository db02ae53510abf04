"""The one typed configuration object of a training run, and its presets.

Presets hold the hyperparameters of docs/protocol.md#presets, each with its
source there; every field can be overridden. Each field carries its help and
the ``Kind`` of value it holds (``sn_tf.checks``); the rules a field's part
knows (allowed names, its relation to other fields) live in that part's
``check_config``. ``make_config`` validates everything before any work
starts, and its errors name the field (which the launcher exposes as a flag
of the same name), the value and what is allowed.
"""

import dataclasses
import importlib
import json
from typing import Any, Dict, Optional, Tuple

from sn_tf.checks import (BOOL, COUNT, DECAY, Kind, NUMBER, POSITIVE,
                          POSITIVE_INT, PROBABILITY, check, is_int, one_of)

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

# The parts a config configures, in the order they check their fields
# (each module's ``check_config(config)``).
CHECKED_BY = ("sn_tf.envs.registry", "sn_tf.stepper", "sn_tf.periodic",
              "sn_tf.measures", "sn_tf.networks.architectures",
              "sn_tf.agents.losses", "sn_tf.optimizers", "sn_tf.schedulers")


def _field(default, help_text: str, kind: Optional[Kind] = None):
  """A config field with its one-line help (the launcher flag's help) and
  the ``Kind`` of value it holds (None: its part checks it)."""
  return dataclasses.field(default=default,
                           metadata={"help": help_text, "kind": kind})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything that defines a training run (DQN or C51).

  Step counts are environment (agent) steps; for Atari one agent step is 4
  frames. ``target_update_period`` is in env steps, as in Dopamine. Each
  field is a flag of ``launchers/train.py`` of the same name, with the help
  given here.
  """
  env: str = dataclasses.field(metadata={"help": "minatar:<game> or atari:<Game>."})
  root_dir: str = dataclasses.field(metadata={
      "help": "Run directory (resumed if it exists).",
      "kind": Kind(lambda v: isinstance(v, str) and bool(v.strip()),
                   "give a directory path")})
  preset: str = _field(
      "minatar", "Hyperparameter preset (docs/protocol.md#presets). Default: "
      "minatar (minatar_dqn with --agent=dqn) for MinAtar envs, atari for "
      "Atari envs.")
  seed: int = _field(0, "Seed of everything (env, network init, exploration, replay).",
      kind=Kind(lambda v: is_int(v) and 0 <= v < 2**31, "an integer in [0, 2**31)"))
  agent: str = _field("c51", "Agent: dqn or c51.", kind=one_of(AGENTS))
  # Budget and evaluation.
  num_steps: int = _field(5_000_000, "Env (agent) steps to train for.",
      kind=POSITIVE_INT)
  eval_every: int = _field(250_000, "Evaluate, export and checkpoint every this many steps.",
      kind=POSITIVE_INT)
  eval_episodes: int = _field(
      100, "Episodes per evaluation (0: evaluate by --eval_steps instead).",
      kind=COUNT)
  eval_steps: int = _field(
      0, "Env steps per evaluation, the mean return of the episodes they "
      "complete (0: evaluate by --eval_episodes instead).", kind=COUNT)
  eval_epsilon: float = _field(0.001, "Exploration epsilon during evaluation.",
      kind=PROBABILITY)
  eval_max_episode_steps: int = _field(27_000, "Cap on the length of an evaluation episode.",
      kind=POSITIVE_INT)
  checkpoint_every: int = _field(
      0, "Extra checkpoints every this many steps (0: at evaluations only).",
      kind=COUNT.noting("0 = checkpoint at each evaluation"))
  log_every: int = _field(1_000, "TensorBoard logging period in steps.",
      kind=POSITIVE_INT)
  # Agent and replay.
  num_atoms: int = _field(51, "Atoms of the C51 distribution.",
      kind=POSITIVE_INT)
  min_q_value: float = _field(-10.0, "Lowest atom of the C51 support.",
      kind=NUMBER)
  max_q_value: float = _field(10.0, "Highest atom of the C51 support.",
      kind=NUMBER)
  td_loss: str = _field("mse", "DQN loss on the TD error: mse or huber.")
  gamma: float = _field(0.99, "Discount factor.", kind=PROBABILITY)
  lr: float = _field(2.5e-4, "Learning rate.", kind=POSITIVE)
  adam_eps: float = _field(3.125e-4, "Adam epsilon.", kind=POSITIVE)
  batch_size: int = _field(32, "Replay batch size.", kind=POSITIVE_INT)
  replay_capacity: int = _field(100_000, "Replay buffer size (observation slots).",
      kind=POSITIVE_INT)
  learning_starts: int = _field(5_000, "Replay warm-up: steps before the first update.",
      kind=COUNT)
  update_period: int = _field(1, "Env steps per gradient update.",
      kind=POSITIVE_INT)
  target_update_period: int = _field(1_000, "Env steps between target-network copies.",
      kind=POSITIVE_INT)
  epsilon_start: float = _field(1.0, "Exploration epsilon during the warm-up.",
      kind=PROBABILITY)
  epsilon_end: float = _field(0.01, "Final exploration epsilon.",
      kind=PROBABILITY)
  epsilon_decay_steps: int = _field(250_000, "Steps of linear epsilon decay after the warm-up.",
      kind=POSITIVE_INT)
  clip_rewards: bool = _field(False, "Clip training rewards to [-1, 1].",
      kind=BOOL)
  # Network and spectral normalisation.
  spectral: str = _field("none", "Layers to normalise: none, full, -2, -1,-2L, ...")
  conv_norm: str = _field("operator", "SN of convs: operator or reshape.")
  lipschitz_k: float = _field(1.0, "Target Lipschitz constant K of normalised layers.",
      kind=POSITIVE)
  leave_smaller: bool = _field(False, "Only shrink layers with sigma > K.",
      kind=BOOL)
  power_iterations: int = _field(1, "Power-iteration steps per training forward pass.",
      kind=POSITIVE_INT)
  act_power_iteration: bool = _field(
      False, "Also iterate in every greedy forward pass of the training "
      "loop's acting, as the reference code (docs/layers.md#power-iteration-lag); "
      "evaluations and exports never iterate.", kind=BOOL)
  minatar_model: str = _field(
      "16/128", "MinAtar net '<conv filters>/<hidden units>', e.g. 16/128 or "
      "16-16/128 (docs/protocol.md#networks).")
  # Optimiser and spectral schedulers (docs/schedulers.md).
  optimizer: str = _field("adam", "adam, rmsprop or sgd.")
  adam_epsilon_placement: str = _field(
      "reference", "reference (PyTorch, the paper's code) or keras.")
  rmsprop_rho: float = _field(
      0.9, "RMSprop's decay of the squared-gradient average (PyTorch's alpha).",
      kind=DECAY)
  rmsprop_eps: float = _field(1e-7, "RMSprop's epsilon.", kind=POSITIVE)
  rmsprop_centered: bool = _field(
      False, "Centred RMSprop (divide by the gradient's variance estimate).",
      kind=BOOL)
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
      None, "Sticky-action probability (default: the env's).",
      kind=PROBABILITY.or_none())
  # Analysis measures (docs/measures.md), at every evaluation on a fixed batch
  # of measure_states replay states (0: off); jacobian_method "auto" is exact
  # for MinAtar and power iteration for Atari.
  measure_states: int = _field(
      256, "Replay states the smoothness/srank measures use at each evaluation (0: off).",
      kind=COUNT.noting("0 = no smoothness/rank measures"))
  jacobian_method: str = _field(
      "auto", "Jacobian spectral norm: auto (exact on MinAtar, power "
      "iteration on Atari), exact, power.")
  # Execution.
  tf_threads: int = _field(1, "TF intra/inter-op threads and NumPy's BLAS "
      "threads (0: the libraries' defaults).",
      kind=COUNT.noting("0 = the libraries' defaults"))
  # Environments stepped together, each with its own replay stream; one
  # iteration is num_envs env steps and num_envs / update_period updates.
  num_envs: int = _field(
      1, "Environments stepped together, one replay stream each "
      "(num_envs / update_period updates per iteration).", kind=POSITIVE_INT)

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
  FIELDS["agent"].metadata["kind"].check("agent", agent)
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


def validate(c: TrainConfig) -> None:
  """Checks every field of ``c`` (see ``make_config``): each field's
  ``Kind``, the preset's suite, then each part of ``CHECKED_BY`` checks the
  fields it is configured by."""
  suite = env_suite(c.env)
  for name, field in FIELDS.items():
    if field.metadata.get("kind") is not None:
      field.metadata["kind"].check(name, getattr(c, name))
  suite_presets = [p for p in PRESETS if PRESETS[p].suite == suite]
  check(c.preset in suite_presets, "preset", c.preset,
        f"a {suite} env needs preset {' or '.join(suite_presets)}")
  check(c.target_update_period % c.update_period == 0, "target_update_period",
        c.target_update_period,
        f"a multiple of update_period={c.update_period} (targets are copied "
        "every target_update_period / update_period updates)")
  for module in CHECKED_BY:
    importlib.import_module(module).check_config(c)
