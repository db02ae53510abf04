"""Memory and speed of the Atari replays: FrameStackReplay vs UniformReplay.

For each buffer, with observations ``[84, 84, 4]`` uint8 and ``capacity`` =
``--fill`` slots: bytes per transition (``nbytes / capacity``), resident
memory (VmRSS from /proc/self/status) before allocating, after allocating
(pages are committed lazily, so it barely moves) and after adding ``--fill``
transitions of a synthetic zero-padded frame-stack stream, the projected
memory of a 1M-slot buffer (from ``nbytes`` and from the measured RSS growth
per transition), the mean ``add`` time and the time of ``sample(--batch)``
(median over ``--blocks`` blocks). The buffers are measured one after the
other in this process; each is freed before the next. Prints a table, then
``bytes_per_transition=<value>`` for FrameStackReplay.

  python benchmarks/bench_replay.py [--fill 200000] [--episode-length 400]
"""

import argparse
import gc
import time
from typing import Dict

import numpy as np

from sn_tf.replay import FrameStackReplay, UniformReplay

OBS_SHAPE = (84, 84, 4)
ONE_MILLION = 1_000_000


def rss_bytes() -> int:
  """Resident set size of this process (VmRSS), in bytes."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) * 1024
  raise RuntimeError("VmRSS not found in /proc/self/status")


def fill(replay, num: int, episode_length: int, seed: int) -> float:
  """Adds ``num`` transitions; returns the mean add time in seconds.

  Frames come from a pool of random nonzero 84x84 frames; stacks start as
  zeros plus one frame, as our Atari envs' do; episodes end with a terminal
  every ``episode_length`` steps.
  """
  rng = np.random.default_rng(seed)
  pool = rng.integers(1, 256, (257,) + OBS_SHAPE[:-1], dtype=np.uint8)
  obs = None
  add_time = 0.0
  for t in range(num):
    if obs is None:
      obs = np.zeros(OBS_SHAPE, np.uint8)
      obs[..., -1] = pool[t % len(pool)]
    next_obs = np.empty_like(obs)
    next_obs[..., :-1] = obs[..., 1:]
    next_obs[..., -1] = pool[(t + 1) % len(pool)]
    end = (t + 1) % episode_length == 0
    start = time.perf_counter()
    replay.add(obs, t % 18, 1.0, next_obs, terminal=end, episode_end=end)
    add_time += time.perf_counter() - start
    obs = None if end else next_obs
  return add_time / num


def sample_time(replay, batch: int, blocks: int, block_size: int) -> float:
  """Median over ``blocks`` of the mean ``sample(batch)`` time (seconds)."""
  for _ in range(20):
    replay.sample(batch)
  times = []
  for _ in range(blocks):
    start = time.perf_counter()
    for _ in range(block_size):
      replay.sample(batch)
    times.append((time.perf_counter() - start) / block_size)
  return float(np.median(times))


def measure(cls, args) -> Dict[str, float]:
  gc.collect()
  rss_before = rss_bytes()
  replay = cls(args.fill, OBS_SHAPE, np.uint8, seed=0)
  rss_alloc = rss_bytes()
  add_s = fill(replay, args.fill, args.episode_length, seed=0)
  rss_full = rss_bytes()
  row = dict(
      capacity=replay.capacity,
      transitions=len(replay),
      bytes_per_transition=replay.nbytes / replay.capacity,
      rss_before_mb=rss_before / 2**20,
      rss_alloc_mb=rss_alloc / 2**20,
      rss_full_mb=rss_full / 2**20,
      rss_per_transition=(rss_full - rss_before) / args.fill,
      add_us=1e6 * add_s,
      sample_ms=1e3 * sample_time(replay, args.batch, args.blocks,
                                  args.block_size))
  row["projected_1m_gb"] = row["bytes_per_transition"] * ONE_MILLION / 1e9
  row["projected_rss_1m_gb"] = row["rss_per_transition"] * ONE_MILLION / 1e9
  del replay
  gc.collect()
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--fill", type=int, default=200_000,
                      help="transitions added; also the capacity (slots)")
  parser.add_argument("--episode-length", type=int, default=400)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--blocks", type=int, default=5)
  parser.add_argument("--block-size", type=int, default=200)
  args = parser.parse_args()
  if args.fill < 10 or args.episode_length < 1:
    parser.error("--fill must be >= 10 and --episode-length >= 1")

  rows = {cls.__name__: measure(cls, args)
          for cls in (FrameStackReplay, UniformReplay)}
  columns = [
      ("capacity", "capacity (slots)", "{:.0f}"),
      ("transitions", "len after fill", "{:.0f}"),
      ("bytes_per_transition", "bytes / transition (nbytes/cap)", "{:.0f}"),
      ("rss_before_mb", "RSS before alloc (MB)", "{:.0f}"),
      ("rss_alloc_mb", "RSS after alloc (MB)", "{:.0f}"),
      ("rss_full_mb", f"RSS after {args.fill} adds (MB)", "{:.0f}"),
      ("rss_per_transition", "RSS growth / transition (B)", "{:.0f}"),
      ("projected_1m_gb", "projected 1M, nbytes (GB)", "{:.2f}"),
      ("projected_rss_1m_gb", "projected 1M, RSS growth (GB)", "{:.2f}"),
      ("add_us", "add (us)", "{:.1f}"),
      ("sample_ms", f"sample B={args.batch} (ms, median)", "{:.3f}"),
  ]
  names = list(rows)
  width = max(len(label) for _, label, _ in columns)
  print(f"{'':<{width}}  " + "  ".join(f"{n:>16}" for n in names))
  for key, label, fmt in columns:
    print(f"{label:<{width}}  " + "  ".join(
        f"{fmt.format(rows[n][key]):>16}" for n in names))
  print(f"bytes_per_transition="
        f"{rows['FrameStackReplay']['bytes_per_transition']:.1f}")


if __name__ == "__main__":
  main()
