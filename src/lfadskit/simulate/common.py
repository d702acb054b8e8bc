"""Pieces shared by the simulators: argument checks, RK4 integration, the split, assembly.

Internal to :mod:`lfadskit.simulate`; :func:`stratified_split` is re-exported there.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from lfadskit.data import SpikeData, make_split

__all__ = ["stratified_split"]


# ----------------------------------------------------------------------------- validation
def check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be a finite number {bound}, got {value}")
    return value


def check_shape(n_neurons, n_conditions, n_trials_per_condition, n_timesteps, bin_size) -> dict:
    """Checked sizes of the simulated window, as the first entries of the ``params`` dict."""
    return {
        "n_neurons": check_int("n_neurons", n_neurons, 1),
        "n_conditions": check_int("n_conditions", n_conditions, 1),
        "n_trials_per_condition": check_int("n_trials_per_condition", n_trials_per_condition, 1),
        "n_timesteps": check_int("n_timesteps", n_timesteps, 1),
        "bin_size": check_positive("bin_size", bin_size),
    }


def check_rest(params: dict, n_heldout, n_forward, valid_fraction, seed) -> dict:
    """Add the checked held-out/forward sizes, seed and valid fraction to ``params``.

    Separate from :func:`check_shape` only so that both simulators call them in one line each;
    the order of the checks (and so of the keys in ``meta``) is that of the signatures.
    """
    params = {
        **params,
        "n_heldout": check_int("n_heldout", n_heldout, 0),
        "n_forward": check_int("n_forward", n_forward, 0),
        "seed": check_int("seed", seed, 0),
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


# ----------------------------------------------------------------------------- integration
def rk4(
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


def trajectory(
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
        states.append(rk4(field, states[-1], bin_time / n_sub, n_sub))
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
def streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for latents, readout, Poisson noise and the split seed."""
    children = np.random.SeedSequence(seed).spawn(4)
    return [np.random.default_rng(child) for child in children]


def assemble(
    truth_conditions: np.ndarray,
    latents: np.ndarray,
    params: dict,
    rngs: list[np.random.Generator],
    name: str,
    meta: dict,
    return_latents: bool,
):
    """Repeat each condition's rates over its trials, draw Poisson counts, cut into fields.

    ``truth_conditions`` is (n_conditions, n_timesteps + n_forward, n_neurons + n_heldout) in
    expected spikes per bin and ``latents`` (n_conditions, n_timesteps + n_forward, n_latent);
    ``rngs`` are the four :func:`streams`, of which the noise and split ones are used here.
    Returns the :class:`SpikeData`, and the latents of each trial if ``return_latents``.
    """
    noise_rng, split_rng = rngs[2], rngs[3]
    split_seed = int(split_rng.integers(2**31))
    n_per = params["n_trials_per_condition"]
    n_timesteps, n_neurons = params["n_timesteps"], params["n_neurons"]
    conditions = np.repeat(np.arange(params["n_conditions"], dtype=np.int64), n_per)
    # float32 first so the counts are drawn from exactly the rates stored in ``truth``.
    truth = truth_conditions[conditions].astype(np.float32)
    counts = noise_rng.poisson(truth.astype(np.float64)).astype(np.float32)
    train_idx, valid_idx = stratified_split(conditions, params["valid_fraction"], split_seed)
    window = counts[:, :n_timesteps]
    data = SpikeData(
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
    if return_latents:
        return data, latents[conditions]
    return data
