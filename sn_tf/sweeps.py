"""Sweeps: a grid of training configs run as Ray tasks, resumable.

A sweep file (YAML, or Python defining ``SWEEP``) maps ``TrainConfig`` fields
(and ``preset``) to a list of values to sweep or a single fixed value; a list
of such grids is the union of their products:

    env: [minatar:breakout, minatar:asterix]
    spectral: [none, "-2"]
    scheduler: [none, divgrad]
    seed: [0..9]          # an inclusive integer range
    num_steps: 250000

``expand_sweep`` turns it into named runs, every config validated before any
work. ``run_plan`` runs named configs as Ray tasks (Agarwal-style sweeps of
thousands of runs on one machine or a cluster, with Ray doing the
scheduling): each run in its own worker process (``max_calls=1``), its output
in ``<out>/logs/<name>.log``, its ``root_dir`` under ``<out>/runs/``. A rerun
skips complete runs and resumes the others from their checkpoints; a failed
run is reported with its log and does not stop the others; Ctrl-C cancels the
tasks (their checkpoints are atomic) and the next launch resumes.

On a cluster (``ray_address``) ``<out>`` must be on storage every node
mounts at the same path: each run first checks that it sees the mark the
driver wrote there (``<out>/.sweep_mark``), and the first run that does not
stops the sweep with its node and the path. A run whose worker process or
node dies is resubmitted by Ray (``RUN_RETRIES``) and resumes from its
checkpoint. The progress lines (per node, on a cluster) also go to
``<out>/progress.log``.

``<out>/sweep_ledger.jsonl`` records each run as it ends (finished, failed,
or skipped by a relaunch; a finished run with the node it finished on and how
many times it started). A relaunch skips exactly the runs the ledger
records as complete (and whose ``metrics.csv`` reaches ``num_steps``); every
other run is resumed from its newest checkpoint, which for a run killed after
its last checkpoint but before its ledger record only confirms it is done.
"""

import dataclasses
import itertools
import json
import os
import re
import runpy
import socket
import sys
import time
import traceback
import typing
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from sn_tf import faults
from sn_tf.config import FIELDS, TrainConfig, make_config
from sn_tf.run_dir import RunDirectory

LEDGER = "sweep_ledger.jsonl"
# The driver writes a fresh id here; each run checks it sees the same file.
MARK = ".sweep_mark"
# The driver's progress lines, also kept as plain text.
PROGRESS_LOG = "progress.log"
# Ray resubmits a run whose worker process or node died (not one that
# raised) up to this many times; the new attempt resumes from the run's
# newest checkpoint.
RUN_RETRIES = 3
# Fields a sweep never sets: the sweep names the run directories.
RESERVED = ("root_dir",)


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  """One run of a sweep: its name (a relative path) and its config."""
  name: str
  config: TrainConfig


# ------------------------------------------------------------ sweep files

def load_sweep(path: str) -> Any:
  """The grid (or list of grids) in a ``.yaml``/``.yml`` or ``.py`` file."""
  if not os.path.isfile(path):
    raise ValueError(f"sweep file {path!r} does not exist.")
  if path.endswith((".yaml", ".yml")):
    import yaml  # pylint: disable=g-import-not-at-top
    with open(path) as f:
      try:
        grid = yaml.safe_load(f)
      except yaml.YAMLError as e:
        raise ValueError(f"sweep file {path!r} is not valid YAML: {e}") from None
  elif path.endswith(".py"):
    grid = runpy.run_path(path).get("SWEEP")
    if grid is None:
      raise ValueError(f"sweep file {path!r} defines no dict SWEEP.")
  else:
    raise ValueError(f"sweep file {path!r}: allowed: a .yaml, .yml or .py file.")
  if not isinstance(grid, (dict, list)):
    raise ValueError(f"sweep file {path!r}: allowed: a mapping of config "
                     f"fields to values, or a list of them; got "
                     f"{type(grid).__name__}.")
  return grid


_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def _values(key: str, value: Any) -> List[Any]:
  """The swept values of one key (a scalar is one value; ``a..b`` a range)."""
  values = value if isinstance(value, list) else [value]
  out = []
  for v in values:
    m = _RANGE.match(v) if isinstance(v, str) else None
    if m:
      lo, hi = int(m.group(1)), int(m.group(2))
      if hi < lo:
        raise ValueError(f"sweep key {key!r}: empty range {v!r}.")
      out.extend(range(lo, hi + 1))
    else:
      out.append(v)
  if not out:
    raise ValueError(f"sweep key {key!r} has an empty list of values; give at "
                     "least one.")
  return out


def _coerce(key: str, value: Any) -> Any:
  """YAML reads ``-2`` as an int; string fields get strings back."""
  hint = typing.get_type_hints(TrainConfig).get(key)
  if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
    return str(value)
  return value


def _format(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return "-".join(str(v) for v in value)
  return str(value)


def run_name(fields: Dict[str, Any]) -> str:
  """A directory name from swept fields: ``env=minatar_breakout,seed=0``."""
  parts = [f"{k}={_format(v)}" for k, v in fields.items()]
  name = ",".join(parts) or "run"
  return re.sub(r"[^A-Za-z0-9=,._-]", "_", name)


def _check_keys(grid: Dict[str, Any]) -> None:
  if not isinstance(grid, dict):
    raise ValueError(f"a sweep grid must be a mapping of config fields to "
                     f"values, got {type(grid).__name__}.")
  if not grid:
    raise ValueError("the sweep grid is empty; give at least env.")
  for key in grid:
    if key in RESERVED:
      raise ValueError(f"sweep key {key!r} is not allowed: the sweep sets "
                       "each run's root_dir under its output directory.")
    if key != "preset" and key not in FIELDS:
      raise ValueError(f"sweep key {key!r} is unknown; allowed: preset, "
                       + ", ".join(k for k in FIELDS if k not in RESERVED) + ".")
  if "env" not in grid:
    raise ValueError("sweep key 'env' is missing; every run needs an env.")


def expand_sweep(grids: Any, out_dir: str) -> List[PlannedRun]:
  """Every combination of a grid (or of each grid in a list) as runs.

  A list of grids is the union of their products, for combinations a single
  product cannot express (e.g. SN runs and scheduler runs, which cannot share
  layers). Runs are named by ``env`` and the keys whose value differs across
  the runs, so a sweep file always gives the same directories.

  Raises:
    ValueError: naming the key for unknown keys, empty lists, bad values and
      impossible combinations; an empty grid or list.
  """
  if isinstance(grids, dict):
    grids = [grids]
  if not isinstance(grids, list) or not grids:
    raise ValueError("the sweep is empty; give a grid (a mapping) or a "
                     "non-empty list of grids.")
  combos = []  # (values dict incl. env/preset)
  for grid in grids:
    _check_keys(grid)
    axes = {k: [_coerce(k, v) for v in _values(k, grid[k])] for k in grid}
    combos += [dict(zip(axes, c)) for c in itertools.product(*axes.values())]
  configs = []
  for values in combos:
    values = dict(values)
    env = values.pop("env")
    preset = values.pop("preset", None)  # None: make_config's default
    try:
      configs.append(make_config(env, "unset", preset, **values))
    except ValueError as e:
      shown = ", ".join(f"{k}={v!r}" for k, v in dict(values, env=env).items())
      raise ValueError(f"sweep run ({shown}): {e}") from None
  keys = list(dict.fromkeys(k for g in grids for k in g))
  as_dicts = [dataclasses.asdict(c) for c in configs]
  named = [k for k in keys if k == "env" or
           len({json.dumps(d[k], sort_keys=True) for d in as_dicts}) > 1]
  out_dir = os.path.abspath(out_dir)
  plan, seen = [], set()
  for config, d in zip(configs, as_dicts):
    name = run_name({k: d[k] for k in named})
    if name in seen:
      raise ValueError(f"the sweep lists the run {name!r} twice; make the "
                       "swept values distinct.")
    seen.add(name)
    plan.append(PlannedRun(name, dataclasses.replace(
        config, root_dir=os.path.join(out_dir, "runs", name))))
  return plan


# ------------------------------------------------------------------ running

class SweepError(RuntimeError):
  """The sweep cannot go on; the message says why, for the user."""


class SharedStorageError(SweepError):
  """A run's node cannot see the sweep directory (a cluster without shared
  storage for ``--out``)."""


class ClusterError(SweepError):
  """The driver could not join the Ray cluster at ``ray_address``."""


def _node_label(ray) -> str:
  """This Ray node as ``<ip>/<first 8 hex digits of its id>``."""
  return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


def _check_storage(out_dir: str, mark: str, node: str) -> None:
  """Raises SharedStorageError unless ``out_dir`` holds the driver's mark."""
  path = os.path.join(out_dir, MARK)
  try:
    faults.hit("sweep.storage")
    with open(path) as f:
      seen = f.read().strip()
  except OSError as e:
    seen = f"unreadable ({e.strerror or e})"
  if seen != mark:
    raise SharedStorageError(
        f"node {node} cannot see the sweep directory {out_dir} as the driver "
        f"wrote it ({path}: {seen!r}, expected {mark!r}); on a cluster --out "
        "must be on storage every node mounts at the same path.")


def _train_task(config_json: str, log_path: str, name: str, tracker,
                out_dir: str, mark: str) -> Dict[str, Any]:
  """A Ray task: trains one config in this (dedicated) worker process.

  Returns ``{"step", "eval/return", "node"}``.
  """
  import ray  # pylint: disable=g-import-not-at-top
  node = _node_label(ray)
  tracker.started.remote(name, node)
  _check_storage(out_dir, mark, node)
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  sys.stdout.flush()
  sys.stderr.flush()
  os.dup2(fd, 1)  # Python and TensorFlow's C++ output both go to the log
  os.dup2(fd, 2)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  print(f"[node {node}] {name}", flush=True)
  try:
    from sn_tf.train import train  # pylint: disable=g-import-not-at-top
    result = train(TrainConfig.from_json(config_json))
  except BaseException:
    traceback.print_exc()  # into the run's log; Ray reports the error too
    sys.stderr.flush()
    raise
  print(f"eval/return={result.get('eval/return')} at step {result.get('step')}",
        flush=True)
  return {"step": result.get("step"), "eval/return": result.get("eval/return"),
          "node": node}


class _Tracker:
  """A Ray actor the tasks tell when (and on which node) they start."""

  def __init__(self):
    self._started = []

  def started(self, name: str, node: str) -> None:
    self._started.append((name, node))

  def starts(self) -> List[Tuple[str, str]]:
    """``(name, node)`` of every start so far, a resubmitted run's included."""
    return list(self._started)


def _append_ledger(out_dir: str, record: Dict[str, Any]) -> None:
  faults.hit("sweep.ledger")
  with open(os.path.join(out_dir, LEDGER), "a") as f:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_ledger(out_dir: str) -> List[Dict[str, Any]]:
  """The records of ``out_dir``'s ledger, oldest first ([] without one).

  A line cut short by a kill mid-write is ignored (the run it would have
  recorded is resumed, which is harmless).
  """
  path = os.path.join(out_dir, LEDGER)
  if not os.path.isfile(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return records


def recorded_complete(out_dir: str) -> Set[str]:
  """Names the ledger records as finished (or skipped as complete)."""
  return {r.get("name") for r in read_ledger(out_dir)
          if r.get("status") in ("finished", "skipped")}


# Ray waits a fixed 30 s for a new local node's raylet to register; on a
# machine busy with other work that wait can run out although nothing is
# wrong.
_RAY_STARTUP_TIMEOUT = "timed out during startup"
LOCAL_RAY_START_ATTEMPTS = 3


def start_local_ray(ray, num_cpus: int, echo: Callable[[str], None]) -> None:
  """Starts an embedded local Ray with ``num_cpus`` CPUs, retrying (up to
  ``LOCAL_RAY_START_ATTEMPTS`` times in all, each after ``ray.shutdown()``)
  only when Ray's own startup wait ran out; any other error is raised as is.
  A timed-out attempt's Ray processes share this process's fate (Ray's
  default on Linux) and end with it.

  Raises:
    RuntimeError: if every attempt timed out.
  """
  for attempt in range(1, LOCAL_RAY_START_ATTEMPTS + 1):
    try:
      # "local": never attach to another Ray found on this machine.
      ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
               log_to_driver=False, configure_logging=False)
      return
    except Exception as e:  # pylint: disable=broad-except  (Ray raises Exception)
      if _RAY_STARTUP_TIMEOUT not in str(e):
        raise
      ray.shutdown()
      if attempt == LOCAL_RAY_START_ATTEMPTS:
        raise RuntimeError(
            f"Ray's local node did not start in {attempt} attempts (Ray waits "
            f"30 s each time for its raylet; is the machine overloaded?): "
            f"{e}") from e
      echo(f"Ray's local node timed out during startup (attempt {attempt} of "
           f"{LOCAL_RAY_START_ATTEMPTS}; the machine may be busy): retrying.")


def join_cluster(ray, address: str) -> None:
  """Joins the Ray cluster at ``address`` as the sweep's driver.

  Raises:
    ClusterError: Ray could not connect; the message says whether the
      cluster refused this driver's authentication token.
  """
  host, _, port = address.rpartition(":")
  if host and port.isdigit():  # Ray itself would retry for many minutes
    try:
      socket.create_connection((host, int(port)), timeout=30).close()
    except OSError as e:
      raise ClusterError(
          f"cannot join the Ray cluster at {address}: nothing answers there "
          f"({e.strerror or e}); is the cluster running, and is the address "
          "its head node's <ip>:<port>?") from e
  try:
    ray.init(address=address, log_to_driver=False, configure_logging=False)
  except (ConnectionError, RuntimeError) as e:
    causes, x = [], e
    while x is not None and len(causes) < 10:
      causes.append(f"{type(x).__name__}: {x}")
      x = x.__cause__ or x.__context__
    if any("AuthToken" in c or "AuthenticationError" in c for c in causes):
      why = ("the cluster refused this driver's authentication token; run with "
             "RAY_AUTH_MODE=token and the cluster's token (~/.ray/auth_token, "
             "or RAY_AUTH_TOKEN_PATH)")
    else:
      why = (f"{causes[0]} (is the cluster running, and is the address its "
             "head node's <ip>:<port>?)")
    raise ClusterError(f"cannot join the Ray cluster at {address}: {why}") from e


def run_plan(plan: Sequence[PlannedRun], out_dir: str, *,
             ray_address: Optional[str] = None, num_cpus: Optional[int] = None,
             cpus_per_run: float = 1, gpus_per_run: float = 0,
             report: bool = True, progress_every: float = 30.0,
             echo: Callable[[str], None] = print) -> Dict[str, Any]:
  """Runs ``plan`` as Ray tasks; returns what finished, failed, was skipped.

  Args:
    plan: named configs (their ``root_dir`` under ``out_dir/runs``).
    out_dir: the sweep directory (``runs/``, ``logs/``, the ledger, report).
    ray_address: ``None``/``""`` starts an embedded local Ray with
      ``num_cpus`` CPUs (default: all cores); ``"<head ip>:<port>"`` or
      ``"auto"`` (from a node of the cluster) joins an existing cluster
      (``out_dir`` must then be on a file system every node mounts at the
      same path).
    cpus_per_run, gpus_per_run: Ray resources of one run.
    report: write ``sn_tf.analysis.report``'s report into
      ``out_dir/report`` when every run is complete.

  Returns:
    ``{"finished": [...], "skipped": [...], "failed": {name: log}, "report":
    index path or None, "wall_time": seconds}``.

  Raises:
    ClusterError: the driver could not join the cluster at ``ray_address``.
    SharedStorageError: a run's node cannot see ``out_dir``.
  """
  import ray  # pylint: disable=g-import-not-at-top
  if cpus_per_run <= 0 or gpus_per_run < 0:
    raise ValueError(f"cpus_per_run={cpus_per_run!r} must be > 0 and "
                     f"gpus_per_run={gpus_per_run!r} >= 0.")
  if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
    raise ValueError(f"num_cpus={num_cpus!r} is not allowed; an integer >= 1.")
  start = time.time()
  out_dir = os.path.abspath(out_dir)
  os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)
  echo = _also_logged(echo, os.path.join(out_dir, PROGRESS_LOG))
  # The ledger, written only after a run's train() returned, is what counts:
  # a run killed between its last metrics row and its ledger record is
  # resumed (a no-op past its final checkpoint), never skipped unrecorded.
  # The metrics check keeps a run whose budget was raised from being skipped.
  recorded = recorded_complete(out_dir)
  skipped = [r.name for r in plan
             if r.name in recorded
             and RunDirectory(r.config.root_dir).is_complete(r.config.num_steps)]
  todo = [r for r in plan if r.name not in skipped]
  for name in skipped:
    _append_ledger(out_dir, {"name": name, "status": "skipped", "time": time.time()})
  echo(f"{len(plan)} runs: {len(skipped)} already complete, {len(todo)} to run; "
       f"logs in {os.path.join(out_dir, 'logs')}")
  finished: List[str] = []
  failed: Dict[str, str] = {}
  if todo:
    embedded = not ray_address
    if embedded:
      # Ray starts workers at niceness 15 by default; the runs are this
      # machine's main work, so they get normal priority (measured: under
      # load, niced runs got ~1% of a core).
      os.environ.setdefault("RAY_worker_niceness", "0")
      start_local_ray(ray, num_cpus or os.cpu_count(), echo)
    else:
      try:
        join_cluster(ray, ray_address)
      except ClusterError as e:
        echo(f"stopped: {e}")
        raise
    try:
      _run_tasks(ray, todo, out_dir, cpus_per_run, gpus_per_run, finished,
                 failed, progress_every, echo, start)
    except SharedStorageError as e:
      echo(f"stopped: {e}")
      raise
    except KeyboardInterrupt:
      echo("interrupted: cancelling runs; rerun the same command to resume "
           "them from their checkpoints.")
      raise
    finally:
      if embedded:
        ray.shutdown()
  index = None
  if failed:
    echo(f"{len(failed)} run(s) failed (the others went on); rerun to resume them:")
    for name, log in sorted(failed.items()):
      echo(f"  {name}: {log}")
  elif report:
    from sn_tf.analysis.report import write_report  # pylint: disable=g-import-not-at-top
    try:
      index = write_report(os.path.join(out_dir, "runs"),
                           os.path.join(out_dir, "report"),
                           title=f"Sweep {os.path.basename(out_dir)}")
      echo(f"report: {index}")
    except ValueError as e:
      echo(f"no aggregate report: {e}")
  wall = time.time() - start
  echo(f"sweep: {len(finished)} finished, {len(skipped)} skipped, "
       f"{len(failed)} failed in {wall / 60:.1f} min")
  return {"finished": sorted(finished), "skipped": sorted(skipped),
          "failed": failed, "report": index, "wall_time": wall}


def _also_logged(echo: Callable[[str], None], path: str) -> Callable[[str], None]:
  """``echo`` that also appends each line, timestamped, to ``path``."""
  def both(line: str) -> None:
    echo(line)
    with open(path, "a") as f:
      f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
  return both


def _write_mark(out_dir: str) -> str:
  """A fresh id in ``out_dir/MARK``, for the runs to find (shared storage)."""
  mark = uuid.uuid4().hex
  tmp = os.path.join(out_dir, MARK + ".tmp")
  with open(tmp, "w") as f:
    f.write(mark + "\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(out_dir, MARK))
  return mark


def _run_tasks(ray, todo, out_dir, cpus_per_run, gpus_per_run, finished,
               failed, progress_every, echo, start) -> None:
  """Submits ``todo`` and follows them to the end (the body of run_plan).

  Raises:
    SharedStorageError: at the first run whose node cannot see ``out_dir``
      (the other runs are cancelled).
  """
  from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # pylint: disable=g-import-not-at-top
  mark = _write_mark(out_dir)
  # On the driver's node: a lost worker node must not take it along.
  tracker = ray.remote(num_cpus=0)(_Tracker).options(
      scheduling_strategy=NodeAffinitySchedulingStrategy(
          ray.get_runtime_context().get_node_id(), soft=False)).remote()
  task = ray.remote(max_calls=1)(_train_task).options(
      num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=RUN_RETRIES)
  refs = {}
  for run in todo:
    log = os.path.join(out_dir, "logs", run.name.replace("/", "__") + ".log")
    refs[task.remote(run.config.to_json(), log, run.name, tracker, out_dir,
                     mark)] = (run.name, log)
  pending = list(refs)
  ended_on: Dict[str, str] = {}  # name -> node it finished on
  last_line = 0.0
  try:
    while pending:
      done, pending = ray.wait(pending, num_returns=1, timeout=progress_every)
      starts = ray.get(tracker.starts.remote())
      for ref in done:
        name, log = refs[ref]
        record = {"name": name, "starts": sum(n == name for n, _ in starts)}
        try:
          record["node"] = ended_on[name] = ray.get(ref)["node"]
          finished.append(name)
          record["status"] = "finished"
        except SharedStorageError as e:  # Ray's error, also of the cause's class
          raise SharedStorageError(str(getattr(e, "cause", e))) from None
        except ray.exceptions.RayError as e:  # task error, worker crash, ...
          failed[name] = log
          record["status"] = "failed"
          echo(f"FAILED {name}: {type(e).__name__}; log: {log}")
        record["time"] = time.time()
        _append_ledger(out_dir, record)
      now = time.time()
      if done or now - last_line >= progress_every:
        last_line = now
        echo(_progress_line(starts, ended_on, finished, failed, pending,
                            len(todo), now - start))
  except (KeyboardInterrupt, SharedStorageError):
    for ref in pending:
      ray.cancel(ref, force=True)
    raise


def _progress_line(starts, ended_on, finished, failed, pending, total,
                   elapsed) -> str:
  """``[ended/total] finished, running, waiting, failed; elapsed, ETA``, and
  per node (once runs started on more than one) its running/finished runs."""
  node_of = dict(starts)  # a resubmitted run: its latest node
  ended = len(finished) + len(failed)
  running = [n for n in node_of if n not in finished and n not in failed]
  eta = ""
  if ended:  # runs end at this average rate so far
    eta = f", ETA {len(pending) * elapsed / ended / 60:.1f} min"
  line = (f"[{ended}/{total}] finished {len(finished)}, running {len(running)}, "
          f"waiting {len(pending) - len(running)}, failed {len(failed)}; "
          f"elapsed {elapsed / 60:.1f} min{eta}")
  nodes = sorted(set(node_of.values()))
  if len(nodes) > 1:
    per_node = [f"{node} {sum(node_of[n] == node for n in running)} running "
                f"{sum(v == node for v in ended_on.values())} finished"
                for node in nodes]
    line += "; nodes: " + ", ".join(per_node)
  return line
