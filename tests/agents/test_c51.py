"""C51 projection/loss against float64 references; lean step == agent.train."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf.agents import build_learner
from sn_tf.agents.losses import c51_loss, c51_targets, categorical_projection
from sn_tf.config import make_config
from sn_tf.envs import make_env


def projection_reference(target_support, probs, support):
  """Algorithm 1 of Bellemare et al. (2017), one atom at a time, float64."""
  v_min, v_max, n = support[0], support[-1], len(support)
  dz = (v_max - v_min) / (n - 1)
  out = np.zeros((len(probs), n))
  for b in range(len(probs)):
    for j in range(n):
      t = min(max(target_support[b, j], v_min), v_max)
      pos = (t - v_min) / dz
      lo, hi = int(np.floor(pos)), int(np.ceil(pos))
      if lo == hi:
        out[b, lo] += probs[b, j]
      else:
        out[b, lo] += probs[b, j] * (hi - pos)
        out[b, hi] += probs[b, j] * (pos - lo)
  return out


def test_projection_matches_reference():
  rng = np.random.default_rng(0)
  support = np.linspace(-10.0, 10.0, 51)
  rewards = rng.choice([-1.0, 0.0, 1.0, 25.0, -30.0], size=(16, 1))
  discounts = rng.choice([0.0, 1.0], size=(16, 1))
  target_support = rewards + 0.99 * discounts * support[None]
  probs = rng.dirichlet(np.ones(51), size=16)
  got = categorical_projection(tf.constant(target_support), tf.constant(probs),
                               tf.constant(support)).numpy()
  want = projection_reference(target_support, probs, support)
  np.testing.assert_allclose(got, want, atol=1e-12)
  np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-12)


def test_projection_float32_close_to_float64_reference():
  """The training dtype: atoms on grid points, between them, on and beyond
  both ends; every row's mass is kept."""
  rng = np.random.default_rng(4)
  support = np.linspace(-10.0, 10.0, 51)
  rewards = rng.choice([-1.0, 0.0, 0.37, 1.0, 10.0, 25.0, -30.0], size=(256, 1))
  discounts = rng.choice([0.0, 1.0], size=(256, 1))
  target_support = rewards + 0.99 * discounts * support[None]
  probs = rng.dirichlet(np.ones(51), size=256)
  got = categorical_projection(tf.constant(target_support, tf.float32),
                               tf.constant(probs, tf.float32),
                               tf.linspace(-10.0, 10.0, 51)).numpy()
  want = projection_reference(target_support, probs, support)
  np.testing.assert_allclose(got, want, atol=1e-6)
  np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_loss_matches_reference():
  rng = np.random.default_rng(1)
  b, a, n = 8, 3, 11
  support = np.linspace(-2.0, 2.0, n)
  online = rng.normal(size=(b, a, n))
  target = rng.normal(size=(b, a, n))
  actions = rng.integers(0, a, b)
  rewards = rng.normal(size=b)
  discounts = rng.choice([0.0, 1.0], size=b)
  targets = c51_targets(tf.constant(target), tf.constant(rewards),
                        tf.constant(discounts), tf.constant(support), 0.9)
  got = float(c51_loss(tf.constant(online), tf.constant(actions), targets))
  p_t = np.exp(target) / np.exp(target).sum(-1, keepdims=True)
  best = (p_t * support).sum(-1).argmax(-1)
  m = projection_reference(rewards[:, None] + 0.9 * discounts[:, None] * support,
                           p_t[np.arange(b), best], support)
  chosen = online[np.arange(b), actions]
  log_p = chosen - np.log(np.exp(chosen).sum(-1, keepdims=True))
  np.testing.assert_allclose(got, -(m * log_p).sum(-1).mean(), rtol=1e-10)


@pytest.mark.parametrize("spectral", ["none", "-2"])
def test_lean_train_step_equals_agent_train(spectral):
  config = make_config("minatar:breakout", "/tmp/unused", "minatar",
                       spectral=spectral, target_update_period=5, lr=1e-3,
                       clip_rewards=True)
  env = make_env(config.env, seed=0, training=True)
  losses, weights = {}, {}
  for lean in (False, True):
    tf.keras.utils.set_random_seed(0)
    learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                            tensor_spec.from_spec(env.action_spec()))
    step = learner.compiled_update(reference=not lean)
    rng = np.random.default_rng(0)
    losses[lean] = []
    for _ in range(12):
      shape = (16, 10, 10, 4)
      batch = dict(obs=(rng.random(shape) > 0.7).astype(np.uint8),
                   next_obs=(rng.random(shape) > 0.7).astype(np.uint8),
                   action=rng.integers(0, 6, 16).astype(np.int32),
                   reward=rng.choice([0.0, 1.0, 3.0], 16).astype(np.float32),
                   discount=rng.choice([0.0, 1.0], 16).astype(np.float32))
      losses[lean].append(float(step(batch)))
    weights[lean] = [v.numpy() for v in learner.target_network.variables]
    assert int(learner.train_step_counter.numpy()) == 12
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-6)
  for a, b in zip(weights[True], weights[False]):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
