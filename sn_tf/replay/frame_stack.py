"""``FrameStackReplay``: Atari replay that stores each frame once.

Drop-in replacement for ``UniformReplay`` (same constructor, ``add``,
``sample``, ``save``/``load``, ``end_episode``) for observations that are a
stack of the ``stack`` most recent frames on the last axis, e.g. Atari's
``[84, 84, 4]`` (oldest frame first, newest last). Where ``UniformReplay``
keeps one whole ``[84, 84, 4]`` observation per slot (28,224 bytes), this
buffer keeps one ``[84, 84]`` frame per slot (7,056 bytes) and rebuilds the
stacks of ``obs`` and ``next_obs`` at sample time, like Dopamine's circular
replay buffer.

Layout. Slots are filled in order, one frame each, and a slot plays the role
of an observation slot of ``UniformReplay``: the transition
``(s_t, a_t, r_{t+1}, s_{t+1})`` starting at slot ``i`` has the newest frame
of ``s_t`` in slot ``i`` and the newest frame of ``s_{t+1}`` in slot
``i + 1`` (indices modulo ``capacity``); ``a_t``, ``r_{t+1}`` and the
terminal flag live in per-slot arrays next to it. Each ``add`` within an
episode writes one frame, the newest frame of ``next_obs``; an episode's final
frame gets a slot where no transition starts.

Episode starts. An episode's first observation is ``stack - 1`` older frames
plus its first frame. Our Atari envs (gymnasium's ``FrameStackObservation``
with zero padding, also after a lost life) make the older frames all zero. The
first ``add`` of an episode stores the first frame and, in the slots just
before it, the older frames from the oldest nonzero one on (none for a
zero-padded start, so such episodes use exactly ``UniformReplay``'s slots);
the leading all-zero older frames are not stored. Each slot records ``depth``:
how many of the frames ending at that slot belong to its episode's stored
frames (``min(stack, position in the episode's stored frames + 1)``). At
sample time, stack position ``p`` (0 = oldest) of the observation whose
newest frame sits in slot ``i`` reads slot ``i - (stack - 1 - p)`` if
``stack - 1 - p < depth[i]`` and is zero otherwise. A stack therefore never
reads a frame of another episode, and the rebuilt observation is exactly the
one added, for any stream whose observations within an episode are sliding
windows of one frame sequence (whatever the older frames of its first
observation are).

Validity. The transition at slot ``i`` needs slots ``i - depth[i] + 1`` to
``i + 1``. ``starts[i]`` marks it sampleable: it is set once slot ``i + 1``
is written, and cleared as soon as the cursor overwrites any slot it needs
(writing slot ``j`` clears every ``starts[j + d]``, ``0 <= d < stack``, whose
``depth[j + d] > d``). No sampled stack ever contains an overwritten frame.
"""

import numbers
import operator
from typing import Any, Dict, Tuple

import numpy as np

from sn_tf.replay import _npz_io

_FORMAT_VERSION = 1
_KIND = "FrameStackReplay"
_ARRAY_KEYS = ("frames", "action", "reward", "terminal", "starts", "depth")
# Rejection sampling redraws invalid candidates at most this many rounds, then
# draws the rest directly from the list of valid slots (same distribution).
_MAX_REJECTION_ROUNDS = 32
_MAX_STACK = int(np.iinfo(np.uint8).max)  # depth is stored as uint8


def _check_int(name: str, value: Any, minimum: int) -> int:
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < minimum):
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
  return int(value)


class FrameStackReplay:
  """Uniform replay of 1-step transitions of frame-stacked observations.

  ``obs_shape`` is ``[*frame_shape, stack]``: the last axis stacks the
  ``stack`` most recent frames, oldest first. ``capacity`` counts frame slots,
  as ``UniformReplay``'s counts observation slots: the buffer holds at most
  ``capacity - 1`` sampleable transitions, one fewer for every episode end
  still in memory, fewer still for episodes whose first observation has
  nonzero older frames (see the module docstring), and up to ``stack - 1``
  fewer just ahead of the cursor, where the oldest transitions have lost an
  older frame of their stack. For zero-padded episode starts (our Atari envs)
  and a buffer that has not wrapped around, it holds exactly the transitions
  ``UniformReplay`` of the same capacity would, in the same slots, so with the
  same seed both draw the same batches.

  Contract for ``add`` (as ``UniformReplay``'s): within an episode, ``obs``
  must equal the previous call's ``next_obs``; and ``next_obs`` must be
  ``obs`` shifted by one frame (``next_obs[..., :-1] == obs[..., 1:]``). Only
  the newest frame of ``next_obs`` is stored (plus, at an episode's first
  ``add``, the frames of ``obs`` from its oldest nonzero one on); the other
  frames are not read. Pass ``check_contiguity=True`` to verify both
  conditions on every ``add`` (a debugging aid, off by default; it compares
  ``obs`` with the stack rebuilt from the buffer). If the environment is
  reset outside ``add``, call ``end_episode()`` first.

  Memory: all arrays are allocated up front with ``np.zeros``; the OS commits
  their pages lazily, so resident memory grows as slots are first written and
  reaches ``nbytes`` once the buffer is full. Per slot: one frame plus 4
  (action, int32) + 4 (reward, float32) + 1 (terminal) + 1 (starts) + 1
  (depth, uint8) bytes: 7,067 bytes for an 84x84 uint8 frame, 7.07 GB for
  1M slots (``UniformReplay``: 28,234 bytes per slot).

  Speed: ``sample`` gathers ``stack + 1`` frames per transition and
  interleaves them onto the last axis, which costs about 1 ms for a batch of
  32 ``[84, 84, 4]`` transitions (``UniformReplay``: about 0.3 ms; see
  ``benchmarks/bench_replay.py``).

  Args:
    capacity: number of frame slots (int >= stack + 1).
    obs_shape: shape of one observation, ``(*frame_shape, stack)``, e.g.
      ``(84, 84, 4)``; 1 <= stack <= 255.
    obs_dtype: NumPy dtype of the stored frames (default uint8).
    seed: seed of the buffer's own ``np.random.Generator`` (int >= 0).
    check_contiguity: verify the ``add`` contract above.
  """

  def __init__(self, capacity: int, obs_shape: Tuple[int, ...],
               obs_dtype=np.uint8, seed: int = 0,
               check_contiguity: bool = False):
    try:
      obs_shape = tuple(obs_shape)
    except TypeError:
      raise ValueError(f"obs_shape must be a non-empty tuple of ints >= 1, "
                       f"got {obs_shape!r}.") from None
    if not obs_shape:
      raise ValueError("obs_shape must be a non-empty tuple of ints >= 1 (its "
                       "last axis stacks the frames), got ().")
    for dim in obs_shape:
      _check_int("each obs_shape dimension", dim, 1)
    obs_shape = tuple(int(dim) for dim in obs_shape)
    stack = obs_shape[-1]
    if stack > _MAX_STACK:
      raise ValueError(f"obs_shape[-1] (the stack size) must be <= "
                       f"{_MAX_STACK}, got {stack}.")
    capacity = _check_int("capacity", capacity, stack + 1)
    # tf.DType (e.g. from a TensorSpec) converts through its NumPy twin.
    obs_dtype = getattr(obs_dtype, "as_numpy_dtype", obs_dtype)
    try:
      obs_dtype = np.dtype(obs_dtype)
    except TypeError:
      raise ValueError(
          f"obs_dtype must be a NumPy dtype, got {obs_dtype!r}.") from None
    if obs_dtype.hasobject or obs_dtype.kind not in "biuf":
      raise ValueError(
          f"obs_dtype must be a bool, integer or float dtype, got {obs_dtype}.")
    seed = _check_int("seed", seed, 0)
    if not isinstance(check_contiguity, bool):
      raise ValueError(
          f"check_contiguity must be a bool, got {check_contiguity!r}.")

    self._capacity = capacity
    self._obs_shape = obs_shape
    self._frame_shape = obs_shape[:-1]
    self._stack = stack
    self._obs_dtype = obs_dtype
    self._seed = seed
    self._check_contiguity = check_contiguity
    self._rng = np.random.default_rng(seed)

    n = capacity
    self._frames = np.zeros((n,) + self._frame_shape, obs_dtype)  # [N, *F]
    self._action = np.zeros((n,), np.int32)       # [N]
    self._reward = np.zeros((n,), np.float32)     # [N]
    self._terminal = np.zeros((n,), np.bool_)     # [N]
    self._starts = np.zeros((n,), np.bool_)       # [N] sampleable
    self._depth = np.zeros((n,), np.uint8)        # [N] in 1..stack once written

    # Window of a transition relative to its slot: the stack - 1 older frames
    # of s_t, its newest frame, and the newest frame of s_{t+1}. [stack + 1]
    self._window_offsets = np.arange(-(stack - 1), 2)
    # Frames back from s_t's newest frame, per window position. [stack + 1]
    self._frames_back = (stack - 1) - np.arange(stack + 1)
    self._lookahead = np.arange(stack)  # slots j + d a write to j can break

    # Slot of the newest frame of the current observation s_t: where the next
    # add() writes its transition. Within an episode that frame is stored.
    self._cursor = 0
    self._new_episode = True  # the next add() starts an episode
    self._num_valid = 0       # == count_nonzero(self._starts)
    self._slots_used = 0      # slots ever written, capped at capacity
    self._num_adds = 0

  # ---------------------------------------------------------------- properties

  @property
  def capacity(self) -> int:
    """Number of frame slots (at most ``capacity - 1`` transitions)."""
    return self._capacity

  @property
  def obs_shape(self) -> Tuple[int, ...]:
    return self._obs_shape

  @property
  def obs_dtype(self) -> np.dtype:
    return self._obs_dtype

  @property
  def frame_shape(self) -> Tuple[int, ...]:
    """Shape of one stored frame, ``obs_shape[:-1]``."""
    return self._frame_shape

  @property
  def stack_size(self) -> int:
    """Frames per observation, ``obs_shape[-1]``."""
    return self._stack

  @property
  def in_episode(self) -> bool:
    """True if the next ``add`` continues the current episode."""
    return not self._new_episode

  @property
  def num_adds(self) -> int:
    """Number of transitions ever added (including overwritten ones)."""
    return self._num_adds

  @property
  def nbytes(self) -> int:
    """Bytes of all pre-allocated arrays (``capacity`` times bytes per slot)."""
    return sum(getattr(self, "_" + key).nbytes for key in _ARRAY_KEYS)

  def __len__(self) -> int:
    """Number of valid transitions that ``sample`` can return."""
    return self._num_valid

  # ----------------------------------------------------------------------- add

  def _as_obs(self, name: str, value: Any) -> np.ndarray:
    value = np.asarray(value)
    if value.shape != self._obs_shape:
      raise ValueError(f"{name} must have shape {self._obs_shape}, got "
                       f"{value.shape}.")
    if not np.can_cast(value.dtype, self._obs_dtype, casting="same_kind"):
      raise ValueError(f"{name} of dtype {value.dtype} cannot be stored as "
                       f"{self._obs_dtype} without changing its kind.")
    return value

  def _write_frame(self, slot: int, frame: np.ndarray, depth: int) -> None:
    """Writes a frame, invalidating every transition that read the old one.

    The transition at slot ``slot + d`` (``0 <= d < stack``) reads this slot
    iff its stack reaches ``d`` frames back, i.e. ``depth > d``. (The one at
    ``slot - 1``, which reads it as its next frame, is never valid here: that
    slot was written just before this one.)
    """
    ahead = (slot + self._lookahead) % self._capacity
    broken = ahead[self._starts[ahead] & (self._depth[ahead] > self._lookahead)]
    if broken.size:
      self._starts[broken] = False
      self._num_valid -= int(broken.size)
    self._frames[slot] = frame
    self._depth[slot] = depth

  def _check_add(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
    """The ``check_contiguity`` checks; raises ValueError on a violation."""
    if not np.array_equal(next_obs[..., :-1], obs[..., 1:]):
      raise ValueError("next_obs is not obs shifted by one frame: "
                       "next_obs[..., :-1] must equal obs[..., 1:].")
    if not self._new_episode:
      window = self._rebuild(np.array([self._cursor]))[0]
      stored = np.moveaxis(window[:self._stack], 0, -1)  # [*frame, stack]
      if not np.array_equal(obs.astype(self._obs_dtype, copy=False), stored):
        raise ValueError(
            "obs differs from the previous next_obs within an episode; pass "
            "episode_end=True on the previous add() if a new episode began.")

  def add(self, obs, action: int, reward: float, next_obs, terminal: bool,
          episode_end: bool) -> None:
    """Adds one transition ``(s_t, a_t, r_{t+1}, s_{t+1})``.

    Args:
      obs: ``s_t``, ``[*frame_shape, stack]``. At an episode's first add its
        frames from the oldest nonzero one on are stored; within an episode it
        must equal the previous call's ``next_obs`` and is not read.
      action: ``a_t``, an integer.
      reward: ``r_{t+1}``.
      next_obs: ``s_{t+1}``, ``[*frame_shape, stack]``, ``obs`` shifted by one
        frame; only its newest frame ``next_obs[..., -1]`` is stored.
      terminal: ``s_{t+1}`` is a true terminal state (bootstrap discount 0).
      episode_end: the episode stops after this transition (terminal, or
        truncated by a time limit); the next ``add`` starts a new episode.
        Must be True when ``terminal`` is.

    Raises:
      ValueError: on a wrong observation shape or dtype kind, ``terminal``
        without ``episode_end``, or (with ``check_contiguity``) a violation
        of the contract in the class docstring.
    """
    obs = self._as_obs("obs", obs)
    next_obs = self._as_obs("next_obs", next_obs)
    action = operator.index(action)
    terminal = bool(terminal)
    episode_end = bool(episode_end)
    if terminal and not episode_end:
      raise ValueError("terminal=True requires episode_end=True.")
    if self._check_contiguity:
      self._check_add(obs, next_obs)

    n, k = self._capacity, self._stack
    slot = self._cursor
    written = 1  # next_obs's newest frame
    if self._new_episode:
      # Older frames of s_0 from the oldest nonzero one on go to the slots
      # before s_0's newest frame; leading all-zero ones are zero-filled at
      # sample time (depth stops short of them).
      first = k - 1
      if k > 1:
        nonzero = np.flatnonzero(obs[..., :-1].reshape(-1, k - 1).any(axis=0))
        if nonzero.size:
          first = int(nonzero[0])
      for depth, position in enumerate(range(first, k), start=1):
        if depth > 1:
          slot = (slot + 1) % n
        self._write_frame(slot, obs[..., position], depth)
        written += 1
    nxt = (slot + 1) % n
    next_depth = min(k, int(self._depth[slot]) + 1)
    self._write_frame(nxt, next_obs[..., -1], next_depth)
    self._action[slot] = action
    self._reward[slot] = reward
    self._terminal[slot] = terminal
    # starts[slot] is False here: the write of this slot cleared it.
    self._starts[slot] = True
    self._num_valid += 1

    self._num_adds += 1
    self._slots_used = min(n, self._slots_used + written)
    # The final frame's slot keeps starts == False; skip past it.
    self._cursor = (nxt + 1) % n if episode_end else nxt
    self._new_episode = episode_end

  def end_episode(self) -> None:
    """Ends the current episode without adding a transition.

    For an episode abandoned outside ``add`` (the environment was reset): the
    last ``next_obs`` becomes a final observation and the next ``add`` starts
    a new episode. A no-op between episodes.
    """
    if not self._new_episode:
      self._cursor = (self._cursor + 1) % self._capacity
      self._new_episode = True

  # -------------------------------------------------------------------- sample

  def _rebuild(self, idx: np.ndarray) -> np.ndarray:
    """Frames of the transitions at slots ``idx``, zero-filled at starts.

    Args:
      idx: ``[B]`` slots.

    Returns:
      ``[B, stack + 1, *frame_shape]``: positions ``0..stack-1`` are the stack
      of ``s_t`` (oldest first), positions ``1..stack`` that of ``s_{t+1}``.
      Frames before an episode's stored frames are zero. For ``s_{t+1}`` the
      same rule holds because ``depth[i + 1] == min(stack, depth[i] + 1)``.
    """
    window = self._frames[(idx[:, None] + self._window_offsets)
                          % self._capacity]
    outside = self._frames_back >= self._depth[idx][:, None].astype(np.int64)
    window[outside] = 0
    return window

  def sample(self, batch_size: int) -> Dict[str, np.ndarray]:
    """Samples transitions uniformly, with replacement, from the valid ones.

    Args:
      batch_size: B, number of transitions (int >= 1).

    Returns:
      A dict of NumPy arrays: ``obs`` ``[B, *obs_shape]`` (obs_dtype),
      ``action`` ``[B]`` int32, ``reward`` ``[B]`` float32, ``discount``
      ``[B]`` float32 (0.0 where ``next_obs`` is terminal, else 1.0) and
      ``next_obs`` ``[B, *obs_shape]`` (obs_dtype). All are new arrays owned
      by the caller (``obs`` and ``next_obs`` are the two halves of one).

    Raises:
      ValueError: if ``batch_size`` is not an int >= 1 or the buffer holds no
        valid transition.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    if self._num_valid < 1:
      raise ValueError("Cannot sample: the replay buffer holds no valid "
                       "transition yet (len(buffer) == 0).")
    idx = self._sample_indices(batch_size)
    window = self._rebuild(idx)  # [B, stack + 1, *frame_shape]
    k = self._stack
    # One allocation for s_t and s_{t+1}. Filled one stack position at a time:
    # several times faster than one np.moveaxis copy, whose innermost loop
    # would run over only `stack` elements.
    both = np.empty((2, batch_size) + self._obs_shape, self._obs_dtype)
    for position in range(k):
      both[0, ..., position] = window[:, position]
      both[1, ..., position] = window[:, position + 1]
    return {
        "obs": both[0],
        "action": self._action[idx],
        "reward": self._reward[idx],
        "discount": (~self._terminal[idx]).astype(np.float32),
        "next_obs": both[1],
    }

  def _sample_indices(self, batch_size: int) -> np.ndarray:
    """Uniform draw of ``[batch_size]`` valid slots by rejection.

    Candidates come from the slots written so far, most of which are valid
    (invalid: one final frame per episode, stored older frames of nonzero
    episode starts, and up to ``stack - 1`` slots ahead of the cursor); after
    ``_MAX_REJECTION_ROUNDS`` the rest are drawn from the explicit list of
    valid slots, which keeps the draw exactly uniform.
    """
    high = self._slots_used
    idx = self._rng.integers(0, high, size=batch_size)
    bad = np.flatnonzero(~self._starts[idx])
    for _ in range(_MAX_REJECTION_ROUNDS):
      if bad.size == 0:
        return idx
      idx[bad] = self._rng.integers(0, high, size=bad.size)
      bad = bad[~self._starts[idx[bad]]]
    if bad.size:
      valid = np.flatnonzero(self._starts)
      idx[bad] = valid[self._rng.integers(0, valid.size, size=bad.size)]
    return idx

  # ------------------------------------------------------------- save / load

  def _metadata(self) -> Dict[str, Any]:
    return {
        "kind": _KIND,
        "format_version": _FORMAT_VERSION,
        "capacity": self._capacity,
        "obs_shape": list(self._obs_shape),
        "obs_dtype": self._obs_dtype.str,
        "seed": self._seed,
        "check_contiguity": self._check_contiguity,
        "cursor": self._cursor,
        "new_episode": self._new_episode,
        "num_valid": self._num_valid,
        "slots_used": self._slots_used,
        "num_adds": self._num_adds,
        "rng_state": self._rng.bit_generator.state,
    }

  def save(self, path: str) -> None:
    """Writes the buffer (arrays, cursor, counters, RNG state) to ``path``.

    One uncompressed ``.npz`` file, written exactly at ``path`` (no suffix is
    added). Atomic: the data goes to a temporary file in the same directory,
    which is flushed, fsynced and then renamed over ``path`` with
    ``os.replace``; on any error the temporary file is removed and an existing
    file at ``path`` is left untouched.

    Args:
      path: destination file.
    """
    _npz_io.atomic_savez(
        path, self._metadata(),
        {key: getattr(self, "_" + key) for key in _ARRAY_KEYS})

  @classmethod
  def load(cls, path: str) -> "FrameStackReplay":
    """Restores a buffer written by ``save``, exactly.

    The restored buffer continues the same ``sample`` sequence (and accepts
    the same ``add`` calls) as the saved object would have.

    Args:
      path: a file written by ``save``.

    Returns:
      The restored ``FrameStackReplay``.

    Raises:
      ValueError: if the file is not a compatible ``FrameStackReplay`` save.
    """
    meta, arrays = _npz_io.read_npz(path, _KIND, _FORMAT_VERSION, _ARRAY_KEYS)
    replay = cls(meta["capacity"], tuple(meta["obs_shape"]),
                 obs_dtype=np.dtype(meta["obs_dtype"]), seed=meta["seed"],
                 check_contiguity=meta["check_contiguity"])
    _npz_io.restore_arrays(
        path, arrays,
        {key: getattr(replay, "_" + key) for key in _ARRAY_KEYS})
    replay._cursor = meta["cursor"]
    replay._new_episode = meta["new_episode"]
    replay._num_valid = meta["num_valid"]
    replay._slots_used = meta["slots_used"]
    replay._num_adds = meta["num_adds"]
    if replay._num_valid != int(np.count_nonzero(replay._starts)):
      raise ValueError(f"{path}: num_valid does not match the starts array.")
    replay._rng.bit_generator.state = meta["rng_state"]
    return replay

  def __repr__(self) -> str:
    return (f"FrameStackReplay(capacity={self._capacity}, "
            f"obs_shape={self._obs_shape}, obs_dtype={self._obs_dtype}, "
            f"len={len(self)})")
