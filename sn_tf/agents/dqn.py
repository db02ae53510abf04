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
from sn_tf.agents.learner import Learner, build_network
from sn_tf.networks import SNQNetwork

# TF-Agents' element-wise losses for the same choices (its agent.train).
_AGENT_TD_LOSSES = {"mse": common.element_wise_squared_loss,
                    "huber": common.element_wise_huber_loss}


class SNDqnAgent(dqn_agent.DqnAgent):
  """``DqnAgent`` with its periodic target copy public."""

  def update_target(self):
    """The agent's own target update (copies online to target every
    ``target_update_period`` train steps; its counter is checkpointed)."""
    return self._update_target()


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
        td_errors_loss_fn=_AGENT_TD_LOSSES[self._config.td_loss],
        **self._common_agent_args())

  def _q_from_outputs(self, outputs):
    return outputs

  def _targets(self, next_obs, reward, discount):
    """``[B]`` 1-step targets."""
    target_q, _ = self._target(next_obs, training=False)
    return losses.dqn_targets(target_q, reward, discount, self._config.gamma)

  def _loss(self, outputs, action, targets):
    return losses.dqn_loss(outputs, action, targets, self._config.td_loss)
