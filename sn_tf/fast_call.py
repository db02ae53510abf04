"""Calling a compiled function without ``tf.function``'s Python dispatch.

On the 2-core machine this project is benchmarked on, calling a
``tf.function`` costs 0.3-0.45 ms of Python before any op runs (argument
binding, casting to the input signature, cache lookup; measured with
cProfile), and 0.7 ms for the train step's dict of NumPy arrays: as much as
the network's own compute. The training loop calls its two compiled
functions through ``FlatCall``, which traces once (the function must have an
``input_signature``) and then feeds flat tensors to the concrete function.
The outputs are those of the ``tf.function`` (tests check them bit for bit).

Three more costs are cut per call: an array already of its spec's dtype
becomes a tensor through ``EagerTensor`` directly (what ``tf.constant`` does
after its Python checks; the array is copied first, as there); the
function's captured inputs (its variables' handles) are listed once, not at
every call, unless a capture is deferred (a callable, evaluated per call);
and the call runs the function's op directly (``execute.quick_execute`` with
the op's name and call attributes looked up once), which is what
``ConcreteFunction._call_flat`` ends in when no gradient tape watches and the
call is eager, after about 45 us of Python per call here (context managers
that do nothing in eager mode, and the call attributes rebuilt at each call).
Under a watching tape, or while tracing, the call goes through
``_call_flat`` as before. The call attributes (executor type, config proto)
are the context's when the ``FlatCall`` is built.

This uses ``ConcreteFunction._call_flat``, ``_captured_inputs`` and
``_inference_function``, ``execute.quick_execute``, ``record`` and
``EagerTensor``, private entry points of the pinned TensorFlow (2.21,
setup.cfg); a TensorFlow without them fails the tests loudly.
"""

from typing import Any, List

import numpy as np
import tensorflow as tf
# pylint: disable=g-direct-tensorflow-import
from tensorflow.python.eager import context
from tensorflow.python.eager import execute
from tensorflow.python.eager import record
from tensorflow.python.framework import ops
# pylint: enable=g-direct-tensorflow-import


class FlatCall:
  """``FlatCall(fn)(*args)`` == ``fn(*args)`` for a ``tf.function`` ``fn``
  with a fixed ``input_signature``, minus the per-call Python dispatch.

  Arguments may be NumPy arrays or tensors, structured like the signature;
  each is converted to its spec's dtype (a wrong dtype or rank raises).
  """

  def __init__(self, fn):
    signature = getattr(fn, "input_signature", None)
    if signature is None:
      raise ValueError(f"FlatCall needs a tf.function with an input_signature, "
                       f"got {fn!r}.")
    self._concrete = fn.get_concrete_function()
    self._signature = tuple(signature)
    specs = tf.nest.flatten(self._signature)
    self._dtypes = [spec.dtype for spec in specs]
    self._np_dtypes = [np.dtype(spec.dtype.as_numpy_dtype) for spec in specs]
    self._shapes = [tuple(spec.shape.as_list()) for spec in specs]
    self._context = context.context()
    self._context.ensure_initialized()
    # pylint: disable=protected-access
    deferred = any(callable(x) for x in self._concrete._captured_inputs)
    self._captures = None if deferred else list(self._concrete.captured_inputs)
    # The op that runs the function, as ``_call_flat`` calls it when no tape
    # records (its inference function, with the context's call options).
    inference = self._concrete._inference_function
    self._op_name = inference.name.decode("utf-8")
    self._num_outputs = len(inference.function_type.flat_outputs)
    self._pack_output = inference.function_type.pack_output
    # Outputs that carry handle data (resources, variants) get it set by
    # ``_call_flat``: such functions always go through it.
    self._direct = not any(output.dtype._handle_data for output in
                           inference.function_type.flat_outputs)
    options = self._context.function_call_options.as_attrs()
    self._call_attrs = ("executor_type", options["executor_type"],
                        "config_proto", options["config_proto"])
    # Flat signature (tensors only): the arguments need no flattening.
    self._flat_signature = all(isinstance(spec, tf.TensorSpec)
                               for spec in self._signature)

  def __call__(self, *args) -> Any:
    if self._flat_signature:
      if len(args) != len(self._signature):
        raise ValueError(f"FlatCall: {len(args)} arguments, the signature has "
                         f"{len(self._signature)}.")
      values = args
    else:
      tf.nest.assert_same_structure(self._signature, args, check_types=False)
      values = tf.nest.flatten(args)
    flat = []
    for value, dtype, np_dtype, shape in zip(
        values, self._dtypes, self._np_dtypes, self._shapes):
      # Measured here in a tight loop: tf.convert_to_tensor ~45 us,
      # tf.constant ~30 us, EagerTensor ~15-20 us. The copy is
      # tf.constant's: the tensor may share the array's memory, and the
      # caller may reuse the array.
      if isinstance(value, np.ndarray) and value.dtype == np_dtype:
        got = value.shape
        tensor = ops.EagerTensor(value.copy(), self._context.device_name)
      else:
        tensor = tf.convert_to_tensor(value, dtype)
        got = tuple(tensor.shape)
      if len(got) != len(shape) or any(
          want is not None and want != dim for want, dim in zip(shape, got)):
        raise ValueError(f"FlatCall: an argument of shape {list(got)} does not "
                         f"match the signature's {list(shape)}.")
      flat.append(tensor)
    captures = self._captures
    if captures is None:
      captures = list(self._concrete.captured_inputs)
    if (not self._direct or record.could_possibly_record()
        or not self._context.executing_eagerly()):
      # pylint: disable=protected-access
      return self._concrete._call_flat(flat, captures)
    outputs = execute.quick_execute(self._op_name, self._num_outputs,
                                    flat + captures, self._call_attrs,
                                    self._context)
    return self._pack_output(outputs)
