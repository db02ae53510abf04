r"""Convert a run's pickled checkpoints (sn_tf before data-only checkpoints).

  python launchers/convert_checkpoint.py --run_dir=runs/x --trust_pickled_checkpoint

Checkpoints now keep their Python state as data (state.json + state.npz) and
sn_tf refuses to restore a state.pkl: loading a pickle runs any code it
names. For a run whose origin you trust, this rewrites every
checkpoints/ckpt-*/state.pkl as data once; the run then resumes as before.
Without --trust_pickled_checkpoint it only lists the pickles and refuses.
"""

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", None, "Run directory (holding "
                               "checkpoints/) or its checkpoints/ directory.")
_TRUST = flags.DEFINE_boolean("trust_pickled_checkpoint", False,
                              "Read the pickles (runs any code in them): only "
                              "for a run whose origin you trust.")
flags.mark_flag_as_required("run_dir")


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  from sn_tf import checkpointing  # pylint: disable=g-import-not-at-top
  try:
    converted = checkpointing.convert_pickled(
        _RUN_DIR.value, trust_pickled_checkpoint=_TRUST.value)
  except ValueError as e:
    console.bad_flag(str(e))
  print(f"converted={len(converted)}")


if __name__ == "__main__":
  app.run(main)
