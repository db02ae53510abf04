"""AtariFramePreprocessing: no-op starts and the order of pooling and
down-sampling, against frames recorded from ALE."""

import gymnasium as gym
import numpy as np
import pytest

from sn_tf.envs import atari  # noqa: F401  (registers the ALE envs)
from sn_tf.envs.atari_preprocessing import (AtariFramePreprocessing,
                                            area_resize_weights)


class Recorder(gym.Wrapper):
  """Keeps every frame the ALE env returns."""

  def __init__(self, env):
    super().__init__(env)
    self.frames = []

  def step(self, action):
    out = self.env.step(action)
    self.frames.append(out[0])
    return out


def _ale(game="Breakout"):
  return gym.make(f"ALE/{game}-v5", obs_type="grayscale", frameskip=1,
                  repeat_action_probability=0.0, disable_env_checker=True)


def _resize(frame):
  h = area_resize_weights(210, 84)
  w = area_resize_weights(160, 84).T
  return np.clip(np.rint(h @ frame.astype(np.float32) @ w), 0, 255).astype(np.uint8)


def test_noop_starts_draw_every_count_in_the_range():
  env = AtariFramePreprocessing(_ale(), noop_range=(0, 29))
  counts = set()
  for seed in range(300):
    env.reset(seed=seed)
    counts.add(env.ale.getEpisodeFrameNumber())
  assert counts == set(range(30))


@pytest.mark.parametrize("pool_after_resize", [True, False])
def test_pooling_order(pool_after_resize):
  recorder = Recorder(_ale())
  env = AtariFramePreprocessing(recorder, pool_after_resize=pool_after_resize)
  env.reset(seed=0)
  differs = False
  for action in [1] + [3, 2] * 40:
    obs, *_ = env.step(action)
    prev, last = recorder.frames[-2], recorder.frames[-1]
    if pool_after_resize:
      want = np.maximum(_resize(prev), _resize(last))
    else:
      want = _resize(np.maximum(prev, last))
    np.testing.assert_array_equal(obs, want)
    other = (_resize(np.maximum(prev, last)) if pool_after_resize
             else np.maximum(_resize(prev), _resize(last)))
    differs |= bool((other != want).any())
  assert differs  # the two orders give different frames on this game


def test_bad_noop_range_is_refused():
  with pytest.raises(ValueError, match=r"noop_range must be two integers"):
    AtariFramePreprocessing(_ale(), noop_range=(5, 2))
