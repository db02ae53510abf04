"""The three forms of an export act identically, each loaded in a fresh process.

The plain SavedModel and the TFLite model are loaded in a process that
imports nothing but TensorFlow, with Keras 3 active (no tf-keras, TFP or
TF-Agents); the TF-Agents SavedModel in a process with TF-Agents. All three
must give the in-memory policy's greedy actions on the same observations.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf.agents import build_learner
from sn_tf.config import make_config
from sn_tf.envs import make_env
from sn_tf.export import PolicyExporter, ServingPolicy, read_metadata

PLAIN_TF = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    export, obs_file = sys.argv[1], sys.argv[2]
    observations = np.load(obs_file)
    model = tf.saved_model.load(export + "/serving")
    out = model.signatures["serving_default"](observation=tf.constant(observations))
    interpreter = tf.lite.Interpreter(model_path=export + "/policy.tflite")
    lite = interpreter.get_signature_runner("serving_default")(observation=observations)
    loaded = sorted(m for m in sys.modules
                    if m.split(".")[0] in ("tf_keras", "tensorflow_probability",
                                           "tf_agents", "sn_tf"))
    print(json.dumps({
        "actions": out["action"].numpy().tolist(),
        "q_values": out["q_values"].numpy().tolist(),
        "tflite_actions": lite["action"].tolist(),
        "tflite_q_values": lite["q_values"].tolist(),
        "loaded": loaded, "keras": tf.keras.__name__}))
""")

TF_AGENTS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tf_agents  # its SavedModel carries TFP types: TF-Agents, TFP first
    import tensorflow as tf
    from tf_agents.trajectories import time_step as ts
    export, obs_file = sys.argv[1], sys.argv[2]
    observations = np.load(obs_file)
    policy = tf.saved_model.load(export)
    batch = len(observations)
    step = ts.TimeStep(step_type=tf.zeros([batch], tf.int32),
                       reward=tf.zeros([batch]), discount=tf.ones([batch]),
                       observation=tf.constant(observations))
    print(json.dumps({"actions": policy.action(step, ()).action.numpy().tolist()}))
""")


def _run(script, *args, legacy_keras):
  env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  if legacy_keras:
    env["TF_USE_LEGACY_KERAS"] = "1"
  result = subprocess.run([sys.executable, "-c", script, *args],
                          capture_output=True, text=True, env=env, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("env_id,preset,agent", [
    ("minatar:breakout", "minatar", "c51"), ("atari:Pong", "atari", "c51"),
    ("minatar:breakout", "minatar_dqn", "dqn")])
def test_every_export_form_acts_like_the_policy_in_memory(tmp_path, env_id,
                                                          preset, agent):
  config = make_config(env_id, str(tmp_path / "run"), preset, spectral="-2",
                       agent=agent)
  env = make_env(env_id, seed=0, training=False)
  spec = env.observation_spec()
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  network = learner.online_network
  # Weights far from their initial values, and u, v converged for them, so
  # the greedy actions differ between observations.
  rng = np.random.default_rng(0)
  for variable in network.trainable_variables:
    variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))
  for _ in range(30):
    network(tf.zeros([1] + list(spec.shape), spec.dtype), training=True)
  observations = rng.integers(int(spec.minimum), int(spec.maximum) + 1,
                              size=[32] + list(spec.shape)).astype(spec.dtype)
  q_in_memory = learner.q_values(tf.constant(observations)).numpy()
  actions = q_in_memory.argmax(axis=-1).tolist()
  assert len(set(actions)) > 1  # a policy that does not ignore its input

  serving = ServingPolicy(learner.q_values, network.variables, spec)
  export = PolicyExporter(learner.policy, serving, learner.train_step_counter,
                          {"env": env_id}).export(str(tmp_path / "export"))
  metadata = read_metadata(export)
  assert (metadata["saved_model"], metadata["tflite"]) == ("serving", "policy.tflite")
  obs_file = str(tmp_path / "observations.npy")
  np.save(obs_file, observations)

  plain = _run(PLAIN_TF, export, obs_file, legacy_keras=False)
  assert plain["loaded"] == [], plain["loaded"]  # nothing but TensorFlow
  assert plain["keras"].startswith("keras")  # Keras 3 was the active tf.keras
  assert plain["actions"] == actions
  assert plain["tflite_actions"] == actions
  # The SavedModel's graph (fused kernels) against eager ops: float32
  # rounding, ~1e-4 on Atari's 3136 x 512 layer with Q-values up to 10.
  np.testing.assert_allclose(plain["q_values"], q_in_memory, rtol=1e-4, atol=1e-4)
  # TFLite's own (XNNPACK) kernels: Q-values agree to 1e-3 on a [-10, 10] support.
  np.testing.assert_allclose(plain["tflite_q_values"], q_in_memory, rtol=0, atol=1e-3)
  assert _run(TF_AGENTS, export, obs_file, legacy_keras=True)["actions"] == actions
