"""parse_env_id / make_env: accepted ids, constants, and errors naming them."""

import math

import pytest
from tf_agents.environments import py_environment

from sn_tf.envs import ATARI_PROTOCOLS
from sn_tf.envs import AtariEnv
from sn_tf.envs import make_env
from sn_tf.envs import MINATAR_GAMES
from sn_tf.envs import MinAtarEnv
from sn_tf.envs import parse_env_id


def test_constants():
  assert MINATAR_GAMES == ("asterix", "breakout", "freeway", "seaquest",
                           "space_invaders")
  assert ATARI_PROTOCOLS == ("paper", "dopamine")


@pytest.mark.parametrize("env_id,expected", [
    ("minatar:breakout", ("minatar", "breakout")),
    ("minatar:space_invaders", ("minatar", "space_invaders")),
    ("atari:Pong", ("atari", "Pong")),
    ("atari:SpaceInvaders", ("atari", "SpaceInvaders")),
    ("atari:MontezumaRevenge", ("atari", "MontezumaRevenge")),
])
def test_parse_env_id(env_id, expected):
  assert parse_env_id(env_id) == expected


@pytest.mark.parametrize("env_id", ["foo", "", "minatar:", ":breakout",
                                    "gym:Pong", "atari:Pong:v5", None])
def test_malformed_env_id(env_id):
  with pytest.raises(ValueError) as err:
    parse_env_id(env_id)
  message = str(err.value)
  assert "env_id must look like 'minatar:<game>' or 'atari:<Game>'" in message
  assert repr(env_id) in message


def test_unknown_minatar_game():
  with pytest.raises(ValueError) as err:
    parse_env_id("minatar:brekout")
  message = str(err.value)
  assert "unknown MinAtar game 'brekout'" in message
  assert "did you mean 'breakout'" in message
  assert "allowed: asterix, breakout, freeway, seaquest, space_invaders" in (
      message)


@pytest.mark.parametrize("game", ["Pongg", "pong", "Combat"])
def test_unknown_atari_game(game):
  # "Combat" has a ROM but no single-player mode, so no ALE/...-v5 id.
  with pytest.raises(ValueError) as err:
    make_env(f"atari:{game}", seed=0, training=True)
  message = str(err.value)
  assert f"unknown Atari game {game!r}" in message
  assert "allowed: " in message and "Pong" in message
  assert "SpaceInvaders" in message and "MontezumaRevenge" in message


def test_unknown_protocol():
  for env_id in ("atari:Pong", "minatar:breakout"):
    with pytest.raises(ValueError, match=r"unknown Atari protocol 'nature'; "
                       r"allowed: paper, dopamine"):
      make_env(env_id, seed=0, training=True, atari_protocol="nature")


@pytest.mark.parametrize("prob", [-0.1, 1.5, math.nan, "0.1", True])
def test_bad_sticky_action_prob(prob):
  with pytest.raises(ValueError,
                     match=r"sticky_action_prob must be .*\[0, 1\]"):
    make_env("minatar:breakout", seed=0, training=True,
             sticky_action_prob=prob)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, None])
def test_bad_seed(seed):
  with pytest.raises(ValueError, match="seed must be an integer"):
    make_env("minatar:breakout", seed=seed, training=True)


def test_bad_training_flag():
  with pytest.raises(ValueError, match="training must be a bool, got 1"):
    make_env("minatar:breakout", seed=0, training=1)


def test_make_env_types_and_overrides():
  minatar = make_env("minatar:asterix", seed=0, training=True)
  assert isinstance(minatar, MinAtarEnv)
  assert isinstance(minatar, py_environment.PyEnvironment)
  assert minatar.sticky_action_prob == 0.1
  assert make_env("minatar:asterix", seed=0, training=False,
                  sticky_action_prob=0.0).sticky_action_prob == 0.0
  paper = make_env("atari:Pong", seed=0, training=True)
  assert isinstance(paper, AtariEnv)
  assert isinstance(paper, py_environment.PyEnvironment)
  assert paper.config.sticky_action_prob == 0.0
  assert paper.config.noop_range == (0, 29) and paper.config.terminal_on_life_loss
  assert paper.config.pool_after_resize
  assert paper.config.max_frames_per_episode == 108_000
  evaluation = make_env("atari:Pong", seed=0, training=False)
  assert not evaluation.config.terminal_on_life_loss
  dopamine = make_env("atari:Pong", seed=0, training=True,
                      atari_protocol="dopamine")
  assert dopamine.config.sticky_action_prob == 0.25
  assert dopamine.config.noop_range == (0, 0)
  assert not dopamine.config.pool_after_resize
  assert not dopamine.config.terminal_on_life_loss
  assert dopamine.config.max_frames_per_episode == 108_000
  override = make_env("atari:Pong", seed=0, training=True,
                      atari_protocol="dopamine", sticky_action_prob=0.5)
  assert override.config.sticky_action_prob == 0.5
