"""The agents: one learner class per agent, all with the interface of
``sn_tf.agents.learner.Learner``."""

from typing import Dict, Type

from sn_tf.agents.c51 import C51Learner
from sn_tf.agents.dqn import DQNLearner
from sn_tf.agents.learner import Learner

# config.agent -> learner class. A new agent is one module here and an entry.
LEARNERS: Dict[str, Type[Learner]] = {"c51": C51Learner, "dqn": DQNLearner}


def build_learner(config, time_step_spec, action_spec) -> Learner:
  """The learner of ``config.agent``, its variables built and its target
  network initialised to the online network."""
  return LEARNERS[config.agent](config, time_step_spec, action_spec)


__all__ = ["C51Learner", "DQNLearner", "LEARNERS", "Learner", "build_learner"]
