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
from typing import Any, Dict, Iterator, List

from absl import logging
import numpy as np
import tensorflow as tf
import threadpoolctl

from sn_tf import faults
from sn_tf import files
from sn_tf import logs
from sn_tf import periodic
from sn_tf.agents import Learner, build_learner
from sn_tf.checkpointing import RunCheckpointer
from sn_tf.config import TrainConfig, validate
from sn_tf.export import PolicyExporter, ServingPolicy
from sn_tf.learner_driver import LearnerDriver, linear_epsilon
from sn_tf.run_dir import RunDirectory
from sn_tf.stepper import EnvStepper

# Fields that may change when a run is resumed: the budget (to extend a run),
# where the run lives (moved, or given as a relative path) and threading.
RESUMABLE_CHANGES = ("num_steps", "root_dir", "tf_threads")


def _configure_threads(n: int) -> None:
  """TensorFlow's intra- and inter-op pools and NumPy's BLAS pool at ``n``
  threads each (``n <= 0``: the libraries' defaults). The BLAS pool serves
  the Atari frame resize (two matmuls per agent step); left at one thread
  per core, each resize waits for a thread on a core another run is using."""
  if n <= 0:
    return
  threadpoolctl.threadpool_limits(limits=n, user_api="blas")
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
  """One run, as parts: the envs and replay (``EnvStepper``), acting and
  learning (``LearnerDriver``), and the periodic jobs (``sn_tf.periodic``:
  training log, evaluation, policy exports, checkpoints), each with its own
  schedule.

  ``run()`` restores the newest good checkpoint (if any) and then repeats one
  iteration until ``num_steps``: act, step the envs, learn, then the jobs that
  are due. Everything the loop carries between iterations is in
  ``self.state`` (``LoopState``), the stepper and the driver (learner and
  explore RNG), which ``_checkpoint``/``_restore`` save and load together.

  Args:
    config: a validated config.
    root: the run directory (absolute), whose lock the caller holds.
  """

  def __init__(self, config: TrainConfig, root: str):
    self.config, self.root = config, root
    self.run_dir = RunDirectory(root)
    self.stepper = EnvStepper(config)
    from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
    self.learner: Learner = build_learner(
        config, tensor_spec.from_spec(self.stepper.time_step_spec),
        tensor_spec.from_spec(self.stepper.action_spec))
    self.driver = LearnerDriver(config, self.learner, root)
    self.checkpointer = RunCheckpointer(self.run_dir.checkpoints,
                                        self.learner.checkpoint_objects())
    self.checkpoints = periodic.checkpoint_schedule(config)
    self.metrics = logs.MetricsLog(root)
    self.train_log = periodic.TrainLog(config, self.metrics)
    self.evaluation = periodic.Evaluation(
        config, self.driver.greedy, self.learner.num_actions,
        periodic.Measures.for_run(config, self.learner,
                                  self.stepper.observation_spec,
                                  self.run_dir.measure_states))
    self.exports = periodic.PolicyExports(config, self._make_exporter(),
                                          self.run_dir)
    self.state = LoopState(episode_returns=[0.0] * len(self.stepper))
    self._last_row: Dict[str, Any] = {}

  def _make_exporter(self) -> PolicyExporter:
    c, spec = self.config, self.stepper.observation_spec
    serving = ServingPolicy(self.learner.q_values,
                            self.learner.online_network.variables, spec)
    return PolicyExporter(self.learner.policy, serving,
                          self.learner.train_step_counter, dict(
        env=c.env, agent=c.agent, observation_shape=list(spec.shape),
        observation_dtype=np.dtype(spec.dtype).name,
        num_actions=self.learner.num_actions, spectral=c.spectral,
        atari_protocol=c.atari_protocol,
        sticky_action_prob=c.sticky_action_prob),
        policies_dir=self.run_dir.policies)

  # ---- The loop.

  def run(self) -> Dict[str, Any]:
    """Trains until ``num_steps`` (resuming); returns the last metrics row."""
    c = self.config
    self._restore()
    s = self.state
    # Rows newer than the restored state (or any row, when starting afresh
    # after a kill before the first checkpoint) are written again by this run.
    self.metrics.truncate_after(s.step)
    if s.step >= c.num_steps:
      logging.info("%s is already complete (%d steps).", self.root, s.step)
    progress = logs.Progress(c.num_steps, s.step)
    self.train_log.start(s.step)
    while s.step < c.num_steps:
      epsilon = linear_epsilon(s.step, c)
      previous = s.step
      self.stepper.step(self.driver.act(epsilon, self.stepper), s)
      faults.hit("step")
      self.driver.learn(previous, s, self.stepper)
      self._periodic_jobs(epsilon, progress)
    progress.close()
    self.stepper.close()
    last_row = self._last_row
    if not last_row:
      rows = logs.read_csv(self.run_dir.metrics_path)
      last_row = rows[-1] if rows else {}
    return dict(last_row, policy_dir=self.run_dir.policy(),
                root_dir=self.root)

  def _periodic_jobs(self, epsilon: float, progress: logs.Progress) -> None:
    """The jobs due after this step, in order: log; evaluate, export and
    record; checkpoint."""
    s = self.state
    if self.train_log.schedule.due(s.step):
      self.train_log(s, epsilon, self.driver.layer_stats(s.step), progress)
    if self.evaluation.schedule.due(s.step):
      row = self.evaluation(s, epsilon, self.train_log.rate,
                            self.driver.layer_stats(s.step),
                            self.stepper.replay)
      self.exports(s.step)
      self._record(row)
      self._last_row = row
      progress.update(s.step, f"eval {row['eval/return']:.2f}", force=True)
    if self.checkpoints.due(s.step):
      self._checkpoint()

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
    state.update(explore_rng=self.driver.rng_state(),
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
    self.driver.restore_rng(data["explore_rng"])
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
