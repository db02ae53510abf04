"""Evaluation by steps (the paper's MinAtar protocol) on a scripted env."""

import math

import numpy as np
from tf_agents.trajectories import time_step as ts

from sn_tf.evaluation import (episode_statistics, play_episodes, play_steps,
                               step_budget_statistics)


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
  returns, lengths, unfinished = _play(play_steps, env, steps=10)
  # 3 + 5 = 8 steps complete two episodes; the third has 2 of its 4 steps.
  assert returns == [3.0, 5.0] and lengths == [3, 5] and env.steps == 10
  assert unfinished == 2.0


def test_steps_cut_no_episode_and_end_on_a_boundary_leave_nothing_unfinished():
  returns, lengths, unfinished = _play(play_steps, ScriptedEnv([50]), steps=120)
  assert returns == [50.0, 50.0] and lengths == [50, 50] and unfinished == 20.0
  returns, _, unfinished = _play(play_steps, ScriptedEnv([3, 5]), steps=8)
  assert returns == [3.0, 5.0] and unfinished == 0.0


def test_step_budget_statistics_mean_of_completed_and_reference_ratio():
  values = step_budget_statistics([3.0, 5.0], 2.0)
  assert values["eval/return"] == 4.0 and values["eval/episodes"] == 2
  assert values["eval/return_std"] == 1.0
  # The reference code's: all reward in the window over finished episodes.
  assert values["eval/reward_per_finished_episode"] == 5.0


def test_step_budget_statistics_without_a_completed_episode():
  values = step_budget_statistics([], 7.0)
  assert values["eval/return"] == 7.0 and values["eval/episodes"] == 0
  assert math.isnan(values["eval/reward_per_finished_episode"])


def test_episodes_and_steps_agree_on_whole_episodes():
  by_episodes, _ = _play(play_episodes, ScriptedEnv([3, 5]), episodes=4,
                         max_episode_steps=100)
  by_steps, _, unfinished = _play(play_steps, ScriptedEnv([3, 5]), steps=16)
  assert by_episodes == by_steps == [3.0, 5.0, 3.0, 5.0] and unfinished == 0.0
  assert episode_statistics(by_episodes) == {
      "eval/return": 4.0, "eval/return_std": 1.0, "eval/episodes": 4}


def test_episodes_are_capped():
  returns, lengths = _play(play_episodes, ScriptedEnv([50]), episodes=2,
                           max_episode_steps=4)
  assert returns == [4.0, 4.0] and lengths == [4, 4]
