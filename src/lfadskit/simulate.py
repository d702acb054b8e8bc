"""Simulated spiking data with known ground-truth rates.

Two seeded, deterministic simulators return a :class:`lfadskit.data.SpikeData` whose ``truth``
holds the true rates (expected spikes per bin) in the layout of ``data.recon``:

- :func:`lorenz`: the 3-D Lorenz system (sigma 10, rho 28, beta 8/3), normalized and read out
  by a random linear map to log-rates (the synthetic setup of the LFADS and coordinated-dropout
  papers).
- :func:`chaotic_rnn`: a random tanh network with gain 1.5 (chaotic), read out by a random
  projection through a scaled sigmoid (the synthetic setup of the LFADS paper).

Trials are grouped in conditions: all trials of one condition share the latent trajectory
(and so the true rates) and differ only in their Poisson spike counts. Extra neurons
(``n_heldout``) and extra bins after the window (``n_forward``) are simulated from the same
latents, so co-smoothing and forward-prediction metrics can be checked on simulated data.

Randomness comes from one ``seed``, split into independent streams (latent initial
conditions and dynamics weights, readout weights, Poisson noise, train/valid split), so that
e.g. changing ``n_trials_per_condition`` keeps the latent trajectories and readout unchanged,
and adding held-out neurons or forward bins keeps the true rates of the held-in neurons in the
input window unchanged (only the Poisson draws change).

Examples
--------
>>> from lfadskit.simulate import lorenz
>>> data = lorenz(n_conditions=4, n_trials_per_condition=3, seed=0)
>>> data.spikes.shape, data.truth.shape
((12, 50, 29), (12, 50, 29))
>>> data, latents = lorenz(n_conditions=4, n_trials_per_condition=3, return_latents=True)
>>> latents.shape
(12, 50, 3)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from lfadskit.data import SpikeData, make_split

__all__ = [
    "chaotic_rnn",
    "lorenz",
    "lorenz_vector_field",
    "rnn_vector_field",
    "rnn_weights",
    "stratified_split",
]

# Lorenz integration: RK4 with substeps of at most this many Lorenz time units. The error of
# RK4 scales with h**4, so 0.002 keeps the per-bin error far below 1e-6 of the state's scale.
LORENZ_MAX_STEP = 0.002
# Lorenz time units simulated (and discarded) before the first bin, so every condition starts
# on the attractor rather than on its random initial point.
LORENZ_BURN_IN = 5.0
# Chaotic RNN integration: RK4 substeps of at most tau / 40 (per-bin error < 1e-6).
RNN_STEPS_PER_TAU = 40


# ----------------------------------------------------------------------------- validation
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _check_positive(name: str, value, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be a finite number {bound}, got {value}")
    return value


def _check_common(
    n_neurons,
    n_conditions,
    n_trials_per_condition,
    n_timesteps,
    bin_size,
    n_heldout,
    n_forward,
    valid_fraction,
    seed,
) -> dict:
    params = {
        "n_neurons": _check_int("n_neurons", n_neurons, 1),
        "n_conditions": _check_int("n_conditions", n_conditions, 1),
        "n_trials_per_condition": _check_int("n_trials_per_condition", n_trials_per_condition, 1),
        "n_timesteps": _check_int("n_timesteps", n_timesteps, 1),
        "bin_size": _check_positive("bin_size", bin_size),
        "n_heldout": _check_int("n_heldout", n_heldout, 0),
        "n_forward": _check_int("n_forward", n_forward, 0),
        "seed": _check_int("seed", seed, 0),
    }
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, numbers.Real)
        or not (0.0 < valid_fraction < 1.0)
    ):
        raise ValueError(f"valid_fraction: must be a number in (0, 1), got {valid_fraction!r}")
    params["valid_fraction"] = float(valid_fraction)
    n_trials = params["n_conditions"] * params["n_trials_per_condition"]
    if n_trials < 4:
        raise ValueError(
            f"n_conditions * n_trials_per_condition: {n_trials} trials, need at least 4 "
            "(2 train and 2 valid); raise n_conditions or n_trials_per_condition"
        )
    return params


# ----------------------------------------------------------------------------- dynamics
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


def rnn_vector_field(state: np.ndarray, weights: np.ndarray, tau: float) -> np.ndarray:
    """Time derivative (per second) of the rate network ``tau dx/dt = -x + weights @ tanh(x)``.

    ``state`` is (..., n_generator); ``weights[i, j]`` is the weight from unit j to unit i.

    Examples
    --------
    >>> rnn_vector_field(np.zeros(2), np.eye(2), tau=0.5)
    array([0., 0.])
    """
    return (-state + np.tanh(state) @ weights.T) / tau


def _rk4(
    field: Callable[[np.ndarray], np.ndarray], state: np.ndarray, step: float, n_steps: int
) -> np.ndarray:
    """Advance ``state`` by ``n_steps`` classical Runge-Kutta steps of size ``step``."""
    for _ in range(n_steps):
        k1 = field(state)
        k2 = field(state + 0.5 * step * k1)
        k3 = field(state + 0.5 * step * k2)
        k4 = field(state + step * k3)
        state = state + (step / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return state


def _trajectory(
    field: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    bin_time: float,
    max_step: float,
    n_bins: int,
) -> np.ndarray:
    """States at the start of each of ``n_bins`` bins of length ``bin_time``.

    ``start`` is (n_conditions, n_dims); returns (n_conditions, n_bins, n_dims).
    """
    n_sub = max(1, math.ceil(bin_time / max_step - 1e-9))
    states = [start]
    for _ in range(n_bins - 1):
        states.append(_rk4(field, states[-1], bin_time / n_sub, n_sub))
    return np.stack(states, axis=1)


# ----------------------------------------------------------------------------- split
def stratified_split(
    conditions: np.ndarray, valid_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/valid split that spreads every condition across both splits.

    The number of valid trials is the one :func:`lfadskit.data.make_split` gives. Within each
    condition the trials are shuffled and spaced evenly on [0, 1); the trials with the highest
    positions go to valid. Each condition thus gets close to its proportional share of valid
    trials; when all conditions have the same number (>= 2) of trials and ``valid_fraction``
    < 1/2, every condition keeps at least one train trial.

    Parameters
    ----------
    conditions : array of int (n_trials,)
        Condition label of each trial.
    valid_fraction : float
        Fraction of trials in the valid split.
    seed : int
        Seed of the shuffles.

    Returns
    -------
    train_idx, valid_idx : ndarray of int64, sorted

    Examples
    --------
    >>> train, valid = stratified_split(np.repeat(np.arange(3), 5), 0.2, seed=0)
    >>> len(train), len(valid)
    (12, 3)
    """
    conditions = np.asarray(conditions)
    if conditions.ndim != 1:
        raise ValueError(f"conditions: expected one label per trial (1-D), got {conditions.shape}")
    n_trials = conditions.shape[0]
    n_valid = make_split(n_trials, valid_fraction, seed)[1].size
    rng = np.random.default_rng(seed)
    position = np.empty(n_trials)
    for label in np.unique(conditions):
        members = np.flatnonzero(conditions == label)
        # Random order within the condition; the jitter breaks ties between conditions.
        order = rng.permutation(members.size)
        position[members] = (order + rng.uniform(size=members.size)) / members.size
    ranked = np.argsort(-position, kind="stable")
    valid_idx = np.sort(ranked[:n_valid]).astype(np.int64)
    train_idx = np.sort(ranked[n_valid:]).astype(np.int64)
    return train_idx, valid_idx


# ----------------------------------------------------------------------------- assembly
def _assemble(
    truth_conditions: np.ndarray,
    params: dict,
    noise_rng: np.random.Generator,
    split_seed: int,
    name: str,
    meta: dict,
) -> SpikeData:
    """Repeat each condition's rates over its trials, draw Poisson counts, cut into fields.

    ``truth_conditions`` is (n_conditions, n_timesteps + n_forward, n_neurons + n_heldout) in
    expected spikes per bin.
    """
    n_per = params["n_trials_per_condition"]
    n_timesteps, n_neurons = params["n_timesteps"], params["n_neurons"]
    conditions = np.repeat(np.arange(params["n_conditions"], dtype=np.int64), n_per)
    # float32 first so the counts are drawn from exactly the rates stored in ``truth``.
    truth = truth_conditions[conditions].astype(np.float32)
    counts = noise_rng.poisson(truth.astype(np.float64)).astype(np.float32)
    train_idx, valid_idx = stratified_split(conditions, params["valid_fraction"], split_seed)
    window = counts[:, :n_timesteps]
    return SpikeData(
        spikes=window[:, :, :n_neurons],
        heldout=window[:, :, n_neurons:] if params["n_heldout"] else None,
        forward=counts[:, n_timesteps:] if params["n_forward"] else None,
        truth=truth,
        conditions=conditions,
        bin_size=params["bin_size"],
        train_idx=train_idx,
        valid_idx=valid_idx,
        name=name,
        meta={"simulator": name, **params, **meta},
    )


def _streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for latents, readout, Poisson noise (and a split seed)."""
    children = np.random.SeedSequence(seed).spawn(4)
    return [np.random.default_rng(child) for child in children]


# ----------------------------------------------------------------------------- Lorenz
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
    params = _check_common(
        n_neurons,
        n_conditions,
        n_trials_per_condition,
        n_timesteps,
        bin_size,
        n_heldout,
        n_forward,
        valid_fraction,
        seed,
    )
    params["base_rate"] = _check_positive("base_rate", base_rate)
    params["readout_scale"] = _check_positive("readout_scale", readout_scale, allow_zero=True)
    params["lorenz_dt"] = _check_positive("lorenz_dt", lorenz_dt)
    latent_rng, readout_rng, noise_rng, split_rng = _streams(params["seed"])

    start = latent_rng.normal(size=(params["n_conditions"], 3)) * 10.0 + np.array([0, 0, 25.0])
    n_burn = math.ceil(LORENZ_BURN_IN / LORENZ_MAX_STEP)
    start = _rk4(lorenz_vector_field, start, LORENZ_BURN_IN / n_burn, n_burn)
    n_bins = params["n_timesteps"] + params["n_forward"]
    raw = _trajectory(lorenz_vector_field, start, params["lorenz_dt"], LORENZ_MAX_STEP, n_bins)
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
    split_seed = int(split_rng.integers(2**31))
    data = _assemble(rates, params, noise_rng, split_seed, "lorenz", meta)
    if return_latents:
        return data, latents[data.conditions]
    return data


# ----------------------------------------------------------------------------- chaotic RNN
def _rnn_weights(rng: np.random.Generator, n_generator: int, gamma: float) -> np.ndarray:
    return rng.normal(size=(n_generator, n_generator)) * (gamma / math.sqrt(n_generator))


def rnn_weights(n_generator: int = 50, gamma: float = 1.5, seed: int = 0) -> np.ndarray:
    """The recurrent weights (n_generator, n_generator) that ``chaotic_rnn`` uses.

    ``weights[i, j]`` is the weight from unit j to unit i; they depend only on
    ``n_generator``, ``gamma`` and ``seed``. Use them with :func:`rnn_vector_field` to study
    the true dynamics.

    Examples
    --------
    >>> rnn_weights(n_generator=4, gamma=1.5, seed=0).shape
    (4, 4)
    """
    n_generator = _check_int("n_generator", n_generator, 1)
    gamma = _check_positive("gamma", gamma, allow_zero=True)
    latent_rng = _streams(_check_int("seed", seed, 0))[0]
    return _rnn_weights(latent_rng, n_generator, gamma)


def chaotic_rnn(
    n_neurons: int = 50,
    n_conditions: int = 130,
    n_trials_per_condition: int = 10,
    n_timesteps: int = 100,
    bin_size: float = 0.01,
    n_generator: int = 50,
    gamma: float = 1.5,
    tau: float = 0.025,
    max_rate: float = 30.0,
    n_heldout: int = 0,
    n_forward: int = 0,
    valid_fraction: float = 0.2,
    seed: int = 0,
    return_latents: bool = False,
):
    """Poisson spikes driven by a chaotic random rate network, with ground-truth rates.

    The generator ``tau dx/dt = -x + J tanh(x)`` has ``n_generator`` units and weights
    ``J ~ N(0, gamma**2 / n_generator)`` (gamma > 1 is chaotic). Each condition starts from
    ``x0 ~ N(0, 1)`` and is sampled at the start of every bin (RK4 with substeps of at most
    tau / 40). Each neuron n reads the unit activities through a random vector
    ``w_n ~ N(0, 1 / n_generator)``; its rate in expected spikes per bin is::

        rates[t, n] = max_rate * bin_size * (1 + tanh(tanh(x[t]) @ w_n)) / 2

    so rates lie in (0, max_rate) Hz; with the defaults the mean is about max_rate / 2 (15 Hz)
    and rates span under 1 Hz to near 30 Hz. The defaults follow the LFADS paper (50 units,
    gamma 1.5, tau 25 ms, 1 s trials of 10 ms bins, 130 conditions, 30 Hz maximum).

    Parameters
    ----------
    n_neurons : int
        Held-in neurons (returned as ``spikes``).
    n_conditions : int
        Distinct generator trajectories.
    n_trials_per_condition : int
        Trials per condition; they share the rates and differ in Poisson noise.
    n_timesteps : int
        Bins per trial in the input window.
    bin_size : float
        Bin width in seconds (also the sampling interval of the generator).
    n_generator : int
        Units of the generator network.
    gamma : float
        Gain of the recurrent weights.
    tau : float
        Time constant of the units in seconds.
    max_rate : float
        Largest possible firing rate in Hz.
    n_heldout, n_forward, valid_fraction, seed, return_latents
        As in :func:`lorenz`.

    Returns
    -------
    data : SpikeData
        As in :func:`lorenz`.
    latents : ndarray (n_trials, n_timesteps + n_forward, n_generator)
        The generator state ``x`` (before tanh); only with ``return_latents=True``.

    Examples
    --------
    >>> data = chaotic_rnn(n_neurons=10, n_conditions=4, n_trials_per_condition=2,
    ...                    n_timesteps=20)
    >>> data.spikes.shape
    (8, 20, 10)
    """
    params = _check_common(
        n_neurons,
        n_conditions,
        n_trials_per_condition,
        n_timesteps,
        bin_size,
        n_heldout,
        n_forward,
        valid_fraction,
        seed,
    )
    params["n_generator"] = _check_int("n_generator", n_generator, 1)
    params["gamma"] = _check_positive("gamma", gamma, allow_zero=True)
    params["tau"] = _check_positive("tau", tau)
    params["max_rate"] = _check_positive("max_rate", max_rate)
    latent_rng, readout_rng, noise_rng, split_rng = _streams(params["seed"])

    n_gen = params["n_generator"]
    weights = _rnn_weights(latent_rng, n_gen, params["gamma"])
    start = latent_rng.normal(size=(params["n_conditions"], n_gen))
    n_bins = params["n_timesteps"] + params["n_forward"]
    latents = _trajectory(
        lambda state: rnn_vector_field(state, weights, params["tau"]),
        start,
        params["bin_size"],
        params["tau"] / RNN_STEPS_PER_TAU,
        n_bins,
    )

    n_out = params["n_neurons"] + params["n_heldout"]
    readout = readout_rng.normal(size=(n_out, n_gen)).T / math.sqrt(n_gen)
    drive = np.tanh(latents) @ readout
    # (1 + tanh(d)) / 2 written as the logistic of 2d, which stays > 0 for very negative d.
    rates = params["max_rate"] * params["bin_size"] * np.exp(-np.logaddexp(0.0, -2.0 * drive))

    split_seed = int(split_rng.integers(2**31))
    data = _assemble(rates, params, noise_rng, split_seed, "chaotic_rnn", {})
    if return_latents:
        return data, latents[data.conditions]
    return data
