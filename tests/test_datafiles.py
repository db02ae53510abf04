"""Data-only state files: exact round trips, and nothing but data is read."""

import io
import json
import os

import numpy as np
import pytest

from sn_tf import datafiles


def same(a, b):
  """Equal in type, dtype, shape and value (NaN equal to NaN)."""
  assert type(a) is type(b), (a, b)
  if isinstance(a, np.ndarray):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
  elif isinstance(a, np.generic):
    assert a.dtype == b.dtype
    assert a == b or (np.isnan(a) and np.isnan(b))
  elif isinstance(a, float):
    assert a == b or (np.isnan(a) and np.isnan(b))
  elif isinstance(a, (list, tuple)):
    assert len(a) == len(b)
    for x, y in zip(a, b):
      same(x, y)
  elif isinstance(a, dict):
    assert list(a) == list(b)
    for k in a:
      same(a[k], b[k])
  else:
    assert a == b


STATE = {
    "none": None, "flag": True, "big": 2**127 + 5, "neg": -3, "x": 0.1,
    "nan": float("nan"), "inf": float("-inf"), "text": "ckpt",
    "bytes": b"\x00ALE\xff", "empty_bytes": b"",
    "list": [1, [2.5, None], (3, "a")], "tuple": ("MT19937", np.arange(3, dtype=np.uint32), 7, 0, 0.0),
    "int_keys": {0: "a", (1, 2): [True]},
    "arrays": [np.zeros((10, 10, 4), bool), np.float32([1.5, np.nan]),
               np.array(3, np.int64), np.empty((0, 2), np.uint8)],
    "scalars": [np.float32(0.25), np.int64(-7), np.bool_(True), np.uint8(255),
                np.float64(np.nan)],
    # A dict whose keys look like the format's own tags stays a dict.
    "tags": {"float": "nan", "ndarray": "a0", "dict": []},
}


def test_round_trip_keeps_types_and_values_exactly(tmp_path):
  datafiles.write(str(tmp_path), "state", STATE, fsync=False)
  same(datafiles.read(str(tmp_path), "state"), STATE)
  same(datafiles.decode(*datafiles.encode(STATE)), STATE)
  # Arrays read back are not views of one another or of the file.
  out = datafiles.read(str(tmp_path), "state")
  out["arrays"][0][0, 0, 0] = True
  assert not datafiles.read(str(tmp_path), "state")["arrays"][0].any()


class Thing:
  pass


@pytest.mark.parametrize("value,where", [
    ({"env": [1, Thing()]}, r"state\['env'\]\[1\]: a .*Thing cannot be stored"),
    ({"a": np.array([object()], dtype=object)}, r"state\['a'\]: arrays of dtype object"),
    ({"s": {1, 2}}, r"state\['s'\]: a builtins.set"),
])
def test_anything_but_data_is_refused_naming_where_it_is(value, where):
  with pytest.raises(TypeError, match=where):
    datafiles.encode(value)


def test_a_crafted_file_is_refused_not_executed(tmp_path):
  d = str(tmp_path)
  datafiles.write(d, "state", {"a": np.arange(3)}, fsync=False)
  # An object array in the npz: np.load with allow_pickle=False refuses it.
  buffer = io.BytesIO()
  np.savez(buffer, a0=np.array([Thing()], dtype=object))
  with open(os.path.join(d, "state.npz"), "wb") as f:
    f.write(buffer.getvalue())
  with pytest.raises(ValueError, match="allow_pickle"):
    datafiles.read(d, "state")
  # Unknown tags and object dtypes in the tree are refused.
  for tree, match in (({"call": ["os.system", "true"]}, "not a value this format writes"),
                      ({"scalar": "|O", "value": "a0"}, "dtype '|O' is not allowed")):
    datafiles.write(d, "state", {"a": np.arange(3)}, fsync=False)
    with open(os.path.join(d, "state.json"), "w") as f:
      json.dump({"format": datafiles.FORMAT, "state": tree}, f)
    with pytest.raises(ValueError, match=match):
      datafiles.read(d, "state")
  with open(os.path.join(d, "state.json"), "w") as f:
    json.dump({"state": 1}, f)
  with pytest.raises(ValueError, match="is not an sn_tf-state-1 file"):
    datafiles.read(d, "state")
