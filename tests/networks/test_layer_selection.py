"""The layer-selection grammar (docs/layers.md#selection-grammar)."""

import pytest

from sn_tf.networks import parse_layer_selection


@pytest.mark.parametrize("spec,n,normalised,tracked", [
    ("none", 3, set(), set()),
    ("", 3, set(), set()),
    ("null", 3, set(), set()),
    ("full", 3, {0, 1, 2}, set()),
    ("-2", 3, {1}, set()),
    ("-1", 5, {4}, set()),
    ("-1,-2", 3, {2, 1}, set()),
    ("-1,-2L", 3, {2}, {1}),
    ("-2L", 3, set(), {1}),
    (" 0 , 2 ", 3, {0, 2}, set()),
    ("-1,-2,-3", 3, {0, 1, 2}, set()),
    ("-4", 5, {1}, set()),
])
def test_parses(spec, n, normalised, tracked):
  sel = parse_layer_selection(spec, n)
  assert sel.normalised == normalised
  assert sel.tracked == tracked
  assert sel.num_layers == n


@pytest.mark.parametrize("spec,n,match", [
    ("-4", 3, "out of range for a network with 3"),
    ("3", 3, "out of range"),
    ("-2,x", 3, "malformed item 'x'"),
    ("-2l", 3, "malformed item"),
    ("-1,,-2", 3, "malformed item ''"),
    ("-1,2", 3, "named twice"),
    ("1.5", 3, "malformed"),
])
def test_errors_name_flag_value_and_allowed(spec, n, match):
  with pytest.raises(ValueError, match=match) as info:
    parse_layer_selection(spec, n, flag="spectral")
  assert f"spectral={spec!r}" in str(info.value)
  if "twice" not in match:
    assert f"[-{n}, {n - 1}]" in str(info.value)


def test_non_string_refused():
  with pytest.raises(ValueError, match="spectral must be a string"):
    parse_layer_selection(-2, 3)
