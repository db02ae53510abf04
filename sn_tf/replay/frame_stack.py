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

from typing import Tuple

import numpy as np

from sn_tf.replay._base import _MAX_REJECTION_ROUNDS
from sn_tf.replay._base import _check_int
from sn_tf.replay._base import _check_obs_shape
from sn_tf.replay._base import _SlotReplay

_MAX_STACK = int(np.iinfo(np.uint8).max)  # depth is stored as uint8


class FrameStackReplay(_SlotReplay):
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

  _KIND = "FrameStackReplay"
  _KIND_IN_METADATA = True
  _FORMAT_VERSION = 1
  _ARRAY_KEYS = ("frames", "action", "reward", "terminal", "starts", "depth")

  def __init__(self, capacity: int, obs_shape: Tuple[int, ...],
               obs_dtype=np.uint8, seed: int = 0,
               check_contiguity: bool = False):
    obs_shape = _check_obs_shape(obs_shape, "a non-empty tuple of ints >= 1")
    if not obs_shape:
      raise ValueError("obs_shape must be a non-empty tuple of ints >= 1 (its "
                       "last axis stacks the frames), got ().")
    stack = obs_shape[-1]
    if stack > _MAX_STACK:
      raise ValueError(f"obs_shape[-1] (the stack size) must be <= "
                       f"{_MAX_STACK}, got {stack}.")
    capacity = _check_int("capacity", capacity, stack + 1)
    super().__init__(capacity, obs_shape, obs_dtype, seed, check_contiguity)

    self._frame_shape = obs_shape[:-1]
    self._stack = stack
    n = capacity
    # [N, *frame_shape]
    self._frames = np.zeros((n,) + self._frame_shape, self._obs_dtype)
    self._depth = np.zeros((n,), np.uint8)  # [N] in 1..stack once written

    # Window of a transition relative to its slot: the stack - 1 older frames
    # of s_t, its newest frame, and the newest frame of s_{t+1}. [stack + 1]
    self._window_offsets = np.arange(-(stack - 1), 2)
    # Frames back from s_t's newest frame, per window position. [stack + 1]
    self._frames_back = (stack - 1) - np.arange(stack + 1)
    self._lookahead = np.arange(stack)  # slots j + d a write to j can break

  # ---------------------------------------------------------------- properties

  @property
  def frame_shape(self) -> Tuple[int, ...]:
    """Shape of one stored frame, ``obs_shape[:-1]``."""
    return self._frame_shape

  @property
  def stack_size(self) -> int:
    """Frames per observation, ``obs_shape[-1]``."""
    return self._stack

  # ----------------------------------------------------------------------- add

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

  def _store_obs(self, obs: np.ndarray,
                 next_obs: np.ndarray) -> Tuple[int, int]:
    """Writes the frames ``add`` keeps, after the ``check_contiguity`` checks.

    That is the newest frame of ``next_obs`` and, at an episode start, the
    frames of ``obs`` from its oldest nonzero one on (see the module
    docstring).

    Args:
      obs: ``s_t``, ``[*frame_shape, stack]``; read at an episode start only
        (and by the checks).
      next_obs: ``s_{t+1}``, ``[*frame_shape, stack]``.

    Returns:
      ``(slot, written)``: the slot of ``s_t``'s newest frame and the number
      of slots written.
    """
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
    next_depth = min(k, int(self._depth[slot]) + 1)
    self._write_frame((slot + 1) % n, next_obs[..., -1], next_depth)
    return slot, written

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

  def _gather_obs(self, idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(obs, next_obs)`` at slots ``idx``: the two halves of one array."""
    window = self._rebuild(idx)  # [B, stack + 1, *frame_shape]
    # One allocation for s_t and s_{t+1}. Filled one stack position at a time:
    # several times faster than one np.moveaxis copy, whose innermost loop
    # would run over only `stack` elements.
    both = np.empty((2, idx.shape[0]) + self._obs_shape, self._obs_dtype)
    for position in range(self._stack):
      both[0, ..., position] = window[:, position]
      both[1, ..., position] = window[:, position + 1]
    return both[0], both[1]

  def _max_rejection_rounds(self) -> int:
    # This module's binding, read per call so that tests can patch it.
    return _MAX_REJECTION_ROUNDS
