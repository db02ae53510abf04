"""``MinAtarEnv``: MinAtar games as TF-Agents ``PyEnvironment``s
(docs/protocol.md#minatar-games).

MinAtar (Young & Tian, 2019) renders each game as a ``10 x 10 x C`` boolean
grid, one channel per object type. The paper's C51 setup uses the full
6-action set, MinAtar's sticky actions (p = 0.1, on in training and
evaluation) and its difficulty ramping, which are MinAtar's own defaults.
"""

from typing import Any, Dict, Tuple

import minatar
import numpy as np
from tf_agents.environments import py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from sn_tf.envs import _checks
from sn_tf.envs import snapshots
from sn_tf.envs import time_steps

MINATAR_GAMES: Tuple[str, ...] = ("asterix", "breakout", "freeway", "seaquest",
                                  "space_invaders")


def check_minatar_game(game: str) -> str:
  """Returns ``game`` if it is one of ``MINATAR_GAMES``, else ValueError."""
  return _checks.check_choice("MinAtar game", game, MINATAR_GAMES)


class MinAtarEnv(py_environment.PyEnvironment):
  """One MinAtar game as a ``PyEnvironment``.

  Shapes: observation ``[10, 10, C]`` uint8 in {0, 1} (MinAtar's bool state
  cast; C = 4 asterix, 4 breakout, 7 freeway, 10 seaquest, 6 space_invaders);
  action scalar int32 in ``[0, A - 1]`` with A = 6 (full set) or the size of
  the game's minimal set; reward and discount scalar float32.

  An episode ends when MinAtar reports terminal (discount 0); there is no
  time limit of our own (Freeway's 2,500-frame end is MinAtar's terminal).

  Seeding: ``minatar.Environment.seed`` makes one ``RandomState`` drive both
  the sticky actions and the game; the game is reset after seeding because
  MinAtar's constructor already reset it with an unseeded RNG.

  ``get_state`` returns the ``minatar.Environment`` (game state, RNG, last
  action for stickiness) and the current time step as plain data;
  ``set_state`` installs a copy, so the env continues exactly.

  Args:
    game: one of ``MINATAR_GAMES``.
    seed: integer in [0, 2**32 - 1].
    sticky_action_prob: probability of repeating the previous action.
    difficulty_ramping: MinAtar's difficulty ramping.
    minimal_action_set: use the game's minimal action set, indices mapped to
      MinAtar actions in order, instead of the full 6-action set.
  """

  def __init__(self, game: str, *, seed: int, sticky_action_prob: float = 0.1,
               difficulty_ramping: bool = True,
               minimal_action_set: bool = False):
    super().__init__(handle_auto_reset=False)
    self._game = check_minatar_game(game)
    seed = _checks.check_seed(seed)
    sticky_action_prob = _checks.check_probability("sticky_action_prob",
                                                   sticky_action_prob)
    self._env = minatar.Environment(game, sticky_action_prob=sticky_action_prob,
                                    difficulty_ramping=bool(difficulty_ramping))
    self._env.seed(seed)
    self._env.reset()
    if minimal_action_set:
      self._actions = tuple(int(a) for a in self._env.minimal_action_set())
    else:
      self._actions = tuple(range(self._env.num_actions()))
    self._observation_spec = array_spec.BoundedArraySpec(
        tuple(self._env.state_shape()), np.uint8, minimum=0, maximum=1,
        name="observation")
    self._action_spec = array_spec.BoundedArraySpec(
        (), np.int32, minimum=0, maximum=len(self._actions) - 1, name="action")

  @property
  def game(self) -> str:
    return self._game

  @property
  def sticky_action_prob(self) -> float:
    return self._env.sticky_action_prob

  @property
  def actions(self) -> Tuple[int, ...]:
    """MinAtar action of each action index."""
    return self._actions

  def observation_spec(self) -> array_spec.BoundedArraySpec:
    return self._observation_spec

  def action_spec(self) -> array_spec.BoundedArraySpec:
    return self._action_spec

  def _observation(self) -> np.ndarray:
    return self._env.state().astype(np.uint8)

  def _reset(self) -> ts.TimeStep:
    self._env.reset()
    return time_steps.restart(self._observation())

  def _step(self, action: Any) -> ts.TimeStep:
    if time_steps.is_last(self._current_time_step):
      return self._reset()
    action = np.asarray(action)
    if action.shape != () or not 0 <= int(action) < len(self._actions):
      raise ValueError(f"action must be a scalar in [0, "
                       f"{len(self._actions) - 1}], got {action!r}")
    reward, terminal = self._env.act(self._actions[int(action)])
    reward = np.float32(reward)
    if terminal:
      return time_steps.termination(self._observation(), reward)
    return time_steps.transition(self._observation(), reward)

  def get_state(self) -> Dict[str, Any]:
    """A snapshot as plain data (``envs.snapshots``): the MinAtar env's and
    game's fields, their RNG state, and the current time step."""
    return {"minatar": snapshots.minatar_to_data(self._env),
            "time_step": snapshots.time_step_to_data(self._current_time_step)}

  def set_state(self, state: Dict[str, Any]) -> None:
    """Restores a snapshot taken by ``get_state`` on an env of the same game."""
    if state["minatar"]["game"] != self._game:
      raise ValueError(f"state is of MinAtar game "
                       f"{state['minatar']['game']!r}, env plays "
                       f"{self._game!r}")
    snapshots.minatar_from_data(self._env, state["minatar"])
    self._current_time_step = snapshots.time_step_from_data(state["time_step"])
