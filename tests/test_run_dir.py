"""The run directory: its layout and "is this run complete?"."""

import json

from sn_tf.run_dir import RunDirectory


def _run(tmp_path, num_steps, rows):
  root = tmp_path / "run"
  root.mkdir(parents=True)
  (root / "config.json").write_text(json.dumps({"num_steps": num_steps}))
  if rows is not None:
    (root / "metrics.csv").write_text(
        "step,eval/return\n" + "".join(f"{s},1.0\n" for s in rows))
  return RunDirectory(str(root))


def test_complete_at_its_own_budget_or_the_one_asked(tmp_path):
  run = _run(tmp_path, 200, [100, 200])
  assert run.is_run() and run.last_evaluated_step() == 200
  assert run.is_complete()
  # A bigger budget (a study extended) is not complete yet.
  assert not run.is_complete(400) and run.is_complete(150)


def test_incomplete_without_rows_or_before_the_last_step(tmp_path):
  assert not _run(tmp_path / "a", 200, [100]).is_complete()
  empty = _run(tmp_path / "b", 200, [])
  assert not empty.is_complete() and empty.last_evaluated_step() is None
  missing = _run(tmp_path / "c", 200, None)
  assert not missing.is_run() and not missing.is_complete(200)
  assert not RunDirectory(str(tmp_path / "nowhere")).is_complete()


def test_layout(tmp_path):
  run = RunDirectory(str(tmp_path))
  assert run.policy() == str(tmp_path / "policies" / "final")
  assert run.policy(500) == str(tmp_path / "policies" / "step_500")
  assert run.checkpoints == str(tmp_path / "checkpoints")
  assert run.metrics_path == str(tmp_path / "metrics.csv")
