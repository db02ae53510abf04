"""Training is reproduced exactly: seed-0 runs of 3,000 steps against golden
``metrics.csv`` files.

The golden files were written by this test (``SN_TF_WRITE_GOLDEN=1``) at
commit 6d2c64a, before the redesign of the schedulers, agents and runner
(docs/architecture.md), which promised training behaviour unchanged bit for
bit. Every column but ``wall_time`` and ``steps_per_second`` must match
exactly (as written, i.e. the same float32 values printed the same way).
Regenerate them only for a change that alters training on purpose, in a
commit that says why.

Bitwise equality holds for one TensorFlow build on one kind of CPU: oneDNN
and Eigen pick their kernels (and so their rounding) by the instruction sets
present. ``FINGERPRINT.json`` records those of the machine that wrote the
files; on another the test is skipped, saying why.
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(REPO, "tests", "golden")
# Short runs that still update (from step 500), copy targets, evaluate three
# times and measure: 1,000 steps of warm-up and decay, then greedy acting.
COMMON = dict(seed=0, num_steps=3000, learning_starts=500,
              epsilon_decay_steps=1000, eval_every=1000, replay_capacity=3000,
              log_every=500, measure_states=16, minatar_model="16/128")
RUNS = {
    "c51_sn-2": dict(agent="c51", spectral="-2", target_update_period=400,
                     eval_episodes=5),
    "dqn_sn-2": dict(agent="dqn", spectral="-2", target_update_period=400,
                     eval_steps=500),
}
for _name, _fields in (("divout", {}), ("divgrad", {}),
                       ("divgrad-pl", dict(scheduler_scope="per_layer",
                                           leave_smaller=True)),
                       ("muleps", {})):
  RUNS[f"dqn_{_name}-2"] = dict(
      agent="dqn", spectral="none", scheduler=_name.split("-")[0],
      scheduler_layers="-2", target_update_period=400, eval_steps=500,
      **_fields)
SKIP = ("wall_time", "steps_per_second")
# CPU features that change which kernels TensorFlow runs.
ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
       "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def fingerprint():
  """TensorFlow's version and the CPU's model and kernel-relevant flags."""
  model, flags = "unknown", set()
  if os.path.isfile("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name") and model == "unknown":
          model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
          flags = set(line.split(":", 1)[1].split())
          break
  return {"tensorflow": tf.__version__, "cpu": model,
          "isa": sorted(f for f in ISA if f in flags)}


def _rows(path):
  with open(path, newline="") as f:
    return [{k: v for k, v in row.items() if k not in SKIP}
            for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_training_reproduces_the_golden_metrics(name, tmp_path):
  writing = os.environ.get("SN_TF_WRITE_GOLDEN") == "1"
  recorded = os.path.join(GOLDEN, "FINGERPRINT.json")
  if writing:
    with open(recorded, "w") as f:
      json.dump(fingerprint(), f, indent=1, sort_keys=True)
  with open(recorded) as f:
    wrote = json.load(f)
  if wrote != fingerprint():
    pytest.skip(f"golden metrics were written on {wrote}; this machine is "
                f"{fingerprint()}: bitwise equality is not expected.")
  # A fresh process: TensorFlow's thread pools (tf_threads=1) are fixed by
  # its first op, and the number of threads changes the rounding of its
  # reductions; in the test process another test may have set them first.
  root = str(tmp_path / name)
  flags = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}"
           for k, v in dict(COMMON, **RUNS[name]).items()]
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "launchers", "train.py"),
       "--env=minatar:breakout", f"--root_dir={root}", *flags],
      capture_output=True, text=True, timeout=1800,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 0, result.stderr[-3000:]
  got = os.path.join(root, "metrics.csv")
  want = os.path.join(GOLDEN, f"{name}.csv")
  if writing:
    shutil.copy(got, want)
  assert _rows(got) == _rows(want)
