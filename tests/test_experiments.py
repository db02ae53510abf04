"""The reproduction plan and its resumable runner (tiny real runs)."""

import json
import os

import pytest

from sn_tf import experiments
from sn_tf import logs

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


# ------------------------------------------------------ the paper's DQN studies

@pytest.mark.parametrize("study,counts", [
    ("layers", (200, 60, 10)), ("sizes", (1440, 72, 12)),
    ("smoothness", (760, 84, 14)), ("schedulers", (960, 72, 12))])
def test_dqn_study_plans_count_the_papers_runs(tmp_path, study, counts):
  got = tuple(len(experiments.dqn_study_plan(study, b, str(tmp_path)))
              for b in ("paper", "medium", "small"))
  assert got == counts
  plan = experiments.dqn_study_plan(study, "paper", str(tmp_path))
  assert len({r.name for r in plan}) == len(plan)
  assert {r.config.env for r in plan} == {
      "minatar:breakout", "minatar:asterix", "minatar:seaquest",
      "minatar:space_invaders"}
  assert {r.config.seed for r in plan} == set(range(10))
  for r in plan:  # the minatar_dqn protocol in every run
    c = r.config
    assert (c.agent, c.td_loss, c.update_period, c.target_update_period,
            c.num_steps, c.eval_every, c.eval_steps, c.preset) == (
                "dqn", "mse", 4, 4_000, 5_000_000, 100_000, 125_000, "minatar_dqn")


def test_optimizer_study_plan_counts_at_every_budget(tmp_path):
  """The authors' grids (configs/minatar_dqn_mega_redux: Adam 8 lr x 5 eps,
  RMSprop 7 x 6, SGD 7, on six nets; configs/minatar_dqn_optim: RMSprop
  2 lr x 2 eps x centred or not and SGD 2 lr on two nets), SN none, -2,
  -2,-3, four games, two seeds."""
  cells = 6 * 3 * (8 * 5 + 7 * 6 + 7) + 2 * 3 * (2 * 2 * 2 + 2)
  assert cells == 1662
  counts = {b: len(experiments.dqn_study_plan("optimizer", b, str(tmp_path)))
            for b in ("paper", "medium", "small")}
  assert counts == {"paper": cells * 4 * 2, "medium": 3 * 8 * 5 * 4 * 2,
                    "small": 3 * 4 * 3}
  with pytest.raises(ValueError, match=r"study='optimizer' is not allowed at "
                     r"budget='long'"):
    experiments.dqn_study_plan("optimizer", "long", str(tmp_path))


def test_optimizer_study_cells_hold_the_authors_values(tmp_path):
  plan = experiments.dqn_study_plan("optimizer", "paper", str(tmp_path))
  c = _cell(plan, "seaquest/32-32-32_256/sn-2-3_adam_lr0.0002154_eps0.00032_s1")
  assert (c.optimizer, c.lr, c.adam_eps, c.adam_epsilon_placement, c.spectral,
          c.eval_every, c.num_steps, c.seed) == (
              "adam", 0.0002154, 0.00032, "reference", "-2,-3", 125_000,
              5_000_000, 1)
  c = _cell(plan, "breakout/24-24-24-24_128/none_rmsprop_lr1e-05_eps0.0316_c_s0")
  assert (c.optimizer, c.lr, c.rmsprop_eps, c.rmsprop_rho, c.rmsprop_centered,
          c.rmsprop_epsilon_placement, c.eval_every) == (
              "rmsprop", 0.00001, 0.0316, 0.95, True, "reference", 125_000)
  c = _cell(plan, "asterix/24_128/sn-2_rmsprop_lr0.1_eps0.0003125_s0")
  assert (c.lr, c.rmsprop_eps, c.rmsprop_centered, c.eval_every) == (
      0.1, 0.0003125, False, 100_000)
  c = _cell(plan, "space_invaders/24-24-24_128/none_sgd_lr0.00025_s1")
  assert (c.optimizer, c.lr, c.eval_every) == ("sgd", 0.00025, 100_000)
  assert {r.config.seed for r in plan} == {0, 1}
  small = experiments.dqn_study_plan("optimizer", "small", str(tmp_path))
  assert {r.config.env for r in small} == {"minatar:breakout"}
  assert {(r.config.lr, r.config.adam_eps) for r in small} == {
      (lr, eps) for lr in (0.00001, 0.0001, 0.0004642, 0.0021544)
      for eps in (0.0001, 0.001, 0.01)}
  assert {r.config.eval_every for r in small} == {15_000}  # the budget's


def test_long_budget_is_dqn_against_sn2_over_2m_steps(tmp_path):
  plan = experiments.dqn_study_plan("layers", "long", str(tmp_path))
  assert len(plan) == 4 * 2 * 3
  assert sorted({r.name.split("/", 1)[1] for r in plan}) == [
      f"16-16_128/{c}_s{s}" for c in ("none", "sn-2") for s in (0, 1, 2)]
  for r in plan:
    c = r.config
    assert (c.minatar_model, c.num_steps, c.eval_every, c.eval_steps,
            c.eval_episodes) == ("16-16/128", 2_000_000, 100_000, 25_000, 0)
    # The paper's protocol otherwise: minatar_dqn, epsilon 0.01 from 250k.
    assert (c.preset, c.agent, c.td_loss, c.update_period,
            c.target_update_period, c.learning_starts, c.epsilon_decay_steps,
            c.epsilon_end, c.replay_capacity) == (
                "minatar_dqn", "dqn", "mse", 4, 4_000, 5_000, 245_000, 0.01,
                100_000)
    assert c.spectral == ("-2" if "/sn-2_" in r.name else "none")


def test_every_budget_selects_cells_its_study_has():
  for name, budget in experiments.DQN_BUDGET_TABLE.items():
    for study, selection in budget.studies.items():
      cells = experiments._study_cells(study)  # pylint: disable=protected-access
      models = {m for m, _ in cells}
      configs = {c.name for _, c in cells}
      assert set(selection.models or ()) <= models, (name, study)
      assert set(selection.configs or ()) <= configs, (name, study)


def _cell(plan, name):
  return next(r.config for r in plan if r.name == name)


def test_dqn_study_cells_hold_the_papers_values(tmp_path):
  plan = experiments.dqn_study_plan("layers", "paper", str(tmp_path))
  c = _cell(plan, "seaquest/16-16_128/sn-2-3_s7")
  assert (c.minatar_model, c.spectral, c.seed) == ("16-16/128", "-2,-3", 7)
  assert c.root_dir == os.path.join(str(tmp_path), "runs", "seaquest/16-16_128/sn-2-3_s7")
  assert {r.config.spectral for r in plan} == {"none", "-2", "-3", "-4", "-2,-3"}
  plan = experiments.dqn_study_plan("sizes", "paper", str(tmp_path))
  assert _cell(plan, "asterix/32-32-24_256/sn-3-4_s3").spectral == "-3,-4"
  assert _cell(plan, "breakout/8_32/none_s0").minatar_model == "8/32"
  # SN settings on the depth-3 nets only.
  assert {r.config.minatar_model for r in plan if r.config.spectral != "none"} == {
      "8-8-8/32", "16-16-16/64", "24-24-24/128", "32-32-24/256"}
  plan = experiments.dqn_study_plan("smoothness", "paper", str(tmp_path))
  c = _cell(plan, "breakout/16_128/sn-1-2-3_k10_s2")
  assert (c.spectral, c.lipschitz_k, c.leave_smaller, c.minatar_model) == (
      "-1,-2,-3", 10.0, True, "16/128")
  plan = experiments.dqn_study_plan("schedulers", "paper", str(tmp_path))
  c = _cell(plan, "space_invaders/24-24-24_128/divgrad-pl-2_s9")
  assert (c.scheduler, c.scheduler_scope, c.scheduler_layers, c.leave_smaller,
          c.spectral, c.lipschitz_k) == ("divgrad", "per_layer", "-2", True, "none", 1.0)
  c = _cell(plan, "breakout/8-8-8_32/muleps-2_s0")
  assert (c.scheduler, c.scheduler_scope, c.leave_smaller) == ("muleps", "global", False)
  assert _cell(plan, "asterix/32-32-24_256/sn-2_s1").spectral == "-2"
  medium = experiments.dqn_study_plan("layers", "medium", str(tmp_path))
  assert {(r.config.num_steps, r.config.eval_steps, r.config.eval_every,
           r.config.epsilon_decay_steps) for r in medium} == {(200_000, 25_000, 50_000, 62_000)}
  assert {r.config.seed for r in medium} == {0, 1, 2}


@pytest.mark.parametrize("args,match", [
    (("tiny", "paper"), r"study='tiny' is not allowed; allowed: layers, sizes, smoothness, schedulers, optimizer"),
    (("layers", "huge"), r"budget='huge' is not allowed; allowed: paper, long, medium, small"),
    (("sizes", "long"), r"study='sizes' is not allowed at budget='long'; allowed: layers"),
])
def test_bad_dqn_studies_are_refused(tmp_path, args, match):
  with pytest.raises(ValueError, match=match):
    experiments.dqn_study_plan(*args, str(tmp_path))


def test_a_two_run_dqn_study_runs_through_the_same_path(tmp_path):
  out = str(tmp_path / "study")
  tiny = dict(TINY, num_steps=300, eval_episodes=0, eval_steps=100,
              target_update_period=48)
  plan = experiments.dqn_study_plan("layers", "small", out, games=["breakout"],
                                    seeds=[0], overrides=tiny)[:2]
  assert [r.name for r in plan] == ["breakout/16-16_128/none_s0",
                                    "breakout/16-16_128/sn-2_s0"]
  result = experiments.run_study(plan, out, workers=2, echo=lambda _: None)
  assert result["finished"] == sorted(r.name for r in plan) and not result["failed"]
  for run in plan:
    rows = open(os.path.join(run.config.root_dir, "metrics.csv")).read().splitlines()
    assert rows[-1].split(",")[0] == "300"
  with open(os.path.join(out, "report", "index.md")) as f:
    index = f.read()
  # DQN is the baseline every score is divided by; both cells are in the report.
  assert "final score of DQN (the unnormalised baseline)" in index
  assert "| DQN | 1 | 1 |" in index and "| SN[-2] | 1 | 1 |" in index
  assert os.path.isfile(os.path.join(out, "report", "scores_by_config.png"))


def test_a_study_extended_to_a_bigger_budget_resumes_and_matches_one_run(tmp_path):
  """Run a plan, then the same plan with more steps (as --num_steps then the
  budget's own): each run resumes from its checkpoint and ends as a run of
  the bigger budget from the start would."""
  tiny = dict(TINY, eval_episodes=0, eval_steps=100, target_update_period=48,
              eval_every=100)

  def plan(out, num_steps):
    return experiments.dqn_study_plan(
        "layers", "long", out, games=["breakout"], seeds=[0],
        overrides=dict(tiny, num_steps=num_steps))[1:]  # SN[-2]

  out, whole = str(tmp_path / "extended"), str(tmp_path / "whole")
  experiments.run_study(plan(out, 200), out, workers=1, report=False,
                        echo=lambda _: None)
  lines = []
  result = experiments.run_study(plan(out, 400), out, workers=1, report=False,
                                 echo=lines.append)
  assert "1 runs: 0 already complete, 1 to run" in lines[0]
  assert result["finished"] == ["breakout/16-16_128/sn-2_s0"]
  experiments.run_study(plan(whole, 400), whole, workers=1, report=False,
                        echo=lambda _: None)
  name = "runs/breakout/16-16_128/sn-2_s0/metrics.csv"
  a = logs.read_csv(os.path.join(out, name))
  b = logs.read_csv(os.path.join(whole, name))
  assert [r["step"] for r in a] == [r["step"] for r in b] == ["100", "200", "300", "400"]
  for ra, rb in zip(a, b):
    for key in ra:
      if key not in ("wall_time", "steps_per_second"):
        assert ra[key] == rb[key], (ra["step"], key)
