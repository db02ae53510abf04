"""Fixtures of the fault suite."""

import pytest

from fault_helpers import train_process
from sn_tf import faults


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
  """An uninterrupted run of the tiny config, in its own process."""
  root = str(tmp_path_factory.mktemp("reference") / "run")
  result = train_process(root)
  assert result.returncode == 0, result.stderr
  return root


@pytest.fixture
def fault_env(monkeypatch):
  """Sets ``SN_TF_FAULTS`` for in-process runs, resetting the hook state."""
  def set_spec(spec):
    monkeypatch.setenv(faults.ENV, spec)
    faults.reset()
  yield set_spec
  monkeypatch.delenv(faults.ENV, raising=False)
  faults.reset()
