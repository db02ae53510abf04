"""C51 networks: shapes, SN placement, casting, copies."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf.networks import atari_network, minatar_network

MINATAR_CHANNELS = {"asterix": 4, "breakout": 4, "freeway": 7, "seaquest": 10,
                    "space_invaders": 6}


def specs(shape, actions, maximum=1):
  return (tensor_spec.BoundedTensorSpec(shape, tf.uint8, 0, maximum),
          tensor_spec.BoundedTensorSpec((), tf.int32, 0, actions - 1))


@pytest.mark.parametrize("game,channels", sorted(MINATAR_CHANNELS.items()))
def test_minatar_shapes(game, channels):
  del game
  obs_spec, act_spec = specs((10, 10, channels), 6)
  net = minatar_network(obs_spec, act_spec, spectral="-2")
  logits, state = net(tf.zeros((3, 10, 10, channels), tf.uint8))
  assert logits.shape == (3, 6, 51) and state == ()
  assert net.num_atoms == 51
  kernels = [l.kernel.shape.as_list() for l in net.sn_layers]
  assert kernels == [[3, 3, channels, 16], [1024, 128], [128, 6 * 51]]


def test_atari_shapes_and_headline_layer():
  obs_spec, act_spec = specs((84, 84, 4), 6, 255)
  net = atari_network(obs_spec, act_spec, spectral="-2")
  logits, _ = net(tf.zeros((2, 84, 84, 4), tf.uint8))
  assert logits.shape == (2, 6, 51)
  assert net.sn_layers[3].kernel.shape == (3136, 512)
  assert [l.active for l in net.sn_layers] == [False, False, False, True, False]


def test_dopamine_atari_network_is_dopamines():
  """SAME padding (a 7744-wide flatten) and kernels of VarianceScaling(
  scale=1/sqrt(3), fan_in, uniform), i.e. uniform on [-l, l] with
  l = sqrt(3 scale / fan_in) = 3^(1/4) / sqrt(fan_in), biases zero, in every
  layer; its copy is built the same way."""
  obs_spec, act_spec = specs((84, 84, 4), 6, 255)
  tf.keras.utils.set_random_seed(0)
  net = atari_network(obs_spec, act_spec, architecture="dopamine", spectral="-2")
  logits, _ = net(tf.zeros((2, 84, 84, 4), tf.uint8))
  assert logits.shape == (2, 6, 51)
  kernels = [l.kernel.shape.as_list() for l in net.sn_layers]
  assert kernels == [[8, 8, 4, 32], [4, 4, 32, 64], [3, 3, 64, 64],
                     [7744, 512], [512, 6 * 51]]
  assert [l.padding for l in net.sn_layers[:3]] == ["same"] * 3
  for layer in net.sn_layers:
    w = layer.kernel.numpy()
    limit = 3.0 ** 0.25 / np.sqrt(np.prod(w.shape[:-1]))
    assert np.abs(w).max() <= limit
    # Uniform on [-limit, limit]: variance limit^2 / 3 (to 10% on >= 16k draws).
    assert abs(w.var() / (limit ** 2 / 3) - 1) < 0.1, layer.name
    assert not layer.bias.numpy().any()
  target = net.copy(name="target")
  target.create_variables(obs_spec)
  assert [l.kernel.shape.as_list() for l in target.sn_layers] == kernels
  # The paper's net is Glorot-uniform: for conv0 a different bound.
  paper = atari_network(obs_spec, act_spec)
  paper.create_variables()
  w = paper.sn_layers[0].kernel.numpy()
  glorot = np.sqrt(6.0 / (8 * 8 * 4 + 8 * 8 * 32))
  assert np.abs(w).max() <= glorot and np.abs(w).max() > 0.9 * glorot


def test_unknown_atari_network_is_refused():
  obs_spec, act_spec = specs((84, 84, 4), 6, 255)
  with pytest.raises(ValueError, match=r"atari_network='nature' is not allowed; "
                     r"allowed: paper, dopamine"):
    atari_network(obs_spec, act_spec, architecture="nature")


@pytest.mark.parametrize("maximum", [1, 255])
def test_create_variables_on_a_full_range_uint8_spec(maximum):
  """TF-Agents samples the spec to build a network; a uint8 maximum of 255
  overflowed that sampler under NumPy 2. The network builds without it, and
  its copy (the target network) too."""
  obs_spec, act_spec = specs((84, 84, 4), 6, maximum)
  net = atari_network(obs_spec, act_spec, spectral="-2")
  out = net.create_variables()
  assert out == tf.TensorSpec((6, 51), tf.float32)
  assert net.create_variables() is out  # built once
  target = net.copy(name="target")
  assert target.create_variables(obs_spec) == out
  assert len(target.variables) == len(net.variables)


def test_atari_input_scaling():
  obs_spec, act_spec = specs((84, 84, 4), 4, 255)
  net = atari_network(obs_spec, act_spec)
  x = np.random.RandomState(0).randint(0, 256, (2, 84, 84, 4)).astype(np.uint8)
  net(x)
  conv = net.sn_layers[0]
  # The layers are linear; the network applies ReLU between them. The
  # 1/255 is the first conv's (folded into its kernel): it takes raw pixels.
  assert conv.input_scale == 1 / 255.0
  h = tf.nn.conv2d(x.astype(np.float32) / 255.0, conv.kernel, 4, "VALID") + conv.bias
  np.testing.assert_allclose(conv(x.astype(np.float32)).numpy(), h.numpy(),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec,active", [
    ("none", [False] * 3), ("full", [True] * 3), ("-1,-2L", [False, False, True]),
    ("-3", [True, False, False])])
def test_sn_placement_and_every_layer_tracked(spec, active):
  obs_spec, act_spec = specs((10, 10, 4), 6)
  net = minatar_network(obs_spec, act_spec, spectral=spec)
  net(tf.zeros((1, 10, 10, 4), tf.uint8), training=True)
  assert [l.active for l in net.sn_layers] == active
  assert all(l.sigma.numpy() > 0 for l in net.sn_layers)
  assert [l.name for l in net.sn_layers] == ["conv0", "dense1", "dense2"]


def test_width_and_depth():
  obs_spec, act_spec = specs((10, 10, 4), 3)
  net = minatar_network(obs_spec, act_spec, model="8-8/64-32", spectral="-3")
  logits, _ = net(tf.zeros((2, 10, 10, 4), tf.uint8))
  assert logits.shape == (2, 3, 51)
  assert len(net.sn_layers) == 5 and net.sn_layers[2].active
  with pytest.raises(ValueError, match="out of range for a network with 5"):
    minatar_network(obs_spec, act_spec, model="8-8/64-32", spectral="-6")


def test_bool_and_float_observations():
  obs_spec, act_spec = specs((10, 10, 4), 6)
  net = minatar_network(obs_spec, act_spec)
  x = np.random.RandomState(1).rand(2, 10, 10, 4) > 0.5
  a = net(x.astype(np.uint8))[0]
  b = net(x)[0]
  c = net(x.astype(np.float32))[0]
  np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(a.numpy(), c.numpy())


def test_copy_shares_no_layer_or_variable():
  obs_spec, act_spec = specs((10, 10, 4), 6)
  net = minatar_network(obs_spec, act_spec, spectral="-2")
  net.create_variables()
  target = net.copy(name="target")
  target.create_variables()
  assert not {id(l) for l in net.sn_layers} & {id(l) for l in target.sn_layers}
  assert not {id(v) for v in net.variables} & {id(v) for v in target.variables}
  assert len(net.variables) == len(target.variables) == 15
  assert [l.active for l in target.sn_layers] == [False, True, False]
