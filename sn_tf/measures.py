"""Why does SN help? Smoothness and rank measures of a Q-network
(docs/measures.md).

All measures take observations in the env's raw units (MinAtar's 0/1 planes,
Atari's 0-255 pixels): the network's own input scaling is part of the function
being differentiated, as in the reference code.

- ``greedy_gradient_norms``: ||grad_x Q(x, a*)||_2 with a* = argmax_a Q(x, a),
  the reference code's smoothness measure, one value per state.
- ``jacobian_spectral_norms``: ||J(x)||_2, the largest singular value of the
  Jacobian ``J = dQ(x, .)/dx`` ``[A, D]`` (D = input size), exactly (SVD of
  ``J``) or by power iteration on ``J^T J`` with forward- and reverse-mode
  products (never forming ``J``).
- ``srank``: effective rank of a feature matrix (Kumar et al., 2020).

The measures take ``q_fn``, any differentiable ``[B, *obs] float32 -> [B, A]``
map whose rows depend only on their own state, e.g. a learner's
``q_values`` (``sn_tf.agents``): DQN's outputs, or C51's
``Q(x, a) = sum_i softmax(logits(x, a))_i z_i`` with support ``z``.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from sn_tf.checks import one_of

JACOBIAN_METHODS = ("exact", "power")


def _as_float(observations) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(observations), tf.float32)


def greedy_gradient_norms(q_fn, observations) -> tf.Tensor:
  """``[B]`` norms of the greedy action's Q-value gradient w.r.t. the input.

  Args:
    q_fn: ``[B, *obs] float32 -> [B, A]`` Q-values (e.g. a learner's
      ``q_values``).
    observations: ``[B, *obs]`` raw observations (any numeric dtype).
  """
  x = _as_float(observations)
  with tf.GradientTape() as tape:
    tape.watch(x)
    q = q_fn(x)
    # States are independent rows, so the gradient of the sum is per state.
    q_greedy = tf.reduce_max(q, axis=-1)
    total = tf.reduce_sum(q_greedy)
  grad = tape.gradient(total, x)
  return tf.norm(tf.reshape(grad, [tf.shape(grad)[0], -1]), axis=-1)


def input_jacobian(q_fn, observations) -> tf.Tensor:
  """``[B, A, D]`` Jacobian of the Q-values w.r.t. the flattened input."""
  x = _as_float(observations)
  with tf.GradientTape() as tape:
    tape.watch(x)
    q = q_fn(x)
  jac = tape.batch_jacobian(q, x)  # [B, A, *obs]
  return tf.reshape(jac, [tf.shape(jac)[0], tf.shape(jac)[1], -1])


def jacobian_spectral_norms(q_fn, observations, method: str = "exact", iterations: int = 30,
                            seed: int = 0) -> tf.Tensor:
  """``[B]`` spectral norms ||dQ(x, .)/dx||_2, one per state.

  Args:
    q_fn, observations: as ``greedy_gradient_norms``.
    method: ``"exact"`` forms the ``[A, D]`` Jacobian per state (A reverse
      passes) and takes its largest singular value; ``"power"`` runs
      ``iterations`` rounds of power iteration on ``J^T J`` with one
      forward-mode (JVP) and one reverse-mode (VJP) product each: memory
      ``O(B D)``, a lower bound that converges to the exact value.
    iterations: power-iteration rounds (``method="power"``).
    seed: seed of the power iteration's start vectors.
  """
  if method not in JACOBIAN_METHODS:
    raise ValueError(f"method={method!r} is not allowed; allowed: "
                     f"{', '.join(JACOBIAN_METHODS)}.")
  if method == "exact":
    jac = input_jacobian(q_fn, observations)
    return tf.linalg.svd(jac, compute_uv=False)[:, 0]
  if not isinstance(iterations, int) or iterations < 1:
    raise ValueError(f"iterations={iterations!r} is not allowed; an integer >= 1.")
  x = _as_float(observations)
  flat = lambda t: tf.reshape(t, [tf.shape(t)[0], -1])
  v = tf.random.stateless_normal(tf.shape(x), seed=[seed, 0])
  v = v / tf.reshape(tf.norm(flat(v), axis=-1), [-1] + [1] * (x.shape.rank - 1))
  sigma = tf.zeros([tf.shape(x)[0]])
  for _ in range(iterations):
    with tf.GradientTape() as tape:
      tape.watch(x)
      with tf.autodiff.ForwardAccumulator(x, v) as acc:
        q = q_fn(x)
      jv = acc.jvp(q)  # [B, A] = J v
      # J^T (J v): gradient of <stop(J v), Q(x)> w.r.t. x, per state.
      inner = tf.reduce_sum(tf.stop_gradient(jv) * q)
    jtjv = tape.gradient(inner, x)
    sigma = tf.norm(jv, axis=-1)  # ||J v|| with ||v|| = 1
    norm = tf.norm(flat(jtjv), axis=-1)
    v = jtjv / tf.reshape(tf.maximum(norm, 1e-30), [-1] + [1] * (x.shape.rank - 1))
  return sigma


def srank(features, delta: float = 0.01) -> int:
  """Effective rank of ``features [N, F]`` (Kumar et al., 2020).

  The smallest k with ``sum_{i<=k} s_i >= (1 - delta) sum_i s_i`` over the
  singular values ``s`` in decreasing order; 0 for an all-zero matrix.
  """
  if not 0.0 <= delta < 1.0:
    raise ValueError(f"delta={delta!r} is not allowed; 0 <= delta < 1.")
  s = np.linalg.svd(np.asarray(features, np.float64), compute_uv=False)
  total = s.sum()
  if total <= 0.0:
    return 0
  cumulative = np.cumsum(s) / total
  return int(np.searchsorted(cumulative, 1.0 - delta - 1e-12) + 1)


class NetworkMeasures:
  """The periodic measures of a training run on a fixed batch of states.

  One compiled call computes, on ``states [N, *obs]``: the greedy-gradient
  norms of ``q_fn``, its Jacobian spectral norms (``jacobian_method``) and
  ``features_fn``'s penultimate features; ``__call__`` returns the logged
  scalars:
  ``smooth/grad_norm_mean``, ``smooth/grad_norm_max``,
  ``smooth/jacobian_norm_mean``, ``smooth/jacobian_norm_max``, ``srank``.

  Args:
    q_fn: ``[B, *obs] -> [B, A]`` Q-values in inference mode (variables built).
    features_fn: ``[B, *obs] -> [B, F]`` the output layer's input.
    observation_spec: the env's observation spec.
  """

  NAMES = ("smooth/grad_norm_mean", "smooth/grad_norm_max",
           "smooth/jacobian_norm_mean", "smooth/jacobian_norm_max", "srank")

  def __init__(self, q_fn, features_fn, observation_spec,
               jacobian_method: str = "exact", power_iterations: int = 30,
               srank_delta: float = 0.01):
    if jacobian_method not in JACOBIAN_METHODS:
      raise ValueError(f"jacobian_method={jacobian_method!r} is not allowed; "
                       f"allowed: {', '.join(JACOBIAN_METHODS)}.")
    self._delta = srank_delta

    # No autograph: the measures are straight-line TF ops (Python loops over
    # constants), and autograph's conversion of q_fn's methods mixed up two
    # methods of a learner (DQN's _q_from_outputs ran as its _loss).
    @tf.function(input_signature=[tf.TensorSpec(
        [None] + list(observation_spec.shape), observation_spec.dtype)],
                 autograph=False)
    def compute(states):
      return (greedy_gradient_norms(q_fn, states),
              jacobian_spectral_norms(q_fn, states, method=jacobian_method,
                                      iterations=power_iterations),
              features_fn(states))

    self._compute = compute

  def __call__(self, states: np.ndarray) -> Dict[str, float]:
    grad, jac, features = self._compute(states)
    grad, jac = grad.numpy(), jac.numpy()
    return {"smooth/grad_norm_mean": float(grad.mean()),
            "smooth/grad_norm_max": float(grad.max()),
            "smooth/jacobian_norm_mean": float(jac.mean()),
            "smooth/jacobian_norm_max": float(jac.max()),
            "srank": float(srank(features.numpy(), self._delta))}


def draw_states(replay, num_states: int, seed: int) -> np.ndarray:
  """``[num_states, *obs]`` observations drawn uniformly from ``replay``.

  Uses its own generator (``seed``) so the replay's sampling stream, and so
  training, is unchanged by measuring.
  """
  streams = getattr(replay, "streams", None) or [replay]
  rng = np.random.default_rng([seed, 2])
  out = []
  sizes = np.array([s.valid_slots().size for s in streams])
  if sizes.sum() == 0:
    raise ValueError("cannot draw measure states: the replay is empty.")
  which = rng.choice(len(streams), size=num_states, p=sizes / sizes.sum())
  for k, stream in enumerate(streams):
    n = int((which == k).sum())
    if n:
      slots = stream.valid_slots()
      out.append(stream.observations_at(slots[rng.integers(0, slots.size, n)]))
  return np.concatenate(out)


def check_config(config) -> None:
  """``jacobian_method``: one of ``JACOBIAN_METHODS``, or ``auto`` (exact on
  MinAtar, power iteration on Atari)."""
  one_of(("auto",) + JACOBIAN_METHODS).check("jacobian_method",
                                            config.jacobian_method)
