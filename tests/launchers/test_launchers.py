"""Launchers: flag validation before any work, smoke runs, evaluation."""

import importlib.util
import json
import os
import re
import subprocess
import sys

from absl import flags
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--num_steps=200", "--eval_every=100", "--eval_episodes=2",
        "--learning_starts=50", "--replay_capacity=500", "--batch_size=8",
        "--log_every=50", "--eval_max_episode_steps=100"]


def _load(name):
  spec = importlib.util.spec_from_file_location(
      f"launcher_{name}", os.path.join(REPO, "launchers", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


TRAIN = _load("train")  # defines its flags once per test process


def parse(args):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["train.py"] + list(args))


def run(script, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, os.path.join(REPO, "launchers", script),
                         *args], capture_output=True, text=True, env=env,
                        timeout=600)


BAD = [
    (["--env=minatar:brekout"], r"--env='minatar:brekout' is not allowed; unknown MinAtar game 'brekout'"),
    (["--env=atari:Pongg", "--preset=atari"], r"--env='atari:Pongg' is not allowed"),
    (["--num_steps=0"], r"--num_steps=0 is not allowed; an integer >= 1"),
    (["--eval_every=-3"], r"--eval_every=-3"),
    (["--spectral=-9"], r"--spectral='-9': layer index -9 is out of range for a network with 3"),
    (["--spectral=-1;-2"], r"malformed item"),
    (["--conv_norm=svd"], r"--conv_norm='svd' is not allowed; allowed: operator, reshape"),
    (["--lipschitz_k=-1"], r"--lipschitz_k=-1.0"),
    (["--preset=atari"], r"--preset='atari' is not allowed; a minatar env needs preset minatar or minatar_dqn"),
    (["--sticky_action_prob=1.5"], r"--sticky_action_prob=1.5"),
    (["--minatar_model=16/128,x"], r"--minatar_model='16/128,x' is not allowed; allowed: '<conv filters>/<hidden units>'"),
    (["--agent=dqn", "--minatar_model=16/128", "--spectral=-4"],
     r"--spectral='-4': layer index -4 is out of range for a network with 3"),
    (["--agent=dqn", "--td_loss=l2"], r"--td_loss='l2' is not allowed; allowed: mse, huber"),
    (["--agent=dqn", "--eval_episodes=3", "--eval_steps=100"], r"--eval_steps=100 is not allowed; evaluate either"),
    (["--batch_size=64", "--replay_capacity=10"], r"--replay_capacity=10"),
]


@pytest.mark.parametrize("args,match", BAD)
def test_bad_flags_are_refused_with_flag_value_and_allowed(args, match, tmp_path,
                                                          capsys):
  base = ["--env=minatar:breakout", f"--root_dir={tmp_path / 'r'}"]
  # Later flags win, so a case's --env replaces the base one.
  parse(base + args)
  with pytest.raises(SystemExit) as exited:
    TRAIN.build_config()
  assert exited.value.code == 2
  err = capsys.readouterr().err
  assert re.search(match, err), err
  assert "--help' for the flags." in err
  assert not (tmp_path / "r").exists()  # no work done


def test_every_config_field_is_a_flag_with_its_help():
  import dataclasses  # pylint: disable=g-import-not-at-top
  from sn_tf.config import TrainConfig  # pylint: disable=g-import-not-at-top
  for field in dataclasses.fields(TrainConfig):
    assert field.name in flags.FLAGS, field.name
    assert field.metadata["help"] in flags.FLAGS[field.name].help, field.name


@pytest.mark.parametrize("args,preset,agent", [
    ([], "minatar", "c51"), (["--agent=dqn"], "minatar_dqn", "dqn"),
    (["--preset=minatar_dqn"], "minatar_dqn", "dqn"),
    (["--agent=dqn", "--preset=minatar"], "minatar", "dqn"),
    (["--env=atari:Pong", "--agent=dqn"], "atari", "dqn")])
def test_default_preset_follows_env_and_agent(args, preset, agent, tmp_path):
  parse(["--env=minatar:breakout", f"--root_dir={tmp_path / 'r'}"] + args)
  config = TRAIN.build_config()
  assert (config.preset, config.agent) == (preset, agent)


def _entry_point_cases():
  """(env, agent flag, preset flag) of every combination train.py accepts."""
  from sn_tf.config import PRESETS  # pylint: disable=g-import-not-at-top
  for env in ("minatar:breakout", "atari:Pong"):
    suite = env.split(":")[0]
    for agent in (None, "c51", "dqn"):
      for preset in (None,) + tuple(p for p in PRESETS if PRESETS[p].suite == suite):
        yield env, agent, preset


def test_train_launcher_builds_the_one_config(tmp_path):
  from sn_tf.config import make_config  # pylint: disable=g-import-not-at-top
  root = str(tmp_path / "r")
  for env, agent, preset in _entry_point_cases():
    args = [f"--env={env}", f"--root_dir={root}"]
    args += [f"--agent={agent}"] if agent else []
    args += [f"--preset={preset}"] if preset else []
    parse(args)
    assert TRAIN.build_config() == make_config(env, root, preset, agent=agent), args


def test_flag_type_errors_from_absl():
  with pytest.raises(flags.IllegalFlagValueError, match="num_steps"):
    parse(["--env=minatar:breakout", "--root_dir=/tmp/r", "--num_steps=abc"])


def test_train_launcher_exits_nonzero_before_any_work(tmp_path):
  result = run("train.py", "--env=minatar:breakout", f"--root_dir={tmp_path / 'r'}",
               "--spectral=-7")
  assert result.returncode != 0
  assert "--spectral='-7'" in result.stderr
  assert not (tmp_path / "r").exists()


def test_train_main_smoke_then_evaluate_exported_policy(tmp_path, capsys):
  root = tmp_path / "run"
  parse(["--env=minatar:breakout", f"--root_dir={root}", "--spectral=-2"] + TINY)
  TRAIN.main(["train.py"])
  assert "policy:" in capsys.readouterr().out
  policy = root / "policies" / "final"
  outs = []
  for _ in range(2):
    result = run("evaluate.py", f"--policy_dir={policy}", "--episodes=3",
                 "--seed=7", "--json")
    assert result.returncode == 0, result.stderr
    outs.append(json.loads(result.stdout.strip().splitlines()[-1]))
  assert outs[0] == outs[1]  # deterministic for a fixed seed
  assert outs[0]["env"] == "minatar:breakout" and outs[0]["episodes"] == 3
  # The plain SavedModel and the TFLite model play the same episodes.
  for export_format in ("saved_model", "tflite"):
    result = run("evaluate.py", f"--policy_dir={policy}", "--episodes=3",
                 "--seed=7", "--json", f"--export_format={export_format}")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop("export_format") == export_format
    assert out == {k: v for k, v in outs[0].items() if k != "export_format"}
  # Another game with other observation channels is refused by name.
  bad = run("evaluate.py", f"--policy_dir={policy}", "--env=minatar:seaquest")
  assert bad.returncode != 0
  assert "minatar:seaquest" in bad.stderr and "(10, 10, 10)" in bad.stderr
  # A directory that is not a SavedModel.
  bad = run("evaluate.py", f"--policy_dir={tmp_path}")
  assert bad.returncode != 0 and "is not a SavedModel directory" in bad.stderr
  # Plot and table of the run; a label count that does not match is refused.
  out = tmp_path / "plot" / "c.png"
  result = run("plot.py", f"--runs={root},{root}", "--labels=sn,sn",
               f"--out={out}", f"--table={tmp_path / 't.md'}")
  assert result.returncode == 0, result.stderr
  assert out.is_file() and "| sn | 2 | 200 |" in (tmp_path / "t.md").read_text()
  bad = run("plot.py", f"--runs={root}", "--labels=a,b", f"--out={out}")
  assert bad.returncode != 0 and "--labels has 2 entries but --runs has 1" in bad.stderr
  # Training return per iteration beside Dopamine's C51 seeds.
  reference = os.path.join(REPO, "benchmarks", "results",
                           "dopamine_c51_roadrunner", "c51_roadrunner.csv")
  result = run("plot.py", f"--runs={root}", "--labels=sn", "--per_iteration=100",
               f"--reference={reference}", "--reference_label=Dopamine C51",
               f"--out={tmp_path / 'it.png'}", f"--table={tmp_path / 'it.md'}")
  assert result.returncode == 0, result.stderr
  table = (tmp_path / "it.md").read_text()
  assert "| sn | 0 | 1-100 |" in table and "| sn | 1 | 101-200 |" in table
  assert "| 5, 24.8 to 29.4 (26.9) |" in table
  bad = run("plot.py", f"--runs={root}", f"--reference={reference}", f"--out={out}")
  assert bad.returncode != 0 and "--reference needs --per_iteration" in bad.stderr


def test_reproduce_plan_only_prints_the_runs_and_runs_nothing(tmp_path):
  out = tmp_path / "out"
  result = run("reproduce.py", "--study=schedulers", "--budget=medium",
               "--plan_only", f"--out={out}")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert lines[-1] == "runs=72" and len(lines) == 73
  configs = [json.loads(line) for line in lines[:-1]]
  assert {c["scheduler"] for c in configs} == {"none", "divout", "divgrad", "muleps"}
  assert all(not os.path.isabs(c["root_dir"]) for c in configs)
  assert not out.exists()


@pytest.mark.parametrize("script,args,match", [
    ("reproduce.py", ["--agent=c51", "--budget=huge"], "--budget='huge' is not allowed; allowed: paper, small"),
    ("reproduce.py", ["--seeds=0,x"], "--seeds=0,x: allowed: comma-separated integers"),
    ("reproduce.py", ["--agent=c51", "--games=pong"], "--games: 'pong' is not allowed"),
    ("reproduce.py", [], "--study=None is not allowed; allowed: layers, sizes, smoothness, schedulers"),
    ("reproduce.py", ["--study=tiny"], "--study='tiny' is not allowed; allowed: layers"),
    ("reproduce.py", ["--study=layers", "--budget=huge"], "--budget='huge' is not allowed; allowed: paper, long, medium, small"),
    ("reproduce.py", ["--study=layers", "--games=pong"], "--games: 'pong' is not allowed"),
    ("reproduce.py", ["--agent=c51", "--study=layers"], "--study='layers' is not allowed with --agent=c51"),
    ("reproduce.py", ["--study=layers", "--configs=none"], "--configs is not allowed with --agent=dqn"),
    ("aggregate.py", ["--runs_dir=/nonexistent"], "'/nonexistent' is not a directory"),
])
def test_study_launchers_refuse_bad_flags_before_any_work(script, args, match, tmp_path):
  out = tmp_path / "out"
  result = run(script, f"--out={out}", *args)
  assert result.returncode != 0 and match in result.stderr, result.stderr
  assert not out.exists()


def test_convert_checkpoint_reads_no_pickle_without_the_trust_flag(tmp_path):
  result = run("convert_checkpoint.py", f"--run_dir={tmp_path}")
  assert result.returncode != 0
  assert f"run_dir='{tmp_path}' holds no checkpoints" in result.stderr, result.stderr
  ckpt = tmp_path / "checkpoints" / "ckpt-000000000200"
  ckpt.mkdir(parents=True)
  (ckpt / "state.pkl").write_bytes(b"not read")  # never opened without the flag
  result = run("convert_checkpoint.py", f"--run_dir={tmp_path}")
  assert result.returncode != 0
  assert f"{ckpt / 'state.pkl'}" in result.stderr and "--trust_pickled_checkpoint" in result.stderr
  assert (ckpt / "state.pkl").read_bytes() == b"not read"


@pytest.mark.parametrize("script,phrase", [
    ("aggregate.py", "with 95% stratified-bootstrap"),
    ("plot.py", "with a 95% bootstrap band")])
def test_help_prints_the_docstring_as_written(script, phrase):
  # absl %-formats the module docstring: a literal % must be written %%.
  out = run(script, "--help")
  assert phrase in out.stdout, out.stdout[:800]
