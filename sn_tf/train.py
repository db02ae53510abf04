"""The C51 training loop: act, store, learn, evaluate, checkpoint, export.

``train(config)`` runs one experiment into ``config.root_dir``:

    root_dir/
      config.json        the full TrainConfig of the run
      metrics.csv        one row per evaluation (see sn_tf.logs)
      train/, eval/      TensorBoard scalars
      checkpoints/       ckpt-<step>/ (atomic; the newest two are kept)
      policies/          step_<N>/ at each evaluation and final/ (SavedModels)

Rerunning with the same ``root_dir`` resumes from the newest good checkpoint:
networks (with u, v, sigma), optimiser slots, counters, replay buffer, RNG
states and the environment's state are restored, so the run continues as if
uninterrupted. One env step is one agent step; the agent learns every
``update_period`` steps once ``learning_starts`` transitions are stored.
"""

import contextlib
import fcntl
import json
import os
import time
from typing import Any, Dict, Iterator, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from sn_tf import faults
from sn_tf import logs
from sn_tf import measures
from sn_tf.agents import c51
from sn_tf.checkpointing import RunCheckpointer
from sn_tf.config import TrainConfig, validate
from sn_tf.envs import make_env, parse_env_id
from sn_tf.evaluation import play_episodes
from sn_tf.export import PolicyExporter, ServingPolicy
from sn_tf.fast_call import FlatCall
from sn_tf.replay import FrameStackReplay, MultiStreamReplay, UniformReplay

# Fields that may change when a run is resumed: the budget (to extend a run),
# where the run lives (moved, or given as a relative path) and threading.
MEASURE_STATES_FILE = "measure_states.npy"
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
  path = os.path.join(root_dir, "config.json")
  if os.path.isfile(path):
    with open(path) as f:
      saved = json.load(f)
    now = json.loads(config.to_json())
    diff = sorted(k for k in set(saved) | set(now)
                  if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
      details = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
      raise ValueError(
          f"root_dir={root_dir!r} holds a run with a different config ({details}); "
          "use a new root_dir, or the same settings to resume.")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json())
  os.replace(tmp, path)


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
  """Plays ``eval_episodes`` episodes at ``eval_epsilon`` on a fresh env.

  Evaluation ``k`` uses an env and an RNG seeded from (seed, k), so it needs no
  state in checkpoints and is reproducible.
  """

  def __init__(self, config: TrainConfig, greedy, num_actions: int):
    self._config = config
    self._greedy = greedy
    self._num_actions = num_actions

  def __call__(self, index: int) -> List[float]:
    c = self._config
    env = make_env(c.env, seed=(c.seed * 7919 + 1_000_003 + index) % 2**32,
                   training=False,
                   atari_protocol=c.atari_protocol,
                   sticky_action_prob=c.sticky_action_prob)
    rng = np.random.default_rng([c.seed, 2, index])
    returns, _ = play_episodes(
        env, lambda ts: int(self._greedy(ts.observation[None]).numpy()[0]),
        episodes=c.eval_episodes, epsilon=c.eval_epsilon,
        num_actions=self._num_actions, rng=rng,
        max_episode_steps=c.eval_max_episode_steps)
    env.close()
    return returns


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
      self._states = np.load(path)

  def __call__(self, replay) -> Dict[str, float]:
    if self._states is None:
      states = measures.draw_states(replay, self._config.measure_states,
                                    self._config.seed)
      tmp = self._path + ".tmp.npy"
      np.save(tmp, states)
      os.replace(tmp, self._path)
      self._states = states
    values = self._compute(self._states)
    for name, value in values.items():
      if not np.isfinite(value):
        raise FloatingPointError(f"{name} is {value}; stopping. The last "
                                 "checkpoint and export are intact.")
    return values


def train(config: TrainConfig) -> Dict[str, Any]:
  """Runs (or resumes) the experiment described by ``config``.

  Returns:
    The last evaluation's metrics row (as written to ``metrics.csv``), plus
    ``policy_dir``, the final exported policy.
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
    return _train(config, root)


def _train(config: TrainConfig, root: str) -> Dict[str, Any]:
  """The body of ``train``, run while holding the root_dir lock."""
  _configure_threads(config.tf_threads)
  tf.keras.utils.set_random_seed(config.seed)

  # Env i is seeded seed + 104729 i (env 0: the run's seed).
  envs = [make_env(config.env, seed=(config.seed + 104_729 * i) % 2**32,
                   training=True, atari_protocol=config.atari_protocol,
                   sticky_action_prob=config.sticky_action_prob)
          for i in range(config.num_envs)]
  num_envs = len(envs)
  time_step_spec = envs[0].time_step_spec()
  observation_spec = time_step_spec.observation
  action_spec = envs[0].action_spec()
  num_actions = int(action_spec.maximum - action_spec.minimum + 1)

  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  agent, network = c51.build_agent(
      config, tensor_spec.from_spec(time_step_spec),
      tensor_spec.from_spec(action_spec))
  # Slots exist before a restore, so the checkpoint must match them all.
  agent._optimizer.build(network.trainable_variables)  # pylint: disable=protected-access
  # FlatCall: the loop's compiled calls without tf.function's per-call
  # Python dispatch (~0.3-1 ms a call here; see sn_tf/fast_call.py).
  greedy = FlatCall(c51.make_greedy_fn(network, observation_spec,
                                       config.min_q_value, config.max_q_value))
  # Train at the end of step t and act at the start of step t + 1 in one
  # compiled call (tests check this gives the updates of agent.train).
  train_and_act = FlatCall(c51.make_train_and_act_fn(
      agent, config.clip_rewards, config.min_q_value, config.max_q_value))
  # More than one update per iteration (num_envs > update_period): all but
  # the last are plain train steps, traced when first needed.
  train_only: List[FlatCall] = []

  # Atari stacks share frames: store each 84x84 frame once (~7 KB/transition).
  replay_cls = (FrameStackReplay if parse_env_id(config.env)[0] == "atari"
                else UniformReplay)
  if num_envs == 1:
    replay = replay_cls(config.replay_capacity, tuple(observation_spec.shape),
                        observation_spec.dtype, seed=config.seed + 1)
    load_replay = replay_cls.load
    add_transition = lambda i, *args, **kw: replay.add(*args, **kw)
    end_stream = lambda i: replay.end_episode()
  else:  # one stream per env: an Atari stack must see one env's frames
    replay = MultiStreamReplay(replay_cls, num_envs, config.replay_capacity,
                               tuple(observation_spec.shape),
                               observation_spec.dtype, seed=config.seed + 1)
    load_replay = MultiStreamReplay.load
    add_transition = lambda i, *args, **kw: replay.add(i, *args, **kw)
    end_stream = lambda i: replay.end_episode(i)
  explore_rng = np.random.default_rng([config.seed, 1])
  checkpointer = RunCheckpointer(os.path.join(root, "checkpoints"),
                                 {"agent": agent})
  metrics = logs.MetricsLog(root)
  serving = ServingPolicy(
      c51.q_values_fn(network, config.min_q_value, config.max_q_value),
      network.variables, observation_spec)
  exporter = PolicyExporter(agent.policy, serving, agent.train_step_counter, dict(
      env=config.env, observation_shape=list(observation_spec.shape),
      observation_dtype=np.dtype(observation_spec.dtype).name,
      num_actions=num_actions, spectral=config.spectral,
      atari_protocol=config.atari_protocol,
      sticky_action_prob=config.sticky_action_prob),
      policies_dir=os.path.join(root, "policies"))
  evaluate = _Evaluator(config, greedy, num_actions)

  # Loop state; everything here is in the checkpoint.
  step, eval_index = 0, 0
  time_steps = [env.reset() for env in envs]
  episode_returns, window_returns, window_losses = [0.0] * num_envs, [], []
  train_returns_since_eval: List[float] = []
  losses_since_eval: List[float] = []
  restored = checkpointer.restore_latest(load_replay)
  if restored is not None:
    step, replay, state = restored
    if "env_state" in state:  # written by a single-env loop
      state["env_states"] = [state.pop("env_state")]
      state["episode_returns"] = [state.pop("episode_return")]
    explore_rng.bit_generator.state = state["explore_rng"]
    eval_index = state["eval_index"]
    episode_returns = list(state["episode_returns"])
    window_returns = state["window_returns"]
    window_losses = state["window_losses"]
    train_returns_since_eval = state["train_returns_since_eval"]
    losses_since_eval = state["losses_since_eval"]
    for i, (env, env_state) in enumerate(zip(envs, state["env_states"])):
      if env_state is not None:
        env.set_state(env_state)  # includes the current time step
        time_steps[i] = env.current_time_step()
      else:
        logging.warning("The env state of %s was not checkpointable; the "
                        "resumed run starts a new episode.", config.env)
        time_steps[i], episode_returns[i] = env.reset(), 0.0
        end_stream(i)  # the stored episode will not continue
    logging.info("Resumed %s from step %d.", root, step)
  # Rows newer than the restored state (or any row, when starting afresh
  # after a kill before the first checkpoint) are written again by this run.
  metrics.truncate_after(step)
  if step >= config.num_steps:
    logging.info("%s is already complete (%d steps).", root, step)

  def checkpoint() -> None:
    env_states = []
    for env in envs:
      try:
        env_states.append(env.get_state())
      except NotImplementedError:
        env_states.append(None)
    checkpointer.save(step, replay.save, dict(
        explore_rng=explore_rng.bit_generator.state, eval_index=eval_index,
        episode_returns=episode_returns, window_returns=window_returns,
        window_losses=window_losses, env_states=env_states,
        train_returns_since_eval=train_returns_since_eval,
        losses_since_eval=losses_since_eval))

  progress = logs.Progress(config.num_steps, step)
  sigma_names = [f"sigma/{layer.name}" for layer in network.sn_layers]
  rho = c51.scheduler_rho(config, network)

  measure = None
  if config.measure_states:
    method = config.jacobian_method
    if method == "auto":
      method = "exact" if parse_env_id(config.env)[0] == "minatar" else "power"
    measure = _Measures(os.path.join(root, MEASURE_STATES_FILE), config,
                        measures.NetworkMeasures(
                            network, observation_spec, config.min_q_value,
                            config.max_q_value, jacobian_method=method))

  def layer_stats() -> Dict[str, float]:
    stats = {n: faults.value("sigma", float(l.sigma.numpy()))
             for n, l in zip(sigma_names, network.sn_layers)}
    if rho is not None:
      stats["rho"] = faults.value("rho", float(rho().numpy()))
    for name, value in stats.items():
      if not np.isfinite(value):
        raise FloatingPointError(
            f"{name} is {value} at step {step}; stopping. The last checkpoint "
            f"and export are intact (in {root}).")
    return stats

  last_row: Dict[str, Any] = {}
  log_start = time.time()
  log_start_step = step
  rate = float("nan")

  # The greedy actions for the envs' current observations with the current
  # weights, when the last train call computed them (None: compute when
  # needed).
  next_greedy: Optional[List[int]] = None

  while step < config.num_steps:
    # Act: epsilon-greedy with the online network in inference mode; one
    # batched greedy call for the envs that need one.
    epsilon = linear_epsilon(step, config)
    actions: List[Optional[int]] = [None] * num_envs
    for i in range(num_envs):
      if explore_rng.random() < epsilon:
        actions[i] = int(explore_rng.integers(num_actions))
      elif next_greedy is not None:
        actions[i] = next_greedy[i]
    need = [i for i in range(num_envs) if actions[i] is None]
    if need:
      greedy_actions = greedy(np.stack([time_steps[i].observation for i in need]))
      for i, a in zip(need, greedy_actions.numpy()):
        actions[i] = int(a)
    next_greedy = None
    for i, env in enumerate(envs):
      time_step = time_steps[i]
      next_step = env.step(np.int32(actions[i]))
      reward = float(next_step.reward)
      episode_end = bool(next_step.is_last())
      add_transition(i, time_step.observation, actions[i], reward,
                     next_step.observation,
                     terminal=episode_end and float(next_step.discount) == 0.0,
                     episode_end=episode_end)
      episode_returns[i] += reward
      if episode_end:
        window_returns.append(episode_returns[i])
        train_returns_since_eval.append(episode_returns[i])
        episode_returns[i] = 0.0
        time_steps[i] = env.reset()
      else:
        time_steps[i] = next_step
    previous, step = step, step + num_envs
    faults.hit("step")

    # Learn: one update per update_period env steps after learning_starts,
    # the last one fused with the next greedy actions.
    first = max(previous, config.learning_starts)
    num_updates = max(0, step // config.update_period
                      - first // config.update_period)
    for u in range(num_updates):
      batch = replay.sample(config.batch_size)
      if u == num_updates - 1:
        loss, greedy_actions = train_and_act(
            batch, np.stack([t.observation for t in time_steps]))
        next_greedy = [int(a) for a in greedy_actions.numpy()]
      else:
        if not train_only:
          train_only.append(FlatCall(c51.make_train_fn(agent, config.clip_rewards)))
        loss = train_only[0](batch)
      loss = faults.value("loss", float(loss))
      if not np.isfinite(loss):
        raise FloatingPointError(f"loss is {loss} at step {step}; stopping. "
                                 f"The last checkpoint and export are intact "
                                 f"(in {root}).")
      window_losses.append(loss)
      losses_since_eval.append(loss)

    # Log.
    if step % config.log_every == 0:
      now = time.time()
      rate = (step - log_start_step) / max(now - log_start, 1e-9)
      log_start, log_start_step = now, step
      values = {"train/return": logs.mean_or_nan(window_returns),
                "train/episodes": float(len(window_returns)),
                "loss": logs.mean_or_nan(window_losses),
                "epsilon": epsilon, "steps_per_second": rate}
      values.update(layer_stats())
      metrics.scalars(step, values)
      window_returns, window_losses = [], []
      progress.update(step, f"return {values['train/return']:.2f}")

    # Evaluate, record, export, checkpoint.
    if step % config.eval_every == 0 or step == config.num_steps:
      returns = evaluate(eval_index)
      eval_index += 1
      row = {"step": step, "wall_time": time.time(),
             "eval/return": float(np.mean(returns)),
             "eval/return_std": float(np.std(returns)),
             "eval/episodes": len(returns),
             "train/return": logs.mean_or_nan(train_returns_since_eval),
             "loss": logs.mean_or_nan(losses_since_eval),
             "epsilon": epsilon, "steps_per_second": rate}
      row.update(layer_stats())
      if measure is not None:
        row.update(measure(replay))
      train_returns_since_eval, losses_since_eval = [], []
      metrics.scalars(step, row)
      exporter.export(os.path.join(root, "policies", f"step_{step}"))
      if step == config.num_steps:
        exporter.export(os.path.join(root, "policies", "final"))
      # Row first: a kill before the checkpoint completes resumes from the
      # previous checkpoint, which drops this row and writes it again.
      try:
        faults.hit("csv")
        metrics.csv_row(row)
      except OSError as e:
        raise OSError(e.errno, f"cannot write {logs.CSV_FILE} in {root} ({e}); "
                      "the run stopped, its last checkpoint is intact: rerun "
                      "to resume.") from e
      checkpoint()
      last_row = row
      progress.update(step, f"eval {row['eval/return']:.2f}", force=True)
    elif config.checkpoint_every and step % config.checkpoint_every == 0:
      checkpoint()
  progress.close()
  for env in envs:
    env.close()

  if not last_row:
    rows = logs.read_csv(os.path.join(root, logs.CSV_FILE))
    last_row = rows[-1] if rows else {}
  return dict(last_row, policy_dir=os.path.join(root, "policies", "final"),
              root_dir=root)


def config_from_root(root_dir: str) -> TrainConfig:
  """The TrainConfig saved in ``root_dir/config.json``."""
  with open(os.path.join(root_dir, "config.json")) as f:
    return TrainConfig.from_json(f.read())

