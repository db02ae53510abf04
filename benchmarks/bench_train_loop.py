"""End-to-end training speed on MinAtar or Atari: C51 or DQN with the
env's default preset (MinAtar C51: one update per env step; MinAtar DQN and
Atari: one update per 4 env steps).

For each --spectral setting: runs the real training loop (`sn_tf.train.train`)
on --env (MinAtar Breakout by default; on Atari with --atari_network's net
and a 20k replay) and reports env steps/s over its last --timed_windows
logging windows of 1,000 steps (after tracing and warm-up), plus, measured in
the same process, the isolated compiled update, greedy act call and raw env
step, the floor 1 / (update / update_period + act + env step), the ratio of
end-to-end speed to that floor, and the time of the loop's fused update +
next-action call (which is why the ratio can exceed 1). Beside it, the
plain-Keras floor: the same formula with a hand-written Keras step and act of
the same agent and net (`plain_keras_times`), called flat as the loop calls its
own compiled functions (graph against graph), timed before and after the loop
in the same process, and end to end over it; and, for reference, the same floor
with the plain step and act called through `tf.function` the ordinary way; and
a hand-written plain-Keras loop of the same agent (`plain_keras_loop`: env,
ring buffer, epsilon-greedy act, update every update_period steps), run end to
end before and after, and the ratio of the project's loop to it. Then a
profile of the update's parts. Prints the tables, then
`end_to_end_steps_per_s_<sn|none>=<value>`,
`e2e_over_plain_loop_<sn|none>=<ratio>` and, last,
`e2e_over_plain_floor_<sn|none>=<ratio>` for the last --spectral setting.

  python benchmarks/bench_train_loop.py [--agent c51|dqn] [--spectral none,-2]
  python benchmarks/bench_train_loop.py --env=atari:RoadRunner \
      [--atari_network paper|dopamine] [--threads 2]
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import sn_tf  # noqa: E402,F401  (Keras 2 as tf.keras, before TensorFlow loads)
import tensorflow as tf  # noqa: E402


def _timed(fn, repeats):
  """Median over 5 blocks of the ms per call of ``fn``, after 20 warm-ups."""
  for _ in range(20):
    fn()
  blocks = []
  for _ in range(5):
    start = time.perf_counter()
    for _ in range(repeats // 5):
      fn()
    blocks.append((time.perf_counter() - start) / (repeats // 5))
  return 1e3 * float(np.median(blocks))


def isolated_times(config, repeats):
  """ms of the loop's compiled calls, each through FlatCall as the loop makes
  them, on a random batch of 32: the update, one act call, the fused update +
  next action call, and one raw env step; plus the profile of the update's
  parts."""
  from tf_agents.specs import tensor_spec  # pylint: disable=g-import-not-at-top
  from sn_tf.agents import build_learner  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  from sn_tf.envs.time_steps import is_last  # pylint: disable=g-import-not-at-top
  from sn_tf.fast_call import FlatCall  # pylint: disable=g-import-not-at-top
  env = make_env(config.env, seed=0, training=True)
  learner = build_learner(config, tensor_spec.from_spec(env.time_step_spec()),
                          tensor_spec.from_spec(env.action_spec()))
  update = FlatCall(learner.compiled_update())
  greedy = FlatCall(learner.compiled_greedy_actions())
  fused = FlatCall(learner.compiled_update_and_act())
  rng = np.random.default_rng(0)
  shape = (config.batch_size,) + tuple(env.observation_spec().shape)
  batch = dict(obs=(rng.random(shape) > 0.7).astype(np.uint8),
               next_obs=(rng.random(shape) > 0.7).astype(np.uint8),
               action=rng.integers(0, 3, shape[0]).astype(np.int32),
               reward=rng.random(shape[0]).astype(np.float32),
               discount=np.ones(shape[0], np.float32))
  obs = batch["obs"][:1]
  env.reset()
  actions = rng.integers(0, learner.num_actions, 100_000).astype(np.int32)
  counter = iter(range(10**9))

  def env_step():  # what the loop's env step costs (its end-of-episode test)
    if is_last(env.step(actions[next(counter) % actions.size])):
      env.reset()

  times = dict(
      train=_timed(lambda: float(update(batch)), repeats),
      act=_timed(lambda: int(greedy(obs).numpy()[0]), repeats),
      fused=_timed(lambda: [t.numpy() for t in fused(batch, obs)], repeats),
      env=_timed(env_step, repeats))

  # Profile: cumulative compiled pieces of the update (tensors in, so no
  # conversion), each a separate call whose fixed cost is the first row.
  online, target = learner.online_network, learner.target_network
  optimizer = learner.optimizer
  tb = {k: tf.constant(v) for k, v in batch.items()}
  grads = [tf.zeros_like(v) + 1e-3 for v in online.trainable_weights]

  def grad_of():
    with tf.GradientTape() as tape:
      loss = learner.loss(tb)
    return tape.gradient(loss, online.trainable_weights)

  pieces = [
      ("empty compiled call", lambda: tb["reward"]),
      ("target forward", lambda: target(tb["next_obs"], training=False)[0]),
      (f"+ online forward (training) + {config.agent} loss", lambda: learner.loss(tb)),
      ("+ backward", grad_of),
      ("optimiser update alone", lambda: optimizer.apply_gradients(
          zip(grads, online.trainable_weights))),
  ]
  profile = [(name, _timed(tf.function(fn), repeats)) for name, fn in pieces]
  return times, profile


def plain_keras_functions(config, obs_shape, num_actions):
  """A plain Keras update and greedy act of the same agent and net as
  ``config``'s, no sn_tf code: two ``tf.function``s with input signatures.

  The net is ``Sequential`` Conv2D(relu)... -> Flatten -> Dense(relu)...
  -> Dense: ``config.minatar_model``'s 3x3 convs, or on Atari the Nature
  net of ``config.atari_network`` (its padding) after a 1/255 rescaling;
  Adam; batch ``config.batch_size``.
  The update is one ``tf.function``: target forward on the next
  observations, the target (C51: greedy next action by expected value and
  the categorical projection onto the support; DQN: max over actions), online
  forward, loss on the taken action (C51: softmax cross-entropy; DQN: MSE),
  backward, Adam. The act is a ``tf.function`` greedy action at batch 1
  (plain graph; the project compiles its act with XLA).
  """
  from sn_tf.config import env_suite  # pylint: disable=g-import-not-at-top
  from sn_tf.networks import ATARI_NETWORKS, parse_minatar_model  # pylint: disable=g-import-not-at-top
  c51 = config.agent == "c51"
  atoms = config.num_atoms if c51 else 1
  layers = tf.keras.layers
  if env_suite(config.env) == "atari":
    arch = ATARI_NETWORKS[config.atari_network]
    convs = [layers.Conv2D(f, k, strides=s, padding=arch.conv_padding,
                           activation="relu") for f, k, s in arch.conv_layers]
    scale, fc_units = [layers.Rescaling(1.0 / 255.0)], arch.fc_units
  else:
    model = parse_minatar_model(config.minatar_model)
    convs = [layers.Conv2D(f, 3, activation="relu") for f in model.conv_filters]
    scale, fc_units = [], model.fc_units

  def net():
    stack = scale + convs_copy() + [layers.Flatten()]
    stack += [layers.Dense(u, activation="relu") for u in fc_units]
    stack += [layers.Dense(num_actions * atoms)]
    n = tf.keras.Sequential(stack)
    n.build((None,) + tuple(obs_shape))
    return n

  def convs_copy():
    return [type(c).from_config(c.get_config()) for c in convs]

  online, target = net(), net()
  optimizer = tf.keras.optimizers.Adam(config.lr, epsilon=config.adam_eps)
  support = tf.linspace(config.min_q_value, config.max_q_value, atoms)
  delta = (config.max_q_value - config.min_q_value) / max(atoms - 1, 1)

  def q_of(network, obs):
    out = network(tf.cast(obs, tf.float32))
    if not c51:
      return out, out
    logits = tf.reshape(out, [-1, num_actions, atoms])
    return logits, tf.reduce_sum(tf.nn.softmax(logits) * support, -1)

  batch_shape = (None,) + tuple(obs_shape)

  @tf.function(input_signature=[
      tf.TensorSpec(batch_shape, tf.uint8), tf.TensorSpec([None], tf.int32),
      tf.TensorSpec([None], tf.float32), tf.TensorSpec(batch_shape, tf.uint8),
      tf.TensorSpec([None], tf.float32)])
  def update(obs, action, reward, next_obs, discount):
    next_out, next_q = q_of(target, next_obs)
    gamma = config.gamma * discount
    if c51:
      best = tf.argmax(next_q, -1, output_type=tf.int32)
      probs = tf.nn.softmax(tf.gather(next_out, best, batch_dims=1))
      tz = tf.clip_by_value(reward[:, None] + gamma[:, None] * support[None],
                            config.min_q_value, config.max_q_value)
      weights = tf.clip_by_value(
          1.0 - tf.abs(tz[:, None, :] - support[None, :, None]) / delta, 0.0, 1.0)
      y = tf.reduce_sum(weights * probs[:, None, :], -1)
    else:
      y = reward + gamma * tf.reduce_max(next_q, -1)
    with tf.GradientTape() as tape:
      out, _ = q_of(online, obs)
      chosen = tf.gather(out, action, batch_dims=1)
      if c51:
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(y, chosen))
      else:
        loss = tf.reduce_mean(tf.square(y - chosen))
    grads = tape.gradient(loss, online.trainable_variables)
    optimizer.apply_gradients(zip(grads, online.trainable_variables))
    return loss

  @tf.function(input_signature=[
      tf.TensorSpec((None,) + tuple(obs_shape), tf.uint8)])
  def act(obs):
    return tf.argmax(q_of(online, obs)[1], -1, output_type=tf.int32)

  return update, act


def plain_keras_times(config, obs_shape, num_actions, repeats):
  """ms of a plain Keras step of the same agent and net, no sn_tf code: the
  floor a hand-written loop would reach.

  ``train`` and ``act`` call ``plain_keras_functions``' update and act
  through ``FlatCall``, as the training loop calls its own (NumPy in, no
  ``tf.function`` dispatch): the floor the project's graphs are held to.
  ``train_ordinary`` and ``act_ordinary`` call the ``tf.function`` itself, as
  a hand-written loop usually would (0.15-0.65 ms more a call here).
  """
  from sn_tf.fast_call import FlatCall  # pylint: disable=g-import-not-at-top
  update, act = plain_keras_functions(config, obs_shape, num_actions)
  rng = np.random.default_rng(1)
  shape = (config.batch_size,) + tuple(obs_shape)
  args = ((rng.random(shape) > 0.7).astype(np.uint8),
          rng.integers(0, num_actions, shape[0]).astype(np.int32),
          rng.random(shape[0]).astype(np.float32),
          (rng.random(shape) > 0.7).astype(np.uint8),
          np.ones(shape[0], np.float32))
  obs = args[0][:1]
  flat_update, flat_act = FlatCall(update), FlatCall(act)
  return dict(train=_timed(lambda: float(flat_update(*args)), repeats),
              act=_timed(lambda: int(flat_act(obs).numpy()[0]), repeats),
              train_ordinary=_timed(lambda: float(update(*args)), repeats),
              act_ordinary=_timed(lambda: int(act(obs).numpy()[0]), repeats))


def plain_keras_loop(config, obs_shape, num_actions, num_steps, timed_steps):
  """Env steps/s of a hand-written training loop over its last
  ``timed_steps`` steps: ``plain_keras_functions``' update and act called
  through ``FlatCall``, the project's env (as in the floor's env step), a
  NumPy ring buffer that stores both observations of each transition (as
  CleanRL's does), the same epsilon schedule and update schedule as
  ``config``, and a separate act call on every greedy step (no fused
  update + act). No logging, evaluation or checkpoints.

  It is a real loop where the floor adds up calls timed in tight loops: the
  gap between the two is what running one env's step, its replay write and
  the calls in turn costs in a Python loop on this CPU.
  """
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  from sn_tf.envs.time_steps import is_last  # pylint: disable=g-import-not-at-top
  from sn_tf.fast_call import FlatCall  # pylint: disable=g-import-not-at-top
  from sn_tf.learner_driver import linear_epsilon  # pylint: disable=g-import-not-at-top
  update, act = plain_keras_functions(config, obs_shape, num_actions)
  flat_update, flat_act = FlatCall(update), FlatCall(act)
  env = make_env(config.env, seed=0, training=True)
  capacity = min(config.replay_capacity, num_steps)
  obs_buf = np.zeros((capacity,) + tuple(obs_shape), np.uint8)
  next_buf = np.zeros_like(obs_buf)
  action_buf = np.zeros(capacity, np.int32)
  reward_buf = np.zeros(capacity, np.float32)
  discount_buf = np.zeros(capacity, np.float32)
  rng = np.random.default_rng(0)
  obs = env.reset().observation
  start = None
  for step in range(num_steps):
    if step == num_steps - timed_steps:
      start = time.perf_counter()
    if rng.random() < linear_epsilon(step, config):
      action = int(rng.integers(num_actions))
    else:
      action = int(flat_act(obs[None]).numpy()[0])
    next_step = env.step(np.int32(action))
    slot = step % capacity
    obs_buf[slot], next_buf[slot] = obs, next_step.observation
    action_buf[slot], reward_buf[slot] = action, next_step.reward
    discount_buf[slot] = next_step.discount
    obs = (env.reset() if is_last(next_step) else next_step).observation
    if (step + 1 >= config.learning_starts
        and (step + 1) % config.update_period == 0):
      idx = rng.integers(0, min(step + 1, capacity), config.batch_size)
      float(flat_update(obs_buf[idx], action_buf[idx], reward_buf[idx],
                        next_buf[idx], discount_buf[idx]))
  return timed_steps / (time.perf_counter() - start)


# Steps per logging window of the timed runs, and steps before the first
# timed window (tracing, and epsilon reaching its final value at 1,500).
LOG_EVERY = 1000
WARM_UP_STEPS = 2000


def timed_steps_per_s(root, windows):
  """Env steps/s over the run's last ``windows`` logging windows: their
  steps over their summed wall time, from the ``steps_per_second`` each
  window wrote to TensorBoard (``<root>/train``)."""
  from sn_tf.analysis.curves import logged_scalars  # pylint: disable=g-import-not-at-top
  rates = logged_scalars(root, ("steps_per_second",))["steps_per_second"]
  steps = sorted(rates)
  if len(steps) < windows + 1:
    raise RuntimeError(f"{len(steps)} logging windows in {root}; need "
                       f"{windows + 1} (one for tracing and warm-up).")
  last = steps[-windows - 1:]
  seconds = sum((b - a) / rates[b] for a, b in zip(last, last[1:]))
  return (last[-1] - last[0]) / seconds


def floor_steps_per_s(times, env_ms, update_period):
  """``1 / (update / update_period + act + env step)`` in steps/s: one env
  step costs an act call, the env step and 1/update_period of an update."""
  return 1e3 / (times["train"] / update_period + times["act"] + env_ms)


# Replay of the Atari runs: the preset's 1M frames would take 7 GB.
ATARI_REPLAY = 20_000


def loop_overrides(args, spectral: str):
  """The timed run's fields beyond the default preset of ``args.agent``."""
  # Epsilon at its final 0.01 from step 1,500, so the timed window acts
  # greedily (the presets decay over 250k steps: a short run would time
  # mostly random actions, which skip the act call).
  values = dict(agent=args.agent, spectral=spectral, num_steps=args.steps,
                learning_starts=500, epsilon_decay_steps=1000,
                log_every=LOG_EVERY, eval_every=args.steps, eval_episodes=1,
                eval_max_episode_steps=100, tf_threads=args.threads,
                num_envs=args.num_envs)
  if args.env.startswith("atari:"):
    values.update(replay_capacity=ATARI_REPLAY,
                  atari_network=args.atari_network)
  return values


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--env", default="minatar:breakout",
                      help="minatar:<game> or atari:<Game>")
  parser.add_argument("--atari_network", default="paper",
                      choices=["paper", "dopamine"],
                      help="the Atari net (Atari envs only)")
  parser.add_argument("--spectral", default="none,-2",
                      help="comma-separated list; use ';' to separate multi-layer specs")
  parser.add_argument("--agent", default="c51", choices=["c51", "dqn"],
                      help="the agent, on the env's default preset (MinAtar "
                      "c51: minatar, one update per env step; dqn: "
                      "minatar_dqn, one per 4; Atari: atari, one per 4)")
  parser.add_argument("--steps", type=int, default=6000)
  parser.add_argument("--timed_windows", type=int, default=3,
                      help="logging windows of 1,000 steps timed at the end "
                      "of each run (the rest is tracing and warm-up)")
  parser.add_argument("--threads", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=500)
  parser.add_argument("--num_envs", type=int, default=1,
                      help="envs stepped together (batched acting)")
  args = parser.parse_args()
  specs = args.spectral.split(";") if ";" in args.spectral else args.spectral.split(",")
  if args.timed_windows < 1:
    parser.error(f"--timed_windows={args.timed_windows}: allowed: >= 1")
  least_steps = WARM_UP_STEPS + LOG_EVERY * args.timed_windows
  if args.steps < least_steps:
    parser.error(f"--steps={args.steps}: allowed: >= {least_steps} "
                 f"({WARM_UP_STEPS} warm-up steps + {LOG_EVERY} per "
                 f"--timed_windows)")
  if args.threads < 0:
    parser.error(f"--threads={args.threads}: allowed: >= 1, or 0 for "
                 "TensorFlow's default")
  # Before any TF op: the plain step below runs before the loop, and TF's
  # thread pools are fixed by its first op (the loop's own setting would then
  # be ignored with a warning).
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  from sn_tf.config import default_preset, make_config  # pylint: disable=g-import-not-at-top
  from sn_tf.envs import make_env  # pylint: disable=g-import-not-at-top
  from sn_tf.train import train  # pylint: disable=g-import-not-at-top

  try:
    preset = default_preset(args.env, args.agent)
  except ValueError as e:
    parser.error(f"--{e}")
  threads = tf.config.threading.get_intra_op_parallelism_threads()
  if threads != args.threads:
    raise RuntimeError(f"--threads={args.threads} not applied: TensorFlow "
                       f"runs with {threads} intra-op threads.")
  net = (f"net {args.atari_network}, replay {ATARI_REPLAY}, "
         if args.env.startswith("atari:") else "")
  print(f"TF {tf.__version__}, tf_threads={args.threads}, "
        f"num_envs={args.num_envs}, {args.env}, {args.agent} "
        f"(preset {preset}), {net}batch 32, {args.steps} steps per run, e2e "
        f"over the last {args.timed_windows * LOG_EVERY}")
  header = (f"{'spectral':10s} {'e2e steps/s':>12s} {'train ms':>9s} "
            f"{'act ms':>7s} {'env ms':>7s} {'floor steps/s':>14s} "
            f"{'e2e/floor':>10s} {'fused ms':>10s} {'plain floor':>12s} "
            f"{'e2e/plain':>10s} {'plain (tf.function)':>20s} "
            f"{'plain loop':>11s} {'e2e/loop':>9s}")
  print(header)
  print("-" * len(header))
  last, profiles, plains = None, {}, []
  for spec in specs:
    root = tempfile.mkdtemp(prefix="bench_train_loop_")
    try:
      config = make_config(args.env, root, **loop_overrides(args, spec))
      # The plain-Keras step, timed before and after the project's loop.
      probe = make_env(config.env, seed=0, training=True)
      obs_shape = tuple(probe.observation_spec().shape)
      num_actions = int(probe.action_spec().maximum) + 1
      plain_before = plain_keras_times(config, obs_shape, num_actions, args.repeats)
      loop_before = plain_keras_loop(config, obs_shape, num_actions, args.steps,
                                     args.timed_windows * LOG_EVERY)
      train(config)
      # The last windows: after tracing and warm-up, before the final
      # evaluation.
      e2e = timed_steps_per_s(root, args.timed_windows)
    finally:
      shutil.rmtree(root, ignore_errors=True)
    times, profiles[spec] = isolated_times(config, args.repeats)
    plain_after = plain_keras_times(config, obs_shape, num_actions, args.repeats)
    plain_loop = (loop_before + plain_keras_loop(
        config, obs_shape, num_actions, args.steps,
        args.timed_windows * LOG_EVERY)) / 2
    plain = {k: (plain_before[k] + plain_after[k]) / 2 for k in plain_before}
    plains.append((spec, plain_before, plain_after))
    floor = floor_steps_per_s(times, times["env"], config.update_period)
    plain_floor = floor_steps_per_s(plain, times["env"], config.update_period)
    ordinary_floor = floor_steps_per_s(
        dict(train=plain["train_ordinary"], act=plain["act_ordinary"]),
        times["env"], config.update_period)
    print(f"{spec:10s} {e2e:12.1f} {times['train']:9.3f} {times['act']:7.3f} "
          f"{times['env']:7.3f} {floor:14.1f} {e2e / floor:10.2f} "
          f"{times['fused']:10.3f} {plain_floor:12.1f} {e2e / plain_floor:10.2f} "
          f"{ordinary_floor:20.1f} {plain_loop:11.1f} {e2e / plain_loop:9.2f}",
          flush=True)
    last = (spec, e2e, e2e / plain_floor, e2e / plain_loop)
  print()
  print("Plain Keras step (ms), before / after each run of the loop, called "
        "flat (as the loop calls its own) and through tf.function:")
  for spec, before, after in plains:
    print(f"  {spec:8s} train {before['train']:.3f} / {after['train']:.3f}   "
          f"act {before['act']:.3f} / {after['act']:.3f}   tf.function: "
          f"train {before['train_ordinary']:.3f} / {after['train_ordinary']:.3f}   "
          f"act {before['act_ordinary']:.3f} / {after['act_ordinary']:.3f}")
  print()
  print("Where the update's time goes (ms per compiled call, tensors in):")
  print(f"{'piece':42s} " + " ".join(f"{s:>8s}" for s in specs))
  for i, (name, _) in enumerate(profiles[specs[0]]):
    print(f"{name:42s} " + " ".join(f"{profiles[s][i][1]:8.3f}" for s in specs))
  print(f"end_to_end_steps_per_s_{'none' if last[0] == 'none' else 'sn'}={last[1]:.1f}")
  print(f"e2e_over_plain_loop_{'none' if last[0] == 'none' else 'sn'}={last[3]:.3f}")
  print(f"e2e_over_plain_floor_{'none' if last[0] == 'none' else 'sn'}={last[2]:.3f}")


if __name__ == "__main__":
  main()
