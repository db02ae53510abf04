"""Evaluation by steps (the paper's MinAtar protocol) on a scripted env."""

import numpy as np
from tf_agents.trajectories import time_step as ts

from sn_tf.evaluation import play_episodes, play_steps


class ScriptedEnv:
  """Episodes of fixed lengths; reward 1 per step; counts steps taken."""

  def __init__(self, lengths):
    self._lengths, self._episode, self._t, self.steps = list(lengths), -1, 0, 0

  def reset(self):
    self._episode += 1
    self._t = 0
    return ts.restart(np.zeros(1, np.float32))

  def step(self, action):
    del action
    self._t += 1
    self.steps += 1
    if self._t >= self._lengths[self._episode % len(self._lengths)]:
      return ts.termination(np.zeros(1, np.float32), 1.0)
    return ts.transition(np.zeros(1, np.float32), 1.0)


def _play(fn, env, **kw):
  return fn(env, lambda t: 0, epsilon=0.0, num_actions=2,
            rng=np.random.default_rng(0), **kw)


def test_steps_count_completed_episodes_only():
  env = ScriptedEnv([3, 5, 4])
  returns, lengths = _play(play_steps, env, steps=10, max_episode_steps=100)
  # 3 + 5 = 8 steps complete two episodes; the third is cut by the budget.
  assert returns == [3.0, 5.0] and lengths == [3, 5] and env.steps == 10


def test_episode_cap_counts_as_completed_and_no_completion_scores_partial():
  returns, lengths = _play(play_steps, ScriptedEnv([50]), steps=10,
                           max_episode_steps=4)
  assert returns == [4.0, 4.0] and lengths == [4, 4]
  returns, _ = _play(play_steps, ScriptedEnv([50]), steps=7, max_episode_steps=100)
  assert returns == [7.0]  # nothing completed: the partial episode


def test_episodes_and_steps_agree_on_whole_episodes():
  by_episodes, _ = _play(play_episodes, ScriptedEnv([3, 5]), episodes=4,
                         max_episode_steps=100)
  by_steps, _ = _play(play_steps, ScriptedEnv([3, 5]), steps=16,
                      max_episode_steps=100)
  assert by_episodes == by_steps == [3.0, 5.0, 3.0, 5.0]
