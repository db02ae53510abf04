"""Atomic, self-checking checkpoints of a whole training run.

A checkpoint is a directory ``<dir>/ckpt-<step>`` holding the TF objects
(networks with u/v/sigma, optimiser slots, counters) as a ``tf.train``
checkpoint, the replay buffer (``.npz``), and the Python state (RNG states,
env snapshots, episode accumulators) as data: ``state.json`` + ``state.npz``
(``sn_tf.datafiles``). Nothing in a checkpoint is a pickle, so restoring one
from somebody else cannot run code. It is written into a temporary
directory, fsynced, and renamed into place, with a ``MANIFEST`` of file sizes
and CRC32s: a directory without a valid manifest is never used. Restoring
tries the newest checkpoint first and falls back to older ones with a warning
naming the file that failed.

Checkpoints written before this format hold ``state.pkl``. Restoring refuses
them (``PickledCheckpointError``, naming the file); ``convert_pickled``
(``launchers/convert_checkpoint.py --trust_pickled_checkpoint``) rewrites
them once, for a run whose origin the user trusts.
"""

import json
import os
import re
import shutil
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from absl import logging
import tensorflow as tf

from sn_tf import datafiles
from sn_tf import faults
from sn_tf import files
from sn_tf.run_dir import RunDirectory

MANIFEST = "MANIFEST.json"
STATE = "state"  # state.json + state.npz
PICKLED_STATE = "state.pkl"  # written before the data-only format; refused
CONVERT_COMMAND = ("python launchers/convert_checkpoint.py --run_dir={run_dir} "
                   "--trust_pickled_checkpoint")


class PickledCheckpointError(RuntimeError):
  """A checkpoint keeps its Python state as a pickle, which sn_tf does not
  load (loading a pickle can run any code it names)."""
_NAME = re.compile(r"^ckpt-(\d+)$")


def _fsync_dir(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _fsync_tree(path: str) -> None:
  for root, _, names in os.walk(path):
    for name in names:
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


def _write_manifest(path: str, step: int, skip: Tuple[str, ...] = ()) -> None:
  """``MANIFEST.json`` (replaced atomically): the size and CRC32 of every file
  in ``path`` but ``skip``."""
  names = sorted(n for n in os.listdir(path)
                 if n != MANIFEST and n not in skip and not n.startswith("."))
  sizes = {name: os.path.getsize(os.path.join(path, name)) for name in names}
  crcs = {name: _crc32(os.path.join(path, name)) for name in names
          if os.path.isfile(os.path.join(path, name))}
  with files.atomic_write(os.path.join(path, MANIFEST), fsync=False) as f:
    json.dump({"step": step, "files": sizes, "crc32": crcs}, f)


def check_manifest(path: str) -> None:
  """Raises ``ValueError`` naming the file unless every file the manifest of
  checkpoint ``path`` lists has its size and CRC32."""
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
    datafiles.write(tmp, STATE, state, fsync=False)  # the tree is fsynced below
    _write_manifest(tmp, step)
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
    check_manifest(path)

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
      if (os.path.exists(os.path.join(path, PICKLED_STATE)) and
          not os.path.exists(os.path.join(path, f"{STATE}.json"))):
        raise PickledCheckpointError(
            f"{os.path.join(path, PICKLED_STATE)} is a pickle (written by "
            "sn_tf before checkpoints became data-only); loading a pickle can "
            "run any code it names, so sn_tf does not read it. If you trust "
            "where this run came from, convert its checkpoints once with: "
            + CONVERT_COMMAND.format(run_dir=os.path.dirname(self._dir)))
      try:
        self._check(path)
        self._checkpoint.read(os.path.join(path, "tf")).assert_consumed()
        replay = load_replay(os.path.join(path, "replay.npz"))
        state = datafiles.read(path, STATE)
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("Checkpoint %s cannot be restored (%s: %s); trying an "
                        "older one.", path, type(e).__name__, e)
        errors.append(f"{path}: {e}")
        continue
      return step, replay, state
    if steps:
      raise RuntimeError("No checkpoint could be restored:\n" + "\n".join(errors))
    return None


def _legacy_to_data(value: Any) -> Any:
  """The live objects of a pickled state as data: time steps, MinAtar
  environments and ALE states become what today's ``get_state`` returns."""
  # pylint: disable=g-import-not-at-top
  from tf_agents.trajectories import time_step as ts
  from sn_tf.envs import snapshots
  # pylint: enable=g-import-not-at-top
  if isinstance(value, ts.TimeStep):
    return snapshots.time_step_to_data(value)
  if type(value).__name__ == "ALEState":
    return snapshots.ale_state_to_data(value)
  if type(value).__module__.startswith("minatar") and hasattr(value, "game_name"):
    return snapshots.minatar_to_data(value)
  if isinstance(value, dict):
    return {k: _legacy_to_data(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_legacy_to_data(v) for v in value]
  if type(value) is tuple:  # pylint: disable=unidiomatic-typecheck
    return tuple(_legacy_to_data(v) for v in value)
  return value


def convert_pickled(run_dir: str, trust_pickled_checkpoint: bool = False,
                    echo: Callable[[str], None] = print) -> List[str]:
  """Rewrites the pickled checkpoints of a run as data-only ones, once.

  Loading the pickles runs whatever code they name: call this only for a run
  whose origin you trust, by passing ``trust_pickled_checkpoint=True``. Each
  ``ckpt-*/state.pkl`` (after its manifest check) is read, written as
  ``state.json`` + ``state.npz``, the manifest rewritten, and the pickle
  deleted; a converted checkpoint resumes exactly as the pickled one would.

  Args:
    run_dir: a run directory (holding ``checkpoints/``) or its
      ``checkpoints/`` directory.

  Returns:
    The checkpoint directories converted.

  Raises:
    ValueError: no checkpoint directory, pickles present but
      ``trust_pickled_checkpoint`` is False, or a pickled checkpoint that
      fails its manifest check.
  """
  directory = RunDirectory(run_dir).checkpoints
  if not os.path.isdir(directory):
    directory = run_dir
  names = sorted(n for n in (os.listdir(directory) if os.path.isdir(directory) else ())
                 if _NAME.match(n))
  if not names:
    raise ValueError(f"run_dir={run_dir!r} holds no checkpoints (ckpt-*) "
                     "directly or under checkpoints/.")
  pickled = [os.path.join(directory, n) for n in names
             if os.path.exists(os.path.join(directory, n, PICKLED_STATE))]
  if pickled and not trust_pickled_checkpoint:
    raise ValueError(
        f"{len(pickled)} pickled checkpoint(s) under {directory} "
        f"({', '.join(os.path.join(p, PICKLED_STATE) for p in pickled)}): "
        "reading them runs any code they name. Pass "
        "trust_pickled_checkpoint (--trust_pickled_checkpoint) only if you "
        "trust where this run came from.")
  import pickle  # pylint: disable=g-import-not-at-top  # the one reader, opted into
  converted = []
  for path in pickled:
    check_manifest(path)
    with open(os.path.join(path, MANIFEST)) as f:
      step = json.load(f)["step"]
    with open(os.path.join(path, PICKLED_STATE), "rb") as f:
      state = _legacy_to_data(pickle.load(f))
    # Data files, then a manifest without the pickle, then no pickle: a
    # conversion stopped anywhere leaves a checkpoint that restores (from
    # state.json once it exists) or converts again.
    datafiles.write(path, STATE, state)
    _write_manifest(path, step, skip=(PICKLED_STATE,))
    _fsync_tree(path)
    os.remove(os.path.join(path, PICKLED_STATE))
    _fsync_dir(path)
    converted.append(path)
    echo(f"converted {path}")
  return converted
