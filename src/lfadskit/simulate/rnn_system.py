"""The chaotic RNN simulator: Poisson spikes read out from a random chaotic rate network."""

from __future__ import annotations

import math

import numpy as np

from lfadskit.simulate.common import (
    assemble,
    check_int,
    check_positive,
    check_rest,
    check_shape,
    streams,
    trajectory,
)

__all__ = ["chaotic_rnn", "rnn_vector_field", "rnn_weights"]

# Chaotic RNN integration: RK4 substeps of at most tau / 40 (per-bin error < 1e-6).
RNN_STEPS_PER_TAU = 40


def rnn_vector_field(state: np.ndarray, weights: np.ndarray, tau: float) -> np.ndarray:
    """Time derivative (per second) of the rate network ``tau dx/dt = -x + weights @ tanh(x)``.

    ``state`` is (..., n_generator); ``weights[i, j]`` is the weight from unit j to unit i.

    Examples
    --------
    >>> rnn_vector_field(np.zeros(2), np.eye(2), tau=0.5)
    array([0., 0.])
    """
    return (-state + np.tanh(state) @ weights.T) / tau


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
    n_generator = check_int("n_generator", n_generator, 1)
    gamma = check_positive("gamma", gamma, allow_zero=True)
    latent_rng = streams(check_int("seed", seed, 0))[0]
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
    n_neurons, n_trials_per_condition, n_timesteps
        As in :func:`~lfadskit.simulate.lorenz`.
    n_conditions : int
        Distinct generator trajectories.
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
        As in :func:`~lfadskit.simulate.lorenz`.

    Returns
    -------
    data : SpikeData
        As in :func:`~lfadskit.simulate.lorenz`.
    latents : ndarray (n_trials, n_timesteps + n_forward, n_generator)
        The generator state ``x`` (before tanh); only with ``return_latents=True``.

    Examples
    --------
    >>> data = chaotic_rnn(n_neurons=10, n_conditions=4, n_trials_per_condition=2,
    ...                    n_timesteps=20)
    >>> data.spikes.shape
    (8, 20, 10)
    """
    params = check_shape(n_neurons, n_conditions, n_trials_per_condition, n_timesteps, bin_size)
    params = check_rest(params, n_heldout, n_forward, valid_fraction, seed)
    params["n_generator"] = check_int("n_generator", n_generator, 1)
    params["gamma"] = check_positive("gamma", gamma, allow_zero=True)
    params["tau"] = check_positive("tau", tau)
    params["max_rate"] = check_positive("max_rate", max_rate)
    rngs = streams(params["seed"])
    latent_rng, readout_rng = rngs[0], rngs[1]

    n_gen = params["n_generator"]
    weights = _rnn_weights(latent_rng, n_gen, params["gamma"])
    start = latent_rng.normal(size=(params["n_conditions"], n_gen))
    n_bins = params["n_timesteps"] + params["n_forward"]
    latents = trajectory(
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

    return assemble(rates, latents, params, rngs, "chaotic_rnn", {}, return_latents)
