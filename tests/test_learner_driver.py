"""LearnerDriver: epsilon-greedy acting and the updates due after a step."""

import numpy as np
import pytest
from tf_agents.specs import tensor_spec

from sn_tf.agents import build_learner
from sn_tf.config import make_config
from sn_tf.learner_driver import LearnerDriver
from sn_tf.stepper import EnvStepper
from sn_tf.train import LoopState


def _parts(tmp_path, **overrides):
  values = dict(agent="dqn", spectral="-2", learning_starts=16,
                replay_capacity=1000, batch_size=8, update_period=4,
                target_update_period=8, eval_episodes=1, num_steps=96,
                eval_every=96, log_every=8, minatar_model="8/32")
  values.update(overrides)
  c = make_config("minatar:breakout", str(tmp_path), "minatar", **values)
  stepper = EnvStepper(c)
  learner = build_learner(c, tensor_spec.from_spec(stepper.time_step_spec),
                          tensor_spec.from_spec(stepper.action_spec))
  return c, stepper, LearnerDriver(c, learner, str(tmp_path))


@pytest.mark.parametrize("num_envs,update_period", [(1, 4), (8, 2)])
def test_one_update_per_update_period_after_learning_starts(
    tmp_path, num_envs, update_period):
  c, stepper, driver = _parts(tmp_path, num_envs=num_envs,
                              update_period=update_period)
  state = LoopState(episode_returns=[0.0] * num_envs)
  while state.step < c.num_steps:
    previous = state.step
    stepper.step(driver.act(1.0, stepper), state)
    driver.learn(previous, state, stepper)
  # Updates at the multiples of update_period in (learning_starts, num_steps].
  expected = (c.num_steps - c.learning_starts) // update_period
  assert len(state.losses_since_eval) == expected
  assert all(np.isfinite(state.losses_since_eval))
  assert int(driver.learner.train_step_counter.numpy()) == expected
  stepper.close()


def test_greedy_acting_follows_the_network(tmp_path):
  _, stepper, driver = _parts(tmp_path)
  greedy = int(driver.greedy(stepper.observations()).numpy()[0])
  assert driver.act(0.0, stepper) == [greedy]
  # At epsilon 1 every action comes from the explore RNG.
  state = driver.rng_state()
  actions = [driver.act(1.0, stepper)[0] for _ in range(50)]
  driver.restore_rng(state)
  assert [driver.act(1.0, stepper)[0] for _ in range(50)] == actions
  assert len(set(actions)) > 1
  stepper.close()
