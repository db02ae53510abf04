"""Scheduler optimisers: DivGrad == MulEps for constant rho, rho == 1 is Adam."""

import numpy as np
import pytest
import tensorflow as tf

from sn_tf.optimizers import (DivGradAdam, DivGradRMSprop, DivGradSGD, DivLRAdam,
                              MulEpsAdam, ReferenceAdam, ReferenceRMSprop, divgrad)


def run(optimizer, steps=25, seed=0):
  """``steps`` updates of a small least-squares problem from a fixed start."""
  rng = np.random.default_rng(seed)
  w = tf.Variable(rng.normal(size=(5, 3)).astype(np.float32))
  b = tf.Variable(rng.normal(size=(3,)).astype(np.float32))
  x = tf.constant(rng.normal(size=(16, 5)).astype(np.float32))
  y = tf.constant(rng.normal(size=(16, 3)).astype(np.float32))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(x @ w + b - y))
    optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))

  for _ in range(steps):
    step()
  return [w.numpy(), b.numpy()]


def assert_close(a, b, rtol):
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("placement", ["keras", "reference"])
@pytest.mark.parametrize("rho", [0.3, 4.0, 37.0])
def test_divgrad_equals_muleps_for_constant_rho(placement, rho):
  kw = dict(learning_rate=1e-2, epsilon=1e-3, epsilon_placement=placement)
  a = run(DivGradAdam(rho=tf.Variable(rho), **kw))
  b = run(MulEpsAdam(rho=lambda: tf.constant(rho), **kw))
  assert_close(a, b, rtol=1e-5)
  plain = run(ReferenceAdam(**kw))
  assert not np.allclose(a[0], plain[0], rtol=1e-4)  # rho matters


def test_rho_one_is_plain_adam_exactly():
  # Our Adam runs TF's fused ResourceApplyAdam kernel, as TF's legacy Keras
  # Adam does; the Keras 2.15 Adam composes the same update from ~15 ops,
  # which rounds differently.
  kw = dict(learning_rate=1e-2, epsilon=1e-3)
  plain = run(tf.keras.optimizers.legacy.Adam(**kw))
  for opt in (ReferenceAdam(epsilon_placement="keras", **kw),
              DivGradAdam(rho=1.0, epsilon_placement="keras", **kw),
              MulEpsAdam(rho=tf.Variable(1.0), epsilon_placement="keras", **kw)):
    for x, y in zip(run(opt), plain):
      np.testing.assert_array_equal(x, y)
  assert_close(run(tf.keras.optimizers.Adam(**kw)), plain, rtol=1e-3)


def test_amsgrad_is_tf_amsgrad_adam():
  kw = dict(learning_rate=1e-2, epsilon=1e-3, amsgrad=True)
  ours = run(ReferenceAdam(epsilon_placement="keras", **kw))
  for x, y in zip(ours, run(tf.keras.optimizers.legacy.Adam(**kw))):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(ours[0], run(ReferenceAdam(
      epsilon_placement="keras", learning_rate=1e-2, epsilon=1e-3))[0])


def test_reference_placement_matches_pytorch_formula():
  rng = np.random.default_rng(3)
  g = [rng.normal(size=4) for _ in range(3)]
  w0 = rng.normal(size=4)
  # Keras keeps the learning rate in a float32 variable.
  lr, b1, b2, eps = float(np.float32(0.1)), 0.9, 0.999, 1e-2
  w, m, v = w0.copy(), np.zeros(4), np.zeros(4)
  for t, gt in enumerate(g, start=1):
    m = b1 * m + (1 - b1) * gt
    v = b2 * v + (1 - b2) * gt**2
    w -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
  var = tf.Variable(w0)
  opt = ReferenceAdam(learning_rate=lr, epsilon=eps, epsilon_placement="reference")
  for gt in g:
    opt.apply_gradients([(tf.constant(gt), var)])
  np.testing.assert_allclose(var.numpy(), w, rtol=1e-12)


@pytest.mark.parametrize("cls,plain", [
    (DivGradRMSprop, tf.keras.optimizers.RMSprop),
    (DivGradSGD, tf.keras.optimizers.SGD)])
def test_divgrad_other_optimisers_scale_gradients(cls, plain):
  arg = "spectral_rho" if cls is DivGradRMSprop else "rho"
  a = run(cls(learning_rate=1e-2, **{arg: 2.0}))
  # SGD: dividing gradients by 2 == halving the learning rate.
  if plain is tf.keras.optimizers.SGD:
    assert_close(a, run(plain(learning_rate=5e-3)), rtol=1e-6)
  assert_close(run(cls(learning_rate=1e-2, **{arg: 1.0})),
               run(plain(learning_rate=1e-2)), rtol=0)


def test_per_layer_scope_scales_only_tracked_kernels():
  w = tf.Variable(tf.ones((2, 2)))
  b = tf.Variable(tf.ones((2,)))
  w2 = tf.Variable(tf.ones((2, 2)))
  opt = DivGradSGD(learning_rate=1.0, scope="per_layer",
                   layer_rhos=[(w, tf.Variable(4.0)), (w2, lambda: tf.constant(0.5))])
  g = tf.ones((2, 2))
  opt.apply_gradients([(g, w), (tf.ones((2,)), b), (g, w2)])
  np.testing.assert_allclose(w.numpy(), 1 - 0.25)
  np.testing.assert_allclose(b.numpy(), 0.0)
  np.testing.assert_allclose(w2.numpy(), 1 - 2.0)


def test_generic_wrapper_and_config():
  cls = divgrad(tf.keras.optimizers.Adagrad)
  opt = cls(rho=3.0, learning_rate=0.1)
  assert opt.get_config()["rho"] == 3.0 and opt.get_config()["scope"] == "global"
  clone = DivGradAdam.from_config(DivGradAdam(rho=2.0, epsilon=0.5).get_config())
  assert clone.spectral_rho == 2.0 and clone.epsilon == 0.5
  rms = DivGradRMSprop(spectral_rho=3.0, rho=0.95)
  assert rms.rho == 0.95 and rms.spectral_rho == 3.0
  assert DivGradRMSprop.from_config(rms.get_config()).spectral_rho == 3.0
  m = MulEpsAdam(rho=tf.Variable(2.0), epsilon_placement="keras")
  config = m.get_config()
  assert config["rho"] is None and config["epsilon_placement"] == "keras"
  restored = MulEpsAdam.from_config(config)
  with pytest.raises(ValueError, match="rho is not set"):
    restored.apply_gradients([(tf.ones(2), tf.Variable(tf.ones(2)))])


@pytest.mark.parametrize("kwargs,match", [
    (dict(scope="layer"), "scope must be one of"),
    (dict(scope="per_layer"), "needs layer_rhos"),
    (dict(rho=-1.0), "rho must be > 0"),
    (dict(rho="big"), "rho must be a tf.Variable"),
    (dict(epsilon_placement="torch"), "epsilon_placement must be one of"),
])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    DivGradAdam(**kwargs)


def test_checkpoint_round_trip_of_slots(tmp_path):
  opt = MulEpsAdam(rho=2.0, learning_rate=1e-2)
  run(opt, steps=3)
  ckpt = tf.train.Checkpoint(opt=opt)
  path = ckpt.write(str(tmp_path / "c"))
  values = [v.numpy() for v in opt.variables]
  for v in opt.variables:
    v.assign(tf.zeros_like(v))
  ckpt.read(path).assert_existing_objects_matched()
  for a, v in zip(values, opt.variables):
    np.testing.assert_array_equal(a, v.numpy())


def test_muleps_reads_rho_once_per_step_before_any_update():
  """rho depending on a variable being updated: one step of MulEps equals
  one step of DivGrad (both moments start at zero) for every variable."""
  outs = []
  for cls in (DivGradAdam, MulEpsAdam):
    w = tf.Variable([3.0, 4.0])
    b = tf.Variable([1.0])
    opt = cls(rho=lambda w=w: tf.norm(w), learning_rate=1.0, epsilon=1.0)
    opt.apply_gradients([(tf.constant([1.0, 1.0]), w), (tf.constant([1.0]), b)])
    outs.append(np.concatenate([w.numpy(), b.numpy()]))
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6)


def test_step_scalars_are_computed_once_per_step_and_dtype():
  """lr, beta powers and epsilon: one set per apply_gradients, whatever the
  number of variables (float32 and float64 variables get one set each)."""
  variables = [tf.Variable(np.ones(3, np.float32)) for _ in range(4)]
  variables.append(tf.Variable(np.ones(2, np.float64)))
  opt = ReferenceAdam(learning_rate=1e-2, epsilon=1e-3)

  @tf.function
  def step():
    opt.apply_gradients([(tf.ones_like(v), v) for v in variables])

  graph = step.get_concrete_function().graph.as_graph_def()
  ops = [n.op for n in graph.node] + [n.op for f in graph.library.function
                                      for n in f.node_def]
  assert ops.count("Pow") == 2 * 2  # beta_1^t and beta_2^t per dtype
  assert ops.count("ResourceApplyAdam") == 5
  step()
  for v in variables:  # every variable took the same first Adam step
    np.testing.assert_allclose(v.numpy(), 1 - 1e-2 / (1 + 1e-3), rtol=1e-6)


def test_jit_compiled_update_steps_share_no_tensors():
  """With jit_compile (Keras' default on a GPU) each variable's update is its
  own XLA function: the per-step scalars are not shared across them."""
  kw = dict(learning_rate=1e-2, epsilon=1e-3)
  opt = ReferenceAdam(epsilon_placement="keras", **kw)
  opt.jit_compile = True
  assert_close(run(opt), run(tf.keras.optimizers.legacy.Adam(**kw)), rtol=1e-5)


def _torch_rmsprop(steps, lr, alpha, eps, centered, seed=0):
  """PyTorch's RMSprop update (momentum 0) in float64 NumPy on ``run``'s
  problem: v = a v + (1 - a) g^2; with centering g_avg likewise and
  v - g_avg^2 in the root; w -= lr g / (sqrt(.) + eps)."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(5, 3)).astype(np.float32).astype(np.float64)
  b = rng.normal(size=(3,)).astype(np.float32).astype(np.float64)
  x = rng.normal(size=(16, 5)).astype(np.float32).astype(np.float64)
  y = rng.normal(size=(16, 3)).astype(np.float32).astype(np.float64)
  params = [w, b]
  v = [np.zeros_like(p) for p in params]
  avg = [np.zeros_like(p) for p in params]
  for _ in range(steps):
    r = x @ w + b - y
    grads = [2 * x.T @ r / r.size, 2 * r.sum(axis=0) / r.size]
    for i, (p, g) in enumerate(zip(params, grads)):
      v[i] = alpha * v[i] + (1 - alpha) * g * g
      second = v[i]
      if centered:
        avg[i] = alpha * avg[i] + (1 - alpha) * g
        second = v[i] - avg[i] ** 2
      p -= lr * g / (np.sqrt(second) + eps)
  return params


@pytest.mark.parametrize("centered", [False, True])
def test_reference_rmsprop_is_pytorchs(centered):
  kw = dict(learning_rate=1e-3, rho=0.95, epsilon=0.01, centered=centered)
  got = run(ReferenceRMSprop(epsilon_placement="reference", **kw))
  want = _torch_rmsprop(25, 1e-3, 0.95, 0.01, centered)
  assert_close(got, want, rtol=1e-5)
  # Keras' placement is a different function of eps, not a rescaling.
  keras = run(ReferenceRMSprop(epsilon_placement="keras", **kw))
  assert not np.allclose(keras[0], want[0], rtol=1e-3)


def test_keras_placement_is_keras_rmsprop_exactly():
  kw = dict(learning_rate=1e-2, rho=0.9, epsilon=1e-7)
  for centered in (False, True):
    for x, y in zip(run(ReferenceRMSprop(centered=centered, **kw)),
                    run(tf.keras.optimizers.RMSprop(centered=centered, **kw))):
      np.testing.assert_array_equal(x, y)
  with pytest.raises(ValueError, match="epsilon_placement must be one of"):
    ReferenceRMSprop(epsilon_placement="torch")
  with pytest.raises(ValueError, match="momentum must be 0"):
    ReferenceRMSprop(momentum=0.9, epsilon_placement="reference")
  config = ReferenceRMSprop(epsilon_placement="reference", rho=0.95).get_config()
  again = ReferenceRMSprop.from_config(config)
  assert (again.epsilon_placement, again.rho) == ("reference", 0.95)


def _adam_by_hand(lrs, steps, eps=1e-3, b1=0.9, b2=0.999, seed=0):
  """PyTorch's Adam in float64 on ``run``'s problem, with learning rate
  ``lrs[i]`` for parameter i (w, b): the paper code's per-group rates."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(5, 3)).astype(np.float32).astype(np.float64)
  b = rng.normal(size=(3,)).astype(np.float32).astype(np.float64)
  x = rng.normal(size=(16, 5)).astype(np.float32).astype(np.float64)
  y = rng.normal(size=(16, 3)).astype(np.float32).astype(np.float64)
  params = [w, b]
  m = [np.zeros_like(p) for p in params]
  v = [np.zeros_like(p) for p in params]
  for t in range(1, steps + 1):
    r = x @ w + b - y
    grads = [2 * x.T @ r / r.size, 2 * r.sum(axis=0) / r.size]
    for i, (p, g) in enumerate(zip(params, grads)):
      m[i] = b1 * m[i] + (1 - b1) * g
      v[i] = b2 * v[i] + (1 - b2) * g * g
      m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
      p -= lrs[i] * m_hat / (np.sqrt(v_hat) + eps)
  return params


def test_divlr_steps_each_group_with_lr_over_its_rho():
  """The kernel's group gets lr / 4 (rho 4), the bias the plain lr."""
  holder = {}

  class Grouped(DivLRAdam):
    def build(self, var_list):
      if not self.layer_rhos:  # the kernel of run()'s problem is created first
        self.layer_rhos = [([var_list[0]], holder.setdefault("rho", tf.Variable(4.0)))]
      super().build(var_list)

  got = run(Grouped(learning_rate=1e-2, epsilon=1e-3), steps=25)
  want = _adam_by_hand([1e-2 / 4, 1e-2], 25)
  assert_close(got, want, rtol=1e-5)
  plain = run(ReferenceAdam(learning_rate=1e-2, epsilon=1e-3), steps=25)
  assert not np.allclose(got[0], plain[0], rtol=1e-3)  # the rate matters


def test_divlr_with_rho_one_is_adam_exactly():
  class Grouped(DivLRAdam):
    def build(self, var_list):
      if not self.layer_rhos:
        self.layer_rhos = [(list(var_list), 1.0)]
      super().build(var_list)

  kw = dict(learning_rate=1e-2, epsilon=1e-3)
  for x, y in zip(run(Grouped(**kw)), run(ReferenceAdam(**kw))):
    np.testing.assert_array_equal(x, y)
