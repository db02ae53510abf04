"""Tests for ``sn_tf.replay._npz_io`` and the replay buffers' atomic saves.

The save atomicity tests run on both ``UniformReplay`` and
``FrameStackReplay``, which share the writer; each buffer's own test file
keeps its round-trip and foreign-file tests.
"""

import json
import os
import re
import stat
import zipfile
from typing import Type, Union

import numpy as np
import pytest

from sn_tf.replay import FrameStackReplay, UniformReplay
from sn_tf.replay import _npz_io

FRAME_SHAPE = (3, 2)
STACK = 4

Replay = Union[UniformReplay, FrameStackReplay]


class _Stream:
  """Frame-stacked episodes, as our Atari envs emit them, fed to a buffer.

  Every frame is unique. An episode lasts 1..10 steps and ends by a terminal
  or a truncation; its first observation's older frames are zero padding, or
  (one episode in three) a random mix of zero and fresh frames.
  """

  def __init__(self, replay: Replay, rng: np.random.Generator):
    self.replay = replay
    self.rng = rng
    self.num_frames = 0
    self.obs = None  # None between episodes
    self.steps_left = 0

  def _fresh(self) -> np.ndarray:
    self.num_frames += 1
    return np.full(FRAME_SHAPE, self.num_frames, np.int32)

  def step(self) -> None:
    """Adds one transition."""
    if self.obs is None:
      nonzero = self.rng.random() < 1 / 3
      frames = [self._fresh() if nonzero and self.rng.random() < 0.5
                else np.zeros(FRAME_SHAPE, np.int32)
                for _ in range(STACK - 1)]
      self.obs = np.stack(frames + [self._fresh()], axis=-1)
      self.steps_left = int(self.rng.integers(1, 11))
    next_obs = np.concatenate([self.obs[..., 1:], self._fresh()[..., None]],
                              axis=-1)
    self.steps_left -= 1
    episode_end = self.steps_left == 0
    terminal = episode_end and bool(self.rng.random() < 0.5)
    self.replay.add(self.obs, int(self.rng.integers(0, 6)),
                    float(self.rng.integers(-800, 800)) / 8.0, next_obs,
                    terminal, episode_end)
    self.obs = None if episode_end else next_obs


def _filled(replay_cls: Type[Replay], capacity: int = 23, num_adds: int = 100,
            seed: int = 5):
  replay = replay_cls(capacity, FRAME_SHAPE + (STACK,), np.int32, seed=seed,
                      check_contiguity=True)
  stream = _Stream(replay, np.random.default_rng(seed))
  for _ in range(num_adds):
    stream.step()
  for _ in range(3):
    replay.sample(32)  # advance the RNG
  return replay, stream


@pytest.fixture(params=[UniformReplay, FrameStackReplay],
                ids=lambda cls: cls.__name__)
def replay_cls(request) -> Type[Replay]:
  return request.param


# ------------------------------------------------------- buffer save atomicity


def test_save_writes_exactly_at_path_and_overwrites(tmp_path, replay_cls,
                                                    assert_same_batches):
  replay, _ = _filled(replay_cls)
  path = tmp_path / "checkpoint"  # no suffix: none is added
  replay.save(str(path))
  replay.sample(10)
  replay.save(path)  # os.PathLike works too; replaces the old file
  assert os.listdir(tmp_path) == ["checkpoint"]
  assert_same_batches(replay, replay_cls.load(path))


@pytest.mark.parametrize("failure", ["savez", "replace"])
def test_failed_save_leaves_previous_file_intact(tmp_path, monkeypatch,
                                                 replay_cls, failure):
  replay, stream = _filled(replay_cls)
  path = tmp_path / "replay.npz"
  replay.save(str(path))
  before = path.read_bytes()
  for _ in range(30):
    stream.step()

  def broken_savez(file, *args, **kwargs):
    file.write(b"partial data")
    raise OSError("disk full")

  def broken_replace(src, dst):
    raise OSError("rename failed")

  if failure == "savez":
    monkeypatch.setattr(np, "savez", broken_savez)
  else:
    monkeypatch.setattr(os, "replace", broken_replace)
  with pytest.raises(OSError):
    replay.save(str(path))
  monkeypatch.undo()
  assert path.read_bytes() == before
  assert os.listdir(tmp_path) == ["replay.npz"]
  assert len(replay_cls.load(str(path))) > 0


# ------------------------------------------------------------ the helpers


def _arrays():
  return {"b": np.arange(6, dtype=np.int32).reshape(2, 3),
          "a": np.array([True, False])}


def test_atomic_savez_layout_and_read_back(tmp_path):
  path = tmp_path / "file"
  metadata = {"kind": "Thing", "format_version": 3, "nested": {"x": [1, 2]}}
  _npz_io.atomic_savez(path, metadata, _arrays())
  assert os.listdir(tmp_path) == ["file"]
  with zipfile.ZipFile(path) as archive:
    infos = archive.infolist()
  # Uncompressed; metadata first, then the arrays in the order given.
  assert [info.filename for info in infos] == ["metadata.npy", "b.npy",
                                               "a.npy"]
  assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
  with np.load(path, allow_pickle=False) as data:
    assert json.loads(str(data["metadata"])) == metadata

  read_metadata, arrays = _npz_io.read_npz(path, "Thing", 3, ("a", "b"))
  assert read_metadata == metadata
  assert list(arrays) == ["a", "b"]
  for key, array in _arrays().items():
    np.testing.assert_array_equal(arrays[key], array)
    assert arrays[key].dtype == array.dtype


def test_atomic_savez_rejects_an_array_named_metadata(tmp_path):
  with pytest.raises(ValueError, match="metadata"):
    _npz_io.atomic_savez(tmp_path / "file", {}, {"metadata": np.zeros(2)})
  assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("dir_fsync_fails", [False, True])
def test_atomic_savez_fsyncs_the_directory_best_effort(tmp_path, monkeypatch,
                                                       dir_fsync_fails):
  real_fsync = os.fsync
  synced = []

  def fsync(fd):
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    synced.append("dir" if is_dir else "file")
    if is_dir and dir_fsync_fails:
      raise OSError("not supported")
    real_fsync(fd)

  monkeypatch.setattr(os, "fsync", fsync)
  _npz_io.atomic_savez(tmp_path / "file", {"format_version": 1}, _arrays())
  assert synced == ["file", "dir"]
  assert os.listdir(tmp_path) == ["file"]
  metadata, _ = _npz_io.read_npz(tmp_path / "file", "Thing", 1, ("a", "b"),
                                 check_kind=False)
  assert metadata == {"format_version": 1}


def test_read_npz_rejects_other_files(tmp_path):

  def write(name, **metadata):
    path = tmp_path / name
    _npz_io.atomic_savez(path, metadata, _arrays())
    return path

  foreign = tmp_path / "foreign.npz"
  np.savez(foreign, x=np.zeros(3))
  cases = [
      (foreign, {}, "is not a Thing save file."),
      (write("kind", kind="Other", format_version=1), {},
       "is not a Thing save file (kind 'Other')."),
      (write("no_kind", format_version=1), {},
       "is not a Thing save file (kind None)."),
      (write("version", kind="Thing", format_version=2), {},
       "has format version 2; this code reads version 1."),
      (write("no_version", kind="Thing"), {},
       "has format version None; this code reads version 1."),
      (write("version_unchecked_kind", format_version=2),
       dict(check_kind=False),
       "has format version 2; this code reads version 1."),
  ]
  for path, kwargs, message in cases:
    with pytest.raises(ValueError,
                       match="^" + re.escape(f"{path} {message}") + "$"):
      _npz_io.read_npz(path, "Thing", 1, ("a", "b"), **kwargs)
  # Without the kind check, a file with no (or another) kind is accepted.
  for name in ("no_kind", "kind"):
    metadata, _ = _npz_io.read_npz(tmp_path / name, "Thing", 1, ("a",),
                                   check_kind=False)
    assert metadata["format_version"] == 1
  with pytest.raises(KeyError, match="c"):
    _npz_io.read_npz(tmp_path / "no_kind", "Thing", 1, ("a", "c"),
                     check_kind=False)


def test_restore_arrays_copies_after_checking_shape_and_dtype():
  targets = {"a": np.zeros(2, bool), "b": np.zeros((2, 3), np.int32)}
  _npz_io.restore_arrays("f.npz", _arrays(), targets)
  for key, array in _arrays().items():
    np.testing.assert_array_equal(targets[key], array)

  for bad in (np.zeros((3, 2), np.int32), np.zeros((2, 3), np.int64)):
    arrays = dict(_arrays(), b=bad)
    fresh = {"a": np.zeros(2, bool), "b": np.zeros((2, 3), np.int32)}
    message = (f"f.npz: array 'b' has shape {bad.shape} and dtype "
               f"{bad.dtype}, expected (2, 3) and int32.")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
      _npz_io.restore_arrays("f.npz", arrays, fresh)


def test_restore_arrays_takes_the_used_rows_or_all_of_them():
  for rows in (1, 2):  # the first row, or (an older file) every row
    target = np.zeros((2, 3), np.int32)
    _npz_io.restore_arrays("f.npz", {"b": np.full((rows, 3), 7, np.int32)},
                           {"b": target}, rows=1)
    np.testing.assert_array_equal(target[:rows], 7)
    np.testing.assert_array_equal(target[rows:], 0)
  message = ("f.npz: array 'b' has shape (3, 3) and dtype int32, expected "
             "(1, 3) or (2, 3) and int32.")
  with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
    _npz_io.restore_arrays("f.npz", {"b": np.zeros((3, 3), np.int32)},
                           {"b": np.zeros((2, 3), np.int32)}, rows=1)
