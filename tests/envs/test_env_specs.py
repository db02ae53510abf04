"""Specs and observations of every env make_env builds."""

import numpy as np
import pytest
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from sn_tf.envs import AtariEnv
from sn_tf.envs import make_env
from sn_tf.envs import MinAtarEnv

MINATAR_CHANNELS = {"asterix": 4, "breakout": 4, "freeway": 7, "seaquest": 10,
                    "space_invaders": 6}


def check_time_step(env, step):
  assert step.observation.dtype == np.uint8
  assert env.observation_spec().check_array(step.observation)
  assert step.reward.dtype == np.float32 and step.reward.shape == ()
  assert step.discount.dtype == np.float32 and step.discount.shape == ()
  assert array_spec.check_arrays_nest(step, env.time_step_spec())


@pytest.mark.parametrize("game,channels", sorted(MINATAR_CHANNELS.items()))
def test_minatar_specs(game, channels, actions):
  env = make_env(f"minatar:{game}", seed=1, training=True)
  obs_spec = env.observation_spec()
  assert isinstance(obs_spec, array_spec.BoundedArraySpec)
  assert obs_spec.shape == (10, 10, channels) and obs_spec.dtype == np.uint8
  assert obs_spec.minimum == 0 and obs_spec.maximum == 1
  act_spec = env.action_spec()
  assert isinstance(act_spec, array_spec.BoundedArraySpec)
  assert act_spec.shape == () and act_spec.dtype == np.int32
  assert (act_spec.minimum, act_spec.maximum) == (0, 5)
  step = env.reset()
  check_time_step(env, step)
  seen_ones = step.observation.any()
  for action in actions(6, 200):
    step = env.step(np.int32(action))
    check_time_step(env, step)
    assert set(np.unique(step.observation)) <= {0, 1}
    seen_ones |= step.observation.any()
  assert seen_ones


def test_minatar_minimal_action_set(actions, drive):
  minimal = MinAtarEnv("breakout", seed=4, minimal_action_set=True)
  full = MinAtarEnv("breakout", seed=4)
  assert minimal.actions == (0, 1, 3)
  assert minimal.action_spec().maximum == 2
  indices = actions(3, 300)
  minimal.reset()
  full.reset()
  assert drive(minimal, indices) == drive(full, [(0, 1, 3)[i] for i in indices])


@pytest.mark.parametrize("protocol", ["paper", "dopamine"])
def test_atari_specs_and_stacking(protocol, actions):
  env = make_env("atari:Pong", seed=2, training=True, atari_protocol=protocol)
  obs_spec = env.observation_spec()
  assert isinstance(obs_spec, array_spec.BoundedArraySpec)
  assert obs_spec.shape == (84, 84, 4) and obs_spec.dtype == np.uint8
  assert obs_spec.minimum == 0 and obs_spec.maximum == 255
  act_spec = env.action_spec()
  assert act_spec.shape == () and act_spec.dtype == np.int32
  assert (act_spec.minimum, act_spec.maximum) == (0, 5)  # Pong: 6 actions.
  first = env.reset()
  assert first.step_type == ts.StepType.FIRST
  check_time_step(env, first)
  # Zero padding, newest frame last on the channel axis.
  assert not first.observation[..., :3].any()
  assert first.observation[..., 3].any()
  previous = first
  for action in actions(6, 60):
    step = env.step(np.int32(action))
    check_time_step(env, step)
    # The stack shifts by one frame towards channel 0 every step.
    np.testing.assert_array_equal(step.observation[..., :3],
                                  previous.observation[..., 1:])
    previous = step


def test_atari_truncation_at_frame_cap(actions):
  env = AtariEnv("Pong", seed=0, training=True, max_frames_per_episode=200)
  env.reset()
  start = env.get_info()["episode_frame_number"]
  assert 1 <= start <= 30  # no-op frames
  steps = []
  for action in actions(6, 60):
    steps.append(env.step(np.int32(action)))
    if steps[-1].is_last():
      break
  last = steps[-1]
  assert last.step_type == ts.StepType.LAST
  assert float(last.discount) == 1.0
  assert len(steps) == -(-(200 - start) // 4)
  assert env.get_info()["game_over"] and env.get_info()["episode_frame_number"]
  assert env.step(np.int32(0)).step_type == ts.StepType.FIRST
  assert env.get_info()["episode_frame_number"] <= 30
