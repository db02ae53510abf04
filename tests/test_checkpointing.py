"""Checkpoints hold data only; pickled ones (older sn_tf) are refused, never
executed, and convert once when the user says they trust them."""

import json
import os
import pickle

import minatar
import numpy as np
import pytest

from sn_tf import checkpointing
from sn_tf import datafiles
from sn_tf.envs import snapshots
from sn_tf.train import train
import test_train  # tests/ is on the path: the tiny config and CSV reader
from test_train import rows


def tiny_config(root, **overrides):
  return test_train.tiny_config(root, **dict(dict(num_steps=400), **overrides))


def checkpoints(root):
  d = os.path.join(root, "checkpoints")
  return sorted(os.path.join(d, n) for n in os.listdir(d) if n.startswith("ckpt-"))


def test_a_checkpoint_holds_only_data(tmp_path):
  train(tiny_config(tmp_path, num_steps=200))
  (path,) = checkpoints(tmp_path)
  names = sorted(os.listdir(path))
  assert "state.json" in names and "state.npz" in names
  assert not [n for n in names if n.endswith((".pkl", ".pickle"))]
  for name in names:
    if name.endswith(".npz"):  # every array loads without pickle
      with np.load(os.path.join(path, name), allow_pickle=False) as data:
        for key in data.files:
          assert data[key].dtype != object
  state = datafiles.read(path, "state")
  env_state = state["env_states"][0]
  assert env_state["minatar"]["game"] == "breakout"
  assert set(state["explore_rng"]) >= {"bit_generator", "state"}


class WritesAMarker:
  """Unpickling this creates the directory ``marker`` (code execution)."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.mkdir, (self.marker,)


def make_pickled(path, state):
  """Turns checkpoint ``path`` into the older format: ``state.pkl`` instead of
  state.json/state.npz, with a matching manifest."""
  for name in ("state.json", "state.npz"):
    os.remove(os.path.join(path, name))
  with open(os.path.join(path, checkpointing.PICKLED_STATE), "wb") as f:
    pickle.dump(state, f)
  with open(os.path.join(path, checkpointing.MANIFEST)) as f:
    step = json.load(f)["step"]
  checkpointing._write_manifest(path, step)  # pylint: disable=protected-access


def test_a_crafted_pickle_is_never_executed(tmp_path):
  root = tmp_path / "run"
  marker = str(tmp_path / "pwned")
  train(tiny_config(root, num_steps=200))
  before = rows(root)
  (path,) = checkpoints(root)
  make_pickled(path, {"step": WritesAMarker(marker)})

  # Resume refuses, naming the file and the conversion command.
  with pytest.raises(checkpointing.PickledCheckpointError) as info:
    train(tiny_config(root, num_steps=200))
  assert not os.path.exists(marker)
  message = str(info.value)
  assert os.path.join(path, "state.pkl") in message
  assert f"convert_checkpoint.py --run_dir={root} --trust_pickled_checkpoint" in message
  assert rows(root) == before  # nothing of the run was touched

  # Evaluating its export and aggregating it never read the state.
  from sn_tf.analysis import report  # pylint: disable=g-import-not-at-top
  from sn_tf.evaluation import evaluate_policy  # pylint: disable=g-import-not-at-top
  evaluate_policy(os.path.join(root, "policies", "final"), episodes=1,
                  max_episode_steps=50)
  report.write_report(str(root), str(tmp_path / "report"), reps=10)

  # Conversion without the explicit trust refuses and reads nothing.
  with pytest.raises(ValueError, match="--trust_pickled_checkpoint"):
    checkpointing.convert_pickled(str(root))
  assert not os.path.exists(marker)


def legacy_state(state, game="breakout"):
  """What sn_tf wrote before data-only checkpoints: live MinAtar env objects
  and TF-Agents time steps in the pickled dict."""
  legacy = dict(state)
  legacy["env_states"] = []
  for env_state in state["env_states"]:
    env = minatar.Environment(game, sticky_action_prob=0.1)
    snapshots.minatar_from_data(env, env_state["minatar"])
    legacy["env_states"].append(
        {"minatar": env,
         "time_step": snapshots.time_step_from_data(env_state["time_step"])})
  return legacy


@pytest.mark.parametrize("agent", ["c51", "dqn"])
def test_converted_pickled_checkpoints_resume_exactly(tmp_path, agent):
  extra = dict(test_train.DQN, eval_steps=200) if agent == "dqn" else {}
  train(tiny_config(tmp_path / "full", **extra))
  old = tmp_path / "old"
  train(tiny_config(old, num_steps=200, **extra))
  for path in checkpoints(old):
    make_pickled(path, legacy_state(datafiles.read(path, "state")))
  with pytest.raises(checkpointing.PickledCheckpointError):
    train(tiny_config(old, **extra))
  converted = checkpointing.convert_pickled(str(old), trust_pickled_checkpoint=True,
                                            echo=lambda _: None)
  assert converted == checkpoints(old)
  assert not os.path.exists(os.path.join(converted[0], "state.pkl"))
  train(tiny_config(old, **extra))  # resumes at 200 from the converted state
  a, b = rows(tmp_path / "full"), rows(old)
  assert [r["step"] for r in a] == [r["step"] for r in b] == ["200", "400"]
  for ra, rb in zip(a, b):
    for key in ra:
      if key not in ("wall_time", "steps_per_second"):
        np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=1e-5,
                                   err_msg=key)
