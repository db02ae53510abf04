"""Reports over many run directories: final scores, normalised scores and
aggregate statistics with rliable (Agarwal et al., 2021), plots, an index.

A run directory is any directory holding ``config.json`` and a non-empty
``metrics.csv`` (as ``sn_tf.train`` writes them). Runs are grouped by game
(``config.env``) and configuration label (``config_label``); the seeds of one
(game, label) are its runs.

Normalisation (the paper's figures):
- Atari: human-normalised score (``atari_scores.human_normalized_score``).
- MinAtar: score / (mean final score of the baseline configuration on that
  game), so the baseline is 1.0 on every game.

Aggregates (over games and runs, ``[num_runs, num_games]`` per label): median,
mean, IQM and optimality gap with 95% stratified-bootstrap CIs, and
performance profiles (fraction of runs above tau), all from rliable.
"""

import csv
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sn_tf import files
from sn_tf.analysis import atari_scores
from sn_tf.analysis import curves

BOOTSTRAP_REPS = 2000
AGGREGATES = ("median", "iqm", "mean", "optimality_gap")
# Config fields that never name a configuration.
NOT_CONFIG = ("seed", "root_dir", "env", "tf_threads", "num_steps")
SMOOTHNESS = "smooth/jacobian_norm_mean"


# ----------------------------------------------------------------- discovery

def find_runs(root: str) -> List[str]:
  """Run directories under ``root`` (itself included), sorted."""
  if not os.path.isdir(root):
    raise ValueError(f"{root!r} is not a directory.")
  found = []
  for dirpath, dirnames, filenames in os.walk(root):
    if "config.json" in filenames and curves.CSV_FILE in filenames:
      if os.path.getsize(os.path.join(dirpath, curves.CSV_FILE)) > 0:
        found.append(dirpath)
      dirnames[:] = []  # a run's subdirectories are not runs
    dirnames[:] = [d for d in dirnames if d not in ("checkpoints", "policies")]
  return sorted(found)


def load_config(run_dir: str) -> Dict[str, Any]:
  with open(os.path.join(run_dir, "config.json")) as f:
    return json.load(f)


def config_label(config: Dict[str, Any], varying: Sequence[str] = ()) -> str:
  """A readable name of a run's configuration (seed and env excluded).

  ``C51`` for the baseline, ``SN[-2]`` for spectral normalisation of layers
  ``-2``, ``DivGrad[-2]`` etc. for a scheduler; other fields in ``varying``
  are appended as ``key=value``.
  """
  parts = []
  spectral = str(config.get("spectral", "none"))
  if spectral not in ("none", ""):
    parts.append(f"SN[{spectral}]")
  scheduler = str(config.get("scheduler", "none"))
  if scheduler != "none":
    name = {"divout": "DivOut", "divgrad": "DivGrad", "muleps": "MulEps"}.get(
        scheduler, scheduler)
    parts.append(f"{name}[{config.get('scheduler_layers')}]")
  for key in varying:
    if key not in ("spectral", "scheduler", "scheduler_layers"):
      parts.append(f"{key}={config.get(key)}")
  return " ".join(parts) or "C51"


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
    runs: ``[{"dir", "config", "game", "suite", "label", "seed"}]``.
    labels: configuration labels in first-appearance order (sorted dirs).
    games: env ids in sorted order.
  """

  def __init__(self, run_dirs: Sequence[str]):
    if not run_dirs:
      raise ValueError("no run directories (config.json + metrics.csv) found.")
    configs = [load_config(d) for d in run_dirs]
    varying = varying_fields(configs)
    self.runs = []
    for d, c in zip(run_dirs, configs):
      suite, _ = game_of(c["env"])
      self.runs.append(dict(dir=d, config=c, game=c["env"], suite=suite,
                            label=config_label(c, varying), seed=c.get("seed")))
    suites = {r["suite"] for r in self.runs}
    if len(suites) > 1:
      raise ValueError(f"runs mix suites {sorted(suites)}; aggregate MinAtar "
                       "and Atari runs separately.")
    self.suite = suites.pop()
    # The baseline first, then SN configurations, then the rest.
    seen = list(dict.fromkeys(r["label"] for r in self.runs))
    self.labels = sorted(seen, key=lambda l: (l != "C51", not l.startswith("SN"),
                                              seen.index(l)))
    self.games = sorted({r["game"] for r in self.runs})

  @classmethod
  def from_root(cls, root: str) -> "RunSet":
    return cls(find_runs(root))

  def select(self, game: str, label: str) -> List[Dict[str, Any]]:
    return [r for r in self.runs if r["game"] == game and r["label"] == label]

  def final(self, run: Dict[str, Any], metric: str = "eval/return") -> Tuple[int, float]:
    """``(step, value)`` of the last row of ``metric`` in one run."""
    c = curves.load_curve(run["dir"], metric)
    return int(c["step"][-1]), float(c["value"][-1])

  def score_rows(self, baseline: Optional[str] = None) -> List[Dict[str, Any]]:
    """One row per run: game, label, seed, step, score, normalised score,
    and the final smoothness measure (NaN when the run has none).
    """
    if self.suite == "minatar":
      baseline = self.baseline_label(baseline)
      base = {}
      for game in self.games:
        finals = [self.final(r)[1] for r in self.select(game, baseline)]
        if not finals:
          raise ValueError(f"baseline {baseline!r} has no run on {game}; "
                           "MinAtar scores are normalised by it per game.")
        base[game] = float(np.mean(finals))
    rows = []
    for r in self.runs:
      step, score = self.final(r)
      if self.suite == "atari":
        norm = atari_scores.human_normalized_score(game_of(r["game"])[1], score)
      else:
        norm = score / base[r["game"]] if base[r["game"]] != 0 else float("nan")
      try:
        smooth = self.final(r, SMOOTHNESS)[1]
      except ValueError:
        smooth = float("nan")
      rows.append(dict(game=r["game"], label=r["label"], seed=r["seed"],
                       step=step, score=score, normalized=norm,
                       jacobian_norm=smooth, run_dir=r["dir"]))
    return rows

  def baseline_label(self, baseline: Optional[str]) -> str:
    if baseline is None:
      baseline = "C51" if "C51" in self.labels else self.labels[0]
    if baseline not in self.labels:
      raise ValueError(f"baseline={baseline!r} is not a configuration here; "
                       f"allowed: {', '.join(self.labels)}.")
    return baseline


def score_matrices(rows: Sequence[Dict[str, Any]], games: Sequence[str],
                   key: str = "normalized",
                   labels: Sequence[str] = ()) -> Dict[str, np.ndarray]:
  """``{label: [num_runs, num_games]}`` for rliable.

  Runs of a game are ordered by seed; a label needs the same number of runs
  on every game (rliable's matrices are rectangular), else ``ValueError``.
  """
  out = {}
  for label in labels or dict.fromkeys(r["label"] for r in rows):
    columns = []
    for game in games:
      col = [r[key] for r in sorted((r for r in rows if r["label"] == label
                                     and r["game"] == game),
                                    key=lambda r: (r["seed"] is None, r["seed"]))]
      columns.append(col)
    counts = {len(c) for c in columns}
    if len(counts) != 1 or 0 in counts:
      detail = ", ".join(f"{g}: {len(c)}" for g, c in zip(games, columns))
      raise ValueError(f"{label!r} has different numbers of runs per game "
                       f"({detail}); aggregates need the same seeds everywhere.")
    out[label] = np.array(columns, dtype=np.float64).T
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


def write_report(runs_root: str, out_dir: str, baseline: Optional[str] = None,
                 title: str = "", reps: int = BOOTSTRAP_REPS) -> str:
  """Writes every table and figure of the runs under ``runs_root`` into
  ``out_dir`` with an ``index.md`` listing them; returns the index path.
  """
  runset = RunSet.from_root(runs_root)
  os.makedirs(out_dir, exist_ok=True)
  figures: List[Tuple[str, str]] = []  # (file, caption)
  tables: List[Tuple[str, str]] = []
  plt = _plt()

  # Learning curves and measures over training, per game.
  for game in runset.games:
    dirs, labels = [], []
    for label in runset.labels:
      for r in runset.select(game, label):
        dirs.append(r["dir"])
        labels.append(label)
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
  _write_csv(os.path.join(out_dir, "scores.csv"), rows)
  tables.append(("scores.csv", "final score of every run (raw and normalised), "
                               "final mean Jacobian norm"))
  norm_name = ("human-normalised score" if runset.suite == "atari" else
               f"score / final score of {runset.baseline_label(baseline)}")
  per_game = []
  for game in runset.games:
    for label in runset.labels:
      sel = [r for r in rows if r["game"] == game and r["label"] == label]
      if sel:
        per_game.append(dict(
            game=game, label=label, runs=len(sel),
            score_mean=float(np.mean([r["score"] for r in sel])),
            score_std=float(np.std([r["score"] for r in sel])),
            normalized_mean=float(np.mean([r["normalized"] for r in sel])),
            jacobian_norm_mean=float(np.mean([r["jacobian_norm"] for r in sel]))))
  _write_csv(os.path.join(out_dir, "per_game.csv"), per_game)
  tables.append(("per_game.csv", "per game and configuration: mean and std of "
                                  "final scores over seeds"))

  # Aggregates with rliable, over the games whose normalised scores exist
  # (a MinAtar baseline scoring 0 on a game leaves that game undefined).
  agg_games = [g for g in runset.games
               if all(np.isfinite(r["normalized"]) for r in rows if r["game"] == g)]
  excluded = [g for g in runset.games if g not in agg_games]
  notes = []
  if excluded:
    notes.append(f"Excluded from the aggregates (normalised score undefined: "
                 f"the baseline's final score is 0): {', '.join(excluded)}.")
  if not agg_games:
    raise ValueError("no game has a defined normalised score (the baseline "
                     "scores 0 everywhere); choose another --baseline.")
  matrices = score_matrices(rows, agg_games, labels=runset.labels)
  agg = aggregate_scores(matrices, reps=reps)
  agg_rows = [dict(label=label, runs_per_game=matrices[label].shape[0],
                   **{f"{k}{suffix}": v[i] for k, v in agg[label].items()
                      for i, suffix in enumerate(("", "_ci_low", "_ci_high"))})
              for label in agg]
  _write_csv(os.path.join(out_dir, "aggregates.csv"), agg_rows)
  tables.append(("aggregates.csv", f"median, IQM, mean and optimality gap of "
                                    f"the {norm_name} with 95% CIs"))
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
  figures.append(("aggregates.png", f"aggregate {norm_name} over games and "
                                    "runs, 95% stratified-bootstrap CIs (rliable)"))
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

  # Smoothness against score (the paper's scatter), one point per
  # (game, configuration).
  pts = [p for p in per_game if np.isfinite(p["jacobian_norm_mean"])]
  if pts:
    fig, ax = plt.subplots(figsize=(6, 4))
    for game in runset.games:
      sel = [p for p in pts if p["game"] == game]
      ax.scatter([p["jacobian_norm_mean"] for p in sel],
                 [p["normalized_mean"] for p in sel], label=game)
      for p in sel:
        ax.annotate(p["label"], (p["jacobian_norm_mean"], p["normalized_mean"]),
                    fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel("final mean ||dQ/dx||_2 (Jacobian spectral norm)")
    ax.set_ylabel(norm_name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "smoothness_vs_score.png"), dpi=120)
    plt.close(fig)
    figures.append(("smoothness_vs_score.png", "final Jacobian norm against "
                    "normalised final score, one point per game and configuration"))

  # The index.
  lines = [f"# {title or 'Report'}", "",
           # Relative to the report, so a copied report names no machine path.
           f"Runs: {len(runset.runs)} under "
           f"`{os.path.relpath(runs_root, out_dir)}` "
           "(relative to this report); "
           f"games: {', '.join(runset.games)}; configurations: "
           f"{', '.join(runset.labels)}. Normalised score: {norm_name}.",
           *notes, "",
           "## Aggregates (95% stratified-bootstrap CIs, rliable)", "",
           "| configuration | runs/game | median | IQM | mean | optimality gap |",
           "|---|---|---|---|---|---|"]
  for r in agg_rows:
    cells = [f"{r[a]:.3f} [{r[a + '_ci_low']:.3f}, {r[a + '_ci_high']:.3f}]"
             for a in AGGREGATES]
    lines.append(f"| {r['label']} | {r['runs_per_game']} | " + " | ".join(cells) + " |")
  lines += ["", "## Final scores per game (mean ± std over seeds)", "",
            "| game | configuration | runs | score | normalised | Jacobian norm |",
            "|---|---|---|---|---|---|"]
  for p in per_game:
    lines.append(f"| {p['game']} | {p['label']} | {p['runs']} | "
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
