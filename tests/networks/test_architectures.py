"""The paper's MinAtar nets by name: every one builds, with the layers its
name says, and the selection grammar refuses an index it does not have."""

import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from sn_tf.networks import (DEPTH3_MODELS, PAPER_MINATAR_MODELS,
                            SIZE_STUDY_MODELS, minatar_network,
                            parse_minatar_model)


def specs(actions=6):
  return (tensor_spec.BoundedTensorSpec((10, 10, 4), tf.uint8, 0, 1),
          tensor_spec.BoundedTensorSpec((), tf.int32, 0, actions - 1))


def test_the_papers_sets_of_nets():
  assert len(SIZE_STUDY_MODELS) == 12 and len(set(PAPER_MINATAR_MODELS)) == 16
  assert DEPTH3_MODELS == ("8-8-8/32", "16-16-16/64", "24-24-24/128", "32-32-24/256")
  depths = [len(parse_minatar_model(m).conv_filters) for m in SIZE_STUDY_MODELS]
  assert depths == [1] * 4 + [2] * 4 + [3] * 4


@pytest.mark.parametrize("model", PAPER_MINATAR_MODELS)
@pytest.mark.parametrize("num_atoms", [None, 51])
def test_every_named_net_builds_with_its_layers(model, num_atoms):
  parsed = parse_minatar_model(model)
  assert parsed.name == model
  net = minatar_network(*specs(), model=model, num_atoms=num_atoms, spectral="-2")
  out, _ = net(tf.zeros((2, 10, 10, 4), tf.uint8))
  assert out.shape == ((2, 6) if num_atoms is None else (2, 6, 51))
  convs = [l for l in net.sn_layers if l.name.startswith("conv")]
  denses = [l for l in net.sn_layers if l.name.startswith("dense")]
  assert [l.kernel.shape[-1] for l in convs] == list(parsed.conv_filters)
  assert [l.kernel.shape[-1] for l in denses[:-1]] == list(parsed.fc_units)
  assert len(net.sn_layers) == parsed.num_layers == len(convs) + len(denses)
  # -1 the output, -2 the last hidden dense, -3 the last conv (nets with one
  # hidden dense layer, as all of the paper's).
  assert [l.active for l in net.sn_layers][-2] and sum(l.active for l in net.sn_layers) == 1
  assert net.sn_layers[-3].name == f"conv{len(convs) - 1}"
  n = parsed.num_layers
  with pytest.raises(ValueError, match=rf"spectral='-{n + 1}': layer index -{n + 1} "
                     rf"is out of range for a network with {n} conv/dense layers"):
    minatar_network(*specs(), model=model, spectral=f"-{n + 1}")
  minatar_network(*specs(), model=model, spectral=f"-{n}")  # the first conv


@pytest.mark.parametrize("bad", ["", "16", "16/128/1", "0/128", "16/-128",
                                 "16,16/128", "a/b", " /128", "16-/128"])
def test_bad_names_are_refused(bad):
  with pytest.raises(ValueError, match=r"minatar_model=.* is not allowed; allowed: "
                     r"'<conv filters>/<hidden units>'.*the paper's nets: 16/128"):
    parse_minatar_model(bad)


def test_no_hidden_layer_is_allowed():
  assert parse_minatar_model("8/").fc_units == ()
  assert parse_minatar_model("8/").num_layers == 2
