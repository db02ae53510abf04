"""kill -9 at chosen moments, then the same command again: nothing is lost."""

import os

import numpy as np
import pytest

from fault_helpers import (assert_nothing_half_written,
                                   assert_same_metrics, train_process)

# (point, n): SIGKILL at the n-th pass of point in that process.
FAST = [("checkpoint.mid", 1), ("export.mid", 2)]


def _random_moments(seed=0):
  """Ten kill moments: the write points, and env steps drawn at random."""
  rng = np.random.default_rng(seed)
  fixed = [("checkpoint.mid", 1), ("checkpoint.before_rename", 2),
           ("export.mid", 1), ("export.mid", 4), ("csv", 2)]
  steps = [("step", int(s)) for s in rng.integers(20, 400, size=5)]
  order = fixed + steps
  return [order[i] for i in rng.permutation(len(order))]


def _kill_then_finish(root, moments, extra=()):
  log = []
  for point, n in moments:
    result = train_process(root, f"{point}:{n}", extra)
    killed = result.returncode == -9
    log.append((point, n, killed))
    assert_nothing_half_written(root)
  final = train_process(root, extra=extra)
  assert final.returncode == 0, final.stderr
  assert_nothing_half_written(root)
  return log


def test_kill_during_checkpoint_and_export_then_resume(tmp_path, reference_run):
  root = str(tmp_path / "run")
  log = _kill_then_finish(root, FAST)
  assert all(killed for _, _, killed in log), log
  assert_same_metrics(reference_run, root)
  assert os.path.isdir(os.path.join(root, "policies", "final"))


@pytest.mark.faults_full
def test_kill_at_ten_random_moments_then_resume(tmp_path, reference_run):
  moments = _random_moments()
  assert len(moments) == 10
  for i, moment in enumerate(moments):  # a fresh run per moment: each kill lands
    root = str(tmp_path / f"run{i}")
    log = _kill_then_finish(root, [moment])
    assert all(killed for _, _, killed in log), log
    assert_same_metrics(reference_run, root)
    print("killed at", moment, "-> resumed, metrics equal the reference")


# DQN as the paper's MinAtar studies run it: an update every 4 env steps,
# evaluation by steps.
DQN_FLAGS = ["--agent=dqn", "--update_period=4", "--target_update_period=48",
             "--eval_episodes=0", "--eval_steps=300"]


@pytest.mark.faults_full
def test_dqn_kill_at_write_points_and_steps_then_resume(tmp_path):
  reference = str(tmp_path / "reference")
  done = train_process(reference, extra=DQN_FLAGS)
  assert done.returncode == 0, done.stderr
  moments = FAST + [("csv", 2), ("step", 333)]
  for i, moment in enumerate(moments):
    root = str(tmp_path / f"run{i}")
    log = _kill_then_finish(root, [moment], DQN_FLAGS)
    assert all(killed for _, _, killed in log), log
    assert_same_metrics(reference, root)
