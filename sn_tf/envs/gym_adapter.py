"""``GymnasiumEnv``: a TF-Agents ``PyEnvironment`` around a gymnasium env.

TF-Agents 0.19 only wraps the old ``gym`` API (its gymnasium wrapper exists on
its unreleased master branch), so this module carries a small adapter for the
one kind of env sn_tf needs: ``Box`` uint8 observations, ``Discrete`` actions.

Time steps follow TF-Agents' conventions:

* ``reset()`` -> ``FIRST`` (reward 0, discount 1);
* gymnasium ``terminated`` -> ``LAST`` with discount 0 (a true terminal);
* gymnasium ``truncated`` (time limit) -> ``LAST`` with discount 1, so a
  bootstrapping learner keeps the value of the cut-off state;
* otherwise ``MID`` with discount 1;
* the ``step`` after a ``LAST`` ignores its action and returns the ``FIRST``
  of the next episode (TF-Agents' auto-reset convention).

Rewards and discounts are ``float32`` scalars.
"""

import copy
from typing import Any, Dict, Optional

import gymnasium as gym
import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from sn_tf.envs import _checks
from sn_tf.envs import snapshots
from sn_tf.envs import time_steps


def _observation_spec(space: gym.Space) -> array_spec.BoundedArraySpec:
  """Returns the spec of a ``Box`` uint8 space; ValueError for anything else."""
  if not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8:
    raise ValueError("GymnasiumEnv needs a Box observation space of dtype "
                     f"uint8, got {space}")
  low, high = space.low, space.high
  # Scalar bounds when they are uniform, as TF-Agents' own specs usually are.
  minimum = low.flat[0] if np.all(low == low.flat[0]) else low
  maximum = high.flat[0] if np.all(high == high.flat[0]) else high
  return array_spec.BoundedArraySpec(space.shape, np.uint8, minimum=minimum,
                                     maximum=maximum, name="observation")


def _action_spec(space: gym.Space) -> array_spec.BoundedArraySpec:
  """Returns a scalar int32 spec in [0, n - 1] for a ``Discrete(n)`` space."""
  if not isinstance(space, gym.spaces.Discrete):
    raise ValueError("GymnasiumEnv needs a Discrete action space, got "
                     f"{space}")
  return array_spec.BoundedArraySpec((), np.int32, minimum=0,
                                     maximum=int(space.n) - 1, name="action")


class GymnasiumEnv(py_environment.PyEnvironment):
  """Adapts a gymnasium env (Box uint8 obs, Discrete actions) to TF-Agents.

  Shapes: observations ``obs_shape`` (the Box's shape) uint8; actions scalar
  int32 in ``[0, n - 1]`` (shifted by the space's ``start`` before reaching
  gymnasium); rewards and discounts scalar float32.

  Seeding: the first reset calls ``env.reset(seed=seed)``; later resets are
  unseeded, so the env's RNG stream simply continues (gymnasium's convention).

  ``get_state``/``set_state`` save the adapter's own state (current time
  step, pending seed, last info) and delegate the wrapped env's state to
  ``_get_gym_state``/``_set_gym_state``, which subclasses that know their
  gymnasium env override; the base versions raise ``NotImplementedError``.

  Args:
    env: the gymnasium env; this adapter owns it and closes it in ``close``.
    seed: seed of the first reset, or None for an unseeded env.
  """

  def __init__(self, env: gym.Env, *, seed: Optional[int] = None):
    super().__init__(handle_auto_reset=False)
    if seed is not None:
      seed = _checks.check_seed(seed)
    self._observation_spec = _observation_spec(env.observation_space)
    self._action_spec = _action_spec(env.action_space)
    self._action_start = int(env.action_space.start)
    self._env = env
    self._pending_seed = seed
    self._last_info: Dict[str, Any] = {}

  @property
  def gym_env(self) -> gym.Env:
    """The wrapped gymnasium env."""
    return self._env

  def observation_spec(self) -> array_spec.BoundedArraySpec:
    return self._observation_spec

  def action_spec(self) -> array_spec.BoundedArraySpec:
    return self._action_spec

  def get_info(self) -> Dict[str, Any]:
    """The info dict of the latest ``reset`` or ``step`` (empty before)."""
    return self._last_info

  def _observation(self, obs: Any) -> np.ndarray:
    obs = np.asarray(obs)
    if obs.dtype != np.uint8 or obs.shape != self._observation_spec.shape:
      raise ValueError(
          f"observation of shape {obs.shape} and dtype {obs.dtype} does not "
          f"match the spec {self._observation_spec}")
    return obs

  def _reset(self) -> ts.TimeStep:
    obs, info = self._env.reset(seed=self._pending_seed)
    self._pending_seed = None
    self._last_info = info
    return time_steps.restart(self._observation(obs))

  def _step(self, action: Any) -> ts.TimeStep:
    if time_steps.is_last(self._current_time_step):
      return self._reset()
    action = np.asarray(action)
    if action.shape != () or not 0 <= int(action) <= self._action_spec.maximum:
      raise ValueError(f"action must be a scalar in [0, "
                       f"{self._action_spec.maximum}], got {action!r}")
    obs, reward, terminated, truncated, info = self._env.step(
        int(action) + self._action_start)
    self._last_info = info
    obs = self._observation(obs)
    reward = np.float32(reward)
    if terminated:
      return time_steps.termination(obs, reward)
    if truncated:
      return time_steps.truncation(obs, reward)
    return time_steps.transition(obs, reward)

  def get_state(self) -> Dict[str, Any]:
    """A snapshot of the adapter and the wrapped env as plain data
    (``envs.snapshots``; ``_get_gym_state`` must return data too).

    Raises:
      NotImplementedError: if ``_get_gym_state`` is not overridden.
    """
    gym_state = self._get_gym_state()
    return copy.deepcopy({
        "time_step": snapshots.time_step_to_data(self._current_time_step),
        "pending_seed": self._pending_seed,
        "last_info": self._last_info,
        "gym": gym_state,
    })

  def set_state(self, state: Dict[str, Any]) -> None:
    """Restores a snapshot taken by ``get_state`` (on an env of same args)."""
    state = copy.deepcopy(state)
    self._set_gym_state(state["gym"])
    self._current_time_step = snapshots.time_step_from_data(state["time_step"])
    self._pending_seed = state["pending_seed"]
    self._last_info = state["last_info"]

  def _get_gym_state(self) -> Any:
    raise NotImplementedError(
        f"{type(self).__name__} cannot snapshot an arbitrary gymnasium env "
        f"({self._env}); subclass GymnasiumEnv and override _get_gym_state "
        "and _set_gym_state for envs whose complete state is known")

  def _set_gym_state(self, state: Any) -> None:
    raise NotImplementedError(
        f"{type(self).__name__} cannot restore an arbitrary gymnasium env; "
        "override _set_gym_state")

  def close(self) -> None:
    self._env.close()
