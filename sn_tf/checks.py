"""What a config field may hold, as data, and the one form of a bad-value
error: ``<field>=<value> is not allowed; <what is allowed>.``

``TrainConfig`` gives each field a ``Kind`` (its type and range); the parts
that a field configures check the rest with ``check`` (``check_config`` in
each part, called by ``sn_tf.config.validate``). Imports nothing of sn_tf.
"""

import dataclasses
import math
from typing import Any, Callable, Optional


def check(ok: bool, name: str, value: Any, allowed: str) -> None:
  """Raises ``ValueError`` naming the field, the value and what is allowed."""
  if not ok:
    raise ValueError(f"{name}={value!r} is not allowed; {allowed}.")


def is_int(x: Any) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
  """A finite int or float (not a bool)."""
  return (isinstance(x, (int, float)) and not isinstance(x, bool)
          and math.isfinite(x))


@dataclasses.dataclass(frozen=True)
class Kind:
  """The values a field takes: ``ok(value)``, described by ``allowed``."""
  ok: Callable[[Any], bool]
  allowed: str

  def noting(self, note: str) -> "Kind":
    """The same kind, its description followed by ``(note)``."""
    return Kind(self.ok, f"{self.allowed} ({note})")

  def or_none(self) -> "Kind":
    return Kind(lambda v: v is None or self.ok(v), self.allowed)

  def check(self, name: str, value: Any) -> None:
    check(self.ok(value), name, value, self.allowed)


POSITIVE_INT = Kind(lambda v: is_int(v) and v >= 1, "an integer >= 1")
COUNT = Kind(lambda v: is_int(v) and v >= 0, "an integer >= 0")
NUMBER = Kind(is_number, "a finite number")
POSITIVE = Kind(lambda v: is_number(v) and v > 0, "a number > 0")
PROBABILITY = Kind(lambda v: is_number(v) and 0.0 <= v <= 1.0,
                   "a number in [0, 1]")
DECAY = Kind(lambda v: is_number(v) and 0.0 <= v < 1.0, "a number in [0, 1)")
BOOL = Kind(lambda v: isinstance(v, bool), "true or false")


def one_of(allowed, what: Optional[str] = None) -> Kind:
  """A name in ``allowed``."""
  names = tuple(allowed)
  return Kind(lambda v: v in names, what or f"allowed: {', '.join(names)}")
