"""Tests for ``sn_tf.replay.FrameStackReplay`` against brute-force models.

A synthetic environment emits frame-stacked observations the way our Atari
envs do (gymnasium's ``FrameStackObservation`` with zero padding: a new
episode's first observation is ``stack - 1`` zero frames plus its first
frame, and each step drops the oldest frame and appends a new one). Every
frame encodes its episode, its step in the episode and a unique frame id, and
every transition's action is its own unique id, so each sampled transition is
matched exactly against the observations the environment produced.

The validity model is the documented design: the buffer holds the last
``capacity`` frames it wrote; a transition is valid iff every stored frame
its two stacks show is among them.
"""

import collections
import copy
import os
from typing import Dict, List, Optional

import numpy as np
import pytest

from sn_tf.replay import FrameStackReplay, UniformReplay, _npz_io
from sn_tf.replay import frame_stack as frame_stack_module

FRAME_SHAPE = (3, 2)  # rows: episode + 1, step + 1, frame id + 1


def _frame(episode: int, step: int, frame_id: int) -> np.ndarray:
  frame = np.empty(FRAME_SHAPE, np.int32)
  frame[0], frame[1], frame[2] = episode + 1, step + 1, frame_id + 1
  return frame


class Driver:
  """Synthetic frame-stacking env feeding one or more buffers, plus a model.

  Episodes last 1..``max_len`` steps and end by a terminal or a truncation,
  or are sometimes abandoned (``end_episode``). ``starts`` picks how an
  episode's first observation looks:

  * ``"zero"``: zero padding plus a fresh frame (our Atari envs);
  * ``"life_loss"``: after a terminal, zero padding plus a copy of the
    previous episode's final frame (the game screen goes on after a lost
    life), else as ``"zero"``;
  * ``"mixed"``: per episode one of the above, or older frames that are a
    random mix of zero and nonzero frames (a generic sliding window).
  """

  def __init__(self, replays, rng: np.random.Generator, stack: int,
               starts: str = "zero", max_len: int = 10,
               terminal_prob: float = 0.5, abandon_prob: float = 0.0):
    self.replays = list(replays)
    self.rng = rng
    self.stack = stack
    self.starts = starts
    self.max_len = max_len
    self.terminal_prob = terminal_prob
    self.abandon_prob = abandon_prob
    self.episode = -1
    self.num_frames = 0           # frame ids handed out
    self.written = 0              # frames the buffer has stored (model)
    self.queue: Optional[collections.deque] = None  # None between episodes
    self.last_frame: Optional[np.ndarray] = None
    self.last_terminal = False
    self.steps_left = 0
    self.step_in_episode = 0
    self.depth = 0                # stored frames the current stack shows
    self.position = 0             # stream position of its newest frame
    # Per transition, indexed by its id (= its action).
    self.obs: List[np.ndarray] = []
    self.next_obs: List[np.ndarray] = []
    self.reward: List[float] = []
    self.discount: List[float] = []
    self.oldest: List[int] = []   # stream position of the oldest frame used
    self.num_terminal = self.num_truncated = self.num_nonzero_starts = 0

  def fork(self, replays, rng) -> "Driver":
    other = copy.copy(self)
    other.replays, other.rng = list(replays), rng
    other.queue = None if self.queue is None else collections.deque(
        self.queue, maxlen=self.stack)
    for name in ("obs", "next_obs", "reward", "discount", "oldest"):
      setattr(other, name, list(getattr(self, name)))
    return other

  def _fresh(self, step: int) -> np.ndarray:
    self.num_frames += 1
    return _frame(self.episode, step, self.num_frames - 1)

  def _begin(self) -> None:
    self.episode += 1
    self.step_in_episode = 0
    self.steps_left = int(self.rng.integers(1, self.max_len + 1))
    k = self.stack
    kind = self.starts
    if kind == "mixed":
      kind = ("zero", "life_loss", "nonzero")[int(self.rng.integers(3))]
    zero = np.zeros(FRAME_SHAPE, np.int32)
    older = [zero] * (k - 1)
    if kind == "nonzero" and k > 1:
      older = [self._fresh(-(k - 1 - j)) if self.rng.random() < 0.6 else zero
               for j in range(k - 1)]
      self.num_nonzero_starts += any(f.any() for f in older)
    if (kind == "life_loss" and self.last_terminal
        and self.last_frame is not None):
      first = self.last_frame.copy()
    else:
      first = self._fresh(0)
    self.queue = collections.deque(older + [first], maxlen=k)
    # Documented storage: the older frames from the oldest nonzero one on.
    nonzero = [j for j, f in enumerate(older) if f.any()]
    stored = k - (nonzero[0] if nonzero else k - 1)
    self.written += stored
    self.depth = stored
    self.position = self.written - 1

  def stacked(self) -> np.ndarray:
    return np.stack(self.queue, axis=-1)  # [*FRAME_SHAPE, stack]

  def step(self) -> None:
    """Adds one transition to every buffer (and maybe abandons after)."""
    if self.queue is None:
      self._begin()
    obs = self.stacked()
    self.step_in_episode += 1
    frame = self._fresh(self.step_in_episode)
    self.queue.append(frame)
    next_obs = self.stacked()
    self.steps_left -= 1
    episode_end = self.steps_left == 0
    terminal = episode_end and bool(self.rng.random() < self.terminal_prob)
    reward = float(self.rng.integers(-800, 800)) / 8.0  # exact in float32
    action = len(self.obs)
    for replay in self.replays:
      replay.add(obs, action, reward, next_obs, terminal, episode_end)
    self.obs.append(obs)
    self.next_obs.append(next_obs)
    self.reward.append(reward)
    self.discount.append(0.0 if terminal else 1.0)
    self.oldest.append(self.position - self.depth + 1)
    self.written += 1
    self.position += 1
    self.depth = min(self.stack, self.depth + 1)
    if episode_end:
      self.num_terminal += terminal
      self.num_truncated += not terminal
      self.last_frame, self.last_terminal = frame, terminal
      self.queue = None
    elif self.rng.random() < self.abandon_prob:
      for replay in self.replays:
        replay.end_episode()
      self.last_frame, self.last_terminal = frame, False
      self.queue = None

  def valid_mask(self, capacity: int) -> np.ndarray:
    """[num transitions] bool: all frames the transition uses are stored."""
    return np.asarray(self.oldest, np.int64) >= self.written - capacity

  def check_batch(self, batch: Dict[str, np.ndarray], capacity: int) -> None:
    """Every sampled transition is valid and exactly what the env produced."""
    ids = batch["action"]
    assert self.valid_mask(capacity)[ids].all()
    np.testing.assert_array_equal(batch["obs"],
                                  np.stack([self.obs[i] for i in ids]))
    np.testing.assert_array_equal(batch["next_obs"],
                                  np.stack([self.next_obs[i] for i in ids]))
    np.testing.assert_array_equal(batch["reward"],
                                  np.array(self.reward, np.float32)[ids])
    np.testing.assert_array_equal(batch["discount"],
                                  np.array(self.discount, np.float32)[ids])


def _check_batch_format(batch, batch_size, obs_shape, obs_dtype) -> None:
  assert set(batch) == {"obs", "action", "reward", "discount", "next_obs"}
  for key in ("obs", "next_obs"):
    assert batch[key].shape == (batch_size,) + tuple(obs_shape)
    assert batch[key].dtype == obs_dtype
  for key, dtype in (("action", np.int32), ("reward", np.float32),
                     ("discount", np.float32)):
    assert batch[key].shape == (batch_size,)
    assert batch[key].dtype == dtype


def _make(capacity, stack=4, seed=0, **kwargs) -> FrameStackReplay:
  return FrameStackReplay(capacity, FRAME_SHAPE + (stack,), np.int32,
                          seed=seed, **kwargs)


# --------------------------------------------------------------- correctness


@pytest.mark.parametrize("starts", ["zero", "life_loss", "mixed"])
@pytest.mark.parametrize("stack,capacity", [
    (4, 5), (4, 9), (4, 23), (4, 64), (1, 2), (1, 7), (2, 3), (2, 11),
    (3, 16)])
def test_samples_equal_the_true_observations(stack, capacity, starts):
  seed = 10 * capacity + stack
  replay = _make(capacity, stack, seed=seed, check_contiguity=True)
  driver = Driver([replay], np.random.default_rng(seed), stack, starts=starts,
                  abandon_prob=0.05)
  for _ in range(10 * capacity + 80):
    driver.step()
    assert replay.in_episode == (driver.queue is not None)
    assert len(replay) == int(driver.valid_mask(capacity).sum())
    if len(replay):
      batch = replay.sample(48)
      _check_batch_format(batch, 48, FRAME_SHAPE + (stack,), np.int32)
      driver.check_batch(batch, capacity)
  assert driver.written > 4 * capacity  # wrapped around several times
  assert driver.num_terminal and driver.num_truncated
  if starts == "mixed" and stack > 1:
    assert driver.num_nonzero_starts > 0


def _check_stack(stacks: np.ndarray, stack: int) -> None:
  """Structure of zero-padded stacks ``[B, *FRAME_SHAPE, stack]``: frames of
  one episode at consecutive steps, newest last, preceded by exactly the
  env's zero padding (zeros for the steps before the episode's first)."""
  back = stack - 1 - np.arange(stack)                 # [stack] frames back
  newest_step = stacks[:, 1, 0, -1] - 1               # [B]
  steps = newest_step[:, None] - back                 # [B, stack]
  present = steps >= 0
  np.testing.assert_array_equal(
      stacks.reshape(len(stacks), -1, stack).any(axis=1), present)
  np.testing.assert_array_equal(
      stacks[:, 0, 0], np.where(present, stacks[:, :1, 0, -1], 0))
  np.testing.assert_array_equal(stacks[:, 1, 0],
                                np.where(present, steps + 1, 0))


def test_no_stack_mixes_episodes_or_uses_overwritten_frames():
  stack, capacity = 4, 13
  replay = _make(capacity, stack, seed=3)
  driver = Driver([replay], np.random.default_rng(3), stack,
                  terminal_prob=0.3)
  for _ in range(400):
    driver.step()
    if not len(replay):
      continue
    batch = replay.sample(10 * capacity)
    for key in ("obs", "next_obs"):
      _check_stack(batch[key], stack)
    # next_obs continues obs's episode by one step.
    np.testing.assert_array_equal(batch["obs"][:, 0, 0, -1],
                                  batch["next_obs"][:, 0, 0, -1])
    np.testing.assert_array_equal(batch["obs"][:, 1, 0, -1] + 1,
                                  batch["next_obs"][:, 1, 0, -1])
    # With zero padding every frame is stored once, in frame-id order, so a
    # frame id is its stream position: all ids are among the last
    # `capacity` frames written.
    ids = np.concatenate([batch["obs"][:, 2], batch["next_obs"][:, 2]])
    assert ids[ids > 0].min() - 1 >= driver.written - capacity
    # 10 * capacity draws over < capacity transitions: all of them show up.
    assert set(batch["action"].tolist()) == set(
        np.flatnonzero(driver.valid_mask(capacity)).tolist())


def test_hand_worked_sequence():
  """Stack 2, capacity 4, scalar frames; contents worked out by hand."""
  replay = FrameStackReplay(4, (2,), np.int32, seed=0, check_contiguity=True)

  def contents():
    batch = replay.sample(400)
    return set(zip(map(tuple, batch["obs"].tolist()),
                   map(tuple, batch["next_obs"].tolist()),
                   batch["discount"].tolist()))

  with pytest.raises(ValueError, match="no valid transition"):
    replay.sample(1)
  # Slots: 0 <- 1, 1 <- 2.
  replay.add([0, 1], 0, 0.0, [1, 2], terminal=False, episode_end=False)
  assert len(replay) == 1 and contents() == {((0, 1), (1, 2), 1.0)}
  # 2 <- 3; the final frame's slot 2 starts no transition.
  replay.add([1, 2], 0, 0.0, [2, 3], terminal=True, episode_end=True)
  assert contents() == {((0, 1), (1, 2), 1.0), ((1, 2), (2, 3), 0.0)}
  # New episode: 3 <- 5 leaves (0, 1) -> (1, 2) intact (its stack begins at
  # its episode's first frame, slot 0); 0 <- 6 breaks it and also
  # (1, 2) -> (2, 3), whose older frame 1 sat in slot 0.
  # (UniformReplay, storing whole stacks, would still hold the latter.)
  replay.add([0, 5], 0, 0.0, [5, 6], terminal=False, episode_end=False)
  assert len(replay) == 1 and contents() == {((0, 5), (5, 6), 1.0)}
  # Truncation: 1 <- 7, discount stays 1.
  replay.add([5, 6], 0, 0.0, [6, 7], terminal=False, episode_end=True)
  assert contents() == {((0, 5), (5, 6), 1.0), ((5, 6), (6, 7), 1.0)}
  # A start with a nonzero older frame stores it: 2 <- 9, 3 <- 8, 0 <- 10.
  # Writing slot 3 breaks (0, 5) -> (5, 6); writing 0 breaks (5, 6) -> (6, 7).
  replay.add([9, 8], 0, 0.0, [8, 10], terminal=False, episode_end=False)
  assert len(replay) == 1 and contents() == {((9, 8), (8, 10), 1.0)}


def test_matches_uniform_replay_draw_for_draw_until_it_wraps():
  """Same zero-padded stream, same seed: same batches as UniformReplay until
  the cursor wraps; after that, only up to stack - 1 fewer transitions."""
  stack, capacity = 4, 120
  frames = FrameStackReplay(capacity, FRAME_SHAPE + (stack,), np.int32,
                            seed=21)
  whole = UniformReplay(capacity, FRAME_SHAPE + (stack,), np.int32, seed=21)
  driver = Driver([frames, whole], np.random.default_rng(21), stack,
                  abandon_prob=0.05)
  compared = 0
  while driver.written < capacity:
    driver.step()
    assert len(frames) == len(whole)
    batch, reference = frames.sample(16), whole.sample(16)
    for key in reference:
      np.testing.assert_array_equal(batch[key], reference[key])
    compared += 1
  assert compared > 50
  for _ in range(3 * capacity):
    driver.step()
    assert len(whole) - (stack - 1) <= len(frames) <= len(whole)
    driver.check_batch(frames.sample(16), capacity)


def test_real_atari_stream_matches_uniform_replay():
  """Breakout with life loss: the env's stacks, rebuilt exactly."""
  pytest.importorskip("ale_py")
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  env = make_env("atari:Breakout", seed=1, training=True)
  frames = FrameStackReplay(1000, (84, 84, 4), seed=5, check_contiguity=True)
  whole = UniformReplay(1000, (84, 84, 4), seed=5)
  small = FrameStackReplay(40, (84, 84, 4), seed=5, check_contiguity=True)
  truth = set()
  rng = np.random.default_rng(0)
  time_step = env.reset()
  firsts = 1
  for _ in range(300):
    obs = time_step.observation
    action = int(rng.integers(4))
    next_step = env.step(np.int32(action))
    end = bool(next_step.is_last())
    terminal = end and float(next_step.discount) == 0.0
    for replay in (frames, whole, small):
      replay.add(obs, action, float(next_step.reward), next_step.observation,
                 terminal, end)
    truth.add((obs.tobytes(), next_step.observation.tobytes()))
    time_step = next_step
    if end:
      time_step = env.reset()
      firsts += 1
      # Our env pads with zeros at every episode start, life loss included.
      assert not time_step.observation[..., :3].any()
  assert firsts >= 3
  for _ in range(3):
    batch, reference = frames.sample(32), whole.sample(32)
    for key in reference:
      np.testing.assert_array_equal(batch[key], reference[key])
  batch = small.sample(64)
  assert {(o.tobytes(), n.tobytes())
          for o, n in zip(batch["obs"], batch["next_obs"])} <= truth


# ---------------------------------------------------------------- uniformity


def _chi_square_check(replay, driver, num_batches, batch_size):
  valid = np.flatnonzero(driver.valid_mask(replay.capacity))
  counts = np.zeros(len(driver.obs))
  for _ in range(num_batches):
    batch = replay.sample(batch_size)
    driver.check_batch(batch, replay.capacity)
    counts += np.bincount(batch["action"], minlength=len(counts))
  counts = counts[valid]
  expected = num_batches * batch_size / len(valid)
  chi2 = float(np.sum((counts - expected) ** 2 / expected))
  dof = len(valid) - 1
  assert counts.min() > 0
  # Loose (about 8 standard deviations) but fails for any real bias, e.g.
  # one transition drawn twice as often as the others.
  assert chi2 < dof + 8 * np.sqrt(2 * dof), (chi2, dof)


@pytest.mark.parametrize("capacity,num_adds,starts", [
    (64, 300, "zero"), (64, 300, "mixed"), (5_000, 60, "zero")])
def test_sampling_is_uniform_over_valid_transitions(capacity, num_adds,
                                                    starts):
  replay = _make(capacity, seed=7)
  driver = Driver([replay], np.random.default_rng(7), 4, starts=starts)
  for _ in range(num_adds):
    driver.step()
  assert 20 < len(replay) < capacity
  _chi_square_check(replay, driver, num_batches=60, batch_size=1000)


def test_sampling_is_uniform_after_rejection_fallback(monkeypatch):
  monkeypatch.setattr(frame_stack_module, "_MAX_REJECTION_ROUNDS", 0)
  replay = _make(64, seed=8)
  driver = Driver([replay], np.random.default_rng(8), 4, starts="mixed")
  for _ in range(300):
    driver.step()
  _chi_square_check(replay, driver, num_batches=60, batch_size=1000)


# ------------------------------------------------------------ save and load


def _filled(capacity=23, num_adds=100, seed=5):
  replay = _make(capacity, seed=seed, check_contiguity=True)
  driver = Driver([replay], np.random.default_rng(seed), 4, starts="mixed")
  for _ in range(num_adds):
    driver.step()
  for _ in range(3):
    replay.sample(32)  # advance the RNG
  return replay, driver


@pytest.mark.parametrize("mid_episode", [False, True])
def test_save_load_round_trip(tmp_path, file_contents,
                              assert_same_batches, mid_episode):
  replay, driver = _filled()
  while (driver.queue is not None) != mid_episode:
    driver.step()
  path = tmp_path / "replay.npz"
  replay.save(str(path))
  assert os.listdir(tmp_path) == ["replay.npz"]  # no temp file left over
  loaded = FrameStackReplay.load(str(path))

  assert repr(loaded) == repr(replay)
  assert loaded.nbytes == replay.nbytes
  assert loaded.num_adds == replay.num_adds
  assert loaded.in_episode == replay.in_episode == mid_episode
  loaded.save(str(tmp_path / "again.npz"))
  original = file_contents(path)
  again = file_contents(tmp_path / "again.npz")
  assert original.keys() == again.keys()
  for key in original:
    np.testing.assert_array_equal(original[key], again[key])

  assert_same_batches(replay, loaded)
  # Both continue identically (the loaded buffer's contiguity check passes
  # mid-episode, so its episode state and frames were restored).
  driver_loaded = driver.fork([loaded], np.random.default_rng(99))
  driver.rng = np.random.default_rng(99)
  for _ in range(40):
    driver.step()
    driver_loaded.step()
  assert_same_batches(replay, loaded)
  driver_loaded.check_batch(loaded.sample(500), loaded.capacity)


def test_load_rejects_foreign_files(tmp_path):
  path = tmp_path / "other.npz"
  np.savez(str(path), x=np.zeros(3))
  with pytest.raises(ValueError, match="not a FrameStackReplay"):
    FrameStackReplay.load(str(path))
  uniform = UniformReplay(8, (2, 2), np.uint8)
  ones = np.ones((2, 2), np.uint8)
  uniform.add(ones, 0, 0.0, ones, False, False)
  uniform.save(str(tmp_path / "uniform.npz"))
  with pytest.raises(ValueError, match="not a FrameStackReplay"):
    FrameStackReplay.load(str(tmp_path / "uniform.npz"))


# ------------------------------------------------------------- layout, memory


def test_atari_layout_and_memory():
  obs_shape = (84, 84, 4)
  replay = FrameStackReplay(50, obs_shape)
  assert replay.frame_shape == (84, 84) and replay.stack_size == 4
  bytes_per_slot = 84 * 84 + 4 + 4 + 1 + 1 + 1
  assert replay.nbytes == 50 * bytes_per_slot
  assert replay.nbytes / replay.capacity < 7_200
  assert 1_000_000 * bytes_per_slot <= 7.2e9  # Dopamine: 7.06 GB
  # A quarter of what storing whole stacks costs.
  assert replay.nbytes < UniformReplay(50, obs_shape).nbytes / 3.9

  def stacked(*values):
    obs = np.zeros(obs_shape, np.uint8)
    for position, value in enumerate(values):
      obs[..., 4 - len(values) + position] = value
    return obs

  replay.add(stacked(7), 3, 1.0, stacked(7, 8), terminal=False,
             episode_end=False)
  replay.add(stacked(7, 8), 2, -1.0, stacked(7, 8, 9), terminal=True,
             episode_end=True)
  batch = replay.sample(16)
  _check_batch_format(batch, 16, obs_shape, np.uint8)
  for obs, next_obs, action in zip(batch["obs"], batch["next_obs"],
                                   batch["action"]):
    if action == 3:
      np.testing.assert_array_equal(obs, stacked(7))
      np.testing.assert_array_equal(next_obs, stacked(7, 8))
    else:
      np.testing.assert_array_equal(obs, stacked(7, 8))
      np.testing.assert_array_equal(next_obs, stacked(7, 8, 9))
  # Batches are the caller's: writing into one leaves the buffer unchanged.
  for key in batch:
    batch[key][...] = 0
  again = replay.sample(64)
  assert set(again["obs"][:, 0, 0, -1].tolist()) == {7, 8}
  assert set(again["next_obs"][:, 0, 0, -1].tolist()) == {8, 9}
  assert not again["obs"][..., 0].any()


def test_same_seed_same_samples(assert_same_batches):
  a, _ = _filled(seed=11)
  b, _ = _filled(seed=11)
  assert_same_batches(a, b)


# --------------------------------------------------------- argument checking


@pytest.mark.parametrize("kwargs,name", [
    (dict(capacity=4), "capacity"),  # needs stack + 1 = 5
    (dict(capacity=0), "capacity"),
    (dict(capacity=10.0), "capacity"),
    (dict(capacity=True), "capacity"),
    (dict(obs_shape=()), "obs_shape"),
    (dict(obs_shape=(84, 0)), "obs_shape"),
    (dict(obs_shape=(84, 2.0)), "obs_shape"),
    (dict(obs_shape=84), "obs_shape"),
    (dict(obs_shape=(2, 256)), "obs_shape"),
    (dict(obs_dtype=object), "obs_dtype"),
    (dict(obs_dtype="not a dtype"), "obs_dtype"),
    (dict(seed=-1), "seed"),
    (dict(check_contiguity=1), "check_contiguity"),
])
def test_constructor_validation(kwargs, name):
  args = dict(capacity=10, obs_shape=(2, 4))
  args.update(kwargs)
  with pytest.raises(ValueError, match=name):
    FrameStackReplay(**args)


@pytest.mark.parametrize("batch_size", [0, -3, 2.0, True, None])
def test_sample_validation(batch_size):
  replay, _ = _filled()
  with pytest.raises(ValueError, match="batch_size"):
    replay.sample(batch_size)


def test_add_validation():
  replay = FrameStackReplay(10, (2, 4))
  ok = np.zeros((2, 4), np.uint8)
  with pytest.raises(ValueError, match="obs must have shape"):
    replay.add(np.zeros((2, 3), np.uint8), 0, 0.0, ok, False, False)
  with pytest.raises(ValueError, match="next_obs of dtype float"):
    replay.add(ok, 0, 0.0, np.zeros((2, 4), np.float32), False, False)
  with pytest.raises(ValueError, match="episode_end"):
    replay.add(ok, 0, 0.0, ok, terminal=True, episode_end=False)
  with pytest.raises(TypeError):
    replay.add(ok, 1.5, 0.0, ok, False, False)
  assert len(replay) == 0 and replay.num_adds == 0


@pytest.mark.parametrize("check", [False, True])
def test_contiguity_check(check):
  replay = FrameStackReplay(10, (2,), np.int32, check_contiguity=check)
  replay.add([0, 1], 0, 0.0, [1, 2], terminal=False, episode_end=False)
  replay.add([1, 2], 0, 0.0, [2, 3], terminal=False, episode_end=True)
  replay.add([0, 9], 0, 0.0, [9, 10], terminal=False, episode_end=False)
  bad_obs = ([9, 5], 0, 0.0, [5, 6], False, False)     # obs != last next_obs
  not_shifted = ([9, 10], 0, 0.0, [7, 11], False, False)
  if check:
    with pytest.raises(ValueError, match="previous next_obs"):
      replay.add(*bad_obs)
    with pytest.raises(ValueError, match="shifted by one frame"):
      replay.add(*not_shifted)
    with pytest.raises(ValueError, match="shifted by one frame"):
      replay.end_episode()
      replay.add([0, 4], 0, 0.0, [3, 5], False, False)  # also at a start
    assert len(replay) == 3 and replay.num_adds == 3
  else:
    # Unchecked, only next_obs's newest frame is read (documented contract).
    replay.add(*bad_obs)
    batch = replay.sample(200)
    pairs = set(zip(map(tuple, batch["obs"].tolist()),
                    map(tuple, batch["next_obs"].tolist())))
    assert ((9, 10), (10, 6)) in pairs


def test_end_episode_starts_a_new_episode():
  replay = FrameStackReplay(10, (2,), np.int32, check_contiguity=True)
  replay.add([0, 1], 0, 0.0, [1, 2], terminal=False, episode_end=False)
  assert replay.in_episode
  replay.end_episode()
  assert not replay.in_episode
  replay.end_episode()  # no-op between episodes
  replay.add([0, 5], 0, 0.0, [5, 6], terminal=False, episode_end=False)
  assert len(replay) == 2
  batch = replay.sample(100)
  assert set(zip(map(tuple, batch["obs"].tolist()),
                 map(tuple, batch["next_obs"].tolist()))) == {
                     ((0, 1), (1, 2)), ((0, 5), (5, 6))}


def test_accepts_tf_dtype():
  tf = pytest.importorskip("tensorflow")
  assert FrameStackReplay(5, (2, 4), tf.uint8).obs_dtype == np.uint8


def test_a_buffer_far_from_full_saves_only_its_used_slots(tmp_path,
                                                         assert_same_batches):
  replay, _ = _filled(capacity=500, num_adds=60)
  used = replay._slots_used  # pylint: disable=protected-access
  keys = FrameStackReplay._ARRAY_KEYS  # pylint: disable=protected-access
  assert 60 <= used < 500
  path = tmp_path / "replay.npz"
  replay.save(str(path))
  with np.load(str(path)) as saved:
    assert all(saved[key].shape[0] == used for key in keys)
  loaded = FrameStackReplay.load(str(path))
  for key in keys:  # the unused slots come back as the zeros they were
    np.testing.assert_array_equal(getattr(loaded, "_" + key),
                                  getattr(replay, "_" + key))
  assert_same_batches(replay, loaded)
  # A file that holds every slot (as sn_tf wrote them before) still loads.
  whole = tmp_path / "whole.npz"
  _npz_io.atomic_savez(str(whole), replay._metadata(),  # pylint: disable=protected-access
                       {key: getattr(replay, "_" + key) for key in keys})
  older = FrameStackReplay.load(str(whole))
  for key in keys:
    np.testing.assert_array_equal(getattr(older, "_" + key),
                                  getattr(replay, "_" + key))
