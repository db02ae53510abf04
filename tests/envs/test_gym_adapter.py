"""GymnasiumEnv: specs, step types, discounts, auto-reset, seeding, refusals."""

from typing import List, Optional

import gymnasium as gym
import numpy as np
import pytest
from tf_agents.trajectories import time_step as ts

from sn_tf.envs import GymnasiumEnv


class FakeEnv(gym.Env):
  """Episodes of ``length`` steps that end by ``end`` (terminated/truncated).

  Observation ``[2, 3]`` uint8 filled with ``10 * episode + t``; reward
  ``action + 0.5``. Records every reset seed and every action received.
  """

  def __init__(self, length: int = 3, end: str = "terminated",
               action_space: Optional[gym.Space] = None,
               observation_space: Optional[gym.Space] = None):
    self.observation_space = observation_space or gym.spaces.Box(
        0, 200, (2, 3), np.uint8)
    self.action_space = action_space or gym.spaces.Discrete(3)
    self.length, self.end = length, end
    self.seeds: List[Optional[int]] = []
    self.actions: List[int] = []
    self.episode, self.t = -1, 0

  def _obs(self):
    return np.full((2, 3), 10 * self.episode + self.t, np.uint8)

  def reset(self, *, seed=None, options=None):
    super().reset(seed=seed)
    self.seeds.append(seed)
    self.episode, self.t = self.episode + 1, 0
    return self._obs(), {"t": 0}

  def step(self, action):
    self.actions.append(action)
    self.t += 1
    done = self.t == self.length
    return (self._obs(), action + 0.5, done and self.end == "terminated",
            done and self.end == "truncated", {"t": self.t})


def test_specs_from_spaces():
  env = GymnasiumEnv(FakeEnv(), seed=3)
  obs_spec, act_spec = env.observation_spec(), env.action_spec()
  assert obs_spec.shape == (2, 3) and obs_spec.dtype == np.uint8
  assert obs_spec.minimum == 0 and obs_spec.maximum == 200
  assert act_spec.shape == () and act_spec.dtype == np.int32
  assert (act_spec.minimum, act_spec.maximum) == (0, 2)


@pytest.mark.parametrize("end,last_discount", [("terminated", 0.0),
                                               ("truncated", 1.0)])
def test_episode_end_and_auto_reset(end, last_discount):
  fake = FakeEnv(length=3, end=end)
  env = GymnasiumEnv(fake, seed=11)
  first = env.reset()
  assert first.step_type == ts.StepType.FIRST
  assert float(first.reward) == 0.0 and float(first.discount) == 1.0
  mids = [env.step(np.int32(a)) for a in (2, 1)]
  for step in mids:
    assert step.step_type == ts.StepType.MID and float(step.discount) == 1.0
  assert [float(s.reward) for s in mids] == [2.5, 1.5]
  last = env.step(np.int32(0))
  assert last.step_type == ts.StepType.LAST
  assert float(last.discount) == last_discount and float(last.reward) == 0.5
  assert last.reward.dtype == np.float32 and last.discount.dtype == np.float32
  # The step after LAST starts the next episode and ignores its action.
  nxt = env.step(np.int32(2))
  assert nxt.step_type == ts.StepType.FIRST
  assert fake.actions == [2, 1, 0]
  assert int(nxt.observation[0, 0]) == 10
  # Only the first reset is seeded; later ones continue the RNG stream.
  assert fake.seeds == [11, None]
  assert env.get_info() == {"t": 0}


def test_step_before_reset_resets():
  fake = FakeEnv()
  env = GymnasiumEnv(fake, seed=5)
  assert env.step(np.int32(1)).step_type == ts.StepType.FIRST
  assert fake.actions == [] and fake.seeds == [5]


def test_discrete_start_is_shifted():
  fake = FakeEnv(action_space=gym.spaces.Discrete(3, start=-1))
  env = GymnasiumEnv(fake)
  env.reset()
  env.step(np.int32(0))
  env.step(np.int32(2))
  assert fake.actions == [-1, 1]
  assert env.action_spec().maximum == 2


def test_action_out_of_range_is_refused():
  env = GymnasiumEnv(FakeEnv())
  env.reset()
  with pytest.raises(ValueError, match="action"):
    env.step(np.int32(3))


@pytest.mark.parametrize("space,kind", [
    (gym.spaces.Box(0.0, 1.0, (2, 3), np.float32), "observation"),
    (gym.spaces.Discrete(4), "observation"),
])
def test_unsupported_observation_space(space, kind):
  with pytest.raises(ValueError, match=f"Box {kind} space of dtype uint8"):
    GymnasiumEnv(FakeEnv(observation_space=space))


@pytest.mark.parametrize("space", [gym.spaces.MultiDiscrete([2, 2]),
                                   gym.spaces.Box(-1.0, 1.0, (2,))])
def test_unsupported_action_space(space):
  with pytest.raises(ValueError, match="Discrete action space"):
    GymnasiumEnv(FakeEnv(action_space=space))


def test_plain_adapter_cannot_snapshot():
  env = GymnasiumEnv(FakeEnv())
  env.reset()
  with pytest.raises(NotImplementedError, match="_get_gym_state"):
    env.get_state()
