"""The direct NumPy time-step builders equal TF-Agents' own, field for field."""

import numpy as np
import pytest
from tf_agents.trajectories import time_step as ts

from sn_tf.envs import time_steps

_OBS = (np.arange(400) % 2).astype(np.uint8).reshape(10, 10, 4)


def _assert_same(got, want):
  assert type(got) is type(want)
  for field in ts.TimeStep._fields:
    g, w = getattr(got, field), getattr(want, field)
    assert type(g) is type(w), field
    assert g.dtype == w.dtype and g.shape == w.shape, field
    np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("reward", [np.float32(1.5), 0.0, -2, np.float64(3.25)])
def test_builders_equal_tf_agents(reward):
  _assert_same(time_steps.restart(_OBS), ts.restart(_OBS))
  _assert_same(time_steps.transition(_OBS, reward),
               ts.transition(_OBS, reward))
  _assert_same(time_steps.transition(_OBS, reward, discount=0.5),
               ts.transition(_OBS, reward, discount=0.5))
  _assert_same(time_steps.termination(_OBS, reward),
               ts.termination(_OBS, reward))
  _assert_same(time_steps.truncation(_OBS, reward),
               ts.truncation(_OBS, reward))
  _assert_same(time_steps.truncation(_OBS, reward, discount=np.float32(0.9)),
               ts.truncation(_OBS, reward, discount=np.float32(0.9)))


def test_is_last_matches_tf_agents():
  for step in (ts.restart(_OBS), ts.transition(_OBS, 1.0),
               ts.termination(_OBS, 1.0), ts.truncation(_OBS, 1.0)):
    assert time_steps.is_last(step) is bool(step.is_last())


@pytest.mark.parametrize("build", [time_steps.transition, time_steps.termination,
                                   time_steps.truncation])
def test_nan_or_non_scalar_reward_refused(build):
  with pytest.raises(ValueError, match="reward must be a scalar number"):
    build(_OBS, float("nan"))
  with pytest.raises(ValueError, match="reward must be a scalar number"):
    build(_OBS, np.zeros(2, np.float32))
  with pytest.raises(ValueError, match="discount must be a scalar number"):
    time_steps.transition(_OBS, 1.0, discount=float("nan"))
