r"""Run a grid of training configs as Ray tasks; resumable.

  python launchers/sweep.py --sweep=sweeps/example.yaml --out=runs/sweep1

The sweep file maps config fields (any --flag of launchers/train.py, plus
preset) to a list of values or one value, e.g.

  env: [minatar:breakout, minatar:asterix]
  spectral: [none, "-2"]
  scheduler: [none, divgrad]
  seed: [0..9]
  num_steps: 250000

Every combination is validated before any work. By default an embedded local
Ray runs --local_cpus / --cpus_per_run runs at a time; --ray_address=<head
ip>:<port> (or auto, on a node of the cluster) sends them to an existing
cluster, whose nodes must all see --out at the same path (checked by each run
before it starts; README "Running on a cluster"). Relaunching the same
command skips finished runs and resumes the others; at the end the aggregate
report is written to <out>/report/index.md.
"""

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file (.yaml, .yml or .py with SWEEP).")
_OUT = flags.DEFINE_string("out", None, "Sweep directory (runs, logs, report).")
_RAY_ADDRESS = flags.DEFINE_string(
    "ray_address", "", "Empty: start an embedded local Ray; '<head ip>:<port>' "
    "or 'auto': an existing cluster (--out on a shared file system).")
_LOCAL_CPUS = flags.DEFINE_integer(
    "local_cpus", None, "CPUs of the embedded Ray (default: all cores).")
_CPUS_PER_RUN = flags.DEFINE_float("cpus_per_run", 1.0, "Ray CPUs per run (> 0).")
_GPUS_PER_RUN = flags.DEFINE_float("gpus_per_run", 0.0, "Ray GPUs per run (>= 0).")
_REPORT = flags.DEFINE_boolean("report", True, "Write the aggregate report at the end.")
flags.mark_flags_as_required(["sweep", "out"])


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  if _CPUS_PER_RUN.value <= 0:
    console.bad_flag(f"--cpus_per_run={_CPUS_PER_RUN.value} is not allowed; "
                         "a number > 0.")
  if _GPUS_PER_RUN.value < 0:
    console.bad_flag(f"--gpus_per_run={_GPUS_PER_RUN.value} is not allowed; "
                         "a number >= 0.")
  if _LOCAL_CPUS.value is not None and _LOCAL_CPUS.value < 1:
    console.bad_flag(f"--local_cpus={_LOCAL_CPUS.value} is not allowed; "
                         "an integer >= 1.")
  if _LOCAL_CPUS.value is not None and _RAY_ADDRESS.value:
    console.bad_flag("--local_cpus applies to the embedded Ray only; drop it "
                         "or drop --ray_address.")
  from sn_tf import sweeps  # pylint: disable=g-import-not-at-top
  try:
    plan = sweeps.expand_sweep(sweeps.load_sweep(_SWEEP.value), _OUT.value)
  except ValueError as e:
    console.bad_flag(f"--sweep={_SWEEP.value}: {e}")
  try:
    result = sweeps.run_plan(
        plan, _OUT.value, ray_address=_RAY_ADDRESS.value or None,
        num_cpus=_LOCAL_CPUS.value, cpus_per_run=_CPUS_PER_RUN.value,
        gpus_per_run=_GPUS_PER_RUN.value, report=_REPORT.value)
  except KeyboardInterrupt:
    raise SystemExit(130)
  except sweeps.SweepError:  # its message is already printed
    raise SystemExit(1)
  if result["failed"]:
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
