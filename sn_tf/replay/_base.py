"""``_SlotReplay``: the state and code shared by the replay buffers.

Both buffers (``UniformReplay`` and ``FrameStackReplay``) keep ``capacity``
slots in circular arrays, filled in order by a cursor. The transition
``(s_t, a_t, r_{t+1}, s_{t+1})`` starting at slot ``i`` stores ``a_t``,
``r_{t+1}`` and the terminal flag in per-slot arrays at ``i``, and reads
``s_{t+1}`` (or its newest frame) from slot ``i + 1``. ``starts[i]`` marks the
transitions that ``sample`` may return; what invalidates one is the
subclass's business (it stores the observations).

This module holds what does not depend on how observations are stored:
argument checks, the per-slot arrays other than observations, the cursor and
counters, ``add``'s bookkeeping, the uniform draw of valid slots, and
``save``/``load`` (file I/O itself lives in ``_npz_io``).
"""

import numbers
import operator
from typing import Any, Dict, Tuple, Type, TypeVar

import numpy as np

from sn_tf.replay import _npz_io

# Rejection sampling redraws invalid candidates at most this many rounds, then
# draws the rest directly from the list of valid slots (same distribution).
# Subclass modules import it and return their own module's binding from
# ``_max_rejection_rounds`` (read per call, so that tests can patch it there).
_MAX_REJECTION_ROUNDS = 32

_ReplayT = TypeVar("_ReplayT", bound="_SlotReplay")


def _check_int(name: str, value: Any, minimum: int) -> int:
  """Returns ``value`` as an int after checking it is an int >= ``minimum``.

  Args:
    name: what ``value`` is, for the error message.
    value: the value to check (``bool`` is rejected).
    minimum: the smallest accepted value.

  Returns:
    ``int(value)``.

  Raises:
    ValueError: if ``value`` is not an integral non-bool ``>= minimum``.
  """
  if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
      or value < minimum):
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
  return int(value)


def _check_obs_shape(obs_shape: Any, expected: str) -> Tuple[int, ...]:
  """Returns ``obs_shape`` as a tuple of ints after checking every dimension.

  Args:
    obs_shape: an iterable of ints >= 1.
    expected: what ``obs_shape`` must be, for the error message when it is
      not iterable (e.g. ``"a tuple of ints >= 1"``).

  Returns:
    The dimensions, as a tuple of ``int``.

  Raises:
    ValueError: if ``obs_shape`` is not iterable or a dimension is not an
      int >= 1.
  """
  try:
    obs_shape = tuple(obs_shape)
  except TypeError:
    raise ValueError(
        f"obs_shape must be {expected}, got {obs_shape!r}.") from None
  for dim in obs_shape:
    _check_int("each obs_shape dimension", dim, 1)
  return tuple(int(dim) for dim in obs_shape)


class _SlotReplay:
  """Base of the replay buffers: one transition may start at each slot.

  Subclasses set the class attributes below, check ``capacity`` and
  ``obs_shape`` in their constructor, then call ``super().__init__`` and
  allocate their observation arrays. They implement ``_store_obs`` (used by
  ``add``) and ``_gather_obs`` (used by ``sample``), and override
  ``_max_rejection_rounds``.

  Attributes:
    _KIND: the class name, in ``repr``, load errors and (if
      ``_KIND_IN_METADATA``) the save file's metadata.
    _KIND_IN_METADATA: whether the save file's metadata has a ``kind`` entry
      (checked on load).
    _FORMAT_VERSION: the save file format version.
    _ARRAY_KEYS: the arrays saved, in file order; ``"x"`` is attribute
      ``_x``.
  """

  _KIND: str
  _KIND_IN_METADATA: bool
  _FORMAT_VERSION: int
  _ARRAY_KEYS: Tuple[str, ...]

  def __init__(self, capacity: int, obs_shape: Tuple[int, ...],
               obs_dtype: Any, seed: Any, check_contiguity: Any):
    """Checks the remaining arguments and builds the shared state.

    Args:
      capacity: number of slots, already checked by the subclass.
      obs_shape: shape of one observation, already checked by the subclass.
      obs_dtype: NumPy dtype (or ``tf.DType``) of the stored observations.
      seed: seed of the buffer's own ``np.random.Generator`` (int >= 0).
      check_contiguity: whether ``add`` verifies its contract.

    Raises:
      ValueError: if ``obs_dtype``, ``seed`` or ``check_contiguity`` is
        invalid (checked in this order).
    """
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

    self._action = np.zeros((capacity,), np.int32)    # [N]
    self._reward = np.zeros((capacity,), np.float32)  # [N]
    self._terminal = np.zeros((capacity,), np.bool_)  # [N]
    self._starts = np.zeros((capacity,), np.bool_)    # [N] sampleable

    # Slot of (the newest frame of) the current observation s_t: where the
    # next add() writes its transition. Within an episode it is stored.
    self._cursor = 0
    self._new_episode = True  # the next add() starts an episode
    self._num_valid = 0       # == count_nonzero(self._starts)
    self._slots_used = 0      # slots ever written, capped at capacity
    self._num_adds = 0

  # ---------------------------------------------------------------- properties

  @property
  def capacity(self) -> int:
    """Number of slots (at most ``capacity - 1`` transitions)."""
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
    return sum(getattr(self, "_" + key).nbytes for key in self._ARRAY_KEYS)

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

  def _store_obs(self, obs: np.ndarray,
                 next_obs: np.ndarray) -> Tuple[int, int]:
    """Stores what ``add`` keeps of ``obs`` and ``next_obs``.

    Called by ``add`` after its argument checks, before any other state
    changes. Checks the ``check_contiguity`` contract if enabled (raising
    before anything is written), writes the observations from the cursor on
    and clears ``starts`` (and ``_num_valid``) of the transitions whose data
    it overwrites.

    Args:
      obs: ``s_t``, ``[*obs_shape]``.
      next_obs: ``s_{t+1}``, ``[*obs_shape]``.

    Returns:
      ``(slot, written)``: the slot where the transition starts (the one
      before ``next_obs``'s slot) and the number of slots written.
    """
    raise NotImplementedError

  def add(self, obs, action: int, reward: float, next_obs, terminal: bool,
          episode_end: bool) -> None:
    """Adds one transition ``(s_t, a_t, r_{t+1}, s_{t+1})``.

    Args:
      obs: ``s_t``, ``[*obs_shape]``. Within an episode it must equal the
        previous call's ``next_obs``; the class docstring says what is stored
        of it.
      action: ``a_t``, an integer.
      reward: ``r_{t+1}``.
      next_obs: ``s_{t+1}``, ``[*obs_shape]``.
      terminal: ``s_{t+1}`` is a true terminal state (bootstrap discount 0).
      episode_end: the episode stops after this transition (terminal, or
        truncated by a time limit); the next ``add`` starts a new episode
        whose ``obs`` is not ``next_obs``. Must be True when ``terminal`` is.

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

    slot, written = self._store_obs(obs, next_obs)
    n = self._capacity
    nxt = (slot + 1) % n
    self._action[slot] = action
    self._reward[slot] = reward
    self._terminal[slot] = terminal
    # starts[slot] is False here: _store_obs cleared it when it wrote s_t (or
    # the previous add did, writing it as its next_obs).
    self._starts[slot] = True
    self._num_valid += 1

    self._num_adds += 1
    self._slots_used = min(n, self._slots_used + written)
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

  def _gather_obs(self, idx: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(obs, next_obs)`` of the transitions at slots ``idx``.

    Args:
      idx: ``[B]`` valid slots.

    Returns:
      Two new ``[B, *obs_shape]`` arrays of ``obs_dtype`` owned by the
      caller (possibly the two halves of one).
    """
    raise NotImplementedError

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
    obs, next_obs = self._gather_obs(idx)
    return {
        "obs": obs,
        "action": self._action[idx],
        "reward": self._reward[idx],
        "discount": (~self._terminal[idx]).astype(np.float32),
        "next_obs": next_obs,
    }

  def valid_slots(self) -> np.ndarray:
    """``[num_valid]`` slots holding a sampleable transition, ascending."""
    return np.flatnonzero(self._starts)

  def observations_at(self, slots: np.ndarray) -> np.ndarray:
    """``[B, *obs_shape]`` observations of the transitions at valid ``slots``.

    Does not touch the sampling generator.
    """
    slots = np.asarray(slots, np.int64)
    if slots.size and not self._starts[slots].all():
      raise ValueError("observations_at: some slots hold no valid transition.")
    return self._gather_obs(slots)[0]

  def _max_rejection_rounds(self) -> int:
    """Rounds of rejection sampling before the direct draw."""
    return _MAX_REJECTION_ROUNDS

  def _sample_indices(self, batch_size: int) -> np.ndarray:
    """Uniform draw of ``[batch_size]`` valid slots by rejection.

    Candidates come from the slots written so far, most of which are valid
    (the subclass docstrings say which are not: at least one final
    observation per episode end still in memory), so a few vectorised rounds
    suffice; after ``_max_rejection_rounds()`` rounds the rest are drawn from
    the explicit list of valid slots, which keeps the draw exactly uniform.
    """
    high = self._slots_used
    idx = self._rng.integers(0, high, size=batch_size)
    bad = np.flatnonzero(~self._starts[idx])
    for _ in range(self._max_rejection_rounds()):
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
    """The save file's metadata entry: arguments, cursor, counters, RNG."""
    kind = {"kind": self._KIND} if self._KIND_IN_METADATA else {}
    return {
        **kind,
        "format_version": self._FORMAT_VERSION,
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
    added), holding only the slots used so far (a buffer far from full saves
    little; the unused slots are zeros, as ``load`` recreates them). Atomic:
    the data goes to a temporary file in the same directory, which is
    flushed, fsynced and then renamed over ``path`` with
    ``os.replace``; on any error the temporary file is removed and an existing
    file at ``path`` is left untouched.

    Args:
      path: destination file.
    """
    _npz_io.atomic_savez(
        path, self._metadata(),
        {key: getattr(self, "_" + key)[:self._slots_used]
         for key in self._ARRAY_KEYS})

  @classmethod
  def load(cls: Type[_ReplayT], path: str) -> _ReplayT:
    """Restores a buffer written by ``save``, exactly.

    The restored buffer continues the same ``sample`` sequence (and accepts
    the same ``add`` calls) as the saved object would have.

    Args:
      path: a file written by ``save`` of this class.

    Returns:
      The restored buffer, an instance of this class.

    Raises:
      ValueError: if the file is not a compatible save of this class.
    """
    meta, arrays = _npz_io.read_npz(path, cls._KIND, cls._FORMAT_VERSION,
                                    cls._ARRAY_KEYS,
                                    check_kind=cls._KIND_IN_METADATA)
    replay = cls(meta["capacity"], tuple(meta["obs_shape"]),
                 obs_dtype=np.dtype(meta["obs_dtype"]), seed=meta["seed"],
                 check_contiguity=meta["check_contiguity"])
    _npz_io.restore_arrays(
        path, arrays,
        {key: getattr(replay, "_" + key) for key in cls._ARRAY_KEYS},
        rows=meta["slots_used"])
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
    return (f"{self._KIND}(capacity={self._capacity}, "
            f"obs_shape={self._obs_shape}, obs_dtype={self._obs_dtype}, "
            f"len={len(self)})")
