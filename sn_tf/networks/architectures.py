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

The Atari nets, by name (``ATARI_NETWORKS``): ``paper``, the Nature CNN as
the paper's code builds it (VALID padding, a 3136-wide flatten, Glorot
uniform kernels), and ``dopamine``, the same layers as Dopamine's C51 builds
them (SAME padding, a 7744-wide flatten, kernels of Keras'
``VarianceScaling(1/sqrt(3), "fan_in", "uniform")``). ``network_layer_count`` gives the number of conv and dense
layers of any of these nets without building it.
"""

import dataclasses
import re
from typing import Any, Optional, Tuple

from sn_tf.checks import check, one_of
from sn_tf.layers.sn_conv import NORMS as CONV_NORMS
from sn_tf.networks.c51_network import SNCategoricalQNetwork
from sn_tf.networks.layer_selection import LayerSelection, parse_layer_selection
from sn_tf.networks.q_network import SNQNetwork

SIZE_STUDY_MODELS = (
    "8/32", "16/64", "24/128", "32/256",
    "8-8/32", "16-16/64", "24-24/128", "32-32/256",
    "8-8-8/32", "16-16-16/64", "24-24-24/128", "32-32-24/256")
DEPTH3_MODELS = SIZE_STUDY_MODELS[8:]
PAPER_MINATAR_MODELS = ("16/128", "16-16/128") + SIZE_STUDY_MODELS + (
    "24-24-24-24/128", "32-32-32/256")

NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


@dataclasses.dataclass(frozen=True)
class AtariArchitecture:
  """The Nature CNN's layers with one padding and kernel initialiser."""
  conv_layers: Tuple[Tuple[int, int, int], ...]
  fc_units: Tuple[int, ...]
  conv_padding: str
  kernel_initializer: Any

  @property
  def num_layers(self) -> int:
    """Conv and dense layers, the output layer included."""
    return len(self.conv_layers) + len(self.fc_units) + 1


ATARI_NETWORKS = {
    "paper": AtariArchitecture(NATURE_CONVS, (512,), "valid", "glorot_uniform"),
    # Dopamine's `atari_lib` networks: VarianceScaling(1/sqrt(3), fan_in,
    # uniform) for every kernel, i.e. U(-l, l) with l = 3^(1/4) / sqrt(fan_in).
    "dopamine": AtariArchitecture(
        NATURE_CONVS, (512,), "same",
        {"class_name": "VarianceScaling",
         "config": {"scale": 1.0 / 3.0 ** 0.5, "mode": "fan_in",
                    "distribution": "uniform"}}),
}
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


def atari_network(input_tensor_spec, action_spec, *, architecture: str = "paper",
                  num_atoms: Optional[int] = 51, **kwargs) -> SNQNetwork:
  """An Atari net of ``ATARI_NETWORKS``, input divided by 255, with a C51 or
  DQN head.

  Conv(32,8,s4) -> Conv(64,4,s2) -> Conv(64,3,s1) -> Dense(512) -> output;
  the headline ``-2`` is the Dense(512) layer, on a 3136-wide input
  (``paper``, VALID padding) or a 7744-wide one (``dopamine``, SAME padding)
  for 84x84 observations.
  """
  if architecture not in ATARI_NETWORKS:
    raise ValueError(f"atari_network={architecture!r} is not allowed; "
                     f"allowed: {', '.join(ATARI_NETWORKS)}.")
  net = ATARI_NETWORKS[architecture]
  args = dict(conv_layers=net.conv_layers, fc_units=net.fc_units,
              conv_padding=net.conv_padding,
              kernel_initializer=net.kernel_initializer,
              obs_scale=1.0 / 255.0, name="AtariNetwork", **kwargs)
  if num_atoms is None:
    return SNQNetwork(input_tensor_spec, action_spec, **args)
  return SNCategoricalQNetwork(input_tensor_spec, action_spec,
                               num_atoms=num_atoms, **args)


def network_layer_count(suite: str, *, minatar_model: str = "16/128",
                        atari_network: str = "paper") -> int:
  """Conv and dense layers (the output included) of the net a run on
  ``suite`` builds, from its name alone (no TensorFlow work)."""
  if suite == "minatar":
    return parse_minatar_model(minatar_model).num_layers
  if atari_network not in ATARI_NETWORKS:
    raise ValueError(f"atari_network={atari_network!r} is not allowed; "
                     f"allowed: {', '.join(ATARI_NETWORKS)}.")
  return ATARI_NETWORKS[atari_network].num_layers


def config_layers(config) -> Tuple[int, LayerSelection]:
  """The layer count of the net a config builds, and its ``spectral``
  selection (checked against it)."""
  suite = "atari" if config.env.startswith("atari:") else "minatar"
  num_layers = network_layer_count(suite, minatar_model=config.minatar_model,
                                   atari_network=config.atari_network)
  return num_layers, parse_layer_selection(config.spectral, num_layers,
                                           flag="spectral")


def check_config(config) -> None:
  """The network fields of a run's config: the C51 support, the conv norm,
  the net's name and the SN layer selection."""
  c = config
  check(c.num_atoms >= 2, "num_atoms", c.num_atoms, "an integer >= 2")
  check(c.max_q_value > c.min_q_value, "max_q_value", c.max_q_value,
        f"greater than min_q_value={c.min_q_value}")
  one_of(CONV_NORMS).check("conv_norm", c.conv_norm)
  one_of(ATARI_NETWORKS).check("atari_network", c.atari_network)
  config_layers(c)
