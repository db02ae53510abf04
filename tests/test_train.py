"""End-to-end training: short runs, resume equality, outputs, export."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from sn_tf import logs
from sn_tf.config import make_config
from sn_tf.train import linear_epsilon, train


def tiny_config(root, **overrides):
  values = dict(spectral="-2", num_steps=600, eval_every=200, eval_episodes=2,
                learning_starts=100, replay_capacity=1000, batch_size=8,
                target_update_period=50, epsilon_decay_steps=300, log_every=100,
                eval_max_episode_steps=200)
  values.update(overrides)
  return make_config("minatar:breakout", str(root), "minatar", **values)


def rows(root):
  return logs.read_csv(os.path.join(root, logs.CSV_FILE))


def test_epsilon_schedule():
  c = tiny_config("/tmp/unused", learning_starts=100, epsilon_decay_steps=300,
                  epsilon_end=0.1)
  assert linear_epsilon(0, c) == 1.0
  assert linear_epsilon(100, c) == 1.0
  assert linear_epsilon(250, c) == pytest.approx(0.55)
  assert linear_epsilon(400, c) == pytest.approx(0.1)
  assert linear_epsilon(10_000, c) == pytest.approx(0.1)


# DQN as the paper's MinAtar studies run it: an update every 4 steps, an
# evaluation by steps.
DQN = dict(agent="dqn", update_period=4, target_update_period=48,
           eval_episodes=0, eval_steps=300)


@pytest.mark.parametrize("agent", ["c51", "dqn"])
def test_resume_equals_uninterrupted_run(tmp_path, agent):
  extra = DQN if agent == "dqn" else {}
  full = train(tiny_config(tmp_path / "full", **extra))
  train(tiny_config(tmp_path / "split", num_steps=400, **extra))
  split = train(tiny_config(tmp_path / "split", **extra))  # resumes at step 400
  a, b = rows(tmp_path / "full"), rows(tmp_path / "split")
  assert [r["step"] for r in a] == [r["step"] for r in b] == ["200", "400", "600"]
  # An evaluation by steps also records the reference code's statistic.
  assert ("eval/reward_per_finished_episode" in a[0]) == (agent == "dqn")
  for ra, rb in zip(a, b):
    for key in ra:
      if key in ("wall_time", "steps_per_second"):
        continue
      np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=1e-5,
                                 err_msg=key)
  assert float(full["loss"]) == pytest.approx(float(split["loss"]), rel=1e-5)


def test_outputs_and_config_guard(tmp_path):
  root = tmp_path / "run"
  result = train(tiny_config(root, num_steps=400))
  names = set(os.listdir(root))
  assert {"config.json", "metrics.csv", "train", "eval", "checkpoints",
          "policies"} <= names
  assert set(os.listdir(root / "policies")) == {"step_200", "step_400", "final"}
  header = list(rows(root)[0])
  for name in ("step", "eval/return", "train/return", "loss",
               "steps_per_second", "sigma/conv0", "sigma/dense1", "sigma/dense2"):
    assert name in header
  assert float(result["sigma/dense1"]) > 0
  assert json.load(open(root / "config.json"))["spectral"] == "-2"
  with pytest.raises(ValueError, match=r"different config \(spectral: '-2' -> 'none'\)"):
    train(tiny_config(root, num_steps=400, spectral="none"))
  # A finished run rerun with the same command does no more work.
  again = train(tiny_config(root, num_steps=400))
  assert again["step"] == "400" and len(rows(root)) == 2


def test_loss_decreases_on_a_fixed_batch(tmp_path):
  from tf_agents.specs import tensor_spec
  from sn_tf.agents import build_learner, c51
  from sn_tf.envs import make_env
  config = tiny_config(tmp_path, lr=1e-3, target_update_period=10_000)
  env = make_env(config.env, seed=0, training=True)
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  step = learner.compiled_update()
  rng = np.random.default_rng(0)
  obs = (rng.random((16, 10, 10, 4)) > 0.7).astype(np.uint8)
  batch = dict(obs=obs, next_obs=np.roll(obs, 1, axis=0),
               action=rng.integers(0, 6, 16).astype(np.int32),
               reward=rng.choice([0.0, 1.0], 16).astype(np.float32),
               discount=rng.choice([0.0, 1.0], 16).astype(np.float32))
  losses = [float(step(batch)) for _ in range(150)]
  # With a fixed target network and batch, the loss is H(m) + KL(m || p): it
  # can only fall to the entropy H(m) of the projected target m.
  from sn_tf.agents.losses import categorical_projection
  support = c51.support(51, -10.0, 10.0)
  probs = tf.nn.softmax(learner.target_network(batch["next_obs"])[0])
  best = tf.argmax(tf.reduce_sum(probs * support, -1), -1, output_type=tf.int32)
  m = categorical_projection(
      batch["reward"][:, None] + 0.99 * batch["discount"][:, None] * support,
      tf.gather(probs, best, batch_dims=1), support).numpy()
  entropy = float(np.mean(-np.sum(m * np.log(np.maximum(m, 1e-30)), -1)))
  assert losses[-1] - entropy < 0.05 * (losses[0] - entropy)


def test_exported_policy_matches_in_memory_policy(tmp_path):
  root = tmp_path / "run"
  result = train(tiny_config(root, num_steps=200))
  # In-memory greedy actions of the final network, from a fresh build + restore.
  from tf_agents.specs import tensor_spec
  from sn_tf.agents import build_learner
  from sn_tf.checkpointing import RunCheckpointer
  from sn_tf.envs import make_env
  from sn_tf.replay import UniformReplay
  config = tiny_config(root, num_steps=200)
  env = make_env(config.env, seed=0, training=True)
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  net = learner.online_network
  RunCheckpointer(str(root / "checkpoints"),
                  learner.checkpoint_objects()).restore_latest(UniformReplay.load)
  greedy = learner.compiled_greedy_actions()
  rng = np.random.default_rng(5)
  obs = (rng.random((64, 10, 10, 4)) > 0.6).astype(np.uint8)
  want = greedy(obs).numpy()
  u_before = [l.u.numpy() for l in net.sn_layers]
  np.save(tmp_path / "obs.npy", obs)
  script = textwrap.dedent(f"""
      import numpy as np, tensorflow as tf
      from tf_agents.trajectories import time_step as ts
      policy = tf.saved_model.load({result['policy_dir']!r})
      obs = np.load({str(tmp_path / 'obs.npy')!r})
      n = len(obs)
      step = ts.TimeStep(tf.ones([n], tf.int32), tf.zeros([n]), tf.ones([n]),
                         tf.constant(obs))
      actions = policy.action(step, ()).action.numpy()
      u = [v.numpy() for v in policy.model_variables if v.name.endswith("/u:0")]
      np.save({str(tmp_path / 'actions.npy')!r}, actions)
      np.savez({str(tmp_path / 'u.npz')!r}, *u)
      """)
  subprocess.run([sys.executable, "-c", script], check=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  np.testing.assert_array_equal(np.load(tmp_path / "actions.npy"), want)
  u_after = list(np.load(tmp_path / "u.npz").values())
  assert len(u_after) == 3
  for a in u_after:
    assert any(np.array_equal(a, b) for b in u_before)


@pytest.mark.parametrize("num_envs", [1, 8])
def test_atari_smoke_run(tmp_path, num_envs):
  config = make_config(
      "atari:Pong", str(tmp_path / "pong"), "atari", spectral="-2",
      num_steps=120, eval_every=120, eval_episodes=1, learning_starts=40,
      update_period=4, target_update_period=40, replay_capacity=200 * num_envs,
      batch_size=8, log_every=40, eval_max_episode_steps=30, num_envs=num_envs)
  result = train(config)
  assert result["step"] == 120
  # One update per 4 env steps after step 40, whatever num_envs is.
  assert _restored_learner(config).train_step_counter.numpy() == 20
  assert np.isfinite(float(result["loss"]))
  assert float(result["sigma/dense3"]) > 0  # the 3136 -> 512 layer
  # Atari measures: power-iteration Jacobian norm on raw 0-255 pixels.
  assert float(result["smooth/jacobian_norm_max"]) > 0
  assert 1 <= float(result["srank"]) <= 512
  assert os.path.isdir(result["policy_dir"])


@pytest.mark.parametrize("agent", ["c51", "dqn"])
def test_sigkill_then_rerun_matches_uninterrupted_run(tmp_path, agent):
  """A run SIGKILLed at a random env step after its first checkpoint resumes.

  The moment is drawn from a seeded generator and delivered by the fault hook
  (``SN_TF_FAULTS=step:<n>``), so the kill lands at that step however fast
  the machine is.
  """
  from sn_tf import faults  # pylint: disable=g-import-not-at-top
  extra = DQN if agent == "dqn" else {}
  reference = tmp_path / "reference"
  train(tiny_config(reference, **extra))
  root = tmp_path / "killed"
  args = [sys.executable, os.path.join(os.path.dirname(__file__), "..",
                                        "launchers", "train.py"),
          "--env=minatar:breakout", f"--root_dir={root}", "--spectral=-2",
          "--num_steps=600", "--eval_every=200", "--eval_episodes=2",
          "--learning_starts=100", "--replay_capacity=1000", "--batch_size=8",
          "--target_update_period=50", "--epsilon_decay_steps=300",
          "--log_every=100", "--eval_max_episode_steps=200",
          "--checkpoint_every=50"]
  args += [f"--{k}={v}" for k, v in extra.items()]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop(faults.ENV, None)
  kill_step = int(np.random.default_rng(13).integers(51, 600))
  killed = subprocess.run(args, env=dict(env, **{faults.ENV: f"step:{kill_step}"}),
                          capture_output=True, text=True, timeout=900)
  assert killed.returncode == -9, killed.stderr[-2000:]
  ckpts = sorted(p.name for p in (root / "checkpoints").iterdir()
                 if p.name.startswith("ckpt-"))
  resume_step = (kill_step - 1) // 50 * 50
  assert ckpts and int(ckpts[-1][len("ckpt-"):]) == resume_step
  kept = [r for r in rows(root) if int(r["step"]) <= resume_step]
  assert kept  # the resume must keep these rows as written (wall times too)
  finished = subprocess.run(args, env=env, capture_output=True, text=True,
                            timeout=900)
  assert finished.returncode == 0, finished.stderr[-2000:]
  a, b = rows(reference), rows(root)
  assert [r["step"] for r in b] == ["200", "400", "600"]
  assert b[:len(kept)] == kept
  for ra, rb in zip(a, b):
    for key in ra:
      if key not in ("wall_time", "steps_per_second"):
        np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=1e-5,
                                   err_msg=key)


def test_evaluate_atari_policy_reports_human_normalized_score(tmp_path):
  from sn_tf.analysis.atari_scores import human_normalized_score
  from sn_tf.evaluation import evaluate_policy
  config = make_config(
      "atari:Pong", str(tmp_path / "pong"), "atari", num_steps=20, eval_every=20,
      eval_episodes=1, learning_starts=10, update_period=4,
      replay_capacity=100, batch_size=4, log_every=10, eval_max_episode_steps=5)
  result = train(config)
  out = evaluate_policy(result["policy_dir"], episodes=1, max_episode_steps=50)
  assert out["env"] == "atari:Pong" and out["train_step"] == 3
  assert out["human_normalized_score"] == pytest.approx(
      human_normalized_score("Pong", out["mean_return"]))


def test_second_process_on_same_root_dir_is_refused(tmp_path):
  from sn_tf.train import run_lock
  root = tmp_path / "run"
  root.mkdir()
  with run_lock(str(root)):
    with pytest.raises(RuntimeError, match=r"is in use by another training process \(pid \d+\)"):
      train(tiny_config(root, num_steps=10))
  assert not (root / "metrics.csv").exists()
  result = train(tiny_config(root, num_steps=10, eval_every=10))  # free again
  assert result["step"] == 10


def _restored_learner(config):
  """A fresh learner restored from the newest checkpoint of ``config``'s run."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from sn_tf.agents import build_learner  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  env = make_env(config.env, seed=0, training=True)
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  ckpt = sorted(os.listdir(os.path.join(config.root_dir, "checkpoints")))[-1]
  tf.train.Checkpoint(**learner.checkpoint_objects()).read(os.path.join(
      config.root_dir, "checkpoints", ckpt, "tf")).expect_partial()
  return learner


def _straightforward_run(config):
  """The training loop written plainly: a tf.function call to act, then
  ``agent.train`` on a TF-Agents Trajectory (``compiled_update(reference=True)``).

  Returns the losses and the final online-network variables.
  """
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from sn_tf.agents import build_learner  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  from sn_tf.replay import UniformReplay  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(config.seed)
  env = make_env(config.env, seed=config.seed, training=True)
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  network = learner.online_network
  greedy = learner.compiled_greedy_actions()
  train_step = learner.compiled_update(reference=True)
  replay = UniformReplay(config.replay_capacity, env.observation_spec().shape,
                         env.observation_spec().dtype, seed=config.seed + 1)
  rng = np.random.default_rng([config.seed, 1])
  num_actions = int(env.action_spec().maximum) + 1
  time_step, losses = env.reset(), []
  for step in range(1, config.num_steps + 1):
    if rng.random() < linear_epsilon(step - 1, config):
      action = int(rng.integers(num_actions))
    else:
      action = int(greedy(time_step.observation[None]).numpy()[0])
    next_step = env.step(np.int32(action))
    end = bool(next_step.is_last())
    replay.add(time_step.observation, action, float(next_step.reward),
               next_step.observation,
               terminal=end and float(next_step.discount) == 0.0, episode_end=end)
    time_step = env.reset() if end else next_step
    if step > config.learning_starts and step % config.update_period == 0:
      losses.append(float(train_step(replay.sample(config.batch_size))))
  return losses, [v.numpy() for v in network.trainable_variables]


@pytest.mark.parametrize("scheduler,agent", [("none", "c51"), ("muleps", "c51"),
                                             ("none", "dqn"), ("divgrad", "dqn")])
def test_fast_loop_equals_straightforward_loop(tmp_path, scheduler, agent):
  """train() (one FlatCall for train + next action, lean update) makes the
  same updates as the plain loop: equal mean losses per eval window and equal
  final weights."""
  spectral = "-2L" if scheduler != "none" else "-2"
  config = tiny_config(tmp_path / "run", num_steps=300, eval_every=100,
                       epsilon_decay_steps=100, target_update_period=20,
                       spectral=spectral, scheduler=scheduler,
                       scheduler_layers="-2", agent=agent)
  train(config)
  losses, weights = _straightforward_run(config)
  assert len(losses) == 200
  windows = [np.mean(losses[:100]), np.mean(losses[100:])]
  got = [float(r["loss"]) for r in rows(config.root_dir)[1:]]
  np.testing.assert_allclose(got, windows, rtol=1e-5)
  # The run's final weights, from its last checkpoint.
  learner = _restored_learner(config)
  network = learner.online_network
  # C51's reference (TF-Agents' train) projects its target in the dense
  # [B, N, N] form, the lean update by a segment sum: after 200 Adam updates
  # their float32 roundings part by up to ~1.3e-6 on near-zero weights.
  # 1e-5 is a 25th of one Adam step at this lr (2.5e-4).
  for a, b in zip([v.numpy() for v in network.trainable_variables], weights):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_num_envs_updates_and_resume(tmp_path):
  """Three MinAtar envs: one update per env step after learning_starts (three
  per iteration), and a run split at an evaluation resumes exactly."""
  kw = dict(num_envs=3, num_steps=600, eval_every=300, log_every=150,
            replay_capacity=1200, learning_starts=99, target_update_period=30)
  full = tiny_config(tmp_path / "full", **kw)
  train(full)
  assert _restored_learner(full).train_step_counter.numpy() == 600 - 99
  train(tiny_config(tmp_path / "split", **dict(kw, num_steps=300)))
  train(tiny_config(tmp_path / "split", **kw))
  a, b = rows(tmp_path / "full"), rows(tmp_path / "split")
  assert [r["step"] for r in a] == [r["step"] for r in b] == ["300", "600"]
  for ra, rb in zip(a, b):
    for key in ra:
      if key not in ("wall_time", "steps_per_second"):
        np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=1e-5,
                                   err_msg=key)


def test_measures_are_logged_and_do_not_change_training(tmp_path):
  from sn_tf import measures  # pylint: disable=g-import-not-at-top
  on = train(tiny_config(tmp_path / "on", num_steps=400, measure_states=64))
  off = train(tiny_config(tmp_path / "off", num_steps=400, measure_states=0))
  header = list(rows(tmp_path / "on")[0])
  for name in measures.NetworkMeasures.NAMES:
    assert name in header and name not in off
    assert all(np.isfinite(float(r[name])) for r in rows(tmp_path / "on"))
  assert 1 <= float(on["srank"]) <= 128
  assert float(on["smooth/jacobian_norm_max"]) >= float(on["smooth/grad_norm_max"]) * (1 - 1e-5)
  # Same losses and returns: drawing the states does not touch training RNGs.
  for key in ("loss", "eval/return", "train/return", "sigma/dense1"):
    assert on[key] == off[key], key
  states = np.load(tmp_path / "on" / "measure_states.npy")
  assert states.shape == (64, 10, 10, 4) and states.dtype == np.uint8
  # The logged value is the measure of the final network on those states.
  q_fn = _restored_learner(tiny_config(tmp_path / "on", num_steps=400,
                                       measure_states=64)).q_values
  grad = measures.greedy_gradient_norms(q_fn, states).numpy()
  np.testing.assert_allclose(float(on["smooth/grad_norm_mean"]), grad.mean(),
                             rtol=1e-5)
  jac = measures.jacobian_spectral_norms(q_fn, states).numpy()
  np.testing.assert_allclose(float(on["smooth/jacobian_norm_max"]), jac.max(),
                             rtol=1e-5)


def test_tf_threads_also_sets_numpys_blas_threads(tmp_path):
  """A run with tf_threads=n keeps NumPy's BLAS pool (the Atari resize's
  matmuls) at n threads, as TensorFlow's; 0 leaves the libraries' defaults.
  In fresh processes: both settings are process-wide."""
  script = textwrap.dedent(f"""
      import json, sys, threadpoolctl
      sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
      from tests.test_train import tiny_config
      from sn_tf.train import train
      def blas():
        return sorted({{p["num_threads"] for p in threadpoolctl.threadpool_info()
                       if p["user_api"] == "blas"}})
      before = blas()
      train(tiny_config({str(tmp_path)!r} + "/" + sys.argv[1],
                        num_steps=150, eval_every=150, eval_episodes=1,
                        tf_threads=int(sys.argv[1])))
      print(json.dumps([before, blas()]))
      """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("OPENBLAS_NUM_THREADS", None)
  pools = {}
  for n in (1, 0):
    done = subprocess.run([sys.executable, "-c", script, str(n)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    pools[n] = json.loads(done.stdout.strip().splitlines()[-1])
  before, after = pools[0]
  assert after == before  # tf_threads=0: untouched
  if before == [1]:
    pytest.skip("NumPy's BLAS pool has one thread here: nothing to limit")
  assert pools[1] == [before, [1]]
