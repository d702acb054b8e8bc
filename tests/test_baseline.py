"""Spike-smoothing baseline: smoothing kernel, real-data co-bps floor, simulated data."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from lfadskit.baseline import MIN_RATE, SpikeSmoothing, gaussian_smooth
from lfadskit.data import SpikeData
from lfadskit.metrics import bits_per_spike


def load_mc_maze_small(folder):
    """Train trials (75) then val trials (25), the NLB layout; val lacks forward and behavior."""
    with h5py.File(folder / "mc_maze_small_train.h5", "r") as f:
        train = {key: f[key][()] for key in f}
    with h5py.File(folder / "mc_maze_small_val.h5", "r") as f:
        val = {key: f[key][()] for key in f}
    n_val = val["eval_spikes_heldin"].shape[0]
    forward = np.concatenate(
        [train["train_spikes_heldin_forward"], train["train_spikes_heldout_forward"]], axis=2
    )
    behavior = train["train_behavior"]
    return SpikeData(
        spikes=np.concatenate([train["train_spikes_heldin"], val["eval_spikes_heldin"]]),
        heldout=np.concatenate([train["train_spikes_heldout"], val["eval_spikes_heldout"]]),
        forward=np.concatenate([forward, np.full((n_val,) + forward.shape[1:], np.nan)]),
        behavior=np.concatenate([behavior, np.full((n_val,) + behavior.shape[1:], np.nan)]),
        train_idx=np.arange(75),
        valid_idx=np.arange(75, 75 + n_val),
        bin_size=0.005,
    )


def simulated(seed=0, n_trials=30):
    """Held-in and held-out neurons driven by a shared slow latent; 5 forward bins."""
    rng = np.random.default_rng(seed)
    n_t, n_fwd = 40, 5
    phase = rng.uniform(0, 2 * np.pi, size=(n_trials, 1)) + np.linspace(0, 4, n_t + n_fwd)
    latent = np.stack([np.sin(phase), np.cos(phase)], axis=-1)
    rates = np.exp(latent @ rng.normal(0, 1.0, size=(2, 12)) - 0.3)
    counts = rng.poisson(rates).astype(float)
    return SpikeData(
        spikes=counts[:, :n_t, :9],
        heldout=counts[:, :n_t, 9:],
        forward=counts[:, n_t:],
        bin_size=0.01,
        train_idx=np.arange(n_trials - 8),
        valid_idx=np.arange(n_trials - 8, n_trials),
    )


# ---------------------------------------------------------------- smoothing
def test_gaussian_smooth_interior_matches_scipy_and_edges_keep_level():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(3, 60, 4)).astype(float)
    smooth = gaussian_smooth(counts, 3.0)
    reference = gaussian_filter1d(counts, 3.0, axis=1, mode="constant", truncate=4.0)
    # Away from the edges (> 4 sd) the truncated kernel is the whole kernel.
    np.testing.assert_allclose(smooth[:, 12:-12], reference[:, 12:-12], rtol=1e-10)
    np.testing.assert_allclose(gaussian_smooth(np.full((1, 10, 1), 2.0), 3.0), 2.0)
    impulse = np.zeros((1, 60, 1))
    impulse[0, 30, 0] = 1.0
    assert gaussian_smooth(impulse, 3.0).sum() == pytest.approx(1.0)  # mass kept in interior
    np.testing.assert_array_equal(gaussian_smooth(counts, 0.0), counts)


# ---------------------------------------------------------------- simulated data
def test_fit_predict_score_on_simulated_data():
    data = simulated()
    model = SpikeSmoothing(kernel_sd=0.05, alpha=0.1).fit(data)
    rates = model.predict_rates(data)
    assert rates.shape == data.recon_shape
    assert (rates >= MIN_RATE).all() and np.isfinite(rates).all()
    score = model.score(data, "valid")
    assert score > 0.05  # the shared latent makes held-out neurons predictable
    held = data.heldout[data.valid_idx]
    n_t, n_in = data.n_timesteps, data.n_neurons
    assert score == pytest.approx(bits_per_spike(held, rates[data.valid_idx, :n_t, n_in:]))
    # forward bins: the train mean count of each bin and neuron, the same for every trial
    np.testing.assert_allclose(
        rates[0, n_t:], np.maximum(data.forward[data.train_idx].mean(axis=0), MIN_RATE)
    )
    np.testing.assert_allclose(rates[-1, n_t:], rates[0, n_t:])
    # held-in window rates: the smoothed counts
    np.testing.assert_allclose(
        rates[:, :n_t, :n_in], np.maximum(gaussian_smooth(data.spikes, 5.0), MIN_RATE)
    )


def test_auto_kernel_and_params():
    data = simulated(seed=1)
    model = SpikeSmoothing(kernel_sd="auto", kernel_grid=(0.02, 0.08), n_folds=2).fit(data)
    assert set(model.cv_scores_) == {0.02, 0.08}
    assert model.kernel_sd_ == max(model.cv_scores_, key=model.cv_scores_.get)
    params = model.get_params()
    assert SpikeSmoothing(**params).get_params() == params
    assert params["kernel_sd"] == "auto"


def test_without_heldout_scores_heldin_bps():
    data = simulated(seed=2)
    data = data.replace(heldout=None, forward=None)
    model = SpikeSmoothing(kernel_sd=0.03).fit(data)
    rates = model.predict_rates(data)
    assert rates.shape == data.recon_shape
    trials = data.valid_idx
    assert model.score(data) == pytest.approx(bits_per_spike(data.spikes[trials], rates[trials]))


def test_errors():
    data = simulated()
    with pytest.raises(RuntimeError, match="fit"):
        SpikeSmoothing().predict_rates(data)
    with pytest.raises(ValueError, match="kernel_sd"):
        SpikeSmoothing(kernel_sd=-1.0).fit(data)
    with pytest.raises(ValueError, match="alpha"):
        SpikeSmoothing(alpha=np.nan).fit(data)
    model = SpikeSmoothing().fit(data)
    with pytest.raises(ValueError, match="n_heldout"):
        model.predict_rates(data.replace(heldout=None, forward=None))


# ---------------------------------------------------------------- real data
def test_real_data_valid_co_bps(mc_maze_dir):
    data = load_mc_maze_small(mc_maze_dir)
    model = SpikeSmoothing().fit(data)
    rates = model.predict_rates(data)
    assert rates.shape == (100, 180, 142)
    assert (rates > 0).all() and np.isfinite(rates).all()
    # Measured 0.1212 (70 ms kernel, alpha 0.1); the data README reports ~0.12.
    assert model.score(data, "valid") > 0.08
