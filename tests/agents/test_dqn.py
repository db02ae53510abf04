"""DQN: TD loss against float64 references; lean update == DqnAgent.train;
per-layer DivGrad by hand; DivGrad == MulEps for constant rho."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf.agents import build_learner
from sn_tf.agents.losses import dqn_loss, dqn_targets
from sn_tf.config import make_config
from sn_tf.envs import make_env


@pytest.mark.parametrize("td_loss", ["mse", "huber"])
def test_td_loss_matches_float64_reference(td_loss):
  rng = np.random.default_rng(3)
  b, a = 64, 5
  online = rng.normal(scale=2.0, size=(b, a))
  target_q = rng.normal(scale=2.0, size=(b, a))
  actions = rng.integers(0, a, b)
  rewards = rng.normal(size=b)
  discounts = rng.choice([0.0, 1.0], size=b)
  targets = dqn_targets(tf.constant(target_q), tf.constant(rewards),
                        tf.constant(discounts), 0.9)
  got = float(dqn_loss(tf.constant(online), tf.constant(actions), targets, td_loss))
  y = rewards + 0.9 * discounts * target_q.max(-1)
  delta = y - online[np.arange(b), actions]
  if td_loss == "mse":
    want = np.mean(delta ** 2)
  else:
    want = np.mean(np.where(np.abs(delta) <= 1.0, 0.5 * delta ** 2,
                            np.abs(delta) - 0.5))
  assert (np.abs(delta) > 1).any() and (np.abs(delta) < 1).any()
  np.testing.assert_allclose(got, want, rtol=1e-12)
  with pytest.raises(ValueError, match="td_loss='l1' is not allowed"):
    dqn_loss(tf.constant(online), tf.constant(actions), targets, "l1")


def _batches(rng, n, size=16, channels=4):
  shape = (size, 10, 10, channels)
  for _ in range(n):
    yield dict(obs=(rng.random(shape) > 0.7).astype(np.uint8),
               next_obs=(rng.random(shape) > 0.7).astype(np.uint8),
               action=rng.integers(0, 6, size).astype(np.int32),
               reward=rng.choice([0.0, 1.0, 3.0], size).astype(np.float32),
               discount=rng.choice([0.0, 1.0], size).astype(np.float32))


def _learner(**overrides):
  config = make_config("minatar:breakout", "/tmp/unused", "minatar_dqn",
                       **overrides)
  env = make_env(config.env, seed=0, training=True)
  return build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                       tensor_spec.from_spec(env.action_spec()))


@pytest.mark.parametrize("spectral,td_loss,model", [
    ("none", "mse", "16/128"), ("-2", "mse", "16-16/128"), ("-2,-3", "huber", "16/128")])
def test_lean_update_equals_dqn_agent_train(spectral, td_loss, model):
  """Loss for loss over 12 updates, target copies every 5 (every 20 env
  steps at update_period 4), rewards clipped, and the same target weights."""
  losses, weights = {}, {}
  for reference in (True, False):
    tf.keras.utils.set_random_seed(0)
    learner = _learner(spectral=spectral, td_loss=td_loss, minatar_model=model,
                       target_update_period=20, lr=1e-3, clip_rewards=True)
    update = learner.compiled_update(reference=reference)
    losses[reference] = [float(update(b)) for b in
                         _batches(np.random.default_rng(0), 12)]
    weights[reference] = [v.numpy() for v in learner.target_network.variables]
    assert int(learner.train_step_counter.numpy()) == 12
  assert len(set(losses[True])) == 12  # the loss moves
  np.testing.assert_allclose(losses[False], losses[True], rtol=1e-6)
  for a, b in zip(weights[False], weights[True]):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("leave_smaller", [False, True])
def test_per_layer_divgrad_scales_each_tracked_kernel_by_hand(leave_smaller):
  """A 2-layer net (conv, output), both tracked, SGD: each kernel's step is
  the plain step divided by rho_l = sigma_l / K (max(., 1) with
  leave_smaller); biases take the plain step."""
  k = 1.7  # between the two layers' sigmas (1.87, 1.51) at this seed
  common = dict(minatar_model="4/", optimizer="sgd", lr=0.5, lipschitz_k=k,
                leave_smaller=leave_smaller, scheduler_layers="-1,-2")
  tf.keras.utils.set_random_seed(1)
  plain = _learner(**common)
  tf.keras.utils.set_random_seed(1)
  divgrad = _learner(scheduler="divgrad", scheduler_scope="per_layer", **common)
  nets = (plain.online_network, divgrad.online_network)
  assert len(nets[0].sn_layers) == 2
  for a, b in zip(nets[0].variables, nets[1].variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  before = [v.numpy() for v in nets[1].trainable_variables]
  batch = next(_batches(np.random.default_rng(2), 1))
  plain.update(batch)
  divgrad.update(batch)
  # sigma_l of the update's forward pass (the scheduler's layers iterate in
  # every update; the plain net's are log-only and iterate when read).
  sigmas = [float(l.sigma.numpy()) for l in nets[1].sn_layers]
  rhos = [s / k for s in sigmas]
  if leave_smaller:
    rhos = [max(r, 1.0) for r in rhos]
  scaled = 0
  for layer, rho in zip(nets[1].sn_layers, rhos):
    i_kernel = [v.ref() for v in nets[1].trainable_variables].index(layer.kernel.ref())
    i_bias = [v.ref() for v in nets[1].trainable_variables].index(layer.bias.ref())
    plain_step = [nets[0].trainable_variables[i].numpy() - before[i]
                  for i in (i_kernel, i_bias)]
    np.testing.assert_allclose(layer.kernel.numpy(),
                               before[i_kernel] + plain_step[0] / rho,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(layer.bias.numpy(), before[i_bias] + plain_step[1],
                               rtol=1e-5, atol=1e-7)
    scaled += abs(rho - 1.0) > 1e-3
  assert scaled >= 1  # the test is not of rho = 1 only
  if leave_smaller:
    assert min(s / k for s in sigmas) < 1.0  # and the clamp is exercised


def test_divgrad_equals_muleps_for_constant_rho_on_dqn():
  """With rho held at a constant, DivGrad-Adam and MulEps-Adam take the same
  steps (docs/schedulers.md): losses and weights over 10 updates."""
  results = {}
  for scheduler in ("divgrad", "muleps"):
    tf.keras.utils.set_random_seed(0)
    learner = _learner(scheduler=scheduler, scheduler_layers="-2")
    rho = tf.Variable(3.7, trainable=False)
    if scheduler == "divgrad":
      learner.optimizer.spectral_rho = rho
    else:
      learner.optimizer.rho = rho
    update = learner.compiled_update()
    losses = [float(update(b)) for b in _batches(np.random.default_rng(4), 10)]
    results[scheduler] = losses, [v.numpy() for v in
                                  learner.online_network.trainable_variables]
  np.testing.assert_allclose(results["divgrad"][0], results["muleps"][0], rtol=1e-5)
  for a, b in zip(results["divgrad"][1], results["muleps"][1]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_dqn_q_values_and_greedy_actions():
  learner = _learner(spectral="-2")
  obs = (np.random.default_rng(0).random((7, 10, 10, 4)) > 0.6).astype(np.uint8)
  q = learner.q_values(tf.constant(obs)).numpy()
  outputs, _ = learner.online_network(obs, training=False)
  np.testing.assert_array_equal(q, outputs.numpy())
  assert q.shape == (7, 6)
  np.testing.assert_array_equal(learner.compiled_greedy_actions()(obs).numpy(),
                                q.argmax(-1))
  assert set(learner.sigmas()) == {"sigma/conv0", "sigma/dense1", "sigma/dense2"}
  assert learner.rho() is None
