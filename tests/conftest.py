"""Test-wide settings: quiet TF logs, seeded and deterministic runs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import sn_tf  # noqa: E402,F401  (Keras 2 as tf.keras, before TensorFlow loads)
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
  tf.keras.utils.set_random_seed(1234)
  yield


@pytest.fixture
def fault_env(monkeypatch):
  """Sets ``SN_TF_FAULTS`` for in-process runs, resetting the hook state."""
  from sn_tf import faults  # pylint: disable=g-import-not-at-top

  def set_spec(spec):
    monkeypatch.setenv(faults.ENV, spec)
    faults.reset()
  yield set_spec
  monkeypatch.delenv(faults.ENV, raising=False)
  faults.reset()
