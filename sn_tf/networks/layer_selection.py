"""The layer-selection grammar, parsed in one place (docs/layers.md#selection-grammar).

A network's conv and dense layers are indexed in order, like a Python list.
A spec is ``"none"`` (or ``""``), ``"full"``, or a comma-separated list of
indices, each optionally suffixed with ``L`` (track-only: log sigma, do not
normalise): ``"-2"``, ``"-1,-2"``, ``"-1,-2L"``, ``"0,2"``.
"""

import dataclasses
import re
from typing import FrozenSet

_ITEM = re.compile(r"^(-?\d+)(L?)$")


@dataclasses.dataclass(frozen=True)
class LayerSelection:
  """Parsed selection, with indices made non-negative.

  Attributes:
    spec: the spec as given.
    num_layers: how many conv/dense layers the network has.
    normalised: indices of layers to spectrally normalise.
    tracked: indices named with an ``L`` suffix (track-only). Every layer
      that is not in ``normalised`` runs track-only anyway, so this only
      records what the user asked for.
  """
  spec: str
  num_layers: int
  normalised: FrozenSet[int]
  tracked: FrozenSet[int]

  @property
  def selected(self) -> FrozenSet[int]:
    return self.normalised | self.tracked


def parse_layer_selection(spec: str, num_layers: int,
                          flag: str = "spectral") -> LayerSelection:
  """Parses ``spec`` for a network of ``num_layers`` conv/dense layers.

  Args:
    spec: the selection string (see module docstring).
    num_layers: number of conv/dense layers, > 0.
    flag: the name to use in error messages (the flag or argument).

  Raises:
    ValueError: naming ``flag``, the value and what is allowed, for malformed
      items, indices outside ``[-num_layers, num_layers)`` and duplicates.
  """
  if not isinstance(spec, str):
    raise ValueError(f"{flag} must be a string, got {spec!r}.")
  allowed = (f"'none', 'full', or comma-separated layer indices in "
             f"[-{num_layers}, {num_layers - 1}] each optionally suffixed with "
             f"'L' (track-only), e.g. '-2' or '-1,-2L'")
  text = spec.strip()
  if text.lower() in ("", "none", "null"):
    return LayerSelection(spec, num_layers, frozenset(), frozenset())
  if text.lower() == "full":
    return LayerSelection(spec, num_layers, frozenset(range(num_layers)),
                          frozenset())
  normalised, tracked, seen = set(), set(), set()
  for item in text.split(","):
    match = _ITEM.match(item.strip())
    if not match:
      raise ValueError(f"{flag}={spec!r}: malformed item {item.strip()!r}; "
                       f"allowed: {allowed}.")
    index = int(match.group(1))
    if not -num_layers <= index < num_layers:
      raise ValueError(
          f"{flag}={spec!r}: layer index {index} is out of range for a network "
          f"with {num_layers} conv/dense layers; allowed: {allowed}.")
    index %= num_layers
    if index in seen:
      raise ValueError(f"{flag}={spec!r}: layer {index} is named twice.")
    seen.add(index)
    (tracked if match.group(2) else normalised).add(index)
  return LayerSelection(spec, num_layers, frozenset(normalised),
                        frozenset(tracked))
