"""The paper's MinAtar study as a list of runs, and a resumable runner for it.

``study_plan`` expands a budget into runs: the layer sweep (SN on different
layers, docs/layers.md#selection-grammar) and the scheduler comparison
(DivOut, DivGrad, MulEps on layers ``-2``, docs/schedulers.md), over the
budget's games and seeds. ``run_study`` runs
them as Ray tasks through ``sn_tf.sweeps`` (skips finished runs, resumes
unfinished ones, keeps going when one fails) and writes the report of
``sn_tf.analysis.aggregate`` when all are complete.

Layout of ``out_dir``: ``runs/<game>/<config>_s<seed>/`` (run directories),
``logs/<game>__<config>_s<seed>.log``, ``plan.json``, the sweep ledger,
``report/index.md``.
"""

import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from sn_tf import files
from sn_tf import sweeps
from sn_tf.config import make_config
from sn_tf.sweeps import PlannedRun

MINATAR_GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
# The reference code's MinAtar layer sweep (docs/layers.md#selection-grammar),
# "none" = the baseline.
PAPER_LAYER_SWEEP = ("none", "-1", "-2", "-3", "-1,-2", "-2,-3", "-1,-2,-3")
SCHEDULERS = ("divout", "divgrad", "muleps")


@dataclasses.dataclass(frozen=True)
class Budget:
  """Games, seeds, steps and the layer specs of one reproduction budget."""
  games: Sequence[str]
  seeds: Sequence[int]
  num_steps: int
  layer_sweep: Sequence[str]
  overrides: Dict[str, Any]
  description: str


BUDGETS = {
    # The paper's scale (docs/protocol.md#reproduction-budgets): 5M steps,
    # 10 seeds, all five games, the full sweep.
    "paper": Budget(
        games=MINATAR_GAMES, seeds=tuple(range(10)), num_steps=5_000_000,
        layer_sweep=PAPER_LAYER_SWEEP, overrides={},
        description="5 games x 10 configurations x 10 seeds x 5M steps "
                    "(the paper's scale, with C51: "
                    "docs/protocol.md#reproduction-budgets)"),
    # Measured 143 min on 2 cores shared with test suites: 2 games x 8
    # configurations x 2 seeds x 60k steps. Exploration decays over 20k steps instead of 250k so the agent
    # acts greedily for most of the budget.
    "small": Budget(
        games=("breakout", "space_invaders"), seeds=(0, 1), num_steps=60_000,
        layer_sweep=("none", "-1", "-2", "-3", "-1,-2"),
        overrides=dict(epsilon_decay_steps=20_000, eval_every=15_000,
                       eval_episodes=10),
        description="2 games x 8 configurations x 2 seeds x 60k steps, "
                    "epsilon decay over 20k steps"),
}


def config_name(spectral: str, scheduler: str) -> str:
  """``none``, ``sn-2``, ``sn-1-2``, ``divgrad-2``: a run directory name."""
  if scheduler != "none":
    return f"{scheduler}-2"
  if spectral == "none":
    return "none"
  return "sn" + spectral.replace(",", "")


def study_plan(budget: str, out_dir: str, *,
               games: Optional[Sequence[str]] = None,
               seeds: Optional[Sequence[int]] = None,
               num_steps: Optional[int] = None,
               configs: Optional[Sequence[str]] = None,
               overrides: Optional[Dict[str, Any]] = None) -> List[PlannedRun]:
  """The runs of ``budget`` (``"small"`` or ``"paper"``), validated.

  ``games``, ``seeds``, ``num_steps`` replace the budget's; ``configs``
  keeps only the named configurations (``config_name`` values); ``overrides``
  are extra ``TrainConfig`` fields for every run.

  Raises:
    ValueError: naming the argument, the value and what is allowed.
  """
  if budget not in BUDGETS:
    raise ValueError(f"budget={budget!r} is not allowed; allowed: "
                     f"{', '.join(BUDGETS)}.")
  b = BUDGETS[budget]
  games = tuple(b.games if games is None else games)
  seeds = tuple(b.seeds if seeds is None else seeds)
  for game in games:
    if game not in MINATAR_GAMES:
      raise ValueError(f"games: {game!r} is not allowed; allowed: "
                       f"{', '.join(MINATAR_GAMES)}.")
  if not games or not seeds:
    raise ValueError("games and seeds must not be empty.")
  variants = [(s, "none") for s in b.layer_sweep] + [("none", s) for s in SCHEDULERS]
  names = [config_name(*v) for v in variants]
  if configs is not None:
    unknown = sorted(set(configs) - set(names))
    if unknown:
      raise ValueError(f"configs: {', '.join(unknown)} not in budget {budget!r}; "
                       f"allowed: {', '.join(names)}.")
    variants = [v for v, n in zip(variants, names) if n in configs]
  values = dict(b.overrides)
  values.update(overrides or {})
  values["num_steps"] = b.num_steps if num_steps is None else num_steps
  plan = []
  for game in games:
    for spectral, scheduler in variants:
      for seed in seeds:
        name = f"{game}/{config_name(spectral, scheduler)}_s{seed}"
        extra = dict(scheduler=scheduler, scheduler_layers="-2") if scheduler != "none" else {}
        config = make_config(
            f"minatar:{game}", os.path.join(os.path.abspath(out_dir), "runs", name),
            "minatar", spectral=spectral, seed=seed, **extra, **values)
        plan.append(PlannedRun(name, config))
  return plan


def run_study(plan: Sequence[PlannedRun], out_dir: str, workers: int = 2,
              ray_address: Optional[str] = None, report: bool = True,
              echo: Callable[[str], None] = print) -> Dict[str, Any]:
  """Runs ``plan`` as Ray tasks (``sweeps.run_plan``), then the report.

  ``workers`` is the CPU count of the embedded local Ray (one run per CPU);
  with ``ray_address`` the runs go to that cluster instead. A rerun skips
  complete runs and resumes the others from their newest checkpoint.
  """
  if not isinstance(workers, int) or workers < 1:
    raise ValueError(f"workers={workers!r} is not allowed; an integer >= 1.")
  out_dir = os.path.abspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  entries = []
  for run in plan:
    config = json.loads(run.config.to_json())
    # Relative to out_dir, so a copied plan names no machine path.
    config["root_dir"] = os.path.relpath(run.config.root_dir, out_dir)
    entries.append({"name": run.name, "config": config})
  with files.atomic_write(os.path.join(out_dir, "plan.json")) as f:
    json.dump(entries, f, indent=1)
  result = sweeps.run_plan(plan, out_dir, ray_address=ray_address,
                           num_cpus=workers, report=False, echo=echo)
  result["report"] = None
  if not result["failed"] and report:
    from sn_tf.analysis import aggregate  # pylint: disable=g-import-not-at-top
    result["report"] = aggregate.write_report(
        os.path.join(out_dir, "runs"), os.path.join(out_dir, "report"),
        title=f"Reproduction ({len(plan)} runs)")
    echo(f"report: {result['report']}")
  return result
