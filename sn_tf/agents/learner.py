"""The learner interface the training runner uses, shared by DQN and C51.

A learner owns a TF-Agents agent of the DQN family (its online and target
networks, optimiser with the spectral scheduler, train-step counter and
periodic target update) and exposes what a training loop needs as public
methods: the values and actions of the online network, the sigmas and rho,
and the agent's ``train`` (the one update path, ``sn_tf.agents.lean_train``)
compiled and fused with acting.

Subclasses (one module per agent) build the network and the agent (whose
target and loss are the agent's own) and give the Q-values of the network's
output (``_q_from_outputs``).

A replay batch is a dict of NumPy arrays (``sn_tf.replay``): ``obs [B, ...]``,
``action [B]`` int32, ``reward [B]`` float32, ``discount [B]`` float32 (0 at
true terminals) and ``next_obs [B, ...]``.
"""

import abc
from typing import Any, Callable, Dict, List, Optional

import tensorflow as tf

from sn_tf import schedulers
from sn_tf.agents.lean_train import trajectory_of, transition_of
from sn_tf.config import TrainConfig
from sn_tf.envs import parse_env_id
from sn_tf.networks import SNQNetwork, atari_network, minatar_network


def build_network(config: TrainConfig, observation_spec, action_spec,
                  num_atoms: Optional[int]) -> SNQNetwork:
  """The MinAtar (``config.minatar_model``) or Atari net of ``config``, with a
  C51 head of ``num_atoms`` atoms or, with ``num_atoms=None``, a DQN head."""
  kwargs = dict(num_atoms=num_atoms, spectral=config.spectral,
                conv_norm=config.conv_norm, lipschitz_k=config.lipschitz_k,
                leave_smaller=config.leave_smaller,
                power_iterations=config.power_iterations,
                divout_layers=(config.scheduler_layers if schedulers.SCHEDULERS[
                    config.scheduler].divides_output() else "none"))
  if parse_env_id(config.env)[0] == "minatar":
    return minatar_network(observation_spec, action_spec,
                           model=config.minatar_model, **kwargs)
  return atari_network(observation_spec, action_spec,
                       architecture=config.atari_network, **kwargs)


# Power-iteration steps a log-only layer takes when its sigma is read (from
# the vectors of the previous read, on the current kernel).
LOG_ONLY_ITERATIONS = 20


def batch_signature(observation_spec) -> Dict[str, tf.TensorSpec]:
  """The ``tf.TensorSpec`` of each key of a replay batch."""
  obs = tf.TensorSpec([None] + list(observation_spec.shape), observation_spec.dtype)
  return {"obs": obs, "next_obs": obs,
          "action": tf.TensorSpec([None], tf.int32),
          "reward": tf.TensorSpec([None], tf.float32),
          "discount": tf.TensorSpec([None], tf.float32)}


class Learner(abc.ABC):
  """One agent's networks, optimiser and counters behind public methods.

  Args:
    config: the run's config (the agent's hyperparameters).
    time_step_spec, action_spec: TF-Agents specs of the environment.
  """

  def __init__(self, config: TrainConfig, time_step_spec, action_spec):
    self._config = config
    self._observation_spec = time_step_spec.observation
    self._online = self._build_network(time_step_spec.observation, action_spec)
    self._online.create_variables()
    self._optimizer, self._rho = schedulers.build_optimizer(config, self._online)
    self._target = self._online.copy(name="Target" + self._online.name)
    self._target.create_variables()
    self._agent = self._build_agent(time_step_spec, action_spec)
    self._agent.initialize()
    # Slots exist before a restore, so a checkpoint must match them all.
    self._optimizer.build(self._online.trainable_variables)
    self._compiled: Dict[str, Callable] = {}
    # Track-only layers that neither a scheduler nor DivOut reads are only
    # logged: they iterate when ``sigmas()`` reads them, not in every update.
    read = self._online.divout_layers + (self._rho.layers if self._rho else [])
    self._log_only = [layer for layer in self._online.sn_layers
                      if not layer.active and all(layer is not r for r in read)]
    for layer in self._log_only:
      layer.iterate_in_call = False
    self._log_only_step: Optional[int] = None

  # ---- What each agent supplies.

  @abc.abstractmethod
  def _build_network(self, observation_spec, action_spec) -> SNQNetwork:
    """The online network (unbuilt)."""

  @abc.abstractmethod
  def _build_agent(self, time_step_spec, action_spec):
    """The TF-Agents agent on ``self._online``, ``self._target`` and
    ``self._optimizer``, whose ``update_target()`` copies online to target
    every ``target_update_period // update_period`` train steps."""

  @abc.abstractmethod
  def _q_from_outputs(self, outputs: tf.Tensor) -> tf.Tensor:
    """``[B, A]`` Q-values from the network's output."""

  def _common_agent_args(self) -> Dict[str, Any]:
    """The TF-Agents constructor arguments every DQN-family agent shares."""
    c = self._config
    return dict(
        optimizer=self._optimizer,
        n_step_update=1,
        gamma=c.gamma,
        epsilon_greedy=c.epsilon_end,  # unused: the loop explores itself
        target_update_period=max(1, c.target_update_period // c.update_period),
        clip_rewards=c.clip_rewards,
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="train_step"))

  # ---- Parts.

  @property
  def config(self) -> TrainConfig:
    return self._config

  @property
  def online_network(self) -> SNQNetwork:
    return self._online

  @property
  def target_network(self) -> SNQNetwork:
    return self._target

  @property
  def optimizer(self) -> tf.keras.optimizers.Optimizer:
    return self._optimizer

  @property
  def train_step_counter(self) -> tf.Variable:
    """Updates applied so far (int64)."""
    return self._agent.train_step_counter

  @property
  def num_actions(self) -> int:
    return self._online.num_actions

  @property
  def policy(self):
    """The agent's greedy TF-Agents policy (what ``PolicySaver`` exports)."""
    return self._agent.policy

  def checkpoint_objects(self) -> Dict[str, Any]:
    """The trackables of a ``tf.train.Checkpoint`` of this learner: networks
    (u, v, sigma included), optimiser slots, counters."""
    return {"agent": self._agent}

  # ---- Values.

  def q_values(self, observations) -> tf.Tensor:
    """``[B, *obs] -> [B, A]`` Q-values of the online network in inference
    mode (no power iteration). Any numeric input dtype (the network casts);
    core TF ops only, so it exports as a plain SavedModel."""
    outputs, _ = self._online.call(observations, training=False)
    return self._q_from_outputs(outputs)

  def greedy_actions(self, observations) -> tf.Tensor:
    """``[B, *obs] -> [B]`` int32 argmax of ``q_values``."""
    return tf.argmax(self.q_values(observations), axis=-1, output_type=tf.int32)

  def acting_actions(self, observations) -> tf.Tensor:
    """``[B, *obs] -> [B]``: the training loop's greedy actions.

    ``greedy_actions``, or with ``config.act_power_iteration`` the argmax of
    the online network in training mode, so every SN layer that iterates in
    an update also advances its power iteration in each acting forward pass
    (as the reference code, whose online network acts in training mode).
    """
    if not self._config.act_power_iteration:
      return self.greedy_actions(observations)
    outputs, _ = self._online(observations, training=True)
    return tf.argmax(self._q_from_outputs(outputs), axis=-1,
                     output_type=tf.int32)

  def sigmas(self) -> Dict[str, float]:
    """``sigma/<layer>``: each conv/dense layer's power-iteration estimate of
    its spectral norm, in grammar order.

    Normalised layers and the layers a scheduler or DivOut reads iterate in
    every update; the others (tracked for the logs only) first advance
    ``LOG_ONLY_ITERATIONS`` steps on their current kernel from their stored
    vectors, once per train step however often this is called.
    """
    step = int(self.train_step_counter.numpy())
    if self._log_only and step != self._log_only_step:
      self._compile("advance_log_only", self._advance_log_only, [])()
      self._log_only_step = step
    return {f"sigma/{layer.name}": float(layer.sigma.numpy())
            for layer in self._online.sn_layers}

  def _advance_log_only(self):
    return [layer.advance_power_iteration(LOG_ONLY_ITERATIONS)
            for layer in self._log_only]

  def rho(self) -> Optional[float]:
    """The scheduler's rho now (docs/schedulers.md); None without one."""
    return None if self._rho is None else float(self._rho().numpy())

  # ---- Updates.

  def loss(self, batch: Dict[str, tf.Tensor]) -> tf.Tensor:
    """The loss ``update`` minimises on ``batch``, without updating (the
    online forward pass is in training mode, so power iteration advances)."""
    return self._agent.lean_loss(transition_of(batch))

  def update(self, batch: Dict[str, tf.Tensor]) -> tf.Tensor:
    """One gradient update on a replay ``batch`` through the agent's
    ``train`` (the one update path, ``sn_tf.agents.lean_train``); returns
    the loss. The train-step counter and the periodic target copy advance."""
    return self._agent.train(transition_of(batch)).loss

  def stock_update(self, batch: Dict[str, tf.Tensor]) -> tf.Tensor:
    """One update by the parent TF-Agents agent's own ``train`` (what the
    lean update is tested against); returns the loss."""
    return self._agent.stock_train(trajectory_of(batch)).loss

  # ---- Compiled steps (graph mode, fixed input signatures).

  def compiled_greedy_actions(self) -> tf.types.experimental.GenericFunction:
    """``greedy_actions`` as a ``tf.function``: ``[B, *obs] -> [B]``.

    Compiled with XLA (``jit_compile``, on CPU and GPU alike): acting runs
    once per env step, mostly at batch 1, where TensorFlow's per-op cost
    dominates; XLA fuses the forward pass into a few kernels, 0.1 ms less a
    call on a 2-core CPU here (0.29 -> 0.19 ms for DQN's MinAtar net, 0.35 ->
    0.23 ms for C51's). The update stays a plain graph.
    """
    return self._compile("greedy", self.greedy_actions, [self._obs_signature()],
                         jit_compile=True)

  def compiled_acting_actions(self) -> tf.types.experimental.GenericFunction:
    """``acting_actions`` as a ``tf.function`` (XLA, as
    ``compiled_greedy_actions``, which it is without ``act_power_iteration``)."""
    if not self._config.act_power_iteration:
      return self.compiled_greedy_actions()
    return self._compile("acting", self.acting_actions, [self._obs_signature()],
                         jit_compile=True)

  def compiled_update(self, reference: bool = False):
    """``update`` (or, with ``reference``, ``stock_update``) as a
    ``tf.function``: ``batch -> loss``."""
    if reference:
      return self._compile("stock_update", self.stock_update,
                           [batch_signature(self._observation_spec)])
    return self._compile("update", self.update,
                         [batch_signature(self._observation_spec)])

  def compiled_update_and_act(self):
    """``(batch, observations [B', *obs]) -> (loss, actions [B'])``: ``update``
    and then ``acting_actions`` for ``observations`` with the updated online
    network, in one call. The loop's "learn at the end of step t, act at the
    start of step t + 1" then costs one call instead of two."""

    def update_and_act(batch, observations):
      loss = self.update(batch)
      with tf.control_dependencies([loss]):
        return loss, self.acting_actions(observations)

    return self._compile("update_and_act", update_and_act,
                         [batch_signature(self._observation_spec),
                          self._obs_signature()])

  def _obs_signature(self) -> tf.TensorSpec:
    spec = self._observation_spec
    return tf.TensorSpec([None] + list(spec.shape), spec.dtype)

  def _compile(self, key: str, fn, signature: List[Any], jit_compile=None):
    if key not in self._compiled:
      self._compiled[key] = tf.function(fn, input_signature=signature,
                                        autograph=False, jit_compile=jit_compile)
    return self._compiled[key]
