"""A training run's directory: its layout, and whether the run is complete.

    root/
      config.json          the run's TrainConfig
      metrics.csv          one row per evaluation (sn_tf.logs)
      train/, eval/        TensorBoard scalars
      checkpoints/         ckpt-<step>/ (sn_tf.checkpointing)
      policies/            step_<N>/ at each evaluation and final/ (sn_tf.export)
      measure_states.npy   the fixed states of the measures (docs/measures.md)

Training writes it, sweeps ask it whether a run is done, analysis reads it;
none of them spells a file name of its own.
"""

import csv
import json
import os
from typing import Any, Dict, Optional

CONFIG = "config.json"
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"
POLICIES = "policies"
FINAL_POLICY = "final"
MEASURE_STATES = "measure_states.npy"
TRAIN_LOGS, EVAL_LOGS = "train", "eval"
# Subdirectories that never hold a run of their own.
NOT_RUNS = (CHECKPOINTS, POLICIES)


class RunDirectory:
  """The paths of one run directory and what its files say.

  Args:
    root: the run directory (need not exist yet).
  """

  def __init__(self, root: str):
    self.root = os.path.abspath(root)

  def path(self, *parts: str) -> str:
    return os.path.join(self.root, *parts)

  @property
  def config_path(self) -> str:
    return self.path(CONFIG)

  @property
  def metrics_path(self) -> str:
    return self.path(METRICS)

  @property
  def checkpoints(self) -> str:
    return self.path(CHECKPOINTS)

  @property
  def policies(self) -> str:
    return self.path(POLICIES)

  def policy(self, step: Optional[int] = None) -> str:
    """``policies/step_<step>``, or ``policies/final`` without a step."""
    return self.path(POLICIES, FINAL_POLICY if step is None else f"step_{step}")

  @property
  def measure_states(self) -> str:
    return self.path(MEASURE_STATES)

  def is_run(self) -> bool:
    """Whether it holds a config and a non-empty metrics file."""
    return (os.path.isfile(self.config_path) and os.path.isfile(self.metrics_path)
            and os.path.getsize(self.metrics_path) > 0)

  def config(self) -> Dict[str, Any]:
    """``config.json`` as a dict (as written, by whichever sn_tf)."""
    with open(self.config_path) as f:
      return json.load(f)

  def last_evaluated_step(self) -> Optional[int]:
    """The step of the last ``metrics.csv`` row (None without a row)."""
    if not os.path.isfile(self.metrics_path):
      return None
    with open(self.metrics_path, newline="") as f:
      rows = list(csv.DictReader(f))
    try:
      return int(float(rows[-1]["step"])) if rows else None
    except (KeyError, ValueError):
      return None

  def is_complete(self, num_steps: Optional[int] = None) -> bool:
    """Whether the run has evaluated at ``num_steps`` (default: its own
    config's) or later: the runner always evaluates at its last step."""
    if num_steps is None:
      if not os.path.isfile(self.config_path):
        return False
      num_steps = self.config().get("num_steps")
      if num_steps is None:
        return False
    last = self.last_evaluated_step()
    return last is not None and last >= int(num_steps)
