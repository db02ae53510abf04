"""Aggregation over run directories, on synthetic scores with known answers."""

import csv
import json
import os

import numpy as np
import pytest

from sn_tf.analysis import aggregate
from sn_tf.analysis import report


def make_run(root, name, env, seed, finals, spectral="none", scheduler="none",
             jacobian=None, **extra):
  """A run directory with config.json and a metrics.csv ending at ``finals[-1]``."""
  path = os.path.join(root, name)
  os.makedirs(path)
  config = dict(env=env, seed=seed, spectral=spectral, scheduler=scheduler,
                scheduler_layers="-2", root_dir=path, num_steps=100, **extra)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  fields = ["step", "eval/return"] + (["smooth/jacobian_norm_mean"] if jacobian else [])
  with open(os.path.join(path, "metrics.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    for i, v in enumerate(finals):
      row = {"step": 50 * (i + 1), "eval/return": v}
      if jacobian:
        row["smooth/jacobian_norm_mean"] = jacobian
      w.writerow(row)
  return path


@pytest.fixture
def minatar_runs(tmp_path):
  root = str(tmp_path / "runs")
  # C51: game a finals 2, 4 (baseline mean 3); game b finals 1, 1.
  make_run(root, "a/none_s0", "minatar:asterix", 0, [0, 2], jacobian=5.0)
  make_run(root, "a/none_s1", "minatar:asterix", 1, [0, 4], jacobian=5.0)
  make_run(root, "b/none_s0", "minatar:breakout", 0, [0, 1], jacobian=4.0)
  make_run(root, "b/none_s1", "minatar:breakout", 1, [0, 1], jacobian=4.0)
  # SN[-2]: exactly twice the baseline mean everywhere.
  make_run(root, "a/sn-2_s0", "minatar:asterix", 0, [1, 6], spectral="-2", jacobian=0.5)
  make_run(root, "a/sn-2_s1", "minatar:asterix", 1, [1, 6], spectral="-2", jacobian=0.5)
  make_run(root, "b/sn-2_s0", "minatar:breakout", 0, [1, 2], spectral="-2", jacobian=0.4)
  make_run(root, "b/sn-2_s1", "minatar:breakout", 1, [1, 2], spectral="-2", jacobian=0.4)
  return root


def test_minatar_scores_are_normalised_by_the_baseline_per_game(minatar_runs):
  runset = aggregate.RunSet.from_root(minatar_runs)
  assert runset.labels == ["C51", "SN[-2]"] and runset.suite == "minatar"
  rows = {(r["game"], r["label"], r["seed"]): r for r in runset.score_rows()}
  assert rows[("minatar:asterix", "C51", 0)]["normalized"] == pytest.approx(2 / 3)
  assert rows[("minatar:asterix", "C51", 1)]["normalized"] == pytest.approx(4 / 3)
  assert rows[("minatar:breakout", "SN[-2]", 1)]["normalized"] == pytest.approx(2.0)
  assert rows[("minatar:asterix", "SN[-2]", 0)]["jacobian_norm"] == 0.5


def test_aggregates_have_known_values(minatar_runs):
  runset = aggregate.RunSet.from_root(minatar_runs)
  matrices = aggregate.score_matrices(runset.score_rows(), runset.games)
  np.testing.assert_allclose(matrices["C51"], [[2 / 3, 1.0], [4 / 3, 1.0]])
  agg = aggregate.aggregate_scores(matrices, reps=200)
  # C51's four normalised scores: 2/3, 1, 1, 4/3.
  assert agg["C51"]["mean"][0] == pytest.approx(1.0)
  assert agg["C51"]["median"][0] == pytest.approx(1.0)
  assert agg["C51"]["iqm"][0] == pytest.approx(1.0)  # middle two of four
  assert agg["C51"]["optimality_gap"][0] == pytest.approx((1 / 3) / 4)
  for name in aggregate.AGGREGATES:  # SN is 2.0 in every run: no spread
    point, low, high = agg["SN[-2]"][name]
    expected = 0.0 if name == "optimality_gap" else 2.0
    assert point == low == high == pytest.approx(expected)
  low, high = agg["C51"]["mean"][1:]
  assert 2 / 3 <= low <= 1.0 <= high <= 4 / 3


def test_report_lists_every_file_it_writes(minatar_runs, tmp_path):
  out = tmp_path / "report"
  index = report.write_report(minatar_runs, str(out), title="T", reps=100)
  text = open(index).read()
  written = sorted(os.listdir(out))
  for name in written:
    if name != "index.md":
      assert f"[{name}]({name})" in text, name
  for name in ("aggregates.png", "performance_profile.png",
               "smoothness_vs_score.png", "scores.csv", "aggregates.csv",
               "curve_minatar_asterix_eval_return.png"):
    assert name in written
  assert "| SN[-2] | 2 | 2 | 2.000 [2.000, 2.000]" in text
  with open(out / "aggregates.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_normalised_curves_and_where_they_separate(minatar_runs, tmp_path):
  runset = aggregate.RunSet.from_root(minatar_runs)
  steps, m = aggregate.normalized_curves(runset, "C51", runset.tasks)
  np.testing.assert_array_equal(steps, [50, 100])
  # Divided by C51's mean final score per game: asterix 3, breakout 1.
  np.testing.assert_allclose(m["SN[-2]"]["minatar:asterix"], [[1 / 3, 2], [1 / 3, 2]])
  np.testing.assert_allclose(m["SN[-2]"]["minatar:breakout"], [[1, 2], [1, 2]])
  np.testing.assert_allclose(m["C51"]["minatar:asterix"][:, -1], [2 / 3, 4 / 3])
  out = tmp_path / "report"
  text = open(report.write_report(minatar_runs, str(out), reps=100)).read()
  assert "## Normalised learning curves" in text
  # SN's CI is a point above C51's at both steps: apart from the first.
  assert "| SN[-2] | 50 | 2.000 [2.000, 2.000] |" in text
  rows = list(csv.DictReader(open(out / "normalized_curves.csv")))
  first = [r for r in rows if r["panel"] == "mean over games" and r["step"] == "50"]
  assert {r["label"]: float(r["mean"]) for r in first} == pytest.approx(
      {"C51": 0.0, "SN[-2]": 2 / 3})


def test_atari_scores_are_human_normalised(tmp_path):
  root = str(tmp_path)
  # Breakout: random 1.7, human 30.5; Pong: random -20.7, human 14.6.
  make_run(root, "b0", "atari:Breakout", 0, [30.5])
  make_run(root, "p0", "atari:Pong", 0, [-20.7])
  rows = {r["game"]: r for r in aggregate.RunSet.from_root(root).score_rows()}
  assert rows["atari:Breakout"]["normalized"] == pytest.approx(1.0)
  assert rows["atari:Pong"]["normalized"] == pytest.approx(0.0)


def test_labels_name_every_varying_field(tmp_path):
  root = str(tmp_path)
  make_run(root, "x", "minatar:breakout", 0, [1], lr=0.001)
  make_run(root, "y", "minatar:breakout", 0, [1], lr=0.002, scheduler="divgrad")
  labels = aggregate.RunSet.from_root(root).labels
  assert labels == ["C51 lr=0.001", "DivGrad[-2] lr=0.002"]


def test_bad_inputs_are_refused_with_a_reason(tmp_path, minatar_runs):
  os.makedirs(tmp_path / "empty")
  for complete_only in (False, True):
    with pytest.raises(ValueError, match="no run directories"):
      aggregate.RunSet.from_root(str(tmp_path / "empty"), complete_only=complete_only)
  with pytest.raises(ValueError, match="is not a directory"):
    aggregate.find_runs(str(tmp_path / "missing"))
  make_run(str(tmp_path / "mixed"), "m", "minatar:breakout", 0, [1])
  make_run(str(tmp_path / "mixed"), "a", "atari:Pong", 0, [1])
  with pytest.raises(ValueError, match="mix suites"):
    aggregate.RunSet.from_root(str(tmp_path / "mixed"))
  runset = aggregate.RunSet.from_root(minatar_runs)
  with pytest.raises(ValueError, match="baseline='SN\\[-3\\]' is not a configuration"):
    runset.score_rows(baseline="SN[-3]")
  rows = [r for r in runset.score_rows() if not (r["label"] == "C51" and r["seed"] == 1
                                                 and r["game"] == "minatar:breakout")]
  with pytest.raises(ValueError, match="'C51' has different numbers of runs per game"):
    aggregate.score_matrices(rows, runset.games)


# ------------------------------------------------------- the paper's studies

@pytest.fixture
def two_net_runs(tmp_path):
  """Two nets, two games, two seeds; SN only on the bigger net (as in sizes)."""
  root = str(tmp_path / "runs")
  nets = {"8-8-8/32": 1.0, "32-32-24/256": 10.0}  # baseline level per net
  for net, level in nets.items():
    d = net.replace("/", "_")
    for game in ("breakout", "seaquest"):
      for seed in (0, 1):
        make_run(root, f"{game}/{d}/none_s{seed}", f"minatar:{game}", seed,
                 [0, level * (1 + seed)], agent="dqn", minatar_model=net,
                 jacobian=10.0)
        if net.startswith("32"):  # 3x the baseline's mean on the big net
          make_run(root, f"{game}/{d}/sn-2_s{seed}", f"minatar:{game}", seed,
                   [0, level * 4.5], spectral="-2", agent="dqn",
                   minatar_model=net, jacobian=1.0)
  return root


def test_minatar_scores_are_normalised_per_game_and_net(two_net_runs):
  runset = aggregate.RunSet.from_root(two_net_runs)
  assert runset.labels == ["DQN", "SN[-2]"]
  assert runset.models == ["8-8-8/32", "32-32-24/256"]  # by width, not by name
  rows = runset.score_rows()
  by = {(r["game"], r["model"], r["label"], r["seed"]): r for r in rows}
  # Baseline mean per net: 1.5 on the small net, 15 on the big one.
  assert by[("minatar:breakout", "8-8-8/32", "DQN", 1)]["normalized"] == pytest.approx(2 / 1.5)
  assert by[("minatar:breakout", "32-32-24/256", "DQN", 0)]["normalized"] == pytest.approx(10 / 15)
  assert by[("minatar:seaquest", "32-32-24/256", "SN[-2]", 1)]["normalized"] == pytest.approx(3.0)
  with pytest.raises(ValueError, match="different numbers of runs per game"):
    aggregate.score_matrices(rows, runset.tasks)  # SN has no run on the small net
  m = aggregate.score_matrices(rows, runset.tasks, skip_missing=True)
  assert m["DQN"].shape == (2, 4) and m["SN[-2]"].shape == (2, 2)
  np.testing.assert_allclose(m["SN[-2]"], 3.0)


def test_report_of_several_nets_has_per_net_tables_and_figures(two_net_runs, tmp_path):
  out = tmp_path / "report"
  text = open(report.write_report(two_net_runs, str(out), reps=100)).read()
  written = sorted(os.listdir(out))
  for name in ("scores_by_config.png", "score_per_model.png",
               "smoothness_vs_score.png"):
    assert name in written and f"[{name}]({name})" in text
  assert "same game and net" in text
  assert "| SN[-2] | 2 | 2 | 3.000 [3.000, 3.000]" in text  # tasks, runs/task
  assert "Net 8-8-8/32:" in text and "Net 32-32-24/256:" in text
  with open(out / "aggregates.csv") as f:
    rows = list(csv.DictReader(f))
  assert {(r["model"], r["label"]) for r in rows} == {
      ("all", "DQN"), ("all", "SN[-2]"), ("8-8-8/32", "DQN"),
      ("32-32-24/256", "DQN"), ("32-32-24/256", "SN[-2]")}


def test_report_leaves_out_runs_that_have_not_reached_num_steps(minatar_runs, tmp_path):
  # Evaluated at step 50 of 100: still running.
  make_run(minatar_runs, "a/sn-3_s0", "minatar:asterix", 0, [100.0], spectral="-3")
  runset = aggregate.RunSet.from_root(minatar_runs, complete_only=True)
  assert "SN[-3]" not in runset.labels
  with open(os.path.join(minatar_runs, "a/sn-3_s0/config.json")) as f:
    assert json.load(f)["num_steps"] == 100
  text = open(report.write_report(minatar_runs, str(tmp_path / "r"), reps=50)).read()
  assert "Left out: 1 run(s)" in text and "SN[-3]" not in text


@pytest.mark.parametrize("study,expected", [
    ("layers", ["DQN", "SN[-2]", "SN[-3]", "SN[-4]", "SN[-2,-3]"]),
    ("schedulers", ["DQN", "SN[-2]", "DivOut[-2]", "DivGrad[-2] leave_smaller",
                    "DivGrad[-2] per_layer leave_smaller", "MulEps[-2]"]),
    ("smoothness", ["DQN", "SN[-1] leave_smaller", "SN[-2] leave_smaller",
                    "SN[-2] k=2 leave_smaller", "SN[-2] k=10 leave_smaller",
                    "SN[-3] leave_smaller", "SN[-1,-2,-3] leave_smaller"]),
])
def test_study_cells_get_distinct_readable_labels(study, expected, tmp_path):
  from sn_tf import experiments  # pylint: disable=g-import-not-at-top
  plan = experiments.dqn_study_plan(study, "medium", str(tmp_path),
                                    games=["breakout"], seeds=[0])
  configs = [json.loads(run.config.to_json()) for run in plan]
  varying = aggregate.varying_fields(configs)
  labels = [aggregate.config_label(c, varying) for c in configs]
  assert sorted(labels) == sorted(expected)
  assert len(set(labels)) == len(labels)


def test_optimizer_grid_cells_get_distinct_labels_and_a_dqn_baseline(tmp_path):
  from sn_tf import experiments  # pylint: disable=g-import-not-at-top
  plan = experiments.dqn_study_plan("optimizer", "small", str(tmp_path))
  configs = [json.loads(run.config.to_json()) for run in plan]
  varying = aggregate.varying_fields(configs)
  labels = [aggregate.config_label(c, varying) for c in configs]
  assert len(set(labels)) == len(labels) == 36
  assert "DQN adam_eps=0.0001 lr=1e-05" in labels
  assert "SN[-2,-3] adam_eps=0.01 lr=0.0021544" in labels


def test_probability_of_improvement_has_known_values(minatar_runs, tmp_path):
  rows = aggregate.RunSet.from_root(minatar_runs).score_rows()
  # SN is 2.0 everywhere, above every C51 run (2/3, 1, 1, 4/3): P = 1 exactly.
  assert aggregate.probability_of_improvement(rows, "SN[-2]", "C51", reps=100) == (
      1.0, 1.0, 1.0, 2)
  # C51 against itself: ties count one half, so P = 0.5.
  p, low, high, _ = aggregate.probability_of_improvement(rows, "C51", "C51", reps=100)
  assert p == pytest.approx(0.5) and low <= 0.5 <= high
  text = open(report.write_report(minatar_runs, str(tmp_path / "r"), reps=50)).read()
  assert "| SN[-2] | 2 | 1.000 [1.000, 1.000] |" in text


def test_scores_csv_names_runs_relative_to_the_runs_dir(minatar_runs, tmp_path):
  report.write_report(minatar_runs, str(tmp_path / "r"), reps=20)
  with open(tmp_path / "r" / "scores.csv") as f:
    dirs = sorted(r["run_dir"] for r in csv.DictReader(f))
  assert dirs[0] == os.path.join("a", "none_s0") and not any(os.path.isabs(d) for d in dirs)


def _runs_line(index):
  with open(index) as f:
    return next(line for line in f if line.startswith("Runs:"))


def test_index_names_the_runs_directory_without_a_machine_path(minatar_runs, tmp_path):
  index = report.write_report(minatar_runs, str(tmp_path / "r"), reps=20)
  runs_line = _runs_line(index)
  assert f"`{os.path.relpath(minatar_runs, tmp_path / 'r')}` (relative to this report)" in runs_line
  index = report.write_report(minatar_runs, str(tmp_path / "s"), reps=20,
                                 runs_name="runs/study/runs")
  runs_line = _runs_line(index)
  assert runs_line.startswith("Runs: 8 under `runs/study/runs`; games:")
  assert str(tmp_path) not in runs_line


def test_report_of_a_study_in_progress_keeps_seeds_done_on_every_game(minatar_runs, tmp_path):
  # SN[-3]: seeds 0 and 1 done on asterix, only seed 1 on breakout (seed 0
  # still running there): seed 0's asterix run is left out, seed 1 kept.
  for name, env, seed, finals in [("a/sn-3_s0", "minatar:asterix", 0, [0, 3]),
                                  ("a/sn-3_s1", "minatar:asterix", 1, [0, 6]),
                                  ("b/sn-3_s1", "minatar:breakout", 1, [0, 2]),
                                  ("b/sn-3_s0", "minatar:breakout", 0, [9.0])]:
    make_run(minatar_runs, name, env, seed, finals, spectral="-3", jacobian=1.0)
  runset = aggregate.RunSet.from_root(minatar_runs, complete_only=True)
  with pytest.raises(ValueError, match="different numbers of runs"):
    aggregate.score_matrices(runset.score_rows(), runset.tasks)
  balanced = runset.on_common_seeds()
  assert sorted(os.path.relpath(r["dir"], minatar_runs) for r in balanced.runs
                if r["label"] == "SN[-3]") == ["a/sn-3_s1", "b/sn-3_s1"]
  assert len(balanced.runs) == len(runset.runs) - 1
  assert runset.on_common_seeds() is not runset and balanced.on_common_seeds() is balanced
  with open(report.write_report(minatar_runs, str(tmp_path / "r"), reps=50)) as f:
    text = f.read()
  assert "Left out: 1 run(s) not yet evaluated" in text
  assert "Left out: 1 complete run(s) whose seed has not finished" in text
  # SN[-3] on seed 1 only: 6 / 3 on asterix and 2 / 1 on breakout.
  assert "| SN[-3] | 2 | 1 | 2.000 [2.000, 2.000]" in text


def test_adam_grid_is_each_cells_score_over_the_best_cells(tmp_path):
  root = str(tmp_path / "runs")
  finals = {(1e-4, 1e-3): 4.0, (1e-4, 1e-2): 2.0, (1e-3, 1e-3): 1.0,
            (1e-3, 1e-2): 8.0}
  for (lr, eps), final in finals.items():
    for spectral, scale in (("none", 1.0), ("-2", 0.5)):
      for seed in (0, 1):
        make_run(root, f"b/{spectral}_{lr}_{eps}_s{seed}", "minatar:breakout",
                 seed, [0, final * scale + seed], spectral=spectral,
                 optimizer="adam", lr=lr, adam_eps=eps)
  runset = aggregate.RunSet.from_root(root)
  grids = report.adam_grid(runset.score_rows(), runset)
  assert list(grids) == ["none", "-2"]
  lrs, epss, grid = grids["none"]
  assert (lrs, epss) == ([1e-4, 1e-3], [1e-3, 1e-2])
  # Seeds add 0 and 1: cell means 4.5, 2.5, 1.5, 8.5; the best is 8.5.
  np.testing.assert_allclose(grid, [[4.5 / 8.5, 2.5 / 8.5], [1.5 / 8.5, 1.0]])
  # SN's cells are divided by the best cell of the task, DQN's 8.5.
  np.testing.assert_allclose(grids["-2"][2], [[2.5 / 8.5, 1.5 / 8.5],
                                              [1.0 / 8.5, 4.5 / 8.5]])
  out = tmp_path / "report"
  text = open(report.write_report(root, str(out), reps=50)).read()
  assert "[adam_grid.png](adam_grid.png)" in text
