"""TrainConfig presets, overrides and validation."""

import json

import pytest

from sn_tf.config import PRESETS, TrainConfig, make_config


def test_presets_hold_spec_values():
  m = make_config("minatar:breakout", "/tmp/r", "minatar")
  assert (m.replay_capacity, m.batch_size, m.learning_starts, m.update_period,
          m.target_update_period, m.epsilon_decay_steps, m.num_steps) == (
              100_000, 32, 5_000, 1, 1_000, 250_000, 5_000_000)
  assert (m.lr, m.adam_eps, m.gamma, m.num_atoms, m.min_q_value,
          m.max_q_value) == (2.5e-4, 3.125e-4, 0.99, 51, -10.0, 10.0)
  a = make_config("atari:Pong", "/tmp/r", "atari")
  assert (a.replay_capacity, a.learning_starts, a.update_period,
          a.target_update_period, a.epsilon_decay_steps, a.clip_rewards,
          a.atari_protocol) == (1_000_000, 50_000, 4, 10_000, 1_000_000, True,
                                "paper")
  assert (a.eval_steps, a.eval_episodes, a.eval_every, a.atari_network,
          a.adam_epsilon_placement) == (125_000, 0, 250_000, "paper", "reference")
  d = make_config("atari:Pong", "/tmp/r", "atari_dopamine")
  assert (d.learning_starts, d.target_update_period, d.epsilon_decay_steps,
          d.atari_protocol) == (20_000, 8_000, 250_000, "dopamine")
  # Dopamine's TF C51 (c51.gin): its network, TF's Adam, 125k evaluation
  # steps per 250k-step iteration.
  assert (d.atari_network, d.adam_epsilon_placement, d.eval_steps,
          d.eval_episodes, d.eval_every, d.lr, d.adam_eps) == (
              "dopamine", "keras", 125_000, 0, 250_000, 2.5e-4, 3.125e-4)
  assert set(PRESETS) == {"minatar", "minatar_dqn", "atari", "atari_dopamine"}


def test_minatar_dqn_preset_holds_the_papers_values():
  """The paper's MinAtar DQN studies (docs/protocol.md#dqn-minatar-preset)."""
  q = make_config("minatar:breakout", "/tmp/r", "minatar_dqn")
  assert (q.agent, q.td_loss, q.update_period, q.target_update_period,
          q.num_steps, q.eval_every, q.eval_steps, q.eval_episodes,
          q.eval_epsilon) == ("dqn", "mse", 4, 4_000, 5_000_000, 100_000,
                              125_000, 0, 0.001)
  assert (q.replay_capacity, q.batch_size, q.learning_starts, q.lr, q.adam_eps,
          q.adam_epsilon_placement, q.gamma, q.optimizer) == (
              100_000, 32, 5_000, 2.5e-4, 3.125e-4, "reference", 0.99, "adam")
  # Epsilon 1.0 for 5k steps, then linear to 0.01 at step 250k.
  from sn_tf.train import linear_epsilon  # pylint: disable=g-import-not-at-top
  assert linear_epsilon(5_000, q) == 1.0
  assert linear_epsilon(250_000, q) == pytest.approx(0.01)
  assert linear_epsilon(127_500, q) == pytest.approx(0.505)
  assert q.sticky_action_prob is None  # MinAtar's own 0.1
  assert not q.clip_rewards and q.minatar_model == "16/128"


def test_evaluation_by_steps_or_by_episodes():
  # Giving the other one replaces the preset's.
  assert make_config("minatar:breakout", "/tmp/r", "minatar",
                     eval_steps=1000).eval_episodes == 0
  assert make_config("minatar:breakout", "/tmp/r", "minatar_dqn",
                     eval_episodes=5).eval_steps == 0
  with pytest.raises(ValueError, match=r"eval_steps=0 .*exactly one of "
                     r"eval_episodes=0 and eval_steps=0 is > 0"):
    make_config("minatar:breakout", "/tmp/r", "minatar", eval_episodes=0)
  with pytest.raises(ValueError, match=r"eval_steps=10 .*exactly one"):
    make_config("minatar:breakout", "/tmp/r", "minatar", eval_steps=10,
                eval_episodes=3)


def test_config_json_of_an_older_version_reads():
  old = json.loads(make_config("minatar:breakout", "/tmp/r", "minatar").to_json())
  for name in ("agent", "td_loss", "eval_steps", "minatar_model"):
    del old[name]
  old.update(minatar_conv_filters=[16, 16], minatar_fc_units=[128])
  c = TrainConfig.from_json(json.dumps(old))
  assert (c.agent, c.eval_steps, c.minatar_model) == ("c51", 0, "16-16/128")
  with pytest.raises(ValueError, match="unknown field.* nonsense"):
    TrainConfig.from_json(json.dumps(dict(old, nonsense=1)))


def test_overrides_and_json_round_trip():
  c = make_config("minatar:asterix", "/tmp/r", "minatar", spectral="-1,-2L",
                  num_steps=10, minatar_model="16/64-32", sticky_action_prob=0.0,
                  batch_size=None)
  assert c.num_steps == 10 and c.minatar_model == "16/64-32"
  assert c.batch_size == 32  # None means "keep the preset's value"
  assert TrainConfig.from_json(c.to_json()) == c


@pytest.mark.parametrize("env,overrides,match", [
    ("minatar:brekout", {}, r"env='minatar:brekout' is not allowed; unknown MinAtar game"),
    ("pong", {}, r"env='pong' is not allowed"),
    ("atari:NotAGame", {}, r"env='atari:NotAGame' is not allowed"),
    ("minatar:breakout", dict(num_steps=0), r"num_steps=0 .*integer >= 1"),
    ("minatar:breakout", dict(num_steps=-5), r"num_steps=-5"),
    ("minatar:breakout", dict(eval_every=1.5), r"eval_every=1.5"),
    ("minatar:breakout", dict(batch_size=64, replay_capacity=100),
     r"replay_capacity=100 .*at least 2 \* batch_size = 128"),
    ("minatar:breakout", dict(spectral="-4"), r"spectral='-4': layer index -4 is out of range"),
    ("minatar:breakout", dict(spectral="-2,abc"), r"malformed item 'abc'"),
    ("atari:Pong", dict(spectral="-6"), r"out of range for a network with 5"),
    ("minatar:breakout", dict(conv_norm="fro"), r"conv_norm='fro' .*operator, reshape"),
    ("minatar:breakout", dict(lipschitz_k=0.0), r"lipschitz_k=0.0 .*> 0"),
    ("minatar:breakout", dict(lr=-1.0), r"lr=-1.0"),
    ("minatar:breakout", dict(gamma=1.5), r"gamma=1.5 .*\[0, 1\]"),
    ("minatar:breakout", dict(eval_epsilon=2.0), r"eval_epsilon=2.0"),
    ("minatar:breakout", dict(sticky_action_prob=-0.1), r"sticky_action_prob=-0.1"),
    ("minatar:breakout", dict(atari_protocol="x"), r"atari_protocol='x' .*paper, dopamine"),
    ("atari:Pong", dict(atari_network="nature"), r"atari_network='nature' is not allowed; allowed: paper, dopamine"),
    ("minatar:breakout", dict(scheduler="divlr", optimizer="sgd"), r"scheduler='divlr' is not allowed; divlr scales Adam's learning rate per layer: it needs optimizer=adam"),
    ("minatar:breakout", dict(rmsprop_rho=1.0), r"rmsprop_rho=1.0 is not allowed; a number in \[0, 1\)"),
    ("minatar:breakout", dict(rmsprop_eps=0.0), r"rmsprop_eps=0.0 is not allowed; a number > 0"),
    ("minatar:breakout", dict(rmsprop_epsilon_placement="torch"), r"rmsprop_epsilon_placement='torch' is not allowed; allowed: keras, reference"),
    ("minatar:breakout", dict(rmsprop_centered="yes"), r"rmsprop_centered='yes' is not allowed; true or false"),
    ("minatar:breakout", dict(min_q_value=5.0, max_q_value=1.0), r"max_q_value=1.0"),
    ("minatar:breakout", dict(minatar_model="16/0"), r"minatar_model='16/0' is not allowed; allowed: '<conv filters>/<hidden units>'"),
    ("minatar:breakout", dict(minatar_model="/128"), r"minatar_model='/128'"),
    ("minatar:breakout", dict(minatar_model="16-16/128", spectral="-5"),
     r"spectral='-5': layer index -5 is out of range for a network with 4"),
    ("minatar:breakout", dict(agent="ppo"), r"agent='ppo' .*allowed: dqn, c51"),
    ("minatar:breakout", dict(td_loss="huber"), r"td_loss='huber' .*a DQN option"),
    ("minatar:breakout", dict(agent="dqn", td_loss="l1"), r"td_loss='l1' .*allowed: mse, huber"),
    ("minatar:breakout", dict(eval_steps=-1), r"eval_steps=-1 .*integer >= 0"),
    ("minatar:breakout", dict(seed=-1), r"seed=-1"),
    ("minatar:breakout", dict(learning_starts=-1), r"learning_starts=-1"),
    ("minatar:breakout", dict(leave_smaller="yes"), r"leave_smaller='yes'"),
    ("minatar:breakout", dict(measure_states=-1), r"measure_states=-1 .*integer >= 0"),
    ("minatar:breakout", dict(jacobian_method="svd"), r"jacobian_method=.svd. .*allowed: auto, exact, power"),
    ("minatar:breakout", dict(num_envs=0), r"num_envs=0 .*integer >= 1"),
    ("minatar:breakout", dict(num_envs=3), r"num_steps=5000000 .*multiple of num_envs=3"),
    ("minatar:breakout", dict(num_envs=8, num_steps=800, eval_every=100),
     r"eval_every=100 .*multiple of num_envs=8"),
    ("minatar:breakout", dict(num_envs=4, num_steps=800, eval_every=400, log_every=10),
     r"log_every=10 .*multiple of num_envs=4"),
    ("minatar:breakout", dict(num_envs=4, num_steps=800, eval_every=400,
                              log_every=100, batch_size=32, replay_capacity=200),
     r"replay_capacity=200 .*2 \* batch_size \* num_envs = 256"),
])
def test_bad_values_name_field_value_and_allowed(env, overrides, match):
  with pytest.raises(ValueError, match=match):
    make_config(env, "/tmp/r", "atari" if env.startswith("atari:") else "minatar",
                **overrides)


def test_preset_must_fit_env():
  with pytest.raises(ValueError, match=r"preset='atari' .*needs preset minatar"):
    make_config("minatar:breakout", "/tmp/r", "atari")
  with pytest.raises(ValueError, match=r"preset='minatar' .*atari or atari_dopamine"):
    make_config("atari:Pong", "/tmp/r", "minatar")
  with pytest.raises(ValueError, match=r"preset='fast' is not allowed; allowed: minatar"):
    make_config("minatar:breakout", "/tmp/r", "fast")
  with pytest.raises(ValueError, match="unknown config field"):
    make_config("minatar:breakout", "/tmp/r", "minatar", learning_rat=1.0)


# ------------------------------------------------ one config from every entry point

from sn_tf import experiments  # noqa: E402  pylint: disable=g-import-not-at-top
from sn_tf import sweeps  # noqa: E402  pylint: disable=g-import-not-at-top
from sn_tf.config import DEFAULT_PRESETS, default_preset  # noqa: E402  pylint: disable=g-import-not-at-top


def _cases():
  for env in ("minatar:breakout", "atari:Pong"):
    suite = env.split(":")[0]
    for agent in (None, "c51", "dqn"):
      for preset in (None,) + tuple(p for p in PRESETS if PRESETS[p].suite == suite):
        yield env, agent, preset


def test_default_presets_by_suite_and_agent():
  assert default_preset("minatar:breakout") == "minatar"
  assert default_preset("minatar:breakout", "dqn") == "minatar_dqn"
  assert default_preset("atari:Pong", "dqn") == default_preset("atari:Pong") == "atari"
  for (suite, agent), preset in DEFAULT_PRESETS.items():
    assert PRESETS[preset].suite == suite, (suite, agent)
  assert make_config("minatar:breakout", "/tmp/r", agent="dqn").preset == "minatar_dqn"
  with pytest.raises(ValueError, match=r"agent='ppo' is not allowed"):
    make_config("minatar:breakout", "/tmp/r", agent="ppo")
  with pytest.raises(ValueError, match=r"env='minatar:pong' is not allowed"):
    make_config("minatar:pong", "/tmp/r")


def test_a_sweep_builds_the_one_config(tmp_path):
  """A sweep run equals the run train.py would build from the same values
  (a DQN run without a preset gets minatar_dqn, not C51's minatar)."""
  for env, agent, preset in _cases():
    grid = {"env": env, "seed": 3}
    grid.update({"agent": agent} if agent else {})
    grid.update({"preset": preset} if preset else {})
    (run,) = sweeps.expand_sweep(grid, str(tmp_path))
    want = make_config(env, run.config.root_dir, preset, agent=agent, seed=3)
    assert run.config == want, grid
  (run,) = sweeps.expand_sweep({"env": "minatar:breakout", "agent": "dqn"},
                               str(tmp_path))
  assert (run.config.preset, run.config.update_period,
          run.config.target_update_period) == ("minatar_dqn", 4, 4_000)


def test_study_plans_build_the_one_config(tmp_path):
  for run in experiments.dqn_study_plan("schedulers", "medium", str(tmp_path)):
    c = run.config
    fields = {k: getattr(c, k) for k in ("minatar_model", "seed", "spectral",
                                          "scheduler", "scheduler_layers",
                                          "scheduler_scope", "leave_smaller",
                                          "lipschitz_k", "num_steps",
                                          "epsilon_decay_steps", "eval_every",
                                          "eval_steps")}
    assert c == make_config(c.env, c.root_dir, agent="dqn", **fields), run.name
  for run in experiments.study_plan("small", str(tmp_path)):
    c = run.config
    fields = {k: getattr(c, k) for k in ("seed", "spectral", "scheduler",
                                          "scheduler_layers", "num_steps",
                                          "epsilon_decay_steps", "eval_every",
                                          "eval_episodes")}
    assert c == make_config(c.env, c.root_dir, agent="c51", **fields), run.name


def _load(path, name):
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_benchmark_builds_the_one_config(tmp_path):
  import argparse  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  bench = _load(os.path.join(repo, "benchmarks", "bench_train_loop.py"),
                "bench_train_loop")
  for env in ("minatar:breakout", "atari:Pong"):
    for agent in ("c51", "dqn"):
      args = argparse.Namespace(env=env, agent=agent, steps=5_000, threads=1,
                                num_envs=1, atari_network="dopamine")
      config = make_config(env, str(tmp_path), **bench.loop_overrides(args, "-2"))
      assert config.preset == default_preset(env, agent)
  assert (config.atari_network, config.replay_capacity) == ("dopamine", 20_000)


def test_every_field_is_checked_by_its_kind_or_its_part():
  """A value of the wrong kind for any field is refused, naming the field:
  by the field's ``Kind`` or by the part the field configures."""
  from sn_tf.config import FIELDS  # pylint: disable=g-import-not-at-top
  context = {"scheduler_layers": dict(scheduler="divgrad", spectral="none")}
  for name, field in FIELDS.items():
    if name in ("env", "root_dir", "preset"):
      continue
    bad = "no-such-value" if field.type in (str, "str") else "x"
    with pytest.raises(ValueError, match=rf"^{name}="):
      make_config("minatar:breakout", "/tmp/r", "minatar",
                  **context.get(name, {}), **{name: bad})
