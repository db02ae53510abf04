"""Atomic, self-checking checkpoints of a whole training run.

A checkpoint is a directory ``<dir>/ckpt-<step>`` holding the TF objects
(networks with u/v/sigma, optimiser slots, counters) as a ``tf.train``
checkpoint, the replay buffer, and a pickled dict of Python state (RNGs, env
state, episode accumulators). It is written into a temporary directory,
fsynced, and renamed into place, with a ``MANIFEST`` of file sizes and CRC32s:
a directory without a valid manifest is never used. Restoring tries the newest
checkpoint first and falls back to older ones with a warning naming the file
that failed.
"""

import json
import os
import pickle
import re
import shutil
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from absl import logging
import tensorflow as tf

from sn_tf import faults

MANIFEST = "MANIFEST.json"
_NAME = re.compile(r"^ckpt-(\d+)$")


def _fsync_dir(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _fsync_tree(path: str) -> None:
  for root, _, files in os.walk(path):
    for name in files:
      with open(os.path.join(root, name), "rb+") as f:
        os.fsync(f.fileno())
    _fsync_dir(root)


def _crc32(path: str) -> int:
  crc = 0
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      crc = zlib.crc32(chunk, crc)
  return crc


def remove_stale_temporaries(directory: str) -> None:
  """Deletes ``.tmp-*`` entries left by a writer killed mid-save.

  Call only while holding the run's lock, when no save can be in progress.
  """
  for name in os.listdir(directory):
    if name.startswith(".tmp-"):
      path = os.path.join(directory, name)
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      else:
        os.remove(path)


class RunCheckpointer:
  """Saves and restores ``tf_objects`` + replay + Python state.

  Args:
    directory: where ``ckpt-<step>`` directories live.
    tf_objects: trackables for ``tf.train.Checkpoint`` (e.g. ``agent=agent``).
    keep: how many complete checkpoints to keep (>= 2 so a corrupt newest one
      leaves a good one behind).
  """

  def __init__(self, directory: str, tf_objects: Dict[str, Any], keep: int = 2):
    if keep < 2:
      raise ValueError(f"keep must be >= 2, got {keep}.")
    self._dir = directory
    self._checkpoint = tf.train.Checkpoint(**tf_objects)
    self._keep = keep
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(directory)

  def steps(self) -> List[int]:
    """Steps of the checkpoint directories present, newest first."""
    found = []
    for name in os.listdir(self._dir):
      match = _NAME.match(name)
      if match:
        found.append(int(match.group(1)))
    return sorted(found, reverse=True)

  def path(self, step: int) -> str:
    return os.path.join(self._dir, f"ckpt-{step:012d}")

  def save(self, step: int, save_replay: Callable[[str], None],
           state: Dict[str, Any]) -> str:
    """Writes checkpoint ``step`` atomically and prunes old ones."""
    final = self.path(step)
    tmp = os.path.join(self._dir, f".tmp-ckpt-{step:012d}-{os.getpid()}")
    try:
      return self._save(step, final, tmp, save_replay, state)
    except OSError as e:
      shutil.rmtree(tmp, ignore_errors=True)
      kept = ", ".join(self.path(s) for s in self.steps()) or "none"
      raise OSError(e.errno, f"cannot write checkpoint {final} ({e}); nothing "
                    f"partial is left as a checkpoint; complete checkpoints: "
                    f"{kept}") from e

  def _save(self, step: int, final: str, tmp: str,
            save_replay: Callable[[str], None], state: Dict[str, Any]) -> str:
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    self._checkpoint.write(os.path.join(tmp, "tf"))
    faults.hit("checkpoint.mid")
    save_replay(os.path.join(tmp, "replay.npz"))
    with open(os.path.join(tmp, "state.pkl"), "wb") as f:
      pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    names = sorted(os.listdir(tmp))
    sizes = {name: os.path.getsize(os.path.join(tmp, name)) for name in names}
    crcs = {name: _crc32(os.path.join(tmp, name)) for name in names
            if os.path.isfile(os.path.join(tmp, name))}
    with open(os.path.join(tmp, MANIFEST), "w") as f:
      json.dump({"step": step, "files": sizes, "crc32": crcs}, f)
    _fsync_tree(tmp)
    faults.hit("checkpoint.before_rename")
    if os.path.exists(final):
      shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(self._dir)
    for old in self.steps()[self._keep:]:
      shutil.rmtree(self.path(old), ignore_errors=True)
    return final

  def _check(self, path: str) -> None:
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
      raise ValueError(f"{manifest} is missing")
    with open(manifest) as f:
      data = json.load(f)
    for name, size in data["files"].items():
      file = os.path.join(path, name)
      if not os.path.isfile(file) or os.path.getsize(file) != size:
        raise ValueError(f"{file} is missing or truncated")
    for name, crc in data.get("crc32", {}).items():  # older manifests: sizes only
      file = os.path.join(path, name)
      if _crc32(file) != crc:
        raise ValueError(f"{file} is corrupt (CRC32 mismatch)")

  def restore_latest(self, load_replay: Callable[[str], Any]
                     ) -> Optional[Tuple[int, Any, Dict[str, Any]]]:
    """Restores the newest good checkpoint: ``(step, replay, state)`` or None.

    A checkpoint that fails its manifest check or fails to load is skipped
    with a warning naming it; None means there is no checkpoint at all.

    Raises:
      RuntimeError: checkpoints exist but none of them can be restored.
    """
    steps = self.steps()
    errors = []
    for step in steps:
      path = self.path(step)
      try:
        self._check(path)
        self._checkpoint.read(os.path.join(path, "tf")).assert_consumed()
        replay = load_replay(os.path.join(path, "replay.npz"))
        with open(os.path.join(path, "state.pkl"), "rb") as f:
          state = pickle.load(f)
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("Checkpoint %s cannot be restored (%s: %s); trying an "
                        "older one.", path, type(e).__name__, e)
        errors.append(f"{path}: {e}")
        continue
      return step, replay, state
    if steps:
      raise RuntimeError("No checkpoint could be restored:\n" + "\n".join(errors))
    return None
