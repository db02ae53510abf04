"""Evaluation of an exported policy on an environment.

Plays any of an export's three forms (``sn_tf.export``): the TF-Agents
SavedModel, the plain SavedModel or the TFLite model. None runs sn_tf model
code, and all run the network in inference mode (no power iteration).
"""

import os
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from sn_tf.analysis.atari_scores import has_human_score, human_normalized_score
from sn_tf import export_check
from sn_tf.envs import make_env, parse_env_id, time_steps
from sn_tf.export import FORMATS, SERVING_DIR, TFLITE_FILE, read_metadata


def load_policy(policy_dir: str, export_format: str = "tf_agents",
                trust: bool = False
                ) -> Tuple[Callable[[Any], int], Dict[str, Any]]:
  """Loads one form of an exported policy, after checking it as data
  (``sn_tf.export_check``: only the ops sn_tf's exports contain, paths
  inside ``policy_dir``).

  Args:
    policy_dir: an export directory (``<root_dir>/policies/final``).
    export_format: ``tf_agents`` (the PolicySaver SavedModel),
      ``saved_model`` (the plain one in ``serving/``) or ``tflite``.
    trust: load it without checking its ops (an export one trusts).

  Returns:
    ``(act, metadata)``: ``act(time_step) -> int`` the greedy action for one
    unbatched TF-Agents ``TimeStep``; the export's ``sn_tf_policy.json``.

  Raises:
    ValueError: naming the directory or format, if it cannot be loaded;
      ``export_check.UntrustedExportError`` (a ValueError) naming the file
      and the op or path it refuses.
  """
  if export_format not in FORMATS:
    raise ValueError(f"export_format={export_format!r} is not allowed; "
                     f"allowed: {', '.join(FORMATS)}.")
  metadata = read_metadata(policy_dir)
  if export_format == "tf_agents":
    path = os.path.realpath(policy_dir)
  else:
    key = "saved_model" if export_format == "saved_model" else "tflite"
    path = export_check.inside(policy_dir, metadata.get(
        key, SERVING_DIR if key == "saved_model" else TFLITE_FILE), key)
    if not os.path.exists(path):
      raise ValueError(f"policy_dir={policy_dir!r} has no {export_format} "
                       f"export ({path} is missing; exported by an older sn_tf?).")
  export_check.check_export(policy_dir, export_format, path, trust=trust)
  try:
    if export_format == "tf_agents":
      from tf_agents.trajectories import time_step as ts  # pylint: disable=g-import-not-at-top
      policy = tf.saved_model.load(path)

      def act(time_step) -> int:
        batched = ts.TimeStep(
            step_type=tf.constant([time_step.step_type], tf.int32),
            reward=tf.constant([time_step.reward], tf.float32),
            discount=tf.constant([time_step.discount], tf.float32),
            observation=tf.constant(time_step.observation[None]))
        return int(policy.action(batched, ()).action.numpy()[0])
    elif export_format == "saved_model":
      greedy = tf.saved_model.load(path).signatures["serving_default"]

      def act(time_step) -> int:
        observation = tf.constant(time_step.observation[None])
        return int(greedy(observation=observation)["action"].numpy()[0])
    else:
      with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated"
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=path)
      greedy = interpreter.get_signature_runner("serving_default")

      def act(time_step) -> int:
        return int(greedy(observation=time_step.observation[None])["action"][0])
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"policy_dir={policy_dir!r}: the {export_format} export "
                     f"{path} could not be loaded: {e}") from e
  return act, metadata


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


def _epsilon_greedy(act, time_step, epsilon: float, num_actions: int,
                    rng: np.random.Generator) -> int:
  """Uniform over ``num_actions`` if ``u ~ U[0, 1)`` from ``rng`` is below
  ``epsilon``, else ``act(time_step)``."""
  if rng.random() < epsilon:
    return int(rng.integers(num_actions))
  return act(time_step)


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
    while not time_steps.is_last(time_step) and steps < max_episode_steps:
      action = _epsilon_greedy(act, time_step, epsilon, num_actions, rng)
      time_step = env.step(np.int32(action))
      total += float(time_step.reward)
      steps += 1
    returns.append(total)
    lengths.append(steps)
  return returns, lengths


def play_steps(env, act: Callable[[Any], int], *, steps: int, epsilon: float,
               num_actions: int, rng: np.random.Generator
               ) -> Tuple[List[float], List[int], float]:
  """Plays ``steps`` env steps, epsilon-greedy as ``play_episodes``: the
  paper's MinAtar evaluation by a step budget.

  No episode is cut inside the budget (the budget is the only cap); a new
  episode starts as soon as one ends.

  Returns:
    ``(returns, lengths, unfinished)``: the return and length of each episode
    completed within the budget, and the return so far of the episode still
    running when the budget ends (0.0 if the budget ends with an episode).
  """
  returns, lengths = [], []
  time_step = env.reset()
  total, length = 0.0, 0
  for _ in range(steps):
    action = _epsilon_greedy(act, time_step, epsilon, num_actions, rng)
    time_step = env.step(np.int32(action))
    total += float(time_step.reward)
    length += 1
    if time_steps.is_last(time_step):
      returns.append(total)
      lengths.append(length)
      time_step = env.reset()
      total, length = 0.0, 0
  return returns, lengths, total


def episode_statistics(returns: List[float]) -> Dict[str, float]:
  """``eval/return``, ``eval/return_std`` (population) and ``eval/episodes``
  of whole episodes' returns (``play_episodes``' output)."""
  return {"eval/return": float(np.mean(returns)),
          "eval/return_std": float(np.std(returns)),
          "eval/episodes": len(returns)}


def step_budget_statistics(returns: List[float], unfinished: float
                           ) -> Dict[str, float]:
  """The two scores of an evaluation by steps (``play_steps``' output).

  - ``eval/return``: the mean return of the completed episodes; when none
    completed, the unfinished episode's return so far, so that a policy that
    never ends an episode still gets a score. ``eval/return_std`` and
    ``eval/episodes`` go with it (the latter 0 when none completed).
  - ``eval/reward_per_finished_episode``: all reward earned in the budget,
    the unfinished episode's included, divided by the number of completed
    episodes: the reference code's statistic; NaN when none completed.
  """
  values = episode_statistics(returns if returns else [unfinished])
  values["eval/episodes"] = len(returns)
  values["eval/reward_per_finished_episode"] = (
      (float(np.sum(returns)) + unfinished) / len(returns) if returns
      else float("nan"))
  return values


def evaluate_policy(policy_dir: str, env_id: Optional[str] = None, *,
                    episodes: int = 10, seed: int = 0, epsilon: float = 0.001,
                    max_episode_steps: int = 27_000,
                    atari_protocol: Optional[str] = None,
                    sticky_action_prob: Optional[float] = None,
                    export_format: str = "tf_agents",
                    trust_policy: bool = False) -> Dict[str, Any]:
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
    export_format: which form of the export plays (see ``load_policy``).
    trust_policy: load it without checking its ops (``load_policy``'s
      ``trust``).
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
  act, metadata = load_policy(policy_dir, export_format, trust=trust_policy)
  env_id = env_id or metadata["env"]
  env = make_env(env_id, seed=seed, training=False,
                 atari_protocol=atari_protocol or metadata.get("atari_protocol", "paper"),
                 sticky_action_prob=(sticky_action_prob if sticky_action_prob is not None
                                     else metadata.get("sticky_action_prob")))
  _check_env_matches(env, metadata, policy_dir, env_id)
  num_actions = metadata["num_actions"]
  rng = np.random.default_rng([seed, 3])
  returns, lengths = play_episodes(
      env, act, episodes=episodes, epsilon=epsilon, num_actions=num_actions,
      rng=rng, max_episode_steps=max_episode_steps)
  env.close()
  result = {"env": env_id, "episodes": episodes,
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)), "returns": returns,
            "mean_length": float(np.mean(lengths)),
            "train_step": metadata["train_step"], "export_format": export_format}
  family, game = parse_env_id(env_id)
  if family == "atari" and has_human_score(game):
    result["human_normalized_score"] = human_normalized_score(
        game, result["mean_return"])
  return result
