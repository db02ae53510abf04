"""C51 wiring on TF-Agents: network, agent, and the compiled act/train steps.

The agent is TF-Agents' ``CategoricalDqnAgent`` (its projection and
cross-entropy loss, Bellemare et al. 2017); sn_tf supplies the SN network and
two compiled functions that the training loop calls with NumPy arrays:

* ``greedy_actions(obs [B, ...]) -> [B] int32``: argmax_a of
  ``sum_z p(z | obs, a) z`` with the online network in inference mode (no
  power iteration), the same rule as the agent's greedy (exported) policy.
* ``train_step(batch) -> loss``: one ``agent.train`` call on a batch of
  1-step transitions from the replay buffer.
"""

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from tf_agents.agents.categorical_dqn import categorical_dqn_agent
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from sn_tf import optimizers
from sn_tf import schedulers
from sn_tf.agents import losses
from sn_tf.config import TrainConfig
from sn_tf.envs import parse_env_id
from sn_tf.networks import (SNCategoricalQNetwork, atari_network, minatar_network,
                            parse_layer_selection)


def build_network(config: TrainConfig, observation_spec,
                  action_spec) -> SNCategoricalQNetwork:
  """The MinAtar or Atari C51 net (docs/protocol.md#c51-agent) for ``config.env``."""
  kwargs = dict(num_atoms=config.num_atoms, spectral=config.spectral,
                conv_norm=config.conv_norm, lipschitz_k=config.lipschitz_k,
                leave_smaller=config.leave_smaller,
                power_iterations=config.power_iterations,
                divout_layers=(config.scheduler_layers
                               if config.scheduler == "divout" else "none"))
  if parse_env_id(config.env)[0] == "minatar":
    return minatar_network(observation_spec, action_spec,
                           conv_filters=config.minatar_conv_filters,
                           fc_units=config.minatar_fc_units, **kwargs)
  return atari_network(observation_spec, action_spec, **kwargs)


def scheduler_rho(config: TrainConfig, network: SNCategoricalQNetwork
                  ) -> Optional[schedulers.SpectralRho]:
  """rho over ``config.scheduler_layers`` of ``network``; None without scheduler."""
  if config.scheduler == "none":
    return None
  selection = parse_layer_selection(config.scheduler_layers,
                                    len(network.sn_layers), "scheduler_layers")
  return schedulers.SpectralRho(
      [network.sn_layers[i] for i in sorted(selection.selected)],
      lipschitz_k=config.lipschitz_k, leave_smaller=config.leave_smaller)


def build_optimizer(config: TrainConfig, network: SNCategoricalQNetwork):
  """Adam (reference or Keras epsilon placement), RMSprop or SGD, with the
  DivGrad or MulEps scheduler of ``config`` reading rho from ``network``."""
  rho = scheduler_rho(config, network)
  divgrad = {}
  if config.scheduler == "divgrad":
    divgrad = dict(scope=config.scheduler_scope)
    if config.scheduler_scope == "per_layer":
      divgrad["layer_rhos"] = rho.per_layer()
    else:
      divgrad["rho"] = rho
  if config.optimizer == "adam":
    kwargs = dict(learning_rate=config.lr, epsilon=config.adam_eps,
                  epsilon_placement=config.adam_epsilon_placement)
    if config.scheduler == "divgrad":
      return optimizers.DivGradAdam(**kwargs, **divgrad)
    if config.scheduler == "muleps":
      return optimizers.MulEpsAdam(rho=rho, **kwargs)
    return optimizers.ReferenceAdam(**kwargs)
  if config.optimizer == "rmsprop":
    if config.scheduler == "divgrad":
      if "rho" in divgrad:
        divgrad["spectral_rho"] = divgrad.pop("rho")
      return optimizers.DivGradRMSprop(learning_rate=config.lr, **divgrad)
    return tf.keras.optimizers.RMSprop(learning_rate=config.lr)
  if config.scheduler == "divgrad":
    return optimizers.DivGradSGD(learning_rate=config.lr, **divgrad)
  return tf.keras.optimizers.SGD(learning_rate=config.lr)


def build_agent(config: TrainConfig, time_step_spec, action_spec
                ) -> Tuple[categorical_dqn_agent.CategoricalDqnAgent,
                           SNCategoricalQNetwork]:
  """A ``CategoricalDqnAgent`` with the preset's hyperparameters
  (docs/protocol.md#presets).

  The optimiser is ``build_optimizer(config, network)`` (Adam by default);
  DivOut is part of the network (``divout_layers``).

  ``target_update_period`` is converted from env steps to train steps
  (``config.target_update_period // config.update_period``).

  Returns:
    ``(agent, online_network)``; the target network is the agent's copy.
  """
  network = build_network(config, time_step_spec.observation, action_spec)
  network.create_variables()
  optimizer = build_optimizer(config, network)
  agent = categorical_dqn_agent.CategoricalDqnAgent(
      time_step_spec, action_spec,
      categorical_q_network=network,
      optimizer=optimizer,
      min_q_value=config.min_q_value,
      max_q_value=config.max_q_value,
      n_step_update=1,
      gamma=config.gamma,
      epsilon_greedy=config.epsilon_end,  # unused: the loop explores itself
      target_update_period=max(
          1, config.target_update_period // config.update_period),
      train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name="train_step"),
  )
  agent.initialize()
  return agent, network


def q_values_fn(network: SNCategoricalQNetwork, min_q_value: float,
                max_q_value: float) -> Callable[[tf.Tensor], tf.Tensor]:
  """Expected Q-values of ``network`` in inference mode, ``[B, *obs] -> [B, A]``.

  ``Q(s, a) = sum_z z softmax(logits(s, a))_z`` over the ``num_atoms`` atoms
  ``z`` evenly spaced on ``[min_q_value, max_q_value]``. Core TF ops only.
  """
  support = tf.linspace(float(min_q_value), float(max_q_value),
                        network.num_atoms)

  def q_values(observations):
    logits, _ = network(observations, training=False)
    return tf.reduce_sum(tf.nn.softmax(logits) * support, axis=-1)

  return q_values


def _greedy_actions_fn(network: SNCategoricalQNetwork, min_q_value: float,
                       max_q_value: float) -> Callable[[tf.Tensor], tf.Tensor]:
  """Greedy actions of ``network`` in inference mode, ``[B, *obs] -> [B]``."""
  q_values = q_values_fn(network, min_q_value, max_q_value)

  def greedy_actions(observations):
    return tf.argmax(q_values(observations), axis=-1, output_type=tf.int32)

  return greedy_actions


def make_greedy_fn(network: SNCategoricalQNetwork, observation_spec,
                   min_q_value: float, max_q_value: float
                   ) -> Callable[[np.ndarray], tf.Tensor]:
  """Compiled greedy action selection, ``[B, *obs] -> [B]`` int32."""
  return tf.function(
      _greedy_actions_fn(network, min_q_value, max_q_value),
      input_signature=[tf.TensorSpec([None] + list(observation_spec.shape),
                                     observation_spec.dtype)])


def _batch_signature(agent) -> Dict[str, tf.TensorSpec]:
  obs_spec = agent.time_step_spec.observation
  return {
      "obs": tf.TensorSpec([None] + list(obs_spec.shape), obs_spec.dtype),
      "next_obs": tf.TensorSpec([None] + list(obs_spec.shape), obs_spec.dtype),
      "action": tf.TensorSpec([None], tf.int32),
      "reward": tf.TensorSpec([None], tf.float32),
      "discount": tf.TensorSpec([None], tf.float32),
  }


def make_train_fn(agent: categorical_dqn_agent.CategoricalDqnAgent,
                  clip_rewards: bool, lean: bool = True
                  ) -> Callable[[Dict[str, np.ndarray]], tf.Tensor]:
  """Compiled train step on a replay batch; returns the loss.

  ``batch`` holds ``obs [B, ...]``, ``action [B]``, ``reward [B]``,
  ``discount [B]`` (0 at true terminals) and ``next_obs [B, ...]``. Rewards
  are clipped to [-1, 1] when ``clip_rewards``.

  ``lean=True`` (default) runs the same update as ``agent.train`` with less
  work per step: the loss of ``sn_tf.agents.losses`` (one target-network pass
  where TF-Agents runs two, no Trajectory packing), the agent's optimiser,
  train-step counter and periodic target update (u, v, sigma included).
  ``lean=False`` calls ``agent.train`` on a two-step ``Trajectory``; tests
  check that both give the same losses step by step.
  """
  if lean:
    return _make_lean_train_fn(agent, clip_rewards)

  @tf.function(input_signature=[_batch_signature(agent)], autograph=False)
  def train_step(batch):
    reward = batch["reward"]
    if clip_rewards:
      reward = tf.clip_by_value(reward, -1.0, 1.0)
    discount = batch["discount"]
    mid = tf.fill(tf.shape(discount), ts.StepType.MID)
    # The transition ends in LAST where the next state is terminal.
    next_type = tf.where(discount > 0, mid, tf.fill(tf.shape(mid), ts.StepType.LAST))
    two = lambda a, b: tf.stack([a, b], axis=1)  # [B] x 2 -> [B, 2]
    experience = trajectory.Trajectory(
        step_type=two(mid, next_type),
        observation=two(batch["obs"], batch["next_obs"]),
        action=two(batch["action"], batch["action"]),
        policy_info=(),
        next_step_type=two(next_type, mid),
        reward=two(reward, tf.zeros_like(reward)),
        discount=two(discount, tf.ones_like(discount)),
    )
    return agent.train(experience).loss

  return train_step


def _lean_update_fn(agent, clip_rewards: bool):
  """One lean update (uncompiled): batch -> loss."""
  # pylint: disable=protected-access
  online, target = agent._q_network, agent._target_q_network
  optimizer, support, gamma = agent._optimizer, agent._support, agent._gamma
  update_target = agent._update_target  # TF-Agents' Periodically (checkpointed)
  # pylint: enable=protected-access

  def update(batch):
    reward = batch["reward"]
    if clip_rewards:
      reward = tf.clip_by_value(reward, -1.0, 1.0)
    target_logits, _ = target(batch["next_obs"], training=False)
    with tf.GradientTape() as tape:
      logits, _ = online(batch["obs"], training=True)
      loss = losses.c51_loss(logits, batch["action"], target_logits, reward,
                             batch["discount"], support, gamma)
    variables = online.trainable_weights
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    agent.train_step_counter.assign_add(1)
    with tf.control_dependencies([update_target()]):
      return tf.identity(loss)

  return update


def _make_lean_train_fn(agent, clip_rewards: bool):
  return tf.function(_lean_update_fn(agent, clip_rewards),
                     input_signature=[_batch_signature(agent)], autograph=False)


def make_train_and_act_fn(agent: categorical_dqn_agent.CategoricalDqnAgent,
                          clip_rewards: bool, min_q_value: float,
                          max_q_value: float
                          ) -> Callable[[Dict[str, np.ndarray], np.ndarray],
                                        Tuple[tf.Tensor, tf.Tensor]]:
  """The lean train step and the next greedy action in one compiled call.

  ``(batch, observations [B', *obs]) -> (loss, actions [B'])``: the update of
  ``make_train_fn(agent, clip_rewards)`` followed by the greedy actions of
  ``make_greedy_fn`` for ``observations`` with the updated online network.
  The loop's "train at the end of step t, act at the start of step t + 1"
  then costs one call instead of two (a call costs 0.25-0.4 ms here), with
  the same actions and updates.
  """
  update = _lean_update_fn(agent, clip_rewards)
  greedy = _greedy_actions_fn(agent._q_network,  # pylint: disable=protected-access
                              min_q_value, max_q_value)
  obs_spec = agent.time_step_spec.observation

  @tf.function(input_signature=[
      _batch_signature(agent),
      tf.TensorSpec([None] + list(obs_spec.shape), obs_spec.dtype)],
               autograph=False)
  def train_and_act(batch, observations):
    loss = update(batch)
    with tf.control_dependencies([loss]):
      return loss, greedy(observations)

  return train_and_act
