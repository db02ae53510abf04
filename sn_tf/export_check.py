"""Exports read as data, and checked, before anything loads them.

A SavedModel is a program: its functions run when a signature is called, and
may hold ops that read or write files, run Python or reach the network. A
TFLite model may hold Flex (Select TF) or custom ops. So before sn_tf loads
an export it did not just write (``evaluation.load_policy``,
``evaluate_policy``, the launchers), ``check_export`` reads the form to be
played without executing it and refuses it, naming the file and the first op
it does not allow, unless every op is in ``ALLOWED_OPS`` (SavedModels) or a
TFLite builtin:

- SavedModels: ``saved_model.pb`` parsed as a protobuf; every node of every
  meta graph and every function body of its library. sn_tf writes its
  SavedModels without the TF1 saver functions (``SaveOptions(
  experimental_skip_saver=True)``; loaders restore variables from the object
  graph without them), so no file op has a place in one.
- TFLite: the flatbuffer's operator codes; custom and Flex ops are refused.

The paths that ``sn_tf_policy.json`` names must resolve (symlinks followed)
inside the export directory. ``trust=True`` (the launchers' ``--trust_policy``)
skips the op checks for an export one trusts, e.g. one made by another tool.
"""

import os
from typing import Iterator, Tuple

# Every op sn_tf's exporters write, and nothing else: the union over the
# exports of C51 and DQN on the MinAtar net and both Atari nets, with SN none,
# -2 and full (both conv norms), and each scheduler (DivOut's output division
# included), both SavedModels of each (BUILD_NOTES.md says how it was read).
# No op here touches files, processes or the network. tests/test_export_check.py
# checks that genuine exports pass.
ALLOWED_OPS = frozenset({
    "ArgMax", "BiasAdd", "BroadcastArgs", "BroadcastTo", "Cast", "ConcatV2",
    "Const", "Conv2D", "ExpandDims", "Identity", "MatMul", "Maximum",
    "Minimum", "Mul", "NoOp", "PartitionedCall", "Placeholder",
    "ReadVariableOp", "RealDiv", "Relu", "Reshape", "Shape", "Softmax",
    "Squeeze", "StatefulPartitionedCall", "StopGradient", "StridedSlice",
    "Sum", "VarHandleOp",
})

# TFLite's BuiltinOperator.CUSTOM; a custom code starting with "Flex" is a
# Select TF op run by the full TensorFlow runtime.
_TFLITE_CUSTOM = 32


class UntrustedExportError(ValueError):
  """An export holds an op (or a path) sn_tf does not load unasked."""


def _function_ops(meta_graph) -> Iterator[Tuple[str, str]]:
  """``(op, where)`` of every node of ``meta_graph``, in graph order."""
  for node in meta_graph.graph_def.node:
    yield node.op, f"graph node {node.name!r}"
  for function in meta_graph.graph_def.library.function:
    for node in function.node_def:
      yield node.op, f"function {function.signature.name!r}"


def saved_model_ops(directory: str) -> Iterator[Tuple[str, str]]:
  """``(op, where)`` of every op in ``directory/saved_model.pb``, read as a
  protobuf (nothing is loaded or run)."""
  # pylint: disable-next=g-import-not-at-top
  from tensorflow.core.protobuf import saved_model_pb2
  path = os.path.join(directory, "saved_model.pb")
  model = saved_model_pb2.SavedModel()
  try:
    with open(path, "rb") as f:
      model.ParseFromString(f.read())
  except Exception as e:  # pylint: disable=broad-except  (OSError, DecodeError)
    raise UntrustedExportError(f"{path} cannot be read as a SavedModel "
                               f"({e}).") from None
  for meta_graph in model.meta_graphs:
    yield from _function_ops(meta_graph)


def tflite_ops(path: str) -> Iterator[str]:
  """The operator names of a TFLite flatbuffer (builtin names, or the custom
  code of a custom or Flex op), read without an interpreter."""
  # pylint: disable-next=g-import-not-at-top
  from tensorflow.lite.python import schema_py_generated as schema
  with open(path, "rb") as f:
    buffer = f.read()
  try:
    model = schema.Model.GetRootAsModel(buffer, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items()
             if not k.startswith("_")}
    for i in range(model.OperatorCodesLength()):
      code = model.OperatorCodes(i)
      builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
      if builtin == _TFLITE_CUSTOM:
        custom = code.CustomCode()
        yield "custom:" + (custom.decode("utf-8", "replace") if custom else "")
      else:
        yield names.get(builtin, f"builtin:{builtin}")
  except Exception as e:  # pylint: disable=broad-except
    raise UntrustedExportError(f"{path} cannot be read as a TFLite model "
                               f"({e}).") from None


def check_saved_model(directory: str) -> None:
  """Raises ``UntrustedExportError`` naming the first op not in
  ``ALLOWED_OPS`` (and all such ops)."""
  refused = [(op, where) for op, where in saved_model_ops(directory)
             if op not in ALLOWED_OPS]
  if refused:
    op, where = refused[0]
    names = ", ".join(sorted({name for name, _ in refused}))
    raise UntrustedExportError(
        f"{os.path.join(directory, 'saved_model.pb')} holds op {op!r} (in "
        f"{where}), which sn_tf's exports never contain (all such ops: "
        f"{names}); refusing to load it. If you trust this export, pass "
        "--trust_policy (trust=True).")


def check_tflite(path: str) -> None:
  """Raises ``UntrustedExportError`` at the first custom or Flex op."""
  for op in tflite_ops(path):
    if op.startswith("custom:"):
      kind = "Flex (Select TF)" if op[7:].startswith("Flex") else "custom"
      raise UntrustedExportError(
          f"{path} holds the {kind} op {op[7:]!r}, which sn_tf's exports never "
          "contain (TFLite builtins only); refusing to load it. If you trust "
          "this export, pass --trust_policy (trust=True).")


def inside(policy_dir: str, relative: str, what: str) -> str:
  """``policy_dir/relative`` with symlinks resolved, if it stays inside
  ``policy_dir``; else ``UntrustedExportError`` naming ``what``."""
  root = os.path.realpath(policy_dir)
  path = os.path.realpath(os.path.join(root, relative))
  if os.path.commonpath([root, path]) != root:
    raise UntrustedExportError(
        f"{os.path.join(policy_dir, 'sn_tf_policy.json')}: {what}={relative!r} "
        f"resolves to {path}, outside the export directory {root}; refusing "
        "to load it.")
  return path


def check_export(policy_dir: str, export_format: str, path: str,
                 trust: bool = False) -> None:
  """Checks the form ``export_format`` of the export in ``policy_dir`` whose
  file or directory is ``path`` (already resolved by ``inside``); nothing
  when ``trust``."""
  del policy_dir  # named for the caller's symmetry with ``inside``
  if trust:
    return
  if export_format == "tflite":
    check_tflite(path)
  else:
    check_saved_model(path)
