r"""Train a DQN or C51 agent with spectral normalisation; resumable.

  python launchers/train.py --env=minatar:breakout --spectral=-2 \
      --root_dir=runs/breakout_sn2 --num_steps=250000 --seed=0
  python launchers/train.py --env=minatar:breakout --agent=dqn \
      --minatar_model=16-16/128 --spectral=-2 --root_dir=runs/dqn_sn2

Rerunning the same command resumes from the newest checkpoint in --root_dir.
Every field of the run's config is a flag of the same name; flags left unset
take the --preset's value (docs/protocol.md#presets, which gives the source of
each value). Every flag is validated before any work starts.
"""

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import dataclasses  # noqa: E402
import typing  # noqa: E402

from sn_tf.config import AGENTS, PRESETS, TrainConfig  # noqa: E402

# One flag per TrainConfig field, with the field's help; unset flags take the
# preset's value. The preset's default depends on --env and --agent.
_DEFINE = {int: flags.DEFINE_integer, float: flags.DEFINE_float,
           bool: flags.DEFINE_boolean, str: flags.DEFINE_string}
for _field in dataclasses.fields(TrainConfig):
  _type = typing.get_type_hints(TrainConfig)[_field.name]
  _type = next((t for t in typing.get_args(_type) if t is not type(None)), _type)
  _help = _field.metadata["help"]
  if _field.name == "preset":
    flags.DEFINE_enum("preset", None, list(PRESETS), _help)
  elif _field.name == "agent":
    flags.DEFINE_enum("agent", None, list(AGENTS), _help + " Default: the "
                      "preset's (c51; dqn for minatar_dqn).")
  else:
    _DEFINE[_type](_field.name, None, _help)
flags.mark_flags_as_required(["env", "root_dir"])

FLAGS = flags.FLAGS


def build_config() -> TrainConfig:
  from sn_tf.config import make_config  # pylint: disable=g-import-not-at-top
  overrides = {f.name: FLAGS[f.name].value for f in dataclasses.fields(TrainConfig)
               if f.name not in ("env", "root_dir", "preset")}
  try:
    return make_config(FLAGS.env, FLAGS.root_dir, FLAGS.preset, **overrides)
  except ValueError as e:
    console.bad_flag(f"--{e}")


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = build_config()
  from sn_tf.train import train  # pylint: disable=g-import-not-at-top
  try:
    result = train(config)
  except (ValueError, RuntimeError) as e:  # config clash, root_dir in use
    console.bad_flag(str(e))
  except (FloatingPointError, OSError) as e:  # diverged; disk full/unwritable
    raise SystemExit(f"error: {e}")
  print(f"eval/return={result.get('eval/return')} at step {result.get('step')}; "
        f"run: {result['root_dir']}; policy: {result['policy_dir']}")


if __name__ == "__main__":
  app.run(main)
