"""Forward+backward time of SN layers against the plain Keras layers.

One "step" is what a learner does per layer: a training forward pass (power
iteration included) and the gradient of a scalar loss w.r.t. the trainable
weights, compiled with ``tf.function``. Prints a table, then the largest SN
overhead ratio as ``sn_overhead_max=<ratio>``.

  python benchmarks/bench_layers.py [--threads 1] [--batch 32] [--repeats 2000]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import sn_tf  # noqa: E402,F401  (Keras 2 as tf.keras, before TensorFlow loads)
import tensorflow as tf  # noqa: E402

from sn_tf.layers import SNConv2D, SNDense  # noqa: E402

# (name, input shape without batch, plain factory, SN factory)
CASES = [
    ("dense 3136->512", (3136,),
     lambda: tf.keras.layers.Dense(512), lambda: SNDense(512)),
    ("dense 128->A*51 (MinAtar head)", (128,),
     lambda: tf.keras.layers.Dense(6 * 51), lambda: SNDense(6 * 51)),
    ("MinAtar conv 16 3x3 s1 on 10x10x4", (10, 10, 4),
     lambda: tf.keras.layers.Conv2D(16, 3), lambda: SNConv2D(16, 3)),
    ("Nature conv1 32 8x8 s4 on 84x84x4", (84, 84, 4),
     lambda: tf.keras.layers.Conv2D(32, 8, strides=4),
     lambda: SNConv2D(32, 8, strides=4)),
    ("Nature conv2 64 4x4 s2 on 20x20x32", (20, 20, 32),
     lambda: tf.keras.layers.Conv2D(64, 4, strides=2),
     lambda: SNConv2D(64, 4, strides=2)),
    ("Nature conv3 64 3x3 s1 on 9x9x64", (9, 9, 64),
     lambda: tf.keras.layers.Conv2D(64, 3), lambda: SNConv2D(64, 3)),
    ("Nature conv2, reshape norm", (20, 20, 32),
     lambda: tf.keras.layers.Conv2D(64, 4, strides=2),
     lambda: SNConv2D(64, 4, strides=2, norm="reshape")),
]


def step_time(layer, x, repeats):
  """Median over 5 blocks of the mean time of one compiled fwd+bwd step (s)."""
  layer(x, training=True)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(layer(x, training=True)))
    return tape.gradient(loss, layer.trainable_weights)

  for _ in range(20):
    step(x)
  block = max(1, repeats // 5)
  times = []
  for _ in range(5):
    start = time.perf_counter()
    for _ in range(block):
      out = step(x)
    _ = out[0].numpy()
    times.append((time.perf_counter() - start) / block)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--threads", type=int, default=1,
                      help="TF intra- and inter-op threads (0 = TF default)")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=1000)
  args = parser.parse_args()
  if args.threads < 0 or args.batch < 1 or args.repeats < 5:
    parser.error("need --threads >= 0, --batch >= 1, --repeats >= 5")
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  tf.keras.utils.set_random_seed(0)

  print(f"TF {tf.__version__}, threads={args.threads or 'default'}, "
        f"batch={args.batch}, compiled fwd+bwd step, median of 5 blocks")
  header = f"{'layer':40s} {'plain ms':>9s} {'SN ms':>9s} {'SN/plain':>9s}"
  print(header)
  print("-" * len(header))
  ratios = []
  for name, shape, plain, sn in CASES:
    x = tf.random.normal((args.batch,) + shape)
    t_plain = step_time(plain(), x, args.repeats)
    t_sn = step_time(sn(), x, args.repeats)
    ratios.append(t_sn / t_plain)
    print(f"{name:40s} {t_plain * 1e3:9.3f} {t_sn * 1e3:9.3f} {ratios[-1]:9.2f}")
  print(f"sn_overhead_max={max(ratios):.2f}")


if __name__ == "__main__":
  main()
