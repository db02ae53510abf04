"""The report of a set of runs: every table and figure in one folder with
an ``index.md`` (``write_report``), from the scores of
``sn_tf.analysis.aggregate``.

Sections, each one function: learning curves per game; final and normalised
scores (``scores.csv``, ``per_game.csv``); rliable aggregates and the
probability of improvement over the baseline (``aggregates.csv``,
``improvement.csv``, their figures); the normalised learning curves; and the
figures of the paper's MinAtar studies: normalised score per configuration
(layers; per network and over networks for schedulers), score per network
(sizes), final Jacobian norm against score (smoothness), and the Adam
lr x eps grid (optimiser).
"""

import csv
import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sn_tf import files
from sn_tf.analysis import curves
from sn_tf.analysis.aggregate import (AGGREGATES, BOOTSTRAP_REPS, SMOOTHNESS,
                                      RunSet, aggregate_scores, find_runs,
                                      game_of, normalized_curves,
                                      probability_of_improvement,
                                      score_matrices)


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


def _normalized_curves_section(report: "_Report", baseline: str,
                               tasks: Sequence[str]) -> List[str]:
  """The normalised learning curves over games and per game: figure, CSV and
  the index lines (the step from which each configuration's CI and the
  baseline's stay apart)."""
  runset, reps = report.runset, report.reps
  figures, tables = report.figures, report.tables
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
  fig.savefig(report.path("normalized_curves.png"), dpi=120)
  plt.close(fig)
  figures.append(("normalized_curves.png", f"evaluation score over training "
                  f"divided by {baseline}'s mean final score per task: mean "
                  "over tasks and seeds, then per task, with 95% "
                  "stratified-bootstrap bands (rliable)"))
  _write_csv(report.path("normalized_curves.csv"), csv_rows)
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


@dataclasses.dataclass
class _Report:
  """What the sections share: the runs, where files go, and the index's
  lists of figures and tables (file, caption) in the order written."""
  runset: RunSet
  out_dir: str
  reps: int
  figures: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  tables: List[Tuple[str, str]] = dataclasses.field(default_factory=list)

  @property
  def several(self) -> bool:
    return len(self.runset.models) > 1

  def path(self, name: str) -> str:
    return os.path.join(self.out_dir, name)


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
  os.makedirs(out_dir, exist_ok=True)
  report = _Report(balanced, out_dir, reps)
  _curve_figures(report)
  rows, per_game, norm_name, norm_rule = _score_tables(report, runs_root, baseline)
  agg_tasks, notes = _aggregate_tasks(report, rows, norm_rule, skipped, unbalanced)
  agg_rows_all = [r for r in rows if r["task"] in agg_tasks]
  matrices, agg, agg_rows, model_agg_rows = _aggregates(report, agg_rows_all,
                                                        agg_tasks)
  base_label = (balanced.baseline_label(baseline)
                if balanced.suite == "minatar" else None)
  improvement = _improvement(report, agg_rows_all, base_label, norm_name)
  _rliable_figures(report, matrices, agg, norm_name)
  curve_lines = []
  if base_label is not None:
    curve_lines = _normalized_curves_section(report, base_label, agg_tasks)
  _study_figures(report, rows, agg_rows_all, agg_rows + model_agg_rows, norm_name)
  lines = _index_head(report, runs_root, runs_name, title, notes)
  lines += _aggregate_lines(report, agg_rows, model_agg_rows)
  lines += _improvement_lines(report, improvement, base_label)
  lines += curve_lines
  lines += _per_game_lines(report, per_game)
  lines += ["", "## Figures", ""]
  lines += [f"- [{name}]({name}): {caption}" for name, caption in report.figures]
  lines += ["", "## Tables", ""]
  lines += [f"- [{name}]({name}): {caption}" for name, caption in report.tables]
  index = report.path("index.md")
  with files.atomic_write(index, fsync=False) as f:
    f.write("\n".join(lines) + "\n")
  return index


def _curve_figures(report: _Report) -> None:
  """Learning curves and measures over training, per game."""
  runset, several = report.runset, report.several
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
      curves.plot_runs(dirs, labels, report.path(name), metric,
                       title=f"{game}: {what}")
      report.figures.append((name, f"{game}: {what} over training, mean over "
                             "seeds with 95% bootstrap band"))


def _score_tables(report: _Report, runs_root: str, baseline: Optional[str]):
  """``scores.csv`` and ``per_game.csv``; returns ``(rows, per_game,
  norm_name, norm_rule)``."""
  runset, several = report.runset, report.several
  rows = runset.score_rows(baseline)
  # Run directories relative to --runs_dir, so a copied report names no
  # machine path.
  _write_csv(report.path("scores.csv"),
             [dict(r, run_dir=os.path.relpath(r["run_dir"], runs_root)) for r in rows])
  report.tables.append(("scores.csv", "final score of every run (raw and "
                        "normalised), final mean Jacobian norm"))
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
  _write_csv(report.path("per_game.csv"), per_game)
  report.tables.append(("per_game.csv", "per game" + (" and net" if several else "") +
                        " and configuration: mean and population std (divisor "
                        "n) of final scores over seeds"))
  return rows, per_game, norm_name, norm_rule


def _aggregate_tasks(report: _Report, rows, norm_rule: str, skipped: int,
                     unbalanced: int) -> Tuple[List[str], List[str]]:
  """The tasks whose normalised scores exist (a MinAtar baseline scoring 0
  on a task leaves that task undefined), and the index's notes."""
  runset = report.runset
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
  return agg_tasks, notes


def _aggregates(report: _Report, agg_rows_all, agg_tasks):
  """rliable aggregates over all nets (and per net), ``aggregates.csv``;
  returns ``(matrices, agg, agg_rows, model_agg_rows)`` of all nets."""
  runset, several = report.runset, report.several

  def aggregate_rows(sel, model=None):
    matrices = score_matrices(sel, [t for t in agg_tasks
                                    if any(r["task"] == t for r in sel)],
                              labels=[l for l in runset.labels
                                      if any(r["label"] == l for r in sel)],
                              skip_missing=True)
    agg = aggregate_scores(matrices, reps=report.reps)
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
  _write_csv(report.path("aggregates.csv"), agg_rows + model_agg_rows)
  return matrices, agg, agg_rows, model_agg_rows


def _improvement(report: _Report, agg_rows_all, base_label: Optional[str],
                 norm_name: str) -> List[Dict[str, Any]]:
  """P(X > baseline) per configuration (and net), ``improvement.csv``; the
  tables' entries of both CSVs."""
  runset, several = report.runset, report.several
  improvement = []
  for model in ([None] + runset.models if several else [None]):
    sel = [r for r in agg_rows_all if model is None or r["model"] == model]
    for label in runset.labels:
      if base_label is None or label == base_label or not any(
          r["label"] == label for r in sel):
        continue
      p, lo, hi, n = probability_of_improvement(sel, label, base_label,
                                                report.reps)
      improvement.append(dict(**({"model": model or "all"} if several else {}),
                              label=label, baseline=base_label, tasks=n,
                              probability=p, ci_low=lo, ci_high=hi))
  if improvement:
    _write_csv(report.path("improvement.csv"), improvement)
    report.tables.append(("improvement.csv", f"probability that a run of each "
                          f"configuration beats a run of {base_label} on the "
                          "same task, 95% CIs (rliable)"))
  report.tables.append(("aggregates.csv", f"median, IQM, mean and optimality "
                        f"gap of the {norm_name} with 95% CIs" +
                        (", over all nets and per net" if several else "")))
  return improvement


def _rliable_figures(report: _Report, matrices, agg, norm_name: str) -> None:
  """The aggregates' interval plot and the performance profiles."""
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  from rliable import plot_utils  # pylint: disable=g-import-not-at-top
  plt = _plt()
  labels = list(matrices)
  fig, _ = plot_utils.plot_interval_estimates(
      {k: np.array([agg[k][a][0] for a in AGGREGATES]) for k in labels},
      {k: np.array([[agg[k][a][1] for a in AGGREGATES],
                    [agg[k][a][2] for a in AGGREGATES]]) for k in labels},
      metric_names=["Median", "IQM", "Mean", "Optimality gap"],
      algorithms=labels, xlabel=norm_name, xlabel_y_coordinate=-0.3)
  fig.savefig(report.path("aggregates.png"), dpi=120, bbox_inches="tight")
  plt.close(fig)
  report.figures.append(("aggregates.png", f"aggregate {norm_name} over games"
                         + (" and nets" if report.several else "") +
                         " and runs, 95% stratified-bootstrap CIs (rliable)"))
  all_scores = np.concatenate([m.ravel() for m in matrices.values()])
  taus = np.linspace(min(0.0, float(np.nanmin(all_scores))),
                     float(np.nanmax(all_scores)) * 1.05 + 1e-9, 81)
  np.random.seed(0)
  profiles, profile_cis = rly.create_performance_profile(matrices, taus,
                                                         reps=report.reps)
  fig, ax = plt.subplots(figsize=(6, 4))
  cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  colors = {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}
  plot_utils.plot_performance_profiles(
      profiles, taus, performance_profile_cis=profile_cis, colors=colors,
      xlabel=f"{norm_name} (tau)", ax=ax)
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  ax.legend([Line2D([0], [0], color=colors[l]) for l in labels], labels,
            fontsize="small")
  fig.savefig(report.path("performance_profile.png"), dpi=120,
              bbox_inches="tight")
  plt.close(fig)
  report.figures.append(("performance_profile.png", "performance profiles: "
                         "fraction of runs with normalised score > tau, 95% "
                         "CIs (rliable)"))


def _study_figures(report: _Report, rows, agg_rows_all, all_agg_rows,
                   norm_name: str) -> None:
  """The figures of the paper's studies (those the runs allow)."""
  runset, several = report.runset, report.several
  means = {(r.get("model", "all"), r["label"]):
           (r["mean"], r["mean_ci_low"], r["mean_ci_high"]) for r in all_agg_rows}
  plot_scores_by_config(agg_rows_all, runset, report.path("scores_by_config.png"),
                        norm_name, means)
  report.figures.append(("scores_by_config.png", "normalised final score per "
                         "configuration: each run a dot (colour: game), mean "
                         "with 95% CI in black" +
                         ("; over all nets, then one panel per net"
                          if several else "")))
  if several:
    plot_score_per_model(agg_rows_all, runset, report.path("score_per_model.png"),
                         norm_name, means)
    report.figures.append(("score_per_model.png", "final score per net, one "
                           "line per configuration: raw per game (mean over "
                           "seeds, min-max) and normalised over games (mean, "
                           "95% CI)"))
  grids = adam_grid(rows, runset)
  if grids:
    plot_adam_grid(grids, report.path("adam_grid.png"))
    report.figures.append(("adam_grid.png", "the optimiser study's figure: "
                           "final score over Adam's learning rate x epsilon, "
                           "one panel per SN setting; each cell's mean over "
                           "seeds divided by the best cell's on the same game "
                           "(and net), averaged over them: does SN widen the "
                           "range of good settings?"))
  if plot_smoothness_vs_score(rows, runset, report.path("smoothness_vs_score.png"),
                              norm_name):
    report.figures.append(("smoothness_vs_score.png", "final mean Jacobian "
                           "norm against normalised final score, one point "
                           "per run, colour by configuration"))


def _index_head(report: _Report, runs_root: str, runs_name: Optional[str],
                title: str, notes: Sequence[str]) -> List[str]:
  runset, several = report.runset, report.several
  return [f"# {title or 'Report'}", "",
          # Named by runs_name or relative to the report: no machine path.
          f"Runs: {len(runset.runs)} under "
          + (f"`{runs_name}`; " if runs_name else
             f"`{os.path.relpath(runs_root, report.out_dir)}` (relative to "
             "this report); ") +
          f"games: {', '.join(runset.games)}; "
          + (f"nets: {', '.join(runset.models)}; " if several else "") +
          f"configurations: {', '.join(runset.labels)}.", "",
          *notes, "",
          "## Aggregates (95% stratified-bootstrap CIs, rliable)", ""]


def _aggregate_lines(report: _Report, agg_rows, model_agg_rows) -> List[str]:
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

  lines = ["All nets (a task is a game and a net):", ""] if report.several else []
  lines += table(agg_rows)
  for model in (report.runset.models if report.several else ()):
    lines += ["", f"Net {model}:", ""]
    lines += table([r for r in model_agg_rows if r["model"] == model])
  return lines


def _improvement_lines(report: _Report, improvement, base_label) -> List[str]:
  if not improvement:
    return []
  several = report.several
  lines = ["", f"## Probability of improvement over {base_label} (95% CIs, rliable)", "",
           f"P(X > {base_label}): the chance that a run of X scores above a run "
           f"of {base_label} on the same task, averaged over tasks; 0.5 is no "
           "difference.", "",
           "| " + ("net | " if several else "") + "configuration | tasks | P(X > baseline) |",
           "|---|---|---|" + ("---|" if several else "")]
  for r in improvement:
    lines.append("| " + (f"{r['model']} | " if several else "") +
                 f"{r['label']} | {r['tasks']} | {r['probability']:.3f} "
                 f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] |")
  return lines


def _per_game_lines(report: _Report, per_game) -> List[str]:
  several = report.several
  lines = ["", "## Final scores per game (mean ± population std, divisor n, "
           "over seeds)", "",
           "| game | " + ("net | " if several else "") +
           "configuration | runs | score | normalised | Jacobian norm |",
           "|---|---|---|---|---|---|" + ("---|" if several else "")]
  for p in per_game:
    lines.append(f"| {p['game']} | " + (f"{p['model']} | " if several else "") +
                 f"{p['label']} | {p['runs']} | "
                 f"{p['score_mean']:.2f} ± {p['score_std']:.2f} | "
                 f"{p['normalized_mean']:.3f} | {p['jacobian_norm_mean']:.4g} |")
  return lines
