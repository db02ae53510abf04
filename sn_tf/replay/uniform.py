"""``UniformReplay``: a lean NumPy replay buffer for 1-step C51 training.

Observations are stored once each, in a circular array of ``capacity``
observation slots. The transition ``(s_t, a_t, r_{t+1}, s_{t+1})`` starting at
slot ``i`` reads ``s_t`` from slot ``i`` and ``s_{t+1}`` from slot
``(i + 1) % capacity``; ``a_t``, ``r_{t+1}`` and the terminal flag live in
per-slot arrays next to ``s_t``. Within an episode consecutive transitions
share a slot (``s_{t+1}`` of one is ``s_t`` of the next), so an episode of
``T`` transitions fills ``T + 1`` slots: its final observation sits in a slot
where no transition starts.

A slot ``i`` can be sampled iff a transition starts there and slot
``(i + 1) % capacity`` still holds that transition's next observation. Both
conditions live in one boolean array, ``starts``: writing an observation into
slot ``j`` always clears ``starts[j]`` (whatever transition began at ``j`` lost
its first observation), and ``starts[j]`` is set again only when a transition
that begins at ``j`` is fully written, i.e. once its next observation sits in
``j + 1``. A wrapped-around cursor therefore never exposes a transition whose
next observation has been overwritten, and no transition spans two episodes.
"""

from typing import Tuple

import numpy as np

from sn_tf.replay._base import _MAX_REJECTION_ROUNDS
from sn_tf.replay._base import _check_int
from sn_tf.replay._base import _check_obs_shape
from sn_tf.replay._base import _SlotReplay


class UniformReplay(_SlotReplay):
  """Uniform replay of 1-step transitions with each observation stored once.

  ``capacity`` counts observation slots, not transitions: the buffer holds at
  most ``capacity - 1`` sampleable transitions, one fewer for every episode
  end still in memory (an episode's final observation takes a slot of its
  own). When full, the oldest observations are overwritten first.

  Contract for ``add``: within an episode (i.e. unless the previous ``add``
  had ``episode_end=True``, ``end_episode()`` was called since, or this is the
  first ``add``), ``obs`` must equal the previous call's ``next_obs``. It is
  then not written again (it already sits in the buffer); pass
  ``check_contiguity=True`` to verify this with ``np.array_equal`` on every
  ``add`` (a debugging aid, off by default). If the environment is reset
  outside ``add`` (e.g. after restoring a run whose environment state could
  not be saved), call ``end_episode()`` first.

  Memory: all arrays are allocated up front with ``np.zeros``; the OS commits
  their pages lazily, so resident memory grows as slots are first written.
  ``nbytes`` reports the full size: per slot, one observation plus 4 (action,
  int32) + 4 (reward, float32) + 1 (terminal) + 1 (starts) bytes.

  Args:
    capacity: number of observation slots (int >= 2).
    obs_shape: shape of one observation, e.g. ``(84, 84, 4)``.
    obs_dtype: NumPy dtype of the stored observations (default uint8).
    seed: seed of the buffer's own ``np.random.Generator`` (int >= 0).
    check_contiguity: verify the ``add`` contract above.
  """

  _KIND = "UniformReplay"
  # Named in load errors only: version 1 metadata has no "kind" entry.
  _KIND_IN_METADATA = False
  _FORMAT_VERSION = 1
  _ARRAY_KEYS = ("obs", "action", "reward", "terminal", "starts")

  def __init__(self, capacity: int, obs_shape: Tuple[int, ...],
               obs_dtype=np.uint8, seed: int = 0,
               check_contiguity: bool = False):
    capacity = _check_int("capacity", capacity, 2)
    obs_shape = _check_obs_shape(obs_shape, "a tuple of ints >= 1")
    super().__init__(capacity, obs_shape, obs_dtype, seed, check_contiguity)
    # [N, *obs_shape]
    self._obs = np.zeros((capacity,) + obs_shape, self._obs_dtype)

  # ----------------------------------------------------------------------- add

  def _write_obs(self, slot: int, value: np.ndarray) -> None:
    """Writes an observation, invalidating the transition that began there."""
    self._obs[slot] = value
    if self._starts[slot]:
      self._starts[slot] = False
      self._num_valid -= 1

  def _store_obs(self, obs: np.ndarray,
                 next_obs: np.ndarray) -> Tuple[int, int]:
    """Writes ``obs`` (at an episode start only) and ``next_obs``.

    Args:
      obs: ``s_t``, ``[*obs_shape]``; within an episode it already sits at
        the cursor and is only compared (with ``check_contiguity``).
      next_obs: ``s_{t+1}``, ``[*obs_shape]``.

    Returns:
      ``(slot, written)``: the cursor and the number of slots written (2 at an
      episode start, else 1).
    """
    slot = self._cursor
    if self._new_episode:
      self._write_obs(slot, obs)
    elif self._check_contiguity and not np.array_equal(
        obs.astype(self._obs_dtype, copy=False), self._obs[slot]):
      raise ValueError(
          "obs differs from the previous next_obs within an episode; pass "
          "episode_end=True on the previous add() if a new episode began.")
    self._write_obs((slot + 1) % self._capacity, next_obs)
    return slot, (2 if self._new_episode else 1)

  # -------------------------------------------------------------------- sample

  def _gather_obs(self, idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(obs, next_obs)`` at slots ``idx``: the two halves of one array."""
    batch_size = idx.shape[0]
    # s_t and s_{t+1} in one gather, [2B, *obs_shape]: one large allocation
    # instead of two (several times faster for Atari frames, where fresh
    # large allocations page-fault).
    both = self._obs[np.concatenate([idx, (idx + 1) % self._capacity])]
    return both[:batch_size], both[batch_size:]

  def _max_rejection_rounds(self) -> int:
    # This module's binding, read per call so that tests can patch it.
    return _MAX_REJECTION_ROUNDS
