"""Metrics against nlb_tools.evaluation, hand-computed cases and invariants."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from nlb_tools import evaluation as nlb
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV

from lfadskit.baseline import gaussian_smooth
from lfadskit.metrics import (
    DEFAULT_ALPHAS,
    bits_per_spike,
    co_bps,
    condition_psth,
    decode_behavior,
    fit_ridge_decoder,
    fp_bps,
    poisson_nll,
    poisson_nll_log_rates,
    psth_r2,
    rate_r2,
    velocity_r2,
    velocity_r2_cv,
)


def random_counts_rates(seed=0, shape=(12, 30, 7), nan_trials=(2, 5)):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 0.4, size=shape)
    counts = rng.poisson(rates).astype(float)
    counts[list(nan_trials)] = np.nan  # unobserved trials
    model = rates * rng.uniform(0.5, 1.5, size=shape)
    return counts, model


@pytest.fixture(scope="module")
def real_train(mc_maze_dir):
    with h5py.File(mc_maze_dir / "mc_maze_small_train.h5", "r") as f:
        heldin = f["train_spikes_heldin"][()].astype(float)
        heldout = f["train_spikes_heldout"][()].astype(float)
        behavior = f["train_behavior"][()].astype(float)
    return heldin, heldout, behavior


# ---------------------------------------------------------------- likelihoods
def test_poisson_nll_matches_nlb_with_nan_trials():
    counts, rates = random_counts_rates()
    rates[0, 0, 0] = 0.0  # both replace a zero rate with 1e-9
    expected_sum = nlb.neg_log_likelihood(rates.copy(), counts.copy())
    n_observed = np.isfinite(counts).sum()
    assert poisson_nll(counts, rates, reduction="sum") == pytest.approx(expected_sum, rel=1e-12)
    assert poisson_nll(counts, rates) == pytest.approx(expected_sum / n_observed, rel=1e-12)


def test_poisson_nll_hand_case_and_log_rates():
    # k = (0, 1, 2), r = 1: NLL = 1, 1, 1 + ln 2
    counts = np.array([0.0, 1.0, 2.0])
    assert poisson_nll(counts, np.ones(3), reduction="sum") == pytest.approx(3 + np.log(2))
    log_rates = np.log(np.array([0.5, 2.0, 3.0]))
    assert poisson_nll_log_rates(counts, log_rates) == pytest.approx(
        poisson_nll(counts, np.exp(log_rates)), rel=1e-12
    )


def test_bits_per_spike_matches_nlb_with_nan_and_silent_neuron():
    counts, rates = random_counts_rates(seed=1)
    counts[~np.isnan(counts[:, 0, 0]), :, 3] = 0.0  # a neuron that never fires
    rates[..., 3] = 0.0  # predicted exactly zero: both use 1e-9
    expected = nlb.bits_per_spike(rates.copy(), counts.copy())
    assert bits_per_spike(counts, rates) == pytest.approx(expected, abs=1e-6, rel=1e-9)
    assert co_bps(counts, rates) == bits_per_spike(counts, rates)
    assert fp_bps(counts, rates) == bits_per_spike(counts, rates)


def test_bits_per_spike_of_null_model_is_zero():
    counts, _ = random_counts_rates(seed=2)
    null = np.broadcast_to(np.nanmean(counts, axis=(0, 1)), counts.shape).copy()
    assert abs(bits_per_spike(counts, null)) < 1e-12


def test_bits_per_spike_perfect_two_element_case():
    # counts (1, 0); null rate 0.5: NLL_null = 0.5 - ln 0.5 + 0.5 = 1 + ln 2.
    # model (1, 0 -> 1e-9): NLL = 1 + 1e-9. bps = (ln 2 - 1e-9) / 1 spike / ln 2.
    counts = np.array([[[1.0], [0.0]]])
    rates = np.array([[[1.0], [0.0]]])
    assert bits_per_spike(counts, rates) == pytest.approx(1 - 1e-9 / np.log(2), abs=1e-12)


def test_bits_per_spike_without_spikes_is_nan():
    assert np.isnan(bits_per_spike(np.zeros((2, 3, 1)), np.ones((2, 3, 1))))


@pytest.mark.parametrize(
    "bad, word",
    [(np.nan, "rates"), (np.inf, "rates"), (-1.0, "negative")],
)
def test_bad_rates_raise(bad, word):
    counts, rates = random_counts_rates()
    rates[1, 1, 1] = bad
    with pytest.raises(ValueError, match=word):
        bits_per_spike(counts, rates)
    with pytest.raises(ValueError, match=word):
        poisson_nll(counts, rates)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="rates: shape"):
        poisson_nll(np.zeros((2, 3, 4)), np.ones((2, 3, 5)))
    with pytest.raises(ValueError, match="reduction"):
        poisson_nll(np.zeros(3), np.ones(3), reduction="median")


# ---------------------------------------------------------------- rate R²
def test_rate_r2_identity_and_sklearn():
    rng = np.random.default_rng(3)
    truth = rng.gamma(2.0, 0.5, size=(5, 20, 6))
    pred = truth + rng.normal(0, 0.3, size=truth.shape) ** 2
    assert rate_r2(truth, truth) == 1.0
    assert rate_r2(truth, pred) == pytest.approx(r2_score(truth.ravel(), pred.ravel()))
    per_neuron = rate_r2(truth, pred, per_neuron=True)
    assert per_neuron.shape == (6,)
    expected = r2_score(truth.reshape(-1, 6), pred.reshape(-1, 6), multioutput="raw_values")
    np.testing.assert_allclose(per_neuron, expected, rtol=1e-12)


def test_rate_r2_per_neuron_constructed():
    # neuron 0: exact; neuron 1: truth (0, 2), pred (1, 1) -> SSE 2, SST 2 -> 0;
    # neuron 2: truth (1, 3), pred (3, 1) -> SSE 8, SST 2 -> -3.
    truth = np.array([[[5.0, 0.0, 1.0], [6.0, 2.0, 3.0]]])
    pred = np.array([[[5.0, 1.0, 3.0], [6.0, 1.0, 1.0]]])
    np.testing.assert_allclose(rate_r2(truth, pred, per_neuron=True), [1.0, 0.0, -3.0])


# ---------------------------------------------------------------- velocity decoding
def linear_behavior(seed=0, n_trials=30, n_timesteps=25, n_neurons=8):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(2.0, 0.5, size=(n_trials, n_timesteps, n_neurons))
    weights = rng.normal(size=(n_neurons, 2))
    behavior = rates @ weights + rng.normal(0, 2.0, size=(n_trials, n_timesteps, 2))
    return rates, behavior


def test_velocity_r2_matches_nlb_decoder_with_nan_trials():
    rates, behavior = linear_behavior()
    behavior[[3, 25]] = np.nan  # trials without behavior
    train, test = slice(0, 20), slice(20, 30)
    flat = lambda x: x.reshape(-1, x.shape[2])
    expected = nlb.fit_and_eval_decoder(
        flat(rates[train]), flat(behavior[train]), flat(rates[test]), flat(behavior[test])
    )
    got = velocity_r2(rates[train], behavior[train], rates[test], behavior[test])
    assert got == pytest.approx(expected, abs=1e-6)


def test_velocity_r2_cv_pools_trial_folds():
    rates, behavior = linear_behavior(seed=1)
    got = velocity_r2_cv(rates, behavior, n_folds=5, seed=4)
    # Independent reference: scikit-learn's GridSearchCV decoder on the same trial folds.
    folds = np.array_split(np.random.default_rng(4).permutation(30), 5)
    truth, pred = [], []
    for fold in folds:
        rest = np.setdiff1d(np.arange(30), fold)
        decoder = GridSearchCV(Ridge(), {"alpha": DEFAULT_ALPHAS})
        decoder.fit(rates[rest].reshape(-1, 8), behavior[rest].reshape(-1, 2))
        pred.append(decoder.predict(rates[fold].reshape(-1, 8)))
        truth.append(behavior[fold].reshape(-1, 2))
    assert got == pytest.approx(r2_score(np.vstack(truth), np.vstack(pred)), abs=1e-6)
    # A trial without behavior is excluded and changes nothing.
    rates_nan = np.concatenate([rates, rates[:1]])
    behavior_nan = np.concatenate([behavior, np.full((1, 25, 2), np.nan)])
    assert velocity_r2_cv(rates_nan, behavior_nan, n_folds=5, seed=4) == pytest.approx(got)


def test_fit_ridge_decoder_matches_sklearn_grid_search():
    rates, behavior = linear_behavior(seed=2)
    behavior[4] = np.nan  # a trial without behavior is left out of the fit
    decoder = fit_ridge_decoder(rates, behavior)
    # Independent reference: the NLB recipe, scikit-learn's GridSearchCV over Ridge.
    keep = ~np.isnan(behavior.reshape(-1, 2)).any(axis=1)
    reference = GridSearchCV(Ridge(), {"alpha": DEFAULT_ALPHAS})
    reference.fit(rates.reshape(-1, 8)[keep], behavior.reshape(-1, 2)[keep])
    assert decoder.alpha == reference.best_params_["alpha"]
    np.testing.assert_allclose(decoder.coef, reference.best_estimator_.coef_.T, atol=1e-8)
    # Trial-shaped input gives trial-shaped output, equal to the flattened prediction.
    decoded = decoder.predict(rates)
    assert decoded.shape == (rates.shape[0], rates.shape[1], 2)
    np.testing.assert_allclose(
        decoded.reshape(-1, 2), reference.predict(rates.reshape(-1, 8)), atol=1e-8
    )
    with pytest.raises(ValueError, match="need at least 5"):
        fit_ridge_decoder(rates[:1, :4], behavior[:1, :4])


def test_decode_behavior_scores_like_velocity_r2():
    rates, behavior = linear_behavior(seed=3)
    behavior[25] = np.nan  # an eval trial without behavior is left out of the score
    fit, shown = np.arange(20), np.arange(20, 30)
    decoded, r2 = decode_behavior(rates, behavior, fit, shown)
    assert decoded.shape == (10, rates.shape[1], 2)
    assert np.isfinite(decoded).all()
    assert r2 == pytest.approx(
        velocity_r2(rates[fit], behavior[fit], rates[shown], behavior[shown]), abs=1e-12
    )


def test_velocity_r2_cv_rejects_bad_folds():
    rates, behavior = linear_behavior(n_trials=4)
    with pytest.raises(ValueError, match="n_folds"):
        velocity_r2_cv(rates, behavior, n_folds=5)


# ---------------------------------------------------------------- PSTH
def test_condition_psth_averages_observed_trials():
    values = np.arange(12.0).reshape(6, 2, 1)
    values[4] = np.nan  # unobserved trial of condition 1
    conditions = np.array([0, 1, 0, 1, 1, 2])
    psth, labels = condition_psth(values, conditions)
    assert labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(psth[0, :, 0], (values[0, :, 0] + values[2, :, 0]) / 2)
    np.testing.assert_allclose(psth[1, :, 0], (values[1, :, 0] + values[3, :, 0]) / 2)
    np.testing.assert_allclose(psth[2, :, 0], values[5, :, 0])


def test_psth_r2_matches_nlb_eval_psth():
    rng = np.random.default_rng(5)
    n_trials, n_timesteps, n_neurons, n_cond = 24, 15, 6, 4
    conditions = rng.integers(0, n_cond, size=n_trials)
    conditions[:n_cond] = np.arange(n_cond)
    reference = rng.gamma(2.0, 0.5, size=(n_cond, n_timesteps, n_neurons))
    reference[1, :3] = np.nan  # time bins outside the condition's window
    rates = reference[conditions] + rng.gamma(1.0, 0.2, size=(n_trials, n_timesteps, n_neurons))
    rates = np.nan_to_num(rates, nan=0.5)
    cond_idx = [np.flatnonzero(conditions == c) for c in range(n_cond)]
    expected = nlb.eval_psth(reference, rates, cond_idx)
    assert psth_r2(conditions, rates, reference) == pytest.approx(expected, abs=1e-6)
    exact, _ = condition_psth(rates, conditions)
    assert psth_r2(conditions, rates, exact) == pytest.approx(1.0)


# ---------------------------------------------------------------- real data
def test_real_data_bps_and_nll_match_nlb(real_train):
    heldin, heldout, _ = real_train
    rates_in = gaussian_smooth(heldin, 10.0)
    # Held-out "prediction": a scaled population rate, a crude but non-trivial predictor.
    rates_out = np.broadcast_to(
        rates_in.mean(axis=2, keepdims=True) * heldout.mean(axis=(0, 1)) / heldin.mean(),
        heldout.shape,
    ).copy()
    for counts, rates in [(heldin, rates_in), (heldout, rates_out)]:
        assert bits_per_spike(counts, rates) == pytest.approx(
            nlb.bits_per_spike(rates.copy(), counts.copy()), abs=1e-6
        )
        assert poisson_nll(counts, rates, reduction="sum") == pytest.approx(
            nlb.neg_log_likelihood(rates.copy(), counts.copy()), rel=1e-10
        )


def test_real_data_velocity_matches_nlb(real_train):
    heldin, heldout, behavior = real_train
    rates = gaussian_smooth(np.concatenate([heldin, heldout], axis=2), 10.0)
    flat = lambda x: x.reshape(-1, x.shape[2])
    expected = nlb.fit_and_eval_decoder(
        flat(rates[:50]), flat(behavior[:50]), flat(rates[50:]), flat(behavior[50:])
    )
    got = velocity_r2(rates[:50], behavior[:50], rates[50:], behavior[50:])
    assert got == pytest.approx(expected, abs=1e-6)
    assert got > 0.1  # smoothed spikes carry real velocity information
