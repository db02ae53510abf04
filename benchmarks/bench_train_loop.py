"""End-to-end MinAtar C51 training speed, one update per env step.

For each --spectral setting: runs the real training loop (`sn_tf.train.train`)
on MinAtar Breakout and reports env steps/s over the last logging window
(after tracing and warm-up), plus the isolated compiled train-step and
greedy-act times measured in the same process, and the ratio of end-to-end
speed to the floor 1 / (train step + act step). Prints a table, then
`end_to_end_steps_per_s_sn=<value>` for the last SN setting.

  python benchmarks/bench_train_loop.py [--spectral none,-2] [--steps 6000]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def isolated_times(config, repeats):
  """Median-of-5 ms of one compiled train step (batch 32) and one act call."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from sn_tf.agents import c51  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  env = make_env(config.env, seed=0, training=True)
  agent, net = c51.build_agent(config, tensor_spec.from_spec(env.time_step_spec()),
                               tensor_spec.from_spec(env.action_spec()))
  train_step = c51.make_train_fn(agent, config.clip_rewards)
  greedy = c51.make_greedy_fn(net, env.observation_spec(), config.min_q_value,
                              config.max_q_value)
  rng = np.random.default_rng(0)
  shape = (config.batch_size,) + tuple(env.observation_spec().shape)
  batch = dict(obs=(rng.random(shape) > 0.7).astype(np.uint8),
               next_obs=(rng.random(shape) > 0.7).astype(np.uint8),
               action=rng.integers(0, 6, shape[0]).astype(np.int32),
               reward=rng.random(shape[0]).astype(np.float32),
               discount=np.ones(shape[0], np.float32))
  obs = batch["obs"][:1]

  def timed(fn):
    for _ in range(20):
      fn()
    blocks = []
    for _ in range(5):
      start = time.perf_counter()
      for _ in range(repeats // 5):
        fn()
      blocks.append((time.perf_counter() - start) / (repeats // 5))
    return 1e3 * float(np.median(blocks))

  return (timed(lambda: float(train_step(batch))),
          timed(lambda: int(greedy(obs).numpy()[0])))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--spectral", default="none,-2",
                      help="comma-separated list; use ';' to separate multi-layer specs")
  parser.add_argument("--steps", type=int, default=6000)
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=500)
  args = parser.parse_args()
  specs = args.spectral.split(";") if ";" in args.spectral else args.spectral.split(",")
  if args.steps < 2000:
    parser.error(f"--steps={args.steps}: allowed: >= 2000 (warm-up + 1000 timed)")
  from sn_tf.config import make_config  # pylint: disable=g-import-not-at-top
  from sn_tf.logs import read_csv  # pylint: disable=g-import-not-at-top
  from sn_tf.train import train  # pylint: disable=g-import-not-at-top

  print(f"TF {tf.__version__}, tf_threads={args.threads}, MinAtar Breakout, "
        f"batch 32, one update per env step, {args.steps} steps per run")
  header = (f"{'spectral':10s} {'e2e steps/s':>12s} {'train ms':>9s} "
            f"{'act ms':>7s} {'floor steps/s':>14s} {'e2e/floor':>10s}")
  print(header)
  print("-" * len(header))
  last = None
  for spec in specs:
    root = tempfile.mkdtemp(prefix="bench_train_loop_")
    try:
      config = make_config(
          "minatar:breakout", root, "minatar", spectral=spec,
          num_steps=args.steps, learning_starts=500, log_every=1000,
          eval_every=args.steps, eval_episodes=1, eval_max_episode_steps=100,
          tf_threads=args.threads)
      train(config)
      # The steps/s of the last logging window: after tracing and warm-up,
      # before the final evaluation.
      e2e = float(read_csv(os.path.join(root, "metrics.csv"))[-1]["steps_per_second"])
    finally:
      shutil.rmtree(root, ignore_errors=True)
    train_ms, act_ms = isolated_times(config, args.repeats)
    floor = 1e3 / (train_ms + act_ms)
    print(f"{spec:10s} {e2e:12.1f} {train_ms:9.3f} {act_ms:7.3f} "
          f"{floor:14.1f} {e2e / floor:10.2f}")
    last = (spec, e2e)
  print(f"end_to_end_steps_per_s_{'none' if last[0] == 'none' else 'sn'}={last[1]:.1f}")


if __name__ == "__main__":
  main()
