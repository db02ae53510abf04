"""Where a run's numbers go: TensorBoard scalars, ``metrics.csv``, progress.

Metric names (fixed; docs/measures.md#metric-names lists them all):
``train/return``, ``train/episodes``, ``eval/return``, ``eval/return_std``,
``eval/episodes``, ``eval/reward_per_finished_episode``, ``loss``,
``epsilon``, ``steps_per_second``, ``sigma/<layer>``.
"""

import csv
import math
import os
import sys
import time
from typing import Dict, List, Optional

import tensorflow as tf

from sn_tf import files
from sn_tf.run_dir import METRICS as CSV_FILE


class MetricsLog:
  """TensorBoard writers under ``root/train`` and ``root/eval`` plus a CSV.

  The CSV has one row per evaluation; its columns are fixed by the first row.
  ``truncate_after(step)`` drops rows newer than a restored checkpoint, so a
  resumed run never has duplicate or orphan rows.
  """

  def __init__(self, root_dir: str):
    self._train = tf.summary.create_file_writer(os.path.join(root_dir, "train"))
    self._eval = tf.summary.create_file_writer(os.path.join(root_dir, "eval"))
    self._csv_path = os.path.join(root_dir, CSV_FILE)

  def scalars(self, step: int, values: Dict[str, float]) -> None:
    """Writes scalars to TensorBoard (``eval/*`` to the eval writer)."""
    for writer, prefix_eval in ((self._train, False), (self._eval, True)):
      chosen = {k: v for k, v in values.items()
                if k.startswith("eval/") == prefix_eval and v is not None
                and not (isinstance(v, float) and math.isnan(v))}
      if not chosen:
        continue
      with writer.as_default(step=step):
        for name, value in chosen.items():
          tf.summary.scalar(name, value)
      writer.flush()

  def csv_row(self, row: Dict[str, float]) -> None:
    """Appends ``row``. A row with columns the file lacks (a run resumed by
    a newer sn_tf that records more) rewrites the file with the union of
    the columns, the older rows empty in the new ones."""
    rows = read_csv(self._csv_path)
    columns = list(rows[0]) if rows else list(row)
    missing = [k for k in row if k not in columns]
    if missing:
      with files.atomic_write(self._csv_path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns + missing)
        writer.writeheader()
        writer.writerows(rows)
      columns += missing
    exists = os.path.isfile(self._csv_path) and os.path.getsize(self._csv_path) > 0
    with open(self._csv_path, "a", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=columns)
      if not exists:
        writer.writeheader()
      writer.writerow(row)
      f.flush()
      os.fsync(f.fileno())

  def truncate_after(self, step: int) -> None:
    rows = read_csv(self._csv_path)
    kept = [r for r in rows if int(float(r["step"])) <= step]
    if len(kept) == len(rows):
      return
    with files.atomic_write(self._csv_path, newline="") as f:
      if kept:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)


def read_csv(path: str) -> List[Dict[str, str]]:
  if not os.path.isfile(path):
    return []
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


class Progress:
  """A one-line progress bar on a terminal; plain log lines otherwise."""

  def __init__(self, total: int, start: int, stream=None):
    self._stream = stream or sys.stderr
    self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
    self._total = total
    self._start_step = start
    self._start_time = time.time()
    self._last_print = 0.0

  def update(self, step: int, extra: str = "", force: bool = False) -> None:
    now = time.time()
    if not force and now - self._last_print < (0.5 if self._tty else 30.0):
      return
    self._last_print = now
    elapsed = max(now - self._start_time, 1e-9)
    rate = (step - self._start_step) / elapsed
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    frac = step / self._total
    text = (f"step {step}/{self._total} ({100 * frac:5.1f}%) "
            f"{rate:7.1f} steps/s ETA {_fmt_time(eta)} {extra}")
    if self._tty:
      bar = "#" * int(20 * frac)
      self._stream.write(f"\r[{bar:20s}] {text}\033[K")
    else:
      self._stream.write(text + "\n")
    self._stream.flush()

  def close(self) -> None:
    if self._tty:
      self._stream.write("\n")
      self._stream.flush()


def _fmt_time(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "--:--"
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def mean_or_nan(values: List[float]) -> float:
  return float(sum(values) / len(values)) if values else float("nan")


def optional(value: Optional[float]) -> float:
  return float("nan") if value is None else float(value)
