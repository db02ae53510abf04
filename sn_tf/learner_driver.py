"""Acting and learning through the learner's compiled calls (one part of the
runner, ``sn_tf.train``).

``LearnerDriver`` chooses each env's epsilon-greedy action and runs the
updates due after an env step: one per ``update_period`` env steps once
``learning_starts`` steps are stored, the last of them fused with the next
step's greedy actions in one compiled call (the updates are those of
``agent.train``; tests check it). Its explore RNG is its part of a
checkpoint.
"""

import math
from typing import Any, Dict, List, Optional

import numpy as np

from sn_tf import faults
from sn_tf.agents import Learner
from sn_tf.config import TrainConfig
from sn_tf.fast_call import FlatCall


def linear_epsilon(step: int, config: TrainConfig) -> float:
  """Dopamine's linearly decaying epsilon, with a warm-up at epsilon_start.

  ``start`` until ``learning_starts``, then linear to ``end`` over
  ``epsilon_decay_steps`` steps, then ``end``.
  """
  start, end = config.epsilon_start, config.epsilon_end
  left = config.epsilon_decay_steps + config.learning_starts - step
  bonus = (start - end) * left / config.epsilon_decay_steps
  return end + min(max(bonus, 0.0), start - end)


class LearnerDriver:
  """Epsilon-greedy acting and the updates of one run.

  Args:
    config: the run's config.
    learner: its learner.
    where: the run directory, named in the errors on a non-finite value.
  """

  def __init__(self, config: TrainConfig, learner: Learner, where: str):
    self.config, self.learner, self._where = config, learner, where
    self.num_actions = learner.num_actions
    self.explore_rng = np.random.default_rng([config.seed, 1])
    # FlatCall: the compiled calls without tf.function's per-call Python
    # dispatch (~0.3-1 ms a call here; see sn_tf/fast_call.py).
    self.greedy = FlatCall(learner.compiled_greedy_actions())
    # Acting: the same call, unless acting also iterates
    # (act_power_iteration); evaluations always use ``greedy``.
    self._acting = (FlatCall(learner.compiled_acting_actions())
                    if config.act_power_iteration else self.greedy)
    self._update_and_act = FlatCall(learner.compiled_update_and_act())
    # More than one update per env step (num_envs > update_period): all but
    # the last are plain updates, traced when first needed.
    self._update: Optional[FlatCall] = None
    # The greedy actions for the envs' current observations with the current
    # weights, when the last update computed them (None: compute when needed).
    self._next_greedy: Optional[List[int]] = None

  def act(self, epsilon: float, stepper) -> List[int]:
    """One action per env of ``stepper`` (an ``EnvStepper``): random with
    probability ``epsilon``, else greedy; one batched greedy call (inference
    mode) for the envs that need one, unless the last update computed them."""
    n = len(stepper)
    if n == 1:  # the same draws and calls as below, for one env
      if self.explore_rng.random() < epsilon:
        action = int(self.explore_rng.integers(self.num_actions))
      elif self._next_greedy is not None:
        action = self._next_greedy[0]
      else:
        action = int(self._acting(stepper.observation(0)[None]).numpy()[0])
      self._next_greedy = None
      return [action]
    actions: List[Optional[int]] = [None] * n
    for i in range(n):
      if self.explore_rng.random() < epsilon:
        actions[i] = int(self.explore_rng.integers(self.num_actions))
      elif self._next_greedy is not None:
        actions[i] = self._next_greedy[i]
    need = [i for i in range(n) if actions[i] is None]
    if need:
      greedy = self._acting(stepper.observations(need))
      for i, a in zip(need, greedy.numpy()):
        actions[i] = int(a)
    self._next_greedy = None
    return actions

  def learn(self, previous: int, state, stepper) -> None:
    """The updates due for the env steps ``previous`` .. ``state.step``
    (``state`` a ``LoopState``, whose loss tallies get each loss).

    Raises:
      FloatingPointError: a loss is not finite.
    """
    c = self.config
    first = max(previous, c.learning_starts)
    num_updates = max(0, state.step // c.update_period - first // c.update_period)
    for u in range(num_updates):
      batch = stepper.replay.sample(c.batch_size)
      if u == num_updates - 1:
        loss, greedy = self._update_and_act(batch, stepper.observations())
        self._next_greedy = greedy.numpy().tolist()
      else:
        if self._update is None:
          self._update = FlatCall(self.learner.compiled_update())
        loss = self._update(batch)
      loss = faults.value("loss", float(loss))
      if not math.isfinite(loss):
        raise FloatingPointError(f"loss is {loss} at step {state.step}; "
                                 "stopping. The last checkpoint and export "
                                 f"are intact (in {self._where}).")
      state.window_losses.append(loss)
      state.losses_since_eval.append(loss)

  def layer_stats(self, step: int) -> Dict[str, float]:
    """Each normalised layer's sigma, and the scheduler's rho if it has one.

    Raises:
      FloatingPointError: one of them is not finite.
    """
    stats = {name: faults.value("sigma", value)
             for name, value in self.learner.sigmas().items()}
    rho = self.learner.rho()
    if rho is not None:
      stats["rho"] = faults.value("rho", rho)
    for name, value in stats.items():
      if not np.isfinite(value):
        raise FloatingPointError(
            f"{name} is {value} at step {step}; stopping. The last "
            f"checkpoint and export are intact (in {self._where}).")
    return stats

  def rng_state(self) -> Dict[str, Any]:
    return self.explore_rng.bit_generator.state

  def restore_rng(self, state: Dict[str, Any]) -> None:
    self.explore_rng.bit_generator.state = state
