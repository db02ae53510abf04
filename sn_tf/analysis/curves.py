"""Learning curves from run directories' ``metrics.csv``.

Runs that share a label are one configuration over seeds: the plot shows their
mean and a 95% stratified-bootstrap confidence band per evaluation step,
computed with ``rliable`` (Agarwal et al., 2021).
"""

import collections
import csv
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from sn_tf.logs import CSV_FILE, read_csv

BOOTSTRAP_REPS = 2000


def load_curve(run_dir: str, metric: str = "eval/return") -> Dict[str, np.ndarray]:
  """``{"step": [N], "value": [N]}`` of ``metric`` from one run directory."""
  path = os.path.join(run_dir, CSV_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"run directory {run_dir!r} has no {CSV_FILE}.")
  rows = read_csv(path)
  if not rows:
    raise ValueError(f"run directory {run_dir!r} has no rows in {CSV_FILE}.")
  if metric not in rows[0]:
    raise ValueError(f"metric {metric!r} is not in {path}; columns: "
                     f"{', '.join(rows[0])}.")
  return {"step": np.array([int(float(r["step"])) for r in rows]),
          "value": np.array([float(r[metric]) for r in rows])}


def group_runs(run_dirs: Sequence[str],
               labels: Sequence[str]) -> "collections.OrderedDict[str, List[str]]":
  """``{label: [run_dir, ...]}`` in first-appearance order of the labels."""
  if len(run_dirs) != len(labels):
    raise ValueError(f"need one label per run directory: {len(labels)} labels "
                     f"for {len(run_dirs)} runs.")
  groups = collections.OrderedDict()
  for run_dir, label in zip(run_dirs, labels):
    groups.setdefault(label, []).append(run_dir)
  return groups


def stack_curves(run_dirs: Sequence[str],
                 metric: str = "eval/return") -> Tuple[np.ndarray, np.ndarray]:
  """``(steps [T], values [num_runs, T])`` over the steps every run reached.

  Raises ``ValueError`` naming the runs when they share no evaluation step.
  """
  curves = [load_curve(d, metric) for d in run_dirs]
  common = curves[0]["step"]
  for c in curves[1:]:
    common = np.intersect1d(common, c["step"])
  if common.size == 0:
    raise ValueError(f"runs {', '.join(run_dirs)} share no evaluation step; "
                     "they cannot be averaged (use distinct labels).")
  values = np.stack([c["value"][np.searchsorted(c["step"], common)]
                     for c in curves])
  return common, values


def mean_and_ci(values: np.ndarray, seed: int = 0,
                reps: int = BOOTSTRAP_REPS) -> Tuple[np.ndarray, np.ndarray]:
  """Mean over runs and its 95% bootstrap CI for ``values [num_runs, T]``.

  Returns ``(mean [T], ci [2, T])``; with one run the CI is the run itself.
  Each step is a stratum of rliable's stratified bootstrap (runs resampled per
  step), as in rliable's sample-efficiency curves.
  """
  mean = values.mean(axis=0)
  if values.shape[0] < 2:
    return mean, np.stack([mean, mean])
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  np.random.seed(seed)  # rliable draws from NumPy's global generator.
  _, cis = rly.get_interval_estimates({"x": values},
                                      lambda x: np.mean(x, axis=0), reps=reps)
  return mean, cis["x"]


def interval_curves(matrices: Dict[str, np.ndarray], reps: int = BOOTSTRAP_REPS,
                    seed: int = 0) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
  """Mean over runs and tasks at each step, with its 95% stratified-bootstrap
  CI (rliable: runs resampled within each task).

  Args:
    matrices: ``{label: [num_runs, num_tasks, T]}`` scores.

  Returns:
    ``{label: (mean [T], ci [2, T])}``; with one run per task the CI is the
    mean itself.
  """
  out = {}
  one = {k: m for k, m in matrices.items() if m.shape[0] < 2}
  for label, m in one.items():
    mean = m.mean(axis=(0, 1))
    out[label] = (mean, np.stack([mean, mean]))
  several = {k: m for k, m in matrices.items() if k not in one}
  if several:
    from rliable import library as rly  # pylint: disable=g-import-not-at-top
    np.random.seed(seed)  # rliable draws from NumPy's global generator.
    points, cis = rly.get_interval_estimates(
        several, lambda x: np.mean(x, axis=(0, 1)), reps=reps)
    out.update({k: (np.asarray(points[k]), np.asarray(cis[k])) for k in several})
  return {k: out[k] for k in matrices}


def separation_step(steps: np.ndarray, ci_a: np.ndarray,
                    ci_b: np.ndarray) -> Optional[int]:
  """The first of ``steps`` from which the intervals ``ci_a``, ``ci_b``
  (``[2, T]``) are disjoint at that step and every later one; None if they
  overlap at the last step."""
  apart = (ci_a[0] > ci_b[1]) | (ci_b[0] > ci_a[1])
  if not apart[-1]:
    return None
  first = len(apart)
  while first > 0 and apart[first - 1]:
    first -= 1
  return int(steps[first])


def plot_runs(run_dirs: Sequence[str], labels: Sequence[str], out_png: str,
              metric: str = "eval/return", title: str = "") -> str:
  """One line per label (mean over its runs, 95% CI band), saved as PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  groups = group_runs(run_dirs, labels)
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, dirs in groups.items():
    steps, values = stack_curves(dirs, metric)
    mean, ci = mean_and_ci(values)
    name = label if len(dirs) == 1 else f"{label} (n={len(dirs)})"
    line, = ax.plot(steps, mean, marker="o", markersize=3, label=name)
    if len(dirs) > 1:
      ax.fill_between(steps, ci[0], ci[1], color=line.get_color(), alpha=0.2,
                      linewidth=0)
  return _save_plot(plt, fig, ax, "env steps", metric, title, out_png)


def _save_plot(plt, fig, ax, xlabel: str, ylabel: str, title: str,
               out_png: str) -> str:
  """Labels, grid and legend of a one-panel plot, saved as ``out_png``."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
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


def final_table(run_dirs: Sequence[str], labels: Sequence[str],
                metric: str = "eval/return") -> List[Dict[str, object]]:
  """Per label: the final ``metric`` of each run, their mean and 95% CI.

  "Final" is the last step every run of the label reached. Rows are dicts with
  keys ``label, runs, step, mean, ci_low, ci_high, values``.
  """
  rows = []
  for label, dirs in group_runs(run_dirs, labels).items():
    steps, values = stack_curves(dirs, metric)
    mean, ci = mean_and_ci(values[:, -1:])
    rows.append({"label": label, "runs": len(dirs), "step": int(steps[-1]),
                 "mean": float(mean[0]), "ci_low": float(ci[0, 0]),
                 "ci_high": float(ci[1, 0]),
                 "values": [float(v) for v in values[:, -1]]})
  return rows


def markdown_table(rows: Sequence[Dict[str, object]], metric: str) -> str:
  """``final_table`` rows as a markdown table."""
  lines = [f"| config | runs | step | mean {metric} | 95% CI | per run |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    per_run = ", ".join(f"{v:g}" for v in r["values"])
    lines.append(f"| {r['label']} | {r['runs']} | {r['step']} | {r['mean']:.3f} "
                 f"| [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {per_run} |")
  return "\n".join(lines) + "\n"


def _created(event_path: str) -> float:
  """When a TensorBoard event file was created: the wall time of its first
  event (the writer's file-version record). Times on disk are not used: they
  do not survive a copy or a git checkout."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for event in tf.compat.v1.train.summary_iterator(event_path):
    return event.wall_time
  return float("inf")


def logged_scalars(run_dir: str, tags: Sequence[str]) -> Dict[str, Dict[int, float]]:
  """``{tag: {step: value}}`` of the TensorBoard scalars a run logged under
  ``<run_dir>/train`` (every ``log_every`` steps). A step logged twice (a
  resumed run logs again the windows after its checkpoint) keeps its last
  value, in the order the event files were created."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  paths = tf.io.gfile.glob(os.path.join(run_dir, "train", "events.out.*"))
  if not paths:
    raise ValueError(f"run directory {run_dir!r} has no TensorBoard logs "
                     "under train/.")
  paths.sort(key=lambda p: (_created(p), p))
  out: Dict[str, Dict[int, float]] = {tag: {} for tag in tags}
  for path in paths:
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag in out:
          out[value.tag][int(event.step)] = float(tf.make_ndarray(value.tensor))
  return out


def iteration_train_returns(run_dir: str, iteration_steps: int
                            ) -> List[Dict[str, float]]:
  """The mean return of the training episodes that ended in each iteration
  of ``iteration_steps`` env steps (Dopamine's per-iteration training
  return), from the logging windows' ``train/return`` (mean of the window's
  episodes) and ``train/episodes`` (their number).

  Returns:
    ``[{"iteration", "first_step", "last_step", "episodes", "return"}]``,
    iteration ``k`` covering steps ``(k N, (k + 1) N]``; ``return`` is NaN
    for an iteration in which no episode ended. Only iterations whose last
    window was logged are listed.

  Raises:
    ValueError: the logging period does not divide ``iteration_steps``.
  """
  scalars = logged_scalars(run_dir, ("train/return", "train/episodes"))
  episodes = scalars["train/episodes"]
  if not episodes:
    raise ValueError(f"run directory {run_dir!r} logged no train/episodes.")
  steps = sorted(episodes)
  period = steps[0] if len(steps) == 1 else int(np.min(np.diff(steps)))
  if iteration_steps % period:
    raise ValueError(f"iteration_steps={iteration_steps} is not a multiple of "
                     f"the run's logging period ({period} steps).")
  rows = []
  for k in range(steps[-1] // iteration_steps):
    lo, hi = k * iteration_steps, (k + 1) * iteration_steps
    window = [s for s in steps if lo < s <= hi]
    n = sum(episodes[s] for s in window)
    total = sum(episodes[s] * scalars["train/return"][s] for s in window
                if episodes[s] > 0)
    rows.append(dict(iteration=k, first_step=lo + 1, last_step=hi,
                     episodes=int(n), **{"return": total / n if n else float("nan")}))
  return rows


def read_reference(path: str) -> Dict[int, np.ndarray]:
  """A published agent's per-iteration training returns, from a CSV with
  columns ``seed,iteration,value``: iteration -> its values over seeds.

  Raises:
    ValueError: a column is missing, or a seed lists an iteration twice.
  """
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows or not {"seed", "iteration", "value"} <= set(rows[0]):
    raise ValueError(f"{path}: expected the columns seed,iteration,value.")
  seen, out = set(), collections.defaultdict(list)
  for r in rows:
    key = (r["seed"], int(r["iteration"]))
    if key in seen:
      raise ValueError(f"{path}: seed {key[0]} lists iteration {key[1]} twice.")
    seen.add(key)
    out[key[1]].append(float(r["value"]))
  return {k: np.asarray(v) for k, v in sorted(out.items())}


def iteration_rows(run_dirs: Sequence[str], labels: Sequence[str],
                   iteration_steps: int,
                   reference: Optional[Dict[int, np.ndarray]] = None
                   ) -> List[Dict[str, object]]:
  """Each run's mean training-episode return per iteration
  (``iteration_train_returns``), beside the reference seeds' range.

  Returns:
    Dicts with keys ``label, iteration, first_step, last_step, episodes,
    return`` and, when the reference has the iteration, ``ref_min, ref_max,
    ref_mean, ref_seeds, within`` (the return lies in [ref_min, ref_max]).
  """
  rows = []
  for run_dir, label in zip(run_dirs, labels):
    for r in iteration_train_returns(run_dir, iteration_steps):
      row = dict(label=label, **r)
      if reference is not None and r["iteration"] in reference:
        ref = reference[r["iteration"]]
        row.update(ref_min=float(ref.min()), ref_max=float(ref.max()),
                   ref_mean=float(ref.mean()), ref_seeds=len(ref),
                   within=bool(ref.min() <= r["return"] <= ref.max()))
      rows.append(row)
  return rows


def iteration_markdown(rows: Sequence[Dict[str, object]],
                       reference_label: str = "reference") -> str:
  """``iteration_rows`` as a markdown table."""
  lines = [f"| run | iteration | env steps | episodes | mean training return | "
           f"{reference_label}: seeds, range (mean) | within |",
           "|---|---|---|---|---|---|---|"]
  for r in rows:
    ref, within = "-", "-"
    if "ref_min" in r:
      ref = (f"{r['ref_seeds']}, {r['ref_min']:.1f} to {r['ref_max']:.1f} "
             f"({r['ref_mean']:.1f})")
      within = "yes" if r["within"] else "no"
    lines.append(f"| {r['label']} | {r['iteration']} | {r['first_step']}-"
                 f"{r['last_step']} | {r['episodes']} | {r['return']:.1f} | "
                 f"{ref} | {within} |")
  return "\n".join(lines) + "\n"


def plot_iterations(rows: Sequence[Dict[str, object]], out_png: str,
                    reference: Optional[Dict[int, np.ndarray]] = None,
                    reference_label: str = "reference", title: str = "") -> str:
  """Mean training return per iteration: one line per run, the reference
  seeds as a band (their range) around their mean."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  last = max(int(r["iteration"]) for r in rows)
  if reference:
    its = [k for k in reference if k <= last]
    lo = [reference[k].min() for k in its]
    hi = [reference[k].max() for k in its]
    n = len(reference[its[0]])
    ax.fill_between(its, lo, hi, color="grey", alpha=0.25, linewidth=0,
                    label=f"{reference_label} ({n} seeds, range)")
    ax.plot(its, [reference[k].mean() for k in its], color="grey",
            linestyle="--", label=f"{reference_label} (mean)")
  for label in dict.fromkeys(r["label"] for r in rows):
    mine = [r for r in rows if r["label"] == label]
    ax.plot([r["iteration"] for r in mine], [r["return"] for r in mine],
            marker="o", label=label)
  ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # whole iterations
  return _save_plot(plt, fig, ax, "iteration", "mean training-episode return",
                    title, out_png)
