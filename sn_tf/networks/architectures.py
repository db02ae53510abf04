"""The paper's network architectures by name: MinAtar nets and the Nature net.

A MinAtar net is named ``c1-c2-.../h1-h2-...``: one 3x3 stride-1 VALID conv
per ``c`` (its filters), then one hidden dense layer per ``h`` (its units),
then the output layer, ReLU between (docs/protocol.md#networks). The paper's
nets, by study:

* ``16/128``: the C51 MinAtar net, and the smoothness and schedulers nets;
* ``16-16/128``: the layer-choice study;
* the model-size study's twelve, depth 1-3 convs x widths 8/32, 16/64,
  24/128, 32/256 (``SIZE_STUDY_MODELS``), of which the depth-3 four
  (``DEPTH3_MODELS``, ``32-32-24/256`` as the authors wrote it) also carry the
  SN and scheduler variants;
* ``24-24-24-24/128`` and ``32-32-32/256``: the optimiser study's deeper nets.

Any name of that grammar builds; the layer-selection grammar then indexes
all conv and dense layers (-1 the output, -2 the last hidden dense, ...).
"""

import dataclasses
import re
from typing import Optional, Tuple

from sn_tf.networks.c51_network import SNCategoricalQNetwork
from sn_tf.networks.q_network import SNQNetwork

SIZE_STUDY_MODELS = (
    "8/32", "16/64", "24/128", "32/256",
    "8-8/32", "16-16/64", "24-24/128", "32-32/256",
    "8-8-8/32", "16-16-16/64", "24-24-24/128", "32-32-24/256")
DEPTH3_MODELS = SIZE_STUDY_MODELS[8:]
PAPER_MINATAR_MODELS = ("16/128", "16-16/128") + SIZE_STUDY_MODELS + (
    "24-24-24-24/128", "32-32-32/256")

NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
_WIDTHS = re.compile(r"^[1-9]\d*(-[1-9]\d*)*$")


@dataclasses.dataclass(frozen=True)
class MinAtarModel:
  """A parsed MinAtar net name: conv filters and hidden dense units."""
  conv_filters: Tuple[int, ...]
  fc_units: Tuple[int, ...]

  @property
  def name(self) -> str:
    join = lambda xs: "-".join(str(x) for x in xs)
    return f"{join(self.conv_filters)}/{join(self.fc_units)}"

  @property
  def num_layers(self) -> int:
    """Conv and dense layers, the output layer included."""
    return len(self.conv_filters) + len(self.fc_units) + 1


def parse_minatar_model(spec: str, flag: str = "minatar_model") -> MinAtarModel:
  """Parses ``"c1-c2/h1"``-style names (see module docstring).

  Raises:
    ValueError: naming ``flag``, the value and what is allowed.
  """
  allowed = ("'<conv filters>/<hidden units>', each a '-'-separated list of "
             "integers >= 1 (at least one conv; the hidden list may be empty), "
             "e.g. '16/128', '16-16/128'; the paper's nets: "
             + ", ".join(PAPER_MINATAR_MODELS))
  text = spec.strip() if isinstance(spec, str) else None
  parts = text.split("/") if text else []
  if (len(parts) != 2 or not _WIDTHS.match(parts[0])
      or not (parts[1] == "" or _WIDTHS.match(parts[1]))):
    raise ValueError(f"{flag}={spec!r} is not allowed; allowed: {allowed}.")
  widths = lambda part: tuple(int(x) for x in part.split("-")) if part else ()
  return MinAtarModel(widths(parts[0]), widths(parts[1]))


def minatar_network(input_tensor_spec, action_spec, *, model: str = "16/128",
                    num_atoms: Optional[int] = 51, **kwargs) -> SNQNetwork:
  """A MinAtar net by name, with a C51 head (``num_atoms``) or, with
  ``num_atoms=None``, a DQN head of one Q-value per action.

  ``kwargs``: the ``SNQNetwork`` options (``spectral``, ``lipschitz_k``, ...).
  """
  parsed = parse_minatar_model(model)
  args = dict(conv_layers=[(f, 3, 1) for f in parsed.conv_filters],
              fc_units=parsed.fc_units, name="MinAtarNetwork", **kwargs)
  if num_atoms is None:
    return SNQNetwork(input_tensor_spec, action_spec, **args)
  return SNCategoricalQNetwork(input_tensor_spec, action_spec,
                               num_atoms=num_atoms, **args)


def atari_network(input_tensor_spec, action_spec, *,
                  num_atoms: Optional[int] = 51, **kwargs) -> SNQNetwork:
  """The Nature DQN net, input divided by 255, with a C51 or DQN head.

  Conv(32,8,s4) -> Conv(64,4,s2) -> Conv(64,3,s1) -> Dense(512) -> output;
  the headline ``-2`` is the 3136 -> 512 dense layer on 84x84 inputs.
  """
  args = dict(conv_layers=NATURE_CONVS, fc_units=(512,), obs_scale=1.0 / 255.0,
              name="AtariNetwork", **kwargs)
  if num_atoms is None:
    return SNQNetwork(input_tensor_spec, action_spec, **args)
  return SNCategoricalQNetwork(input_tensor_spec, action_spec,
                               num_atoms=num_atoms, **args)
