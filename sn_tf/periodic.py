"""The runner's periodic jobs, each with its own schedule (parts of the
runner, ``sn_tf.train``).

``TrainLog`` writes the TensorBoard scalars of each ``log_every`` window;
``Evaluation`` plays an evaluation and measures the network into the row of
``metrics.csv``; ``PolicyExports`` writes ``policies/step_<N>`` (and
``policies/final``). Each is due at the steps its ``Schedule`` names; the
checkpoints' schedule is ``checkpoint_schedule``.
"""

import dataclasses
import os
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from sn_tf import files
from sn_tf import logs
from sn_tf import measures
from sn_tf.checks import check
from sn_tf.config import TrainConfig
from sn_tf.envs import make_env, parse_env_id
from sn_tf.evaluation import episode_statistics, play_episodes, play_steps, step_budget_statistics
from sn_tf.export import PolicyExporter


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Due at every multiple of ``every``, at step ``last`` and at every
  multiple of ``also_every`` (0: no such steps)."""
  every: int
  last: Optional[int] = None
  also_every: int = 0

  def due(self, step: int) -> bool:
    return (step % self.every == 0 or step == self.last
            or (self.also_every > 0 and step % self.also_every == 0))


def evaluation_schedule(config: TrainConfig) -> Schedule:
  """Every ``eval_every`` steps and at the last step (evaluations, exports)."""
  return Schedule(config.eval_every, config.num_steps)


def checkpoint_schedule(config: TrainConfig) -> Schedule:
  """Checkpoints at each evaluation, and every ``checkpoint_every`` steps."""
  return dataclasses.replace(evaluation_schedule(config),
                             also_every=config.checkpoint_every)


class TrainLog:
  """The TensorBoard scalars of the last ``log_every`` steps: training
  return and episodes, loss, epsilon, steps/s and the layer statistics."""

  def __init__(self, config: TrainConfig, metrics: logs.MetricsLog):
    self.schedule = Schedule(config.log_every)
    self._metrics = metrics
    self._start, self._start_step = time.time(), 0
    self.rate = float("nan")  # env steps/s over the last window

  def start(self, step: int) -> None:
    self._start, self._start_step = time.time(), step

  def __call__(self, state, epsilon: float, layer_stats: Dict[str, float],
               progress: logs.Progress) -> None:
    """Logs ``state``'s (a ``LoopState``) window, then empties it."""
    now = time.time()
    self.rate = (state.step - self._start_step) / max(now - self._start, 1e-9)
    self.start(state.step)
    values = {"train/return": logs.mean_or_nan(state.window_returns),
              "train/episodes": float(len(state.window_returns)),
              "loss": logs.mean_or_nan(state.window_losses),
              "epsilon": epsilon, "steps_per_second": self.rate}
    values.update(layer_stats)
    self._metrics.scalars(state.step, values)
    state.window_returns, state.window_losses = [], []
    progress.update(state.step, f"return {values['train/return']:.2f}")


class Evaluation:
  """One evaluation at ``eval_epsilon`` on a fresh env: ``eval_episodes``
  episodes (each capped at ``eval_max_episode_steps``), or ``eval_steps``
  steps (``sn_tf.evaluation.play_steps``, no episode cut inside them); then
  the measures, if the run takes them.

  Evaluation ``k`` uses an env and an RNG seeded from (seed, k), so it needs no
  state in checkpoints and is reproducible.
  """

  def __init__(self, config: TrainConfig, greedy: Callable[[np.ndarray], Any],
               num_actions: int, measure: Optional["Measures"] = None):
    self.schedule = evaluation_schedule(config)
    self._config = config
    self._greedy = greedy
    self._num_actions = num_actions
    self._measure = measure

  def play(self, index: int) -> Dict[str, float]:
    """The ``eval/*`` metrics of evaluation ``index``."""
    c = self._config
    env = make_env(c.env, seed=(c.seed * 7919 + 1_000_003 + index) % 2**32,
                   training=False,
                   atari_protocol=c.atari_protocol,
                   sticky_action_prob=c.sticky_action_prob)
    rng = np.random.default_rng([c.seed, 2, index])
    act = lambda ts: int(self._greedy(ts.observation[None]).numpy()[0])
    common = dict(epsilon=c.eval_epsilon, num_actions=self._num_actions, rng=rng)
    if c.eval_steps:
      returns, _, unfinished = play_steps(env, act, steps=c.eval_steps, **common)
      values = step_budget_statistics(returns, unfinished)
    else:
      returns, _ = play_episodes(env, act, episodes=c.eval_episodes,
                                 max_episode_steps=c.eval_max_episode_steps,
                                 **common)
      values = episode_statistics(returns)
    env.close()
    return values

  def __call__(self, state, epsilon: float, steps_per_second: float,
               layer_stats: Dict[str, float], replay) -> Dict[str, Any]:
    """The metrics row at ``state.step`` (``state`` a ``LoopState``, whose
    since-evaluation tallies it empties)."""
    evaluation = self.play(state.eval_index)
    state.eval_index += 1
    row = {"step": state.step, "wall_time": time.time(), **evaluation,
           "train/return": logs.mean_or_nan(state.train_returns_since_eval),
           "loss": logs.mean_or_nan(state.losses_since_eval),
           "epsilon": epsilon, "steps_per_second": steps_per_second}
    row.update(layer_stats)
    if self._measure is not None:
      row.update(self._measure(replay))
    state.train_returns_since_eval, state.losses_since_eval = [], []
    return row


class Measures:
  """The measures of docs/measures.md on one fixed batch of replay states per run.

  The states are drawn once, at the first evaluation, with their own
  generator (the replay's sampling, hence training, is unchanged) and kept in
  ``path`` (the run's ``measure_states.npy``) so a resumed run measures the
  same states.
  """

  def __init__(self, path: str, config: TrainConfig,
               compute: "measures.NetworkMeasures"):
    self._path, self._config, self._compute = path, config, compute
    self._states = None
    if os.path.isfile(path):
      self._states = np.load(path, allow_pickle=False)

  @classmethod
  def for_run(cls, config: TrainConfig, learner, observation_spec,
              path: str) -> Optional["Measures"]:
    """The run's measures (None when ``measure_states`` is 0); the Jacobian
    method ``auto`` is exact on MinAtar and power iteration on Atari."""
    if not config.measure_states:
      return None
    method = config.jacobian_method
    if method == "auto":
      method = "exact" if parse_env_id(config.env)[0] == "minatar" else "power"
    network = learner.online_network
    return cls(path, config, measures.NetworkMeasures(
        learner.q_values,
        lambda x: network.penultimate_features(x, training=False),
        observation_spec, jacobian_method=method))

  def __call__(self, replay) -> Dict[str, float]:
    if self._states is None:
      states = measures.draw_states(replay, self._config.measure_states,
                                    self._config.seed)
      with files.atomic_write(self._path, "wb") as f:
        np.save(f, states)
      self._states = states
    values = self._compute(self._states)
    for name, value in values.items():
      if not np.isfinite(value):
        raise FloatingPointError(f"{name} is {value}; stopping. The last "
                                 "checkpoint and export are intact.")
    return values


class PolicyExports:
  """``policies/step_<N>`` at each evaluation, and ``policies/final`` at the
  last step (``sn_tf.run_dir`` names them)."""

  def __init__(self, config: TrainConfig, exporter: PolicyExporter, run_dir):
    self.schedule = evaluation_schedule(config)
    self._exporter, self._run_dir = exporter, run_dir
    self._last = config.num_steps

  def __call__(self, step: int) -> None:
    self._exporter.export(self._run_dir.policy(step))
    if step == self._last:
      self._exporter.export(self._run_dir.policy())


def check_config(config: TrainConfig) -> None:
  """An evaluation is by episodes or by steps, not both."""
  c = config
  check((c.eval_episodes > 0) != (c.eval_steps > 0), "eval_steps", c.eval_steps,
        f"evaluate either by episodes or by steps: exactly one of "
        f"eval_episodes={c.eval_episodes} and eval_steps={c.eval_steps} is > 0")
