"""Env snapshots as plain data (numbers, strings, arrays, lists, dicts).

``get_state`` of the envs returns only such data, so a checkpoint stores it
with ``sn_tf.datafiles`` (JSON + npz) and never with ``pickle``. This module
turns the live objects an env holds into that data and back: TF-Agents time
steps, ``minatar.Environment`` (the game's fields and its ``RandomState``)
and ALE states (their serialised bytes).
"""

import copy
from typing import Any, Dict, Optional

import numpy as np
from tf_agents.trajectories import time_step as ts

_TIME_STEP_FIELDS = ("step_type", "reward", "discount", "observation")


def time_step_to_data(time_step: Optional[ts.TimeStep]) -> Optional[Dict[str, Any]]:
  """``{"step_type", "reward", "discount", "observation"}``, arrays copied
  (None before the first reset)."""
  if time_step is None:
    return None
  return {name: np.array(getattr(time_step, name)) for name in _TIME_STEP_FIELDS}


def time_step_from_data(data: Optional[Dict[str, Any]]) -> Optional[ts.TimeStep]:
  if data is None:
    return None
  return ts.TimeStep(**{name: np.array(data[name]) for name in _TIME_STEP_FIELDS})


def _fields(obj: Any, skip: tuple) -> Dict[str, Any]:
  return {k: copy.deepcopy(v) for k, v in vars(obj).items() if k not in skip}


def minatar_to_data(environment: Any) -> Dict[str, Any]:
  """A ``minatar.Environment`` as data: its fields, its game's fields, and
  their ``RandomState`` (one state when, as after ``seed``, they share it).

  Raises:
    TypeError (from ``datafiles.encode`` later): a field that is not data,
      e.g. the colour map a visualised env holds.
  """
  game = environment.env
  shared = game.random is environment.random
  return {"game": environment.game_name(),
          "environment": _fields(environment, ("env", "random")),
          "game_fields": _fields(game, ("random",)),
          "random": environment.random.get_state(),
          "game_random": None if shared else game.random.get_state()}


def minatar_from_data(environment: Any, data: Dict[str, Any]) -> None:
  """Makes ``environment`` (a ``minatar.Environment`` of the same game) the
  one ``minatar_to_data`` saw: every field replaced, RNG states set."""
  game = environment.env
  random = np.random.RandomState()
  random.set_state(data["random"])
  environment.__dict__.clear()
  environment.__dict__.update(copy.deepcopy(data["environment"]))
  environment.env, environment.random = game, random
  game.__dict__.clear()
  game.__dict__.update(copy.deepcopy(data["game_fields"]))
  if data["game_random"] is None:
    game.random = random
  else:
    game.random = np.random.RandomState()
    game.random.set_state(data["game_random"])


def ale_state_to_data(state: Any) -> bytes:
  """An ``ale_py.ALEState`` as its serialised bytes."""
  return bytes(state.serialize())


def ale_state_from_data(data: bytes) -> Any:
  import ale_py  # pylint: disable=g-import-not-at-top
  return ale_py.ALEState(bytes(data))
