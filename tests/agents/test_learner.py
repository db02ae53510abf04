"""What the Learner promises about power iteration: layers a scheduler,
DivOut or SN uses iterate in every update; layers tracked for the logs only
iterate when their sigma is read, and then estimate the current kernel."""

import numpy as np
import pytest

from test_dqn import _batches, _learner


def _vectors(layer):
  return layer.u.numpy().copy(), layer.v.numpy().copy()


@pytest.mark.parametrize("overrides,iterating", [
    (dict(spectral="-2"), {"dense1"}),  # SN on -2 only
    (dict(spectral="none", scheduler="divgrad", scheduler_layers="-1,-3"),
     {"conv0", "dense2"}),
    (dict(spectral="none", scheduler="divout", scheduler_layers="-2"), {"dense1"}),
    (dict(spectral="none"), set()),
])
def test_only_the_layers_an_update_reads_iterate_in_it(overrides, iterating):
  learner = _learner(minatar_model="16/128", **overrides)
  layers = {l.name: l for l in learner.online_network.sn_layers}
  assert set(layers) == {"conv0", "dense1", "dense2"}
  before = {name: _vectors(l) for name, l in layers.items()}
  for batch in _batches(np.random.default_rng(0), 3):
    learner.update(batch)
  moved = {name for name, l in layers.items()
           if not np.array_equal(_vectors(l)[0], before[name][0])}
  assert moved == iterating


def test_log_only_sigma_estimates_the_current_kernel_once_per_step():
  learner = _learner(minatar_model="16/128", spectral="-2", lr=1e-3)
  dense2 = {l.name: l for l in learner.online_network.sn_layers}["dense2"]
  for batch in _batches(np.random.default_rng(1), 20):
    learner.update(batch)
  sigmas = learner.sigmas()
  exact = np.linalg.svd(dense2.kernel.numpy().astype(np.float64), compute_uv=False)[0]
  np.testing.assert_allclose(sigmas["sigma/dense2"], exact, rtol=1e-4)
  # A second read at the same step changes nothing; the next step's does.
  vectors = _vectors(dense2)
  assert learner.sigmas() == sigmas
  np.testing.assert_array_equal(_vectors(dense2)[0], vectors[0])
  learner.update(next(_batches(np.random.default_rng(2), 1)))
  learner.sigmas()
  assert not np.array_equal(_vectors(dense2)[0], vectors[0])


@pytest.mark.parametrize("act_power_iteration", [False, True])
def test_acting_iterates_only_with_act_power_iteration(act_power_iteration):
  learner = _learner(minatar_model="16/128", spectral="-2",
                     act_power_iteration=act_power_iteration)
  dense1 = {l.name: l for l in learner.online_network.sn_layers}["dense1"]
  for batch in _batches(np.random.default_rng(3), 2):
    learner.update(batch)
  obs = next(_batches(np.random.default_rng(4), 1))["obs"][:1]
  greedy = learner.compiled_greedy_actions()
  acting = learner.compiled_acting_actions()
  before = _vectors(dense1)
  greedy(obs)  # evaluation and export: never
  np.testing.assert_array_equal(_vectors(dense1)[0], before[0])
  expected = float(dense1.next_spectral_norm_estimate())
  want = int(learner.greedy_actions(obs).numpy()[0])
  got = int(acting(obs).numpy()[0])
  if act_power_iteration:  # one step, as a training forward pass
    np.testing.assert_allclose(dense1.sigma.numpy(), expected, rtol=1e-6)
    assert not np.array_equal(_vectors(dense1)[0], before[0])
  else:
    assert acting is greedy and got == want
    np.testing.assert_array_equal(_vectors(dense1)[0], before[0])


def test_rmsprop_fields_reach_the_optimiser():
  learner = _learner(optimizer="rmsprop", lr=1e-3, rmsprop_rho=0.95,
                     rmsprop_eps=0.01, rmsprop_centered=True,
                     rmsprop_epsilon_placement="reference")
  opt = learner.optimizer
  assert (type(opt).__name__, opt.rho, opt.epsilon, opt.centered,
          opt.epsilon_placement) == ("ReferenceRMSprop", 0.95, 0.01, True,
                                     "reference")
  learner.update(next(_batches(np.random.default_rng(0), 1)))
  divgrad = _learner(optimizer="rmsprop", spectral="none", scheduler="divgrad",
                     rmsprop_rho=0.95, rmsprop_epsilon_placement="reference")
  assert (type(divgrad.optimizer).__name__, divgrad.optimizer.rho,
          divgrad.optimizer.epsilon_placement) == ("DivGradRMSprop", 0.95, "reference")


def test_divlr_groups_each_tracked_layers_kernel_and_bias():
  learner = _learner(spectral="none", scheduler="divlr", scheduler_layers="-2,-3",
                     minatar_model="16/128")
  opt = learner.optimizer
  layers = {l.name: l for l in learner.online_network.sn_layers}
  assert type(opt).__name__ == "DivLRAdam"
  groups = [[v.name for v in variables] for variables, _ in opt.layer_rhos]
  assert groups == [[layers["conv0"].kernel.name, layers["conv0"].bias.name],
                    [layers["dense1"].kernel.name, layers["dense1"].bias.name]]
  # rho_i = max(sigma_i / K, 1) whatever leave_smaller says.
  for (variables, source), layer in zip(opt.layer_rhos, (layers["conv0"], layers["dense1"])):
    want = max(float(layer.spectral_norm_estimate()), 1.0)
    np.testing.assert_allclose(float(source()), want, rtol=1e-6)
  learner.update(next(_batches(np.random.default_rng(0), 1)))
