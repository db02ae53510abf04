"""Scores over many run directories: final scores, normalised scores and
aggregate statistics with rliable (Agarwal et al., 2021); the report built
from them is ``sn_tf.analysis.report``.

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

"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

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
