r"""Reproduce the paper's MinAtar studies at a chosen budget; resumable.

  python launchers/reproduce.py --study=layers --budget=medium --out=runs/layers_medium
  python launchers/reproduce.py --study=schedulers --budget=paper --plan_only
  python launchers/reproduce.py --study=layers --budget=long --num_steps=1000000 --out=runs/layers_long
  python launchers/reproduce.py --agent=c51 --budget=small --out=runs/reproduce_small

With --agent=dqn (the default), --study picks one of the paper's five DQN
studies (layers, sizes, smoothness, schedulers, optimizer; docs/protocol.md)
on the minatar_dqn preset, at --budget paper, long (layers only), medium or
small. With --agent=c51, the C51 layer sweep and scheduler comparison
(budgets small and paper). Runs go --workers at a time as Ray tasks (or on a
Ray cluster with --ray_address),
then every plot and table goes into <out>/report/ with an index.md. Rerunning
the same command skips finished runs and resumes the others from their
checkpoints; with a bigger --num_steps (or budget) it extends them from
their checkpoints. --plan_only prints each planned run's config as one JSON
line, then runs=<N>, and runs nothing.
"""

import os

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_AGENT = flags.DEFINE_enum("agent", "dqn", ["dqn", "c51"],
                           "dqn: the paper's MinAtar studies (--study); c51: "
                           "sn_tf's C51 layer and scheduler study.")
_STUDY = flags.DEFINE_string("study", None, "With --agent=dqn: layers, sizes, "
                             "smoothness, schedulers or optimizer.")
_BUDGET = flags.DEFINE_string("budget", "small", "dqn: paper, long, medium or "
                              "small; c51: small or paper (see README).")
_PLAN_ONLY = flags.DEFINE_boolean("plan_only", False, "Print the planned runs "
                                  "(one JSON config per line, then runs=<N>); "
                                  "run nothing.")
_OUT = flags.DEFINE_string("out", None, "Output directory (runs, logs, report).")
_WORKERS = flags.DEFINE_integer("workers", 2, "Runs at a time on this machine "
                                "(CPUs of the embedded Ray, one per run).")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", "", "Empty: embedded local "
                                   "Ray; '<head ip>:<port>' or 'auto': a cluster.")
_GAMES = flags.DEFINE_list("games", None, "MinAtar games (default: the budget's).")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: the budget's).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Steps per run (default: the budget's).")
_CONFIGS = flags.DEFINE_list("configs", None, "--agent=c51 only: only these "
                             "configurations, e.g. none,sn-2,divgrad-2.")


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  import json  # pylint: disable=g-import-not-at-top
  from sn_tf import experiments, sweeps  # pylint: disable=g-import-not-at-top
  out = _OUT.value
  if out is None:
    if not _PLAN_ONLY.value:
      console.bad_flag("--out is required (except with --plan_only).")
    out = "runs/plan"
  seeds = None
  if _SEEDS.value is not None:
    try:
      seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
      console.bad_flag(f"--seeds={','.join(_SEEDS.value)}: allowed: "
                           "comma-separated integers >= 0.")
  try:
    if _AGENT.value == "c51":
      if _STUDY.value is not None:
        raise ValueError(f"study={_STUDY.value!r} is not allowed with "
                         "--agent=c51 (its plan is one layer + scheduler study)")
      plan = experiments.study_plan(_BUDGET.value, out, games=_GAMES.value,
                                    seeds=seeds, num_steps=_NUM_STEPS.value,
                                    configs=_CONFIGS.value)
    else:
      if _STUDY.value is None:
        raise ValueError("study=None is not allowed; allowed: "
                         + ", ".join(experiments.STUDIES))
      if _CONFIGS.value is not None:
        raise ValueError("configs is not allowed with --agent=dqn (a study "
                         "is its cells)")
      overrides = {}
      if _NUM_STEPS.value is not None:
        overrides["num_steps"] = _NUM_STEPS.value
      plan = experiments.dqn_study_plan(_STUDY.value, _BUDGET.value, out,
                                        games=_GAMES.value, seeds=seeds,
                                        overrides=overrides)
    if _PLAN_ONLY.value:
      for run in plan:  # root_dir relative to --out, as in plan.json
        config = json.loads(run.config.to_json())
        config["root_dir"] = os.path.relpath(run.config.root_dir, os.path.abspath(out))
        print(json.dumps(config, sort_keys=True))
      print(f"runs={len(plan)}")
      return
    title = (f"DQN {_STUDY.value} study, {_BUDGET.value} budget"
             if _AGENT.value == "dqn" else f"C51 study, {_BUDGET.value} budget")
    result = experiments.run_study(plan, out, workers=_WORKERS.value,
                                   ray_address=_RAY_ADDRESS.value or None,
                                   title=f"{title} ({len(plan)} runs)")
  except ValueError as e:
    console.bad_flag(f"--{e}")
  except sweeps.SweepError:  # its message is already printed
    raise SystemExit(1)
  if result["failed"]:
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
