"""sn_tf: spectral normalisation for deep RL (Gogianu et al., ICML 2021) in TF.

Importing sn_tf makes ``tf.keras`` Keras 2 (the tf-keras package), which
TF-Agents needs: it sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is first
imported. TensorFlow reads that variable when it is imported, so a process that
imported TensorFlow with Keras 3 active before sn_tf is refused here, with the
fix, instead of failing later inside Keras.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
_TRUE = ("1", "true", "True")


def _use_keras_2() -> None:
  value = _os.environ.get(LEGACY_KERAS_ENV)
  if value is not None and value not in _TRUE:
    raise ImportError(
        f"sn_tf needs Keras 2 (tf-keras) as tf.keras, but {LEGACY_KERAS_ENV}="
        f"{value!r} asks TensorFlow for Keras 3; unset it or set it to 1.")
  tf = _sys.modules.get("tensorflow")
  if tf is not None and not getattr(tf, "_tf_uses_legacy_keras", False):
    raise ImportError(
        "TensorFlow was imported before sn_tf with Keras 3 as tf.keras; sn_tf "
        "(TF-Agents) needs Keras 2 (tf-keras). Import sn_tf before TensorFlow, "
        f"or set {LEGACY_KERAS_ENV}=1 in the environment.")
  _os.environ[LEGACY_KERAS_ENV] = "1"  # also for subprocesses and Ray workers


_use_keras_2()
