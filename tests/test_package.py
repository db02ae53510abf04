"""``import sn_tf`` makes tf.keras Keras 2 before TensorFlow loads, or refuses."""

import os
import subprocess
import sys

import pytest


def _python(code, **env):
  environ = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
  environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, env=environ, timeout=600)


def test_import_sn_tf_first_gives_keras_2_here_and_in_subprocesses():
  result = _python(
      "import sn_tf, os, subprocess, sys, tensorflow as tf\n"
      "print(tf.keras.__name__, os.environ['TF_USE_LEGACY_KERAS'])\n"
      "print(subprocess.run([sys.executable, '-c', 'import tensorflow as tf; "
      "print(tf.keras.__name__)'], capture_output=True, text=True).stdout)")
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.split()
  assert lines[0].startswith("tf_keras") and lines[1] == "1", result.stdout
  assert lines[2].startswith("tf_keras"), result.stdout  # inherited by children


@pytest.mark.parametrize("code,env,match", [
    ("import tensorflow; import sn_tf", {},
     "TensorFlow was imported before sn_tf with Keras 3"),
    ("import sn_tf", {"TF_USE_LEGACY_KERAS": "0"},
     "TF_USE_LEGACY_KERAS='0' asks TensorFlow for Keras 3"),
])
def test_keras_3_is_refused_with_the_fix(code, env, match):
  result = _python(code, **env)
  assert result.returncode != 0
  assert match in result.stderr, result.stderr[-2000:]


def test_tensorflow_imported_with_keras_2_already_is_accepted():
  result = _python("import tensorflow; import sn_tf.layers",
                   TF_USE_LEGACY_KERAS="1")
  assert result.returncode == 0, result.stderr[-2000:]
