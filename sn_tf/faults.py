"""Test hooks that inject faults into a training run (the fault suite).

Off unless the environment variable ``SN_TF_FAULTS`` is set; then it is a
comma-separated list of ``<point>:<n>[:<action>]`` entries: at the ``n``-th
time the run passes ``<point>``, do ``<action>``:

- ``kill`` (default): SIGKILL this process (a power cut for the run).
- ``killgroup``: SIGKILL this process's whole process group (a power cut for
  a sweep: its driver, started as a group leader, and its embedded Ray).
- ``oserror``: raise ``OSError(ENOSPC)`` (a full or unwritable disk).
- ``nan`` / ``inf``: ``value(point, x)`` returns NaN / inf instead of ``x``.
- ``pause``: write this process's id to the file named by
  ``SN_TF_FAULTS_PAUSED`` and wait there until killed, or until orphaned
  (its parent, e.g. a Ray node's raylet, is gone), then exit (a run frozen at
  a known point, for a test to remove the node it runs on).

Points: ``step`` (each env iteration), ``checkpoint.mid`` (TF objects
written, replay not yet), ``checkpoint.before_rename``, ``export.mid``
(SavedModel written, not yet in place), ``csv`` (before a metrics row), and
the value points ``loss``, ``sigma``, ``rho``; in a sweep's driver,
``sweep.ledger`` (before a record is appended to its ledger); in a sweep's
run, ``sweep.storage`` (before it reads the sweep directory's mark).
"""

import errno
import os
import signal
import time
from typing import Dict, Tuple

ENV = "SN_TF_FAULTS"
PAUSED_ENV = "SN_TF_FAULTS_PAUSED"
ACTIONS = ("kill", "killgroup", "oserror", "nan", "inf", "pause")
_counts: Dict[str, int] = {}
_plan: Dict[str, Tuple[int, str]] = {}
_loaded = [False]


def _load() -> None:
  if _loaded[0]:
    return
  _loaded[0] = True
  spec = os.environ.get(ENV, "").strip()
  for item in filter(None, (s.strip() for s in spec.split(","))):
    parts = item.split(":")
    if len(parts) not in (2, 3) or not parts[1].isdigit():
      raise ValueError(f"{ENV}={spec!r}: malformed entry {item!r}; "
                       "expected <point>:<n>[:<action>].")
    action = parts[2] if len(parts) == 3 else "kill"
    if action not in ACTIONS:
      raise ValueError(f"{ENV}={spec!r}: action {action!r} of entry {item!r} "
                       f"is unknown; allowed: {', '.join(ACTIONS)}.")
    if action == "pause" and not os.environ.get(PAUSED_ENV):
      raise ValueError(f"{ENV}={spec!r}: the action pause of entry {item!r} "
                       f"needs {PAUSED_ENV} (the file it writes when paused).")
    _plan[parts[0]] = (int(parts[1]), action)


def _due(point: str) -> str:
  _load()
  if point not in _plan:
    return ""
  _counts[point] = _counts.get(point, 0) + 1
  n, action = _plan[point]
  return action if _counts[point] == n else ""


def hit(point: str) -> None:
  """Passes ``point``; kills the process or raises if a fault is due."""
  action = _due(point)
  if action == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
  elif action == "killgroup":
    os.killpg(os.getpgrp(), signal.SIGKILL)
  elif action == "oserror":
    raise OSError(errno.ENOSPC, f"injected fault at {point}: no space left on device")
  elif action == "pause":
    _pause()


def _pause() -> None:
  parent = os.getppid()
  with open(os.environ[PAUSED_ENV], "w") as f:
    f.write(f"{os.getpid()}\n")
  while os.getppid() == parent:  # until killed, or orphaned
    time.sleep(0.2)
  os._exit(1)  # pylint: disable=protected-access


def value(point: str, x: float) -> float:
  """``x``, or NaN/inf when a fault is due at ``point``."""
  action = _due(point)
  if action == "nan":
    return float("nan")
  if action == "inf":
    return float("inf")
  return x


def reset() -> None:
  """Forgets the plan and the counts (the next hook re-reads ``SN_TF_FAULTS``)."""
  _counts.clear()
  _plan.clear()
  _loaded[0] = False
