"""Reports over many run directories: final scores, normalised scores and
aggregate statistics with rliable (Agarwal et al., 2021), plots, an index.

A run directory is any directory holding ``config.json`` and a non-empty
``metrics.csv`` (as ``sn_tf.train`` writes them). Runs are grouped by task
and configuration label (``config_label``); the seeds of one (task, label) are
its runs. A task is a game (``config.env``), or a (game, network) pair when the
runs use more than one MinAtar network (``config.minatar_model``).

Normalisation (the paper's figures):
- Atari: human-normalised score (``atari_scores.human_normalized_score``).
- MinAtar: score / (mean final score of the baseline configuration on the
  same game and network), so the baseline is 1.0 on every task.

Aggregates (over tasks and runs, ``[num_runs, num_tasks]`` per label):
median, mean, IQM and optimality gap with 95% stratified-bootstrap CIs, and
performance profiles (fraction of runs above tau), all from rliable.

Figures for the paper's MinAtar studies come from the same rows: normalised
score per configuration (layers; per network and over networks for
schedulers), score per network with and without SN (sizes), and final
Jacobian norm against score, one point per run (smoothness).
"""

import csv
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sn_tf import files
from sn_tf import run_dir
from sn_tf.run_dir import RunDirectory
from sn_tf.analysis import atari_scores
from sn_tf.analysis import curves

BOOTSTRAP_REPS = 2000
AGGREGATES = ("median", "iqm", "mean", "optimality_gap")
# Config fields that never name a configuration.
NOT_CONFIG = ("seed", "root_dir", "env", "tf_threads", "num_steps")
# Config fields a label spells itself (``config_label``), or that make the task.
LABEL_FIELDS = ("spectral", "scheduler", "scheduler_layers", "scheduler_scope",
                "lipschitz_k", "leave_smaller", "agent", "minatar_model")
SMOOTHNESS = "smooth/jacobian_norm_mean"


# ----------------------------------------------------------------- discovery

def find_runs(root: str) -> List[str]:
  """Run directories under ``root`` (itself included), sorted."""
  if not os.path.isdir(root):
    raise ValueError(f"{root!r} is not a directory.")
  found = []
  for dirpath, dirnames, filenames in os.walk(root):
    if run_dir.CONFIG in filenames and run_dir.METRICS in filenames:
      if RunDirectory(dirpath).is_run():
        found.append(dirpath)
      dirnames[:] = []  # a run's subdirectories are not runs
    dirnames[:] = [d for d in dirnames if d not in run_dir.NOT_RUNS]
  return sorted(found)


def load_config(path: str) -> Dict[str, Any]:
  return RunDirectory(path).config()


def config_label(config: Dict[str, Any], varying: Sequence[str] = ()) -> str:
  """A readable name of a run's configuration (seed, env and net excluded).

  ``DQN`` or ``C51`` (the agent) without SN or scheduler; ``SN[-2]`` for spectral
  normalisation of layers ``-2``, with `` k=2`` for a Lipschitz target other
  than 1 and `` leave_smaller`` when only layers with sigma > k are divided;
  ``DivGrad[-2]`` etc. for a scheduler (`` per_layer`` for DivGrad's
  per-layer scope). Other fields in ``varying`` are appended as
  ``key=value``.
  """
  parts = []
  spectral = str(config.get("spectral", "none"))
  scheduler = str(config.get("scheduler", "none"))
  if spectral not in ("none", ""):
    parts.append(f"SN[{spectral}]")
    k = float(config.get("lipschitz_k", 1.0))
    if k != 1.0:
      parts.append(f"k={k:g}")
  if scheduler != "none":
    name = {"divout": "DivOut", "divgrad": "DivGrad", "muleps": "MulEps"}.get(
        scheduler, scheduler)
    parts.append(f"{name}[{config.get('scheduler_layers')}]")
    if config.get("scheduler_scope", "global") != "global":
      parts.append(str(config["scheduler_scope"]))
  if parts and config.get("leave_smaller"):
    parts.append("leave_smaller")
  if not parts:  # no SN, no scheduler: the agent itself
    parts.append(str(config.get("agent", "c51")).upper())
  for key in varying:
    if key not in LABEL_FIELDS:
      parts.append(f"{key}={config.get(key)}")
  return " ".join(parts)


def _sn_order(label: str) -> Tuple[int, Tuple[int, ...]]:
  """``SN[-2]`` before ``SN[-3]`` before ``SN[-2,-3]``: fewer layers first,
  then nearer the output; labels without ``SN[...]`` tie."""
  if not label.startswith("SN["):
    return 0, ()
  layers = label[3:label.index("]")].split(",")
  return len(layers), tuple(abs(int(x)) if x.lstrip("-").isdigit() else 0
                            for x in layers)


def model_order(model: str) -> Tuple[int, Tuple[int, ...]]:
  """Sort key of a MinAtar net name ``"c1-c2/h"``: depth, then widths."""
  convs, _, hidden = model.partition("/")
  widths = [int(w) for w in convs.split("-") if w.isdigit()]
  return len(widths), tuple(widths) + (int(hidden) if hidden.isdigit() else 0,)


def varying_fields(configs: Sequence[Dict[str, Any]]) -> List[str]:
  """Config fields (not in ``NOT_CONFIG``) whose value differs across runs."""
  keys = sorted(set().union(*configs)) if configs else []
  return [k for k in keys if k not in NOT_CONFIG and
          len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1]


def game_of(env: str) -> Tuple[str, str]:
  """``("minatar", "breakout")`` from ``"minatar:breakout"``."""
  suite, _, game = env.partition(":")
  return suite, game


# ------------------------------------------------------------------- scores

class RunSet:
  """Every run under a directory, with labels, final values and curves.

  Attributes:
    runs: ``[{"dir", "config", "game", "suite", "model", "task", "label",
      "seed"}]``; ``model`` is the MinAtar net (``None`` for Atari).
    labels: configuration labels, the baseline first, then SN, then the rest.
    games: env ids in sorted order.
    models: the nets in order of depth then width (``[None]`` for Atari).
    tasks: the games, or ``"<game> <net>"`` when there is more than one net.
  """

  def __init__(self, run_dirs: Sequence[str]):
    if not run_dirs:
      raise ValueError("no run directories (config.json + metrics.csv) found.")
    configs = [load_config(d) for d in run_dirs]
    varying = varying_fields(configs)
    suites = {game_of(c["env"])[0] for c in configs}
    if len(suites) > 1:
      raise ValueError(f"runs mix suites {sorted(suites)}; aggregate MinAtar "
                       "and Atari runs separately.")
    self.suite = suites.pop()
    models = {c.get("minatar_model") if self.suite == "minatar" else None
              for c in configs}
    self.models = sorted(models, key=lambda m: model_order(m) if m else (0, ()))
    self.runs = []
    for d, c in zip(run_dirs, configs):
      model = c.get("minatar_model") if self.suite == "minatar" else None
      task = c["env"] if len(self.models) == 1 else f"{c['env']} {model}"
      self.runs.append(dict(dir=d, config=c, game=c["env"], suite=self.suite,
                            model=model, task=task,
                            label=config_label(c, varying), seed=c.get("seed")))
    seen = list(dict.fromkeys(r["label"] for r in self.runs))
    self.labels = sorted(seen, key=lambda l: (l.split()[0] not in ("DQN", "C51"),
                                              not l.startswith("SN"),
                                              _sn_order(l), seen.index(l)))
    self.games = sorted({r["game"] for r in self.runs})
    self.tasks = [r["task"] for r in sorted(
        {r["task"]: r for r in self.runs}.values(),
        key=lambda r: (r["game"], model_order(r["model"]) if r["model"] else (0, ())))]

  @classmethod
  def from_root(cls, root: str, complete_only: bool = False) -> "RunSet":
    """The runs under ``root``; with ``complete_only``, only those whose last
    evaluation is at their ``num_steps`` (a run still going is left out)."""
    runs = find_runs(root)
    if complete_only and runs:
      runs = [d for d in runs if RunDirectory(d).is_complete()]
      if not runs:
        raise ValueError(f"no complete run under {root!r} (none has "
                         "evaluated at its num_steps yet).")
    return cls(runs)

  def on_common_seeds(self) -> "RunSet":
    """The runs whose seed has a run of the same configuration on every task
    that configuration has runs on (rliable's score matrices need the same
    seeds on every task: a study still running has some seeds done on some
    games only). ``self`` when nothing is left out."""
    keep = []
    for label in self.labels:
      runs = [r for r in self.runs if r["label"] == label]
      by_task: Dict[str, set] = {}
      for r in runs:
        by_task.setdefault(r["task"], set()).add(r["seed"])
      common = set.intersection(*by_task.values())
      keep += [r["dir"] for r in runs if r["seed"] in common]
    if len(keep) == len(self.runs):
      return self
    if not keep:
      raise ValueError("no configuration has a seed finished on every task yet.")
    return RunSet(keep)

  def select(self, game: str, label: str) -> List[Dict[str, Any]]:
    """Runs of ``label`` on ``game`` (every net)."""
    return [r for r in self.runs if r["game"] == game and r["label"] == label]

  def final(self, run: Dict[str, Any], metric: str = "eval/return") -> Tuple[int, float]:
    """``(step, value)`` of the last row of ``metric`` in one run."""
    c = curves.load_curve(run["dir"], metric)
    return int(c["step"][-1]), float(c["value"][-1])

  def score_rows(self, baseline: Optional[str] = None) -> List[Dict[str, Any]]:
    """One row per run: game, net, task, label, seed, step, score, normalised
    score, and the final smoothness measure (NaN when the run has none).

    MinAtar scores are divided by the baseline's mean final score on the
    same task (game and net).
    """
    if self.suite == "minatar":
      base = self.baseline_finals(baseline)
    rows = []
    for r in self.runs:
      step, score = self.final(r)
      if self.suite == "atari":
        norm = atari_scores.human_normalized_score(game_of(r["game"])[1], score)
      else:
        norm = score / base[r["task"]] if base[r["task"]] != 0 else float("nan")
      try:
        smooth = self.final(r, SMOOTHNESS)[1]
      except ValueError:
        smooth = float("nan")
      rows.append(dict(game=r["game"], model=r["model"], task=r["task"],
                       label=r["label"], seed=r["seed"], step=step, score=score,
                       normalized=norm, jacobian_norm=smooth, run_dir=r["dir"]))
    return rows

  def baseline_finals(self, baseline: Optional[str] = None) -> Dict[str, float]:
    """``{task: mean final score of the baseline on it}``: what MinAtar
    scores are divided by.

    Raises:
      ValueError: the baseline has no run on a task.
    """
    baseline = self.baseline_label(baseline)
    base = {}
    for task in self.tasks:
      finals = [self.final(r)[1] for r in self.runs
                if r["task"] == task and r["label"] == baseline]
      if not finals:
        raise ValueError(f"baseline {baseline!r} has no run on {task}; "
                         "MinAtar scores are normalised by it per game and net.")
      base[task] = float(np.mean(finals))
    return base

  def baseline_label(self, baseline: Optional[str]) -> str:
    if baseline is None:  # the agent without SN or scheduler, else the first
      baseline = next((l for l in ("DQN", "C51") if l in self.labels),
                      next((l for l in self.labels
                            if l.split()[0] in ("DQN", "C51")), self.labels[0]))
    if baseline not in self.labels:
      raise ValueError(f"baseline={baseline!r} is not a configuration here; "
                       f"allowed: {', '.join(self.labels)}.")
    return baseline


def score_matrices(rows: Sequence[Dict[str, Any]], tasks: Sequence[str],
                   key: str = "normalized", labels: Sequence[str] = (),
                   skip_missing: bool = False) -> Dict[str, np.ndarray]:
  """``{label: [num_runs, num_tasks]}`` for rliable.

  ``tasks`` are values of the rows' ``task`` (the games, when there is one
  net). Runs of a task are ordered by seed; a label needs the same number of
  runs on every task (rliable's matrices are rectangular), else
  ``ValueError``. With ``skip_missing``, a label's matrix covers only the
  tasks it has runs on (the sizes study puts SN on the depth-3 nets only).
  """
  out = {}
  for label in labels or dict.fromkeys(r["label"] for r in rows):
    columns = []
    for task in tasks:
      col = [r[key] for r in sorted((r for r in rows if r["label"] == label
                                     and r["task"] == task),
                                    key=lambda r: (r["seed"] is None, r["seed"]))]
      if col or not skip_missing:
        columns.append((task, col))
    counts = {len(c) for _, c in columns}
    if len(counts) != 1 or 0 in counts:
      detail = ", ".join(f"{t}: {len(c)}" for t, c in columns)
      raise ValueError(f"{label!r} has different numbers of runs per game "
                       f"({detail}); aggregates need the same seeds everywhere.")
    out[label] = np.array([c for _, c in columns], dtype=np.float64).T
  return out


def aggregate_scores(matrices: Dict[str, np.ndarray], reps: int = BOOTSTRAP_REPS,
                     seed: int = 0) -> Dict[str, Dict[str, Tuple[float, float, float]]]:
  """``{label: {aggregate: (point, ci_low, ci_high)}}`` over ``AGGREGATES``."""
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  from rliable import metrics  # pylint: disable=g-import-not-at-top

  def aggregate(x):
    return np.array([metrics.aggregate_median(x), metrics.aggregate_iqm(x),
                     metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])

  np.random.seed(seed)  # rliable draws from NumPy's global generator
  points, cis = rly.get_interval_estimates(matrices, aggregate, reps=reps)
  return {label: {name: (float(points[label][i]), float(cis[label][0, i]),
                         float(cis[label][1, i]))
                  for i, name in enumerate(AGGREGATES)}
          for label in matrices}


def probability_of_improvement(rows: Sequence[Dict[str, Any]], label: str,
                               baseline: str, reps: int = BOOTSTRAP_REPS,
                               seed: int = 0) -> Tuple[float, float, float, int]:
  """``(P(label > baseline), ci_low, ci_high, tasks)``: rliable's probability
  that a run of ``label`` scores above a run of ``baseline`` on the same task,
  averaged over the tasks both have runs on, with a 95% stratified-bootstrap
  CI.

  Raises:
    ValueError: the two share no task.
  """
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  from rliable import metrics  # pylint: disable=g-import-not-at-top
  tasks = [t for t in dict.fromkeys(r["task"] for r in rows)
           if any(r["task"] == t and r["label"] == label for r in rows)
           and any(r["task"] == t and r["label"] == baseline for r in rows)]
  if not tasks:
    raise ValueError(f"{label!r} and {baseline!r} share no game.")
  m = score_matrices(rows, tasks, labels=[label, baseline])
  np.random.seed(seed)  # rliable draws from NumPy's global generator
  points, cis = rly.get_interval_estimates(
      {"x": [m[label], m[baseline]]}, metrics.probability_of_improvement,
      reps=reps)
  return (float(np.ravel(points["x"])[0]), float(np.ravel(cis["x"])[0]),
          float(np.ravel(cis["x"])[1]),
          len(tasks))


def normalized_curves(runset: "RunSet", baseline: str, tasks: Sequence[str]
                      ) -> Tuple[np.ndarray, Dict[str, Dict[str, np.ndarray]]]:
  """``(steps [T], {label: {task: [num_runs, T]}})``: each run's
  ``eval/return`` at the evaluation steps every run reached, divided by the
  baseline's mean final score on its task (so the baseline ends at 1.0 on
  every task). A label covers the tasks it has runs on; runs are ordered by
  seed.
  """
  base = runset.baseline_finals(baseline)
  loaded = {r["dir"]: curves.load_curve(r["dir"]) for r in runset.runs
            if r["task"] in tasks}
  steps = None
  for c in loaded.values():
    steps = c["step"] if steps is None else np.intersect1d(steps, c["step"])
  out: Dict[str, Dict[str, np.ndarray]] = {}
  for label in runset.labels:
    for task in tasks:
      runs = sorted((r for r in runset.runs
                     if r["label"] == label and r["task"] == task),
                    key=lambda r: (r["seed"] is None, r["seed"]))
      if runs:
        curves_ = [loaded[r["dir"]] for r in runs]
        out.setdefault(label, {})[task] = np.array(
            [c["value"][np.searchsorted(c["step"], steps)] for c in curves_],
            dtype=np.float64) / base[task]
  return steps, out


def _normalized_curves_section(runset: "RunSet", baseline: str,
                               tasks: Sequence[str], out_dir: str, reps: int,
                               figures: List[Tuple[str, str]],
                               tables: List[Tuple[str, str]]) -> List[str]:
  """The normalised learning curves over games and per game: figure, CSV and
  the index lines (the step from which each configuration's CI and the
  baseline's stay apart)."""
  steps, per_task = normalized_curves(runset, baseline, tasks)
  if len(steps) < 2:
    return []
  # [runs, tasks, T] per label over the tasks it has (score_matrices' rule:
  # the same seeds on each).
  stack = lambda by_task: np.stack(list(by_task.values()), axis=1)
  panels = [("mean over " + ("games" if len(runset.models) == 1 else "tasks"),
             {k: stack(v) for k, v in per_task.items()})]
  panels += [(task, {k: v[task][:, None, :] for k, v in per_task.items()
                     if task in v}) for task in tasks]
  plt = _plt()
  cols = min(3, len(panels))
  rows_n = -(-len(panels) // cols)
  fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n),
                           squeeze=False)
  csv_rows, curves_by_panel = [], []
  for ax, (name, mats) in zip(axes.ravel(), panels):
    estimates = curves.interval_curves(mats, reps=reps)
    curves_by_panel.append((name, estimates))
    for label, (mean, ci) in estimates.items():
      line, = ax.plot(steps, mean, marker="o", markersize=2, label=label)
      ax.fill_between(steps, ci[0], ci[1], color=line.get_color(), alpha=0.2,
                      linewidth=0)
      csv_rows += [dict(panel=name, label=label, step=int(s), mean=float(m),
                        ci_low=float(lo), ci_high=float(hi))
                   for s, m, lo, hi in zip(steps, mean, ci[0], ci[1])]
    ax.set_title(name, fontsize="small")
    ax.set_xlabel("env steps")
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(panels):]:
    ax.set_visible(False)
  axes[0, 0].set_ylabel(f"score / final score of {baseline}")
  axes[0, 0].legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, "normalized_curves.png"), dpi=120)
  plt.close(fig)
  figures.append(("normalized_curves.png", f"evaluation score over training "
                  f"divided by {baseline}'s mean final score per task: mean "
                  "over tasks and seeds, then per task, with 95% "
                  "stratified-bootstrap bands (rliable)"))
  _write_csv(os.path.join(out_dir, "normalized_curves.csv"), csv_rows)
  tables.append(("normalized_curves.csv", "the normalised curves' means and "
                 "95% CIs per evaluation step, per panel"))
  aggregate_estimates = curves_by_panel[0][1]
  lines = ["", "## Normalised learning curves", "",
           f"Mean over tasks and seeds of the evaluation score divided by "
           f"{baseline}'s mean final score on the task, at each of the "
           f"{len(steps)} evaluation steps every run reached "
           f"({int(steps[0])} to {int(steps[-1])}); 95% stratified-bootstrap "
           "CIs. The step from which a configuration's CI and the "
           f"baseline's stay disjoint to the end:", "",
           "| configuration | CIs apart from | final mean [95% CI] |",
           "|---|---|---|"]
  base_ci = aggregate_estimates[baseline][1]
  for label, (mean, ci) in aggregate_estimates.items():
    if label == baseline:
      continue
    apart = curves.separation_step(steps, ci, base_ci)
    lines.append(f"| {label} | {'never' if apart is None else apart} | "
                 f"{mean[-1]:.3f} [{ci[0, -1]:.3f}, {ci[1, -1]:.3f}] |")
  return lines


# -------------------------------------------------------------------- report

def _write_csv(path: str, rows: Sequence[Dict[str, Any]]) -> None:
  with files.atomic_write(path, newline="", fsync=False) as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _safe(name: str) -> str:
  return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# ``{(net or "all", label): (mean, ci_low, ci_high)}``: the mean normalised
# score of each panel of the studies' figures, from the report's aggregates.
Means = Dict[Tuple[str, str], Tuple[float, float, float]]


def _game_colors(plt, games: Sequence[str]) -> Dict[str, str]:
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  return {g: cycle[i % len(cycle)] for i, g in enumerate(games)}


def plot_scores_by_config(rows: Sequence[Dict[str, Any]], runset: "RunSet",
                          out_png: str, ylabel: str, means: Means) -> None:
  """Normalised final score per configuration: every run as a dot (colour:
  game), the mean over runs and tasks with its 95% CI as a black bar. One
  panel per net and one over all nets when there is more than one net (the
  layers and schedulers figures)."""
  plt = _plt()
  panels = [("all nets" if len(runset.models) > 1 else
             (runset.models[0] or "all runs"), "all", list(rows))]
  if len(runset.models) > 1:
    panels += [(m, m, [r for r in rows if r["model"] == m]) for m in runset.models]
  colors = _game_colors(plt, runset.games)
  ncols = min(len(panels), 3)
  nrows = -(-len(panels) // ncols)
  fig, axes = plt.subplots(nrows, ncols, squeeze=False, sharey=True,
                           figsize=(max(4.5, 0.75 * len(runset.labels) + 1.5) * ncols,
                                    3.8 * nrows))
  rng = np.random.default_rng(0)
  for ax, (name, key, sel) in zip(axes.ravel(), panels):
    labels = [l for l in runset.labels if any(r["label"] == l for r in sel)]
    for i, label in enumerate(labels):
      for r in sel:
        if r["label"] == label and np.isfinite(r["normalized"]):
          ax.scatter(i + rng.uniform(-0.2, 0.2), r["normalized"], s=12,
                     color=colors[r["game"]], alpha=0.6)
      mean, low, high = means[(key, label)]
      ax.errorbar(i, mean, yerr=[[mean - low], [high - mean]], fmt="s",
                  color="black", capsize=5, markersize=5, zorder=3)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize="small")
    ax.set_title(name)
    ax.grid(axis="y", alpha=0.3)
  for ax in axes.ravel()[len(panels):]:
    ax.set_visible(False)
  axes[0, 0].set_ylabel(ylabel)
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  handles = [Line2D([0], [0], marker="o", ls="", color=colors[g]) for g in runset.games]
  handles.append(Line2D([0], [0], marker="s", ls="", color="black"))
  fig.legend(handles, [game_of(g)[1] for g in runset.games] + ["mean, 95% CI"],
             loc="upper center", ncol=len(handles), fontsize="small",
             bbox_to_anchor=(0.5, 1.02))
  fig.tight_layout(rect=(0, 0, 1, 0.95))
  fig.savefig(out_png, dpi=120, bbox_inches="tight")
  plt.close(fig)


def plot_score_per_model(rows: Sequence[Dict[str, Any]], runset: "RunSet",
                         out_png: str, ylabel: str, means: Means) -> None:
  """Score per net, one line per configuration (the sizes figure): a panel of
  raw final scores per game (mean over seeds, bars min to max) and a panel of
  the normalised score over games (mean, 95% CI)."""
  plt = _plt()
  models = runset.models
  games = runset.games
  fig, axes = plt.subplots(1, len(games) + 1, squeeze=False,
                           figsize=(3.6 * (len(games) + 1), 3.8))
  x = np.arange(len(models))
  for j, label in enumerate(runset.labels):
    offset = (j - (len(runset.labels) - 1) / 2) * 0.06
    for ax, game in zip(axes[0], games):
      xs, mean, low, high = [], [], [], []
      for i, m in enumerate(models):
        v = [r["score"] for r in rows if r["label"] == label and
             r["game"] == game and r["model"] == m]
        if v:
          xs.append(i + offset)
          mean.append(np.mean(v))
          low.append(np.mean(v) - np.min(v))
          high.append(np.max(v) - np.mean(v))
      ax.errorbar(xs, mean, yerr=[low, high], marker="o", capsize=3,
                  markersize=4, label=label)
    xs, mean, err = [], [], [[], []]
    for i, m in enumerate(models):
      if (m, label) in means:
        point, lo, hi = means[(m, label)]
        xs.append(i + offset)
        mean.append(point)
        err[0].append(point - lo)
        err[1].append(hi - point)
    axes[0, -1].errorbar(xs, mean, yerr=err, marker="o", capsize=3,
                         markersize=4, label=label)
  for ax, name in zip(axes[0], [game_of(g)[1] for g in games] + ["all games"]):
    ax.set_xticks(x)
    ax.set_xticklabels(models, rotation=45, ha="right", fontsize="x-small")
    ax.set_title(name)
    ax.grid(alpha=0.3)
  axes[0, 0].set_ylabel("final score (mean over seeds, min-max)")
  axes[0, -1].set_ylabel(ylabel)
  axes[0, -1].legend(fontsize="x-small")
  fig.tight_layout()
  fig.savefig(out_png, dpi=120, bbox_inches="tight")
  plt.close(fig)


def plot_smoothness_vs_score(rows: Sequence[Dict[str, Any]], runset: "RunSet",
                             out_png: str, ylabel: str) -> bool:
  """Final mean Jacobian norm against normalised score, one point per run,
  colour by configuration, marker by game (the smoothness figure). False
  (nothing drawn) when no run has the measure."""
  pts = [r for r in rows if np.isfinite(r["jacobian_norm"])
         and np.isfinite(r["normalized"])]
  if not pts:
    return False
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  markers = "osD^vP*X"
  for i, label in enumerate(runset.labels):
    named = False  # one legend entry per configuration
    for k, game in enumerate(runset.games):
      sel = [r for r in pts if r["label"] == label and r["game"] == game]
      if sel:
        ax.scatter([r["jacobian_norm"] for r in sel], [r["normalized"] for r in sel],
                   color=cycle[i % len(cycle)], marker=markers[k % len(markers)],
                   s=22, alpha=0.8, label=None if named else label)
        named = True
  ax.set_xscale("log")
  ax.set_xlabel("final mean ||dQ/dx||_2 (Jacobian spectral norm)")
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="x-small", ncol=2, title="configuration (marker: game "
            + ", ".join(f"{markers[k % len(markers)]}={game_of(g)[1]}"
                        for k, g in enumerate(runset.games)) + ")",
            title_fontsize="x-small")
  fig.tight_layout()
  fig.savefig(out_png, dpi=120)
  plt.close(fig)
  return True


def adam_grid(rows: Sequence[Dict[str, Any]], runset: "RunSet"
              ) -> Dict[str, Tuple[List[float], List[float], np.ndarray]]:
  """The optimiser study's Adam grid: ``{spectral: (lrs, epss, [lr, eps])}``.

  A cell's value is its mean final score over seeds divided by the best
  cell's on the same task (game and net: 1.0 is the best setting there),
  then averaged over tasks; NaN where a cell has no run. Only Adam runs
  count; ``{}`` when the runs do not vary Adam's lr and epsilon.
  """
  configs = {r["dir"]: r["config"] for r in runset.runs}
  adam = [dict(r, c=configs[r["run_dir"]]) for r in rows
          if configs[r["run_dir"]].get("optimizer", "adam") == "adam"
          and "lr" in configs[r["run_dir"]]
          and "adam_eps" in configs[r["run_dir"]]]
  lrs = sorted({r["c"]["lr"] for r in adam})
  epss = sorted({r["c"]["adam_eps"] for r in adam})
  if len(lrs) < 2 or len(epss) < 2:
    return {}
  cell_means: Dict[Tuple[str, str, float, float], float] = {}
  for key in {(r["task"], r["c"].get("spectral", "none"), r["c"]["lr"],
               r["c"]["adam_eps"]) for r in adam}:
    cell_means[key] = float(np.mean([
        r["score"] for r in adam if (r["task"], r["c"].get("spectral", "none"),
                                     r["c"]["lr"], r["c"]["adam_eps"]) == key]))
  best = {}
  for (task, _, _, _), value in cell_means.items():
    best[task] = max(best.get(task, -np.inf), value)
  out = {}
  for spec in sorted({k[1] for k in cell_means}, key=lambda s: (s != "none", len(s), s)):
    grid = np.full((len(lrs), len(epss)), np.nan)
    for i, lr in enumerate(lrs):
      for j, eps in enumerate(epss):
        values = [v / best[t] for (t, sp, l, e), v in cell_means.items()
                  if sp == spec and l == lr and e == eps and best[t] > 0]
        if values:
          grid[i, j] = float(np.mean(values))
    out[spec] = (lrs, epss, grid)
  return out


def plot_adam_grid(grids, out_png: str) -> None:
  """One heat map per SN setting of ``adam_grid``'s values over lr x eps."""
  plt = _plt()
  fig, axes = plt.subplots(1, len(grids), figsize=(4 * len(grids), 3.6),
                           squeeze=False, sharey=True)
  for ax, (spec, (lrs, epss, grid)) in zip(axes[0], grids.items()):
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", origin="lower",
                      aspect="auto")
    for i in range(len(lrs)):
      for j in range(len(epss)):
        if np.isfinite(grid[i, j]):
          ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                  fontsize="x-small", color="w" if grid[i, j] < 0.6 else "k")
    ax.set_xticks(range(len(epss)), [f"{e:g}" for e in epss], fontsize="x-small")
    if ax is axes[0, 0]:
      ax.set_yticks(range(len(lrs)), [f"{l:g}" for l in lrs], fontsize="x-small")
    ax.set_xlabel("Adam epsilon")
    ax.set_title("DQN" if spec == "none" else f"SN[{spec}]")
  axes[0, 0].set_ylabel("learning rate")
  fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8,
               label="final score / best cell's (per task)")
  fig.savefig(out_png, dpi=120, bbox_inches="tight")
  plt.close(fig)


def write_report(runs_root: str, out_dir: str, baseline: Optional[str] = None,
                 title: str = "", reps: int = BOOTSTRAP_REPS,
                 runs_name: Optional[str] = None) -> str:
  """Writes every table and figure of the runs under ``runs_root`` into
  ``out_dir`` with an ``index.md`` listing them; returns the index path.

  The index names the runs' directory by ``runs_name`` when given (e.g. the
  ``--out`` of the command that made them, for a report committed elsewhere),
  else by its path relative to ``out_dir``.
  """
  runset = RunSet.from_root(runs_root, complete_only=True)
  skipped = len(find_runs(runs_root)) - len(runset.runs)
  balanced = runset.on_common_seeds()
  unbalanced = len(runset.runs) - len(balanced.runs)
  runset = balanced
  os.makedirs(out_dir, exist_ok=True)
  figures: List[Tuple[str, str]] = []  # (file, caption)
  tables: List[Tuple[str, str]] = []
  plt = _plt()
  several = len(runset.models) > 1

  # Learning curves and measures over training, per game.
  for game in runset.games:
    dirs, labels = [], []
    for model in runset.models:
      for label in runset.labels:
        for r in runset.select(game, label):
          if r["model"] == model:
            dirs.append(r["dir"])
            labels.append(f"{label} {model}" if several else label)
    for metric, what in (("eval/return", "evaluation return"),
                         (SMOOTHNESS, "mean Jacobian spectral norm"),
                         ("smooth/grad_norm_mean", "mean greedy-Q gradient norm"),
                         ("srank", "srank of penultimate features")):
      if metric != "eval/return":
        try:
          curves.load_curve(dirs[0], metric)
        except ValueError:
          continue  # runs without measures
      name = f"curve_{_safe(game)}_{_safe(metric)}.png"
      curves.plot_runs(dirs, labels, os.path.join(out_dir, name), metric,
                       title=f"{game}: {what}")
      figures.append((name, f"{game}: {what} over training, mean over seeds "
                            "with 95% bootstrap band"))

  # Final scores and normalised scores.
  rows = runset.score_rows(baseline)
  # Run directories relative to --runs_dir, so a copied report names no
  # machine path.
  _write_csv(os.path.join(out_dir, "scores.csv"),
             [dict(r, run_dir=os.path.relpath(r["run_dir"], runs_root)) for r in rows])
  tables.append(("scores.csv", "final score of every run (raw and normalised), "
                               "final mean Jacobian norm"))
  if runset.suite == "atari":
    norm_name = "human-normalised score"
    norm_rule = ("Normalised score: (score - random) / (human - random), "
                 "per game.")
  else:
    base = runset.baseline_label(baseline)
    norm_name = f"score / final score of {base}"
    norm_rule = (f"Normalised score: a run's final score divided by the mean "
                 f"final score of {base} (the unnormalised baseline) on the "
                 f"same game" + (" and net" if several else "") +
                 f", so {base} is 1.0 on every "
                 + ("(game, net) pair." if several else "game."))
  per_game = []
  for task in runset.tasks:
    for label in runset.labels:
      sel = [r for r in rows if r["task"] == task and r["label"] == label]
      if sel:
        per_game.append(dict(
            game=sel[0]["game"], model=sel[0]["model"], label=label, runs=len(sel),
            score_mean=float(np.mean([r["score"] for r in sel])),
            score_std=float(np.std([r["score"] for r in sel])),
            normalized_mean=float(np.mean([r["normalized"] for r in sel])),
            jacobian_norm_mean=float(np.mean([r["jacobian_norm"] for r in sel]))))
  _write_csv(os.path.join(out_dir, "per_game.csv"), per_game)
  tables.append(("per_game.csv", "per game" + (" and net" if several else "") +
                 " and configuration: mean and population std (divisor n) of "
                 "final scores over seeds"))

  # Aggregates with rliable, over the tasks whose normalised scores exist
  # (a MinAtar baseline scoring 0 on a task leaves that task undefined).
  agg_tasks = [t for t in runset.tasks
               if all(np.isfinite(r["normalized"]) for r in rows if r["task"] == t)]
  excluded = [t for t in runset.tasks if t not in agg_tasks]
  notes = [norm_rule]
  if skipped:
    notes.append(f"Left out: {skipped} run(s) not yet evaluated at their "
                 "num_steps (still running or stopped).")
  if unbalanced:
    notes.append(f"Left out: {unbalanced} complete run(s) whose seed has not "
                 "finished on every game (and net) of its configuration yet; "
                 "the aggregates need the same seeds on every task.")
  if excluded:
    notes.append(f"Excluded from the aggregates (normalised score undefined: "
                 f"the baseline's final score is 0): {', '.join(excluded)}.")
  if not agg_tasks:
    raise ValueError("no game has a defined normalised score (the baseline "
                     "scores 0 everywhere); choose another --baseline.")
  agg_rows_all = [r for r in rows if r["task"] in agg_tasks]

  def aggregate_rows(sel, model=None):
    matrices = score_matrices(sel, [t for t in agg_tasks
                                    if any(r["task"] == t for r in sel)],
                              labels=[l for l in runset.labels
                                      if any(r["label"] == l for r in sel)],
                              skip_missing=True)
    agg = aggregate_scores(matrices, reps=reps)
    out = [dict(**({"model": model} if several else {}), label=label,
                tasks=matrices[label].shape[1],
                runs_per_task=matrices[label].shape[0],
                **{f"{k}{suffix}": v[i] for k, v in agg[label].items()
                   for i, suffix in enumerate(("", "_ci_low", "_ci_high"))})
           for label in agg]
    return matrices, agg, out

  matrices, agg, agg_rows = aggregate_rows(agg_rows_all, "all" if several else None)
  model_agg_rows = []
  if several:
    for model in runset.models:
      model_agg_rows += aggregate_rows(
          [r for r in agg_rows_all if r["model"] == model], model)[2]
  _write_csv(os.path.join(out_dir, "aggregates.csv"), agg_rows + model_agg_rows)
  base_label = runset.baseline_label(baseline) if runset.suite == "minatar" else None
  improvement = []
  for model in ([None] + runset.models if several else [None]):
    sel = [r for r in agg_rows_all if model is None or r["model"] == model]
    for label in runset.labels:
      if base_label is None or label == base_label or not any(
          r["label"] == label for r in sel):
        continue
      p, lo, hi, n = probability_of_improvement(sel, label, base_label, reps)
      improvement.append(dict(**({"model": model or "all"} if several else {}),
                              label=label, baseline=base_label, tasks=n,
                              probability=p, ci_low=lo, ci_high=hi))
  if improvement:
    _write_csv(os.path.join(out_dir, "improvement.csv"), improvement)
    tables.append(("improvement.csv", f"probability that a run of each "
                   f"configuration beats a run of {base_label} on the same "
                   "task, 95% CIs (rliable)"))
  tables.append(("aggregates.csv", f"median, IQM, mean and optimality gap of "
                                    f"the {norm_name} with 95% CIs" +
                 (", over all nets and per net" if several else "")))
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  from rliable import plot_utils  # pylint: disable=g-import-not-at-top
  labels = list(matrices)
  fig, axes = plot_utils.plot_interval_estimates(
      {k: np.array([agg[k][a][0] for a in AGGREGATES]) for k in labels},
      {k: np.array([[agg[k][a][1] for a in AGGREGATES],
                    [agg[k][a][2] for a in AGGREGATES]]) for k in labels},
      metric_names=["Median", "IQM", "Mean", "Optimality gap"],
      algorithms=labels, xlabel=norm_name, xlabel_y_coordinate=-0.3)
  fig.savefig(os.path.join(out_dir, "aggregates.png"), dpi=120,
              bbox_inches="tight")
  plt.close(fig)
  figures.append(("aggregates.png", f"aggregate {norm_name} over games"
                  + (" and nets" if several else "") +
                  " and runs, 95% stratified-bootstrap CIs (rliable)"))
  all_scores = np.concatenate([m.ravel() for m in matrices.values()])
  taus = np.linspace(min(0.0, float(np.nanmin(all_scores))),
                     float(np.nanmax(all_scores)) * 1.05 + 1e-9, 81)
  np.random.seed(0)
  profiles, profile_cis = rly.create_performance_profile(matrices, taus, reps=reps)
  fig, ax = plt.subplots(figsize=(6, 4))
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  colors = {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}
  plot_utils.plot_performance_profiles(
      profiles, taus, performance_profile_cis=profile_cis, colors=colors,
      xlabel=f"{norm_name} (tau)", ax=ax)
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  ax.legend([Line2D([0], [0], color=colors[l]) for l in labels], labels,
            fontsize="small")
  fig.savefig(os.path.join(out_dir, "performance_profile.png"), dpi=120,
              bbox_inches="tight")
  plt.close(fig)
  figures.append(("performance_profile.png", "performance profiles: fraction "
                  "of runs with normalised score > tau, 95% CIs (rliable)"))

  curve_lines = []
  if base_label is not None:
    curve_lines = _normalized_curves_section(runset, base_label, agg_tasks,
                                             out_dir, reps, figures, tables)

  # The studies' figures.
  means = {(r.get("model", "all"), r["label"]):
           (r["mean"], r["mean_ci_low"], r["mean_ci_high"])
           for r in agg_rows + model_agg_rows}
  plot_scores_by_config(agg_rows_all, runset,
                        os.path.join(out_dir, "scores_by_config.png"),
                        norm_name, means)
  figures.append(("scores_by_config.png", "normalised final score per "
                  "configuration: each run a dot (colour: game), mean with 95% "
                  "CI in black" + ("; over all nets, then one panel per net"
                                   if several else "")))
  if several:
    plot_score_per_model(agg_rows_all, runset,
                         os.path.join(out_dir, "score_per_model.png"),
                         norm_name, means)
    figures.append(("score_per_model.png", "final score per net, one line per "
                    "configuration: raw per game (mean over seeds, min-max) "
                    "and normalised over games (mean, 95% CI)"))
  grids = adam_grid(rows, runset)
  if grids:
    plot_adam_grid(grids, os.path.join(out_dir, "adam_grid.png"))
    figures.append(("adam_grid.png", "the optimiser study's figure: final "
                    "score over Adam's learning rate x epsilon, one panel per "
                    "SN setting; each cell's mean over seeds divided by the "
                    "best cell's on the same game (and net), averaged over "
                    "them: does SN widen the range of good settings?"))
  if plot_smoothness_vs_score(rows, runset,
                              os.path.join(out_dir, "smoothness_vs_score.png"),
                              norm_name):
    figures.append(("smoothness_vs_score.png", "final mean Jacobian norm "
                    "against normalised final score, one point per run, colour "
                    "by configuration"))

  # The index.
  lines = [f"# {title or 'Report'}", "",
           # Named by runs_name or relative to the report: no machine path.
           f"Runs: {len(runset.runs)} under "
           + (f"`{runs_name}`; " if runs_name else
              f"`{os.path.relpath(runs_root, out_dir)}` (relative to this report); ") +
           f"games: {', '.join(runset.games)}; "
           + (f"nets: {', '.join(runset.models)}; " if several else "") +
           f"configurations: {', '.join(runset.labels)}.", "",
           *notes, "",
           "## Aggregates (95% stratified-bootstrap CIs, rliable)", ""]
  head = ["| configuration | tasks | runs/task | median | IQM | mean | optimality gap |",
          "|---|---|---|---|---|---|---|"]

  def table(sel):
    out = list(head)
    for r in sel:
      cells = [f"{r[a]:.3f} [{r[a + '_ci_low']:.3f}, {r[a + '_ci_high']:.3f}]"
               for a in AGGREGATES]
      out.append(f"| {r['label']} | {r['tasks']} | {r['runs_per_task']} | "
                 + " | ".join(cells) + " |")
    return out

  if several:
    lines += ["All nets (a task is a game and a net):", ""]
  lines += table(agg_rows)
  for model in (runset.models if several else ()):
    lines += ["", f"Net {model}:", ""]
    lines += table([r for r in model_agg_rows if r["model"] == model])
  if improvement:
    lines += ["", f"## Probability of improvement over {base_label} (95% CIs, rliable)", "",
              f"P(X > {base_label}): the chance that a run of X scores above a run "
              f"of {base_label} on the same task, averaged over tasks; 0.5 is no "
              "difference.", "",
              "| " + ("net | " if several else "") + "configuration | tasks | P(X > baseline) |",
              "|---|---|---|" + ("---|" if several else "")]
    for r in improvement:
      lines.append("| " + (f"{r['model']} | " if several else "") +
                   f"{r['label']} | {r['tasks']} | {r['probability']:.3f} "
                   f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |")
  lines += curve_lines
  lines += ["", "## Final scores per game (mean ± population std, divisor n, "
            "over seeds)", "",
            "| game | " + ("net | " if several else "") +
            "configuration | runs | score | normalised | Jacobian norm |",
            "|---|---|---|---|---|---|" + ("---|" if several else "")]
  for p in per_game:
    lines.append(f"| {p['game']} | " + (f"{p['model']} | " if several else "") +
                 f"{p['label']} | {p['runs']} | "
                 f"{p['score_mean']:.2f} ± {p['score_std']:.2f} | "
                 f"{p['normalized_mean']:.3f} | {p['jacobian_norm_mean']:.4g} |")
  lines += ["", "## Figures", ""]
  lines += [f"- [{name}]({name}): {caption}" for name, caption in figures]
  lines += ["", "## Tables", ""]
  lines += [f"- [{name}]({name}): {caption}" for name, caption in tables]
  index = os.path.join(out_dir, "index.md")
  with files.atomic_write(index, fsync=False) as f:
    f.write("\n".join(lines) + "\n")
  return index
