"""Argument checks shared by the environment constructors.

Each check raises ``ValueError`` naming the argument, the value received and
what is allowed, so a bad flag fails before any emulator is built.
"""

import difflib
import math
import numbers
from typing import Iterable

# MinAtar seeds a ``np.random.RandomState``, which takes 32-bit seeds.
MAX_SEED = 2**32 - 1


def check_seed(seed: int) -> int:
  """Returns ``seed`` as a Python int if it is an integer in [0, 2**32 - 1]."""
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
    raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got "
                     f"{seed!r}")
  if not 0 <= int(seed) <= MAX_SEED:
    raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed}")
  return int(seed)


def check_probability(name: str, value: float) -> float:
  """Returns ``value`` as a float if it is a real number in [0, 1]."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
  if not (math.isfinite(value) and 0.0 <= value <= 1.0):
    raise ValueError(f"{name} must be in [0, 1], got {value}")
  return float(value)


def check_choice(what: str, value: str, allowed: Iterable[str]) -> str:
  """Returns ``value`` if it is one of ``allowed``.

  Args:
    what: how to name the thing in the message, e.g. ``"MinAtar game"``.
    value: the value received.
    allowed: the accepted values, listed in the message in this order.
  """
  allowed = tuple(allowed)
  if value not in allowed:
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown {what} {value!r}{hint}; allowed: "
                     f"{', '.join(allowed)}")
  return value
