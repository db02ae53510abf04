"""Training is reproduced exactly: seed-0 runs of 3,000 steps against golden
``metrics.csv`` files.

The golden files were written by this test (``SN_TF_WRITE_GOLDEN=1``) at
commit 6d2c64a, before the redesign of the schedulers, agents and runner
(docs/architecture.md), which promised training behaviour unchanged bit for
bit. Every column but ``wall_time`` and ``steps_per_second`` must match
exactly (as written, i.e. the same float32 values printed the same way).
Regenerate them only for a change that alters training on purpose, in a
commit that says why.
"""

import csv
import os
import shutil

import pytest

from sn_tf.config import make_config
from sn_tf.train import train

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
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


def _rows(path):
  with open(path, newline="") as f:
    return [{k: v for k, v in row.items() if k not in SKIP}
            for row in csv.DictReader(f)]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_training_reproduces_the_golden_metrics(name, tmp_path):
  config = make_config("minatar:breakout", str(tmp_path / name),
                       **COMMON, **RUNS[name])
  train(config)
  got = os.path.join(config.root_dir, "metrics.csv")
  want = os.path.join(GOLDEN, f"{name}.csv")
  if os.environ.get("SN_TF_WRITE_GOLDEN") == "1":
    shutil.copy(got, want)
  assert _rows(got) == _rows(want)
