"""Environments as TF-Agents ``PyEnvironment``s: MinAtar and Atari
(docs/protocol.md#minatar-games, docs/protocol.md#atari-protocols)."""

from sn_tf.envs.atari import AtariEnv
from sn_tf.envs.atari import AtariProtocol
from sn_tf.envs.gym_adapter import GymnasiumEnv
from sn_tf.envs.minatar_env import MinAtarEnv
from sn_tf.envs.registry import ATARI_PROTOCOLS
from sn_tf.envs.registry import make_env
from sn_tf.envs.registry import MINATAR_GAMES
from sn_tf.envs.registry import parse_env_id

__all__ = ["make_env", "parse_env_id", "MINATAR_GAMES", "ATARI_PROTOCOLS",
           "AtariEnv", "AtariProtocol", "GymnasiumEnv", "MinAtarEnv"]
