"""Corrupt checkpoints, NaN/inf in the loss, a sigma or rho, a full disk, and
two processes on one root_dir."""

import os

from absl import logging
import pytest

from fault_helpers import assert_nothing_half_written, assert_same_metrics, rows
from sn_tf.config import make_config
from sn_tf.train import train

TINY = dict(spectral="-2", num_steps=600, eval_every=200, eval_episodes=2,
            learning_starts=100, replay_capacity=1000, batch_size=8,
            target_update_period=50, epsilon_decay_steps=300, log_every=100,
            eval_max_episode_steps=200, measure_states=16)


def config(root, **overrides):
  return make_config("minatar:breakout", str(root), "minatar",
                     **dict(TINY, **overrides))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("full") / "run"
  train(config(root))
  return str(root)


def _checkpoints(root):
  d = os.path.join(root, "checkpoints")
  return sorted(os.path.join(d, n) for n in os.listdir(d) if n.startswith("ckpt-"))


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip_byte(path):
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0xFF]))


FULL = pytest.mark.faults_full


@pytest.mark.parametrize("damage,file", [
    (_truncate, "replay.npz"), (_flip_byte, "tf.data-00000-of-00001"),
    pytest.param(_flip_byte, "replay.npz", marks=FULL),
    pytest.param(_truncate, "state.json", marks=FULL),
    pytest.param(_flip_byte, "state.npz", marks=FULL),
    pytest.param(os.remove, "MANIFEST.json", marks=FULL)])
def test_corrupt_newest_checkpoint_resumes_from_the_previous_one(
    tmp_path, full_run, damage, file, monkeypatch):
  root = tmp_path / "run"
  train(config(root, num_steps=400))  # checkpoints at 200 and 400
  newest = _checkpoints(root)[-1]
  damage(os.path.join(newest, file))
  warnings = []
  monkeypatch.setattr(logging, "warning",
                      lambda msg, *a: warnings.append(msg % a if a else msg))
  train(config(root))  # resumes from 200, not from scratch
  assert any(newest in w and "cannot be restored" in w for w in warnings), warnings
  assert_same_metrics(full_run, str(root))
  assert_nothing_half_written(str(root))


def test_every_checkpoint_corrupt_is_an_error_not_a_silent_restart(tmp_path):
  root = tmp_path / "run"
  train(config(root, num_steps=400))
  for path in _checkpoints(root):
    _truncate(os.path.join(path, "replay.npz"))
  with pytest.raises(RuntimeError, match="No checkpoint could be restored"):
    train(config(root))
  assert [r["step"] for r in rows(str(root))] == ["200", "400"]  # untouched


@pytest.mark.parametrize("spec,overrides,match", [
    ("loss:150:nan", {}, r"loss is nan at step 2\d\d"),
    pytest.param("loss:320:inf", {}, r"loss is inf at step 4\d\d", marks=FULL),
    pytest.param("sigma:7:nan", {}, r"sigma/\w+ is nan at step \d+", marks=FULL),
    ("rho:5:inf", dict(spectral="none", scheduler="divgrad"), r"rho is inf at step \d+"),
])
def test_non_finite_values_stop_the_run_naming_step_and_quantity(
    tmp_path, fault_env, spec, overrides, match):
  root = tmp_path / "run"
  fault_env(spec)
  with pytest.raises(FloatingPointError, match=match) as info:
    train(config(root, **overrides))
  assert "last checkpoint and export are intact" in str(info.value)
  assert_nothing_half_written(str(root))
  fault_env("")
  steps = [r["step"] for r in rows(str(root))] if os.path.exists(
      root / "metrics.csv") else []
  # Whatever was written before the fault is whole and resumable.
  result = train(config(root, **overrides))
  assert result["step"] == 600 and int(steps[-1] if steps else 0) < 600


@pytest.mark.parametrize("spec,match", [
    ("checkpoint.mid:2:oserror", r"cannot write checkpoint .*ckpt-000000000400 "
                                 r".*no space left.*complete checkpoints: .*ckpt-000000000200"),
    pytest.param("csv:2:oserror", r"cannot write metrics.csv in .* no space left",
                 marks=FULL),
])
def test_unwritable_disk_is_a_clear_error_with_nothing_partial(
    tmp_path, fault_env, spec, match, full_run):
  root = tmp_path / "run"
  fault_env(spec)
  with pytest.raises(OSError, match=match):
    train(config(root))
  ckpt_dir = root / "checkpoints"
  assert not [n for n in os.listdir(ckpt_dir) if n.startswith(".tmp-")]
  assert_nothing_half_written(str(root))
  fault_env("")
  train(config(root))  # the disk is back: the run resumes and matches
  assert_same_metrics(full_run, str(root))
