"""Learning-curve grouping, bootstrap bands and final-value tables."""

import csv
import glob
import os

import numpy as np
import pytest

from sn_tf.analysis import curves


def _write_run(path, steps, values):
  os.makedirs(path)
  with open(os.path.join(path, "metrics.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["step", "eval/return"])
    w.writeheader()
    for s, v in zip(steps, values):
      w.writerow({"step": s, "eval/return": v})
  return str(path)


def test_runs_with_one_label_are_averaged_over_common_steps(tmp_path):
  a = _write_run(tmp_path / "a", [10, 20, 30], [1.0, 2.0, 3.0])
  b = _write_run(tmp_path / "b", [10, 20], [3.0, 6.0])
  steps, values = curves.stack_curves([a, b])
  np.testing.assert_array_equal(steps, [10, 20])
  np.testing.assert_array_equal(values, [[1.0, 2.0], [3.0, 6.0]])


def test_runs_without_a_common_step_are_refused(tmp_path):
  a = _write_run(tmp_path / "a", [10], [1.0])
  b = _write_run(tmp_path / "b", [20], [1.0])
  with pytest.raises(ValueError, match="share no evaluation step"):
    curves.stack_curves([a, b])


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_more_runs():
  rng = np.random.default_rng(0)
  few = rng.normal(5.0, 1.0, size=(5, 3))
  many = rng.normal(5.0, 1.0, size=(200, 3))
  for values in (few, many):
    mean, ci = curves.mean_and_ci(values, reps=500)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    assert np.all(ci[0] <= mean) and np.all(mean <= ci[1])
    assert np.all(ci[0] >= values.min(axis=0)) and np.all(ci[1] <= values.max(axis=0))
  width_few = np.diff(curves.mean_and_ci(few, reps=500)[1], axis=0)
  width_many = np.diff(curves.mean_and_ci(many, reps=500)[1], axis=0)
  assert np.all(width_many < width_few)
  # Standard error of the mean for n=200, sigma=1 is 0.07: the 95% CI is ~0.28 wide.
  np.testing.assert_allclose(width_many, 0.28, atol=0.08)


def test_single_run_band_is_the_run_itself():
  values = np.array([[1.0, 2.0]])
  mean, ci = curves.mean_and_ci(values)
  np.testing.assert_array_equal(ci, [[1.0, 2.0], [1.0, 2.0]])
  np.testing.assert_array_equal(mean, [1.0, 2.0])


def test_final_table_and_plot(tmp_path):
  runs = [_write_run(tmp_path / "x0", [5, 10], [0.0, 2.0]),
          _write_run(tmp_path / "y0", [5, 10], [1.0, 7.0]),
          _write_run(tmp_path / "x1", [5, 10], [0.0, 4.0])]
  labels = ["x", "y", "x"]
  rows = curves.final_table(runs, labels)
  assert [r["label"] for r in rows] == ["x", "y"]
  assert rows[0]["runs"] == 2 and rows[0]["step"] == 10
  assert rows[0]["mean"] == 3.0 and rows[0]["values"] == [2.0, 4.0]
  assert 2.0 <= rows[0]["ci_low"] <= 3.0 <= rows[0]["ci_high"] <= 4.0
  assert rows[1]["mean"] == 7.0
  table = curves.markdown_table(rows, "eval/return")
  assert "| x | 2 | 10 | 3.000 |" in table and "| y | 1 | 10 | 7.000 |" in table
  png = curves.plot_runs(runs, labels, str(tmp_path / "out" / "c.png"))
  with open(png, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_label_count_must_match(tmp_path):
  a = _write_run(tmp_path / "a", [1], [1.0])
  with pytest.raises(ValueError, match="one label per run"):
    curves.group_runs([a], ["a", "b"])


def test_missing_metric_names_the_columns(tmp_path):
  a = _write_run(tmp_path / "a", [1], [1.0])
  with pytest.raises(ValueError, match="columns: step, eval/return"):
    curves.load_curve(a, "rho")


def test_interval_curves_mean_over_runs_and_tasks_with_stratified_cis():
  # [runs=3, tasks=2, T=2]: task 0 scores 1, 2, 3 at both steps, task 1 is 10.
  m = np.array([[[1, 1], [10, 10]], [[2, 2], [10, 10]], [[3, 3], [10, 10]]],
               dtype=np.float64)
  (mean, ci), = curves.interval_curves({"x": m}, reps=500).values()
  np.testing.assert_allclose(mean, [6.0, 6.0])
  # Only task 0 varies: its resampled mean lies in [1, 3], so the mean over
  # tasks lies in [5.5, 6.5].
  assert np.all(ci[0] >= 5.5) and np.all(ci[1] <= 6.5) and np.all(ci[0] < 6.0)
  one = curves.interval_curves({"y": m[:1]})["y"]
  np.testing.assert_allclose(one[1], [[5.5, 5.5], [5.5, 5.5]])


def test_separation_step_is_where_the_intervals_stay_apart():
  steps = np.array([10, 20, 30, 40])
  a = np.array([[0, 2, 0, 3], [1, 3, 2, 4]], dtype=float)
  b = np.array([[0, 0, 0, 0], [1, 1, 1, 1]], dtype=float)
  # Apart at 20, together again at 30, apart from 40 on.
  assert curves.separation_step(steps, a, b) == 40
  assert curves.separation_step(steps, b, a) == 40
  a[:, 2] = [2, 3]
  assert curves.separation_step(steps, a, b) == 20
  assert curves.separation_step(steps, b, b) is None


def _log_windows(run_dir, windows):
  """TensorBoard scalars as the runner logs them: (step, episodes, mean)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  writer = tf.summary.create_file_writer(os.path.join(run_dir, "train"))
  with writer.as_default():
    for step, episodes, mean in windows:
      tf.summary.scalar("train/episodes", float(episodes), step=step)
      if episodes:
        tf.summary.scalar("train/return", mean, step=step)
  writer.flush()


def test_iteration_train_returns_weight_windows_by_their_episodes(tmp_path):
  run = str(tmp_path / "run")
  # Iteration 0 (steps 1-200): 2 episodes averaging 10 and 1 of 40: 20.
  # Iteration 1: no episode ends in its first window: (3 * 6) / 3 = 6.
  _log_windows(run, [(100, 2, 10.0), (200, 1, 40.0), (300, 0, 0.0),
                     (400, 3, 6.0), (500, 1, 1.0)])
  rows = curves.iteration_train_returns(run, 200)
  assert [(r["iteration"], r["first_step"], r["last_step"], r["episodes"])
          for r in rows] == [(0, 1, 200, 3), (1, 201, 400, 3)]
  assert [r["return"] for r in rows] == pytest.approx([20.0, 6.0])
  with pytest.raises(ValueError, match="not a multiple of the run's logging period"):
    curves.iteration_train_returns(run, 250)


def test_a_resumed_run_keeps_the_last_logged_window(tmp_path):
  run = str(tmp_path / "run")
  _log_windows(run, [(100, 1, 5.0), (200, 1, 99.0)])
  (first,) = glob.glob(os.path.join(run, "train", "events.out.*"))
  _log_windows(run, [(200, 1, 7.0)])  # the resumed run logs step 200 again
  rows = curves.iteration_train_returns(run, 200)
  assert rows[0]["return"] == pytest.approx(6.0)
  # A copy or a clone gives the files new times on disk, in any order: the
  # order the writers created them still decides.
  os.utime(first, (2e9, 2e9))
  for path in glob.glob(os.path.join(run, "train", "events.out.*")):
    if path != first:
      os.utime(path, (1e9, 1e9))
  rows = curves.iteration_train_returns(run, 200)
  assert rows[0]["return"] == pytest.approx(6.0)


def test_iteration_rows_sit_beside_the_reference_seeds(tmp_path):
  ref_csv = tmp_path / "ref.csv"
  ref_csv.write_text("seed,iteration,value\n0,0,10\n1,0,30\n0,1,50\n1,1,70\n")
  reference = curves.read_reference(str(ref_csv))
  assert sorted(reference) == [0, 1]
  np.testing.assert_array_equal(reference[1], [50.0, 70.0])
  run = str(tmp_path / "run")
  # Iteration 0: 20 (inside 10..30); iteration 1: (1*80 + 1*90) / 2 = 85.
  _log_windows(run, [(100, 1, 20.0), (200, 0, 0.0), (300, 1, 80.0),
                     (400, 1, 90.0)])
  rows = curves.iteration_rows([run], ["none"], 200, reference)
  assert [(r["iteration"], r["return"], r["within"]) for r in rows] == [
      (0, 20.0, True), (1, 85.0, False)]
  assert (rows[1]["ref_min"], rows[1]["ref_max"], rows[1]["ref_seeds"]) == (50.0, 70.0, 2)
  table = curves.iteration_markdown(rows, "Dopamine C51")
  assert "| none | 1 | 201-400 | 2 | 85.0 | 2, 50.0 to 70.0 (60.0) | no |" in table
  assert "Dopamine C51: seeds, range (mean)" in table
  png = curves.plot_iterations(rows, str(tmp_path / "it.png"), reference, "Dopamine C51")
  assert os.path.getsize(png) > 0
  # Without a reference the rows carry no range.
  assert "ref_min" not in curves.iteration_rows([run], ["none"], 200)[0]


def test_a_reference_listing_an_iteration_twice_is_refused(tmp_path):
  bad = tmp_path / "ref.csv"
  bad.write_text("seed,iteration,value\n0,0,10\n0,0,11\n")
  with pytest.raises(ValueError, match="seed 0 lists iteration 0 twice"):
    curves.read_reference(str(bad))
  bad.write_text("seed,step,value\n0,0,10\n")
  with pytest.raises(ValueError, match="expected the columns seed,iteration,value"):
    curves.read_reference(str(bad))
