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

import numbers
import operator
from typing import Any, Dict, Tuple

import numpy as np

from sn_tf.replay import _npz_io

_FORMAT_VERSION = 1
# Named in load errors only: version 1 metadata has no "kind" entry.
_KIND = "UniformReplay"
_ARRAY_KEYS = ("obs", "action", "reward", "terminal", "starts")
# Rejection sampling redraws invalid candidates at most this many rounds, then
# draws the rest directly from the list of valid slots (same distribution).
_MAX_REJECTION_ROUNDS = 32


def _check_int(name: str, value: Any, minimum: int) -> int:
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < minimum):
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
  return int(value)


class UniformReplay:
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

  def __init__(self, capacity: int, obs_shape: Tuple[int, ...],
               obs_dtype=np.uint8, seed: int = 0,
               check_contiguity: bool = False):
    capacity = _check_int("capacity", capacity, 2)
    try:
      obs_shape = tuple(obs_shape)
    except TypeError:
      raise ValueError(f"obs_shape must be a tuple of ints >= 1, got "
                       f"{obs_shape!r}.") from None
    for dim in obs_shape:
      _check_int("each obs_shape dimension", dim, 1)
    obs_shape = tuple(int(dim) for dim in obs_shape)
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
    self._obs_dtype = obs_dtype
    self._seed = seed
    self._check_contiguity = check_contiguity
    self._rng = np.random.default_rng(seed)

    self._obs = np.zeros((capacity,) + obs_shape, obs_dtype)  # [N, *obs_shape]
    self._action = np.zeros((capacity,), np.int32)            # [N]
    self._reward = np.zeros((capacity,), np.float32)          # [N]
    self._terminal = np.zeros((capacity,), np.bool_)          # [N]
    self._starts = np.zeros((capacity,), np.bool_)            # [N] sampleable

    # Slot of the current observation s_t: where the next add() writes its
    # transition. Within an episode that slot already holds s_t.
    self._cursor = 0
    self._new_episode = True  # the next add() starts an episode
    self._num_valid = 0       # == count_nonzero(self._starts)
    self._slots_used = 0      # slots ever written, capped at capacity
    self._num_adds = 0

  # ---------------------------------------------------------------- properties

  @property
  def capacity(self) -> int:
    """Number of observation slots (at most ``capacity - 1`` transitions)."""
    return self._capacity

  @property
  def obs_shape(self) -> Tuple[int, ...]:
    return self._obs_shape

  @property
  def obs_dtype(self) -> np.dtype:
    return self._obs_dtype

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

  def _write_obs(self, slot: int, value: np.ndarray) -> None:
    """Writes an observation, invalidating the transition that began there."""
    self._obs[slot] = value
    if self._starts[slot]:
      self._starts[slot] = False
      self._num_valid -= 1

  def add(self, obs, action: int, reward: float, next_obs, terminal: bool,
          episode_end: bool) -> None:
    """Adds one transition ``(s_t, a_t, r_{t+1}, s_{t+1})``.

    Args:
      obs: ``s_t``, ``[*obs_shape]``. Within an episode it must equal the
        previous call's ``next_obs`` (see the class docstring) and is not
        stored again.
      action: ``a_t``, an integer.
      reward: ``r_{t+1}``.
      next_obs: ``s_{t+1}``, ``[*obs_shape]``.
      terminal: ``s_{t+1}`` is a true terminal state (bootstrap discount 0).
      episode_end: the episode stops after this transition (terminal, or
        truncated by a time limit); the next ``add`` starts a new episode
        whose ``obs`` is not ``next_obs``. Must be True when ``terminal`` is.

    Raises:
      ValueError: on a wrong observation shape or dtype kind, ``terminal``
        without ``episode_end``, or (with ``check_contiguity``) an ``obs``
        that differs from the previous ``next_obs`` within an episode.
    """
    obs = self._as_obs("obs", obs)
    next_obs = self._as_obs("next_obs", next_obs)
    action = operator.index(action)
    terminal = bool(terminal)
    episode_end = bool(episode_end)
    if terminal and not episode_end:
      raise ValueError("terminal=True requires episode_end=True.")

    n = self._capacity
    slot = self._cursor
    if self._new_episode:
      self._write_obs(slot, obs)
    elif self._check_contiguity and not np.array_equal(
        obs.astype(self._obs_dtype, copy=False), self._obs[slot]):
      raise ValueError(
          "obs differs from the previous next_obs within an episode; pass "
          "episode_end=True on the previous add() if a new episode began.")
    nxt = (slot + 1) % n
    self._write_obs(nxt, next_obs)
    self._action[slot] = action
    self._reward[slot] = reward
    self._terminal[slot] = terminal
    # starts[slot] is False here: _write_obs cleared it when s_t was written
    # (above, or as the previous add's next_obs).
    self._starts[slot] = True
    self._num_valid += 1

    self._num_adds += 1
    self._slots_used = min(n, self._slots_used + (2 if self._new_episode
                                                  else 1))
    # The final observation's slot keeps starts == False; skip past it.
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
    # s_t and s_{t+1} in one gather, [2B, *obs_shape]: one large allocation
    # instead of two (several times faster for Atari frames, where fresh
    # large allocations page-fault).
    both = self._obs[np.concatenate([idx, (idx + 1) % self._capacity])]
    return {
        "obs": both[:batch_size],
        "action": self._action[idx],
        "reward": self._reward[idx],
        "discount": (~self._terminal[idx]).astype(np.float32),
        "next_obs": both[batch_size:],
    }

  def _sample_indices(self, batch_size: int) -> np.ndarray:
    """Uniform draw of ``[batch_size]`` valid slots by rejection.

    Candidates come from the slots written so far. Each episode end still in
    memory costs one invalid slot (its final observation), so about half or
    more of the candidates are valid and a few vectorised rounds suffice;
    after ``_MAX_REJECTION_ROUNDS`` the rest are drawn from the explicit list
    of valid slots, which keeps the draw exactly uniform.
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
  def load(cls, path: str) -> "UniformReplay":
    """Restores a buffer written by ``save``, exactly.

    The restored buffer continues the same ``sample`` sequence (and accepts
    the same ``add`` calls) as the saved object would have.

    Args:
      path: a file written by ``save``.

    Returns:
      The restored ``UniformReplay``.

    Raises:
      ValueError: if the file is not a compatible ``UniformReplay`` save.
    """
    meta, arrays = _npz_io.read_npz(path, _KIND, _FORMAT_VERSION, _ARRAY_KEYS,
                                    check_kind=False)
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
    return (f"UniformReplay(capacity={self._capacity}, "
            f"obs_shape={self._obs_shape}, obs_dtype={self._obs_dtype}, "
            f"len={len(self)})")
