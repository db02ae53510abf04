"""The main job behind `make run`.

For now it checks the installed stack and reports what the main job will be:
the end-to-end SN-C51 run (train, export, evaluate, plot) lands with the C51
pipeline (issue 3); until then this launcher says so instead of pretending.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402


def main(argv):
  del argv
  from importlib import metadata

  import sn_tf
  from sn_tf import layers  # noqa: F401  (fails loudly if the package is broken)

  print(f"sn_tf {sn_tf.__version__}")
  for dist in ("tensorflow", "tensorflow-probability", "tf-agents", "gymnasium",
               "ale-py", "minatar", "absl-py"):
    print(f"  {dist:24s} {metadata.version(dist)}")
  print("Main job (arrives with the C51 pipeline): a short SN-C51 run, SN on the "
        "penultimate layer (--spectral=-2), on MinAtar Breakout; export of the "
        "policy as a SavedModel; evaluation of the exported policy; a learning-"
        "curve plot. Available now: sn_tf.layers.SNDense and SNConv2D.")


if __name__ == "__main__":
  app.run(main)
