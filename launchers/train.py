r"""Train a C51 agent with spectral normalisation; resumable.

  python launchers/train.py --env=minatar:breakout --spectral=-2 \
      --root_dir=runs/breakout_sn2 --num_steps=250000 --seed=0

Rerunning the same command resumes from the newest checkpoint in --root_dir.
Flags left unset take the --preset's value (docs/protocol.md#presets, which
gives the source of each value). Every flag is validated before any work
starts.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_ENV = flags.DEFINE_string("env", None, "minatar:<game> or atari:<Game>.")
_ROOT = flags.DEFINE_string("root_dir", None, "Run directory (resumed if it exists).")
_PRESET = flags.DEFINE_enum("preset", None, ["minatar", "atari", "atari_dopamine"],
                            "Hyperparameter preset; default: minatar for MinAtar "
                            "envs, atari for Atari envs.")
_INTS = {
    "seed": "Seed of everything (env, network init, exploration, replay).",
    "num_steps": "Env (agent) steps to train for.",
    "eval_every": "Evaluate, export and checkpoint every this many steps.",
    "eval_episodes": "Episodes per evaluation (epsilon = --eval_epsilon).",
    "eval_max_episode_steps": "Cap on the length of an evaluation episode.",
    "checkpoint_every": "Extra checkpoints every this many steps (0: at evaluations only).",
    "log_every": "TensorBoard logging period in steps.",
    "learning_starts": "Replay warm-up: steps before the first update.",
    "replay_capacity": "Replay buffer size (observation slots).",
    "batch_size": "Replay batch size.",
    "update_period": "Env steps per gradient update.",
    "target_update_period": "Env steps between target-network copies.",
    "epsilon_decay_steps": "Steps of linear epsilon decay after the warm-up.",
    "power_iterations": "Power-iteration steps per training forward pass.",
    "num_atoms": "Atoms of the C51 distribution.",
    "tf_threads": "TF intra/inter-op threads (0: TF's default).",
    "num_envs": "Environments stepped together, one replay stream each "
                "(num_envs / update_period updates per iteration).",
    "measure_states": "Replay states the smoothness/srank measures use at "
                      "each evaluation (0: off).",
}
_FLOATS = {
    "lr": "Adam learning rate.",
    "adam_eps": "Adam epsilon.",
    "gamma": "Discount factor.",
    "lipschitz_k": "Target Lipschitz constant K of normalised layers.",
    "epsilon_end": "Final exploration epsilon.",
    "eval_epsilon": "Exploration epsilon during evaluation.",
    "sticky_action_prob": "Sticky-action probability (default: the env's).",
}
for _name, _help in _INTS.items():
  flags.DEFINE_integer(_name, None, _help)
for _name, _help in _FLOATS.items():
  flags.DEFINE_float(_name, None, _help)
flags.DEFINE_string("spectral", None, "Layers to normalise: none, full, -2, -1,-2L, ...")
flags.DEFINE_string("conv_norm", None, "SN of convs: operator or reshape.")
flags.DEFINE_string("atari_protocol", None, "Atari protocol: paper or dopamine.")
flags.DEFINE_string("optimizer", None, "adam, rmsprop or sgd.")
flags.DEFINE_string("adam_epsilon_placement", None,
                    "reference (PyTorch, the paper's code) or keras.")
flags.DEFINE_string("scheduler", None, "Spectral scheduler: none, divout, divgrad, muleps.")
flags.DEFINE_string("scheduler_layers", None, "Layers whose rho the scheduler uses (grammar).")
flags.DEFINE_string("scheduler_scope", None, "DivGrad scope: global or per_layer.")
flags.DEFINE_string("jacobian_method", None, "Jacobian spectral norm: auto "
                    "(exact on MinAtar, power iteration on Atari), exact, power.")
flags.DEFINE_boolean("leave_smaller", None, "Only shrink layers with sigma > K.")
flags.DEFINE_boolean("clip_rewards", None, "Clip training rewards to [-1, 1].")
flags.DEFINE_list("minatar_conv_filters", None, "MinAtar conv widths, e.g. 16 or 16,32.")
flags.DEFINE_list("minatar_fc_units", None, "MinAtar hidden dense widths, e.g. 128.")
flags.mark_flags_as_required(["env", "root_dir"])

FLAGS = flags.FLAGS


def _int_list(name):
  value = FLAGS[name].value
  if value is None:
    return None
  try:
    return tuple(int(v) for v in value)
  except ValueError:
    raise app.UsageError(f"--{name}={','.join(value)}: allowed: comma-separated "
                         "integers >= 1.") from None


def build_config():
  from sn_tf.config import make_config  # pylint: disable=g-import-not-at-top
  overrides = {name: FLAGS[name].value for name in list(_INTS) + list(_FLOATS)}
  for name in ("spectral", "conv_norm", "atari_protocol", "leave_smaller",
               "clip_rewards", "optimizer", "adam_epsilon_placement",
               "scheduler", "scheduler_layers", "scheduler_scope",
               "jacobian_method"):
    overrides[name] = FLAGS[name].value
  for name in ("minatar_conv_filters", "minatar_fc_units"):
    overrides[name] = _int_list(name)
  preset = _PRESET.value
  if preset is None:
    preset = "atari" if _ENV.value.startswith("atari:") else "minatar"
  try:
    return make_config(_ENV.value, _ROOT.value, preset, **overrides)
  except ValueError as e:
    raise app.UsageError(f"--{e}") from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = build_config()
  from sn_tf.train import train  # pylint: disable=g-import-not-at-top
  try:
    result = train(config)
  except (ValueError, RuntimeError) as e:  # config clash, root_dir in use
    raise app.UsageError(str(e)) from None
  except (FloatingPointError, OSError) as e:  # diverged; disk full/unwritable
    raise SystemExit(f"error: {e}") from None
  print(f"eval/return={result.get('eval/return')} at step {result.get('step')}; "
        f"run: {result['root_dir']}; policy: {result['policy_dir']}")


if __name__ == "__main__":
  app.run(main)
