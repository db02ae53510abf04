"""The training runner of every agent: act, store, learn, log, evaluate,
checkpoint, export.

``train(config)`` runs one experiment (DQN or C51, ``config.agent``) into
``config.root_dir``, laid out as ``sn_tf.run_dir`` describes (config.json,
metrics.csv, TensorBoard logs, checkpoints/, policies/).

Rerunning with the same ``root_dir`` resumes from the newest good checkpoint:
networks (with u, v, sigma), optimiser slots, counters, replay buffer, RNG
states and the environment's state are restored, so the run continues as if
uninterrupted. One env step is one agent step; the agent learns every
``update_period`` steps once ``learning_starts`` transitions are stored.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from sn_tf import faults
from sn_tf import files
from sn_tf import logs
from sn_tf import measures
from sn_tf.agents import Learner, build_learner
from sn_tf.checkpointing import RunCheckpointer
from sn_tf.config import TrainConfig, validate
from sn_tf.envs import make_env, parse_env_id
from sn_tf.evaluation import episode_statistics, play_episodes, play_steps, step_budget_statistics
from sn_tf.export import PolicyExporter, ServingPolicy
from sn_tf.fast_call import FlatCall
from sn_tf.run_dir import RunDirectory
from sn_tf.stepper import EnvStepper

# Fields that may change when a run is resumed: the budget (to extend a run),
# where the run lives (moved, or given as a relative path) and threading.
RESUMABLE_CHANGES = ("num_steps", "root_dir", "tf_threads")


def linear_epsilon(step: int, config: TrainConfig) -> float:
  """Dopamine's linearly decaying epsilon, with a warm-up at epsilon_start.

  ``start`` until ``learning_starts``, then linear to ``end`` over
  ``epsilon_decay_steps`` steps, then ``end``.
  """
  start, end = config.epsilon_start, config.epsilon_end
  left = config.epsilon_decay_steps + config.learning_starts - step
  bonus = (start - end) * left / config.epsilon_decay_steps
  return end + float(np.clip(bonus, 0.0, start - end))


def _configure_threads(n: int) -> None:
  if n <= 0:
    return
  try:
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)
  except RuntimeError:
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if current != n:
      logging.warning("tf_threads=%d not applied: TensorFlow was already "
                      "initialised in this process with %d intra-op threads.",
                      n, current)


def _check_config_matches(root_dir: str, config: TrainConfig) -> None:
  """Writes config.json, or refuses a different config on the same root_dir."""
  path = RunDirectory(root_dir).config_path
  if os.path.isfile(path):
    with open(path) as f:
      text = f.read()
    try:  # in today's form: fields added since take their defaults
      saved = json.loads(TrainConfig.from_json(text).to_json())
    except (ValueError, TypeError) as e:
      raise ValueError(f"root_dir={root_dir!r} holds a config.json that "
                       f"cannot be read ({e}); use a new root_dir.") from None
    now = json.loads(config.to_json())
    diff = sorted(k for k in set(saved) | set(now)
                  if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
      details = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
      raise ValueError(
          f"root_dir={root_dir!r} holds a run with a different config ({details}); "
          "use a new root_dir, or the same settings to resume.")
  with files.atomic_write(path) as f:
    f.write(config.to_json())


@contextlib.contextmanager
def run_lock(root_dir: str) -> Iterator[None]:
  """Holds ``root_dir/.lock`` (an flock) for the lifetime of a run.

  A second process on the same ``root_dir`` is refused instead of both
  writing. The kernel drops the lock when the holder dies, even by SIGKILL,
  so a stale lock file never blocks a resume.

  Raises:
    RuntimeError: another process holds the lock.
  """
  path = os.path.join(root_dir, ".lock")
  with open(path, "a+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "unknown"
      raise RuntimeError(
          f"root_dir={root_dir!r} is in use by another training process "
          f"(pid {holder}); wait for it to finish or use another root_dir."
      ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


class _Evaluator:
  """Plays one evaluation at ``eval_epsilon`` on a fresh env: ``eval_episodes``
  episodes (each capped at ``eval_max_episode_steps``), or ``eval_steps``
  steps (``sn_tf.evaluation.play_steps``, no episode cut inside them).

  Evaluation ``k`` uses an env and an RNG seeded from (seed, k), so it needs no
  state in checkpoints and is reproducible.
  """

  def __init__(self, config: TrainConfig, greedy: Callable[[np.ndarray], Any],
               num_actions: int):
    self._config = config
    self._greedy = greedy
    self._num_actions = num_actions

  def __call__(self, index: int) -> Dict[str, float]:
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


class _Measures:
  """The measures of docs/measures.md on one fixed batch of replay states per run.

  The states are drawn once, at the first evaluation, with their own
  generator (the replay's sampling, hence training, is unchanged) and kept in
  ``root_dir/measure_states.npy`` so a resumed run measures the same states.
  """

  def __init__(self, path: str, config: TrainConfig,
               compute: "measures.NetworkMeasures"):
    self._path, self._config, self._compute = path, config, compute
    self._states = None
    if os.path.isfile(path):
      self._states = np.load(path, allow_pickle=False)

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


@dataclasses.dataclass
class LoopState:
  """The loop's own counters and running tallies (all in each checkpoint).

  Attributes:
    step: env steps taken (over all envs).
    eval_index: evaluations done (seeds the next one).
    episode_returns: the running return of each env's current episode.
    window_returns, window_losses: since the last log line.
    train_returns_since_eval, losses_since_eval: since the last evaluation.
  """
  step: int = 0
  eval_index: int = 0
  episode_returns: List[float] = dataclasses.field(default_factory=list)
  window_returns: List[float] = dataclasses.field(default_factory=list)
  window_losses: List[float] = dataclasses.field(default_factory=list)
  train_returns_since_eval: List[float] = dataclasses.field(default_factory=list)
  losses_since_eval: List[float] = dataclasses.field(default_factory=list)

  def to_dict(self) -> Dict[str, Any]:
    """The checkpointed fields (``step`` is the checkpoint's own)."""
    data = dataclasses.asdict(self)
    del data["step"]
    return data

  @classmethod
  def from_dict(cls, step: int, data: Dict[str, Any]) -> "LoopState":
    """Reads ``to_dict``'s output (also a single-env loop's older form)."""
    if "episode_return" in data:
      data = dict(data, episode_returns=[data["episode_return"]])
    names = [f.name for f in dataclasses.fields(cls) if f.name != "step"]
    return cls(step=step, **{name: data[name] for name in names})


class Runner:
  """One run: its envs and replay (``EnvStepper``), learner, logs and
  exports, and the loop.

  ``run()`` restores the newest good checkpoint (if any) and then repeats
  the named steps of one iteration until ``num_steps``: act, store (the
  stepper), learn, log, and at evaluation steps evaluate, export and
  checkpoint. Everything the loop carries between iterations is in
  ``self.state`` (``LoopState``), the explore RNG, the stepper and the
  learner, which ``_checkpoint``/``_restore`` save and load together.

  Args:
    config: a validated config.
    root: the run directory (absolute), whose lock the caller holds.
  """

  def __init__(self, config: TrainConfig, root: str):
    self.config, self.root = config, root
    self.stepper = EnvStepper(config)
    self.observation_spec = self.stepper.observation_spec
    from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
    self.learner: Learner = build_learner(
        config, tensor_spec.from_spec(self.stepper.time_step_spec),
        tensor_spec.from_spec(self.stepper.action_spec))
    self.num_actions = self.learner.num_actions
    # FlatCall: the loop's compiled calls without tf.function's per-call
    # Python dispatch (~0.3-1 ms a call here; see sn_tf/fast_call.py).
    self._greedy = FlatCall(self.learner.compiled_greedy_actions())
    # Acting in the loop: the same call, unless acting also iterates
    # (act_power_iteration); evaluations always use ``_greedy``.
    self._acting = (FlatCall(self.learner.compiled_acting_actions())
                    if config.act_power_iteration else self._greedy)
    # Learn at the end of step t and act at the start of step t + 1 in one
    # compiled call (tests check this gives the updates of agent.train).
    self._update_and_act = FlatCall(self.learner.compiled_update_and_act())
    # More than one update per iteration (num_envs > update_period): all but
    # the last are plain updates, traced when first needed.
    self._update: Optional[FlatCall] = None
    self.explore_rng = np.random.default_rng([config.seed, 1])
    self.run_dir = RunDirectory(root)
    self.checkpointer = RunCheckpointer(self.run_dir.checkpoints,
                                        self.learner.checkpoint_objects())
    self.metrics = logs.MetricsLog(root)
    self.exporter = self._make_exporter()
    self.evaluate = _Evaluator(config, self._greedy, self.num_actions)
    self.measure = self._make_measures()
    self.state = LoopState(episode_returns=[0.0] * len(self.stepper))
    # The greedy actions for the envs' current observations with the current
    # weights, when the last update computed them (None: compute when needed).
    self._next_greedy: Optional[List[int]] = None
    self._last_row: Dict[str, Any] = {}
    self._log_start, self._log_start_step, self._rate = time.time(), 0, float("nan")

  # ---- Construction.

  def _make_exporter(self) -> PolicyExporter:
    c, spec = self.config, self.observation_spec
    serving = ServingPolicy(self.learner.q_values,
                            self.learner.online_network.variables, spec)
    return PolicyExporter(self.learner.policy, serving,
                          self.learner.train_step_counter, dict(
        env=c.env, agent=c.agent, observation_shape=list(spec.shape),
        observation_dtype=np.dtype(spec.dtype).name,
        num_actions=self.num_actions, spectral=c.spectral,
        atari_protocol=c.atari_protocol,
        sticky_action_prob=c.sticky_action_prob),
        policies_dir=self.run_dir.policies)

  def _make_measures(self) -> Optional[_Measures]:
    c = self.config
    if not c.measure_states:
      return None
    method = c.jacobian_method
    if method == "auto":
      method = "exact" if parse_env_id(c.env)[0] == "minatar" else "power"
    network = self.learner.online_network
    return _Measures(self.run_dir.measure_states, c,
                     measures.NetworkMeasures(
                         self.learner.q_values,
                         lambda x: network.penultimate_features(x, training=False),
                         self.observation_spec, jacobian_method=method))

  # ---- The loop.

  def run(self) -> Dict[str, Any]:
    """Trains until ``num_steps`` (resuming); returns the last metrics row."""
    c = self.config
    self._restore()
    # Rows newer than the restored state (or any row, when starting afresh
    # after a kill before the first checkpoint) are written again by this run.
    self.metrics.truncate_after(self.state.step)
    if self.state.step >= c.num_steps:
      logging.info("%s is already complete (%d steps).", self.root, self.state.step)
    progress = logs.Progress(c.num_steps, self.state.step)
    self._log_start_step = self.state.step
    while self.state.step < c.num_steps:
      epsilon = linear_epsilon(self.state.step, c)
      actions = self._act(epsilon)
      previous = self.state.step
      self.stepper.step(actions, self.state)
      faults.hit("step")
      self._learn(previous)
      step = self.state.step
      if step % c.log_every == 0:
        self._log(epsilon, progress)
      if step % c.eval_every == 0 or step == c.num_steps:
        row = self._evaluate(epsilon)
        self._export()
        self._record(row)
        self._checkpoint()
        self._last_row = row
        progress.update(step, f"eval {row['eval/return']:.2f}", force=True)
      elif c.checkpoint_every and step % c.checkpoint_every == 0:
        self._checkpoint()
    progress.close()
    self.stepper.close()
    last_row = self._last_row
    if not last_row:
      rows = logs.read_csv(self.run_dir.metrics_path)
      last_row = rows[-1] if rows else {}
    return dict(last_row, policy_dir=self.run_dir.policy(),
                root_dir=self.root)

  def _act(self, epsilon: float) -> List[int]:
    """Epsilon-greedy actions for every env: one batched greedy call (in
    inference mode) for the envs that need one, unless the last update
    already computed them."""
    n = len(self.stepper)
    actions: List[Optional[int]] = [None] * n
    for i in range(n):
      if self.explore_rng.random() < epsilon:
        actions[i] = int(self.explore_rng.integers(self.num_actions))
      elif self._next_greedy is not None:
        actions[i] = self._next_greedy[i]
    need = [i for i in range(n) if actions[i] is None]
    if need:
      greedy = self._acting(self.stepper.observations(need))
      for i, a in zip(need, greedy.numpy()):
        actions[i] = int(a)
    self._next_greedy = None
    return actions

  def _learn(self, previous: int) -> None:
    """One update per ``update_period`` env steps after ``learning_starts``;
    the last one fused with the next greedy actions."""
    c, s = self.config, self.state
    first = max(previous, c.learning_starts)
    num_updates = max(0, s.step // c.update_period - first // c.update_period)
    for u in range(num_updates):
      batch = self.stepper.replay.sample(c.batch_size)
      if u == num_updates - 1:
        loss, greedy = self._update_and_act(batch, self.stepper.observations())
        self._next_greedy = [int(a) for a in greedy.numpy()]
      else:
        if self._update is None:
          self._update = FlatCall(self.learner.compiled_update())
        loss = self._update(batch)
      loss = faults.value("loss", float(loss))
      if not np.isfinite(loss):
        raise FloatingPointError(f"loss is {loss} at step {s.step}; stopping. "
                                 f"The last checkpoint and export are intact "
                                 f"(in {self.root}).")
      s.window_losses.append(loss)
      s.losses_since_eval.append(loss)

  def _layer_stats(self) -> Dict[str, float]:
    stats = {name: faults.value("sigma", value)
             for name, value in self.learner.sigmas().items()}
    rho = self.learner.rho()
    if rho is not None:
      stats["rho"] = faults.value("rho", rho)
    for name, value in stats.items():
      if not np.isfinite(value):
        raise FloatingPointError(
            f"{name} is {value} at step {self.state.step}; stopping. The last "
            f"checkpoint and export are intact (in {self.root}).")
    return stats

  def _log(self, epsilon: float, progress: logs.Progress) -> None:
    """TensorBoard scalars of the last ``log_every`` steps."""
    s = self.state
    now = time.time()
    self._rate = (s.step - self._log_start_step) / max(now - self._log_start, 1e-9)
    self._log_start, self._log_start_step = now, s.step
    values = {"train/return": logs.mean_or_nan(s.window_returns),
              "train/episodes": float(len(s.window_returns)),
              "loss": logs.mean_or_nan(s.window_losses),
              "epsilon": epsilon, "steps_per_second": self._rate}
    values.update(self._layer_stats())
    self.metrics.scalars(s.step, values)
    s.window_returns, s.window_losses = [], []
    progress.update(s.step, f"return {values['train/return']:.2f}")

  def _evaluate(self, epsilon: float) -> Dict[str, Any]:
    """Plays an evaluation and measures the network: the metrics row."""
    s = self.state
    evaluation = self.evaluate(s.eval_index)
    s.eval_index += 1
    row = {"step": s.step, "wall_time": time.time(), **evaluation,
           "train/return": logs.mean_or_nan(s.train_returns_since_eval),
           "loss": logs.mean_or_nan(s.losses_since_eval),
           "epsilon": epsilon, "steps_per_second": self._rate}
    row.update(self._layer_stats())
    if self.measure is not None:
      row.update(self.measure(self.stepper.replay))
    s.train_returns_since_eval, s.losses_since_eval = [], []
    return row

  def _export(self) -> None:
    """``policies/step_<N>``, and ``policies/final`` at the last step."""
    step = self.state.step
    self.exporter.export(self.run_dir.policy(step))
    if step == self.config.num_steps:
      self.exporter.export(self.run_dir.policy())

  def _record(self, row: Dict[str, Any]) -> None:
    """The row to TensorBoard and ``metrics.csv``. Written before the
    checkpoint: a kill before the checkpoint completes resumes from the
    previous one, which drops this row and writes it again."""
    self.metrics.scalars(self.state.step, row)
    try:
      faults.hit("csv")
      self.metrics.csv_row(row)
    except OSError as e:
      raise OSError(e.errno, f"cannot write {logs.CSV_FILE} in {self.root} "
                    f"({e}); the run stopped, its last checkpoint is intact: "
                    "rerun to resume.") from e

  def _checkpoint(self) -> None:
    state = self.state.to_dict()
    state.update(explore_rng=self.explore_rng.bit_generator.state,
                 env_states=self.stepper.env_states())
    self.checkpointer.save(self.state.step, self.stepper.replay.save, state)

  def _restore(self) -> None:
    restored = self.checkpointer.restore_latest(self.stepper.load_replay)
    if restored is None:
      return
    step, replay, data = restored
    if "env_state" in data:  # written by a single-env loop
      data["env_states"] = [data.pop("env_state")]
    self.state = LoopState.from_dict(step, data)
    self.explore_rng.bit_generator.state = data["explore_rng"]
    self.stepper.restore(replay, data["env_states"], self.state)
    logging.info("Resumed %s from step %d.", self.root, step)


def train(config: TrainConfig) -> Dict[str, Any]:
  """Runs (or resumes) the experiment described by ``config``.

  Returns:
    The last evaluation's metrics row (as written to ``metrics.csv``), plus
    ``policy_dir``, the final exported policy, and ``root_dir``.
  """
  validate(config)
  if config.num_steps <= config.learning_starts:
    logging.warning("num_steps=%d <= learning_starts=%d: this run never updates "
                    "the network (a random-policy run).", config.num_steps,
                    config.learning_starts)
  root = os.path.abspath(config.root_dir)
  os.makedirs(root, exist_ok=True)
  with run_lock(root):
    _check_config_matches(root, config)
    _configure_threads(config.tf_threads)
    tf.keras.utils.set_random_seed(config.seed)
    return Runner(config, root).run()


def config_from_root(root_dir: str) -> TrainConfig:
  """The TrainConfig saved in ``root_dir/config.json``."""
  with open(RunDirectory(root_dir).config_path) as f:
    return TrainConfig.from_json(f.read())
