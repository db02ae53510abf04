"""Bad input across every launcher: refused before any work, naming the flag
or file and what is allowed; exported policies load in a fresh process."""

import json
import os
import subprocess
import sys

import pytest

from fault_helpers import REPO


def launch(script, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, os.path.join(REPO, "launchers", script),
                         *args], capture_output=True, text=True, env=env,
                        timeout=600)


# (launcher, flags, message). {policy}: an exported MinAtar Breakout policy;
# {tmp}: an empty directory; {out}: a path that must not be created.
CASES = [
    ("train.py", ["--env=minatar:pong", "--root_dir={out}"],
     "--env='minatar:pong' is not allowed; unknown MinAtar game 'pong'"),
    ("train.py", ["--env=atari:Pongg", "--root_dir={out}"], "--env='atari:Pongg' is not allowed"),
    ("train.py", ["--env=minatar:breakout", "--root_dir={out}", "--num_steps=-5"],
     "--num_steps=-5 is not allowed; an integer >= 1"),
    ("train.py", ["--env=minatar:breakout", "--root_dir={out}", "--spectral=-1;-2"],
     "malformed item"),
    ("train.py", ["--env=minatar:breakout", "--root_dir={out}", "--spectral=-2",
                  "--scheduler=divgrad"], "--scheduler"),
    ("train.py", ["--env=minatar:breakout", "--root_dir={out}", "--scheduler=muleps",
                  "--optimizer=sgd"], "muleps"),
    ("evaluate.py", ["--policy_dir={tmp}"], "is not a SavedModel directory"),
    ("evaluate.py", ["--policy_dir={policy}", "--env=minatar:seaquest"],
     "minatar:seaquest"),
    ("evaluate.py", ["--policy_dir={policy}", "--env=minatar:nope"],
     "--env='minatar:nope' is not allowed; unknown MinAtar game 'nope'"),
    ("evaluate.py", ["--policy_dir={policy}", "--episodes=0"],
     "--episodes=0 is not allowed; an integer >= 1"),
    ("plot.py", ["--runs={tmp}", "--out={out}/c.png"], "has no metrics.csv"),
    ("aggregate.py", ["--runs_dir={tmp}", "--out={out}"], "no run directories"),
    ("reproduce.py", ["--study=layers", "--budget=tiny", "--out={out}"],
     "--budget='tiny' is not allowed"),
    ("reproduce.py", ["--study=layers", "--num_steps=0", "--out={out}"],
     "num_steps=0 is not allowed"),
    ("reproduce.py", ["--agent=c51", "--budget=tiny", "--out={out}"],
     "--budget='tiny' is not allowed"),
    ("reproduce.py", ["--agent=c51", "--num_steps=0", "--out={out}"],
     "num_steps=0 is not allowed"),
    ("reproduce.py", ["--out={out}"], "--study=None is not allowed"),
    ("sweep.py", ["--sweep={tmp}/none.yaml", "--out={out}"], "does not exist"),
    ("sweep.py", ["--sweep={policy}/sn_tf_policy.json", "--out={out}"],
     "allowed: a .yaml, .yml or .py file"),
    ("sweep.py", ["--sweep=x.yaml", "--out={out}", "--cpus_per_run=0"],
     "--cpus_per_run=0.0 is not allowed"),
]




def _params():
  """The first case of each launcher runs in ``make test``, all in test-faults."""
  seen, params = set(), []
  for script, args, message in CASES:
    marks = [pytest.mark.faults_full] if script in seen else []
    seen.add(script)
    params.append(pytest.param(script, args, message, marks=marks,
                               id=f"{script}:{' '.join(args)}"))
  return params


@pytest.mark.parametrize("script,args,message", _params())
def test_bad_input_is_refused_before_any_work(script, args, message, tmp_path,
                                              reference_run):
  policy = os.path.join(reference_run, "policies", "final")
  empty = tmp_path / "empty"
  empty.mkdir()
  out = tmp_path / "out"
  args = [a.format(policy=policy, tmp=empty, out=out) for a in args]
  result = launch(script, *args)
  assert result.returncode != 0
  assert message in result.stderr, result.stderr[-2000:]
  assert not out.exists()


def test_step_and_final_exports_load_fresh_and_evaluate_deterministically(
    reference_run):
  outs = {}
  for name in ("step_200", "final"):
    policy = os.path.join(reference_run, "policies", name)
    runs = [launch("evaluate.py", f"--policy_dir={policy}", "--episodes=3",
                   "--seed=5", "--json") for _ in range(2)]
    for r in runs:
      assert r.returncode == 0, r.stderr
    results = [json.loads(r.stdout.strip().splitlines()[-1]) for r in runs]
    assert results[0] == results[1]
    outs[name] = results[0]
  assert outs["step_200"]["train_step"] < outs["final"]["train_step"]
