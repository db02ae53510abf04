"""The fault-injection hook's plan: parsed strictly, fired at the n-th pass."""

import os
import subprocess
import sys
import time

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
                       r"allowed: kill, killgroup, oserror, nan, inf, pause"),
    ("step:3:pause", "the action pause of entry 'step:3:pause' needs "
                     "SN_TF_FAULTS_PAUSED"),
])
def test_bad_plans_are_refused_naming_the_entry(fault_env, spec, match):
  fault_env(spec)
  with pytest.raises(ValueError, match=match):
    faults.hit("step")


def test_pause_writes_its_pid_and_ends_when_orphaned(tmp_path):
  """A paused run waits at its point; when its parent is gone it exits.

  The grandchild pauses at its second step; its parent (a stand-in for a Ray
  node's raylet) then exits, and the paused process must follow it out.
  """
  paused, said = str(tmp_path / "paused"), str(tmp_path / "said")
  child = (
      "import os, subprocess, sys\n"
      "p = subprocess.Popen([sys.executable, '-c', "
      "'from sn_tf import faults\\nfor _ in range(3): faults.hit(\"step\")\\n"
      f"print(\"not paused\")'], stdout=open({said!r}, 'w'), stderr=subprocess.STDOUT)\n"
      f"while not os.path.exists({paused!r}): pass\n"
      "print(p.pid, flush=True)\n")
  env = dict(os.environ, SN_TF_FAULTS="step:2:pause", SN_TF_FAULTS_PAUSED=paused)
  out = subprocess.run([sys.executable, "-c", child], env=env, check=True,
                       capture_output=True, text=True, timeout=300).stdout
  pid = int(out.split()[0])
  assert open(paused).read().split() == [str(pid)]
  deadline = time.time() + 300  # generous: only a hang fails
  while _alive(pid) and time.time() < deadline:
    time.sleep(0.2)
  assert not _alive(pid), "the paused process outlived its parent"
  assert open(said).read() == ""  # it never went past its pause


def _alive(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().split()[2] != "Z"
  except FileNotFoundError:
    return False
