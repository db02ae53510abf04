"""Test hooks that inject faults into a training run (the fault suite).

Off unless the environment variable ``SN_TF_FAULTS`` is set; then it is a
comma-separated list of ``<point>:<n>[:<action>]`` entries: at the ``n``-th
time the run passes ``<point>``, do ``<action>``:

- ``kill`` (default): SIGKILL this process (a power cut for the run).
- ``killgroup``: SIGKILL this process's whole process group (a power cut for
  a sweep: its driver, started as a group leader, and its embedded Ray).
- ``oserror``: raise ``OSError(ENOSPC)`` (a full or unwritable disk).
- ``nan`` / ``inf``: ``value(point, x)`` returns NaN / inf instead of ``x``.

Points: ``step`` (each env iteration), ``checkpoint.mid`` (TF objects
written, replay not yet), ``checkpoint.before_rename``, ``export.mid``
(SavedModel written, not yet in place), ``csv`` (before a metrics row), and
the value points ``loss``, ``sigma``, ``rho``; in a sweep's driver,
``sweep.ledger`` (before a record is appended to its ledger).
"""

import errno
import os
import signal
from typing import Dict, Tuple

ENV = "SN_TF_FAULTS"
ACTIONS = ("kill", "killgroup", "oserror", "nan", "inf")
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
