"""Life loss under the paper protocol: Dopamine semantics in training only."""

import numpy as np

from sn_tf.envs import make_env

BREAKOUT_LIVES = 5


def play(env, stream):
  """Steps through ``stream`` lazily, yielding (time step, info)."""
  for action in stream:
    step = env.step(np.int32(action))
    yield step, dict(env.get_info())


def test_training_episode_ends_at_life_loss_and_game_goes_on(actions):
  env = make_env("atari:Breakout", seed=1, training=True)
  env.reset()
  assert env.get_info()["lives"] == BREAKOUT_LIVES
  game_frames = [env.get_info()["episode_frame_number"]]
  lasts = []
  for step, info in play(env, actions(4, 2500, seed=5)):
    if step.is_last():
      lasts.append((step, info))
      if info["game_over"]:
        break
    elif step.is_first():
      game_frames.append(info["episode_frame_number"])
  # One agent episode per life, each a true terminal for the agent.
  assert [info["lives"] for _, info in lasts] == [4, 3, 2, 1, 0]
  assert [info["game_over"] for _, info in lasts] == [False] * 4 + [True]
  assert all(float(step.discount) == 0.0 for step, _ in lasts)
  # The resets after a lost life continued the game: its frame count grew.
  assert len(game_frames) == 5
  assert all(b > a for a, b in zip(game_frames, game_frames[1:]))
  # After game over the next reset starts a new game.
  first = env.step(np.int32(0))
  assert first.is_first()
  assert env.get_info()["lives"] == BREAKOUT_LIVES
  assert env.get_info()["episode_frame_number"] <= 30


def test_first_step_after_life_loss_continues_after_one_noop_frame(actions):
  env = make_env("atari:Breakout", seed=2, training=True)
  env.reset()
  frames = env.get_info()["episode_frame_number"]
  for step, info in play(env, actions(4, 1000, seed=6)):
    if step.is_last():
      break
    frames = info["episode_frame_number"]
  assert info["lives"] == BREAKOUT_LIVES - 1 and not info["game_over"]
  # The step that lost the life played all its 4 frames.
  assert info["episode_frame_number"] == frames + 4
  first = env.step(np.int32(1))
  assert first.is_first() and float(first.reward) == 0.0
  # The game went on by one no-op frame, and a new stack started: zero
  # padding, then the frame of the continued game.
  assert env.get_info()["episode_frame_number"] == info["episode_frame_number"] + 1
  assert not first.observation[..., :3].any() and first.observation[..., 3].any()
  assert env.get_info()["lives"] == BREAKOUT_LIVES - 1


def test_evaluation_plays_whole_games(actions):
  env = make_env("atari:Breakout", seed=1, training=False)
  env.reset()
  lives_seen = set()
  for step, info in play(env, actions(4, 2500, seed=5)):
    lives_seen.add(info["lives"])
    if step.is_last():
      break
  assert step.is_last() and float(step.discount) == 0.0
  assert info["game_over"] and info["lives"] == 0
  assert lives_seen == set(range(BREAKOUT_LIVES + 1))


def test_dopamine_protocol_has_no_life_loss_terminal(actions):
  env = make_env("atari:Breakout", seed=1, training=True,
                 atari_protocol="dopamine")
  env.reset()
  for step, info in play(env, actions(4, 2500, seed=5)):
    if step.is_last():
      break
  assert step.is_last() and info["game_over"] and info["lives"] == 0
