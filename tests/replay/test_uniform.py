"""Tests for ``sn_tf.replay.UniformReplay`` against a brute-force reference.

Every stored observation carries a unique id (its position in the stream of
observations the buffer writes) and its episode number, so a sampled
transition can be matched exactly against the reference. The reference keeps
all transitions ever added; one is valid iff both its observations are among
the last ``capacity`` observations written (``capacity`` counts slots).
"""

import copy
import os
from typing import Dict, List, Set, Tuple

import numpy as np
import pytest

from sn_tf.replay import UniformReplay
from sn_tf.replay import uniform as uniform_module

OBS_SHAPE = (2, 3)  # row 0 = observation id, row 1 = episode number

# (obs id, episode, action, reward, discount, next obs id, next episode)
Record = Tuple[int, int, int, float, float, int, int]


def _obs(obs_id: int, episode: int) -> np.ndarray:
  obs = np.empty(OBS_SHAPE, np.int32)
  obs[0] = obs_id
  obs[1] = episode
  return obs


class Reference:
  """Brute-force model of the buffer; also drives random episodes into it."""

  def __init__(self, replay: UniformReplay, rng: np.random.Generator):
    self.replay = replay
    self.rng = rng
    self.num_obs = 0      # observations written so far (= next fresh id)
    self.episode = 0
    self.current = None   # id of s_t within an episode, None at its start
    self.records: List[Record] = []
    self.truncations: Set[Record] = set()  # episode_end without terminal
    self.steps_left = 0

  def fork(self, replay: UniformReplay,
           rng: np.random.Generator) -> "Reference":
    """A copy of this reference that drives another buffer."""
    other = copy.copy(self)
    other.replay, other.rng = replay, rng
    other.records, other.truncations = list(self.records), set(self.truncations)
    return other

  def step(self, terminal_prob: float = 0.5) -> None:
    """Adds one transition; episodes last 1..7 steps, then end by a terminal
    or a time-limit truncation."""
    if self.current is None:
      self.current = self.num_obs
      self.num_obs += 1
      self.steps_left = int(self.rng.integers(1, 8))
    obs_id, next_id = self.current, self.num_obs
    self.num_obs += 1
    self.steps_left -= 1
    episode_end = self.steps_left == 0
    terminal = episode_end and bool(self.rng.random() < terminal_prob)
    action = int(self.rng.integers(0, 18))
    reward = float(self.rng.integers(-800, 800)) / 8.0  # exact in float32
    self.replay.add(_obs(obs_id, self.episode), action, reward,
                    _obs(next_id, self.episode), terminal, episode_end)
    record = (obs_id, self.episode, action, reward, 0.0 if terminal else 1.0,
              next_id, self.episode)
    self.records.append(record)
    if episode_end and not terminal:
      self.truncations.add(record)
    if episode_end:
      self.current = None
      self.episode += 1
    else:
      self.current = next_id

  def abandon(self) -> None:
    """Resets the environment mid-episode (``end_episode``)."""
    self.replay.end_episode()
    if self.current is not None:
      self.current = None
      self.episode += 1

  def valid(self) -> Set[Record]:
    oldest = self.num_obs - self.replay.capacity
    return {r for r in self.records if r[0] >= oldest}


def _records(batch: Dict[str, np.ndarray]) -> List[Record]:
  """Decodes a batch into records, checking every observation entry."""
  obs, next_obs = batch["obs"], batch["next_obs"]
  ids, episodes = obs[:, 0, 0], obs[:, 1, 0]
  next_ids, next_episodes = next_obs[:, 0, 0], next_obs[:, 1, 0]
  np.testing.assert_array_equal(obs[:, 0], np.repeat(ids[:, None], 3, 1))
  np.testing.assert_array_equal(obs[:, 1], np.repeat(episodes[:, None], 3, 1))
  np.testing.assert_array_equal(next_obs[:, 0],
                                np.repeat(next_ids[:, None], 3, 1))
  np.testing.assert_array_equal(next_obs[:, 1],
                                np.repeat(next_episodes[:, None], 3, 1))
  return list(zip(ids.tolist(), episodes.tolist(), batch["action"].tolist(),
                  batch["reward"].tolist(), batch["discount"].tolist(),
                  next_ids.tolist(), next_episodes.tolist()))


def _check_batch_format(batch: Dict[str, np.ndarray], batch_size: int,
                        obs_shape, obs_dtype) -> None:
  assert set(batch) == {"obs", "action", "reward", "discount", "next_obs"}
  for key in ("obs", "next_obs"):
    assert batch[key].shape == (batch_size,) + tuple(obs_shape)
    assert batch[key].dtype == obs_dtype
  for key, dtype in (("action", np.int32), ("reward", np.float32),
                     ("discount", np.float32)):
    assert batch[key].shape == (batch_size,)
    assert batch[key].dtype == dtype


# --------------------------------------------------------------- correctness


@pytest.mark.parametrize("capacity", [2, 3, 5, 16, 37])
def test_samples_match_brute_force_reference(capacity):
  replay = UniformReplay(capacity, OBS_SHAPE, np.int32, seed=capacity)
  ref = Reference(replay, np.random.default_rng(capacity))
  num_adds = 12 * capacity + 60  # wraps around many times
  saw_terminal = saw_truncation = False
  rng = np.random.default_rng(100 + capacity)
  for _ in range(num_adds):
    if rng.random() < 0.05:
      ref.abandon()  # sometimes mid-episode, sometimes a no-op
      assert not replay.in_episode
    ref.step()
    assert replay.in_episode == (ref.current is not None)
    valid = ref.valid()
    assert len(replay) == len(valid)
    batch = replay.sample(64)
    _check_batch_format(batch, 64, OBS_SHAPE, np.int32)
    for record in _records(batch):
      assert record in valid
      saw_terminal |= record[4] == 0.0
      saw_truncation |= record in ref.truncations
  assert ref.num_obs > 3 * capacity
  assert saw_terminal and saw_truncation


def test_no_sample_mixes_episodes_or_uses_overwritten_slots():
  capacity = 11
  replay = UniformReplay(capacity, OBS_SHAPE, np.int32, seed=3)
  ref = Reference(replay, np.random.default_rng(3))
  for _ in range(400):
    ref.step(terminal_prob=0.3)
    records = _records(replay.sample(10 * capacity))
    ids = np.array([r[0] for r in records])
    episodes = np.array([r[1] for r in records])
    next_ids = np.array([r[5] for r in records])
    next_episodes = np.array([r[6] for r in records])
    np.testing.assert_array_equal(episodes, next_episodes)
    np.testing.assert_array_equal(next_ids, ids + 1)
    # Both observations among the last `capacity` written: the transition
    # whose first slot the cursor just overwrote never comes back.
    assert ids.min() >= ref.num_obs - capacity
    # 10 * capacity draws over < capacity transitions: all of them show up.
    assert set(records) == ref.valid()


def test_hand_worked_sequence():
  """Capacity 4, scalar ids; expected contents worked out by hand."""
  replay = UniformReplay(4, (1,), np.int32, seed=0)

  def contents():
    batch = replay.sample(400)
    return set(zip(batch["obs"][:, 0].tolist(),
                   batch["next_obs"][:, 0].tolist(),
                   batch["discount"].tolist()))

  with pytest.raises(ValueError, match="no valid transition"):
    replay.sample(1)
  replay.add([0], 0, 0.0, [1], terminal=False, episode_end=False)
  assert len(replay) == 1 and contents() == {(0, 1, 1.0)}
  replay.add([1], 0, 0.0, [2], terminal=False, episode_end=False)
  assert len(replay) == 2 and contents() == {(0, 1, 1.0), (1, 2, 1.0)}
  replay.add([2], 0, 0.0, [3], terminal=True, episode_end=True)
  assert len(replay) == 3
  assert contents() == {(0, 1, 1.0), (1, 2, 1.0), (2, 3, 0.0)}
  # New episode: 4 and 5 overwrite the slots of 0 and 1.
  replay.add([4], 0, 0.0, [5], terminal=False, episode_end=False)
  assert len(replay) == 2 and contents() == {(2, 3, 0.0), (4, 5, 1.0)}
  # Truncation: 6 overwrites 2; discount stays 1.
  replay.add([5], 0, 0.0, [6], terminal=False, episode_end=True)
  assert len(replay) == 2 and contents() == {(4, 5, 1.0), (5, 6, 1.0)}
  # 7 and 8 overwrite 3 and 4: (4, 5) is gone, 5 -> 6 survives.
  replay.add([7], 0, 0.0, [8], terminal=True, episode_end=True)
  assert len(replay) == 2 and contents() == {(5, 6, 1.0), (7, 8, 0.0)}


def test_capacity_two_holds_one_transition():
  replay = UniformReplay(2, (1,), np.int32)
  for t in range(5):
    replay.add([t], t, float(t), [t + 1], terminal=False, episode_end=False)
    assert len(replay) == 1
    batch = replay.sample(8)
    np.testing.assert_array_equal(batch["obs"][:, 0], t)
    np.testing.assert_array_equal(batch["next_obs"][:, 0], t + 1)
    np.testing.assert_array_equal(batch["action"], t)


# ---------------------------------------------------------------- uniformity


def _chi_square_check(replay, ref, num_batches, batch_size):
  valid = sorted(ref.valid())
  index = {record: k for k, record in enumerate(valid)}
  counts = np.zeros(len(valid))
  for _ in range(num_batches):
    for record in _records(replay.sample(batch_size)):
      counts[index[record]] += 1  # KeyError if invalid
  expected = num_batches * batch_size / len(valid)
  chi2 = float(np.sum((counts - expected) ** 2 / expected))
  dof = len(valid) - 1
  assert counts.min() > 0
  # Loose (about 8 standard deviations) but fails for any real bias, e.g.
  # one transition drawn twice as often as the others.
  assert chi2 < dof + 8 * np.sqrt(2 * dof), (chi2, dof)


@pytest.mark.parametrize("capacity,num_adds", [(64, 300), (10_000, 40)])
def test_sampling_is_uniform(capacity, num_adds):
  replay = UniformReplay(capacity, OBS_SHAPE, np.int32, seed=7)
  ref = Reference(replay, np.random.default_rng(7))
  for _ in range(num_adds):
    ref.step()
  assert 20 < len(replay) < capacity
  _chi_square_check(replay, ref, num_batches=100, batch_size=1000)


def test_sampling_is_uniform_after_rejection_fallback(monkeypatch):
  monkeypatch.setattr(uniform_module, "_MAX_REJECTION_ROUNDS", 0)
  replay = UniformReplay(64, OBS_SHAPE, np.int32, seed=8)
  ref = Reference(replay, np.random.default_rng(8))
  for _ in range(300):
    ref.step()
  _chi_square_check(replay, ref, num_batches=100, batch_size=1000)


# ------------------------------------------------------------ save and load


def _filled(capacity=23, num_adds=100, seed=5, check_contiguity=False):
  replay = UniformReplay(capacity, OBS_SHAPE, np.int32, seed=seed,
                         check_contiguity=check_contiguity)
  ref = Reference(replay, np.random.default_rng(seed))
  for _ in range(num_adds):
    ref.step()
  for _ in range(3):
    replay.sample(32)  # advance the RNG
  return replay, ref


@pytest.mark.parametrize("mid_episode", [False, True])
def test_save_load_round_trip(tmp_path, file_contents,
                              assert_same_batches, mid_episode):
  replay, ref = _filled(check_contiguity=True)
  while (ref.current is not None) != mid_episode:
    ref.step()
  path = tmp_path / "replay.npz"
  replay.save(str(path))
  assert os.listdir(tmp_path) == ["replay.npz"]  # no temp file left over
  loaded = UniformReplay.load(str(path))

  assert len(loaded) == len(replay)
  assert loaded.capacity == replay.capacity
  assert loaded.obs_shape == replay.obs_shape
  assert loaded.obs_dtype == replay.obs_dtype
  assert loaded.nbytes == replay.nbytes
  assert loaded.num_adds == replay.num_adds
  # Identical state: saving the loaded buffer gives the same contents.
  loaded.save(str(tmp_path / "again.npz"))
  original, again = (file_contents(path),
                     file_contents(tmp_path / "again.npz"))
  assert original.keys() == again.keys()
  for key in original:
    np.testing.assert_array_equal(original[key], again[key])

  assert_same_batches(replay, loaded)
  # Both continue identically under the same adds (the contiguity check
  # passes on the loaded buffer too, so the episode state was restored).
  ref_loaded = ref.fork(loaded, np.random.default_rng(99))
  ref.rng = np.random.default_rng(99)
  for _ in range(40):
    ref.step()
    ref_loaded.step()
  assert_same_batches(replay, loaded)
  assert set(_records(loaded.sample(2000))) == ref_loaded.valid()


def test_load_rejects_foreign_file(tmp_path):
  path = tmp_path / "other.npz"
  np.savez(str(path), x=np.zeros(3))
  with pytest.raises(ValueError, match="not a UniformReplay"):
    UniformReplay.load(str(path))


# ------------------------------------------------------------- layout, memory


def test_atari_layout_and_nbytes():
  obs_shape = (84, 84, 4)
  replay = UniformReplay(50, obs_shape)
  assert replay.capacity == 50
  assert replay.nbytes == 50 * (84 * 84 * 4 + 4 + 4 + 1 + 1)
  frame = np.full(obs_shape, 7, np.uint8)
  replay.add(frame, 3, 1.0, frame + 1, terminal=False, episode_end=False)
  replay.add(frame + 1, 2, -1.0, frame + 2, terminal=True, episode_end=True)
  batch = replay.sample(16)
  _check_batch_format(batch, 16, obs_shape, np.uint8)
  np.testing.assert_array_equal(batch["next_obs"][:, 0, 0, 0],
                                batch["obs"][:, 0, 0, 0] + 1)
  np.testing.assert_array_equal(
      batch["discount"], (batch["obs"][:, 0, 0, 0] == 7).astype(np.float32))
  # Batches are the caller's: writing into one leaves the buffer unchanged.
  for key in batch:
    batch[key][...] = 0
  again = replay.sample(64)
  assert set(again["obs"][:, 0, 0, 0].tolist()) == {7, 8}
  assert set(again["next_obs"][:, 0, 0, 0].tolist()) == {8, 9}


def test_same_seed_same_samples(assert_same_batches):
  a, _ = _filled(seed=11)
  b, _ = _filled(seed=11)
  assert_same_batches(a, b)


# --------------------------------------------------------- argument checking


@pytest.mark.parametrize("kwargs,name", [
    (dict(capacity=1), "capacity"),
    (dict(capacity=0), "capacity"),
    (dict(capacity=10.0), "capacity"),
    (dict(capacity=True), "capacity"),
    (dict(capacity="10"), "capacity"),
    (dict(obs_shape=(84, 0)), "obs_shape"),
    (dict(obs_shape=(84, 2.0)), "obs_shape"),
    (dict(obs_shape=84), "obs_shape"),
    (dict(obs_dtype=object), "obs_dtype"),
    (dict(obs_dtype=np.str_), "obs_dtype"),
    (dict(obs_dtype="not a dtype"), "obs_dtype"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(check_contiguity=1), "check_contiguity"),
])
def test_constructor_validation(kwargs, name):
  args = dict(capacity=10, obs_shape=(2,))
  args.update(kwargs)
  with pytest.raises(ValueError, match=name):
    UniformReplay(**args)


@pytest.mark.parametrize("batch_size", [0, -3, 2.0, True, None])
def test_sample_validation(batch_size):
  replay, _ = _filled()
  with pytest.raises(ValueError, match="batch_size"):
    replay.sample(batch_size)


def test_add_validation():
  replay = UniformReplay(10, (2,))
  ok = np.zeros(2, np.uint8)
  with pytest.raises(ValueError, match="obs must have shape"):
    replay.add(np.zeros(3, np.uint8), 0, 0.0, ok, False, False)
  with pytest.raises(ValueError, match="next_obs must have shape"):
    replay.add(ok, 0, 0.0, np.zeros((2, 1), np.uint8), False, False)
  with pytest.raises(ValueError, match="next_obs of dtype float"):
    replay.add(ok, 0, 0.0, np.zeros(2, np.float32), False, False)
  with pytest.raises(ValueError, match="episode_end"):
    replay.add(ok, 0, 0.0, ok, terminal=True, episode_end=False)
  with pytest.raises(TypeError):
    replay.add(ok, 1.5, 0.0, ok, False, False)
  assert len(replay) == 0 and replay.num_adds == 0  # failed adds change nothing


def test_end_episode_starts_a_new_episode():
  replay = UniformReplay(10, (1,), np.int32, check_contiguity=True)
  replay.add([0], 0, 0.0, [1], terminal=False, episode_end=False)
  assert replay.in_episode
  replay.end_episode()
  assert not replay.in_episode
  replay.end_episode()  # no-op between episodes
  replay.add([5], 0, 0.0, [6], terminal=False, episode_end=False)  # no raise
  assert len(replay) == 2
  batch = replay.sample(100)
  assert set(zip(batch["obs"][:, 0].tolist(),
                 batch["next_obs"][:, 0].tolist())) == {(0, 1), (5, 6)}


def test_accepts_tf_dtype():
  tf = pytest.importorskip("tensorflow")
  replay = UniformReplay(4, (2,), tf.uint8)
  assert replay.obs_dtype == np.uint8


@pytest.mark.parametrize("check", [False, True])
def test_contiguity_check(check):
  replay = UniformReplay(10, (1,), np.int32, check_contiguity=check)
  replay.add([0], 0, 0.0, [1], terminal=False, episode_end=False)
  replay.add([1], 0, 0.0, [2], terminal=False, episode_end=True)
  replay.add([9], 0, 0.0, [10], terminal=False, episode_end=False)  # new ep.
  if check:
    with pytest.raises(ValueError, match="previous next_obs"):
      replay.add([5], 0, 0.0, [6], terminal=False, episode_end=False)
    assert len(replay) == 3
  else:
    # Unchecked, the stored observation is the one used (documented contract).
    replay.add([5], 0, 0.0, [6], terminal=False, episode_end=False)
    batch = replay.sample(200)
    assert (10, 6) in set(zip(batch["obs"][:, 0].tolist(),
                              batch["next_obs"][:, 0].tolist()))
