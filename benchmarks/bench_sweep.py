"""Wall time of a tiny sweep on embedded Ray with 1 and 2 workers.

16 runs (SN none/-2 x 8 seeds, MinAtar Breakout, --num_steps each) per
worker count, each in a fresh directory, so every run trains from scratch in
its own Ray worker process. Prints a table, then ``speedup_2_workers=<x>``.

  python benchmarks/bench_sweep.py [--num_steps 300] [--workers 1,2]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num_steps", type=int, default=300)
  parser.add_argument("--workers", default="1,2")
  args = parser.parse_args()
  from sn_tf import sweeps  # pylint: disable=g-import-not-at-top
  grid = dict(env="minatar:breakout", spectral=["none", "-2"], seed="0..7",
              num_steps=args.num_steps, eval_every=args.num_steps,
              eval_episodes=2, learning_starts=100, replay_capacity=1000,
              batch_size=32, epsilon_decay_steps=100, eval_max_episode_steps=200,
              target_update_period=100, log_every=100)
  rows = []
  for workers in [int(w) for w in args.workers.split(",")]:
    out = tempfile.mkdtemp(prefix=f"bench_sweep_{workers}_")
    plan = sweeps.expand_sweep(grid, out)
    start = time.perf_counter()
    result = sweeps.run_plan(plan, out, num_cpus=workers, report=False,
                             echo=lambda _: None)
    wall = time.perf_counter() - start
    if result["failed"] or len(result["finished"]) != len(plan):
      raise SystemExit(f"sweep with {workers} workers failed: {result['failed']}")
    rows.append((workers, len(plan), wall))
    shutil.rmtree(out)
  print(f"{'workers':>8} {'runs':>5} {'wall s':>8} {'s/run':>7} {'speedup':>8}")
  for workers, runs, wall in rows:
    print(f"{workers:>8} {runs:>5} {wall:>8.1f} {wall / runs:>7.2f} "
          f"{rows[0][2] / wall:>8.2f}")
  print(f"speedup_{rows[-1][0]}_workers={rows[0][2] / rows[-1][2]:.2f}")


if __name__ == "__main__":
  main()
