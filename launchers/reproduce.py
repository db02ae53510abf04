r"""Reproduce the paper's MinAtar findings at a chosen budget; resumable.

  python launchers/reproduce.py --budget=small --out=runs/reproduce_small

Runs the layer sweep (SN on none, -1, -2, -3, -1,-2, ...) and the scheduler
comparison (DivOut, DivGrad, MulEps on -2) over the budget's games and seeds,
--workers runs at a time as Ray tasks (or on a Ray cluster with
--ray_address), then writes every plot and table into
<out>/report/ with an index.md. Rerunning the same command skips finished
runs and resumes the others from their checkpoints.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_BUDGET = flags.DEFINE_string("budget", "small", "small or paper (see README).")
_OUT = flags.DEFINE_string("out", None, "Output directory (runs, logs, report).")
_WORKERS = flags.DEFINE_integer("workers", 2, "Runs at a time on this machine "
                                "(CPUs of the embedded Ray, one per run).")
_RAY_ADDRESS = flags.DEFINE_string("ray_address", "", "Empty: embedded local "
                                   "Ray; 'auto' or 'ray://host:port': a cluster.")
_GAMES = flags.DEFINE_list("games", None, "MinAtar games (default: the budget's).")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: the budget's).")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Steps per run (default: the budget's).")
_CONFIGS = flags.DEFINE_list("configs", None,
                             "Only these configurations, e.g. none,sn-2,divgrad-2.")
flags.mark_flags_as_required(["out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  from sn_tf import experiments  # pylint: disable=g-import-not-at-top
  seeds = None
  if _SEEDS.value is not None:
    try:
      seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
      raise app.UsageError(f"--seeds={','.join(_SEEDS.value)}: allowed: "
                           "comma-separated integers >= 0.") from None
  try:
    plan = experiments.study_plan(_BUDGET.value, _OUT.value, games=_GAMES.value,
                                  seeds=seeds, num_steps=_NUM_STEPS.value,
                                  configs=_CONFIGS.value)
    result = experiments.run_study(plan, _OUT.value, workers=_WORKERS.value,
                                   ray_address=_RAY_ADDRESS.value or None)
  except ValueError as e:
    raise app.UsageError(f"--{e}") from None
  if result["failed"]:
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
