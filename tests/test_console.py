"""A clean console: known start-up notices dropped, everything else kept;
a bad flag in one line."""

import os
import subprocess
import sys

import pytest

from sn_tf import console

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GYM_NOTICE = "Gym has been unmaintained since 2022"


def test_only_known_notices_are_dropped(capfd):
  lines = [
      "WARNING: All log messages before absl::InitializeLog() is called are "
      "written to STDERR",
      "I0000 00:00:1796539942.269879   11310 port.cc:153] oneDNN custom "
      "operations are on. You may see slightly different numerical results.",
      GYM_NOTICE + " and does not support NumPy 2.0 amongst other critical "
      "functionality.",
      "W0000 00:00:1796540082.055136   11882 tf_tfl_flatbuffer_helpers.cc:364] "
      "Ignored output_format.",
      "W0000 00:00:1796540082.055136   11882 some_kernel.cc:12] A real warning.",
      "Traceback (most recent call last):",
  ]
  with console.dropping_known_notices():
    for line in lines:  # as C++ code writes (Python's: the launcher test)
      os.write(2, (line + "\n").encode())
  assert capfd.readouterr().err.splitlines() == lines[4:]


def _launch(*args, **env):
  # The launcher's own setting, not the test process's.
  environment = {k: v for k, v in os.environ.items()
                 if k not in ("TF_CPP_MIN_LOG_LEVEL", console.SHOW_ENV)}
  environment.update(env)
  return subprocess.run([sys.executable, os.path.join(REPO, "launchers", "train.py"),
                         *args], capture_output=True, text=True,
                        env=environment, timeout=900, cwd=REPO)


def test_bad_flag_is_one_line_and_where_help_is(tmp_path):
  result = _launch("--env=minatar:breakout", f"--root_dir={tmp_path / 'r'}",
                   "--lr=-1")
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert lines == ["train.py: --lr=-1.0 is not allowed; a number > 0.",
                   "Run 'train.py --help' for the flags."], result.stderr
  assert result.stdout == ""


def test_a_run_prints_its_own_lines_and_real_warnings(tmp_path):
  # num_steps <= learning_starts: the runner warns that nothing is learnt.
  args = ["--env=minatar:breakout", f"--root_dir={tmp_path / 'r'}",
          "--num_steps=200", "--eval_every=200", "--eval_episodes=1",
          "--learning_starts=500", "--log_every=100",
          "--eval_max_episode_steps=100"]
  result = _launch(*args)
  assert result.returncode == 0, result.stderr
  err = result.stderr.splitlines()
  assert any("this run never updates the network" in line for line in err)
  assert not [line for line in err if console.is_known_notice(line)]
  assert GYM_NOTICE not in result.stderr
  assert not [line for line in err if "functional_saver" in line]
  assert result.stdout.startswith("eval/return=")
  # SN_TF_SHOW_NOTICES=1 brings the notices back.
  shown = _launch(*[a.replace("/r", "/s") for a in args],
                  **{console.SHOW_ENV: "1"})
  assert shown.returncode == 0, shown.stderr
  assert GYM_NOTICE in shown.stderr


@pytest.mark.parametrize("name", ["train", "evaluate", "sweep", "reproduce",
                                  "aggregate", "main_job", "convert_checkpoint"])
def test_every_launcher_starts_quietly(name):
  source = open(os.path.join(REPO, "launchers", f"{name}.py")).read()
  assert "console.start()" in source
  assert "app.UsageError" not in source
