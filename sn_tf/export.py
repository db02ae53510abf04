"""Export of greedy policies as SavedModels (TF-Agents ``PolicySaver``).

An exported directory holds the SavedModel and ``sn_tf_policy.json`` (the env
id, observation shape/dtype, number of actions and train step) so that
evaluation can check an env against the policy before playing. Exports are
atomic: written to a temporary sibling directory, then renamed into place.
"""

import contextlib
import json
import logging as std_logging
import os
import shutil
import warnings
from typing import Any, Dict, Iterator

from absl import logging
import tensorflow as tf
from tf_agents.policies import policy_saver

from sn_tf import faults

METADATA_FILE = "sn_tf_policy.json"


class PolicyExporter:
  """Saves ``policy`` (e.g. ``agent.policy``) under ``<policies_dir>/<name>``.

  The ``PolicySaver`` is built once (tracing the policy's functions); each
  ``export`` then only writes files. The exported policy's network runs in
  inference mode, so loading and acting never runs power iteration.
  """

  def __init__(self, policy, train_step: tf.Variable, metadata: Dict[str, Any],
               policies_dir: str = ""):
    self._saver = policy_saver.PolicySaver(policy, batch_size=None,
                                           train_step=train_step)
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
      self._saver.save(tmp)
    metadata = dict(self._metadata, train_step=int(self._train_step.numpy()))
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
  about StructuredValue encoding; loading works without importing TFP.
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
