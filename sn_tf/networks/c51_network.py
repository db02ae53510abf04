"""The C51 Q-network: ``num_atoms`` logits per action (Bellemare et al. 2017)."""

from typing import Any, Sequence

import tensorflow as tf

from sn_tf.networks.q_network import ConvSpec, SNQNetwork


class SNCategoricalQNetwork(SNQNetwork):
  """``SNQNetwork`` whose output layer has ``A * num_atoms`` units.

  Output: ``(logits [B, num_actions, num_atoms], ())``; the expected Q-value
  of action ``a`` is ``sum_z z softmax(logits[:, a])_z`` over the support.

  Args:
    input_tensor_spec, action_spec: as ``SNQNetwork``.
    num_atoms: atoms of the categorical distribution (>= 2).
    Other arguments: as ``SNQNetwork``. They are spelled out, not passed as
    ``**kwargs``: TF-Agents' ``Network.copy`` (the target network) rebuilds
    a network from its named constructor arguments.
  """

  def __init__(self, input_tensor_spec, action_spec, *,
               conv_layers: Sequence[ConvSpec] = (),
               fc_units: Sequence[int] = (),
               num_atoms: int = 51,
               spectral: str = "none",
               obs_scale: float = 1.0,
               conv_norm: str = "operator",
               lipschitz_k: float = 1.0,
               leave_smaller: bool = False,
               power_iterations: int = 1,
               divout_layers: str = "none",
               bias_scaling: bool = False,
               conv_padding: str = "valid",
               kernel_initializer: Any = "glorot_uniform",
               name: str = "SNCategoricalQNetwork"):
    if not isinstance(num_atoms, int) or num_atoms < 2:
      raise ValueError(f"num_atoms must be an integer >= 2, got {num_atoms!r}.")
    super().__init__(
        input_tensor_spec, action_spec, conv_layers=conv_layers,
        fc_units=fc_units, spectral=spectral, obs_scale=obs_scale,
        conv_norm=conv_norm, lipschitz_k=lipschitz_k,
        leave_smaller=leave_smaller, power_iterations=power_iterations,
        divout_layers=divout_layers, bias_scaling=bias_scaling,
        conv_padding=conv_padding, kernel_initializer=kernel_initializer,
        name=name, outputs_per_action=num_atoms)

  @property
  def num_atoms(self) -> int:
    return self._outputs_per_action

  def _head(self, outputs):
    return tf.reshape(outputs, [-1, self.num_actions, self.num_atoms])
