"""Fixtures of the fault suite."""

import pytest

from fault_helpers import train_process


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
  """An uninterrupted run of the tiny config, in its own process."""
  root = str(tmp_path_factory.mktemp("reference") / "run")
  result = train_process(root)
  assert result.returncode == 0, result.stderr
  return root
