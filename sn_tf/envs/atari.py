"""Atari 2600 games (ALE via gymnasium) as TF-Agents envs
(docs/protocol.md#atari-protocols).

Pipeline, innermost first::

  gymnasium.make("ALE/<Game>-v5", obs_type="grayscale", frameskip=1,
                 repeat_action_probability=0, full_action_space=False,
                 max_num_frames_per_episode=108_000)   # [210, 160] frames
  -> AtariFramePreprocessing   # skip 4, max-pool, 84x84, no-ops, sticky,
                               # Dopamine life loss          -> [84, 84]
  -> FrameStackObservation(4, padding_type="zero")           -> [4, 84, 84]
  -> channels last                                           -> [84, 84, 4]
  -> GymnasiumEnv (TF-Agents PyEnvironment)

Two protocols (``ATARI_PROTOCOLS``):

* ``"paper"`` (the paper's code, after the Nature DQN protocol): no sticky
  actions, 0..29 random no-op frames at each game's start, the last two
  frames of a step each down-sampled and then max-pooled, and in training
  envs a step that loses a life (while at least one is left) ends the
  agent's episode (discount 0) while the game goes on after one no-op frame;
  evaluation envs play whole games.
* ``"dopamine"`` (Dopamine's ``c51.gin``): sticky actions p = 0.25, no
  no-ops, max-pool then down-sample, no life-loss terminal.

Both cap a game at 108,000 emulator frames (27,000 agent steps), counted by
ALE per game, no-op frames included; reaching the cap is a truncation
(discount 1). Rewards are not clipped here (the learner clips). Frame stacks
start from zeros at each episode start, also after a lost life
(docs/protocol.md#paper lists where this differs from the paper's code).
"""

import dataclasses
import functools
from typing import Any, Dict, List, Optional, Tuple

import ale_py
from ale_py import registration as ale_registration
from ale_py import roms as ale_roms
import gymnasium as gym
import numpy as np

from sn_tf.envs import _checks
from sn_tf.envs import snapshots
from sn_tf.envs.atari_preprocessing import AtariFramePreprocessing
from sn_tf.envs.gym_adapter import GymnasiumEnv

gym.register_envs(ale_py)


@dataclasses.dataclass(frozen=True)
class AtariProtocol:
  """One Atari evaluation protocol.

  Attributes:
    sticky_action_prob: per-frame probability of repeating the last action.
    noop_range: ``(fewest, most)`` random no-op frames at a game's start.
    terminal_on_life_loss: a lost life ends the episode in training envs.
    pool_after_resize: down-sample the last two frames of a step, then take
      their max (else the max, then down-sample).
    max_frames_per_episode: ALE's per-game frame cap (a truncation).
    frame_skip: emulator frames per agent step (max-pool of the last two).
    screen_size: side of the square grayscale frame.
    stack_size: number of most recent frames stacked on the last axis.
  """
  sticky_action_prob: float
  noop_range: Tuple[int, int]
  terminal_on_life_loss: bool
  pool_after_resize: bool
  max_frames_per_episode: int = 108_000
  frame_skip: int = 4
  screen_size: int = 84
  stack_size: int = 4


PROTOCOLS: Dict[str, AtariProtocol] = {
    # The paper's code: random.randrange(30) no-op frames, cv2.resize of
    # each of the last two frames before np.maximum.
    "paper": AtariProtocol(sticky_action_prob=0.0, noop_range=(0, 29),
                           terminal_on_life_loss=True, pool_after_resize=True),
    # Dopamine's AtariPreprocessing: max-pool, then resize.
    "dopamine": AtariProtocol(sticky_action_prob=0.25, noop_range=(0, 0),
                              terminal_on_life_loss=False,
                              pool_after_resize=False),
}
ATARI_PROTOCOLS: Tuple[str, ...] = tuple(PROTOCOLS)


@functools.lru_cache(maxsize=1)
def atari_games() -> Tuple[str, ...]:
  """The CamelCase names of the single-player games ale-py ships.

  These are the ``<Game>`` of gymnasium's ``ALE/<Game>-v5`` ids (e.g.
  ``Pong``, ``SpaceInvaders``, ``MontezumaRevenge``), sorted.
  """
  names = (ale_registration.rom_id_to_name(rom)
           for rom in ale_roms.get_all_rom_ids())
  return tuple(sorted(name for name in names
                      if f"ALE/{name}-v5" in gym.registry))


def check_atari_game(game: str) -> str:
  """Returns ``game`` if ale-py ships it (``atari_games``), else ValueError."""
  return _checks.check_choice("Atari game", game, atari_games())


def check_atari_protocol(protocol: str) -> str:
  """Returns ``protocol`` if it is in ``ATARI_PROTOCOLS``, else ValueError."""
  return _checks.check_choice("Atari protocol", protocol, ATARI_PROTOCOLS)


def _channels_last(stack: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(np.moveaxis(stack, 0, -1))


class AtariEnv(GymnasiumEnv):
  """One Atari game under a protocol, as a TF-Agents ``PyEnvironment``.

  Shapes: observation ``[84, 84, 4]`` uint8 (the 4 most recent 84x84
  grayscale frames, oldest first, on the last axis); action scalar int32 in
  ``[0, A - 1]`` over the game's minimal action set; reward (unclipped) and
  discount scalar float32.

  Seeding: ``seed`` seeds ALE and the no-op/sticky RNG at the first reset.

  ``get_state``/``set_state`` capture everything: ALE's emulator state with
  its RNG (``cloneState(include_rng=True)``), the preprocessing state (RNG,
  last action, lives, last two frames, pending life-loss continuation), the
  frame stack, and the adapter's current time step. Picklable.

  ``get_info()`` returns the latest step's ALE info: ``lives``,
  ``episode_frame_number``, ``frame_number`` and ``game_over``.

  Args:
    game: one of ``atari_games()``, e.g. ``"Pong"``.
    seed: integer in [0, 2**32 - 1].
    training: training env (life loss may end episodes) or evaluation env.
    protocol: one of ``ATARI_PROTOCOLS``.
    sticky_action_prob: overrides the protocol's value when given.
    max_frames_per_episode: overrides the protocol's frame cap when given.
  """

  def __init__(self, game: str, *, seed: int, training: bool,
               protocol: str = "paper",
               sticky_action_prob: Optional[float] = None,
               max_frames_per_episode: Optional[int] = None):
    check_atari_game(game)
    protocol_config = PROTOCOLS[check_atari_protocol(protocol)]
    seed = _checks.check_seed(seed)
    if sticky_action_prob is None:
      sticky_action_prob = protocol_config.sticky_action_prob
    sticky_action_prob = _checks.check_probability("sticky_action_prob",
                                                   sticky_action_prob)
    if max_frames_per_episode is None:
      max_frames_per_episode = protocol_config.max_frames_per_episode
    if (isinstance(max_frames_per_episode, bool)
        or not isinstance(max_frames_per_episode, int)
        or max_frames_per_episode < 1):
      raise ValueError("max_frames_per_episode must be an integer >= 1, got "
                       f"{max_frames_per_episode!r}")
    self._game = game
    self._protocol = protocol
    self._training = bool(training)
    config = dataclasses.replace(
        protocol_config, sticky_action_prob=sticky_action_prob,
        max_frames_per_episode=max_frames_per_episode,
        terminal_on_life_loss=(self._training
                               and protocol_config.terminal_on_life_loss))
    self._config = config
    self._base = gym.make(
        f"ALE/{game}-v5", obs_type="grayscale", frameskip=1,
        repeat_action_probability=0.0, full_action_space=False,
        max_num_frames_per_episode=config.max_frames_per_episode,
        disable_env_checker=True)
    self._preprocessing = AtariFramePreprocessing(
        self._base, frame_skip=config.frame_skip,
        screen_size=config.screen_size, noop_range=config.noop_range,
        sticky_action_prob=config.sticky_action_prob,
        terminal_on_life_loss=config.terminal_on_life_loss,
        pool_after_resize=config.pool_after_resize)
    self._stack = gym.wrappers.FrameStackObservation(
        self._preprocessing, config.stack_size, padding_type="zero")
    size = config.screen_size
    env = gym.wrappers.TransformObservation(
        self._stack, _channels_last,
        gym.spaces.Box(0, 255, (size, size, config.stack_size), np.uint8))
    super().__init__(env, seed=seed)

  @property
  def game(self) -> str:
    return self._game

  @property
  def protocol(self) -> str:
    return self._protocol

  @property
  def training(self) -> bool:
    return self._training

  @property
  def config(self) -> AtariProtocol:
    """The settings in force: the protocol with overrides applied.

    ``terminal_on_life_loss`` is False in evaluation envs.
    """
    return self._config

  @property
  def ale(self) -> ale_py.ALEInterface:
    """The emulator, e.g. for ``ale.lives()`` and ``ale.game_over()``."""
    return self._base.unwrapped.ale

  def _base_wrappers(self) -> List[gym.Wrapper]:
    """The wrappers that ``gymnasium.make`` put around the ALE env."""
    wrappers = []
    env = self._base
    while isinstance(env, gym.Wrapper):
      if not isinstance(env, gym.wrappers.OrderEnforcing):
        raise NotImplementedError(
            f"AtariEnv cannot snapshot the state of {type(env).__name__}, "
            "which gymnasium.make added around the ALE env")
      wrappers.append(env)
      env = env.env
    return wrappers

  def _get_gym_state(self) -> Dict[str, Any]:
    unwrapped = self._base.unwrapped
    return {
        "ale": snapshots.ale_state_to_data(self.ale.cloneState(include_rng=True)),
        "np_random": unwrapped.np_random.bit_generator.state,
        # pylint: disable-next=protected-access
        "has_reset": [w._has_reset for w in self._base_wrappers()],
        "preprocessing": self._preprocessing.get_wrapper_state(),
        "stack": [np.array(obs) for obs in self._stack.obs_queue],
        "padding": np.array(self._stack.padding_value),
    }

  def _set_gym_state(self, state: Dict[str, Any]) -> None:
    self.ale.restoreState(snapshots.ale_state_from_data(state["ale"]))
    self._base.unwrapped.np_random.bit_generator.state = state["np_random"]
    for wrapper, has_reset in zip(self._base_wrappers(), state["has_reset"]):
      wrapper._has_reset = has_reset  # pylint: disable=protected-access
    self._preprocessing.set_wrapper_state(state["preprocessing"])
    self._stack.obs_queue.clear()
    self._stack.obs_queue.extend(np.array(obs) for obs in state["stack"])
    self._stack.padding_value = np.array(state["padding"])
