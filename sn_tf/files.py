"""Writing a file so that a reader sees the old version or the new one, never
a part: the one atomic-write helper of the package."""

import contextlib
import os
import tempfile
from typing import IO, Iterator


def fsync_dir(directory: str) -> None:
  """Makes a rename in ``directory`` durable (best effort: not every OS
  allows opening a directory)."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", fsync: bool = True,
                 **open_kwargs) -> Iterator[IO]:
  """``with atomic_write(path) as f: f.write(...)`` replaces ``path`` whole.

  The data goes to a temporary file in the same directory (named
  ``.<name>.<random>.tmp``), which is flushed, fsynced (``fsync``) and renamed
  over ``path``; the directory is then fsynced. On any error the temporary
  file is removed and an existing ``path`` is left untouched.

  Args:
    path: destination file.
    mode: ``"w"`` (text) or ``"wb"`` (binary).
    fsync: fsync the file and directory (durable across a power cut).
    **open_kwargs: passed to ``open`` (e.g. ``newline=""``).
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"mode={mode!r} is not allowed; allowed: w, wb.")
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, mode, **open_kwargs) as f:
      yield f
      f.flush()
      if fsync:
        os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
  if fsync:
    fsync_dir(directory)
