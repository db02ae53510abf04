"""Test-wide settings: quiet TF logs, seeded and deterministic runs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
  tf.keras.utils.set_random_seed(1234)
  yield
