"""Atari collection speed: emulator frames/s for N = 1, 2, 4, 8 environments.

Backends, each stepping N copies of one game with uniformly random actions
(no learner; what an N-env collector can deliver at most):

* ``loop``: N ``sn_tf.envs.AtariEnv`` stepped one after another in Python
  (our preprocessing, checkpointable state).
* ``gym_async``: the same N envs' gymnasium stacks in
  ``gymnasium.vector.AsyncVectorEnv`` (one subprocess per env).
* ``ale_vector``: ale-py's own ``AtariVectorEnv`` (C++ threads; its own
  resize/stack/no-op code, frameskip 4, 84x84, stack 4).

Frames are emulator frames (4 per agent step). Prints a table, then
``best_frames_per_s_n8=<value>``.

  python benchmarks/bench_vector_env.py [--game Breakout] [--steps 2000]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402


def _loop(game, n, steps):
  from sn_tf.envs.atari import AtariEnv  # pylint: disable=g-import-not-at-top
  envs = [AtariEnv(game, seed=i, training=True) for i in range(n)]
  num_actions = int(envs[0].action_spec().maximum) + 1
  rng = np.random.default_rng(0)
  for env in envs:
    env.reset()
  start = time.perf_counter()
  for _ in range(steps):
    for env in envs:
      if env.step(np.int32(rng.integers(num_actions))).is_last():
        env.reset()
  elapsed = time.perf_counter() - start
  for env in envs:
    env.close()
  return elapsed


def _gym_async(game, n, steps):
  from sn_tf.envs.atari import AtariEnv  # pylint: disable=g-import-not-at-top

  def make(i):
    return lambda: AtariEnv(game, seed=i, training=True).gym_env

  envs = gym.vector.AsyncVectorEnv([make(i) for i in range(n)])
  envs.reset(seed=0)
  rng = np.random.default_rng(0)
  start = time.perf_counter()
  for _ in range(steps):
    envs.step(rng.integers(envs.single_action_space.n, size=n))
  elapsed = time.perf_counter() - start
  envs.close()
  return elapsed


def _ale_vector(game, n, steps):
  from ale_py.vector_env import AtariVectorEnv  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  rom = re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()
  envs = AtariVectorEnv(rom, n, noop_max=30, episodic_life=True,
                        reward_clipping=False, use_fire_reset=False)
  envs.reset(seed=0)
  rng = np.random.default_rng(0)
  start = time.perf_counter()
  for _ in range(steps):
    envs.step(rng.integers(envs.single_action_space.n, size=n))
  elapsed = time.perf_counter() - start
  envs.close()
  return elapsed


BACKENDS = {"loop": _loop, "gym_async": _gym_async, "ale_vector": _ale_vector}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--game", default="Breakout")
  parser.add_argument("--steps", type=int, default=2000,
                      help="vector steps per measurement (N agent steps each)")
  parser.add_argument("--num_envs", default="1,2,4,8")
  parser.add_argument("--backends", default=",".join(BACKENDS))
  args = parser.parse_args()
  sizes = [int(n) for n in args.num_envs.split(",")]
  backends = args.backends.split(",")
  for name in backends:
    if name not in BACKENDS:
      parser.error(f"--backends: {name!r} is not one of {', '.join(BACKENDS)}")
  print(f"{args.game}, random actions, {args.steps} vector steps, "
        f"{os.cpu_count()} CPUs; emulator frames/s (4 per agent step)")
  header = f"{'N':>3s} " + " ".join(f"{b:>12s}" for b in backends)
  print(header)
  print("-" * len(header))
  best = {}
  for n in sizes:
    cells = []
    for name in backends:
      elapsed = BACKENDS[name](args.game, n, args.steps)
      fps = 4 * n * args.steps / elapsed
      best[n] = max(best.get(n, 0.0), fps)
      cells.append(f"{fps:12.0f}")
    print(f"{n:3d} " + " ".join(cells), flush=True)
  if max(sizes) in best:
    print(f"best_frames_per_s_n{max(sizes)}={best[max(sizes)]:.0f}")


if __name__ == "__main__":
  main()
