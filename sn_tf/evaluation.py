"""Evaluation of an exported SavedModel policy on an environment.

Needs only TensorFlow, TF-Agents' ``TimeStep`` structure and the env: the
policy is loaded with ``tf.saved_model.load`` and no sn_tf model code runs.
The loaded network runs in inference mode, so it never runs power iteration.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from sn_tf.analysis.atari_scores import has_human_score, human_normalized_score
from sn_tf.envs import make_env, parse_env_id
from sn_tf.export import read_metadata


def load_policy(policy_dir: str):
  """Loads an exported policy; ValueError naming the directory if it cannot."""
  metadata = read_metadata(policy_dir)
  try:
    policy = tf.saved_model.load(policy_dir)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"policy_dir={policy_dir!r} could not be loaded as a "
                     f"SavedModel: {e}") from e
  return policy, metadata


def _check_env_matches(env, metadata: Dict[str, Any], policy_dir: str, env_id: str):
  obs = env.observation_spec()
  want_shape = tuple(metadata["observation_shape"])
  actions = int(env.action_spec().maximum - env.action_spec().minimum + 1)
  if tuple(obs.shape) != want_shape or np.dtype(obs.dtype).name != metadata[
      "observation_dtype"]:
    raise ValueError(
        f"env={env_id!r} gives observations {tuple(obs.shape)} "
        f"{np.dtype(obs.dtype).name}, but the policy in {policy_dir!r} expects "
        f"{want_shape} {metadata['observation_dtype']} (it was trained on "
        f"{metadata['env']!r}).")
  if actions != metadata["num_actions"]:
    raise ValueError(
        f"env={env_id!r} has {actions} actions, but the policy in "
        f"{policy_dir!r} has {metadata['num_actions']} (trained on "
        f"{metadata['env']!r}).")


def play_episodes(env, act: Callable[[Any], int], *, episodes: int,
                  epsilon: float, num_actions: int, rng: np.random.Generator,
                  max_episode_steps: int) -> Tuple[List[float], List[int]]:
  """Plays ``episodes`` episodes, epsilon-greedy around ``act(time_step)``.

  Each step draws ``u ~ U[0, 1)`` from ``rng``; if ``u < epsilon`` the action
  is uniform over ``num_actions``, else ``act(time_step)``. Episodes are cut
  after ``max_episode_steps`` steps.

  Returns:
    ``(returns, lengths)``, one entry per episode.
  """
  returns, lengths = [], []
  for _ in range(episodes):
    time_step = env.reset()
    total, steps = 0.0, 0
    while not time_step.is_last() and steps < max_episode_steps:
      if rng.random() < epsilon:
        action = int(rng.integers(num_actions))
      else:
        action = act(time_step)
      time_step = env.step(np.int32(action))
      total += float(time_step.reward)
      steps += 1
    returns.append(total)
    lengths.append(steps)
  return returns, lengths


def evaluate_policy(policy_dir: str, env_id: Optional[str] = None, *,
                    episodes: int = 10, seed: int = 0, epsilon: float = 0.001,
                    max_episode_steps: int = 27_000,
                    atari_protocol: Optional[str] = None,
                    sticky_action_prob: Optional[float] = None) -> Dict[str, Any]:
  """Plays ``episodes`` episodes at ``epsilon``; returns mean/std return.

  Deterministic for a fixed ``seed`` (env seed and the epsilon RNG).

  Args:
    policy_dir: an exported policy directory (``<root_dir>/policies/final``).
    env_id: env to play; default: the one the policy was trained on.
    episodes: number of episodes (>= 1).
    seed: seed of the env and of the exploration RNG.
    epsilon: probability of a uniformly random action.
    max_episode_steps: episodes are cut (truncated) after this many steps.
    atari_protocol, sticky_action_prob: env options (default: those the
      policy was trained with).
  """
  if env_id is not None:
    try:
      parse_env_id(env_id)
    except ValueError as e:
      raise ValueError(f"env={env_id!r} is not allowed; {e}") from None
  if not isinstance(episodes, int) or episodes < 1:
    raise ValueError(f"episodes={episodes!r} is not allowed; an integer >= 1.")
  if not 0.0 <= epsilon <= 1.0:
    raise ValueError(f"epsilon={epsilon!r} is not allowed; a number in [0, 1].")
  if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
    raise ValueError(f"max_episode_steps={max_episode_steps!r} is not allowed; "
                     "an integer >= 1.")
  policy, metadata = load_policy(policy_dir)
  env_id = env_id or metadata["env"]
  env = make_env(env_id, seed=seed, training=False,
                 atari_protocol=atari_protocol or metadata.get("atari_protocol", "paper"),
                 sticky_action_prob=(sticky_action_prob if sticky_action_prob is not None
                                     else metadata.get("sticky_action_prob")))
  _check_env_matches(env, metadata, policy_dir, env_id)
  num_actions = metadata["num_actions"]
  rng = np.random.default_rng([seed, 3])

  def act(time_step) -> int:
    batched = ts.TimeStep(
        step_type=tf.constant([time_step.step_type], tf.int32),
        reward=tf.constant([time_step.reward], tf.float32),
        discount=tf.constant([time_step.discount], tf.float32),
        observation=tf.constant(time_step.observation[None]))
    return int(policy.action(batched, ()).action.numpy()[0])

  returns, lengths = play_episodes(
      env, act, episodes=episodes, epsilon=epsilon, num_actions=num_actions,
      rng=rng, max_episode_steps=max_episode_steps)
  env.close()
  result = {"env": env_id, "episodes": episodes,
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)), "returns": returns,
            "mean_length": float(np.mean(lengths)),
            "train_step": metadata["train_step"]}
  family, game = parse_env_id(env_id)
  if family == "atari" and has_human_score(game):
    result["human_normalized_score"] = human_normalized_score(
        game, result["mean_return"])
  return result
