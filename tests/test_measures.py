"""Smoothness and rank measures against exact references (SVD, float64, FD)."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf import measures
from sn_tf.agents import c51
from sn_tf.networks import minatar_network
from sn_tf.replay import UniformReplay


def linear_q_fn(matrix):
  """``Q(x) = flatten(x) @ M``: Jacobian ``M^T`` for every state."""
  m = tf.constant(matrix, tf.float32)
  return lambda x: tf.reshape(x, [tf.shape(x)[0], -1]) @ m


def test_linear_net_jacobian_and_gradient_are_analytic():
  rng = np.random.default_rng(0)
  matrix = rng.normal(size=(2 * 3 * 2, 5))  # D = 12, A = 5
  x = rng.normal(size=(4, 2, 3, 2)).astype(np.float32)
  q_fn = linear_q_fn(matrix)
  jac = measures.input_jacobian(q_fn, x).numpy()
  for b in range(4):
    np.testing.assert_allclose(jac[b], matrix.T, rtol=1e-6, atol=1e-6)
  sigma = np.linalg.svd(matrix, compute_uv=False)[0]
  for method in ("exact", "power"):
    got = measures.jacobian_spectral_norms(q_fn, x, method=method,
                                           iterations=200).numpy()
    np.testing.assert_allclose(got, np.full(4, sigma), rtol=1e-5)
  greedy = (x.reshape(4, -1).astype(np.float64) @ matrix).argmax(axis=1)
  expected = np.linalg.norm(matrix[:, greedy], axis=0)
  np.testing.assert_allclose(measures.greedy_gradient_norms(q_fn, x).numpy(),
                             expected, rtol=1e-6)


def _breakout_net(spectral="none", seed=3):
  tf.keras.utils.set_random_seed(seed)
  obs_spec = tensor_spec.BoundedTensorSpec((10, 10, 4), tf.uint8, 0, 1)
  act_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0, 5)
  net = minatar_network(obs_spec, act_spec, spectral=spectral)
  net.create_variables()
  return net, obs_spec


def _states(n, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random((n, 10, 10, 4)) < 0.2).astype(np.uint8)


def _numpy_q(net, x):
  """float64 NumPy forward of the unnormalised MinAtar C51 net: ``[B, A]``."""
  conv, hidden, out = [(l.kernel.numpy().astype(np.float64),
                        l.bias.numpy().astype(np.float64)) for l in net.sn_layers]
  k, b = conv
  windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))
  h = np.einsum("bijcuv,uvcf->bijf", windows, k) + b  # VALID, stride 1
  h = np.maximum(h, 0.0).reshape(x.shape[0], -1)
  h = np.maximum(h @ hidden[0] + hidden[1], 0.0)
  logits = (h @ out[0] + out[1]).reshape(x.shape[0], -1, 51)
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return p @ np.linspace(-10.0, 10.0, 51)


def test_network_jacobian_matches_float64_central_differences():
  net, _ = _breakout_net()
  q_fn = c51.q_values_fn(net, -10.0, 10.0)
  x = _states(2).astype(np.float64)
  np.testing.assert_allclose(_numpy_q(net, x), q_fn(x.astype(np.float32)).numpy(),
                             rtol=1e-5, atol=1e-6)  # the reference is the net
  jac = measures.input_jacobian(q_fn, x.astype(np.float32)).numpy()  # [2, 6, 400]
  step = 1e-6
  d = x[0].size
  for b in range(2):
    eye = np.eye(d).reshape((d,) + x.shape[1:]) * step
    fd = ((_numpy_q(net, x[b][None] + eye) - _numpy_q(net, x[b][None] - eye))
          / (2 * step)).T  # [A, D]
    np.testing.assert_allclose(jac[b], fd, rtol=1e-3, atol=1e-6)
    exact = measures.jacobian_spectral_norms(q_fn, x[b:b + 1].astype(np.float32))
    np.testing.assert_allclose(exact.numpy()[0],
                               np.linalg.svd(fd, compute_uv=False)[0], rtol=1e-4)


def test_power_iteration_converges_to_exact_on_the_network():
  net, _ = _breakout_net()
  q_fn = c51.q_values_fn(net, -10.0, 10.0)
  x = _states(8, seed=1)
  exact = measures.jacobian_spectral_norms(q_fn, x, method="exact").numpy()
  power = measures.jacobian_spectral_norms(q_fn, x, method="power",
                                           iterations=100).numpy()
  np.testing.assert_allclose(power, exact, rtol=1e-3)
  few = measures.jacobian_spectral_norms(q_fn, x, method="power",
                                         iterations=1).numpy()
  assert np.all(few <= exact * (1 + 1e-4))  # power iteration is a lower bound


def test_greedy_gradient_is_the_greedy_row_of_the_jacobian():
  net, _ = _breakout_net()
  q_fn = c51.q_values_fn(net, -10.0, 10.0)
  x = _states(5, seed=2)
  jac = measures.input_jacobian(q_fn, x).numpy()
  greedy = q_fn(tf.cast(x, tf.float32)).numpy().argmax(axis=1)
  expected = np.linalg.norm(jac[np.arange(5), greedy], axis=1)
  np.testing.assert_allclose(measures.greedy_gradient_norms(q_fn, x).numpy(),
                             expected, rtol=1e-5)


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_srank_of_matrices_of_known_rank(rank):
  rng = np.random.default_rng(rank)
  u, _ = np.linalg.qr(rng.normal(size=(50, 50)))
  v, _ = np.linalg.qr(rng.normal(size=(20, 20)))
  s = np.zeros(20)
  s[:rank] = 1.0  # equal singular values: all of them are needed
  features = u[:, :20] @ np.diag(s) @ v.T
  assert measures.srank(features) == rank
  assert measures.srank(features, delta=0.0) == rank


def test_srank_threshold_follows_delta():
  # Singular values 10, 1, 0.05: 10 holds 90.5%, 10 + 1 holds 99.55%.
  features = np.diag([10.0, 1.0, 0.05])
  assert measures.srank(features, delta=0.01) == 2
  assert measures.srank(features, delta=0.1) == 1
  assert measures.srank(features, delta=0.001) == 3
  assert measures.srank(np.zeros((4, 3))) == 0
  with pytest.raises(ValueError, match="delta=1.5"):
    measures.srank(features, delta=1.5)


def test_bad_method_is_refused():
  with pytest.raises(ValueError, match="method='svd' is not allowed; allowed: exact, power"):
    measures.jacobian_spectral_norms(linear_q_fn(np.eye(2)), np.zeros((1, 2)),
                                     method="svd")


def test_penultimate_features_are_the_output_layer_input():
  net, _ = _breakout_net(spectral="-2")
  x = _states(4, seed=5)
  features = net.penultimate_features(x).numpy()
  assert features.shape == (4, 128) and (features >= 0).all()
  last = net.sn_layers[-1]
  logits, _ = net(x)
  np.testing.assert_allclose(last(tf.constant(features)).numpy().reshape(4, 6, 51),
                             logits.numpy(), rtol=1e-5, atol=1e-5)


def test_network_measures_compiled_and_states_drawn_without_touching_replay():
  net, obs_spec = _breakout_net()
  replay = UniformReplay(100, (10, 10, 4), np.uint8, seed=0)
  states = _states(31, seed=7)
  for t in range(30):
    replay.add(states[t], 0, 0.0, states[t + 1], terminal=False,
               episode_end=t == 29)
  rng_state = replay._rng.bit_generator.state  # pylint: disable=protected-access
  drawn = measures.draw_states(replay, 16, seed=0)
  assert replay._rng.bit_generator.state == rng_state  # pylint: disable=protected-access
  assert drawn.shape == (16, 10, 10, 4)
  assert all(any((d == s).all() for s in states[:30]) for d in drawn)
  np.testing.assert_array_equal(drawn, measures.draw_states(replay, 16, seed=0))
  values = measures.NetworkMeasures(
      c51.q_values_fn(net, -10.0, 10.0),
      lambda x: net.penultimate_features(x, training=False), obs_spec)(drawn)
  assert set(values) == set(measures.NetworkMeasures.NAMES)
  q_fn = c51.q_values_fn(net, -10.0, 10.0)
  grad = measures.greedy_gradient_norms(q_fn, drawn).numpy()
  np.testing.assert_allclose(values["smooth/grad_norm_mean"], grad.mean(), rtol=1e-5)
  np.testing.assert_allclose(values["smooth/grad_norm_max"], grad.max(), rtol=1e-5)
  assert 1 <= values["srank"] <= 128
  assert values["smooth/jacobian_norm_max"] >= values["smooth/grad_norm_max"] * (1 - 1e-5)
