"""The reproduction plan and its resumable runner (tiny real runs)."""

import json
import os

import pytest

from sn_tf import experiments

TINY = dict(eval_every=150, eval_episodes=2, learning_starts=100,
            replay_capacity=500, batch_size=8, epsilon_decay_steps=100,
            eval_max_episode_steps=100, target_update_period=50, log_every=50,
            measure_states=16)


def test_plans_hold_the_papers_sweep_and_the_schedulers(tmp_path):
  paper = experiments.study_plan("paper", str(tmp_path))
  assert len(paper) == 5 * 10 * 10
  assert {r.config.num_steps for r in paper} == {5_000_000}
  names = {r.name.split("/")[1].rsplit("_s", 1)[0] for r in paper}
  assert names == {"none", "sn-1", "sn-2", "sn-3", "sn-1-2", "sn-2-3", "sn-1-2-3",
                   "divout-2", "divgrad-2", "muleps-2"}
  run = next(r for r in paper if r.name == "seaquest/sn-2-3_s7")
  assert (run.config.spectral, run.config.seed, run.config.env) == (
      "-2,-3", 7, "minatar:seaquest")
  assert run.config.root_dir == os.path.join(str(tmp_path), "runs", run.name)
  run = next(r for r in paper if r.name == "asterix/muleps-2_s0")
  assert (run.config.scheduler, run.config.scheduler_layers,
          run.config.spectral) == ("muleps", "-2", "none")
  small = experiments.study_plan("small", str(tmp_path))
  assert len(small) == 2 * 8 * 2
  assert {r.config.epsilon_decay_steps for r in small} == {20_000}


@pytest.mark.parametrize("kwargs,match", [
    (dict(budget="huge"), r"budget='huge' is not allowed; allowed: paper, small"),
    (dict(games=["pong"]), r"games: 'pong' is not allowed"),
    (dict(configs=["sn-4"]), r"configs: sn-4 not in budget 'small'"),
    (dict(seeds=[]), r"must not be empty"),
    (dict(num_steps=0), r"num_steps=0 is not allowed"),
])
def test_bad_plans_are_refused(tmp_path, kwargs, match):
  kwargs = dict(dict(budget="small"), **kwargs)
  with pytest.raises(ValueError, match=match):
    experiments.study_plan(kwargs.pop("budget"), str(tmp_path), **kwargs)


def test_study_runs_resumes_reports_and_survives_a_failed_run(tmp_path):
  out = str(tmp_path / "study")
  plan = experiments.study_plan("small", out, games=["breakout"], seeds=[0, 1],
                                num_steps=300, configs=["none", "sn-2"],
                                overrides=TINY)
  # One run's root_dir already holds a different config: that run fails.
  bad = plan[3]
  os.makedirs(bad.config.root_dir)
  with open(os.path.join(bad.config.root_dir, "config.json"), "w") as f:
    f.write(bad.config.to_json().replace('"gamma": 0.99', '"gamma": 0.5'))
  lines = []
  result = experiments.run_study(plan, out, workers=2, echo=lines.append)
  assert result["finished"] == sorted(r.name for r in plan[:3])
  assert list(result["failed"]) == [bad.name] and result["report"] is None
  assert "different config" in open(result["failed"][bad.name]).read()
  assert any(bad.name in l and "FAILED" in l for l in lines)
  # Fixed and rerun: only the failed run runs, then the report is written.
  os.remove(os.path.join(bad.config.root_dir, "config.json"))
  lines = []
  result = experiments.run_study(plan, out, workers=2, echo=lines.append)
  assert "4 runs: 3 already complete, 1 to run" in lines[0]
  assert not result["failed"] and result["finished"] == [bad.name]
  assert len(result["skipped"]) == 3
  index = open(result["report"]).read()
  assert "| minatar:breakout | SN[-2] | 2 |" in index
  assert "curve_minatar_breakout_srank.png" in index
  assert os.path.isfile(os.path.join(out, "report", "smoothness_vs_score.png"))
  saved = json.load(open(os.path.join(out, "plan.json")))
  assert [p["name"] for p in saved] == [r.name for r in plan]
  assert [p["config"]["root_dir"] for p in saved] == [
      os.path.join("runs", r.name) for r in plan]
  assert "under `../runs` (relative to this report)" in index
