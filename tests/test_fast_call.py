"""FlatCall: the same outputs and side effects as calling the tf.function."""

import numpy as np
import pytest
import tensorflow as tf

from sn_tf.fast_call import FlatCall


def _model_step():
  """A tf.function with a dict argument, variables (captured handles) and a
  side effect: a counter it increments, and a linear map it applies."""
  weights = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 7.0)
  calls = tf.Variable(0, dtype=tf.int64)

  @tf.function(input_signature=[
      dict(x=tf.TensorSpec([None, 4], tf.float32),
           idx=tf.TensorSpec([None], tf.int32)),
      tf.TensorSpec([None, 2, 2], tf.uint8)])
  def step(batch, image):
    calls.assign_add(1)
    y = tf.matmul(batch["x"], weights)
    chosen = tf.gather(y, batch["idx"], batch_dims=1)
    return chosen, tf.reduce_sum(tf.cast(image, tf.float32), [1, 2]), calls.read_value()

  return step, weights, calls


def _args(seed):
  rng = np.random.default_rng(seed)
  batch = dict(x=rng.normal(size=(5, 4)).astype(np.float32),
               idx=rng.integers(0, 3, 5).astype(np.int32))
  image = rng.integers(0, 255, (5, 2, 2)).astype(np.uint8)
  return batch, image


def test_outputs_and_side_effects_equal_the_tf_function():
  step, _, calls = _model_step()
  flat = FlatCall(step)
  for seed in range(3):
    batch, image = _args(seed)
    want = [t.numpy() for t in step(batch, image)]
    got = [t.numpy() for t in flat(batch, image)]
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2] + 1  # each call incremented the counter once
  assert calls.numpy() == 6


def test_variables_changed_after_construction_are_read_at_each_call():
  """The captured handles are listed once; the values are read per call."""
  step, weights, _ = _model_step()
  flat = FlatCall(step)
  batch, image = _args(0)
  before = flat(batch, image)[0].numpy()
  weights.assign(weights * 2.0)
  after = flat(batch, image)[0].numpy()
  np.testing.assert_allclose(after, 2.0 * before, rtol=1e-6)
  np.testing.assert_array_equal(after, step(batch, image)[0].numpy())


def test_an_array_reused_by_the_caller_does_not_change_a_returned_tensor():
  """Inputs are copied: an output that is the input itself keeps its values
  when the caller overwrites the array afterwards."""

  @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
  def identity(x):
    return x

  # 64-byte aligned, so that a tensor may share the array's memory.
  buffer = np.empty(4096 * 3 * 4 + 64, np.uint8)
  start = -buffer.ctypes.data % 64
  array = buffer[start:start + 4096 * 3 * 4].view(np.float32).reshape(4096, 3)
  array[:] = 1.0
  out = FlatCall(identity)(array)
  array[:] = 5.0
  np.testing.assert_array_equal(out.numpy(), np.ones((4096, 3), np.float32))


def test_other_dtypes_and_tensors_are_converted_to_the_signature():
  step, _, _ = _model_step()
  flat = FlatCall(step)
  batch, image = _args(1)
  want = step(batch, image)[0].numpy()
  loose = dict(x=batch["x"].astype(np.float64),
               idx=tf.constant(batch["idx"]))
  got = flat(loose, tf.constant(image))[0].numpy()
  np.testing.assert_array_equal(got, want)


def test_under_a_tape_and_in_a_graph_it_is_the_tf_function():
  """A watching tape gets the call's gradient, and a call while tracing
  becomes a call op in the graph, as with the tf.function itself."""
  weights = tf.Variable([[1.0, -2.0], [0.5, 3.0]])

  @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
  def square_sum(x):
    return tf.reduce_sum(tf.square(tf.matmul(x, weights)))

  flat = FlatCall(square_sum)
  x = np.array([[1.0, 2.0], [-1.0, 0.5]], np.float32)
  with tf.GradientTape() as tape:
    got = flat(x)
  with tf.GradientTape() as reference:
    want = square_sum(x)
  np.testing.assert_array_equal(got.numpy(), want.numpy())
  grad = tape.gradient(got, weights)
  assert grad is not None
  np.testing.assert_array_equal(grad.numpy(),
                                reference.gradient(want, weights).numpy())

  @tf.function
  def twice(x):
    return flat(x) + flat(2.0 * x)

  np.testing.assert_allclose(twice(x).numpy(),
                             (square_sum(x) + square_sum(2.0 * x)).numpy(),
                             rtol=1e-6)


def test_bad_calls_raise():
  step, _, _ = _model_step()
  flat = FlatCall(step)
  batch, image = _args(0)
  with pytest.raises(ValueError, match="does not match the signature"):
    flat(batch, image[:, :, :1])
  with pytest.raises(ValueError, match="does not match the signature"):
    flat(batch, image[0])
  with pytest.raises((ValueError, TypeError)):
    flat(batch)
  with pytest.raises((ValueError, TypeError)):
    flat(dict(x=batch["x"]), image)
  identity = FlatCall(tf.function(
      lambda x: x, input_signature=[tf.TensorSpec([None], tf.float32)]))
  with pytest.raises(ValueError, match="1 arguments, the signature has 2"):
    FlatCall(tf.function(lambda x, y: x, input_signature=[
        tf.TensorSpec([None], tf.float32)] * 2))(np.zeros(1, np.float32))
  with pytest.raises(ValueError, match="2 arguments, the signature has 1"):
    identity(np.zeros(1, np.float32), np.zeros(1, np.float32))
  with pytest.raises(ValueError, match="input_signature"):
    FlatCall(tf.function(lambda x: x))
