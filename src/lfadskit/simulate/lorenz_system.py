"""The Lorenz simulator: Poisson spikes read out from the 3-D Lorenz system."""

from __future__ import annotations

import math

import numpy as np

from lfadskit.simulate.common import (
    assemble,
    check_positive,
    check_rest,
    check_shape,
    rk4,
    streams,
    trajectory,
)

__all__ = ["lorenz", "lorenz_vector_field"]

# Lorenz integration: RK4 with substeps of at most this many Lorenz time units. The error of
# RK4 scales with h**4, so 0.002 keeps the per-bin error far below 1e-6 of the state's scale.
LORENZ_MAX_STEP = 0.002
# Lorenz time units simulated (and discarded) before the first bin, so every condition starts
# on the attractor rather than on its random initial point.
LORENZ_BURN_IN = 5.0


def lorenz_vector_field(
    state: np.ndarray, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0
) -> np.ndarray:
    """Time derivative of the Lorenz system at ``state`` (..., 3), in Lorenz time units.

    Examples
    --------
    >>> lorenz_vector_field(np.array([1.0, 1.0, 1.0])).round(3)
    array([ 0.   , 26.   , -1.667])
    """
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    return np.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], axis=-1)


def lorenz(
    n_neurons: int = 29,
    n_conditions: int = 65,
    n_trials_per_condition: int = 20,
    n_timesteps: int = 50,
    bin_size: float = 0.02,
    base_rate: float = 5.0,
    readout_scale: float = 0.75,
    lorenz_dt: float = 0.02,
    n_heldout: int = 0,
    n_forward: int = 0,
    valid_fraction: float = 0.2,
    seed: int = 0,
    return_latents: bool = False,
):
    """Poisson spikes driven by the Lorenz system, with ground-truth rates.

    Each condition starts from a random point (x, y ~ N(0, 10**2), z ~ N(25, 10**2)), is run
    for 5 Lorenz time units to land on the attractor, then is sampled once per bin, bins
    ``lorenz_dt`` time units apart (RK4 with substeps of at most 0.002). With the defaults a
    trial of 50 bins spans 1 time unit, about one and a half loops around a wing. The 3-D state
    is normalized to zero mean and unit variance per dimension over all conditions and the
    ``n_timesteps`` bins of the input window (``latents``). Each neuron n has a random
    readout direction ``w_n`` (uniform on the sphere) of length ``readout_scale``; its rate in
    expected spikes per bin is::

        rates[t, n] = base_rate * bin_size * exp(latents[t] @ w_n)

    With the defaults (``base_rate`` 5 Hz, ``readout_scale`` 0.75, 20 ms bins) the mean rate
    is about 6.5 Hz (per neuron 4-10 Hz), the median 5 Hz, and the largest rate stays under
    about 95 Hz: the normalized state has norm < ~3.9, so the exp(...) factor is below
    exp(0.75 * 3.9) ~ 19 (measured over seeds 0-19: maxima 58-88 Hz). Counts are Poisson
    draws from the rates.

    Parameters
    ----------
    n_neurons : int
        Held-in neurons (returned as ``spikes``).
    n_conditions : int
        Distinct latent trajectories.
    n_trials_per_condition : int
        Trials per condition; they share the rates and differ in Poisson noise.
    n_timesteps : int
        Bins per trial in the input window.
    bin_size : float
        Bin width in seconds (sets the expected spikes per bin).
    base_rate : float
        Baseline firing rate in Hz (rate when the normalized state is at its mean).
    readout_scale : float
        Length of each neuron's readout vector: the log-rate modulation depth.
    lorenz_dt : float
        Lorenz time units per bin (trial speed).
    n_heldout : int
        Extra neurons returned as ``heldout`` (never input; for co-smoothing).
    n_forward : int
        Extra bins after the window, returned as ``forward`` (for forward prediction).
    valid_fraction : float
        Fraction of trials in the valid split (stratified by condition, see
        :func:`stratified_split`).
    seed : int
        Seed of every random choice; the same seed gives identical data.
    return_latents : bool
        Also return the normalized latent state of each trial.

    Returns
    -------
    data : SpikeData
        ``truth`` (n_trials, n_timesteps + n_forward, n_neurons + n_heldout) in spikes per bin;
        ``conditions`` the condition of each trial (trials ordered by condition); ``meta`` the
        simulator name, every parameter, and ``latent_mean`` / ``latent_std`` (the
        normalization: raw Lorenz state = latents * latent_std + latent_mean).
    latents : ndarray (n_trials, n_timesteps + n_forward, 3)
        Only with ``return_latents=True``.

    Examples
    --------
    >>> data = lorenz(n_conditions=5, n_trials_per_condition=4, n_heldout=3, n_forward=5)
    >>> data.spikes.shape, data.heldout.shape, data.forward.shape
    ((20, 50, 29), (20, 50, 3), (20, 5, 32))
    """
    params = check_shape(n_neurons, n_conditions, n_trials_per_condition, n_timesteps, bin_size)
    params = check_rest(params, n_heldout, n_forward, valid_fraction, seed)
    params["base_rate"] = check_positive("base_rate", base_rate)
    params["readout_scale"] = check_positive("readout_scale", readout_scale, allow_zero=True)
    params["lorenz_dt"] = check_positive("lorenz_dt", lorenz_dt)
    rngs = streams(params["seed"])
    latent_rng, readout_rng = rngs[0], rngs[1]

    start = latent_rng.normal(size=(params["n_conditions"], 3)) * 10.0 + np.array([0, 0, 25.0])
    n_burn = math.ceil(LORENZ_BURN_IN / LORENZ_MAX_STEP)
    start = rk4(lorenz_vector_field, start, LORENZ_BURN_IN / n_burn, n_burn)
    n_bins = params["n_timesteps"] + params["n_forward"]
    raw = trajectory(lorenz_vector_field, start, params["lorenz_dt"], LORENZ_MAX_STEP, n_bins)
    # Statistics of the input window only, so adding forward bins leaves it unchanged.
    window = raw[:, : params["n_timesteps"]]
    mean, std = window.mean(axis=(0, 1)), window.std(axis=(0, 1))
    std = np.where(std > 0, std, 1.0)  # a single bin of a single condition has no spread
    latents = (raw - mean) / std  # (n_conditions, n_bins, 3)

    n_out = params["n_neurons"] + params["n_heldout"]
    # Drawn neuron by neuron, so adding held-out neurons leaves the held-in ones unchanged.
    directions = readout_rng.normal(size=(n_out, 3)).T
    readout = directions / np.linalg.norm(directions, axis=0) * params["readout_scale"]
    log_rates = np.log(params["base_rate"] * params["bin_size"]) + latents @ readout
    rates = np.exp(log_rates)

    meta = {"latent_mean": mean.tolist(), "latent_std": std.tolist()}
    return assemble(rates, latents, params, rngs, "lorenz", meta, return_latents)
