"""``make_env``: one entry point from an env id to a TF-Agents env.

Env ids are ``"minatar:<game>"`` (``<game>`` in ``MINATAR_GAMES``) and
``"atari:<Game>"`` (``<Game>`` as in gymnasium's ``ALE/<Game>-v5``, e.g.
``Pong``, ``SpaceInvaders``). Every argument is checked before an emulator is
built; a bad one raises ``ValueError`` naming it, the value and what is
allowed.
"""

from typing import Optional, Tuple

from tf_agents.environments import py_environment

from sn_tf.checks import one_of
from sn_tf.envs import _checks
from sn_tf.envs.atari import ATARI_PROTOCOLS
from sn_tf.envs.atari import AtariEnv
from sn_tf.envs.atari import check_atari_game
from sn_tf.envs.atari import check_atari_protocol
from sn_tf.envs.minatar_env import check_minatar_game
from sn_tf.envs.minatar_env import MINATAR_GAMES
from sn_tf.envs.minatar_env import MinAtarEnv

__all__ = ["make_env", "parse_env_id", "MINATAR_GAMES", "ATARI_PROTOCOLS"]

# MinAtar's own default, kept in training and evaluation
# (docs/protocol.md#minatar-games).
MINATAR_STICKY_ACTION_PROB = 0.1

_ENV_ID_FORM = "env_id must look like 'minatar:<game>' or 'atari:<Game>'"


def parse_env_id(env_id: str) -> Tuple[str, str]:
  """Splits and checks an env id.

  Args:
    env_id: ``"minatar:<game>"`` or ``"atari:<Game>"``.

  Returns:
    ``(family, game)``, e.g. ``("minatar", "breakout")`` or
    ``("atari", "Pong")``.

  Raises:
    ValueError: malformed id, unknown family or unknown game.
  """
  if not isinstance(env_id, str) or env_id.count(":") != 1:
    raise ValueError(f"{_ENV_ID_FORM}, got {env_id!r}")
  family, game = env_id.split(":")
  if family not in ("minatar", "atari") or not game:
    raise ValueError(f"{_ENV_ID_FORM}, got {env_id!r}")
  if family == "minatar":
    check_minatar_game(game)
  else:
    check_atari_game(game)
  return family, game


def make_env(env_id: str, *, seed: int, training: bool,
             atari_protocol: str = "paper",
             sticky_action_prob: Optional[float] = None
            ) -> py_environment.PyEnvironment:
  """Builds the environment ``env_id`` as a TF-Agents ``PyEnvironment``.

  MinAtar: observation ``[10, 10, C]`` uint8 in {0, 1}, full 6-action set,
  sticky actions 0.1 and difficulty ramping (MinAtar's defaults, the paper's
  setup), the same in training and evaluation. Atari: observation
  ``[84, 84, 4]`` uint8 under ``atari_protocol`` (see ``sn_tf.envs.atari``);
  ``training`` decides whether a lost life ends an episode ("paper").

  Both expose ``get_state()``/``set_state()`` for checkpoint/resume, as
  plain data (``envs.snapshots``).

  Args:
    env_id: ``"minatar:<game>"`` or ``"atari:<Game>"``.
    seed: integer in [0, 2**32 - 1]; equal seeds and actions give equal
      streams.
    training: a training env (True) or an evaluation env (False).
    atari_protocol: one of ``ATARI_PROTOCOLS``; checked for every env id.
    sticky_action_prob: overrides the default sticky-action probability of
      MinAtar (0.1) or of the Atari protocol.

  Returns:
    The environment.

  Raises:
    ValueError: any argument outside what is allowed.
  """
  family, game = parse_env_id(env_id)
  check_atari_protocol(atari_protocol)
  seed = _checks.check_seed(seed)
  if not isinstance(training, bool):
    raise ValueError(f"training must be a bool, got {training!r}")
  if sticky_action_prob is not None:
    sticky_action_prob = _checks.check_probability("sticky_action_prob",
                                                   sticky_action_prob)
  if family == "minatar":
    if sticky_action_prob is None:
      sticky_action_prob = MINATAR_STICKY_ACTION_PROB
    return MinAtarEnv(game, seed=seed, sticky_action_prob=sticky_action_prob)
  return AtariEnv(game, seed=seed, training=training, protocol=atari_protocol,
                  sticky_action_prob=sticky_action_prob)


def check_config(config) -> None:
  """The env fields of a run's config (``env`` itself is checked by
  ``parse_env_id``)."""
  one_of(ATARI_PROTOCOLS).check("atari_protocol", config.atari_protocol)
