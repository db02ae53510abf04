"""Atomic ``.npz`` save files shared by the replay buffers.

A save file is one uncompressed ``.npz`` archive: a ``metadata`` entry, a 0-d
string array holding a JSON object (which has at least ``format_version``),
followed by the named arrays in the order given. ``atomic_savez`` writes it,
``read_npz`` checks and reads it back and ``restore_arrays`` copies the arrays
into a freshly built buffer after checking their shapes and dtypes.
"""

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from sn_tf import files

PathType = Union[str, "os.PathLike[str]"]


def atomic_savez(path: PathType, metadata: Mapping[str, Any],
                 arrays: Mapping[str, np.ndarray]) -> None:
  """Writes ``metadata`` and ``arrays`` to ``path`` as one ``.npz`` file.

  The file is written exactly at ``path`` (no suffix is added), uncompressed,
  with the ``metadata`` entry first and then ``arrays`` in their order.
  Atomic: the data goes to a temporary file in the same directory, which is
  flushed, fsynced and then renamed over ``path`` with ``os.replace``; on any
  error the temporary file is removed and an existing file at ``path`` is
  left untouched. The directory is then fsynced too (best effort), so that
  the rename itself is durable.

  Args:
    path: destination file.
    metadata: JSON-serialisable entries, stored as the ``metadata`` entry.
    arrays: the arrays to store, by entry name (not ``"metadata"``).

  Raises:
    ValueError: if ``arrays`` has an entry named ``"metadata"``.
  """
  if "metadata" in arrays:
    raise ValueError("'metadata' is reserved for the metadata entry.")
  with files.atomic_write(path, "wb") as f:
    np.savez(f, metadata=np.array(json.dumps(dict(metadata))), **arrays)


def read_npz(path: PathType, kind: str, format_version: int,
             array_keys: Sequence[str], *, check_kind: bool = True
             ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
  """Reads a file written by ``atomic_savez`` after checking what it is.

  Args:
    path: the file.
    kind: what the file must be a save of (a class name, e.g.
      ``"FrameStackReplay"``); error messages name it.
    format_version: the only ``metadata["format_version"]`` accepted.
    array_keys: the arrays to read, in this order. A missing one raises
      ``KeyError`` (from ``np.load``'s archive).
    check_kind: whether ``metadata["kind"]`` must equal ``kind``. Pass False
      for a format whose metadata has no ``kind`` entry.

  Returns:
    ``(metadata, arrays)``: the decoded metadata and a dict of the arrays
    named by ``array_keys``.

  Raises:
    ValueError: naming ``path``, if the file has no metadata, is of another
      kind or has another format version.
  """
  with np.load(os.fspath(path), allow_pickle=False) as data:
    if "metadata" not in data.files:
      raise ValueError(f"{path} is not a {kind} save file.")
    metadata = json.loads(str(data["metadata"]))
    if check_kind and metadata.get("kind") != kind:
      raise ValueError(f"{path} is not a {kind} save file (kind "
                       f"{metadata.get('kind')!r}).")
    if metadata.get("format_version") != format_version:
      raise ValueError(
          f"{path} has format version {metadata.get('format_version')!r}; "
          f"this code reads version {format_version}.")
    arrays = {key: data[key] for key in array_keys}
  return metadata, arrays


def restore_arrays(path: PathType, arrays: Mapping[str, np.ndarray],
                   targets: Mapping[str, np.ndarray],
                   rows: Optional[int] = None) -> None:
  """Copies ``arrays[key]`` into ``targets[key]`` for every key of ``targets``.

  Args:
    path: the file the arrays came from (named in error messages).
    arrays: the arrays read from ``path``.
    targets: the arrays to fill, by key.
    rows: if given, an array may also hold only the first ``rows`` rows of
      its target (a buffer saves the slots it has used); the rest of the
      target is left as it is.

  Raises:
    ValueError: naming ``path`` and the key, if an array's shape or dtype
      differs from its target's (or its first ``rows`` rows').
  """
  for key, target in targets.items():
    array = arrays[key]
    shapes = [target.shape]
    if rows is not None and rows != target.shape[0]:
      shapes.insert(0, (rows,) + target.shape[1:])
    if array.shape not in shapes or array.dtype != target.dtype:
      expected = " or ".join(str(s) for s in shapes)
      raise ValueError(f"{path}: array {key!r} has shape {array.shape} "
                       f"and dtype {array.dtype}, expected "
                       f"{expected} and {target.dtype}.")
    target[:array.shape[0]] = array
