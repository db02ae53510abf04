"""The losses of C51 (Bellemare et al. 2017) and DQN (Mnih et al. 2015) as
pure functions.

Notation: ``B`` batch, ``A`` actions, ``N`` atoms, support ``z [N]`` evenly
spaced on ``[v_min, v_max]``.
"""

from typing import Optional

import tensorflow as tf

# The DQN losses on the TD error (``td_loss``).
TD_LOSSES = ("mse", "huber")


def categorical_projection(target_support: tf.Tensor, probabilities: tf.Tensor,
                           support: tf.Tensor) -> tf.Tensor:
  """Projects a distribution on shifted atoms onto ``support`` (Algorithm 1).

  Each source atom ``t_j`` with mass ``p_j`` is clipped to ``[z_0, z_{N-1}]``
  and its mass split between the two nearest atoms of ``support`` in
  proportion to closeness: ``m_i = sum_j p_j * max(0, 1 - |clip(t_j) - z_i| / dz)``.

  Computed as Algorithm 1 is written, in ``O(B N)``: each source atom's
  position on the support's grid, ``b_j = (clip(t_j) - z_0) (N - 1) /
  (z_{N-1} - z_0)``, gives its two neighbours ``floor(b_j)`` and
  ``floor(b_j) + 1`` and their shares, and one segment sum adds the ``2 B N``
  shares into their bins. The dense form of the formula above (a ``[B, N, N]``
  weight tensor, as TF-Agents and Dopamine write it) is the same map; it took
  seven elementwise ops on ``B N^2`` values (83k at batch 32 and 51 atoms), a
  noticeable part of a MinAtar C51 update on a CPU (BUILD_NOTES.md).
  In float32 this form is also the closer of the two to a float64 reference.

  Args:
    target_support: ``[B, N]`` atom positions of the target, e.g.
      ``r + gamma * d * z``.
    probabilities: ``[B, N]`` their probabilities.
    support: ``[N]`` the evenly spaced support to project onto (N >= 2).

  Returns:
    ``[B, N]`` projected probabilities (rows sum to 1 when inputs do).
  """
  v_min, v_max = support[0], support[-1]
  n = tf.shape(support)[0]
  last = tf.cast(n - 1, support.dtype)
  clipped = tf.clip_by_value(target_support, v_min, v_max)  # [B, N_src]
  position = (clipped - v_min) * (last / (v_max - v_min))  # in [0, N - 1]
  lower = tf.floor(position)
  upper_share = position - lower  # the share of the upper neighbour
  low = tf.minimum(tf.cast(lower, tf.int32), n - 1)
  high = tf.minimum(low + 1, n - 1)  # an atom on z_{N-1} gives it share 0
  batch = tf.shape(position)[0]
  row = tf.range(batch)[:, None] * n  # [B, 1] offset of each row's bins
  bins = tf.concat([low + row, high + row], axis=1)  # [B, 2 N_src]
  shares = tf.concat([probabilities * (1.0 - upper_share),
                      probabilities * upper_share], axis=1)
  projected = tf.math.unsorted_segment_sum(
      tf.reshape(shares, [-1]), tf.reshape(bins, [-1]), batch * n)
  return tf.reshape(projected, tf.shape(target_support))


def c51_targets(target_logits: tf.Tensor, rewards: tf.Tensor,
                discounts: tf.Tensor, support: tf.Tensor,
                gamma: float) -> tf.Tensor:
  """``[B, N]`` C51 target ``Phi(r + gamma * d * z, p_target(s', a*))`` with
  ``a* = argmax_a sum_z z p_target(s', a)`` (the target network's greedy
  action), without gradient.

  Args:
    target_logits: ``[B, A, N]`` target-network logits at ``s'``.
    rewards: ``[B]`` rewards.
    discounts: ``[B]`` 0 at terminal ``s'``, else 1.
    support: ``[N]``.
    gamma: discount factor.
  """
  target_probs = tf.nn.softmax(target_logits)  # [B, A, N]
  q_next = tf.reduce_sum(target_probs * support, axis=-1)  # [B, A]
  best = tf.argmax(q_next, axis=-1, output_type=tf.int32)
  next_probs = tf.gather(target_probs, best, batch_dims=1)  # [B, N]
  shifted = (rewards[:, None]
             + gamma * discounts[:, None] * support[None, :])  # [B, N]
  return tf.stop_gradient(categorical_projection(shifted, next_probs, support))


def c51_loss(online_logits: tf.Tensor, actions: tf.Tensor,
             targets: tf.Tensor, weights: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Mean cross-entropy between ``targets [B, N]`` (``c51_targets``) and the
  online distribution of the taken action.

  Args:
    online_logits: ``[B, A, N]`` online logits at ``s``.
    actions: ``[B]`` int actions taken at ``s``.
    targets: ``[B, N]`` target distributions.
    weights: optional ``[B]`` per-example weights (0 masks a transition out;
      the mean is still over all ``B``, as TF-Agents aggregates).

  Returns:
    Scalar loss.
  """
  chosen = tf.gather(online_logits, tf.cast(actions, tf.int32), batch_dims=1)
  return _mean(tf.nn.softmax_cross_entropy_with_logits(labels=targets,
                                                       logits=chosen), weights)


def _mean(per_example: tf.Tensor, weights: Optional[tf.Tensor]) -> tf.Tensor:
  if weights is not None:
    per_example = per_example * weights
  return tf.reduce_mean(per_example)


def dqn_targets(target_q_values: tf.Tensor, rewards: tf.Tensor,
                discounts: tf.Tensor, gamma: float) -> tf.Tensor:
  """``[B]`` 1-step DQN targets ``r + gamma * d * max_a Q_target(s', a)``.

  Args:
    target_q_values: ``[B, A]`` target-network Q-values at ``s'``.
    rewards, discounts: ``[B]`` (discount 0 at terminal ``s'``, else 1).
    gamma: discount factor.
  """
  return tf.stop_gradient(
      rewards + gamma * discounts * tf.reduce_max(target_q_values, axis=-1))


def dqn_loss(online_q_values: tf.Tensor, actions: tf.Tensor,
             targets: tf.Tensor, td_loss: str = "mse",
             weights: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Mean over the batch of the TD-error loss at the taken actions.

  With ``delta = targets - Q(s, a)``: ``"mse"`` is ``delta^2`` (PyTorch's
  ``mse_loss``, the paper's MinAtar studies), ``"huber"`` is ``delta^2 / 2``
  for ``|delta| <= 1`` and ``|delta| - 1/2`` beyond (Huber with threshold 1,
  TF-Agents' default and Dopamine's).

  Args:
    online_q_values: ``[B, A]``.
    actions: ``[B]`` int actions taken.
    targets: ``[B]`` (``dqn_targets``).
    td_loss: ``"mse"`` or ``"huber"``.
    weights: optional ``[B]`` per-example weights, as ``c51_loss``'s.
  """
  if td_loss not in TD_LOSSES:
    raise ValueError(f"td_loss={td_loss!r} is not allowed; allowed: "
                     f"{', '.join(TD_LOSSES)}.")
  chosen = tf.gather(online_q_values, tf.cast(actions, tf.int32), batch_dims=1)
  delta = targets - chosen
  if td_loss == "mse":
    return _mean(tf.square(delta), weights)
  # The op order of TF-Agents' element-wise Huber (``q * q``, not
  # ``tf.square``): the gradients then round as the agent's own ``train``
  # does, so the lean update equals it bit for bit, not to ~1e-6.
  size = tf.abs(delta)
  quadratic = tf.minimum(size, 1.0)
  linear = size - quadratic
  return _mean(0.5 * (quadratic * quadratic) + linear, weights)


def check_config(config) -> None:
  """``td_loss``: a DQN option (C51 has its own loss)."""
  c = config
  if c.td_loss not in TD_LOSSES:
    raise ValueError(f"td_loss={c.td_loss!r} is not allowed; allowed: "
                     f"{', '.join(TD_LOSSES)}.")
  if c.agent != "dqn" and c.td_loss != "mse":
    raise ValueError(f"td_loss={c.td_loss!r} is not allowed; a DQN option; "
                     f"agent={c.agent!r} has its own loss (leave td_loss=mse).")
