"""End-to-end MinAtar training speed: C51 (one update per env step) or DQN
(one update per 4 env steps, the paper's MinAtar protocol).

For each --spectral setting: runs the real training loop (`sn_tf.train.train`)
on MinAtar Breakout and reports env steps/s over the last logging window
(after tracing and warm-up), plus, measured in the same process, the
isolated compiled update, greedy act call and raw env step, the floor
1 / (update / update_period + act + env step), the ratio of end-to-end
speed to that floor, and the time of the loop's fused update + next-action
call (which is why the ratio can exceed 1). Then a profile of the update's
parts. Prints the tables, then `end_to_end_steps_per_s_sn=<value>` for the
last SN setting.

  python benchmarks/bench_train_loop.py [--agent c51|dqn] [--spectral none,-2]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import sn_tf  # noqa: E402,F401  (Keras 2 as tf.keras, before TensorFlow loads)
import tensorflow as tf  # noqa: E402


def _timed(fn, repeats):
  """Median over 5 blocks of the ms per call of ``fn``, after 20 warm-ups."""
  for _ in range(20):
    fn()
  blocks = []
  for _ in range(5):
    start = time.perf_counter()
    for _ in range(repeats // 5):
      fn()
    blocks.append((time.perf_counter() - start) / (repeats // 5))
  return 1e3 * float(np.median(blocks))


def isolated_times(config, repeats):
  """ms of the loop's compiled calls, each through FlatCall as the loop makes
  them, on a random batch of 32: the update, one act call, the fused update +
  next action call, and one raw env step; plus the profile of the update's
  parts."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from sn_tf.agents import build_learner  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  from sn_tf.fast_call import FlatCall  # pylint: disable=g-import-not-at-top
  env = make_env(config.env, seed=0, training=True)
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  update = FlatCall(learner.compiled_update())
  greedy = FlatCall(learner.compiled_greedy_actions())
  fused = FlatCall(learner.compiled_update_and_act())
  rng = np.random.default_rng(0)
  shape = (config.batch_size,) + tuple(env.observation_spec().shape)
  batch = dict(obs=(rng.random(shape) > 0.7).astype(np.uint8),
               next_obs=(rng.random(shape) > 0.7).astype(np.uint8),
               action=rng.integers(0, 3, shape[0]).astype(np.int32),
               reward=rng.random(shape[0]).astype(np.float32),
               discount=np.ones(shape[0], np.float32))
  obs = batch["obs"][:1]
  env.reset()
  actions = rng.integers(0, learner.num_actions, 100_000).astype(np.int32)
  counter = iter(range(10**9))

  def env_step():
    if env.step(actions[next(counter) % actions.size]).is_last():
      env.reset()

  times = dict(
      train=_timed(lambda: float(update(batch)), repeats),
      act=_timed(lambda: int(greedy(obs).numpy()[0]), repeats),
      fused=_timed(lambda: [t.numpy() for t in fused(batch, obs)], repeats),
      env=_timed(env_step, repeats))

  # Profile: cumulative compiled pieces of the update (tensors in, so no
  # conversion), each a separate call whose fixed cost is the first row.
  online, target = learner.online_network, learner.target_network
  optimizer = learner.optimizer
  tb = {k: tf.constant(v) for k, v in batch.items()}
  grads = [tf.zeros_like(v) + 1e-3 for v in online.trainable_weights]

  def grad_of():
    with tf.GradientTape() as tape:
      loss = learner.loss(tb)
    return tape.gradient(loss, online.trainable_weights)

  pieces = [
      ("empty compiled call", lambda: tb["reward"]),
      ("target forward", lambda: target(tb["next_obs"], training=False)[0]),
      (f"+ online forward (training) + {config.agent} loss", lambda: learner.loss(tb)),
      ("+ backward", grad_of),
      ("optimiser update alone", lambda: optimizer.apply_gradients(
          zip(grads, online.trainable_weights))),
  ]
  profile = [(name, _timed(tf.function(fn), repeats)) for name, fn in pieces]
  return times, profile


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--spectral", default="none,-2",
                      help="comma-separated list; use ';' to separate multi-layer specs")
  parser.add_argument("--agent", default="c51", choices=["c51", "dqn"],
                      help="c51: one update per env step (preset minatar); "
                      "dqn: one per 4 (preset minatar_dqn)")
  parser.add_argument("--steps", type=int, default=6000)
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=500)
  parser.add_argument("--num_envs", type=int, default=1,
                      help="envs stepped together (batched acting)")
  args = parser.parse_args()
  specs = args.spectral.split(";") if ";" in args.spectral else args.spectral.split(",")
  if args.steps < 2000:
    parser.error(f"--steps={args.steps}: allowed: >= 2000 (warm-up + 1000 timed)")
  from sn_tf.config import make_config  # pylint: disable=g-import-not-at-top
  from sn_tf.logs import read_csv  # pylint: disable=g-import-not-at-top
  from sn_tf.train import train  # pylint: disable=g-import-not-at-top

  preset = "minatar_dqn" if args.agent == "dqn" else "minatar"
  print(f"TF {tf.__version__}, tf_threads={args.threads}, "
        f"num_envs={args.num_envs}, MinAtar Breakout, {args.agent} "
        f"(preset {preset}), batch 32, {args.steps} steps per run")
  header = (f"{'spectral':10s} {'e2e steps/s':>12s} {'train ms':>9s} "
            f"{'act ms':>7s} {'env ms':>7s} {'floor steps/s':>14s} "
            f"{'e2e/floor':>10s} {'fused ms':>10s}")
  print(header)
  print("-" * len(header))
  last, profiles = None, {}
  for spec in specs:
    root = tempfile.mkdtemp(prefix="bench_train_loop_")
    try:
      config = make_config(
          "minatar:breakout", root, preset, spectral=spec,
          # Epsilon at its final 0.01 from step 1,500, so the timed window
          # acts greedily (the presets decay over 250k steps: a short run
          # would time mostly random actions, which skip the act call).
          num_steps=args.steps, learning_starts=500, epsilon_decay_steps=1000,
          log_every=1000,
          eval_every=args.steps, eval_episodes=1, eval_max_episode_steps=100,
          tf_threads=args.threads, num_envs=args.num_envs)
      train(config)
      # The steps/s of the last logging window: after tracing and warm-up,
      # before the final evaluation.
      e2e = float(read_csv(os.path.join(root, "metrics.csv"))[-1]["steps_per_second"])
    finally:
      shutil.rmtree(root, ignore_errors=True)
    times, profiles[spec] = isolated_times(config, args.repeats)
    # One env step costs an act call, the env step and 1/update_period of an
    # update: the loop's floor if it added nothing.
    floor = 1e3 / (times["train"] / config.update_period + times["act"]
                   + times["env"])
    print(f"{spec:10s} {e2e:12.1f} {times['train']:9.3f} {times['act']:7.3f} "
          f"{times['env']:7.3f} {floor:14.1f} {e2e / floor:10.2f} "
          f"{times['fused']:10.3f}", flush=True)
    last = (spec, e2e)
  print()
  print("Where the update's time goes (ms per compiled call, tensors in):")
  print(f"{'piece':42s} " + " ".join(f"{s:>8s}" for s in specs))
  for i, (name, _) in enumerate(profiles[specs[0]]):
    print(f"{name:42s} " + " ".join(f"{profiles[s][i][1]:8.3f}" for s in specs))
  print(f"end_to_end_steps_per_s_{'none' if last[0] == 'none' else 'sn'}={last[1]:.1f}")


if __name__ == "__main__":
  main()
