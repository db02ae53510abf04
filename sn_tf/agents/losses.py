"""The C51 target projection and loss as pure functions (Bellemare et al. 2017).

Notation: ``B`` batch, ``A`` actions, ``N`` atoms, support ``z [N]`` evenly
spaced on ``[v_min, v_max]``.
"""

import tensorflow as tf


def categorical_projection(target_support: tf.Tensor, probabilities: tf.Tensor,
                           support: tf.Tensor) -> tf.Tensor:
  """Projects a distribution on shifted atoms onto ``support`` (Algorithm 1).

  Each source atom ``t_j`` with mass ``p_j`` is clipped to ``[z_0, z_{N-1}]``
  and its mass split between the two nearest atoms of ``support`` in
  proportion to closeness: ``m_i = sum_j p_j * max(0, 1 - |clip(t_j) - z_i| / dz)``.

  Args:
    target_support: ``[B, N]`` atom positions of the target, e.g.
      ``r + gamma * d * z``.
    probabilities: ``[B, N]`` their probabilities.
    support: ``[N]`` the evenly spaced support to project onto.

  Returns:
    ``[B, N]`` projected probabilities (rows sum to 1 when inputs do).
  """
  v_min, v_max = support[0], support[-1]
  delta = support[1] - support[0]
  clipped = tf.clip_by_value(target_support, v_min, v_max)  # [B, N_src]
  # distance[b, i, j] = |clipped[b, j] - z_i| / dz
  distance = tf.abs(clipped[:, None, :] - support[None, :, None]) / delta
  weights = tf.clip_by_value(1.0 - distance, 0.0, 1.0)  # [B, N, N_src]
  return tf.reduce_sum(weights * probabilities[:, None, :], axis=-1)


def c51_loss(online_logits: tf.Tensor, actions: tf.Tensor,
             target_logits: tf.Tensor, rewards: tf.Tensor, discounts: tf.Tensor,
             support: tf.Tensor, gamma: float) -> tf.Tensor:
  """Mean cross-entropy between projected targets and the online distribution.

  The target is ``Phi(r + gamma * d * z, p_target(s', a*))`` with
  ``a* = argmax_a sum_z z p_target(s', a)`` (the target network's greedy
  action), without gradient.

  Args:
    online_logits: ``[B, A, N]`` online logits at ``s``.
    actions: ``[B]`` int actions taken at ``s``.
    target_logits: ``[B, A, N]`` target-network logits at ``s'``.
    rewards: ``[B]`` rewards.
    discounts: ``[B]`` 0 at terminal ``s'``, else 1.
    support: ``[N]``.
    gamma: discount factor.

  Returns:
    Scalar loss.
  """
  target_probs = tf.nn.softmax(target_logits)  # [B, A, N]
  q_next = tf.reduce_sum(target_probs * support, axis=-1)  # [B, A]
  best = tf.argmax(q_next, axis=-1, output_type=tf.int32)
  next_probs = tf.gather(target_probs, best, batch_dims=1)  # [B, N]
  shifted = (rewards[:, None]
             + gamma * discounts[:, None] * support[None, :])  # [B, N]
  target = tf.stop_gradient(categorical_projection(shifted, next_probs, support))
  chosen = tf.gather(online_logits, tf.cast(actions, tf.int32), batch_dims=1)
  return tf.reduce_mean(
      tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=chosen))
