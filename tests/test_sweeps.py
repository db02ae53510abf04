"""Sweep files, their expansion, and a killed-then-relaunched sweep on Ray."""

import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from sn_tf import faults
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
      capture_output=True, text=True, timeout=900)
  assert result.returncode != 0
  assert "lr='fast' is not allowed" in result.stderr
  assert not (tmp_path / "out").exists()


def _launch(sweep_file, out, faults_spec="", ray_address=""):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop(faults.ENV, None)
  env.pop("RAY_ADDRESS", None)
  if faults_spec:
    env[faults.ENV] = faults_spec
  where = [f"--ray_address={ray_address}"] if ray_address else ["--local_cpus=2"]
  # Its own session: a killgroup fault kills the driver and its embedded Ray,
  # not pytest.
  return subprocess.Popen(
      [sys.executable, os.path.join(REPO, "launchers", "sweep.py"),
       f"--sweep={sweep_file}", f"--out={out}"] + where,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
      start_new_session=True)


def _finished_names(out):
  return [r["name"] for r in sweeps.read_ledger(out) if r["status"] == "finished"]


def _run_state(root):
  """What a run has on disk: metrics.csv bytes and its complete checkpoints
  (step -> MANIFEST bytes)."""
  metrics = os.path.join(root, "metrics.csv")
  csv = open(metrics, "rb").read() if os.path.isfile(metrics) else b""
  ckpts = {}
  ckpt_dir = os.path.join(root, "checkpoints")
  if os.path.isdir(ckpt_dir):
    for name in os.listdir(ckpt_dir):
      manifest = os.path.join(ckpt_dir, name, "MANIFEST.json")
      if name.startswith("ckpt-") and os.path.isfile(manifest):
        ckpts[int(name[len("ckpt-"):])] = open(manifest, "rb").read()
  return csv, ckpts


def _csv_rows_up_to(csv, step):
  """The data rows of metrics.csv bytes with step <= ``step``, as lines."""
  lines = csv.decode().splitlines()[1:]
  return [l for l in lines if int(l.split(",")[0]) <= step]


def test_killed_sweep_relaunched_finishes_every_run_exactly_once(tmp_path):
  """A power cut of the whole sweep at a fixed point, then the same command.

  The driver (and its Ray) is SIGKILLed just before the ledger records the
  second run to end: one run is recorded as finished, at least one more has
  ended on disk without its record, the others are mid-way. Whatever the
  machine's speed, the relaunch must skip exactly the recorded run, leave its
  files untouched, resume every other run from the checkpoint it had (rows up
  to it kept byte for byte, wall times included), and record every run as
  finished exactly once.
  """
  grid = dict(env="minatar:breakout", spectral=["none", "-2"], seed=[0, 1], **TINY)
  sweep_file = write(tmp_path / "sweep_def.py", f"SWEEP = {grid!r}\n")
  out = str(tmp_path / "sweep")
  names = [r.name for r in sweeps.expand_sweep(grid, out)]
  first = _launch(sweep_file, out, faults_spec="sweep.ledger:2:killgroup")
  output, _ = first.communicate(timeout=1800)
  assert first.returncode == -signal.SIGKILL, output
  finished_before = _finished_names(out)
  assert len(finished_before) == 1, sweeps.read_ledger(out)
  before = {n: _run_state(os.path.join(out, "runs", n)) for n in names}
  ended_unrecorded = [n for n in names if n not in finished_before
                      and 600 in before[n][1]]
  assert ended_unrecorded, "the kill must land after a second run ended"

  second = _launch(sweep_file, out)
  output, _ = second.communicate(timeout=1800)
  assert second.returncode == 0, output
  assert "4 runs: 1 already complete, 3 to run" in output, output
  counts = collections.Counter(_finished_names(out))
  assert sorted(counts) == sorted(names) and set(counts.values()) == {1}, counts
  skipped = [r["name"] for r in sweeps.read_ledger(out) if r["status"] == "skipped"]
  assert skipped == finished_before
  for name in names:
    root = os.path.join(out, "runs", name)
    after = _run_state(root)
    if name in finished_before:  # not run again: nothing rewritten
      assert after == before[name], name
      continue
    # Resumed from the newest checkpoint it had: what that checkpoint covers
    # is kept as it was (a restart would rewrite the rows' wall times).
    kept = max(before[name][1], default=0)
    assert _csv_rows_up_to(after[0], kept) == _csv_rows_up_to(before[name][0], kept), name
    for step, manifest in before[name][1].items():
      if step in after[1]:
        assert after[1][step] == manifest, (name, step)
    rows = read_csv(os.path.join(root, "metrics.csv"))
    assert [int(r["step"]) for r in rows] == [150, 300, 450, 600]
    assert all(r["eval/return"] != "" and r["srank"] != "" for r in rows)
  for name in ended_unrecorded:  # already done: the resume changed nothing
    assert _run_state(os.path.join(out, "runs", name)) == before[name], name
  assert os.path.isfile(os.path.join(out, "report", "index.md"))


@pytest.fixture
def cluster():
  """A Ray cluster on this machine: a head without CPUs (the sweep's driver
  joins it) to which a test adds worker nodes; its own temp dir and ports."""
  from ray.cluster_utils import Cluster  # pylint: disable=g-import-not-at-top
  temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short socket paths
  head = Cluster(initialize_head=True, head_node_args=dict(
      num_cpus=0, temp_dir=temp_dir, include_dashboard=False))
  yield head
  head.shutdown()


def _label(node):
  return f"{node.node_ip_address}/{node.node_id[:8]}"


_TWO_RUNS = dict(env="minatar:breakout", spectral=["none", "-2"], seed=0, **TINY)


def _two_run_sweep_on(cluster, tmp_path):
  """Launches a sweep of ``_TWO_RUNS`` on ``cluster``: (its --out, process)."""
  sweep_file = write(tmp_path / "sweep_def.py", f"SWEEP = {_TWO_RUNS!r}\n")
  out = str(tmp_path / "sweep")
  return out, _launch(sweep_file, out, ray_address=cluster.address)


def test_a_sweep_on_a_cluster_spreads_over_its_nodes(tmp_path, cluster):
  """Two worker nodes of one CPU each: two runs run at once, one per node;
  each ledger record names its node, and the progress log counts runs per
  node."""
  nodes = {_label(cluster.add_node(num_cpus=1)) for _ in range(2)}
  out, proc = _two_run_sweep_on(cluster, tmp_path)
  output, _ = proc.communicate(timeout=1800)
  assert proc.returncode == 0, output
  records = [r for r in sweeps.read_ledger(out) if r["status"] == "finished"]
  assert len(records) == 2 and len({r["name"] for r in records}) == 2, records
  assert {r["node"] for r in records} == nodes, records
  assert [r["starts"] for r in records] == [1, 1], records
  log = open(os.path.join(out, sweeps.PROGRESS_LOG)).read()
  assert "2 runs: 0 already complete, 2 to run" in log
  per_node = [l for l in log.splitlines() if "; nodes: " in l]
  assert per_node and all(f"{n} 0 running 1 finished" in per_node[-1]
                          for n in nodes), log
  assert os.path.isfile(os.path.join(out, "report", "index.md"))


def test_a_node_lost_mid_run_loses_no_run(tmp_path, cluster):
  """A worker node is removed while its run is frozen at step 400 (after
  its checkpoint at 300): Ray resubmits the run to the other node, where it
  resumes from that checkpoint; every run finishes exactly once."""
  paused = str(tmp_path / "paused")
  doomed = cluster.add_node(num_cpus=1, env_vars={
      faults.ENV: "step:400:pause", faults.PAUSED_ENV: paused})
  survivor = _label(cluster.add_node(num_cpus=1))
  out, proc = _two_run_sweep_on(cluster, tmp_path)
  names = [r.name for r in sweeps.expand_sweep(_TWO_RUNS, out)]
  deadline = time.time() + 1200  # generous: only a hang fails
  while not os.path.isfile(paused) and proc.poll() is None:
    assert time.time() < deadline, "no run paused on the doomed node"
    time.sleep(0.5)
  assert proc.poll() is None, proc.communicate()[0]
  pid = open(paused).read().strip()
  while not pid:  # the file is created, then written
    pid = open(paused).read().strip()
  lost = [n for n in names
          if open(os.path.join(out, "runs", n, ".lock")).read().strip() == pid]
  assert len(lost) == 1, (pid, names)
  lost = lost[0]
  before = _run_state(os.path.join(out, "runs", lost))
  assert max(before[1]) == 300, before[1]
  cluster.remove_node(doomed)
  output, _ = proc.communicate(timeout=1800)
  assert proc.returncode == 0, output
  ledger = sweeps.read_ledger(out)
  assert not [r for r in ledger if r["status"] == "failed"], ledger
  finished = {r["name"]: r for r in ledger if r["status"] == "finished"}
  assert sorted(finished) == sorted(names) and len(ledger) == 2, ledger
  assert finished[lost]["starts"] == 2 and finished[lost]["node"] == survivor
  after = _run_state(os.path.join(out, "runs", lost))
  # Resumed from its checkpoint at 300: the rows it covers are kept as they
  # were (a restart would rewrite their wall times).
  assert _csv_rows_up_to(after[0], 300) == _csv_rows_up_to(before[0], 300)
  for step, manifest in before[1].items():  # those not since pruned
    if step in after[1]:
      assert after[1][step] == manifest, step
  rows = read_csv(os.path.join(out, "runs", lost, "metrics.csv"))
  assert [int(r["step"]) for r in rows] == [150, 300, 450, 600]


def test_a_run_that_cannot_see_the_sweep_directory_says_where(tmp_path):
  out = tmp_path / "sweep"
  out.mkdir()
  (out / sweeps.MARK).write_text("abc\n")
  sweeps._check_storage(str(out), "abc", "10.0.0.7/1a2b3c4d")  # the same file
  with pytest.raises(sweeps.SharedStorageError,
                     match=r"node 10.0.0.7/1a2b3c4d cannot see the sweep "
                           r"directory .*other as the driver wrote it.*"
                           r"No such file"):
    sweeps._check_storage(str(tmp_path / "other"), "abc", "10.0.0.7/1a2b3c4d")
  with pytest.raises(sweeps.SharedStorageError, match=r"'abc', expected 'abd'"):
    sweeps._check_storage(str(out), "abd", "10.0.0.7/1a2b3c4d")  # a stale copy


def test_a_cluster_node_without_the_sweep_directory_stops_the_sweep(tmp_path, cluster):
  """A node whose reads of --out fail (an unmounted share, simulated by the
  fault hook on that node only) stops the sweep at its first run, naming the
  node and the path; no run is recorded."""
  node = _label(cluster.add_node(num_cpus=1, env_vars={
      faults.ENV: "sweep.storage:1:oserror"}))
  out, proc = _two_run_sweep_on(cluster, tmp_path)
  output, _ = proc.communicate(timeout=1800)
  assert proc.returncode == 1, output
  assert (f"stopped: node {node} cannot see the sweep directory "
          f"{os.path.abspath(out)}") in output, output
  assert "Traceback" not in output, output
  assert sweeps.read_ledger(out) == []
  assert open(os.path.join(out, sweeps.PROGRESS_LOG)).read().count("stopped: ") == 1


def test_progress_line_counts_runs_per_node_once_there_are_two():
  starts = [("a", "n1"), ("b", "n2"), ("c", "n1"), ("a", "n2")]  # a resubmitted
  line = sweeps._progress_line(starts, {"b": "n2"}, ["b"], {}, ["a", "c", "d"],
                               4, 120.0)
  assert line == ("[1/4] finished 1, running 2, waiting 1, failed 0; elapsed "
                  "2.0 min, ETA 6.0 min; nodes: n1 1 running 0 finished, "
                  "n2 1 running 1 finished")
  one_node = sweeps._progress_line([("a", "n1")], {}, [], {}, ["a", "b"], 2, 60.0)
  assert one_node == ("[0/2] finished 0, running 1, waiting 1, failed 0; "
                      "elapsed 1.0 min")


class _RefusingRay:
  """``init`` fails as Ray 2.60 does: a ConnectionError raised while
  handling the GCS client's RuntimeError (caused by ``cause``)."""

  def __init__(self, cause):
    self.cause = cause

  def init(self, **kwargs):
    try:
      try:
        raise self.cause
      except Exception as e:
        raise RuntimeError("Failed to connect to GCS.") from e
    except RuntimeError:
      raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}")


class AuthenticationError(Exception):  # named as Ray's
  pass


def test_a_refused_driver_is_told_why_in_one_line():
  with socket.socket() as head:  # something answers at the address
    head.bind(("127.0.0.1", 0))
    head.listen()
    address = "127.0.0.1:%d" % head.getsockname()[1]
    with pytest.raises(sweeps.ClusterError,
                       match=rf"^cannot join the Ray cluster at {address}: the "
                             r"cluster refused this driver's authentication "
                             r"token; run with RAY_AUTH_MODE=token"):
      sweeps.join_cluster(_RefusingRay(AuthenticationError(
          "RPC error: InvalidAuthToken")), address)
  with pytest.raises(sweeps.ClusterError,
                     match=r"^cannot join the Ray cluster at auto: "
                           r"ConnectionError: Failed to connect to Ray cluster "
                           r"at auto \(is the cluster running"):
    sweeps.join_cluster(_RefusingRay(TimeoutError("deadline")), "auto")
  with socket.socket() as s:  # a port nobody listens on
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  with pytest.raises(sweeps.ClusterError,
                     match=rf"^cannot join the Ray cluster at 127.0.0.1:{port}: "
                           r"nothing answers there \(Connection refused\)"):
    sweeps.join_cluster(_RefusingRay(AssertionError("not reached")),
                        f"127.0.0.1:{port}")


class _FakeRay:
  """``init`` raises ``errors`` in turn, then succeeds; counts shutdowns."""

  def __init__(self, *errors):
    self.errors = list(errors)
    self.inits = 0
    self.shutdowns = 0

  def init(self, **kwargs):
    self.inits += 1
    assert kwargs["num_cpus"] == 2
    if self.errors:
      raise self.errors.pop(0)

  def shutdown(self):
    self.shutdowns += 1


_TIMEOUT = Exception("The current node timed out during startup. This could "
                     "happen because some of the raylet failed to startup or "
                     "the GCS has become overloaded.")


def test_local_ray_start_is_retried_only_when_ray_timed_out():
  said = []
  ray = _FakeRay(_TIMEOUT, _TIMEOUT)
  sweeps.start_local_ray(ray, 2, said.append)
  assert (ray.inits, ray.shutdowns) == (3, 2)
  assert len(said) == 2 and "attempt 1 of 3" in said[0]

  ray = _FakeRay(*[_TIMEOUT] * sweeps.LOCAL_RAY_START_ATTEMPTS)
  with pytest.raises(RuntimeError, match="did not start in 3 attempts"):
    sweeps.start_local_ray(ray, 2, said.append)
  assert ray.inits == sweeps.LOCAL_RAY_START_ATTEMPTS

  ray = _FakeRay(ValueError("bad num_cpus"))  # any other error: no retry
  with pytest.raises(ValueError, match="bad num_cpus"):
    sweeps.start_local_ray(ray, 2, said.append)
  assert (ray.inits, ray.shutdowns) == (1, 0)
