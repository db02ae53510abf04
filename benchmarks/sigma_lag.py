"""Power-iteration lag: how far the sigma of a normalised layer is from its
exact spectral norm during training (docs/layers.md#power-iteration-lag).

Trains one run with the real loop (default: DQN on the minatar_dqn preset,
MinAtar breakout, net 16-16/128, SN[-2], 250k env steps, seed 0) and, every
--every env steps, reads each normalised layer:

- ``stored``: the sigma the last update divided by (``layer.sigma``);
- ``next``: the sigma the next update will divide by, i.e. one more
  power-iteration step on the current kernel from the stored vectors;
- ``exact``: ||A||_2 of the current kernel, by SVD of the operator in float64.

Prints one row per reading, then the largest relative errors after the first
reading, ``max_rel_error_stored=<value>`` and, last,
``max_rel_error_next=<value>`` (|next - exact| / exact: the error of the
divisor actually used). The run ends with one evaluation of --eval_steps env
steps, whose two scores (docs/protocol.md#evaluation) are printed too.

  python benchmarks/sigma_lag.py [--env minatar:breakout] [--steps 250000]
      [--act_power_iteration]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sn_tf  # noqa: E402,F401  (Keras 2 as tf.keras, before TensorFlow loads)
import tensorflow as tf  # noqa: E402

from sn_tf.config import make_config  # noqa: E402
from sn_tf.train import Runner  # noqa: E402


class LagRunner(Runner):
  """The training loop, reading each normalised layer's sigma every ``every``
  steps (after that step's update and periodic jobs)."""

  def __init__(self, config, root, every: int):
    super().__init__(config, root)
    self.every = every
    self.readings = []
    self.layers = [l for l in self.learner.online_network.sn_layers if l.active]

  def _periodic_jobs(self, epsilon, progress):
    super()._periodic_jobs(epsilon, progress)
    if self.state.step % self.every:
      return
    for layer in self.layers:
      self.readings.append(dict(
          step=self.state.step, layer=layer.name,
          stored=float(layer.sigma.numpy()),
          next=float(layer.next_spectral_norm_estimate().numpy()),
          exact=layer.exact_spectral_norm()))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--env", default="minatar:breakout")
  parser.add_argument("--model", default="16-16/128", help="--minatar_model")
  parser.add_argument("--spectral", default="-2")
  parser.add_argument("--steps", type=int, default=250_000)
  parser.add_argument("--every", type=int, default=10_000)
  parser.add_argument("--eval_steps", type=int, default=125_000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--act_power_iteration", action="store_true",
                      help="Also iterate in the loop's acting forward passes.")
  parser.add_argument("--root_dir", default=None,
                      help="Run directory (default: a new temporary one).")
  args = parser.parse_args()
  if args.every < 1000 or args.every % 1000 or args.steps % args.every:
    parser.error(f"--every={args.every}: a multiple of the 1,000-step logging "
                 f"window that divides --steps={args.steps}.")
  root = os.path.abspath(args.root_dir or tempfile.mkdtemp(prefix="sigma_lag_"))
  if os.path.exists(os.path.join(root, "config.json")):
    parser.error(f"--root_dir={root} holds a run; give a new directory.")
  config = make_config(args.env, root, "minatar_dqn", minatar_model=args.model,
                       spectral=args.spectral, seed=args.seed,
                       num_steps=args.steps, eval_every=args.steps,
                       eval_steps=args.eval_steps, log_every=1000,
                       act_power_iteration=args.act_power_iteration)
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "config.json"), "w") as f:
    f.write(config.to_json())
  tf.config.threading.set_intra_op_parallelism_threads(config.tf_threads)
  tf.config.threading.set_inter_op_parallelism_threads(config.tf_threads)
  tf.keras.utils.set_random_seed(config.seed)
  runner = LagRunner(config, root, args.every)
  if not runner.layers:
    parser.error(f"--spectral={args.spectral!r} normalises no layer.")
  result = runner.run()

  print(f"\n{args.env}, net {args.model}, SN[{args.spectral}], seed {args.seed}, "
        f"{args.steps} steps, act_power_iteration={args.act_power_iteration}; "
        f"run directory {root}")
  print(f"{'step':>8} {'layer':>8} {'stored':>10} {'next':>10} {'exact':>10} "
        f"{'stored err':>11} {'next err':>10}")
  worst = {"stored": 0.0, "next": 0.0}
  for r in runner.readings:
    errors = {k: abs(r[k] - r["exact"]) / r["exact"] for k in worst}
    if r["step"] > args.every:
      worst = {k: max(worst[k], errors[k]) for k in worst}
    print(f"{r['step']:>8} {r['layer']:>8} {r['stored']:>10.5f} "
          f"{r['next']:>10.5f} {r['exact']:>10.5f} {errors['stored']:>11.2e} "
          f"{errors['next']:>10.2e}")
  print(f"evaluation over {args.eval_steps} steps at step {result['step']}: "
        f"eval/return={float(result['eval/return']):.4f} over "
        f"{result['eval/episodes']} completed episodes, "
        f"eval/reward_per_finished_episode="
        f"{float(result['eval/reward_per_finished_episode']):.4f}")
  print(f"max_rel_error_stored={worst['stored']:.3e}")
  print(f"max_rel_error_next={worst['next']:.3e}")


if __name__ == "__main__":
  main()
