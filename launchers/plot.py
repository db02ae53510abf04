r"""Plot learning curves of run directories into a PNG (and a final-score table).

Runs given the same label are seeds of one configuration: the plot shows their
mean with a 95%% bootstrap band, the table their final values.

  python launchers/plot.py --runs=runs/none_s0,runs/none_s1,runs/sn2_s0 \
      --labels=none,none,-2 --out=runs/curves.png --table=runs/final.md

With --per_iteration=N, the plot and the table are instead each run's mean
training-episode return over each N-step iteration (Dopamine's training
curves), optionally beside a published agent's seeds (--reference, a CSV of
seed,iteration,value):

  python launchers/plot.py --runs=runs/rr_none,runs/rr_sn2 --labels=none,-2 \
      --per_iteration=250000 --out=runs/iterations.png --table=runs/iterations.md \
      --reference=benchmarks/results/dopamine_c51_roadrunner/c51_roadrunner.csv \
      --reference_label="Dopamine C51"
"""

from absl import app
from absl import flags

from sn_tf import console

_RUNS = flags.DEFINE_list("runs", None, "Run directories (with metrics.csv).")
_LABELS = flags.DEFINE_list(
    "labels", None, "One label per run (default: dir names); runs sharing a "
    "label are averaged.")
_OUT = flags.DEFINE_string("out", None, "Output PNG path.")
_TABLE = flags.DEFINE_string(
    "table", None, "Optional markdown file for the table of final values per "
    "label (also printed).")
_METRIC = flags.DEFINE_string("metric", "eval/return", "Column of metrics.csv.")
_TITLE = flags.DEFINE_string("title", "", "Plot title.")
_PER_ITERATION = flags.DEFINE_integer(
    "per_iteration", 0, "If > 0: plot and tabulate the mean training-episode "
    "return per iteration of this many env steps instead of --metric.")
_REFERENCE = flags.DEFINE_string(
    "reference", None, "With --per_iteration: a CSV (seed,iteration,value) of "
    "a published agent's per-iteration training returns to compare with.")
_REFERENCE_LABEL = flags.DEFINE_string("reference_label", "reference",
                                       "What --reference is called.")
flags.mark_flags_as_required(["runs", "out"])


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  from sn_tf.analysis import curves  # pylint: disable=g-import-not-at-top
  labels = _LABELS.value or [r.rstrip("/").split("/")[-1] for r in _RUNS.value]
  if len(labels) != len(_RUNS.value):
    console.bad_flag(f"--labels has {len(labels)} entries but --runs has "
                         f"{len(_RUNS.value)}; give one label per run.")
  if _PER_ITERATION.value < 0:
    console.bad_flag(f"--per_iteration={_PER_ITERATION.value} is not allowed; "
                     "0 (off) or an iteration length in env steps.")
  if _REFERENCE.value and not _PER_ITERATION.value:
    console.bad_flag("--reference needs --per_iteration (it holds "
                     "per-iteration training returns).")
  try:
    if _PER_ITERATION.value:
      reference = (curves.read_reference(_REFERENCE.value)
                   if _REFERENCE.value else None)
      rows = curves.iteration_rows(_RUNS.value, labels, _PER_ITERATION.value,
                                   reference)
      path = curves.plot_iterations(rows, _OUT.value, reference,
                                    _REFERENCE_LABEL.value, _TITLE.value)
      table = curves.iteration_markdown(rows, _REFERENCE_LABEL.value)
    else:
      path = curves.plot_runs(_RUNS.value, labels, _OUT.value, _METRIC.value,
                              _TITLE.value)
      table = curves.markdown_table(
          curves.final_table(_RUNS.value, labels, _METRIC.value), _METRIC.value)
  except (ValueError, OSError) as e:
    console.bad_flag(str(e))
  if _TABLE.value:
    with open(_TABLE.value, "w") as f:
      f.write(table)
  print(table, end="")
  print(path)


if __name__ == "__main__":
  app.run(main)
