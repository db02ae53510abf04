"""Sweep files, their expansion, and a killed-then-relaunched sweep on Ray."""

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sn_tf import sweeps
from sn_tf.logs import read_csv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(num_steps=600, eval_every=150, eval_episodes=2, learning_starts=100,
            replay_capacity=500, batch_size=8, epsilon_decay_steps=100,
            eval_max_episode_steps=100, target_update_period=50, log_every=50,
            measure_states=16)


def write(path, text):
  with open(path, "w") as f:
    f.write(text)
  return str(path)


def test_yaml_grid_ranges_scalars_and_names(tmp_path):
  path = write(tmp_path / "s.yaml", "env: [minatar:breakout, minatar:asterix]\n"
               "spectral: [none, -2]\nseed: [0..2]\nnum_steps: 1000\n")
  plan = sweeps.expand_sweep(sweeps.load_sweep(path), str(tmp_path / "out"))
  assert len(plan) == 2 * 2 * 3
  names = [r.name for r in plan]
  assert names[0] == "env=minatar_breakout,spectral=none,seed=0"
  assert "env=minatar_asterix,spectral=-2,seed=2" in names
  run = plan[names.index("env=minatar_asterix,spectral=-2,seed=2")]
  assert run.config.spectral == "-2"  # YAML's int -2 read back as the spec
  assert run.config.num_steps == 1000 and run.config.seed == 2
  assert run.config.root_dir == os.path.join(str(tmp_path / "out"), "runs", run.name)
  # Same file, same directories.
  again = sweeps.expand_sweep(sweeps.load_sweep(path), str(tmp_path / "out"))
  assert [r.config for r in again] == [r.config for r in plan]


def test_list_of_grids_is_a_union_named_by_what_differs(tmp_path):
  path = write(tmp_path / "s.py", "SWEEP = [\n"
               "  dict(env='minatar:breakout', spectral=['none', '-2'], seed=0),\n"
               "  dict(env='minatar:breakout', scheduler='divgrad', seed=0),\n]\n")
  plan = sweeps.expand_sweep(sweeps.load_sweep(path), str(tmp_path))
  assert [r.name for r in plan] == [
      "env=minatar_breakout,spectral=none,scheduler=none",
      "env=minatar_breakout,spectral=-2,scheduler=none",
      "env=minatar_breakout,spectral=none,scheduler=divgrad"]


BAD = [
    ("s.yaml", "env: minatar:breakout\nspectrall: [-2]\n", r"sweep key 'spectrall' is unknown"),
    ("s.yaml", "env: minatar:breakout\nseed: []\n", r"sweep key 'seed' has an empty list"),
    ("s.yaml", "{}\n", r"the sweep grid is empty"),
    ("s.yaml", "[]\n", r"the sweep is empty"),
    ("s.yaml", "", r"allowed: a mapping of config fields"),
    ("s.yaml", "spectral: [-2]\n", r"sweep key 'env' is missing"),
    ("s.yaml", "env: minatar:breakout\nroot_dir: /tmp/x\n", r"sweep key 'root_dir' is not allowed"),
    ("s.yaml", "env: minatar:breakout\nseed: [3..1]\n", r"sweep key 'seed': empty range '3..1'"),
    ("s.yaml", "env: [minatar:breakout, minatar:brekout]\n",
     r"env='minatar:brekout' is not allowed; unknown MinAtar game"),
    ("s.yaml", "env: minatar:breakout\nnum_steps: [100, -5]\n", r"num_steps=-5 is not allowed"),
    ("s.yaml", "env: minatar:breakout\nspectral: -2\nscheduler: divgrad\n",
     r"scheduler"),
    ("s.yaml", "env: [minatar:breakout, minatar:breakout]\n", r"lists the run .* twice"),
    ("s.yaml", "env: [unclosed\n", r"is not valid YAML"),
    ("s.txt", "env: minatar:breakout\n", r"allowed: a .yaml, .yml or .py file"),
    ("s.py", "GRID = {}\n", r"defines no dict SWEEP"),
]


@pytest.mark.parametrize("name,text,match", BAD)
def test_bad_sweep_files_are_refused_naming_the_key(tmp_path, name, text, match):
  path = write(tmp_path / name, text)
  with pytest.raises(ValueError, match=match):
    sweeps.expand_sweep(sweeps.load_sweep(path), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_sweep_launcher_refuses_a_bad_file_before_any_work(tmp_path):
  path = write(tmp_path / "s.yaml", "env: minatar:breakout\nlr: [0.1, fast]\n")
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "launchers", "sweep.py"),
       f"--sweep={path}", f"--out={tmp_path / 'out'}"],
      capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "lr='fast' is not allowed" in result.stderr
  assert not (tmp_path / "out").exists()


def _ledger(out):
  path = os.path.join(out, sweeps.LEDGER)
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]


def _launch(sweep_file, out):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "launchers", "sweep.py"),
       f"--sweep={sweep_file}", f"--out={out}", "--local_cpus=2"],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
      start_new_session=True)


def test_killed_sweep_relaunched_finishes_every_run_exactly_once(tmp_path):
  grid = dict(env="minatar:breakout", spectral=["none", "-2"], seed=[0, 1], **TINY)
  sweep_file = write(tmp_path / "sweep_def.py", f"SWEEP = {grid!r}\n")
  out = str(tmp_path / "sweep")
  first = _launch(sweep_file, out)
  deadline = time.time() + 600
  while time.time() < deadline and first.poll() is None:
    if any(r["status"] == "finished" for r in _ledger(out)):
      break
    time.sleep(0.5)
  assert first.poll() is None, first.stdout.read()  # killed mid-way, not done
  os.killpg(first.pid, signal.SIGKILL)  # the driver and its embedded Ray
  first.wait()
  finished_before = [r["name"] for r in _ledger(out) if r["status"] == "finished"]
  assert 1 <= len(finished_before) < 4

  second = _launch(sweep_file, out)
  output, _ = second.communicate(timeout=900)
  assert second.returncode == 0, output
  assert f"4 runs: {len(finished_before)} already complete" in output
  ledger = _ledger(out)
  counts = collections.Counter(r["name"] for r in ledger if r["status"] == "finished")
  names = [r.name for r in sweeps.expand_sweep(grid, out)]
  assert sorted(counts) == sorted(names) and set(counts.values()) == {1}
  for name in names:
    rows = read_csv(os.path.join(out, "runs", name, "metrics.csv"))
    assert [int(r["step"]) for r in rows] == [150, 300, 450, 600]
    assert all(r["eval/return"] != "" and r["srank"] != "" for r in rows)
  assert os.path.isfile(os.path.join(out, "report", "index.md"))
