"""Exports are read as data and checked before anything loads them."""

import os
import shutil

import pytest
import tensorflow as tf

from sn_tf import export_check
from sn_tf.config import make_config
from sn_tf.evaluation import evaluate_policy, load_policy
from sn_tf.export import SAVE_OPTIONS
from sn_tf.train import train

FORMATS = ("tf_agents", "saved_model", "tflite")


def _tiny_run(root, env="minatar:breakout", preset=None, **overrides):
  values = dict(num_steps=64, eval_every=64, eval_episodes=1, eval_steps=0,
                learning_starts=32, replay_capacity=256, batch_size=8,
                update_period=4, target_update_period=8, log_every=32,
                eval_max_episode_steps=20, measure_states=0)
  values.update(overrides)
  train(make_config(env, str(root), preset, **values))
  return os.path.join(str(root), "policies", "final")


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
  return _tiny_run(tmp_path_factory.mktemp("genuine"), spectral="-2")


# Each agent on each net, every layer normalised (both conv norms between
# them), and DivOut, whose output division is in the exported policy.
GENUINE = [
    ("c51", "minatar:breakout", None, dict(spectral="full")),
    ("dqn", "minatar:breakout", None, dict(spectral="full", conv_norm="reshape")),
    ("c51", "minatar:breakout", None, dict(scheduler="divout")),
    ("dqn", "minatar:breakout", None, dict(scheduler="divout")),
    ("c51", "atari:Pong", "atari", dict(spectral="full")),
    ("dqn", "atari:Pong", "atari_dopamine", dict(spectral="full", conv_norm="reshape")),
]


@pytest.mark.parametrize("agent,env,preset,extra", GENUINE)
def test_genuine_exports_pass_and_play(tmp_path, agent, env, preset, extra):
  policy_dir = _tiny_run(tmp_path, env, preset, agent=agent, **extra)
  for export_format in FORMATS:
    act, _ = load_policy(policy_dir, export_format)  # checked, then loaded
    assert callable(act)
  ops = {op for op, _ in export_check.saved_model_ops(policy_dir)}
  assert {"ReadVariableOp", "VarHandleOp"} <= ops
  assert not ops & {"SaveV2", "RestoreV2", "MergeV2Checkpoints"}  # no saver


def _copy(genuine, tmp_path):
  target = str(tmp_path / "final")
  shutil.copytree(genuine, target)
  return target


def _marker_writing_serving(directory, marker, observation_shape):
  """A plain SavedModel whose serving signature also writes ``marker``."""

  class Crafted(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None] + list(observation_shape),
                                                tf.uint8, name="observation")])
    def greedy(self, observation):
      tf.io.write_file(marker, "played")
      n = tf.shape(observation)[0]
      return {"action": tf.zeros([n], tf.int32), "q_values": tf.zeros([n, 3])}

  module = Crafted()
  tf.saved_model.save(module, directory,
                      signatures={"serving_default": module.greedy},
                      options=SAVE_OPTIONS)


def _marker_writing_tf_agents(directory, marker, observation_shape):
  """A PolicySaver-like SavedModel whose ``action`` also writes ``marker``."""
  from tf_agents.trajectories import policy_step, time_step as ts  # pylint: disable=g-import-not-at-top

  class Crafted(tf.Module):

    @tf.function
    def action(self, time_step, policy_state):
      del policy_state
      tf.io.write_file(marker, "played")
      n = tf.shape(time_step.step_type)[0]
      return policy_step.PolicyStep(action=tf.zeros([n], tf.int32), state=(),
                                    info=())

  module = Crafted()
  spec = ts.TimeStep(step_type=tf.TensorSpec([None], tf.int32),
                     reward=tf.TensorSpec([None], tf.float32),
                     discount=tf.TensorSpec([None], tf.float32),
                     observation=tf.TensorSpec([None] + list(observation_shape),
                                               tf.uint8))
  module.action.get_concrete_function(spec, ())
  for name in os.listdir(directory):  # replace the PolicySaver model itself
    if name in ("saved_model.pb", "variables", "fingerprint.pb", "assets"):
      path = os.path.join(directory, name)
      shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  tmp = directory + "-crafted"
  tf.saved_model.save(module, tmp, options=SAVE_OPTIONS)
  for name in os.listdir(tmp):
    shutil.move(os.path.join(tmp, name), os.path.join(directory, name))


def test_a_marker_writing_saved_model_is_refused_and_never_runs(genuine, tmp_path):
  policy_dir = _copy(genuine, tmp_path)
  marker = str(tmp_path / "marker_serving")
  serving = os.path.join(policy_dir, "serving")
  shutil.rmtree(serving)
  _marker_writing_serving(serving, marker, (10, 10, 4))
  with pytest.raises(export_check.UntrustedExportError,
                     match=r"serving/saved_model.pb holds op 'WriteFile'"):
    evaluate_policy(policy_dir, episodes=1, export_format="saved_model")
  assert not os.path.exists(marker)
  # What the check prevents: trusted, it runs and writes.
  act, _ = load_policy(policy_dir, "saved_model", trust=True)
  act(_first_time_step())
  assert os.path.exists(marker)


def test_a_marker_writing_tf_agents_export_is_refused_and_never_runs(genuine, tmp_path):
  policy_dir = _copy(genuine, tmp_path)
  marker = str(tmp_path / "marker_tf_agents")
  _marker_writing_tf_agents(policy_dir, marker, (10, 10, 4))
  with pytest.raises(export_check.UntrustedExportError,
                     match=r"final/saved_model.pb holds op 'WriteFile'"):
    evaluate_policy(policy_dir, episodes=1, export_format="tf_agents")
  assert not os.path.exists(marker)
  act, _ = load_policy(policy_dir, "tf_agents", trust=True)
  act(_first_time_step())
  assert os.path.exists(marker)


def test_a_flex_op_in_the_tflite_model_is_refused(genuine, tmp_path):
  policy_dir = _copy(genuine, tmp_path)
  marker = str(tmp_path / "marker_tflite")
  source = str(tmp_path / "crafted_serving")
  _marker_writing_serving(source, marker, (10, 10, 4))
  converter = tf.lite.TFLiteConverter.from_saved_model(
      source, signature_keys=["serving_default"])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  with open(os.path.join(policy_dir, "policy.tflite"), "wb") as f:
    f.write(converter.convert())
  with pytest.raises(export_check.UntrustedExportError,
                     match=r"policy.tflite holds the Flex \(Select TF\) op 'FlexWriteFile'"):
    evaluate_policy(policy_dir, episodes=1, export_format="tflite")
  assert not os.path.exists(marker)


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_metadata_paths_must_stay_inside_the_export(genuine, tmp_path, where):
  import json  # pylint: disable=g-import-not-at-top
  policy_dir = _copy(genuine, tmp_path)
  outside = str(tmp_path / "elsewhere")
  shutil.copytree(os.path.join(policy_dir, "serving"), outside)
  meta_path = os.path.join(policy_dir, "sn_tf_policy.json")
  with open(meta_path) as f:
    metadata = json.load(f)
  if where == "absolute":
    metadata["saved_model"] = outside
  elif where == "dotdot":
    metadata["saved_model"] = "../elsewhere"
  else:
    os.symlink(outside, os.path.join(policy_dir, "link"))
    metadata["saved_model"] = "link"
  with open(meta_path, "w") as f:
    json.dump(metadata, f)
  with pytest.raises(export_check.UntrustedExportError,
                     match=r"saved_model=.* outside the export directory"):
    load_policy(policy_dir, "saved_model")


def _first_time_step():
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  env = make_env("minatar:breakout", seed=0, training=False)
  return env.reset()


def test_evaluate_launcher_refuses_a_crafted_export(genuine, tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  policy_dir = _copy(genuine, tmp_path)
  marker = str(tmp_path / "marker_launcher")
  serving = os.path.join(policy_dir, "serving")
  shutil.rmtree(serving)
  _marker_writing_serving(serving, marker, (10, 10, 4))
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run(
      [sys.executable, os.path.join(repo, "launchers", "evaluate.py"),
       f"--policy_dir={policy_dir}", "--episodes=1", "--export_format=saved_model"],
      capture_output=True, text=True, timeout=600)
  assert result.returncode != 0
  assert "holds op 'WriteFile'" in result.stderr, result.stderr
  assert "--trust_policy" in result.stderr
  assert not os.path.exists(marker)
