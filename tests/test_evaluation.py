"""evaluate_rates: which keys appear for which data, values against direct references."""

from __future__ import annotations

import numpy as np
import pytest
from nlb_tools import evaluation as nlb

from lfadskit.data import SpikeData
from lfadskit.evaluation import METRIC_KEYS, evaluate_rates, format_table
from lfadskit.metrics import poisson_nll, velocity_r2, velocity_r2_cv


def simulated(seed=0, valid_behavior=False, valid_targets=False):
    """Poisson data with every optional field; valid trials lack targets unless asked."""
    rng = np.random.default_rng(seed)
    n_trials, n_t, n_fwd, n_in, n_out, n_cond = 24, 20, 4, 6, 3, 3
    conditions = np.arange(n_trials) % n_cond
    phase = conditions[:, None] * 2.0 + np.linspace(0, 3, n_t + n_fwd)[None, :]
    latent = np.stack([np.sin(phase), np.cos(phase)], axis=-1)
    truth = np.exp(latent @ rng.normal(0, 0.8, size=(2, n_in + n_out)) - 0.5)
    counts = rng.poisson(truth).astype(np.float32)
    behavior = latent[:, :n_t] * 10.0
    valid = np.arange(18, 24)
    heldout = counts[:, :n_t, n_in:].copy()
    forward = counts[:, n_t:].copy()
    if not valid_targets:
        heldout[valid] = np.nan
        forward[valid] = np.nan
    if not valid_behavior:
        behavior[valid] = np.nan
    data = SpikeData(
        spikes=counts[:, :n_t, :n_in],
        heldout=heldout,
        forward=forward,
        behavior=behavior,
        truth=truth,
        conditions=conditions,
        bin_size=0.01,
        train_idx=np.arange(18),
        valid_idx=valid,
    )
    return data, truth


def test_spikes_only_gives_nll_and_bps():
    rng = np.random.default_rng(0)
    data = SpikeData(spikes=rng.poisson(1.0, size=(10, 20, 4)))
    rates = np.full(data.recon_shape, 1.0)
    metrics = evaluate_rates(data, rates)
    assert set(metrics) == {"train", "valid"}
    for split in ("train", "valid"):
        assert list(metrics[split]) == ["nll", "bps"]
        spikes = data.spikes[data.index(split)]
        assert metrics[split]["nll"] == pytest.approx(poisson_nll(spikes, np.ones(spikes.shape)))


def test_all_fields_train_has_every_key_valid_only_what_is_observed():
    data, truth = simulated()
    metrics = evaluate_rates(data, truth)
    assert tuple(metrics["train"]) == METRIC_KEYS
    # valid trials have no held-out/forward targets and no behavior
    assert list(metrics["valid"]) == ["nll", "bps", "rate_r2", "psth_r2"]
    assert metrics["valid"]["rate_r2"] == pytest.approx(1.0)
    assert metrics["train"]["psth_r2"] == pytest.approx(1.0)
    train = data.train_idx
    n_in, n_t = data.n_neurons, data.n_timesteps
    assert metrics["train"]["co_bps"] == pytest.approx(
        nlb.bits_per_spike(truth[train, :n_t, n_in:].copy(), data.heldout[train].astype(float)),
        abs=1e-6,
    )
    assert metrics["train"]["fp_bps"] == pytest.approx(
        nlb.bits_per_spike(truth[train, n_t:].copy(), data.forward[train].astype(float)),
        abs=1e-6,
    )
    expected_vel = velocity_r2_cv(truth[train, :n_t], data.behavior[train], n_folds=5, seed=0)
    assert metrics["train"]["vel_r2"] == pytest.approx(expected_vel)
    assert metrics["train"]["vel_r2"] > 0.5  # truth rates decode the latent-driven behavior


def test_valid_with_targets_and_behavior():
    data, truth = simulated(valid_behavior=True, valid_targets=True)
    rng = np.random.default_rng(1)
    rates = truth * rng.uniform(0.8, 1.2, size=truth.shape)
    metrics = evaluate_rates(data, rates)
    assert tuple(metrics["valid"]) == METRIC_KEYS
    train, valid, n_t = data.train_idx, data.valid_idx, data.n_timesteps
    expected = velocity_r2(
        rates[train, :n_t], data.behavior[train], rates[valid, :n_t], data.behavior[valid]
    )
    assert metrics["valid"]["vel_r2"] == pytest.approx(expected)


def test_psth_without_truth_uses_smoothed_counts():
    data, truth = simulated()
    data = data.replace(truth=None)
    metrics = evaluate_rates(data, truth)
    assert "rate_r2" not in metrics["train"]
    assert 0.0 < metrics["train"]["psth_r2"] < 1.0  # noisy reference, informative prediction
    # Valid held-out neurons are never observed: scored on the held-in neurons only.
    assert "psth_r2" in metrics["valid"]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda r: r[:, :-1], "shape"),
        (lambda r: np.where(r > 1, np.nan, r), "NaN"),
        (lambda r: -r, "negative"),
    ],
)
def test_bad_rates_raise(change, match):
    data, truth = simulated()
    with pytest.raises(ValueError, match=match):
        evaluate_rates(data, change(truth))


def test_format_table_aligns_splits_and_marks_missing():
    table = format_table({"train": {"nll": 0.5, "co_bps": 0.25}, "valid": {"nll": 0.75}})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "train", "valid"]
    assert lines[1].split() == ["nll", "0.5000", "0.7500"]
    assert lines[2].split() == ["co_bps", "0.2500", "-"]
    assert len({len(line) for line in lines}) == 1  # every row the same width
