"""A clean console for the launchers: their own lines, real warnings and
errors, and none of the start-up notices known to be harmless.

``start()`` imports TensorFlow and TF-Agents' environments (which import
gym) inside ``dropping_known_notices()``: stderr captured at the
file-descriptor level, every captured line but the ``KNOWN_NOTICES`` (each
listed, with why it is harmless, in BUILD_NOTES.md) written back. It also
drops the INFO log records of installed libraries (e.g. TensorFlow's
checkpoint saver timing itself; their warnings pass) and sets TensorFlow's C++ log threshold to warnings
(``TF_CPP_MIN_LOG_LEVEL=1``, unless set). The export wraps its TFLite
conversion in ``dropping_known_notices()`` too. ``SN_TF_SHOW_NOTICES=1``
turns all of this off.

``bad_flag(message)`` is how a launcher refuses a flag value: one line
naming the flag, the value and what is allowed, one line saying where the
help is, exit status 2.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, NoReturn

SHOW_ENV = "SN_TF_SHOW_NOTICES"

# Whole lines (without their newline) that start-up prints and that say
# nothing about the run.
KNOWN_NOTICES = (
    # absl's C++ logging, before TensorFlow initialises it, announces that
    # early messages go to stderr (once per shared library that logs).
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is "
               r"called are written to STDERR"),
    # TensorFlow's notice that oneDNN kernels are on (they are: that is
    # the pinned build's default, and the golden runs depend on it).
    re.compile(r"I\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations "
               r"are on\..*"),
    # gym's deprecation notice (three lines), printed when TF-Agents'
    # environments import gym; sn_tf's envs use gymnasium.
    re.compile(r"Gym has been unmaintained since 2022 and does not support "
               r"NumPy 2\.0 amongst other critical functionality\."),
    re.compile(r"Please upgrade to Gymnasium, the maintained drop-in "
               r"replacement of Gym, or contact the authors of your software "
               r"and request that they upgrade\."),
    re.compile(r"See the migration guide at https://gymnasium\.farama\.org/"
               r"introduction/migration_guide/ for additional information\."),
    # The TFLite converter, at each export, on two options the SavedModel
    # path of the converter does not use (the conversion is unaffected).
    re.compile(r"W\d{4} [\d:. ]+\d+ tf_tfl_flatbuffer_helpers\.cc:\d+\] "
               r"Ignored (output_format|drop_control_dependency)\."),
)


def is_known_notice(line: str) -> bool:
  """Whether ``line`` (without its newline) is one of ``KNOWN_NOTICES``."""
  return any(p.fullmatch(line) for p in KNOWN_NOTICES)


def showing_notices() -> bool:
  return os.environ.get(SHOW_ENV, "") not in ("", "0")


@contextlib.contextmanager
def dropping_known_notices() -> Iterator[None]:
  """Captures stderr at the file-descriptor level (C++ and Python writes
  alike) and, on exit, writes back every line but the ``KNOWN_NOTICES``."""
  if showing_notices():
    yield
    return
  sys.stdout.flush()
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      text = captured.read().decode("utf-8", errors="replace")
      kept = [line for line in text.splitlines(keepends=True)
              if not is_known_notice(line.rstrip("\r\n"))]
      sys.stderr.write("".join(kept))
      sys.stderr.flush()


class _OwnInfoOnly(logging.Filter):
  """Drops the INFO records of installed libraries (TensorFlow's checkpoint
  saver timing itself, rliable announcing each estimate); their warnings and
  errors pass, and so does every record of sn_tf and its launchers."""

  def filter(self, record: logging.LogRecord) -> bool:
    path = record.pathname or ""
    from_library = any(f"{os.sep}{d}{os.sep}" in path
                       for d in ("site-packages", "dist-packages"))
    return record.levelno >= logging.WARNING or not from_library


def start() -> None:
  """Imports TensorFlow and TF-Agents' environments quietly (see above)."""
  if showing_notices():
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  with dropping_known_notices():
    # pylint: disable=g-import-not-at-top,unused-import
    import sn_tf  # noqa: F401  (Keras 2 as tf.keras, before TensorFlow)
    import tensorflow  # noqa: F401
    import tf_agents.environments  # noqa: F401  (imports gym)
    from absl import logging as absl_logging
    # pylint: enable=g-import-not-at-top,unused-import
  absl_logging.get_absl_handler().addFilter(_OwnInfoOnly())
  logging.getLogger("tensorflow").setLevel(logging.WARNING)


def bad_flag(message: str, program: str = "") -> NoReturn:
  """Prints ``message`` (e.g. ``--lr=-1.0 is not allowed; a number > 0.``)
  and where the help is, and exits with status 2."""
  program = program or os.path.basename(sys.argv[0])
  sys.stderr.write(f"{program}: {message}\n"
                   f"Run '{program} --help' for the flags.\n")
  sys.exit(2)
