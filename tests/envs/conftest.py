"""Helpers shared by the environment tests."""

from typing import List, Sequence, Tuple

import numpy as np
import pytest

Record = Tuple[int, float, float, bytes]


def drive_env(env, actions: Sequence[int]) -> List[Record]:
  """Steps ``env`` through ``actions``: (type, reward, discount, obs) each."""
  out = []
  for action in actions:
    step = env.step(np.int32(action))
    out.append((int(step.step_type), float(step.reward), float(step.discount),
                step.observation.tobytes()))
  return out


@pytest.fixture
def drive():
  return drive_env


@pytest.fixture
def actions():
  """A fixed stream of random action indices in [0, n)."""
  def make(n: int, count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, count)
  return make
