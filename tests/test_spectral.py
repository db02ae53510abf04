"""Spectrally normalised layers against exact float64 references.

References: ``numpy.linalg.svd`` of the dense kernel, of the reshaped conv
kernel, and of the explicit matrix of the convolution (the conv applied to
every basis input); analytic gradients of ``W / sigma(W)``.
"""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from sn_tf.layers import SNConv2D, SNDense, UnitNormal


def top_sv(matrix):
  return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)[0]


def conv_matrix(layer, kernel, input_hw, cin):
  """Explicit matrix M [n_in, n_out] with flat(conv(x)) = flat(x) @ M."""
  n = input_hw[0] * input_hw[1] * cin
  basis = tf.reshape(tf.eye(n, dtype=tf.float64), (n,) + tuple(input_hw) + (cin,))
  out = layer.convolution_op(basis, tf.cast(kernel, tf.float64))
  return tf.reshape(out, (n, -1)).numpy()


def run_training_calls(layer, x, n):
  step = tf.function(lambda x: layer(x, training=True))
  for _ in range(n):
    step(x)


# --------------------------------------------------------------------------
# SNDense
# --------------------------------------------------------------------------


def test_dense_sigma_matches_svd():
  layer = SNDense(64)
  x = tf.random.normal((4, 48))
  run_training_calls(layer, x, 300)
  want = top_sv(layer.kernel.numpy())
  np.testing.assert_allclose(layer.sigma.numpy(), want, rtol=1e-4)
  assert layer.u.shape == (64,) and layer.v.shape == (48,)
  assert layer.sigma.shape == ()


@pytest.mark.parametrize(
    "k,leave_smaller,active,grad_through_sigma,iters",
    list(itertools.product([0.5, 1.0, 5.0], [False, True], [True, False],
                           [True, False], [1, 3])))
def test_dense_output_formula(k, leave_smaller, active, grad_through_sigma, iters):
  layer = SNDense(6, lipschitz_k=k, leave_smaller=leave_smaller, active=active,
                  grad_through_sigma=grad_through_sigma, power_iterations=iters,
                  bias_initializer="random_normal")
  x = tf.random.normal((5, 4))
  run_training_calls(layer, x, 30)
  for training in (True, False):
    y = layer(x, training=training).numpy()
    w = layer.kernel.numpy().astype(np.float64)
    sigma = float(layer.sigma.numpy())
    # The sigma applied is u^T W v with the stored vectors after the call.
    u, v = layer.u.numpy().astype(np.float64), layer.v.numpy().astype(np.float64)
    np.testing.assert_allclose(sigma, v @ w @ u, rtol=1e-5)
    d = sigma / k
    if leave_smaller:
      d = max(d, 1.0)
    w_hat = w / d if active else w
    want = x.numpy().astype(np.float64) @ w_hat + layer.bias.numpy()
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_leave_smaller_leaves_small_kernels_alone():
  small = SNDense(3, leave_smaller=True, lipschitz_k=100.0, use_bias=False)
  x = tf.random.normal((2, 5))
  y = small(x, training=True)
  np.testing.assert_allclose(y.numpy(), x.numpy() @ small.kernel.numpy(),
                             rtol=1e-6)


def test_dense_rank3_inputs():
  layer = SNDense(3)
  x = tf.random.normal((2, 4, 5))
  y = layer(x, training=True)
  assert y.shape == (2, 4, 3)
  w_hat = layer.kernel.numpy() / layer.sigma.numpy()
  np.testing.assert_allclose(y.numpy(), x.numpy() @ w_hat + layer.bias.numpy(),
                             rtol=1e-5, atol=1e-6)


def _dense_call_and_grads(layer, x, training):
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    y = layer(x, training=training)
    loss = tf.reduce_sum(tf.sin(y))
  grads = tape.gradient(loss, [x] + layer.trainable_weights)
  return [t.numpy() for t in [y] + grads + [layer.u, layer.v, layer.sigma]]


@pytest.mark.parametrize("iters,through,leave_smaller,training", list(
    itertools.product([1, 2], [True, False], [False, True], [True, False])))
def test_dense_joint_pass_equals_separate_ops(iters, through, leave_smaller,
                                              training):
  # A [B, in] batch takes A v from the layer's own matmul (v as one more input
  # row); outputs, gradients and state match the separate matvec up to float
  # rounding.
  x = tf.random.normal((5, 7))
  layers = []
  for joint in (True, False):
    tf.keras.utils.set_random_seed(3)
    layer = SNDense(4, power_iterations=iters, grad_through_sigma=through,
                    leave_smaller=leave_smaller, lipschitz_k=0.5)
    layer._v_is_input_row = joint
    layer.build((None, 7))
    layers.append(layer)
  joint, separate = (_dense_call_and_grads(l, x, training) for l in layers)
  for a, b in zip(joint, separate):
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)


def test_dense_joint_pass_applies_the_kernel_once():
  # With one power-iteration step neither a training nor an inference call on
  # a [B, in] batch applies A on its own; a rank-3 batch still does.
  layer = SNDense(3)
  layer.build((None, 5))

  def forbidden(kernel, v):
    raise AssertionError("A v applied outside the layer's matmul")

  layer._forward = forbidden
  for training in (True, False):
    layer(tf.random.normal((2, 5)), training=training)
  with pytest.raises(AssertionError, match="outside the layer's matmul"):
    layer(tf.random.normal((2, 4, 5)), training=False)
  layer.active = False  # track-only: the plain matmul, A v on its own
  with pytest.raises(AssertionError, match="outside the layer's matmul"):
    layer(tf.random.normal((2, 5)), training=True)


# --------------------------------------------------------------------------
# SNConv2D
# --------------------------------------------------------------------------


@pytest.mark.parametrize("strides,padding,dilation", [
    (1, "valid", 1), (1, "same", 1), (2, "valid", 1), (2, "same", 1),
    (1, "same", 2)])
def test_conv_operator_sigma_matches_explicit_matrix(strides, padding, dilation):
  hw, cin = (7, 8), 3
  layer = SNConv2D(4, 3, strides=strides, padding=padding,
                   dilation_rate=dilation, power_iterations=10)
  x = tf.random.normal((2,) + hw + (cin,))
  run_training_calls(layer, x, 100)
  want = top_sv(conv_matrix(layer, layer.kernel, hw, cin))
  np.testing.assert_allclose(layer.sigma.numpy(), want, rtol=1e-3)
  assert layer.v.shape == (1,) + hw + (cin,)
  assert layer.u.shape == (1,) + tuple(layer.compute_output_shape((1,) + hw + (cin,))[1:])


def test_conv_reshape_sigma_matches_reshaped_kernel_svd():
  layer = SNConv2D(8, (3, 2), norm="reshape", power_iterations=10)
  x = tf.random.normal((2, 6, 6, 5))
  run_training_calls(layer, x, 100)
  want = top_sv(layer.kernel.numpy().reshape(-1, 8))
  np.testing.assert_allclose(layer.sigma.numpy(), want, rtol=1e-4)
  assert layer.u.shape == (8,) and layer.v.shape == (3 * 2 * 5,)


@pytest.mark.parametrize("norm", ["operator", "reshape"])
@pytest.mark.parametrize("leave_smaller,k", [(False, 1.0), (True, 0.3), (True, 50.0)])
def test_conv_output_formula(norm, leave_smaller, k):
  layer = SNConv2D(4, 3, strides=2, padding="same", norm=norm,
                   leave_smaller=leave_smaller, lipschitz_k=k,
                   bias_initializer="random_normal")
  x = tf.random.normal((3, 9, 9, 2))
  run_training_calls(layer, x, 5)
  y = layer(x, training=False).numpy()
  d = layer.sigma.numpy() / k
  if leave_smaller:
    d = max(d, 1.0)
  plain = tf.keras.layers.Conv2D(4, 3, strides=2, padding="same")
  plain.build(x.shape)
  plain.set_weights([layer.kernel.numpy() / d, layer.bias.numpy()])
  np.testing.assert_allclose(y, plain(x).numpy(), rtol=1e-5, atol=1e-6)


def test_conv_operator_refuses_other_spatial_size():
  layer = SNConv2D(2, 3)
  layer(tf.zeros((1, 6, 6, 1)), training=True)
  with pytest.raises(ValueError):
    layer(tf.zeros((1, 7, 7, 1)))


def test_conv_operator_needs_static_spatial_size():
  layer = SNConv2D(2, 3)
  with pytest.raises(ValueError, match="static spatial input size"):
    layer.build((None, None, None, 3))
  SNConv2D(2, 3, norm="reshape").build((None, None, None, 3))  # fine


# --------------------------------------------------------------------------
# Gradient semantics
# --------------------------------------------------------------------------


def kernel_grad(layer, x, c):
  """d/dW of sum(c * layer(x)) in a training call (u, v advance first)."""
  with tf.GradientTape() as tape:
    y = layer(x, training=True)
    loss = tf.reduce_sum(c * y)
  return tape.gradient(loss, layer.kernel).numpy().astype(np.float64)


@pytest.mark.parametrize("through", [True, False])
def test_dense_gradient_semantics(through):
  layer = SNDense(5, grad_through_sigma=through, lipschitz_k=2.0)
  x = tf.random.normal((3, 4), dtype=tf.float32)
  c = tf.random.normal((3, 5))
  layer(x, training=True)  # build and start the iteration
  g = kernel_grad(layer, x, c)
  w = layer.kernel.numpy().astype(np.float64)
  u, v = layer.u.numpy().astype(np.float64), layer.v.numpy().astype(np.float64)
  sigma = v @ w @ u
  d = sigma / 2.0
  g_hat = x.numpy().astype(np.float64).T @ c.numpy()  # dL/dW_hat
  want = g_hat / d
  if through:  # W_hat = W / d(W), d sigma / dW = v u^T
    want -= np.sum(g_hat * w) / d**2 * np.outer(v, u) / 2.0
  np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("through", [True, False])
def test_conv_gradient_semantics(through):
  hw, cin = (6, 6), 2
  layer = SNConv2D(3, 3, strides=2, padding="same", grad_through_sigma=through)
  x = tf.random.normal((2,) + hw + (cin,))
  layer(x, training=True)
  c = tf.random.normal(layer(x).shape)
  g = kernel_grad(layer, x, c)
  w = layer.kernel.numpy().astype(np.float64)
  u, v = layer.u.numpy().astype(np.float64), layer.v.numpy().astype(np.float64)
  # sigma(W) = <u, conv(v, W)> is linear in W: its gradient S has entries
  # S[e] = <u, conv(v, E_e)> over the basis kernels E_e.
  n = w.size
  basis = tf.reshape(tf.eye(n, dtype=tf.float64), (n,) + w.shape)
  s = np.array([np.sum(u * layer.convolution_op(tf.constant(v), basis[i]).numpy())
                for i in range(n)]).reshape(w.shape)
  sigma = np.sum(s * w)
  # dL/dW_hat for L = sum(c * conv(x, W_hat)) is linear in c: get it by tape.
  w_hat = tf.Variable(w / sigma)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.cast(c, tf.float64) *
                         layer.convolution_op(tf.cast(x, tf.float64), w_hat))
  g_hat = tape.gradient(loss, w_hat).numpy()
  want = g_hat / sigma
  if through:
    want -= np.sum(g_hat * w) / sigma**2 * s
  np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make,shape", [
    (lambda: SNDense(4), (2, 3)),
    (lambda: SNConv2D(3, 3, strides=2), (2, 7, 7, 2)),
])
@pytest.mark.parametrize("iterations", [1, 3])
def test_state_gets_no_gradient(make, shape, iterations):
  layer = make()
  layer.power_iterations = iterations
  x = tf.random.normal(shape)
  layer(x)  # build
  state = [layer.u, layer.v, layer.sigma]
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(state)  # non-trainable: a tape sees them only when told to
    y = layer(x, training=True)
    sigma = layer.advance_power_iteration(iterations)
  assert tape.gradient(y, state) == [None, None, None]
  assert tape.gradient(sigma, state) == [None, None, None]
  assert tape.gradient(y, layer.kernel) is not None
  assert {w.name.split("/")[-1] for w in layer.non_trainable_weights} == {
      "u:0", "v:0", "sigma:0"}
  assert len(layer.trainable_weights) == 2


# --------------------------------------------------------------------------
# Inference, track-only, dtypes
# --------------------------------------------------------------------------


def snapshot(layer):
  return [w.numpy().copy() for w in (layer.u, layer.v, layer.sigma)]


@pytest.mark.parametrize("make,shape", [
    (lambda: SNDense(5), (3, 4)),
    (lambda: SNConv2D(3, 3, strides=2), (2, 7, 7, 2)),
    (lambda: SNConv2D(3, 3, norm="reshape"), (2, 7, 7, 2)),
])
def test_inference_never_changes_state(make, shape):
  layer = make()
  x = tf.random.normal(shape)
  layer(x, training=True)
  before = snapshot(layer)
  layer(x)
  layer(x, training=False)
  tf.function(lambda x: layer(x, training=False))(x)
  tf.function(lambda x, t: layer(x, training=t))(x, tf.constant(False))
  for a, b in zip(before, snapshot(layer)):
    np.testing.assert_array_equal(a, b)
  # ...while a training call given as a tensor does advance the state (from
  # a u moved off the warmed-up fixed point, so that a step shows).
  start = np.ones(layer.u.shape, np.float32) / np.sqrt(layer.u.shape.num_elements())
  layer.u.assign(start)
  tf.function(lambda x, t: layer(x, training=t))(x, tf.constant(True))
  assert not np.allclose(start, layer.u.numpy())


@pytest.mark.parametrize("make,shape", [
    (lambda: SNDense(64), (4, 128)),
    (lambda: SNDense(512), (2, 3136)),
    (lambda: SNConv2D(16, 3), (2, 10, 10, 4)),
    (lambda: SNConv2D(8, 3, norm="reshape"), (2, 10, 10, 4))])
def test_fresh_layer_is_warmed_up_before_any_training_call(make, shape):
  """Inference right after build divides by ~||W||_2, not by u^T W v of
  random vectors (which is tiny or negative)."""
  layer = make()
  x = tf.random.normal(shape)
  layer.build(shape)
  if isinstance(layer, SNConv2D) and layer.norm == "operator":
    want = top_sv(conv_matrix(layer, layer.kernel, shape[1:3], shape[3]))
  else:
    want = top_sv(layer.kernel.numpy().reshape(-1, layer.kernel.shape[-1]))
  np.testing.assert_allclose(layer.sigma.numpy(), want, rtol=2e-2)
  np.testing.assert_allclose(layer.spectral_norm_estimate().numpy(), want, rtol=2e-2)
  y = layer(x, training=False).numpy()
  if isinstance(layer, SNDense):
    ref = x.numpy() @ layer.kernel.numpy() / layer.sigma.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make,plain,shape", [
    (lambda: SNDense(5, active=False), lambda: tf.keras.layers.Dense(5), (3, 4)),
    (lambda: SNConv2D(3, 3, active=False), lambda: tf.keras.layers.Conv2D(3, 3),
     (2, 6, 6, 2)),
])
def test_track_only_equals_plain_layer(make, plain, shape):
  layer, ref = make(), plain()
  x = tf.random.normal(shape)
  ref.build(shape)
  layer(x, training=True)
  ref.set_weights([w.numpy() for w in layer.trainable_weights])
  for training in (True, False):
    np.testing.assert_array_equal(layer(x, training=training).numpy(),
                                  ref(x).numpy())
  assert layer.sigma.numpy() > 0


@pytest.mark.parametrize("dtype", [tf.uint8, tf.bool, tf.int32, tf.float64])
def test_mixed_dtype_inputs_and_batch_of_one(dtype):
  obs = tf.cast(tf.random.uniform((1, 5, 5, 2), maxval=2, dtype=tf.int32), dtype)
  conv = SNConv2D(4, 3)
  dense = SNDense(3)
  for training in (True, False):
    h = conv(tf.cast(obs, tf.float32), training=training)
    y = dense(tf.reshape(h, (1, -1)), training=training)
    assert y.shape == (1, 3) and y.dtype == tf.float32
  # The layers also cast on their own, as Keras Dense does.
  assert conv(obs).dtype == tf.float32
  assert dense(tf.cast(tf.ones((1, 36)), dtype)).dtype == tf.float32


# --------------------------------------------------------------------------
# Arguments, config, SavedModel
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,name", [
    (dict(power_iterations=0), "power_iterations"),
    (dict(power_iterations=1.5), "power_iterations"),
    (dict(lipschitz_k=0.0), "lipschitz_k"),
    (dict(lipschitz_k=-1), "lipschitz_k"),
    (dict(lipschitz_k="a"), "lipschitz_k"),
    (dict(active="no"), "active"),
    (dict(leave_smaller=1), "leave_smaller"),
    (dict(grad_through_sigma=None), "grad_through_sigma"),
])
def test_bad_arguments_name_the_argument(kwargs, name):
  with pytest.raises(ValueError, match=name):
    SNDense(3, **kwargs)
  with pytest.raises(ValueError, match=name):
    SNConv2D(3, 3, **kwargs)


def test_bad_norm_names_allowed_values():
  with pytest.raises(ValueError, match=r"norm must be one of \('operator', 'reshape'\)"):
    SNConv2D(3, 3, norm="frobenius")
  with pytest.raises(ValueError, match="groups"):
    SNConv2D(4, 3, groups=2)


def test_config_round_trip():
  dense = SNDense(7, power_iterations=2, lipschitz_k=3.0, leave_smaller=True,
                  active=False, grad_through_sigma=False, activation="relu")
  conv = SNConv2D(5, 3, strides=2, padding="same", norm="reshape",
                  grad_through_sigma=True, power_iterations=4)
  for layer in (dense, conv):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
  assert UnitNormal.from_config(UnitNormal(3).get_config()).seed == 3


def build_model():
  inputs = tf.keras.Input((8, 8, 2))
  h = SNConv2D(4, 3, strides=2, activation="relu")(inputs)
  h = SNConv2D(4, 2, norm="reshape", activation="relu")(h)
  h = tf.keras.layers.Flatten()(h)
  h = SNDense(6, activation="relu", active=False)(h)
  return tf.keras.Model(inputs, SNDense(3, leave_smaller=True)(h))


def test_saved_model_round_trip_in_fresh_process(tmp_path):
  model = build_model()
  x = np.random.RandomState(0).rand(5, 8, 8, 2).astype(np.float32)
  for _ in range(3):
    model(x, training=True)
  want = model(x, training=False).numpy()
  state = [w.numpy() for w in model.non_trainable_weights]
  tf.saved_model.save(model, str(tmp_path / "model"))
  np.save(tmp_path / "x.npy", x)
  script = textwrap.dedent(f"""
      import numpy as np, tensorflow as tf
      m = tf.saved_model.load({str(tmp_path / 'model')!r})
      x = np.load({str(tmp_path / 'x.npy')!r})
      y1 = m(x, training=False).numpy()
      y2 = m(x, training=False).numpy()
      y3 = m.signatures["serving_default"](tf.constant(x))
      np.save({str(tmp_path / 'y.npy')!r}, np.stack([y1, y2, list(y3.values())[0].numpy()]))
      state = [v.numpy() for v in m.variables if v.name.split("/")[-1] in ("u:0", "v:0", "sigma:0")]
      np.savez({str(tmp_path / 'state.npz')!r}, *state)
      """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  subprocess.run([sys.executable, "-c", script], check=True, env=env)
  got = np.load(tmp_path / "y.npy")
  for y in got:
    np.testing.assert_array_equal(y, want)
  saved_state = np.load(tmp_path / "state.npz")
  got_state = sorted((a.tobytes() for a in saved_state.values()))
  assert got_state == sorted(a.tobytes() for a in state)
  assert len(state) == 12


# --------------------------------------------------------------------------
# The exact norm and the next call's estimate
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make,shape,reference", [
    (lambda: SNDense(7), (3, 11), lambda l: top_sv(l.kernel.numpy())),
    (lambda: SNConv2D(4, 3, norm="reshape"), (2, 6, 6, 3),
     lambda l: top_sv(l.kernel.numpy().reshape(-1, 4))),
    (lambda: SNConv2D(4, 3, strides=2, padding="same"), (2, 7, 7, 3),
     lambda l: top_sv(conv_matrix(l, l.kernel, (7, 7), 3))),
])
def test_exact_spectral_norm_is_the_svd_of_the_operator(make, shape, reference):
  layer = make()
  layer(tf.zeros(shape))
  layer.kernel.assign(tf.random.stateless_normal(layer.kernel.shape, seed=[3, 4]))
  np.testing.assert_allclose(layer.exact_spectral_norm(), reference(layer),
                             rtol=1e-12)
  with pytest.raises(ValueError, match=r"more than max_entries=10"):
    layer.exact_spectral_norm(max_entries=10)


@pytest.mark.parametrize("make,shape", [
    (lambda: SNDense(7, power_iterations=2), (3, 11)),
    (lambda: SNConv2D(4, 3), (2, 6, 6, 3)),
])
def test_next_estimate_is_what_the_next_training_call_uses(make, shape):
  layer = make()
  x = tf.random.stateless_normal(shape, seed=[1, 2])
  layer(x, training=True)
  layer.kernel.assign_add(0.3 * tf.random.stateless_normal(layer.kernel.shape,
                                                           seed=[5, 6]))
  before = snapshot(layer)
  estimate = float(layer.next_spectral_norm_estimate())
  for a, b in zip(before, snapshot(layer)):  # nothing written
    np.testing.assert_array_equal(a, b)
  layer(x, training=True)
  np.testing.assert_allclose(estimate, layer.sigma.numpy(), rtol=1e-6)


@pytest.mark.parametrize("active", [True, False])
def test_conv_input_scale_is_folded_into_the_kernel(active):
  """conv(s x, W_hat) computed as conv(x, s W_hat): the same outputs and
  kernel gradients up to rounding, and the same sigma (the norm of W)."""
  x = tf.random.stateless_uniform((4, 12, 12, 3), seed=[7, 8], maxval=255.0)
  plain = SNConv2D(5, 4, strides=2, active=active)
  folded = SNConv2D(5, 4, strides=2, active=active, input_scale=1 / 255.0)
  plain.build(x.shape)
  folded.build(x.shape)
  for a, b in zip(folded.weights, plain.weights):
    a.assign(b)

  def out_and_grad(layer, inputs):
    with tf.GradientTape() as tape:
      y = layer(inputs, training=True)
      loss = tf.reduce_sum(tf.square(y))
    return y, tape.gradient(loss, layer.kernel)

  want, want_grad = out_and_grad(plain, x / 255.0)
  got, got_grad = out_and_grad(folded, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(folded.sigma.numpy(), plain.sigma.numpy(), rtol=1e-6)
  assert SNConv2D.from_config(folded.get_config()).input_scale == 1 / 255.0
  with pytest.raises(ValueError, match="input_scale must be a finite number > 0"):
    SNConv2D(5, 3, input_scale=0.0)
