"""Atari frame preprocessing with the paper's and Dopamine's semantics.

``AtariFramePreprocessing`` does what gymnasium's ``AtariPreprocessing`` and
Dopamine's ``AtariPreprocessing`` do (Mnih et al. 2015; Machado et al. 2018):
frame skip with a max-pool over the last two frames, grayscale, area
down-sampling to ``screen_size x screen_size`` and random no-op starts. It
exists because gymnasium's wrapper needs OpenCV, which the pinned stack does
not carry (current ``opencv-python`` wheels need NumPy 2, TF 2.15 needs
NumPy 1), and because two behaviours are needed that gymnasium's lacks:

* Life loss as in the paper's code: with ``terminal_on_life_loss`` a lost
  life ends the agent's episode (``terminated=True``), but the next
  ``reset()`` does not reset the game while it is not over; it takes one
  no-op frame and play goes on, lives still counting down. gymnasium's
  ``terminal_on_life_loss`` resets the whole game instead.
* Sticky actions (Machado et al. 2018) drawn here, per emulator frame, from
  this wrapper's own RNG, instead of inside ALE: ALE keeps the repeated
  action outside its ``cloneState``, so an env using ALE's stickiness cannot
  be snapshotted and resumed exactly. The distribution is the same.

All state lives in plain attributes and is exposed by ``get_wrapper_state``
and ``set_wrapper_state`` for checkpoint/resume.
"""

from typing import Any, Dict, Optional, Tuple

import gymnasium as gym
import numpy as np

from sn_tf.envs import _checks


def area_resize_weights(n_in: int, n_out: int) -> np.ndarray:
  """Returns the ``[n_out, n_in]`` matrix of 1-D area (box) down-sampling.

  Output pixel ``j`` covers ``[j * s, (j + 1) * s)`` input pixels with
  ``s = n_in / n_out``; ``W[j, i]`` is the overlap of input pixel ``i`` with
  that interval divided by ``s``, so each row sums to 1. Applied on both
  axes (``W_h @ img @ W_w^T``) it is area interpolation, the definition that
  OpenCV's ``INTER_AREA`` uses when shrinking.
  """
  scale = n_in / n_out
  starts = np.arange(n_out)[:, None] * scale
  pixels = np.arange(n_in)[None, :]
  overlap = (np.minimum(starts + scale, pixels + 1)
             - np.maximum(starts, pixels))
  return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


class AtariFramePreprocessing(gym.Wrapper):
  """Frame skip, max-pool, resize, no-op starts, stickiness, life loss.

  Shapes: the wrapped env (ALE with ``obs_type="grayscale"``, ``frameskip=1``
  and ``repeat_action_probability=0``) yields ``[210, 160]`` uint8 frames;
  this wrapper yields ``[screen_size, screen_size]`` uint8: the pixel-wise
  max of the last two emulator frames of a step, area-down-sampled (max then
  resize), or each frame down-sampled and then the max (``pool_after_resize``,
  as the paper's code).

  ``step(a)`` repeats ``a`` for ``frame_skip`` emulator frames (each frame
  keeps the previous frame's action instead with probability
  ``sticky_action_prob``) and returns the summed, unclipped reward. It stops
  early at game over and at ALE's frame cap (``truncated``). With
  ``terminal_on_life_loss`` a step after which the game has fewer lives than
  before it, but still at least one, ends the agent's episode
  (``terminated``); the step plays all its frames. ``info`` adds
  ``game_over``: True when the game itself ended (not only the agent's
  episode at a lost life).

  ``reset(seed)`` seeds ALE and this wrapper's RNG when ``seed`` is given.
  After a life-loss termination of a game still running, an unseeded
  ``reset()`` continues the game with one no-op frame; otherwise it resets
  the game and takes a number of no-op frames drawn uniformly from
  ``noop_range`` (both ends included).

  Args:
    env: the ALE env described above.
    frame_skip: emulator frames per agent step (>= 1).
    screen_size: side of the square output.
    noop_range: ``(fewest, most)`` no-op frames at a game's start.
    sticky_action_prob: per-frame probability of repeating the last action.
    terminal_on_life_loss: end the agent's episode at each lost life.
    pool_after_resize: down-sample the last two frames, then take their max
      (else the max, then down-sample).
  """

  def __init__(self, env: gym.Env, *, frame_skip: int = 4,
               screen_size: int = 84, noop_range: Tuple[int, int] = (0, 0),
               sticky_action_prob: float = 0.0,
               terminal_on_life_loss: bool = False,
               pool_after_resize: bool = False):
    super().__init__(env)
    for name, value, low in (("frame_skip", frame_skip, 1),
                             ("screen_size", screen_size, 1)):
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if (not isinstance(noop_range, (tuple, list)) or len(noop_range) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool)
                   for n in noop_range)
        or not 0 <= noop_range[0] <= noop_range[1]):
      raise ValueError("noop_range must be two integers 0 <= fewest <= most, "
                       f"got {noop_range!r}")
    self._sticky_action_prob = _checks.check_probability(
        "sticky_action_prob", sticky_action_prob)
    unwrapped = env.unwrapped
    if getattr(unwrapped, "_frameskip", None) != 1:
      raise ValueError("AtariFramePreprocessing needs an ALE env made with "
                       "frameskip=1, got frameskip="
                       f"{getattr(unwrapped, '_frameskip', None)!r}")
    if unwrapped.ale.getFloat("repeat_action_probability") != 0.0:
      raise ValueError("AtariFramePreprocessing draws sticky actions itself: "
                       "make the ALE env with repeat_action_probability=0")
    space = env.observation_space
    if (not isinstance(space, gym.spaces.Box) or space.dtype != np.uint8
        or len(space.shape) != 2):
      raise ValueError("AtariFramePreprocessing needs grayscale frames "
                       f"(obs_type='grayscale'), got {space}")
    self._terminal_on_life_loss = bool(terminal_on_life_loss)
    if ((noop_range[1] > 0 or self._sticky_action_prob > 0
         or self._terminal_on_life_loss)
        and unwrapped.get_action_meanings()[0] != "NOOP"):
      raise ValueError("action 0 must be NOOP for no-op starts, sticky "
                       "actions and life-loss continuation, got "
                       f"{unwrapped.get_action_meanings()[0]}")
    self._frame_skip = frame_skip
    self._noop_range = tuple(noop_range)
    self._pool_after_resize = bool(pool_after_resize)
    height, width = space.shape
    self._resize_h = area_resize_weights(height, screen_size)
    self._resize_w = area_resize_weights(width, screen_size).T.copy()
    self.observation_space = gym.spaces.Box(
        0, 255, (screen_size, screen_size), np.uint8)
    self._rng = np.random.default_rng()
    self._prev_action = 0
    self._lives = 0
    self._prev_frame = np.zeros(space.shape, np.uint8)
    self._frame = np.zeros(space.shape, np.uint8)
    self._continue_game = False

  @property
  def ale(self):
    """The ALE interface of the wrapped env."""
    return self.env.unwrapped.ale

  def _resize(self, frame: np.ndarray) -> np.ndarray:
    resized = self._resize_h @ frame.astype(np.float32) @ self._resize_w
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)

  def _observation(self) -> np.ndarray:
    if self._pool_after_resize:
      return np.maximum(self._resize(self._prev_frame), self._resize(self._frame))
    return self._resize(np.maximum(self._prev_frame, self._frame))

  def _ale_info(self) -> Dict[str, Any]:
    return {"lives": self.ale.lives(),
            "episode_frame_number": self.ale.getEpisodeFrameNumber(),
            "frame_number": self.ale.getFrameNumber(),
            "game_over": False}

  def _push(self, frame: np.ndarray) -> None:
    self._prev_frame, self._frame = self._frame, frame

  def step(self, action: int
          ) -> Tuple[np.ndarray, float, bool, bool, Dict[str, Any]]:
    total_reward = 0.0
    terminated = truncated = False
    info: Dict[str, Any] = {}
    for _ in range(self._frame_skip):
      if not (self._sticky_action_prob > 0
              and self._rng.random() < self._sticky_action_prob):
        self._prev_action = int(action)
      frame, reward, terminated, truncated, info = self.env.step(
          self._prev_action)
      total_reward += float(reward)
      self._push(frame)
      if terminated or truncated:
        break
    lives = self.ale.lives()
    lost_life = self._terminal_on_life_loss and 0 < lives < self._lives
    self._lives = lives
    game_over = bool(terminated or truncated)
    self._continue_game = lost_life and not game_over
    info = dict(info, game_over=game_over)
    return (self._observation(), total_reward, bool(terminated or lost_life),
            bool(truncated), info)

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[Dict[str, Any]] = None
           ) -> Tuple[np.ndarray, Dict[str, Any]]:
    if seed is not None:
      self._rng = np.random.default_rng(seed)
    if self._continue_game and seed is None:
      # A lost life ended the agent's episode, not the game: one no-op
      # frame, and play goes on.
      self._continue_game = False
      frame, _, terminated, truncated, _ = self.env.step(0)
      self._prev_action = 0
      self._push(frame)
      self._lives = self.ale.lives()
      if not (terminated or truncated):
        return self._observation(), self._ale_info()
    self._continue_game = False
    frame, info = self.env.reset(seed=seed, options=options)
    self._prev_action = 0  # ALE's reset also forgets the last action.
    fewest, most = self._noop_range
    noops = int(self._rng.integers(fewest, most + 1)) if most else 0
    for _ in range(noops):
      frame, _, terminated, truncated, info = self.env.step(0)
      if terminated or truncated:
        frame, info = self.env.reset(options=options)
    self._lives = self.ale.lives()
    self._prev_frame = np.zeros_like(frame)
    self._frame = frame
    return self._observation(), dict(info, game_over=False)

  def get_wrapper_state(self) -> Dict[str, Any]:
    """This wrapper's complete state (not the wrapped env's), picklable."""
    return {"rng": self._rng.bit_generator.state,
            "prev_action": self._prev_action,
            "lives": self._lives,
            "prev_frame": self._prev_frame.copy(),
            "frame": self._frame.copy(),
            "continue_game": self._continue_game}

  def set_wrapper_state(self, state: Dict[str, Any]) -> None:
    """Restores what ``get_wrapper_state`` returned."""
    self._rng = np.random.default_rng()
    self._rng.bit_generator.state = state["rng"]
    self._prev_action = state["prev_action"]
    self._lives = state["lives"]
    self._prev_frame = state["prev_frame"].copy()
    self._frame = state["frame"].copy()
    self._continue_game = state["continue_game"]
