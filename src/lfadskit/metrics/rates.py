"""Scores of predicted rates against counts (Poisson NLL, bits per spike) and true rates (R²).

Also holds the argument checks of rates and counts that the other metric modules share.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = [
    "ZERO_RATE",
    "bits_per_spike",
    "co_bps",
    "fp_bps",
    "poisson_nll",
    "poisson_nll_log_rates",
    "rate_r2",
]

#: Value that replaces a predicted rate of exactly zero before its log is taken.
ZERO_RATE = 1e-9


# ---------------------------------------------------------------- validation
def check_rates(name: str, rates, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(rates, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name}: shape {arr.shape} does not match the counts' shape {shape}")
    if not np.isfinite(arr).all():
        raise ValueError(
            f"{name}: contains NaN or infinite values; predictions must be finite everywhere "
            "(mask unobserved elements with NaN in the counts instead)"
        )
    if (arr < 0).any():
        raise ValueError(f"{name}: contains negative rates (min {arr.min():g}); rates are >= 0")
    return arr


def check_counts(name: str, counts) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim < 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name}: contains infinite values; mark unobserved elements with NaN")
    return arr


# ---------------------------------------------------------------- likelihoods
def _nll_terms(counts: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Per-element Poisson NLL ``r - k log r + log k!`` of the observed elements (1-D)."""
    observed = ~np.isnan(counts)
    k = counts[observed]
    r = np.where(rates[observed] == 0, ZERO_RATE, rates[observed])
    return r - k * np.log(r) + gammaln(k + 1.0)


def poisson_nll(counts, rates, reduction: str = "mean") -> float:
    """Poisson negative log-likelihood of counts under rates, including ``log k!``.

    ``NLL = r - k log r + log(k!)`` per element, averaged (``"mean"``) or summed (``"sum"``)
    over the observed (non-NaN) elements of ``counts``.

    Parameters
    ----------
    counts : array (any shape)
        Spike counts; NaN marks unobserved elements, which are skipped.
    rates : array, same shape
        Predicted expected spikes per bin; finite and >= 0 (a zero becomes 1e-9).
    reduction : {"mean", "sum"}

    Returns
    -------
    float

    Examples
    --------
    >>> round(poisson_nll(np.array([1.0, np.nan]), np.array([1.0, 5.0])), 6)
    1.0
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    counts = check_counts("counts", counts)
    rates = check_rates("rates", rates, counts.shape)
    terms = _nll_terms(counts, rates)
    if terms.size == 0:
        raise ValueError("counts: every element is NaN; there is nothing to score")
    return float(terms.sum() if reduction == "sum" else terms.mean())


def poisson_nll_log_rates(counts, log_rates, reduction: str = "mean") -> float:
    """Poisson NLL with the prediction given as natural-log rates.

    Same as :func:`poisson_nll` with ``rates = exp(log_rates)``; the NLL is computed in the
    log domain (``exp(l) - k l + log k!``), so very negative log-rates stay exact.

    Examples
    --------
    >>> round(poisson_nll_log_rates(np.array([1.0]), np.array([0.0])), 6)
    1.0
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    counts = check_counts("counts", counts)
    log_rates = np.asarray(log_rates, dtype=np.float64)
    if log_rates.shape != counts.shape:
        raise ValueError(
            f"log_rates: shape {log_rates.shape} does not match the counts' shape {counts.shape}"
        )
    if not np.isfinite(log_rates).all():
        raise ValueError("log_rates: contains NaN or infinite values; predictions must be finite")
    observed = ~np.isnan(counts)
    if not observed.any():
        raise ValueError("counts: every element is NaN; there is nothing to score")
    k, lr = counts[observed], log_rates[observed]
    terms = np.exp(lr) - k * lr + gammaln(k + 1.0)
    return float(terms.sum() if reduction == "sum" else terms.mean())


def bits_per_spike(counts, rates) -> float:
    """Bits per spike of rates against a per-neuron mean-rate null model.

    ``bps = (NLL_null - NLL_model) / n_spikes / ln 2`` with summed NLLs over the observed
    elements, ``n_spikes`` the total observed count and the null model predicting, for each
    neuron (last axis), its mean count over all observed trials and bins of ``counts``.
    Matches ``nlb_tools.evaluation.bits_per_spike``. Positive: better than the null model.

    Parameters
    ----------
    counts : array (..., n_neurons)
        Spike counts; NaN marks unobserved elements.
    rates : array, same shape
        Predicted expected spikes per bin.

    Returns
    -------
    float
        NaN when there are no observed spikes.

    Examples
    --------
    >>> counts = np.array([[[1.0], [0.0]]])
    >>> round(bits_per_spike(counts, np.array([[[0.5], [0.5]]])), 6)  # the null model
    0.0
    """
    counts = check_counts("counts", counts)
    rates = check_rates("rates", rates, counts.shape)
    n_spikes = np.nansum(counts)
    if n_spikes == 0:
        return float("nan")
    null_rates = np.nanmean(counts, axis=tuple(range(counts.ndim - 1)), keepdims=True)
    # Neurons with no observed element have a NaN mean; they have no observed terms either.
    null_rates = np.broadcast_to(np.nan_to_num(null_rates, nan=1.0), counts.shape)
    nll_null = _nll_terms(counts, null_rates).sum()
    nll_model = _nll_terms(counts, rates).sum()
    return float((nll_null - nll_model) / n_spikes / np.log(2))


def co_bps(heldout_counts, heldout_rates) -> float:
    """Co-smoothing bits per spike: :func:`bits_per_spike` on the held-out neurons.

    ``heldout_counts`` and ``heldout_rates`` are (n_trials, n_timesteps, n_heldout): the
    neurons never given to the model, predicted from the held-in ones.

    Examples
    --------
    >>> round(co_bps(np.array([[[2.0], [0.0]]]), np.array([[[1.0], [1.0]]])), 6)
    0.0
    """
    return bits_per_spike(heldout_counts, heldout_rates)


def fp_bps(forward_counts, forward_rates) -> float:
    """Forward-prediction bits per spike: :func:`bits_per_spike` on the forward bins.

    ``forward_counts`` and ``forward_rates`` are (n_trials, n_forward, n_neurons + n_heldout):
    the bins after the input window, which the model extrapolates.

    Examples
    --------
    >>> round(fp_bps(np.array([[[1.0], [3.0]]]), np.array([[[2.0], [2.0]]])), 6)
    0.0
    """
    return bits_per_spike(forward_counts, forward_rates)


# ---------------------------------------------------------------- rates vs truth
def _r2(truth: np.ndarray, pred: np.ndarray, axis) -> np.ndarray:
    """1 - SSE/SST along ``axis``; scikit-learn's convention when SST is 0 (1 if exact, else 0)."""
    sse = ((truth - pred) ** 2).sum(axis=axis)
    sst = ((truth - truth.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis)
    safe = np.where(sst > 0, sst, 1.0)
    return np.where(sst > 0, 1.0 - sse / safe, np.where(sse == 0, 1.0, 0.0))


def rate_r2(truth_rates, rates, per_neuron: bool = False):
    """Coefficient of determination of predicted rates against ground-truth rates.

    ``R² = 1 - sum((truth - rates)²) / sum((truth - mean(truth))²)``, computed over all
    trials x time x neurons flattened together (one mean), or for each neuron over its
    trials x time (``per_neuron=True``). A constant truth scores 1 when matched exactly and
    0 otherwise (scikit-learn's convention).

    Parameters
    ----------
    truth_rates : array (n_trials, n_timesteps, n_neurons)
    rates : array, same shape
    per_neuron : bool

    Returns
    -------
    float, or array (n_neurons,) when ``per_neuron``

    Examples
    --------
    >>> truth = np.array([[[1.0, 0.0], [3.0, 2.0]]])
    >>> rate_r2(truth, truth)
    1.0
    >>> rate_r2(truth, truth + np.array([0.0, 2.0]), per_neuron=True).tolist()
    [1.0, -3.0]
    """
    truth = check_rates("truth_rates", truth_rates)
    rates = check_rates("rates", rates, truth.shape)
    if truth.ndim != 3:
        raise ValueError(
            f"truth_rates: expected 3 dimensions (trial x time x neuron), got {truth.shape}"
        )
    if per_neuron:
        n_neurons = truth.shape[2]
        return _r2(truth.reshape(-1, n_neurons), rates.reshape(-1, n_neurons), axis=0)
    return float(_r2(truth.ravel(), rates.ravel(), axis=0))
