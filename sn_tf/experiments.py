"""The paper's MinAtar studies as lists of runs, and a resumable runner for them.

``dqn_study_plan`` expands one of the paper's four DQN studies (layers,
sizes, smoothness, schedulers; docs/protocol.md#the-papers-minatar-studies)
at a budget (paper, medium, small) into runs on the ``minatar_dqn`` preset.
``study_plan`` is sn_tf's C51 study: the layer sweep (SN on different
layers, docs/layers.md#selection-grammar) and the scheduler comparison
(DivOut, DivGrad, MulEps on layers ``-2``, docs/schedulers.md). ``run_study``
runs a plan as Ray tasks through ``sn_tf.sweeps`` (skips finished runs,
resumes unfinished ones, keeps going when one fails) and writes the report of
``sn_tf.analysis.report`` when all are complete.

Layout of ``out_dir``: ``runs/<game>/[<net>/]<config>_s<seed>/`` (run
directories), ``logs/``, ``plan.json``, the sweep ledger, ``report/index.md``.
"""

import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sn_tf import files
from sn_tf import sweeps
from sn_tf.config import make_config
from sn_tf.envs import MINATAR_GAMES
from sn_tf.schedulers import PAPER_SCHEDULERS
from sn_tf.sweeps import PlannedRun

# The reference code's MinAtar layer sweep (docs/layers.md#selection-grammar),
# "none" = the baseline.
PAPER_LAYER_SWEEP = ("none", "-1", "-2", "-3", "-1,-2", "-2,-3", "-1,-2,-3")


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


def config_name(spectral: str = "none", scheduler: str = "none",
                scheduler_layers: str = "-2",
                scheduler_scope: str = "global") -> str:
  """A configuration's run-directory name, the one rule of every study:
  ``none``, ``sn-2``, ``sn-1-2``, ``divgrad-2``, ``divgrad-pl-2`` (per-layer
  scope). Studies add their own suffixes (``_k2``, an optimiser setting)."""
  if scheduler != "none":
    scope = "-pl" if scheduler_scope == "per_layer" else ""
    return f"{scheduler}{scope}{scheduler_layers.replace(',', '')}"
  if spectral == "none":
    return "none"
  return "sn" + spectral.replace(",", "")


def _budget_games_seeds(table: Dict[str, Any], budget: str,
                        games: Optional[Sequence[str]],
                        seeds: Optional[Sequence[int]]):
  """``(budget entry, games, seeds)``: the budget's games and seeds unless
  given, checked.

  Raises:
    ValueError: naming the argument, the value and what is allowed.
  """
  if budget not in table:
    raise ValueError(f"budget={budget!r} is not allowed; allowed: "
                     f"{', '.join(table)}.")
  b = table[budget]
  games = tuple(b.games if games is None else games)
  seeds = tuple(b.seeds if seeds is None else seeds)
  for game in games:
    if game not in MINATAR_GAMES:
      raise ValueError(f"games: {game!r} is not allowed; allowed: "
                       f"{', '.join(MINATAR_GAMES)}.")
  if not games or not seeds:
    raise ValueError("games and seeds must not be empty.")
  return b, games, seeds


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
  b, games, seeds = _budget_games_seeds(BUDGETS, budget, games, seeds)
  variants = [(s, "none") for s in b.layer_sweep] + [("none", s) for s in PAPER_SCHEDULERS]
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


# ------------------------------------------------------------------ DQN studies
# The paper's four MinAtar studies (docs/protocol.md#the-papers-minatar-studies),
# on the minatar_dqn preset: each a list of cells (model, configuration).

STUDY_GAMES = ("breakout", "asterix", "seaquest", "space_invaders")
STUDIES = ("layers", "sizes", "smoothness", "schedulers", "optimizer")

# The optimiser study, as the authors' configs sweep it
# (docs/protocol.md#the-papers-minatar-studies). configs/minatar_dqn_mega_redux/
# (40 epochs of 125k steps, each followed by an evaluation): six nets, SN
# none / -2 / -2,-3, and per optimiser:
OPTIMIZER_MODELS = ("24/128", "24-24/128", "32-32/256", "24-24-24/128",
                    "32-32-32/256", "24-24-24-24/128")
OPTIMIZER_SN = ("none", "-2", "-2,-3")
# config_adam.yaml (written as here; PyTorch's Adam, betas left at default).
ADAM_LRS = (0.00001, 0.0000215, 0.0000464, 0.0001, 0.0002154, 0.0004642,
            0.001, 0.0021544)
ADAM_EPS = (0.0001, 0.00032, 0.001, 0.00316, 0.01)
# config_rmsprop.yaml (alpha 0.95, centered) and config_sgd.yaml: the Adam
# rates but the largest.
RMSPROP_LRS = ADAM_LRS[:-1]
RMSPROP_EPS = (0.0001, 0.00032, 0.001, 0.00316, 0.01, 0.0316)
SGD_LRS = ADAM_LRS[:-1]
# configs/minatar_dqn_optim/ (50 epochs of 100k, the preset's): two nets,
# the same SN settings; RMSprop (alpha 0.95) and SGD.
OPTIM_MODELS = ("24/128", "24-24-24/128")
OPTIM_LRS = (0.1, 0.00025)
OPTIM_RMSPROP_EPS = (0.01, 0.0003125)


@dataclasses.dataclass(frozen=True)
class Cell:
  """One configuration of one net in a study: its directory name and the
  ``TrainConfig`` fields it sets (beyond the preset and the budget)."""
  name: str
  fields: Dict[str, Any]


def _sn(spec: str, **extra) -> Tuple[str, Dict[str, Any]]:
  return config_name(spectral=spec), dict(spectral=spec, **extra)


def _scheduler(kind: str, scope: str = "global", leave_smaller: bool = False):
  fields = dict(scheduler=kind, scheduler_layers="-2", scheduler_scope=scope)
  return config_name(**fields), dict(fields, leave_smaller=leave_smaller)


def _study_configs(study: str) -> List[Tuple[str, Dict[str, Any]]]:
  """The configurations of ``study`` on one net, as the paper sweeps them."""
  if study == "layers":
    return [_sn(s) for s in ("none", "-2", "-3", "-4", "-2,-3")]
  if study == "smoothness":
    out = [_sn("none")]
    for spec in ("-1", "-2", "-3", "-1,-2", "-2,-3", "-1,-2,-3"):
      for k in (1.0, 2.0, 10.0):
        name, fields = _sn(spec, lipschitz_k=k, leave_smaller=True)
        out.append((f"{name}_k{k:g}", fields))
    return out
  if study == "schedulers":
    return [_sn("none"), _sn("-2"), _scheduler("divout"),
            # The authors' development code's global mode and the public
            # code's per-layer DivGrad, both with max(sigma / k, 1).
            _scheduler("divgrad", leave_smaller=True),
            _scheduler("divgrad", "per_layer", leave_smaller=True),
            _scheduler("muleps")]
  raise ValueError(study)


def _optimizer_cells() -> List[Tuple[str, Cell]]:
  """The optimiser study's cells: mega_redux's grids on its six nets, then
  minatar_dqn_optim's on its two. Names: ``<sn>_<optimizer>_lr<lr>[_eps<eps>]``
  (RMSprop: ``_c`` if centred)."""
  cells = []

  def add(model, spec, name, **fields):
    sn_name, sn_fields = _sn(spec)
    cells.append((model, Cell(f"{sn_name}_{name}", dict(sn_fields, **fields))))

  rmsprop = dict(optimizer="rmsprop", rmsprop_rho=0.95,
                 rmsprop_epsilon_placement="reference")
  for model in OPTIMIZER_MODELS:
    for spec in OPTIMIZER_SN:
      for lr in ADAM_LRS:
        for eps in ADAM_EPS:
          add(model, spec, f"adam_lr{lr:g}_eps{eps:g}", optimizer="adam",
              lr=lr, adam_eps=eps, eval_every=125_000)
      for lr in RMSPROP_LRS:
        for eps in RMSPROP_EPS:
          add(model, spec, f"rmsprop_lr{lr:g}_eps{eps:g}_c", lr=lr,
              rmsprop_eps=eps, rmsprop_centered=True, eval_every=125_000,
              **rmsprop)
      for lr in SGD_LRS:
        add(model, spec, f"sgd_lr{lr:g}", optimizer="sgd", lr=lr,
            eval_every=125_000)
  for model in OPTIM_MODELS:
    for spec in OPTIMIZER_SN:
      for lr in OPTIM_LRS:
        for eps in OPTIM_RMSPROP_EPS:
          for centered in (True, False):
            add(model, spec, f"rmsprop_lr{lr:g}_eps{eps:g}" + ("_c" if centered else ""),
                lr=lr, rmsprop_eps=eps, rmsprop_centered=centered, **rmsprop)
        add(model, spec, f"sgd_lr{lr:g}", optimizer="sgd", lr=lr)
  return cells


def _study_cells(study: str) -> List[Tuple[str, Cell]]:
  """``[(model, cell)]`` of ``study`` as the paper runs it."""
  # pylint: disable=g-import-not-at-top
  from sn_tf.networks import DEPTH3_MODELS, SIZE_STUDY_MODELS
  # pylint: enable=g-import-not-at-top
  if study == "optimizer":
    return _optimizer_cells()
  cells = []
  if study == "sizes":
    sn_specs = ("-2", "-3", "-4", "-2,-3", "-2,-3,-4", "-3,-4")
    for model in SIZE_STUDY_MODELS:
      cells.append((model, Cell(*_sn("none"))))
      if model in DEPTH3_MODELS:
        cells += [(model, Cell(*_sn(s))) for s in sn_specs]
    return cells
  if study == "schedulers":
    models = DEPTH3_MODELS
  else:
    models = ("16-16/128",) if study == "layers" else ("16/128",)
  for model in models:
    cells += [(model, Cell(n, f)) for n, f in _study_configs(study)]
  return cells


@dataclasses.dataclass(frozen=True)
class CellSelection:
  """The cells of a study that a budget runs: those whose net is in
  ``models`` and whose configuration name is in ``configs``, on the games
  in ``games`` (None: all of them; the budget's games)."""
  models: Optional[Sequence[str]] = None
  configs: Optional[Sequence[str]] = None
  games: Optional[Sequence[str]] = None

  def keeps(self, model: str, cell: Cell) -> bool:
    return ((self.models is None or model in self.models)
            and (self.configs is None or cell.name in self.configs))


ALL_CELLS = CellSelection()


@dataclasses.dataclass(frozen=True)
class DQNBudget:
  """Seeds, games, ``TrainConfig`` overrides and, per study it offers, the
  cells of one budget of the DQN studies."""
  seeds: Sequence[int]
  games: Sequence[str]
  overrides: Dict[str, Any]
  studies: Dict[str, CellSelection]
  description: str
  # Seeds of a study that runs other than ``seeds``.
  study_seeds: Dict[str, Sequence[int]] = dataclasses.field(default_factory=dict)


# The medium budget's cells: the layers study whole; the smallest and largest
# depth-3 nets of the size study; the smoothness study's single layers and
# all three at K = 1, and the penultimate layer at K = 2 and 10; the
# schedulers on 24-24-24/128.
_MEDIUM_CELLS = {
    "layers": ALL_CELLS,
    "sizes": CellSelection(models=("8-8-8/32", "32-32-24/256"),
                           configs=("none", "sn-2", "sn-2-3")),
    "smoothness": CellSelection(configs=(
        "none", "sn-1_k1", "sn-2_k1", "sn-3_k1", "sn-1-2-3_k1", "sn-2_k2",
        "sn-2_k10")),
    "schedulers": CellSelection(models=("24-24-24/128",)),
}

# The optimiser study's Adam grid: at medium, on one of its six nets; at
# small, a 4 x 3 corner-and-centre subset on one game and net (about 20 min
# on 2 cores: a smoke run of the grid figure, not a result).
_ADAM_GRID = tuple(f"{_sn(spec)[0]}_adam_lr{lr:g}_eps{eps:g}"
                   for spec in OPTIMIZER_SN for lr in ADAM_LRS for eps in ADAM_EPS)
_SMALL_ADAM_GRID = tuple(
    f"{_sn(spec)[0]}_adam_lr{lr:g}_eps{eps:g}" for spec in OPTIMIZER_SN
    for lr in (ADAM_LRS[0], ADAM_LRS[3], ADAM_LRS[5], ADAM_LRS[7])
    for eps in (ADAM_EPS[0], ADAM_EPS[2], ADAM_EPS[4]))

DQN_BUDGET_TABLE = {
    "paper": DQNBudget(
        seeds=tuple(range(10)), games=STUDY_GAMES, overrides={},
        studies={study: ALL_CELLS for study in STUDIES},
        # The optimiser sweep ran 2 seeds per cell (the authors' README).
        study_seeds={"optimizer": (0, 1)},
        description="the paper's scale: 4 games x 10 seeds x 5M steps, "
                    "evaluated every 100k steps over 125k steps"),
    # DQN against SN[-2] on the layers study's net over 2M steps, the
    # paper's exploration schedule (epsilon 0.01 from step 250k) unchanged.
    "long": DQNBudget(
        seeds=(0, 1, 2), games=STUDY_GAMES,
        overrides=dict(num_steps=2_000_000, eval_every=100_000,
                       eval_steps=25_000),
        studies={"layers": CellSelection(configs=("none", "sn-2"))},
        description="4 games x 3 seeds x 2M steps, DQN and SN[-2] on "
                    "16-16/128, evaluated every 100k steps over 25k steps"),
    # 200k steps with the epsilon decay scaled to a third of the budget, as
    # `small` of the C51 study does, evaluated every 50k steps over 25k.
    "medium": DQNBudget(
        seeds=(0, 1, 2), games=STUDY_GAMES,
        overrides=dict(num_steps=200_000, epsilon_decay_steps=62_000,
                       eval_every=50_000, eval_steps=25_000),
        studies=dict(_MEDIUM_CELLS, optimizer=CellSelection(
            models=("24-24-24/128",), configs=_ADAM_GRID)),
        study_seeds={"optimizer": (0, 1)},
        description="4 games x 3 seeds x 200k steps, epsilon decay to step "
                    "67k, evaluated every 50k steps over 25k steps"),
    "small": DQNBudget(
        seeds=(0,), games=("breakout", "space_invaders"),
        overrides=dict(num_steps=30_000, learning_starts=2_000,
                       epsilon_decay_steps=8_000, eval_every=15_000,
                       eval_steps=5_000, replay_capacity=30_000),
        studies=dict(_MEDIUM_CELLS, optimizer=CellSelection(
            models=("24/128",), configs=_SMALL_ADAM_GRID, games=("breakout",))),
        description="2 games x 1 seed x 30k steps: a smoke run of the "
                    "pipeline, not a result"),
}


def dqn_study_plan(study: str, budget: str, out_dir: str, *,
                   games: Optional[Sequence[str]] = None,
                   seeds: Optional[Sequence[int]] = None,
                   overrides: Optional[Dict[str, Any]] = None) -> List[PlannedRun]:
  """The runs of one of the paper's MinAtar DQN studies at ``budget``.

  Run names: ``<game>/<model>/<config>_s<seed>`` (the model's ``/`` as
  ``_``). ``games``, ``seeds`` replace the budget's; ``overrides`` are
  extra ``TrainConfig`` fields for every run.

  Raises:
    ValueError: naming the argument, the value and what is allowed.
  """
  if study not in STUDIES:
    raise ValueError(f"study={study!r} is not allowed; allowed: {', '.join(STUDIES)}.")
  given_games, given_seeds = games, seeds
  b, games, seeds = _budget_games_seeds(DQN_BUDGET_TABLE, budget, games, seeds)
  if study not in b.studies:
    raise ValueError(f"study={study!r} is not allowed at budget={budget!r}; "
                     f"allowed: {', '.join(b.studies)}.")
  selection = b.studies[study]
  cells = [(m, c) for m, c in _study_cells(study) if selection.keeps(m, c)]
  if given_games is None and selection.games is not None:
    games = tuple(selection.games)
  if given_seeds is None and study in b.study_seeds:
    seeds = tuple(b.study_seeds[study])
  values = dict(b.overrides)
  values.update(overrides or {})
  plan = []
  for game in games:
    for model, cell in cells:
      for seed in seeds:
        name = f"{game}/{model.replace('/', '_')}/{cell.name}_s{seed}"
        # The budget's and the caller's values win over a cell's (the
        # optimiser cells' evaluation period is the paper budget's).
        fields = dict(cell.fields, **values)
        config = make_config(
            f"minatar:{game}", os.path.join(os.path.abspath(out_dir), "runs", name),
            "minatar_dqn", minatar_model=model, seed=seed, **fields)
        plan.append(PlannedRun(name, config))
  return plan


def run_study(plan: Sequence[PlannedRun], out_dir: str, workers: int = 2,
              ray_address: Optional[str] = None, report: bool = True,
              echo: Callable[[str], None] = print,
              title: str = "") -> Dict[str, Any]:
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
    from sn_tf.analysis.report import write_report  # pylint: disable=g-import-not-at-top
    result["report"] = write_report(
        os.path.join(out_dir, "runs"), os.path.join(out_dir, "report"),
        title=title or f"Reproduction ({len(plan)} runs)")
    echo(f"report: {result['report']}")
  return result
