r"""The main job behind `make run`: a short SN-C51 run, export, evaluation, plot.

  python launchers/main_job.py [--root_dir=runs/main_job] [--num_steps=30000]

Trains C51 with SN on the penultimate layer (--spectral=-2) on MinAtar
Breakout with the MinAtar preset except a shorter budget and warm-up and
epsilon decay scaled to it, exports the greedy policy, evaluates the exported
SavedModel in a fresh load, and plots the learning curve. Rerunning resumes
(or, when finished, only re-evaluates and re-plots).
"""

import os

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_ROOT = flags.DEFINE_string("root_dir", "runs/main_job", "Run directory.")
_STEPS = flags.DEFINE_integer("num_steps", 30_000, "Env steps to train.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")


def job_overrides(steps: int, seed: int):
  """The main job's fields beyond the default C51 MinAtar preset."""
  return dict(agent="c51", spectral="-2", seed=seed, num_steps=steps,
              eval_every=max(1, steps // 6), eval_episodes=10,
              learning_starts=min(5_000, max(1, steps // 10)),
              epsilon_decay_steps=max(1, steps // 2))


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  from sn_tf.analysis.curves import plot_runs  # pylint: disable=g-import-not-at-top
  from sn_tf.config import make_config  # pylint: disable=g-import-not-at-top
  from sn_tf.evaluation import evaluate_policy  # pylint: disable=g-import-not-at-top
  from sn_tf.train import train  # pylint: disable=g-import-not-at-top

  steps = _STEPS.value
  try:
    config = make_config("minatar:breakout", _ROOT.value,
                         **job_overrides(steps, _SEED.value))
  except ValueError as e:
    console.bad_flag(f"--{e}")
  print(f"Main job: C51 + SN[-2] on MinAtar Breakout, {steps} steps -> "
        f"{os.path.abspath(config.root_dir)}")
  result = train(config)
  evaluation = evaluate_policy(result["policy_dir"], episodes=10, seed=123)
  png = plot_runs([result["root_dir"]], ["C51 + SN[-2]"],
                  os.path.join(result["root_dir"], "learning_curve.png"),
                  title=f"MinAtar Breakout, seed {config.seed}")
  print(f"final in-training eval return: {float(result['eval/return']):.3f}")
  print(f"exported policy {result['policy_dir']}: mean return "
        f"{evaluation['mean_return']:.3f} +- {evaluation['std_return']:.3f} "
        f"over {evaluation['episodes']} episodes (fresh SavedModel load)")
  print(f"outputs: {result['root_dir']} (metrics.csv, train/, eval/, "
        f"checkpoints/, policies/); plot: {png}")


if __name__ == "__main__":
  app.run(main)
