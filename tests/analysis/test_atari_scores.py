"""Tests of the Atari-57 random/human score table and human-normalised scores."""

import re

import pytest

from sn_tf.analysis import atari_scores
from sn_tf.analysis.atari_scores import ATARI_57
from sn_tf.envs import parse_env_id


def test_has_the_57_games():
  assert len(ATARI_57) == 57
  for game in ("Pong", "SpaceInvaders", "MontezumaRevenge", "UpNDown",
               "VideoPinball", "YarsRevenge", "Surround", "Defender"):
    assert game in ATARI_57


@pytest.mark.parametrize("game", sorted(ATARI_57))
def test_every_game_is_a_valid_env_id(game):
  assert parse_env_id("atari:" + game) == ("atari", game)


@pytest.mark.parametrize("game", sorted(ATARI_57))
def test_random_is_zero_and_human_is_one(game):
  random, human = ATARI_57[game]
  assert human > random
  assert atari_scores.human_normalized_score(game, random) == pytest.approx(
      0.0, abs=1e-12)
  assert atari_scores.human_normalized_score(game, human) == pytest.approx(1.0)


@pytest.mark.parametrize("game, random, human", [
    # As in google-deepmind/dqn_zoo, dqn_zoo/atari_data.py.
    ("Pong", -20.7, 14.6),
    ("Breakout", 1.7, 30.5),
    ("Alien", 227.8, 7127.7),
    ("MontezumaRevenge", 0.0, 4753.3),
    ("Skiing", -17098.1, -4336.9),
])
def test_values_match_the_source(game, random, human):
  assert ATARI_57[game] == (random, human)


def test_normalised_score_is_linear():
  # Pong: (score + 20.7) / 35.3.
  assert atari_scores.human_normalized_score("Pong", 21.0) == pytest.approx(
      41.7 / 35.3)
  assert atari_scores.human_normalized_score("Pong", -21) == pytest.approx(
      -0.3 / 35.3)


def test_has_human_score():
  assert atari_scores.has_human_score("Pong")
  assert not atari_scores.has_human_score("pong")
  assert not atari_scores.has_human_score("Tetris")


@pytest.mark.parametrize("game", ["Tetris", "pong", "ALE/Pong-v5", ""])
def test_unknown_game_raises_naming_it(game):
  with pytest.raises(ValueError, match=re.escape(repr(game))) as info:
    atari_scores.human_normalized_score(game, 0.0)
  assert "Pong" in str(info.value) and "Zaxxon" in str(info.value)
