"""Replay buffers for off-policy training."""

from sn_tf.replay.frame_stack import FrameStackReplay
from sn_tf.replay.multi_stream import MultiStreamReplay
from sn_tf.replay.uniform import UniformReplay

__all__ = ["FrameStackReplay", "MultiStreamReplay", "UniformReplay"]
