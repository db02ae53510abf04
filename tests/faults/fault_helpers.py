"""Helpers of the fault suite (``make test-faults`` runs all of it;
``make test`` skips the tests marked ``faults_full``)."""

import os
import subprocess
import sys

import numpy as np
from sn_tf import faults
from sn_tf import logs
from sn_tf.checkpointing import RunCheckpointer
from sn_tf.export import METADATA_FILE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 600 steps, evaluation/export/checkpoint at 200, 400, 600.
TINY_FLAGS = ["--env=minatar:breakout", "--spectral=-2", "--num_steps=600",
              "--eval_every=200", "--eval_episodes=2", "--learning_starts=100",
              "--replay_capacity=1000", "--batch_size=8",
              "--target_update_period=50", "--epsilon_decay_steps=300",
              "--log_every=100", "--eval_max_episode_steps=200",
              "--measure_states=16"]
IGNORED = ("wall_time", "steps_per_second")


def train_process(root, fault_spec="", extra=()):
  """Runs launchers/train.py on ``root`` with ``SN_TF_FAULTS=fault_spec``."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **{faults.ENV: fault_spec})
  return subprocess.run(
      [sys.executable, os.path.join(REPO, "launchers", "train.py"),
       f"--root_dir={root}", *TINY_FLAGS, *extra],
      capture_output=True, text=True, env=env, timeout=900)


def rows(root):
  return logs.read_csv(os.path.join(root, logs.CSV_FILE))


def assert_same_metrics(a, b):
  ra, rb = rows(a), rows(b)
  assert [r["step"] for r in ra] == [r["step"] for r in rb]
  for x, y in zip(ra, rb):
    assert list(x) == list(y)
    for key in x:
      if key not in IGNORED:
        np.testing.assert_allclose(float(x[key]), float(y[key]), rtol=1e-5,
                                   err_msg=key)


def assert_nothing_half_written(root):
  """Every checkpoint present passes its manifest; every export is whole."""
  ckpt_dir = os.path.join(root, "checkpoints")
  if os.path.isdir(ckpt_dir):
    checker = RunCheckpointer.__new__(RunCheckpointer)
    for name in os.listdir(ckpt_dir):
      if name.startswith("ckpt-"):
        checker._check(os.path.join(ckpt_dir, name))  # pylint: disable=protected-access
  pol_dir = os.path.join(root, "policies")
  if os.path.isdir(pol_dir):
    for name in os.listdir(pol_dir):
      if not name.startswith(".tmp-"):
        path = os.path.join(pol_dir, name)
        assert os.path.isfile(os.path.join(path, "saved_model.pb")), path
        assert os.path.isfile(os.path.join(path, METADATA_FILE)), path


