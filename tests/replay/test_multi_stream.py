"""Tests for ``sn_tf.replay.MultiStreamReplay`` (one stream per env)."""

import numpy as np
import pytest

from sn_tf.replay import FrameStackReplay, MultiStreamReplay, UniformReplay


def _fill_frame_streams(replay, steps, rng):
  """Interleaves ``num_streams`` frame-stacking envs; a frame of stream i
  has row 0 = i + 1 and row 1 = its position in the stream (mod 250) + 1, and
  every action is ``1000 * i + position``."""
  n = replay.num_streams
  stacks = [np.zeros((2, 2, 4), np.uint8) for _ in range(n)]
  position = [0] * n
  for _ in range(steps):
    for i in range(n):
      position[i] += 1
      frame = np.array([[i + 1] * 2, [position[i] % 250 + 1] * 2], np.uint8)
      nxt = np.concatenate([stacks[i][..., 1:], frame[..., None]], axis=-1)
      end = rng.random() < 0.05
      replay.add(i, stacks[i], 1000 * i + position[i], 0.0, nxt,
                 terminal=end, episode_end=end)
      stacks[i] = np.zeros((2, 2, 4), np.uint8) if end else nxt


def test_frame_stacks_never_mix_streams():
  rng = np.random.default_rng(0)
  replay = MultiStreamReplay(FrameStackReplay, 3, 3 * 64, (2, 2, 4), np.uint8,
                             seed=0)
  _fill_frame_streams(replay, 200, rng)
  batch = replay.sample(512)
  assert set(batch["action"] // 1000) == {0, 1, 2}
  assert np.count_nonzero(batch["next_obs"][:, 0, 0, :]) > 512  # not trivial
  for obs, nxt, action in zip(batch["obs"], batch["next_obs"], batch["action"]):
    stream = int(action) // 1000
    for stack in (obs, nxt):
      kept = [k for k in range(4) if stack[0, 0, k]]
      # Nonzero frames come from the action's own stream, consecutively.
      assert {int(stack[0, 0, k]) for k in kept} <= {stream + 1}
      positions = [int(stack[1, 0, k]) for k in kept]
      assert all((b - a) % 250 == 1 for a, b in zip(positions, positions[1:]))
      assert kept == list(range(4 - len(kept), 4))  # zeros only on the left


def test_sampling_is_uniform_over_the_union():
  # Stream 0 holds 3x as many transitions as stream 1: it must get ~3/4 of
  # the draws.
  replay = MultiStreamReplay(UniformReplay, 2, 2 * 400, (1,), np.float32, seed=1)
  for t in range(300):
    replay.add(0, [t], 0, 0.0, [t + 1], terminal=False, episode_end=False)
  for t in range(100):
    replay.add(1, [t], 1, 0.0, [t + 1], terminal=False, episode_end=False)
  assert len(replay) == 400
  actions = np.concatenate([replay.sample(64)["action"] for _ in range(200)])
  share = np.mean(actions == 0)
  assert abs(share - 300 / 400) < 0.02


def test_save_load_continues_the_same_samples(tmp_path):
  rng = np.random.default_rng(2)
  replay = MultiStreamReplay(FrameStackReplay, 2, 2 * 64, (2, 2, 4), np.uint8,
                             seed=3)
  _fill_frame_streams(replay, 90, rng)
  path = str(tmp_path / "replay.npz")
  replay.save(path)
  restored = MultiStreamReplay.load(path)
  assert restored.num_streams == 2 and len(restored) == len(replay)
  for _ in range(3):
    a, b = replay.sample(16), restored.sample(16)
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="num_streams"):
    MultiStreamReplay(UniformReplay, 0, 100, (1,), np.float32, seed=0)
  with pytest.raises(ValueError, match="capacity"):
    MultiStreamReplay(UniformReplay, 4, 6, (1,), np.float32, seed=0)
  with pytest.raises(ValueError, match="stream_cls"):
    MultiStreamReplay(dict, 2, 100, (1,), np.float32, seed=0)
  with pytest.raises(ValueError, match="no valid"):
    MultiStreamReplay(UniformReplay, 2, 100, (1,), np.float32, seed=0).sample(4)
  with pytest.raises(ValueError, match="streams.json is missing"):
    MultiStreamReplay.load(str(tmp_path / "replay.npz"))
