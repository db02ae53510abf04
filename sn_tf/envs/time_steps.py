"""TF-Agents ``TimeStep``s of one unbatched NumPy environment, built directly.

``tf_agents.trajectories.time_step``'s ``restart``/``transition``/
``termination``/``truncation`` and ``TimeStep.is_last`` accept tensors as
well as arrays, and find out which they were given with ``tf.is_tensor``, an
``isinstance`` check against a runtime protocol that inspects the object's
attributes. For a NumPy scalar that costs 15-20 us a call on the 2-core
machine this project is measured on, and a MinAtar step used to pay it four
times (``transition`` ~70 us, two ``is_last`` ~15 us each) on top of a game
step of ~30-75 us: a few per cent of a C51 step and more of a DQN one
(BUILD_NOTES.md). The builders here take the NumPy branch directly and return
what TF-Agents' own return for the same NumPy input (same fields, dtypes,
shapes and values; tests compare them), including its refusal of a NaN
reward or discount.

Shapes: ``step_type`` ``[]`` int32, ``reward`` and ``discount`` ``[]``
float32, ``observation`` as given.
"""

from typing import Any

import numpy as np
from tf_agents.trajectories import time_step as ts


def _scalar(name: str, value: Any) -> np.ndarray:
  array = np.asarray(value, dtype=np.float32)
  if array.shape != () or np.isnan(array):
    raise ValueError(f"{name} must be a scalar number, got {value!r}")
  return array


def restart(observation: np.ndarray) -> ts.TimeStep:
  """The first time step of an episode: reward 0, discount 1."""
  return ts.TimeStep(ts.StepType.FIRST, np.asarray(0.0, np.float32),
                     np.asarray(1.0, np.float32), observation)


def transition(observation: np.ndarray, reward: Any,
               discount: Any = 1.0) -> ts.TimeStep:
  """A time step inside an episode."""
  return ts.TimeStep(ts.StepType.MID, _scalar("reward", reward),
                     _scalar("discount", discount), observation)


def termination(observation: np.ndarray, reward: Any) -> ts.TimeStep:
  """The last time step of an episode that reached a terminal state
  (discount 0)."""
  return ts.TimeStep(ts.StepType.LAST, _scalar("reward", reward),
                     np.asarray(0.0, np.float32), observation)


def truncation(observation: np.ndarray, reward: Any,
               discount: Any = 1.0) -> ts.TimeStep:
  """The last time step of an episode cut short (by a time limit): it ends
  the episode but keeps its discount."""
  return ts.TimeStep(ts.StepType.LAST, _scalar("reward", reward),
                     _scalar("discount", discount), observation)


def is_last(time_step: ts.TimeStep) -> bool:
  """Whether ``time_step`` ends its episode (``StepType.LAST``)."""
  return bool(time_step.step_type == ts.StepType.LAST)
