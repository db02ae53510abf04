"""metrics.csv: rows appended, truncated on resume, columns widened."""

from sn_tf import logs


def test_a_row_with_new_columns_widens_the_file(tmp_path):
  log = logs.MetricsLog(str(tmp_path))
  log.csv_row({"step": 1, "eval/return": 2.0})
  log.csv_row({"step": 2, "eval/return": 3.0})
  # A run resumed by a version that records one more column.
  log.csv_row({"step": 3, "eval/return": 4.0, "eval/reward_per_finished_episode": 5.0})
  log.csv_row({"step": 4, "eval/return": 6.0, "eval/reward_per_finished_episode": 7.0})
  rows = logs.read_csv(str(tmp_path / logs.CSV_FILE))
  assert [list(r.values()) for r in rows] == [
      ["1", "2.0", ""], ["2", "3.0", ""], ["3", "4.0", "5.0"], ["4", "6.0", "7.0"]]
  assert list(rows[0]) == ["step", "eval/return", "eval/reward_per_finished_episode"]


def test_truncate_after_keeps_rows_up_to_the_step(tmp_path):
  log = logs.MetricsLog(str(tmp_path))
  for step in (1, 2, 3):
    log.csv_row({"step": step, "x": float(step)})
  log.truncate_after(2)
  assert [r["step"] for r in logs.read_csv(str(tmp_path / logs.CSV_FILE))] == ["1", "2"]
