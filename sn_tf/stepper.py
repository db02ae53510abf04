"""The training envs and their replay, stepped together (one part of the
runner, ``sn_tf.train``).

``EnvStepper`` owns the ``num_envs`` training envs (env ``i`` seeded
``seed + 104729 i``), their current time steps and the replay, with one
replay stream per env when there are several (an Atari frame stack must see
one env's frames). ``step`` takes one action per env, stores each
transition, and tallies finished episodes into the loop's ``LoopState``;
``env_states``/``restore`` are its part of a checkpoint.
"""

from typing import Any, List, Optional, Sequence

from absl import logging
import numpy as np

from sn_tf.checks import check
from sn_tf.config import TrainConfig
from sn_tf.envs import make_env, parse_env_id
from sn_tf.envs.time_steps import is_last
from sn_tf.replay import FrameStackReplay, MultiStreamReplay, UniformReplay


class EnvStepper:
  """The training envs, their current time steps and the replay.

  Args:
    config: the run's config.
  """

  def __init__(self, config: TrainConfig):
    self.config = config
    self.envs = [make_env(config.env, seed=(config.seed + 104_729 * i) % 2**32,
                          training=True, atari_protocol=config.atari_protocol,
                          sticky_action_prob=config.sticky_action_prob)
                 for i in range(config.num_envs)]
    self.time_step_spec = self.envs[0].time_step_spec()
    self.action_spec = self.envs[0].action_spec()
    self.observation_spec = self.time_step_spec.observation
    self._single = config.num_envs == 1
    self.replay, self._load_replay = self._make_replay()
    self.time_steps = [env.reset() for env in self.envs]

  def _make_replay(self):
    c, spec = self.config, self.observation_spec
    # Atari stacks share frames: store each 84x84 frame once (~7 KB/transition).
    replay_cls = (FrameStackReplay if parse_env_id(c.env)[0] == "atari"
                  else UniformReplay)
    if self._single:
      return (replay_cls(c.replay_capacity, tuple(spec.shape), spec.dtype,
                         seed=c.seed + 1), replay_cls.load)
    return (MultiStreamReplay(replay_cls, c.num_envs, c.replay_capacity,
                              tuple(spec.shape), spec.dtype, seed=c.seed + 1),
            MultiStreamReplay.load)

  @property
  def load_replay(self):
    """The replay class's ``load`` (for ``RunCheckpointer.restore_latest``)."""
    return self._load_replay

  def __len__(self) -> int:
    return len(self.envs)

  def observation(self, env: int) -> np.ndarray:
    """``[*obs]``: the current observation of env ``env``."""
    return self.time_steps[env].observation

  def observations(self, envs: Optional[Sequence[int]] = None) -> np.ndarray:
    """``[n, *obs]``: the current observations of ``envs`` (default all);
    for one env, a view of its observation (read it, do not write it)."""
    if self._single and envs is None:
      return self.time_steps[0].observation[None]
    idx = range(len(self.envs)) if envs is None else envs
    return np.stack([self.time_steps[i].observation for i in idx])

  def step(self, actions: List[int], state) -> None:
    """Steps each env, stores its transition, tallies finished episodes
    into ``state`` (a ``LoopState``) and advances its step count."""
    add = self.replay.add
    for i, env in enumerate(self.envs):
      time_step = self.time_steps[i]
      next_step = env.step(np.int32(actions[i]))
      reward = float(next_step.reward)
      episode_end = is_last(next_step)
      terminal = episode_end and float(next_step.discount) == 0.0
      stream = () if self._single else (i,)
      add(*stream, time_step.observation, actions[i], reward,
          next_step.observation, terminal, episode_end)
      state.episode_returns[i] += reward
      if episode_end:
        state.window_returns.append(state.episode_returns[i])
        state.train_returns_since_eval.append(state.episode_returns[i])
        state.episode_returns[i] = 0.0
        self.time_steps[i] = env.reset()
      else:
        self.time_steps[i] = next_step
    state.step += len(self.envs)

  def _stream_call(self, method: str, i: int, *args, **kwargs):
    """``replay.<method>`` for env ``i``'s stream (the one stream of a
    single-env run takes no stream index)."""
    fn = getattr(self.replay, method)
    return fn(*args, **kwargs) if self._single else fn(i, *args, **kwargs)

  def env_states(self) -> List[Any]:
    """Each env's snapshot (None for an env that cannot snapshot)."""
    states = []
    for env in self.envs:
      try:
        states.append(env.get_state())
      except NotImplementedError:
        states.append(None)
    return states

  def restore(self, replay, env_states: List[Any], state) -> None:
    """Takes a restored ``replay`` and the envs' snapshots; an env without
    one starts a new episode (its return so far in ``state`` dropped and its
    replay stream ended, since the stored episode will not continue)."""
    self.replay = replay
    for i, (env, env_state) in enumerate(zip(self.envs, env_states)):
      if env_state is not None:
        env.set_state(env_state)  # includes the current time step
        self.time_steps[i] = env.current_time_step()
      else:
        logging.warning("The env state of %s was not checkpointable; the "
                        "resumed run starts a new episode.", self.config.env)
        self.time_steps[i] = env.reset()
        state.episode_returns[i] = 0.0
        self._stream_call("end_episode", i)

  def close(self) -> None:
    for env in self.envs:
      env.close()


def check_config(config: TrainConfig) -> None:
  """The loop advances ``num_envs`` steps at a time, and each env has its
  own replay stream of ``replay_capacity / num_envs`` slots."""
  c = config
  if c.num_envs > 1:
    for name in ("num_steps", "eval_every", "log_every", "checkpoint_every"):
      check(getattr(c, name) % c.num_envs == 0, name, getattr(c, name),
            f"a multiple of num_envs={c.num_envs} (the loop advances "
            f"num_envs steps at a time)")
    check(c.replay_capacity >= 2 * c.batch_size * c.num_envs, "replay_capacity",
          c.replay_capacity, f"at least 2 * batch_size * num_envs = "
          f"{2 * c.batch_size * c.num_envs} (one stream per env)")
  check(c.replay_capacity >= 2 * c.batch_size, "replay_capacity",
        c.replay_capacity, f"at least 2 * batch_size = {2 * c.batch_size}")
