"""requirements/lock.txt is what setup.cfg asks for (a stale lock fails here).

`make install` installs the lock with --no-deps, so a requirement added to
setup.cfg but not locked would silently be missing; `make lock` refreshes it.
"""

import configparser
import os
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup_requirements():
  config = configparser.ConfigParser()
  config.read(os.path.join(REPO, "setup.cfg"))
  lines = config["options"]["install_requires"].splitlines()
  extras = config["options.extras_require"]
  lines += extras["cpu"].splitlines() + extras["test"].splitlines()
  return [Requirement(l) for l in (l.split("#")[0].strip() for l in lines) if l]


def _lock():
  """name -> [version, ...] (a name may be locked per Python version)."""
  locked = {}
  with open(os.path.join(REPO, "requirements", "lock.txt")) as f:
    for line in f:
      m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", line)
      if m:
        locked.setdefault(canonicalize_name(m.group(1)), []).append(m.group(2))
  return locked


def test_every_requirement_is_locked_at_a_version_it_allows():
  locked = _lock()
  requirements = _setup_requirements()
  assert len(requirements) >= 15
  for req in requirements:
    name = canonicalize_name(req.name)
    assert name in locked, f"{req} is not in requirements/lock.txt; run make lock"
    for version in locked[name]:
      assert req.specifier.contains(version, prereleases=True), (
          f"lock has {name}=={version}, setup.cfg asks {req}; run make lock")


def test_the_overridden_pins_are_the_overrides():
  locked = _lock()
  assert locked[canonicalize_name("tf-agents")] == ["0.19.0"]
  assert locked[canonicalize_name("tensorflow-probability")] == ["0.25.0"]
  assert locked[canonicalize_name("gym")] == ["0.23.1"]
  assert "pygame" not in locked  # TF-Agents' pin, dropped (no 3.12 wheel)
  assert "tensorflow" not in locked  # tensorflow-cpu provides the module
  assert locked[canonicalize_name("tensorflow-cpu")] == ["2.21.0"]
