"""The one update path of sn_tf's agents: ``agent.train(experience)``.

sn_tf's DQN and C51 agents are TF-Agents ``DqnAgent`` /
``CategoricalDqnAgent`` subclasses whose ``_train`` is the lean update of
``LeanTrainMixin``: the loss on the online network in training mode (so the
SN layers advance their power iteration once per update) against a target
computed in one target-network pass, one gradient step of the scheduler's
optimiser, the train-step counter and the periodic target copy. It takes the
same ``[B, 2]`` ``Trajectory`` as the parents' ``train`` (or a ``[B]``
``Transition``, which TF-Agents' DQN agents also take), so the agents drop
into a TF-Agents driver and replay buffer; ``stock_train`` is the parent's
own update, which tests compare it with.

A replay batch (a dict of ``obs [B, ...]``, ``action [B]``, ``reward [B]``,
``discount [B]`` (0 at true terminals), ``next_obs [B, ...]``) becomes a
``Transition`` with ``transition_of`` (what the learner trains on: no two
time steps stacked and sliced apart again) or a trajectory with
``trajectory_of``.
"""

from typing import Dict, Optional, Tuple

import tensorflow as tf
from tf_agents.agents import tf_agent
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory


def transition_of(batch: Dict[str, tf.Tensor]) -> trajectory.Transition:
  """The ``Transition`` of a replay batch, ``[B]`` tensors without a time
  dimension: ``time_step`` (MID, ``s``), ``action_step`` (``a``) and
  ``next_time_step`` (``s'``, ``r``, ``discount``; LAST where the transition
  is terminal, ``discount`` 0). What the learner passes to ``agent.train``
  (TF-Agents' DQN agents take a ``Transition`` as they take a ``[B, 2]``
  ``Trajectory``, which it is without stacking two time steps)."""
  discount = batch["discount"]
  reward = batch["reward"]
  mid = tf.fill(tf.shape(discount), ts.StepType.MID)
  next_type = tf.where(discount > 0, mid, tf.fill(tf.shape(mid), ts.StepType.LAST))
  zeros = tf.zeros_like(reward)
  return trajectory.Transition(
      time_step=ts.TimeStep(step_type=mid, reward=zeros,
                            discount=tf.ones_like(discount),
                            observation=batch["obs"]),
      action_step=policy_step.PolicyStep(action=batch["action"], state=(),
                                         info=()),
      next_time_step=ts.TimeStep(step_type=next_type, reward=reward,
                                 discount=discount,
                                 observation=batch["next_obs"]))


def trajectory_of(batch: Dict[str, tf.Tensor]) -> trajectory.Trajectory:
  """The ``[B, 2]`` ``Trajectory`` of a replay batch: step ``(s, a, r)`` then
  ``s'``, whose step type is LAST where the transition is terminal
  (``discount`` 0)."""
  discount = batch["discount"]
  mid = tf.fill(tf.shape(discount), ts.StepType.MID)
  next_type = tf.where(discount > 0, mid, tf.fill(tf.shape(mid), ts.StepType.LAST))
  two = lambda a, b: tf.stack([a, b], axis=1)  # [B] x 2 -> [B, 2]
  reward = batch["reward"]
  return trajectory.Trajectory(
      step_type=two(mid, next_type),
      observation=two(batch["obs"], batch["next_obs"]),
      action=two(batch["action"], batch["action"]),
      policy_info=(),
      next_step_type=two(next_type, mid),
      reward=two(reward, tf.zeros_like(reward)),
      discount=two(discount, tf.ones_like(discount)))


class LeanTrainMixin:
  """``_train`` as sn_tf's lean update, mixed into a TF-Agents DQN-family
  agent. The agent supplies ``_lean_targets(next_obs, reward, discount)``
  (without gradient) and ``_lean_loss(outputs, action, targets, weights)``
  and sets ``self._clip_rewards``."""

  _clip_rewards = False

  def _transition(self, experience) -> Tuple[tf.Tensor, ...]:
    """``(obs, action, reward, discount, next_obs, valid)`` of a ``[B, 2]``
    ``Trajectory`` or a ``[B]`` ``Transition``; ``valid`` is 0 where the
    first step is LAST (the pair spans two episodes, as a TF-Agents replay
    may sample), else 1."""
    if isinstance(experience, trajectory.Transition):
      first, second = experience.time_step, experience.next_time_step
      obs, action = first.observation, experience.action_step.action
      reward, discount = second.reward, second.discount
      next_obs, first_type = second.observation, first.step_type
    else:
      obs, action = experience.observation[:, 0], experience.action[:, 0]
      reward, discount = experience.reward[:, 0], experience.discount[:, 0]
      next_obs, first_type = experience.observation[:, 1], experience.step_type[:, 0]
    if self._clip_rewards:
      reward = tf.clip_by_value(reward, -1.0, 1.0)
    valid = tf.cast(tf.not_equal(first_type, ts.StepType.LAST), tf.float32)
    return obs, action, reward, discount, next_obs, valid

  def lean_loss(self, experience: trajectory.Trajectory,
                weights: Optional[tf.Tensor] = None) -> tf.Tensor:
    """The loss ``_train`` minimises, without updating (the online forward
    pass is in training mode, so power iteration advances)."""
    obs, action, reward, discount, next_obs, valid = self._transition(experience)
    if weights is not None:
      valid = valid * tf.cast(weights, tf.float32)
    targets = tf.stop_gradient(self._lean_targets(next_obs, reward, discount))
    outputs, _ = self._q_network(obs, training=True)
    return self._lean_loss(outputs, action, targets, valid)

  def _train(self, experience, weights=None):
    with tf.GradientTape() as tape:  # the target is stop-gradient inside
      loss = self.lean_loss(experience, weights)
    variables = self._q_network.trainable_weights
    self._optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    self.train_step_counter.assign_add(1)
    with tf.control_dependencies([self._update_target()]):
      loss = tf.identity(loss)
    return tf_agent.LossInfo(loss, ())

  def stock_train(self, experience) -> tf_agent.LossInfo:
    """The parent TF-Agents agent's own update (its ``_train``), on the same
    experience with the same reward clipping: the reference ``train`` is
    tested against."""
    if self._clip_rewards:
      experience = experience._replace(
          reward=tf.clip_by_value(experience.reward, -1.0, 1.0))
    return super()._train(experience, None)  # pylint: disable=no-member

  def update_target(self):
    """The agent's own target update (copies online to target every
    ``target_update_period`` train steps; its counter is checkpointed)."""
    return self._update_target()
