"""Export of greedy policies: a TF-Agents SavedModel, a plain one, a TFLite file.

An exported directory ``<policies_dir>/<name>/`` holds three forms of the same
greedy policy, and ``sn_tf_policy.json`` (the env id, observation shape/dtype,
number of actions, train step, the forms' paths) so that evaluation can check
an env against the policy before playing:

- the directory itself: TF-Agents' ``PolicySaver`` SavedModel (``action`` on a
  ``TimeStep``), for TF-Agents users; loading it needs TF-Agents and TFP
  imported (its signatures carry TFP distribution types);
- ``serving/``: a plain SavedModel whose ``serving_default`` signature maps
  ``observation [B, *obs]`` to ``action [B]`` (int32, greedy) and
  ``q_values [B, A]``: core TensorFlow ops only, so it loads with
  ``tf.saved_model.load`` in a process that imported nothing but TensorFlow
  (Keras 3 active or not);
- ``policy.tflite``: that signature converted by ``tf.lite.TFLiteConverter``.

Both SavedModels are written without TF1's saver functions (file ops that
loaders do not need), so that ``sn_tf.export_check`` can refuse any file op
in an export; the TFLite conversion reads a temporary copy that has them.

All three run the network in inference mode: the spectral norms come from the
stored power-iteration vectors u, v, which nothing in an export updates.
Exports are atomic: written to a temporary sibling directory, then renamed
into place.
"""

import contextlib
import json
import logging as std_logging
import os
import shutil
import tempfile
import warnings
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

from absl import logging
import tensorflow as tf
from tf_agents.policies import policy_saver

from sn_tf import console
from sn_tf import faults

METADATA_FILE = "sn_tf_policy.json"
SERVING_DIR = "serving"
TFLITE_FILE = "policy.tflite"
FORMATS = ("tf_agents", "saved_model", "tflite")
# Without the TF1 saver functions (SaveV2, RestoreV2, MergeV2Checkpoints: file
# ops): loaders restore the variables from the object graph without them, and
# a genuine export then holds no file op at all (``sn_tf.export_check``).
SAVE_OPTIONS = tf.saved_model.SaveOptions(experimental_skip_saver=True)


class ServingPolicy(tf.Module):
  """A greedy policy as plain TensorFlow: ``observation -> action, q_values``.

  Args:
    q_values: ``observations [B, *obs] -> [B, A]`` Q-values, core TF ops only
      (e.g. ``sn_tf.agents.c51.q_values_fn``).
    variables: every variable ``q_values`` reads (e.g. ``network.variables``),
      tracked here so that a SavedModel of this module holds them.
    observation_spec: the spec of one observation (shape and dtype).
  """

  def __init__(self, q_values: Callable[[tf.Tensor], tf.Tensor],
               variables: Sequence[tf.Variable], observation_spec):
    super().__init__(name="sn_tf_serving_policy")
    self._variables = list(variables)
    spec = tf.TensorSpec([None] + list(observation_spec.shape),
                         tf.as_dtype(observation_spec.dtype), name="observation")

    @tf.function(input_signature=[spec], autograph=False)
    def greedy(observation):
      """``{"action": [B] int32, "q_values": [B, A] float32}``."""
      q = q_values(observation)
      return {"action": tf.argmax(q, axis=-1, output_type=tf.int32),
              "q_values": q}

    self.greedy = greedy

  def save(self, directory: str, options: Optional[
      tf.saved_model.SaveOptions] = SAVE_OPTIONS) -> None:
    """Writes the plain SavedModel (``serving_default`` = ``greedy``)."""
    tf.saved_model.save(self, directory,
                        signatures={"serving_default": self.greedy},
                        options=options)


def to_tflite(saved_model_dir: str, path: str) -> None:
  """Converts the ``serving_default`` signature of a plain SavedModel written
  with its saver functions (the converter restores variables through them)."""
  converter = tf.lite.TFLiteConverter.from_saved_model(
      saved_model_dir, signature_keys=["serving_default"])
  with open(path, "wb") as f:
    f.write(converter.convert())


class PolicyExporter:
  """Saves ``policy`` (e.g. ``agent.policy``) and ``serving`` under
  ``<policies_dir>/<name>`` (the three forms above).

  The ``PolicySaver`` and the serving module are built once (tracing their
  functions); each ``export`` then writes files and converts to TFLite.
  """

  def __init__(self, policy, serving: ServingPolicy, train_step: tf.Variable,
               metadata: Dict[str, Any], policies_dir: str = ""):
    self._saver = policy_saver.PolicySaver(policy, batch_size=None,
                                           train_step=train_step)
    self._serving = serving
    self._train_step = train_step
    self._metadata = dict(metadata)
    if policies_dir and os.path.isdir(policies_dir):
      # Left by an export killed mid-write (the caller holds the run lock).
      from sn_tf.checkpointing import remove_stale_temporaries  # pylint: disable=g-import-not-at-top
      remove_stale_temporaries(policies_dir)

  def export(self, directory: str) -> str:
    """Writes the policy to ``directory`` atomically; returns the path."""
    directory = os.path.abspath(directory)
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tmp-{os.path.basename(directory)}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with _quiet_saving():
      self._saver.save(tmp, options=SAVE_OPTIONS)
      self._serving.save(os.path.join(tmp, SERVING_DIR))
      with tempfile.TemporaryDirectory(dir=parent,
                                       prefix=".tmp-tflite-") as with_saver:
        self._serving.save(with_saver, options=None)
        with console.dropping_known_notices():
          to_tflite(with_saver, os.path.join(tmp, TFLITE_FILE))
    metadata = dict(self._metadata, train_step=int(self._train_step.numpy()),
                    saved_model=SERVING_DIR, tflite=TFLITE_FILE)
    with open(os.path.join(tmp, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2, sort_keys=True)
    faults.hit("export.mid")
    old = None
    if os.path.exists(directory):
      old = f"{tmp}-old"
      os.rename(directory, old)
    os.rename(tmp, directory)
    if old:
      shutil.rmtree(old, ignore_errors=True)
    return directory


@contextlib.contextmanager
def _quiet_saving() -> Iterator[None]:
  """Hides SavedModel's per-save INFO lines and two known, harmless warnings.

  TF logs asset/fingerprint paths and renamed signature inputs at INFO on
  every save, and TFP's ``Deterministic`` type spec triggers a UserWarning
  about StructuredValue encoding (loading that form needs TFP imported).
  """
  tf_logger = std_logging.getLogger("tensorflow")
  old_tf, old_absl = tf_logger.level, logging.get_verbosity()
  tf_logger.setLevel(std_logging.ERROR)
  logging.set_verbosity(logging.ERROR)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message="Encoding a StructuredValue")
      yield
  finally:
    tf_logger.setLevel(old_tf)
    logging.set_verbosity(old_absl)


def read_metadata(policy_dir: str) -> Dict[str, Any]:
  """The ``sn_tf_policy.json`` of an exported policy (ValueError if absent)."""
  path = os.path.join(policy_dir, METADATA_FILE)
  if not os.path.isfile(os.path.join(policy_dir, "saved_model.pb")):
    raise ValueError(f"policy_dir={policy_dir!r} is not a SavedModel "
                     "directory (no saved_model.pb); give a directory written "
                     "by sn_tf's export, e.g. <root_dir>/policies/final.")
  if not os.path.isfile(path):
    raise ValueError(f"policy_dir={policy_dir!r} has no {METADATA_FILE}; it was "
                     "not exported by sn_tf.")
  with open(path) as f:
    return json.load(f)
