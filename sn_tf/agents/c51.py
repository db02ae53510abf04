"""C51 (Bellemare et al. 2017) on TF-Agents' ``CategoricalDqnAgent``.

The learner of the Atari headline: an SN network with ``num_atoms`` logits
per action on the support ``z`` (``num_atoms`` atoms evenly spaced on
``[min_q_value, max_q_value]``), ``Q(s, a) = sum_z z softmax(logits(s, a))_z``,
and the cross-entropy between the online distribution of the taken action
and the projected target ``Phi(r + gamma d z, p_target(s', a*))``
(``sn_tf.agents.losses``). Hyperparameters: docs/protocol.md#c51-agent.
"""

from typing import Callable

import tensorflow as tf
from tf_agents.agents.categorical_dqn import categorical_dqn_agent

from sn_tf.agents import losses
from sn_tf.agents.lean_train import LeanTrainMixin
from sn_tf.agents.learner import Learner, build_network
from sn_tf.networks import SNCategoricalQNetwork


class SNCategoricalDqnAgent(LeanTrainMixin,
                            categorical_dqn_agent.CategoricalDqnAgent):
  """``CategoricalDqnAgent`` whose ``train`` is sn_tf's lean update
  (``sn_tf.agents.lean_train``): the projected target of the target
  network's greedy action and the cross-entropy to it, rewards clipped to
  [-1, 1] with ``clip_rewards``.

  Args:
    clip_rewards: clip rewards in the update.
    **kwargs: ``CategoricalDqnAgent``'s arguments.
  """

  def __init__(self, time_step_spec, action_spec, *, clip_rewards: bool = False,
               **kwargs):
    super().__init__(time_step_spec, action_spec, **kwargs)
    self._clip_rewards = clip_rewards

  def _lean_targets(self, next_obs, reward, discount):
    """``[B, N]`` projected target distribution."""
    target_logits, _ = self._target_q_network(next_obs, training=False)
    return losses.c51_targets(target_logits, reward, discount, self._support,
                              self._gamma)

  def _lean_loss(self, outputs, action, targets, weights):
    return losses.c51_loss(outputs, action, targets, weights)


def support(num_atoms: int, min_q_value: float, max_q_value: float) -> tf.Tensor:
  """``[num_atoms]`` atoms evenly spaced on ``[min_q_value, max_q_value]``."""
  return tf.linspace(float(min_q_value), float(max_q_value), num_atoms)


def expected_q_values(logits: tf.Tensor, atoms: tf.Tensor) -> tf.Tensor:
  """``[B, A, N]`` logits -> ``[B, A]`` expected values on ``atoms [N]``."""
  return tf.reduce_sum(tf.nn.softmax(logits) * atoms, axis=-1)


class C51Learner(Learner):
  """C51 with the SN network, optimiser and scheduler of ``config``."""

  def _build_network(self, observation_spec, action_spec) -> SNCategoricalQNetwork:
    return build_network(self._config, observation_spec, action_spec,
                         num_atoms=self._config.num_atoms)

  def _build_agent(self, time_step_spec, action_spec):
    c = self._config
    self._support = support(c.num_atoms, c.min_q_value, c.max_q_value)
    return SNCategoricalDqnAgent(
        time_step_spec, action_spec,
        categorical_q_network=self._online,
        target_categorical_q_network=self._target,
        min_q_value=c.min_q_value,
        max_q_value=c.max_q_value,
        **self._common_agent_args())

  def _q_from_outputs(self, outputs):
    return expected_q_values(outputs, self._support)


def q_values_fn(network: SNCategoricalQNetwork, min_q_value: float,
                max_q_value: float) -> Callable[[tf.Tensor], tf.Tensor]:
  """Expected Q-values of a C51 ``network`` in inference mode,
  ``[B, *obs] -> [B, A]`` (for a network outside a learner)."""
  atoms = support(network.num_atoms, min_q_value, max_q_value)

  def q_values(observations):
    logits, _ = network.call(observations, training=False)
    return expected_q_values(logits, atoms)

  return q_values
