"""DQN (Mnih et al. 2015) on TF-Agents' ``DqnAgent``: the agent of the
paper's MinAtar studies.

An SN network with one Q-value per action, the 1-step target
``r + gamma d max_a Q_target(s', a)`` and the MSE (default, the paper's
MinAtar studies) or Huber loss on the TD error (``sn_tf.agents.losses``).
Hyperparameters: docs/protocol.md#minatar_dqn.
"""

from tf_agents.agents.dqn import dqn_agent
from tf_agents.utils import common

from sn_tf.agents import losses
from sn_tf.agents.lean_train import LeanTrainMixin
from sn_tf.agents.learner import Learner, build_network
from sn_tf.networks import SNQNetwork

# TF-Agents' element-wise losses for the same choices (its agent.train).
_AGENT_TD_LOSSES = {"mse": common.element_wise_squared_loss,
                    "huber": common.element_wise_huber_loss}


class SNDqnAgent(LeanTrainMixin, dqn_agent.DqnAgent):
  """``DqnAgent`` whose ``train`` is sn_tf's lean update
  (``sn_tf.agents.lean_train``): the 1-step target from the target network,
  the MSE or Huber TD loss, rewards clipped to [-1, 1] with
  ``clip_rewards``.

  Args:
    td_loss: ``"mse"`` or ``"huber"``.
    clip_rewards: clip rewards in the update.
    **kwargs: ``DqnAgent``'s arguments (its ``td_errors_loss_fn`` is set to
      the same loss, for ``stock_train``).
  """

  def __init__(self, time_step_spec, action_spec, *, td_loss: str = "mse",
               clip_rewards: bool = False, **kwargs):
    super().__init__(time_step_spec, action_spec,
                     td_errors_loss_fn=_AGENT_TD_LOSSES[td_loss], **kwargs)
    self._td_loss_kind, self._clip_rewards = td_loss, clip_rewards

  def _lean_targets(self, next_obs, reward, discount):
    """``[B]`` 1-step targets."""
    target_q, _ = self._target_q_network(next_obs, training=False)
    return losses.dqn_targets(target_q, reward, discount, self._gamma)

  def _lean_loss(self, outputs, action, targets, weights):
    return losses.dqn_loss(outputs, action, targets, self._td_loss_kind, weights)


class DQNLearner(Learner):
  """DQN with the SN network, optimiser and scheduler of ``config``."""

  def _build_network(self, observation_spec, action_spec) -> SNQNetwork:
    return build_network(self._config, observation_spec, action_spec,
                         num_atoms=None)

  def _build_agent(self, time_step_spec, action_spec):
    return SNDqnAgent(
        time_step_spec, action_spec,
        q_network=self._online,
        target_q_network=self._target,
        td_loss=self._config.td_loss,
        **self._common_agent_args())

  def _q_from_outputs(self, outputs):
    return outputs
