"""Seeding (reproducible, seed-sensitive) and get_state/set_state resume."""

import tempfile

import numpy as np
import pytest

from sn_tf import datafiles
from sn_tf.envs import make_env
from sn_tf.envs import MINATAR_GAMES

# (env_id, protocol, training, number of actions)
ATARI_CASES = [
    ("atari:Breakout", "paper", True, 4),  # no-ops, life-loss soft resets
    ("atari:Breakout", "paper", False, 4),
    ("atari:Pong", "dopamine", True, 6),  # sticky actions
]


def episodes_ended(records):
  return sum(step_type == 2 for step_type, *_ in records)


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_minatar_seeding(game, drive, actions):
  stream = actions(6, 400)
  runs = []
  for seed in (3, 3, 4):
    env = make_env(f"minatar:{game}", seed=seed, training=True)
    env.reset()
    runs.append(drive(env, stream))
  assert runs[0] == runs[1]
  assert runs[0] != runs[2]


@pytest.mark.parametrize("env_id,protocol,training,n", ATARI_CASES)
def test_atari_seeding(env_id, protocol, training, n, drive, actions):
  stream = actions(n, 150)
  runs = []
  for seed in (3, 3, 4):
    env = make_env(env_id, seed=seed, training=training,
                   atari_protocol=protocol)
    env.reset()
    runs.append(drive(env, stream))
  assert runs[0] == runs[1]
  assert runs[0] != runs[2]


def through_files(state):
  """``state`` written as data files (JSON + npz, as checkpoints are) and
  read back."""
  with tempfile.TemporaryDirectory() as d:
    datafiles.write(d, "state", state, fsync=False)
    return datafiles.read(d, "state")


def check_resume(make, stream, split, drive):
  """Snapshot after ``split`` steps, through data files; a fresh env
  continues identically."""
  env = make()
  env.reset()
  drive(env, stream[:split])
  state = through_files(env.get_state())
  expected = drive(env, stream[split:])
  fresh = make()
  fresh.set_state(state)
  assert drive(fresh, stream[split:]) == expected
  # The snapshot is not aliased with the env it came from.
  again = make()
  again.set_state(state)
  assert drive(again, stream[split:]) == expected
  return expected


@pytest.mark.parametrize("game", MINATAR_GAMES)
def test_minatar_resume(game, drive, actions):
  expected = check_resume(
      lambda: make_env(f"minatar:{game}", seed=9, training=True),
      actions(6, 700, seed=1), 150, drive)
  assert len(expected) == 550


def test_minatar_state_of_other_game_is_refused():
  state = make_env("minatar:breakout", seed=0, training=True).get_state()
  env = make_env("minatar:asterix", seed=0, training=True)
  with pytest.raises(ValueError, match="'breakout'.*'asterix'"):
    env.set_state(state)


@pytest.mark.parametrize("env_id,protocol,training,n", ATARI_CASES)
def test_atari_resume(env_id, protocol, training, n, drive, actions):
  expected = check_resume(
      lambda: make_env(env_id, seed=5, training=training,
                       atari_protocol=protocol),
      actions(n, 500, seed=2), 120, drive)
  if env_id == "atari:Breakout":
    assert episodes_ended(expected) >= 1  # the resumed part crosses a reset


def test_atari_resume_keeps_the_sticky_action(drive, actions):
  """With strong stickiness the action repeated after a resume must match."""
  # Seaquest reads the joystick every frame (Breakout's and Pong's paddles
  # hide a one-frame difference).
  make = lambda: make_env("atari:Seaquest", seed=5, training=True,
                          sticky_action_prob=0.75)
  stream = actions(18, 80, seed=7)
  for split in (40, 41, 42):
    check_resume(make, stream[:split + 20], split, drive)


def test_atari_resume_at_life_loss(drive, actions):
  """A snapshot taken on a life-loss LAST resumes the same game."""
  make = lambda: make_env("atari:Breakout", seed=6, training=True)
  env = make()
  env.reset()
  for action in actions(4, 1000, seed=3):
    if env.step(np.int32(action)).is_last():
      break
  assert env.current_time_step().is_last()
  lives = env.get_info()["lives"]
  assert 0 < lives < 5
  state = through_files(env.get_state())
  stream = actions(4, 200, seed=4)
  expected = drive(env, stream)
  fresh = make()
  fresh.set_state(state)
  first = fresh.step(np.int32(0))
  assert first.is_first() and fresh.get_info()["lives"] == lives
  assert drive(fresh, stream[1:]) == expected[1:]
