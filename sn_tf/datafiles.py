"""Data-only files for a run's Python state: a JSON tree plus an ``.npz``.

A checkpoint's Python side (loop counters, RNG states, env snapshots) is a
nested value of a few plain types. ``write`` stores it as ``<name>.json``
(the tree) and ``<name>.npz`` (its arrays and bytes, ``allow_pickle=False``);
``read`` rebuilds it. Reading never constructs anything but these types, so
a file from somebody else cannot run code (unlike ``pickle``).

Types kept exactly (type, dtype, shape and value): ``None``, ``bool``,
``int`` (any size), ``float`` (NaN and infinities included), ``str``,
``bytes``, ``list``, ``tuple``, ``dict`` (any of these as keys), NumPy
arrays of numeric or boolean dtype and NumPy scalars. Anything else is
refused with a ``TypeError`` that names where it sits in the value.
"""

import io
import json
import os
from typing import Any, Dict, Tuple

import numpy as np

from sn_tf import files

FORMAT = "sn_tf-state-1"
# dtype kinds an array or scalar may have: bool, int, uint, float, complex.
_KINDS = "biufc"


def _dtype(spec: str, where: str) -> np.dtype:
  dtype = np.dtype(spec)
  if dtype.kind not in _KINDS:
    raise ValueError(f"{where}: dtype {spec!r} is not allowed (only numeric "
                     "and boolean dtypes).")
  return dtype


def encode(value: Any) -> Tuple[Any, Dict[str, np.ndarray]]:
  """``(tree, arrays)``: a JSON-serialisable tree and the arrays it names.

  Raises:
    TypeError: a value of another type, naming its path (``state['a'][0]``).
  """
  arrays: Dict[str, np.ndarray] = {}

  def put(array: np.ndarray) -> str:
    key = f"a{len(arrays)}"
    arrays[key] = array
    return key

  def enc(x: Any, path: str) -> Any:
    # bool before int: bool is an int subclass.
    if x is None or isinstance(x, (bool, str)):
      return x
    if type(x) is int:  # pylint: disable=unidiomatic-typecheck
      return x
    if type(x) is float:  # pylint: disable=unidiomatic-typecheck
      return x if np.isfinite(x) else {"float": repr(x)}
    if isinstance(x, np.ndarray):
      if x.dtype.kind not in _KINDS:
        raise TypeError(f"{path}: arrays of dtype {x.dtype} cannot be stored "
                        "as data (only numeric and boolean dtypes).")
      return {"ndarray": put(x)}
    if isinstance(x, np.generic):
      if x.dtype.kind not in _KINDS:
        raise TypeError(f"{path}: NumPy scalars of dtype {x.dtype} cannot be "
                        "stored as data.")
      return {"scalar": x.dtype.str, "value": put(np.asarray(x))}
    if type(x) is bytes:  # pylint: disable=unidiomatic-typecheck
      return {"bytes": put(np.frombuffer(x, dtype=np.uint8))}
    if type(x) is list:  # pylint: disable=unidiomatic-typecheck
      return [enc(v, f"{path}[{i}]") for i, v in enumerate(x)]
    if type(x) is tuple:  # pylint: disable=unidiomatic-typecheck
      return {"tuple": [enc(v, f"{path}[{i}]") for i, v in enumerate(x)]}
    if type(x) is dict:  # pylint: disable=unidiomatic-typecheck
      return {"dict": [[enc(k, f"{path} key {k!r}"), enc(v, f"{path}[{k!r}]")]
                       for k, v in x.items()]}
    raise TypeError(f"{path}: a {type(x).__module__}.{type(x).__qualname__} "
                    "cannot be stored as data; convert it to numbers, strings, "
                    "arrays, lists or dicts first.")

  return enc(value, "state"), arrays


def decode(tree: Any, arrays: Dict[str, np.ndarray]) -> Any:
  """The value ``encode`` was given, from its ``(tree, arrays)``.

  Raises:
    ValueError: a tree that ``encode`` did not write (unknown tag, missing
      array, disallowed dtype).
  """
  def array(key: Any, path: str) -> np.ndarray:
    if not isinstance(key, str) or key not in arrays:
      raise ValueError(f"{path}: names array {key!r}, which the file lacks.")
    return arrays[key]

  def dec(x: Any, path: str) -> Any:
    if x is None or isinstance(x, (bool, int, float, str)):
      return x
    if isinstance(x, list):
      return [dec(v, f"{path}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, dict) and len(x) == 1:
      (tag, body), = x.items()
      if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
      if tag == "ndarray":
        a = array(body, path)
        _dtype(a.dtype.str, path)
        return a.copy()
      if tag == "bytes":
        return array(body, path).astype(np.uint8).tobytes()
      if tag == "tuple" and isinstance(body, list):
        return tuple(dec(v, f"{path}[{i}]") for i, v in enumerate(body))
      if tag == "dict" and isinstance(body, list):
        out = {}
        for item in body:
          if not (isinstance(item, list) and len(item) == 2):
            raise ValueError(f"{path}: a dict item must be [key, value].")
          key = dec(item[0], f"{path} key")
          out[key] = dec(item[1], f"{path}[{key!r}]")
        return out
    if isinstance(x, dict) and set(x) == {"scalar", "value"}:
      dtype = _dtype(x["scalar"], path)
      return np.asarray(array(x["value"], path), dtype=dtype)[()]
    raise ValueError(f"{path}: {json.dumps(x)[:80]} is not a value this "
                     "format writes.")

  return dec(tree, "state")


def write(directory: str, name: str, value: Any, fsync: bool = True) -> None:
  """Writes ``value`` as ``<name>.json`` and ``<name>.npz`` in ``directory``
  (each atomically; ``fsync``: durably)."""
  tree, arrays = encode(value)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  with files.atomic_write(os.path.join(directory, f"{name}.npz"), "wb",
                          fsync=fsync) as f:
    f.write(buffer.getvalue())
  with files.atomic_write(os.path.join(directory, f"{name}.json"),
                          fsync=fsync) as f:
    json.dump({"format": FORMAT, "state": tree}, f)


def read(directory: str, name: str) -> Any:
  """Reads what ``write`` wrote; never runs code from the files.

  Raises:
    ValueError: a file that is not of this format (names the file).
  """
  path = os.path.join(directory, f"{name}.json")
  with open(path) as f:
    data = json.load(f)
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"{path} is not an {FORMAT} file.")
  with np.load(os.path.join(directory, f"{name}.npz"), allow_pickle=False) as npz:
    arrays = {key: npz[key] for key in npz.files}
  try:
    return decode(data["state"], arrays)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
