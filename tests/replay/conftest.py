"""Helpers shared by the replay buffer tests."""

from typing import Dict

import numpy as np
import pytest


def read_file_contents(path) -> Dict[str, np.ndarray]:
  """Every entry of the ``.npz`` file at ``path``, by name."""
  with np.load(path, allow_pickle=False) as data:
    return {key: data[key] for key in data.files}


def check_same_batches(a, b, num: int = 5, batch_size: int = 50) -> None:
  """``a`` and ``b`` draw ``num`` identical batches (values and dtypes)."""
  for _ in range(num):
    batch_a, batch_b = a.sample(batch_size), b.sample(batch_size)
    assert batch_a.keys() == batch_b.keys()
    for key in batch_a:
      np.testing.assert_array_equal(batch_a[key], batch_b[key])
      assert batch_a[key].dtype == batch_b[key].dtype


@pytest.fixture
def file_contents():
  return read_file_contents


@pytest.fixture
def assert_same_batches():
  return check_same_batches
