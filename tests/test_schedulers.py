"""rho, DivOut, scheduler wiring and refusals."""

import os

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf import logs
from sn_tf.config import make_config
from sn_tf.networks import minatar_network
from sn_tf.schedulers import SpectralRho
from sn_tf.train import train


def specs():
  return (tensor_spec.BoundedTensorSpec((10, 10, 4), tf.uint8, 0, 1),
          tensor_spec.BoundedTensorSpec((), tf.int32, 0, 5))


@pytest.mark.parametrize("leave_smaller,k", [(False, 1.0), (True, 1.5), (False, 0.7)])
def test_rho_is_product_of_sigma_over_k(leave_smaller, k):
  net = minatar_network(*specs())
  x = tf.cast(tf.random.uniform((4, 10, 10, 4), maxval=2, dtype=tf.int32), tf.uint8)
  for _ in range(3):
    net(x, training=True)
  rho = SpectralRho([net.sn_layers[1], net.sn_layers[2]], lipschitz_k=k,
                    leave_smaller=leave_smaller)
  # sigma_i: what each layer recorded in its last training call.
  factors = [float(l.sigma.numpy()) / k for l in net.sn_layers[1:]]
  if leave_smaller:
    factors = [max(f, 1.0) for f in factors]
  np.testing.assert_allclose(float(rho()), np.prod(factors), rtol=1e-5)
  with tf.GradientTape() as tape:
    value = rho()
  assert tape.gradient(value, net.sn_layers[1].kernel) is None


def test_divout_output_is_unnormalised_output_over_rho():
  plain = minatar_network(*specs())
  divout = minatar_network(*specs(), divout_layers="-2,-3")
  plain.create_variables()
  divout.create_variables()
  divout.set_weights(plain.get_weights())  # kernels, biases, u, v, sigma
  x = tf.cast(tf.random.uniform((4, 10, 10, 4), maxval=2, dtype=tf.int32), tf.uint8)
  for training in (True, False):
    a = plain(x, training=training)[0].numpy()
    b = divout(x, training=training)[0].numpy()
    rho = np.prod([float(l.spectral_norm_estimate()) for l in divout.sn_layers[:2]])
    assert rho > 1.5
    np.testing.assert_allclose(b, a / rho, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("overrides,match", [
    (dict(scheduler="divgrad", spectral="-2", scheduler_layers="-2"),
     r"scheduler='divgrad' .*\[1\] are in both"),
    (dict(scheduler="muleps", optimizer="sgd"), r"muleps .*needs optimizer=adam"),
    (dict(scheduler="divout", scheduler_scope="per_layer"), r"per_layer exists for scheduler=divgrad only"),
    (dict(scheduler="divgrad", scheduler_layers="none"), r"scheduler_layers='none' .*at least one layer"),
    (dict(scheduler="divgrad", scheduler_layers="-5"), r"scheduler_layers='-5': layer index -5 is out of range"),
    (dict(scheduler="divot"), r"scheduler='divot' .*none, divout, divgrad, muleps"),
    (dict(optimizer="adamw"), r"optimizer='adamw' .*adam, rmsprop, sgd"),
    (dict(adam_epsilon_placement="torch"), r"adam_epsilon_placement='torch'"),
])
def test_impossible_combinations_refused(overrides, match):
  with pytest.raises(ValueError, match=match):
    make_config("minatar:breakout", "/tmp/r", "minatar", **overrides)


@pytest.mark.parametrize("scheduler,extra", [
    ("divout", {}), ("divgrad", {}), ("divgrad", dict(scheduler_scope="per_layer")),
    ("muleps", {}), ("divgrad", dict(optimizer="rmsprop")), ("divlr", {}),
])
def test_short_run_with_each_scheduler_logs_rho(tmp_path, scheduler, extra):
  config = make_config(
      "minatar:breakout", str(tmp_path / "r"), "minatar", spectral="none",
      scheduler=scheduler, scheduler_layers="-2", num_steps=150, eval_every=150,
      eval_episodes=1, learning_starts=50, replay_capacity=300, batch_size=8,
      log_every=50, eval_max_episode_steps=50, **extra)
  result = train(config)
  row = logs.read_csv(os.path.join(config.root_dir, logs.CSV_FILE))[-1]
  assert float(row["rho"]) > 0 and np.isfinite(float(row["loss"]))
  # rho is u^T W v after the last update; sigma/dense1 the value recorded
  # in the forward pass before it: equal up to one optimiser step.
  sigma = float(row["sigma/dense1"])
  if scheduler == "divlr":  # its rho_i is max(sigma_i / K, 1)
    sigma = max(sigma, 1.0)
  np.testing.assert_allclose(float(row["rho"]), sigma, rtol=3e-2)
  assert result["step"] == 150


@pytest.mark.parametrize("conv,fc", [((), (32, 16)), ((8, 8), (16,))])
@pytest.mark.parametrize("leave_smaller", [False, True])
def test_sn_bias_scaling_equals_unnormalised_over_rho_equals_divout(conv, fc, leave_smaller):
  """docs/schedulers.md#sn-with-bias-scaling for a ReLU MLP and a conv net with fixed weights."""
  from sn_tf.networks import SNCategoricalQNetwork
  kw = dict(conv_layers=[(f, 3, 1) for f in conv], fc_units=fc,
            leave_smaller=leave_smaller, lipschitz_k=0.5)
  sel = "-2,-3"
  plain = SNCategoricalQNetwork(*specs(), **kw)
  sn_bias = SNCategoricalQNetwork(*specs(), spectral=sel, bias_scaling=True, **kw)
  divout = SNCategoricalQNetwork(*specs(), divout_layers=sel, **kw)
  for net in (plain, sn_bias, divout):
    net.create_variables()
  rng = np.random.default_rng(0)
  # Nonzero biases make the bias scaling matter.
  weights = [w + rng.normal(scale=0.1, size=w.shape).astype(np.float32)
             if "bias" in v.name else w
             for v, w in zip(plain.weights, plain.get_weights())]
  for net in (plain, sn_bias, divout):
    net.set_weights(weights)
  x = tf.cast(tf.random.uniform((5, 10, 10, 4), maxval=2, dtype=tf.int32), tf.uint8)
  for training in (True, False):
    f = plain(x, training=training)[0].numpy().astype(np.float64)
    g = sn_bias(x, training=training)[0].numpy()
    h = divout(x, training=training)[0].numpy()
    layers = plain.sn_layers[-3:-1]
    rho = np.prod([float(l.spectral_norm_estimate()) / 0.5 for l in layers]
                  if not leave_smaller else
                  [max(float(l.spectral_norm_estimate()) / 0.5, 1.0) for l in layers])
    assert abs(rho - 1.0) > 0.1
    np.testing.assert_allclose(g, f / rho, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, f / rho, rtol=1e-5, atol=1e-6)
