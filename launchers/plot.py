r"""Plot learning curves of run directories into a PNG.

  python launchers/plot.py --runs=runs/none,runs/sn2 --labels=none,-2 \
      --out=runs/curves.png
"""

from absl import app
from absl import flags

_RUNS = flags.DEFINE_list("runs", None, "Run directories (with metrics.csv).")
_LABELS = flags.DEFINE_list("labels", None, "One label per run (default: dir names).")
_OUT = flags.DEFINE_string("out", None, "Output PNG path.")
_METRIC = flags.DEFINE_string("metric", "eval/return", "Column of metrics.csv.")
_TITLE = flags.DEFINE_string("title", "", "Plot title.")
flags.mark_flags_as_required(["runs", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  from sn_tf.analysis.curves import plot_runs  # pylint: disable=g-import-not-at-top
  labels = _LABELS.value or [r.rstrip("/").split("/")[-1] for r in _RUNS.value]
  if len(labels) != len(_RUNS.value):
    raise app.UsageError(f"--labels has {len(labels)} entries but --runs has "
                         f"{len(_RUNS.value)}; give one label per run.")
  try:
    path = plot_runs(_RUNS.value, labels, _OUT.value, _METRIC.value, _TITLE.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  print(path)


if __name__ == "__main__":
  app.run(main)
