"""Q-networks with spectrally normalised layers: DQN's and C51's
(docs/protocol.md; layer indices: docs/layers.md#selection-grammar).

Every conv and dense layer is an SN layer: the ones the selection grammar
names are normalised, all others run track-only, so the sigma of every layer
is always available for logging. ``SNQNetwork`` ends in one output per action
(DQN); ``SNCategoricalQNetwork`` in ``num_atoms`` logits per action (C51).
"""

import copy
from typing import Any, List, Sequence, Tuple

import tensorflow as tf
from tf_agents.networks import network
from tf_agents.specs import tensor_spec

from sn_tf.layers import SNConv2D, SNDense
from sn_tf.layers.spectral_base import norm_ratio
from sn_tf.networks.layer_selection import LayerSelection, parse_layer_selection

ConvSpec = Tuple[int, int, int]  # (filters, kernel size, stride)


class SNQNetwork(network.Network):
  """Conv stack -> dense stack -> ``A`` Q-values, ReLU between.

  ``observation [B, H, W, C]`` (any numeric or bool dtype) is cast to float32
  and multiplied by ``obs_scale``; convs use ``conv_padding`` (VALID by
  default); the last layer has no activation. Output:
  ``(q_values [B, num_actions], ())``.

  Layers are named ``conv<i>`` / ``dense<i>`` with ``i`` their index in the
  selection grammar (the output layer is ``dense<n-1>``). Kernels use
  ``kernel_initializer`` (Keras' Xavier-uniform by default, as the reference
  code), biases are zero.

  Built from plain arguments only, so ``Network.copy()`` (the target network)
  creates new layers and never shares them with the online network.

  Args:
    input_tensor_spec: observation ``TensorSpec`` ``[H, W, C]``.
    action_spec: scalar ``BoundedTensorSpec`` of discrete actions.
    conv_layers: ``(filters, kernel, stride)`` per conv layer.
    fc_units: units per hidden dense layer.
    spectral: layer-selection spec of the layers to normalise
      (docs/layers.md#selection-grammar).
    obs_scale: multiplier applied after the cast (1/255 for Atari).
    conv_norm: ``"operator"`` or ``"reshape"`` (see ``SNConv2D``).
    lipschitz_k, leave_smaller, power_iterations: passed to every SN layer.
    divout_layers: layer-selection spec of the layers whose rho divides the
      output (the DivOut scheduler, docs/schedulers.md); "none" for none.
    bias_scaling: with SN, also divide each bias by the product of the SN
      divisors up to its layer, so the output is exactly f(x) / rho.
    conv_padding: ``"valid"`` or ``"same"``, of every conv layer.
    kernel_initializer: a Keras initializer identifier (a name or a
      ``{"class_name", "config"}`` dict), instantiated once per layer.
    outputs_per_action: output units per action (subclasses: atoms).
  """

  def __init__(self, input_tensor_spec, action_spec, *,
               conv_layers: Sequence[ConvSpec] = (),
               fc_units: Sequence[int] = (),
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
               name: str = "SNQNetwork",
               outputs_per_action: int = 1):
    super().__init__(input_tensor_spec=input_tensor_spec, state_spec=(),
                     name=name)
    if not isinstance(action_spec, tensor_spec.BoundedTensorSpec):
      raise TypeError(f"action_spec must be a BoundedTensorSpec, got {action_spec}.")
    if action_spec.shape.rank != 0:
      raise ValueError(f"action_spec must be scalar, got shape {action_spec.shape}.")
    if not isinstance(outputs_per_action, int) or outputs_per_action < 1:
      raise ValueError("outputs_per_action must be an integer >= 1, got "
                       f"{outputs_per_action!r}.")
    self._num_actions = int(action_spec.maximum - action_spec.minimum + 1)
    self._outputs_per_action = outputs_per_action
    self._obs_scale = float(obs_scale)
    conv_layers = tuple(tuple(c) for c in conv_layers)
    fc_units = tuple(fc_units)
    num_layers = len(conv_layers) + len(fc_units) + 1
    self._selection = parse_layer_selection(spectral, num_layers)
    sn_args = dict(lipschitz_k=lipschitz_k, leave_smaller=leave_smaller,
                   power_iterations=power_iterations)

    if conv_padding not in ("valid", "same"):
      raise ValueError(f"conv_padding must be 'valid' or 'same', got "
                       f"{conv_padding!r}.")
    initializer = lambda: tf.keras.initializers.get(copy.deepcopy(kernel_initializer))
    initializer()  # an unknown identifier fails here, naming itself

    self._sn_layers: List[tf.keras.layers.Layer] = []
    for i, (filters, kernel, stride) in enumerate(conv_layers):
      # obs_scale is folded into the first conv's kernel.
      self._sn_layers.append(SNConv2D(
          filters, kernel, strides=stride, padding=conv_padding,
          norm=conv_norm, active=i in self._selection.normalised,
          input_scale=self._obs_scale if i == 0 else 1.0,
          kernel_initializer=initializer(), name=f"conv{i}", **sn_args))
    self._flatten = tf.keras.layers.Flatten()
    for j, units in enumerate(fc_units + (self._num_actions * outputs_per_action,)):
      i = len(conv_layers) + j
      self._sn_layers.append(SNDense(
          units, active=i in self._selection.normalised,
          kernel_initializer=initializer(), name=f"dense{i}", **sn_args))
    self._num_conv = len(conv_layers)
    if not isinstance(bias_scaling, bool):
      raise ValueError(f"bias_scaling must be True or False, got {bias_scaling!r}.")
    self._bias_scaling = bias_scaling
    self._lipschitz_k = float(lipschitz_k)
    self._leave_smaller = leave_smaller
    divout = parse_layer_selection(divout_layers, num_layers,
                                   flag="scheduler_layers")
    self._divout_rho, self._output_transform = None, None
    if divout.selected:  # DivOut's rho and transform are the scheduler's
      from sn_tf import schedulers  # pylint: disable=g-import-not-at-top
      self._divout_rho = schedulers.SpectralRho(
          [self._sn_layers[i] for i in sorted(divout.selected)],
          lipschitz_k=lipschitz_k, leave_smaller=leave_smaller)
      self._output_transform = schedulers.output_transform(self._divout_rho)

  @property
  def num_actions(self) -> int:
    return self._num_actions

  @property
  def divout_layers(self) -> List[tf.keras.layers.Layer]:
    """The SN layers whose rho divides this network's output (DivOut)."""
    return [] if self._divout_rho is None else list(self._divout_rho.layers)

  @property
  def divout_rho(self):
    """The ``SpectralRho`` this network's output is divided by (None
    without DivOut)."""
    return self._divout_rho

  @property
  def selection(self) -> LayerSelection:
    return self._selection

  @property
  def sn_layers(self) -> List[tf.keras.layers.Layer]:
    """The conv/dense layers in grammar order (index i is layer i)."""
    return list(self._sn_layers)

  def create_variables(self, input_tensor_spec=None, **kwargs):
    """Builds the variables with one call on an all-zeros observation.

    ``Network.create_variables`` calls the network on a random sample of the
    observation spec, and TF-Agents 0.19's sampler adds 1 to the spec's
    maximum in the spec's own dtype: under NumPy 2 (NEP 50 promotion) a uint8
    maximum of 255 wraps to 0 and sampling fails ("Need minval < maxval"),
    so Atari networks (0-255 pixels) could not be built. A zero observation
    creates the same variables and needs no sampling.

    Returns:
      The output spec (unbatched): ``[num_actions]`` Q-values, or
      ``[num_actions, num_atoms]`` logits for C51.
    """
    if self._network_output_spec is None:
      spec = (self.input_tensor_spec if self.input_tensor_spec is not None
              else input_tensor_spec)
      zeros = tf.zeros([1] + list(spec.shape), spec.dtype)
      outputs, _ = self(zeros, step_type=tf.zeros([1], tf.int32), **kwargs)
      self._network_output_spec = tf.TensorSpec(outputs.shape[1:], outputs.dtype)
    return self._network_output_spec

  def call(self, observation, step_type=None, network_state=(), training=False):
    del step_type  # unused: the network is feed-forward
    _, x = self._forward(observation, training)
    if self._output_transform is not None:  # DivOut, after this call's iteration
      x = self._output_transform(x)
    return self._head(x), network_state

  def _head(self, outputs):
    """The output layer's ``[B, A * outputs_per_action]`` in the output's shape."""
    return outputs

  def penultimate_features(self, observation, training=False):
    """Post-ReLU input of the output layer, ``[B, F]`` (the srank of docs/measures.md)."""
    features, _ = self._forward(observation, training)
    return features

  def _forward(self, observation, training):
    """``(features [B, F], outputs [B, A * outputs_per_action])`` before DivOut."""
    x = tf.cast(observation, tf.float32)
    if self._obs_scale != 1.0 and not self._num_conv:  # else the first conv's
      x = x * self._obs_scale
    scale = tf.constant(1.0)  # product of the SN divisors so far
    last = len(self._sn_layers) - 1
    for i, layer in enumerate(self._sn_layers):
      if i == self._num_conv:
        x = self._flatten(x)
      if i == last:  # the output layer is dense, so x is flat here
        features = x
      x = layer(x, training=training)  # W_hat x + b, no activation
      if self._bias_scaling:
        if i in self._selection.normalised:
          scale = scale * norm_ratio(layer.spectral_norm_estimate(),
                                     self._lipschitz_k, self._leave_smaller)
        x = x - layer.bias * (1.0 - 1.0 / scale)  # b -> b / scale
      if i < last:
        x = tf.nn.relu(x)
    return features, x
