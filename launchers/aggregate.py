r"""Tables and figures over every run under a directory, with an index.

  python launchers/aggregate.py --runs_dir=runs/reproduce_small/runs \
      --out=runs/report

MinAtar scores are normalised per game (and network, when the runs use
several) by the --baseline configuration's mean final score (default: the
agent with no SN and no scheduler, DQN or C51); Atari scores are
human-normalised. Runs not yet evaluated at their num_steps are left out,
and so are finished runs whose seed has not finished on every game of its
configuration (a study still running).
Aggregates (median, IQM, mean, optimality gap with 95%% stratified-bootstrap
CIs), performance profiles and the studies' figures come from rliable.
"""

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_RUNS_DIR = flags.DEFINE_string("runs_dir", None, "Directory holding run directories.")
_OUT = flags.DEFINE_string("out", None, "Report directory.")
_BASELINE = flags.DEFINE_string("baseline", None,
                                "Configuration label MinAtar scores are "
                                "normalised by (default: the agent without "
                                "SN or scheduler, DQN or C51).")
_TITLE = flags.DEFINE_string("title", "", "Report title.")
_RUNS_NAME = flags.DEFINE_string(
    "runs_name", None, "How the report names the runs' directory (e.g. the "
    "--out of the command that made them); default: its path relative to "
    "--out.")
flags.mark_flags_as_required(["runs_dir", "out"])


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  from sn_tf.analysis.report import write_report  # pylint: disable=g-import-not-at-top
  try:
    index = write_report(_RUNS_DIR.value, _OUT.value,
                         baseline=_BASELINE.value, title=_TITLE.value,
                         runs_name=_RUNS_NAME.value)
  except ValueError as e:
    console.bad_flag(str(e))
  print(index)


if __name__ == "__main__":
  app.run(main)
