r"""Evaluate an exported policy (written by sn_tf's training).

  python launchers/evaluate.py --policy_dir=runs/x/policies/final --episodes=10
  python launchers/evaluate.py --policy_dir=runs/x/policies/final \
      --export_format=tflite

Plays --episodes episodes at --epsilon on --env (default: the policy's own env)
and prints the mean and std of the return. Deterministic for a fixed --seed.
"""

import json

from sn_tf import console

console.start()  # TensorFlow and gym load without their start-up notices

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_POLICY = flags.DEFINE_string("policy_dir", None, "Exported policy directory.")
_ENV = flags.DEFINE_string("env", None, "Env id; default: the policy's env.")
_EPISODES = flags.DEFINE_integer("episodes", 10, "Episodes to play.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the env and the epsilon RNG.")
_EPSILON = flags.DEFINE_float("epsilon", 0.001, "Random-action probability.")
_MAX_STEPS = flags.DEFINE_integer("max_episode_steps", 27_000,
                                  "Cap on episode length (steps).")
_PROTOCOL = flags.DEFINE_string("atari_protocol", None,
                                "Atari protocol; default: the policy's.")
_FORMAT = flags.DEFINE_enum(
    "export_format", "tf_agents", ["tf_agents", "saved_model", "tflite"],
    "Which form of the export plays: tf_agents (PolicySaver, the directory "
    "itself), saved_model (the plain SavedModel in serving/), tflite "
    "(policy.tflite).")
_TRUST = flags.DEFINE_boolean(
    "trust_policy", False, "Load the export without checking its ops first "
    "(by default an export holding an op sn_tf's exports never contain, e.g. "
    "a file or Python op, or a Flex/custom TFLite op, is refused): only for an "
    "export whose origin you trust.")
_JSON = flags.DEFINE_boolean("json", False, "Print the result as JSON.")
flags.mark_flag_as_required("policy_dir")


def main(argv):
  if len(argv) > 1:
    console.bad_flag(f"Unexpected arguments: {' '.join(argv[1:])}")
  # pylint: disable=g-import-not-at-top
  from sn_tf.evaluation import evaluate_policy
  from sn_tf.export_check import UntrustedExportError
  # pylint: enable=g-import-not-at-top
  try:
    result = evaluate_policy(
        _POLICY.value, _ENV.value, episodes=_EPISODES.value, seed=_SEED.value,
        epsilon=_EPSILON.value, max_episode_steps=_MAX_STEPS.value,
        atari_protocol=_PROTOCOL.value, export_format=_FORMAT.value,
        trust_policy=_TRUST.value)
  except UntrustedExportError as e:
    raise SystemExit(f"evaluate.py: {e}") from None
  except ValueError as e:
    console.bad_flag(f"--{e}")
  if _JSON.value:
    print(json.dumps(result))
  else:
    print(f"{result['env']}: mean return {result['mean_return']:.3f} "
          f"+- {result['std_return']:.3f} over {result['episodes']} episodes "
          f"(policy at train step {result['train_step']}, "
          f"{result['export_format']} export)")
    if "human_normalized_score" in result:
      print(f"human-normalised score: {100 * result['human_normalized_score']:.1f} %")


if __name__ == "__main__":
  app.run(main)
