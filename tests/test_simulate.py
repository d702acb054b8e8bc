"""Tests of the simulators: shapes, determinism, Poisson statistics, and the true dynamics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from lfadskit.data import SpikeData, make_split
from lfadskit.simulate import (
    chaotic_rnn,
    lorenz,
    lorenz_vector_field,
    rnn_weights,
    stratified_split,
)

SMALL = {"n_conditions": 6, "n_trials_per_condition": 5}
SIMULATORS = {
    "lorenz": lambda **kw: lorenz(**{**SMALL, **kw}),
    "chaotic_rnn": lambda **kw: chaotic_rnn(**{**SMALL, "n_neurons": 12, "n_timesteps": 40, **kw}),
}


@pytest.fixture(params=sorted(SIMULATORS))
def simulator(request):
    return SIMULATORS[request.param]


# --------------------------------------------------------------------------- shapes and types
@pytest.mark.parametrize(
    ("make", "n_neurons", "n_timesteps", "n_latent"),
    [(SIMULATORS["lorenz"], 29, 50, 3), (SIMULATORS["chaotic_rnn"], 12, 40, 50)],
)
def test_shapes_and_dtypes(make, n_neurons, n_timesteps, n_latent):
    data, latents = make(n_heldout=4, n_forward=7, return_latents=True)
    n_trials = 30
    assert isinstance(data, SpikeData)
    assert data.spikes.shape == (n_trials, n_timesteps, n_neurons)
    assert data.heldout.shape == (n_trials, n_timesteps, 4)
    assert data.forward.shape == (n_trials, 7, n_neurons + 4)
    assert data.truth.shape == data.recon_shape == (n_trials, n_timesteps + 7, n_neurons + 4)
    assert latents.shape == (n_trials, n_timesteps + 7, n_latent)
    for arr in (data.spikes, data.heldout, data.forward, data.truth):
        assert arr.dtype == np.float32
    assert data.conditions.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.conditions), [5] * 6)


def test_no_heldout_or_forward_means_none(simulator):
    data = simulator()
    assert data.heldout is None and data.forward is None
    assert data.truth.shape == data.spikes.shape


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_data_and_different_seed_differs(simulator):
    first = simulator(n_heldout=2, n_forward=3, seed=5)
    again = simulator(n_heldout=2, n_forward=3, seed=5)
    other = simulator(n_heldout=2, n_forward=3, seed=6)
    for field in ("spikes", "heldout", "forward", "truth", "train_idx", "valid_idx"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.truth, other.truth)
    assert not np.array_equal(first.spikes, other.spikes)


def test_heldout_and_forward_do_not_change_heldin_window_truth(simulator):
    plain = simulator()
    extended = simulator(n_heldout=3, n_forward=4)
    n_timesteps, n_neurons = plain.n_timesteps, plain.n_neurons
    np.testing.assert_array_equal(extended.truth[:, :n_timesteps, :n_neurons], plain.truth)


# --------------------------------------------------------------------------- counts and rates
def test_counts_are_integers_and_truth_positive(simulator):
    data = simulator(n_heldout=3, n_forward=4)
    recon = data.recon
    assert np.isfinite(recon).all()
    assert (recon >= 0).all() and (recon == np.round(recon)).all()
    assert np.isfinite(data.truth).all() and (data.truth > 0).all()


def test_counts_match_truth_within_poisson_error(simulator):
    data = simulator(n_heldout=3, n_forward=4, n_trials_per_condition=40)
    counts, truth = data.recon.astype(np.float64), data.truth.astype(np.float64)
    # The sum of independent Poisson counts has variance equal to the sum of the rates.
    z_total = (counts.sum() - truth.sum()) / np.sqrt(truth.sum())
    z_neuron = (counts.sum(axis=(0, 1)) - truth.sum(axis=(0, 1))) / np.sqrt(truth.sum(axis=(0, 1)))
    assert abs(z_total) < 5
    assert np.abs(z_neuron).max() < 5
    # Poisson: variance across trials of one condition equals the mean (pooled over bins).
    first = data.conditions == 0
    var_ratio = counts[first].var(axis=0, ddof=1).sum() / truth[first][0].sum()
    assert 0.8 < var_ratio < 1.2


def test_trials_of_a_condition_share_truth_and_differ_in_noise(simulator):
    data, latents = simulator(return_latents=True)
    for label in np.unique(data.conditions):
        members = np.flatnonzero(data.conditions == label)
        np.testing.assert_array_equal(
            data.truth[members], data.truth[members[:1]].repeat(members.size, axis=0)
        )
        np.testing.assert_array_equal(
            latents[members], latents[members[:1]].repeat(members.size, axis=0)
        )
        assert not np.array_equal(data.spikes[members[0]], data.spikes[members[1]])
    # Different conditions have different rates.
    assert not np.allclose(data.truth[data.conditions == 0][0], data.truth[data.conditions == 1][0])


def test_lorenz_default_rates_in_documented_range():
    data = lorenz(seed=0)
    hz = data.truth / data.bin_size
    assert data.spikes.shape == (65 * 20, 50, 29)
    assert 5.0 < hz.mean() < 20.0
    assert hz.max() < 100.0
    per_neuron = hz.mean(axis=(0, 1))
    assert (per_neuron > 2.0).all() and (per_neuron < 20.0).all()
    # The rates are modulated, not flat: log-rates vary by a readout_scale-sized amount.
    assert np.log(data.truth).std(axis=(0, 1)).min() > 0.3


def test_lorenz_base_rate_and_bin_size_scale_the_rates():
    # log-rate offset is log(base_rate * bin_size): doubling base_rate doubles every rate.
    base = lorenz(**SMALL, base_rate=5.0)
    double = lorenz(**SMALL, base_rate=10.0)
    np.testing.assert_allclose(double.truth, 2 * base.truth, rtol=1e-6)
    no_modulation = lorenz(**SMALL, base_rate=8.0, bin_size=0.01, readout_scale=0.0)
    np.testing.assert_allclose(no_modulation.truth, 0.08, rtol=1e-6)


def test_chaotic_rnn_rates_within_max_rate():
    data = chaotic_rnn(n_conditions=20, n_trials_per_condition=2, max_rate=30.0, seed=0)
    hz = data.truth / data.bin_size
    assert hz.max() < 30.0 and hz.min() > 0.0
    assert 10.0 < hz.mean() < 20.0
    # Chaotic dynamics keep the rates moving over the trial.
    assert hz.std(axis=1).mean() > 1.0


# --------------------------------------------------------------------------- true dynamics
def _lorenz_reference(_t, state):
    # Written out independently of the module: sigma 10, rho 28, beta 8/3.
    x, y, z = state
    return [10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z]


def test_lorenz_vector_field_hand_value():
    # At (1, 2, 3): (10 * 1, 1 * 25 - 2, 2 - 8) = (10, 23, -6).
    np.testing.assert_allclose(lorenz_vector_field(np.array([1.0, 2.0, 3.0])), [10, 23, -6])


def test_lorenz_latents_follow_the_lorenz_equations():
    data, latents = lorenz(
        n_conditions=4, n_trials_per_condition=1, n_forward=5, return_latents=True
    )
    mean, std = np.array(data.meta["latent_mean"]), np.array(data.meta["latent_std"])
    raw = latents * std + mean
    dt = data.meta["lorenz_dt"]
    for trial in range(4):
        for t in (0, 17, 53):
            ref = solve_ivp(
                _lorenz_reference, (0, dt), raw[trial, t], method="DOP853", rtol=1e-12, atol=1e-12
            ).y[:, -1]
            np.testing.assert_allclose(raw[trial, t + 1], ref, rtol=0, atol=1e-6)
    # On the attractor (after burn-in), not at the random start: the known bounding box.
    assert np.abs(raw[..., :2]).max() < 30 and raw[..., 2].min() > 0 and raw[..., 2].max() < 55
    # Normalized over the input window: zero mean, unit variance per dimension.
    window = latents[:, : data.n_timesteps]
    np.testing.assert_allclose(window.mean(axis=(0, 1)), 0, atol=1e-12)
    np.testing.assert_allclose(window.std(axis=(0, 1)), 1, rtol=1e-12)


def test_lorenz_trial_spans_about_one_time_unit_with_loops():
    _, latents = lorenz(n_conditions=20, n_trials_per_condition=1, return_latents=True)
    # One loop around a wing takes ~0.7 time units and z rises and falls once per loop, so over
    # 1 time unit z crosses its trial mean at least twice in every condition.
    z = latents[..., 2]
    crossings = (np.diff(np.sign(z - z.mean(axis=1, keepdims=True)), axis=1) != 0).sum(axis=1)
    assert (crossings >= 2).all()


def test_chaotic_rnn_latents_follow_the_network_equations():
    tau, gamma = 0.025, 1.5
    data, latents = chaotic_rnn(
        n_neurons=5,
        n_conditions=2,
        n_trials_per_condition=2,
        n_timesteps=30,
        n_generator=20,
        gamma=gamma,
        tau=tau,
        seed=3,
        return_latents=True,
    )
    weights = rnn_weights(n_generator=20, gamma=gamma, seed=3)
    assert weights.shape == (20, 20)
    # gamma**2 / N variance of the weights, up to sampling error on 400 entries.
    assert 0.7 < weights.var() * 20 / gamma**2 < 1.3

    def reference(_t, state):
        return (-state + weights @ np.tanh(state)) / tau

    for trial in (0, 2):
        for t in (0, 12, 28):
            ref = solve_ivp(
                reference,
                (0, data.bin_size),
                latents[trial, t],
                method="DOP853",
                rtol=1e-12,
                atol=1e-12,
            ).y[:, -1]
            np.testing.assert_allclose(latents[trial, t + 1], ref, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- split and meta
def test_stratified_split_covers_every_condition():
    conditions = np.repeat(np.arange(7), 6)
    train, valid = stratified_split(conditions, 0.25, seed=1)
    expected_valid = make_split(conditions.size, 0.25, seed=1)[1].size
    assert valid.size == expected_valid
    assert np.intersect1d(train, valid).size == 0
    assert np.union1d(train, valid).size == conditions.size
    assert set(conditions[train]) == set(range(7))
    # Close to proportional: each condition has floor or ceil of its share in valid.
    share = expected_valid / 7
    per_condition = np.bincount(conditions[valid], minlength=7)
    assert per_condition.min() >= np.floor(share) and per_condition.max() <= np.ceil(share)
    np.testing.assert_array_equal(stratified_split(conditions, 0.25, seed=1)[0], train)


def test_stratified_split_keeps_a_train_trial_per_condition_with_pairs():
    # Two trials per condition and nearly half the trials in valid: the tightest equal-size case.
    conditions = np.repeat(np.arange(15), 2)
    for seed in range(20):
        train, valid = stratified_split(conditions, 0.45, seed=seed)
        assert set(conditions[train]) == set(range(15))
        assert valid.size == make_split(30, 0.45, seed=seed)[1].size
    with pytest.raises(ValueError, match="conditions"):
        stratified_split(conditions.reshape(3, 10))


def test_simulated_split_is_stratified(simulator):
    data = simulator(valid_fraction=0.2)
    assert set(data.conditions[data.train_idx]) == set(range(6))
    assert set(data.conditions[data.valid_idx]) == set(range(6))


def test_meta_records_name_and_parameters():
    data = lorenz(**SMALL, n_heldout=2, seed=4)
    assert data.name == "lorenz" and data.meta["simulator"] == "lorenz"
    assert data.meta["n_heldout"] == 2 and data.meta["seed"] == 4
    assert data.meta["base_rate"] == 5.0 and data.meta["bin_size"] == 0.02
    rnn = chaotic_rnn(**SMALL, n_timesteps=10)
    assert rnn.name == "chaotic_rnn" and rnn.meta["gamma"] == 1.5 and rnn.meta["tau"] == 0.025
    json.dumps(data.meta)
    json.dumps(rnn.meta)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("n_neurons", 0),
        ("n_neurons", 2.5),
        ("n_neurons", True),
        ("n_conditions", -1),
        ("n_timesteps", 0),
        ("n_heldout", -1),
        ("n_forward", "3"),
        ("bin_size", 0.0),
        ("bin_size", float("nan")),
        ("valid_fraction", 1.0),
        ("seed", -1),
        ("base_rate", 0.0),
        ("readout_scale", -0.1),
        ("lorenz_dt", float("inf")),
    ],
)
def test_lorenz_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        lorenz(**{**SMALL, argument: value})


@pytest.mark.parametrize(
    ("argument", "value"),
    [("max_rate", 0.0), ("tau", -0.01), ("n_generator", 0), ("gamma", float("nan"))],
)
def test_chaotic_rnn_rejects_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=argument):
        chaotic_rnn(**{**SMALL, argument: value})


def test_too_few_trials_is_rejected():
    with pytest.raises(ValueError, match="n_trials_per_condition"):
        lorenz(n_conditions=1, n_trials_per_condition=3)
