"""The fault-injection hook's plan: parsed strictly, fired at the n-th pass."""

import pytest

from sn_tf import faults


def test_value_fault_fires_at_the_nth_pass_only(fault_env):
  fault_env("loss:3:nan,rho:1:inf")
  assert [faults.value("loss", 1.0) for _ in range(2)] == [1.0, 1.0]
  assert faults.value("loss", 1.0) != faults.value("loss", 1.0)  # NaN, then 1.0
  assert faults.value("rho", 2.0) == float("inf")
  assert faults.value("sigma", 3.0) == 3.0  # not in the plan


def test_oserror_fault_raises_at_the_nth_pass(fault_env):
  fault_env("csv:2:oserror")
  faults.hit("csv")
  with pytest.raises(OSError, match="injected fault at csv"):
    faults.hit("csv")
  faults.hit("csv")


@pytest.mark.parametrize("spec,match", [
    ("step", "malformed entry 'step'"),
    ("step:x", "malformed entry 'step:x'"),
    ("step:3:explode", r"action 'explode' of entry 'step:3:explode' is unknown; "
                       r"allowed: kill, killgroup, oserror, nan, inf"),
])
def test_bad_plans_are_refused_naming_the_entry(fault_env, spec, match):
  fault_env(spec)
  with pytest.raises(ValueError, match=match):
    faults.hit("step")
