"""``MultiStreamReplay``: one replay buffer per environment of a vector.

With N environments stepped together, each env's transitions form their own
stream (an Atari frame stack must only see frames of its own env), so each
env gets its own buffer of ``capacity // N`` slots. ``sample`` draws uniformly
from the union of the streams' valid transitions: the number of draws per
stream is multinomial with probabilities proportional to the streams'
``len``, then each stream samples its share, and the batch is concatenated
in stream order.
"""

import json
import os
from typing import Any, Dict, List, Tuple, Type

import numpy as np

from sn_tf import files

from sn_tf.replay._base import _check_int
from sn_tf.replay.frame_stack import FrameStackReplay
from sn_tf.replay.uniform import UniformReplay

_STREAM_CLASSES: Dict[str, Type] = {
    "UniformReplay": UniformReplay, "FrameStackReplay": FrameStackReplay}
_FORMAT_VERSION = 1


def _stream_path(path: str, index: int) -> str:
  stem = path[:-4] if path.endswith(".npz") else path
  return f"{stem}.stream{index}.npz"


def _meta_path(path: str) -> str:
  stem = path[:-4] if path.endswith(".npz") else path
  return f"{stem}.streams.json"


class MultiStreamReplay:
  """N buffers of one class behind one ``sample``.

  Args:
    stream_cls: ``UniformReplay`` or ``FrameStackReplay``.
    num_streams: N >= 1, one stream per environment.
    capacity: total slots; each stream gets ``capacity // N`` (>= 2).
    obs_shape, obs_dtype: as for ``stream_cls``.
    seed: int >= 0; stream i is seeded ``seed + 1 + i``, the stream choice
      uses ``seed``.
  """

  def __init__(self, stream_cls: Type, num_streams: int, capacity: int,
               obs_shape: Tuple[int, ...], obs_dtype: Any, seed: int):
    if stream_cls.__name__ not in _STREAM_CLASSES:
      raise ValueError(f"stream_cls must be one of {sorted(_STREAM_CLASSES)}, "
                       f"got {stream_cls!r}.")
    num_streams = _check_int("num_streams", num_streams, 1)
    capacity = _check_int("capacity", capacity, 2 * num_streams)
    seed = _check_int("seed", seed, 0)
    self._stream_cls = stream_cls
    self._seed = seed
    self._rng = np.random.default_rng(seed)
    self._streams = [stream_cls(capacity // num_streams, obs_shape, obs_dtype,
                                seed=seed + 1 + i)
                     for i in range(num_streams)]

  @property
  def streams(self) -> List[Any]:
    return list(self._streams)

  @property
  def num_streams(self) -> int:
    return len(self._streams)

  @property
  def nbytes(self) -> int:
    return sum(s.nbytes for s in self._streams)

  def __len__(self) -> int:
    return sum(len(s) for s in self._streams)

  def add(self, stream: int, *args, **kwargs) -> None:
    """``streams[stream].add(*args, **kwargs)``."""
    self._streams[stream].add(*args, **kwargs)

  def end_episode(self, stream: int) -> None:
    self._streams[stream].end_episode()

  def sample(self, batch_size: int) -> Dict[str, np.ndarray]:
    """A batch drawn uniformly from all streams' valid transitions; the
    same dict of arrays as the streams' ``sample``."""
    batch_size = _check_int("batch_size", batch_size, 1)
    sizes = np.array([len(s) for s in self._streams], np.float64)
    if sizes.sum() < 1:
      raise ValueError("Cannot sample: the replay buffer holds no valid "
                       "transition yet (len(buffer) == 0).")
    counts = self._rng.multinomial(batch_size, sizes / sizes.sum())
    parts = [s.sample(int(c)) for s, c in zip(self._streams, counts) if c > 0]
    if len(parts) == 1:
      return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  def save(self, path: str) -> None:
    """Writes stream i to ``<path stem>.stream<i>.npz`` and the stream count
    and RNG state to ``<path stem>.streams.json`` (each write atomic)."""
    for i, stream in enumerate(self._streams):
      stream.save(_stream_path(path, i))
    meta = dict(format_version=_FORMAT_VERSION,
                stream_class=self._stream_cls.__name__,
                num_streams=len(self._streams), seed=self._seed,
                rng_state=self._rng.bit_generator.state)
    with files.atomic_write(_meta_path(path)) as f:
      json.dump(meta, f)

  @classmethod
  def load(cls, path: str) -> "MultiStreamReplay":
    """Restores a buffer written by ``save`` (same ``path``), exactly."""
    meta_file = _meta_path(path)
    if not os.path.isfile(meta_file):
      raise ValueError(f"{meta_file} is missing: not a MultiStreamReplay save.")
    with open(meta_file) as f:
      meta = json.load(f)
    if meta.get("format_version") != _FORMAT_VERSION:
      raise ValueError(f"{meta_file}: format_version {meta.get('format_version')!r}, "
                       f"this code reads {_FORMAT_VERSION}.")
    stream_cls = _STREAM_CLASSES[meta["stream_class"]]
    replay = cls.__new__(cls)
    replay._stream_cls = stream_cls
    replay._seed = meta["seed"]
    replay._rng = np.random.default_rng(meta["seed"])
    replay._rng.bit_generator.state = meta["rng_state"]
    replay._streams = [stream_cls.load(_stream_path(path, i))
                       for i in range(meta["num_streams"])]
    return replay

  def __repr__(self) -> str:
    return (f"MultiStreamReplay({self._stream_cls.__name__} x "
            f"{len(self._streams)}, len={len(self)})")
