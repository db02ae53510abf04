"""Learning curves from run directories' ``metrics.csv``."""

import os
from typing import Dict, List, Sequence

import numpy as np

from sn_tf.logs import CSV_FILE, read_csv


def load_curve(run_dir: str, metric: str = "eval/return") -> Dict[str, np.ndarray]:
  """``{"step": [N], "value": [N]}`` of ``metric`` from one run directory."""
  path = os.path.join(run_dir, CSV_FILE)
  rows = read_csv(path)
  if not rows:
    raise ValueError(f"run directory {run_dir!r} has no rows in {CSV_FILE}.")
  if metric not in rows[0]:
    raise ValueError(f"metric {metric!r} is not in {path}; columns: "
                     f"{', '.join(rows[0])}.")
  return {"step": np.array([int(float(r["step"])) for r in rows]),
          "value": np.array([float(r[metric]) for r in rows])}


def plot_runs(run_dirs: Sequence[str], labels: Sequence[str], out_png: str,
              metric: str = "eval/return", title: str = "") -> str:
  """One line per run (``labels[i]`` for ``run_dirs[i]``), saved as PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  if len(run_dirs) != len(labels):
    raise ValueError("need one label per run directory.")
  fig, ax = plt.subplots(figsize=(6, 4))
  for run_dir, label in zip(run_dirs, labels):
    curve = load_curve(run_dir, metric)
    ax.plot(curve["step"], curve["value"], marker="o", markersize=3, label=label)
  ax.set_xlabel("env steps")
  ax.set_ylabel(metric)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
  fig.savefig(out_png, dpi=120)
  plt.close(fig)
  return out_png


def final_values(run_dirs: Sequence[str], metric: str = "eval/return") -> List[float]:
  return [float(load_curve(d, metric)["value"][-1]) for d in run_dirs]
