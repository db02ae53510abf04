"""sn_tf's DQN is a TF-Agents agent: a stock TF-Agents driver and replay
buffer train it, and its ``train`` (the one update path) equals the parent
``DqnAgent``'s own update on the same experience, episode boundaries
included."""

import numpy as np
import tensorflow as tf
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import tf_py_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer

from sn_tf.agents.dqn import SNDqnAgent
from sn_tf.envs import make_env
from sn_tf.networks import minatar_network
from sn_tf.optimizers import ReferenceAdam


def _agent(env):
  tf.keras.utils.set_random_seed(0)
  net = minatar_network(env.observation_spec(), env.action_spec(),
                        model="16/128", num_atoms=None, spectral="-2")
  agent = SNDqnAgent(env.time_step_spec(), env.action_spec(), q_network=net,
                     optimizer=ReferenceAdam(learning_rate=1e-3),
                     td_loss="mse", clip_rewards=True, epsilon_greedy=0.2,
                     target_update_period=25,
                     train_step_counter=tf.Variable(0, dtype=tf.int64))
  agent.initialize()
  return agent, net


def test_a_tf_agents_driver_and_replay_buffer_train_sn_dqn():
  env = tf_py_environment.TFPyEnvironment(
      make_env("minatar:breakout", seed=0, training=True))
  agent, net = _agent(env)
  buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
      agent.collect_data_spec, batch_size=env.batch_size, max_length=2000)
  driver = dynamic_step_driver.DynamicStepDriver(
      env, agent.collect_policy, observers=[buffer.add_batch], num_steps=4)
  samples = iter(buffer.as_dataset(sample_batch_size=32, num_steps=2))
  train = tf.function(agent.train)
  layer = net.sn_layers[1]  # -2, normalised
  sigma0 = float(layer.sigma.numpy())
  driver.run()
  batches, losses = [], []
  for _ in range(75):  # 300 env steps, an update every 4
    driver.run()
    experience, _ = next(samples)
    batches.append(experience)
    losses.append(float(train(experience).loss))
  assert int(agent.train_step_counter.numpy()) == 75
  assert all(np.isfinite(losses)) and len(set(losses)) > 1
  # The online network in training mode advanced the normalised layer's
  # power iteration.
  assert float(layer.sigma.numpy()) != sigma0
  assert agent.policy.action(env.reset()).action.shape == (1,)
  # The parent's own update on the same batches (which span episode
  # boundaries, masked out by both) gives the same losses.
  stock, _ = _agent(env)
  stock_train = tf.function(stock.stock_train)
  stock_losses = [float(stock_train(b).loss) for b in batches]
  assert any(bool(tf.reduce_any(b.is_last()[:, 0])) for b in batches)
  np.testing.assert_allclose(losses, stock_losses, rtol=1e-5)
