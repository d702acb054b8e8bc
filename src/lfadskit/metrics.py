"""Metrics of predicted firing rates, with the Neural Latents Benchmark definitions.

Pure numpy functions. Arguments come counts (or the truth) first, then the prediction, and every
name says whether it holds ``rates`` (expected spikes per bin) or ``log_rates``.

NaN in a counts array marks an unobserved element: it is skipped, as ``nlb_tools`` does. NaN,
infinite or negative *rates* are errors. A rate of exactly zero is replaced by 1e-9 before
taking its log (the benchmark's convention), so a zero prediction gives a large but finite NLL.

Examples
--------
>>> import numpy as np
>>> counts = np.array([[[0.0, 1.0], [2.0, 1.0]]])
>>> rates = np.full_like(counts, 1.0)
>>> round(poisson_nll(counts, rates), 4)
1.1733
>>> round(bits_per_spike(counts, rates), 4)
0.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import gammaln
from sklearn.metrics import r2_score

__all__ = [
    "DEFAULT_ALPHAS",
    "ZERO_RATE",
    "bits_per_spike",
    "co_bps",
    "condition_psth",
    "fp_bps",
    "poisson_nll",
    "poisson_nll_log_rates",
    "psth_r2",
    "rate_r2",
    "velocity_r2",
    "velocity_r2_cv",
]

#: Ridge penalties searched by the velocity decoders (the benchmark's grid).
DEFAULT_ALPHAS = np.logspace(-4, 0, 9)
#: Value that replaces a predicted rate of exactly zero before its log is taken.
ZERO_RATE = 1e-9


# ---------------------------------------------------------------- validation
def _check_rates(name: str, rates, shape: tuple[int, ...] | None = None) -> np.ndarray:
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


def _check_counts(name: str, counts) -> np.ndarray:
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
    counts = _check_counts("counts", counts)
    rates = _check_rates("rates", rates, counts.shape)
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
    counts = _check_counts("counts", counts)
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
    counts = _check_counts("counts", counts)
    rates = _check_rates("rates", rates, counts.shape)
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

    Examples
    --------
    >>> round(co_bps(np.array([[[2.0], [0.0]]]), np.array([[[1.0], [1.0]]])), 6)
    0.0
    """
    return bits_per_spike(heldout_counts, heldout_rates)


def fp_bps(forward_counts, forward_rates) -> float:
    """Forward-prediction bits per spike: :func:`bits_per_spike` on the forward bins.

    Examples
    --------
    >>> round(fp_bps(np.array([[[2.0], [0.0]]]), np.array([[[1.0], [1.0]]])), 6)
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
    truth = _check_rates("truth_rates", truth_rates)
    rates = _check_rates("rates", rates, truth.shape)
    if truth.ndim != 3:
        raise ValueError(
            f"truth_rates: expected 3 dimensions (trial x time x neuron), got {truth.shape}"
        )
    if per_neuron:
        n_neurons = truth.shape[2]
        return _r2(truth.reshape(-1, n_neurons), rates.reshape(-1, n_neurons), axis=0)
    return float(_r2(truth.ravel(), rates.ravel(), axis=0))


# ---------------------------------------------------------------- velocity decoding
def _flatten_samples(name: str, arr, n_dims: int | None = None) -> np.ndarray:
    """(n_trials, n_timesteps, n) -> (n_trials * n_timesteps, n); 2-D input passes through."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.reshape(-1, arr.shape[2])
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected (n_trials, n_timesteps, n) or (n_samples, n), got {arr.shape}"
        )
    return arr


def _decoder_pairs(rates_name, rates, behavior_name, behavior):
    x = _flatten_samples(rates_name, rates)
    y = _flatten_samples(behavior_name, behavior)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{rates_name} and {behavior_name}: {x.shape[0]} vs {y.shape[0]} samples; they "
            "must cover the same trials and bins"
        )
    keep = ~np.isnan(y).any(axis=1)  # unobserved behavior: drop those samples
    x, y = x[keep], y[keep]
    _check_rates(rates_name, x)
    return x, y


class _RidgePath:
    """Ridge regressions with an intercept for many penalties from one eigendecomposition.

    Built from the sufficient statistics of the samples (count, sums, cross products). With
    ``Xc^T Xc = V diag(e) V^T`` for centered inputs the ridge weights are
    ``V diag(1 / (e + alpha)) V^T Xc^T yc`` (the solution of ``sklearn.linear_model.Ridge``),
    so each extra alpha costs one small matrix product instead of a new fit.
    """

    def __init__(self, stats: tuple):
        n, sum_x, sum_y, xtx, xty = stats
        self.x_mean = sum_x / n
        self.y_mean = sum_y / n
        gram = xtx - n * np.outer(self.x_mean, self.x_mean)  # Xc^T Xc
        cross = xty - n * np.outer(self.x_mean, self.y_mean)  # Xc^T yc
        self.eig, self.vecs = np.linalg.eigh(gram)
        self.eig = np.maximum(self.eig, 0.0)  # round-off can make a zero eigenvalue negative
        self.vty = self.vecs.T @ cross

    def predict(self, x: np.ndarray, alpha: float) -> np.ndarray:
        coef = self.vecs @ (self.vty / (self.eig + alpha)[:, None])
        return (x - self.x_mean) @ coef + self.y_mean


def _stats(x: np.ndarray, y: np.ndarray) -> tuple:
    return (x.shape[0], x.sum(axis=0), y.sum(axis=0), x.T @ x, x.T @ y)


def _fit_ridge_cv(x: np.ndarray, y: np.ndarray, alphas) -> tuple[_RidgePath, float]:
    """Pick alpha by 5-fold unshuffled CV on mean R², then refit on all samples.

    The NLB recipe (``GridSearchCV(Ridge(), ...)`` with its defaults): contiguous folds, each
    fold scored by R² averaged uniformly over outputs, the alpha with the best mean score
    (the first on ties) refit on everything. Each fold's statistics are computed once and the
    training statistics are the total minus the fold's, so the search costs about one pass.
    """
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or alphas.size == 0 or (alphas < 0).any():
        raise ValueError(f"alphas: expected a non-empty 1-D array of penalties >= 0, got {alphas}")
    folds = np.array_split(np.arange(x.shape[0]), 5)
    fold_stats = [_stats(x[fold], y[fold]) for fold in folds]
    total = tuple(sum(parts) for parts in zip(*fold_stats, strict=True))
    scores = np.zeros(alphas.size)
    for fold, stats in zip(folds, fold_stats, strict=True):
        path = _RidgePath(tuple(t - f for t, f in zip(total, stats, strict=True)))
        for i, alpha in enumerate(alphas):
            scores[i] += r2_score(y[fold], path.predict(x[fold], alpha)) / 5
    return _RidgePath(total), float(alphas[int(np.argmax(scores))])


def velocity_r2(
    train_rates,
    train_behavior,
    eval_rates,
    eval_behavior,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> float:
    """R² of a ridge decoder from rates to behavior, fit on train and scored on eval data.

    Rates and behavior are flattened over trials x time into samples. The ridge penalty is
    chosen from ``alphas`` by 5-fold cross-validation (contiguous, unshuffled folds of the
    flattened train samples, scored by R²), the decoder is refit on all train samples, and the
    eval R² is averaged uniformly over behavior dimensions. Samples with NaN behavior are
    dropped. Matches ``nlb_tools.evaluation.fit_and_eval_decoder``.

    Parameters
    ----------
    train_rates : array (n_trials, n_timesteps, n_neurons) or (n_samples, n_neurons)
    train_behavior : array (n_trials, n_timesteps, n_behavior) or (n_samples, n_behavior)
    eval_rates, eval_behavior : arrays laid out the same way
    alphas : sequence of float
        Ridge penalties to search.

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.poisson(2.0, size=(20, 30, 4)).astype(float)
    >>> behavior = rates @ np.array([[1.0], [-1.0], [0.5], [0.0]])
    >>> velocity_r2(rates[:15], behavior[:15], rates[15:], behavior[15:]) > 0.99
    True
    """
    x_train, y_train = _decoder_pairs("train_rates", train_rates, "train_behavior", train_behavior)
    x_eval, y_eval = _decoder_pairs("eval_rates", eval_rates, "eval_behavior", eval_behavior)
    if x_train.shape[0] < 5 or x_eval.shape[0] < 2:
        raise ValueError(
            f"train_behavior/eval_behavior: {x_train.shape[0]} train and {x_eval.shape[0]} eval "
            "observed samples; need at least 5 and 2"
        )
    decoder, alpha = _fit_ridge_cv(x_train, y_train, alphas)
    return float(r2_score(y_eval, decoder.predict(x_eval, alpha)))


def velocity_r2_cv(
    rates,
    behavior,
    n_folds: int = 5,
    seed: int = 0,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> float:
    """Trial-wise k-fold velocity R², for data whose evaluation trials have no behavior.

    Trials with any NaN behavior are excluded. The rest are shuffled (``seed``) into
    ``n_folds`` folds; for each fold a decoder is fit on the other trials exactly as in
    :func:`velocity_r2` (with its own inner alpha search) and predicts the fold's trials.
    The returned R² is computed once over **all pooled held-out predictions** (uniform average
    over behavior dimensions), not averaged over folds.

    Parameters
    ----------
    rates : array (n_trials, n_timesteps, n_neurons)
    behavior : array (n_trials, n_timesteps, n_behavior)
    n_folds : int
        Number of trial folds (at least 2, at most the number of usable trials).
    seed : int
        Seed of the trial shuffle.
    alphas : sequence of float

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.poisson(2.0, size=(20, 30, 4)).astype(float)
    >>> behavior = rates @ np.array([[1.0], [-1.0], [0.5], [0.0]])
    >>> velocity_r2_cv(rates, behavior) > 0.99
    True
    """
    rates = np.asarray(rates, dtype=np.float64)
    behavior = np.asarray(behavior, dtype=np.float64)
    if rates.ndim != 3 or behavior.ndim != 3 or rates.shape[:2] != behavior.shape[:2]:
        raise ValueError(
            f"rates {rates.shape} and behavior {behavior.shape}: expected (n_trials, "
            "n_timesteps, n) arrays with the same trials and bins"
        )
    _check_rates("rates", rates)
    usable = np.flatnonzero(~np.isnan(behavior).any(axis=(1, 2)))
    if not 2 <= n_folds <= usable.size:
        raise ValueError(
            f"n_folds: {n_folds} folds for {usable.size} trials with behavior; need "
            "2 <= n_folds <= number of trials"
        )
    order = np.random.default_rng(seed).permutation(usable)
    folds = np.array_split(order, n_folds)
    truth, pred = [], []
    for fold in folds:
        rest = np.setdiff1d(order, fold)
        x_fit = rates[rest].reshape(-1, rates.shape[2])
        y_fit = behavior[rest].reshape(-1, behavior.shape[2])
        decoder, alpha = _fit_ridge_cv(x_fit, y_fit, alphas)
        pred.append(decoder.predict(rates[fold].reshape(-1, rates.shape[2]), alpha))
        truth.append(behavior[fold].reshape(-1, behavior.shape[2]))
    return float(r2_score(np.concatenate(truth), np.concatenate(pred)))


# ---------------------------------------------------------------- PSTHs
def condition_psth(values, conditions, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Condition-averaged trial arrays (PSTHs), ignoring NaN (unobserved) trials.

    Parameters
    ----------
    values : array (n_trials, n_timesteps, n_neurons)
        Rates or counts per trial; NaN marks unobserved elements.
    conditions : array of int (n_trials,)
        Condition label of each trial.
    labels : array of int, optional
        Conditions to average, in this order; default: the sorted unique labels.

    Returns
    -------
    psth : array (n_conditions, n_timesteps, n_neurons)
        Mean over the trials of each condition (NaN where no trial is observed).
    labels : array (n_conditions,)

    Examples
    --------
    >>> values = np.arange(4.0).reshape(4, 1, 1)
    >>> psth, labels = condition_psth(values, np.array([1, 0, 1, 0]))
    >>> psth.ravel().tolist(), labels.tolist()
    ([2.0, 1.0], [0, 1])
    """
    values = np.asarray(values, dtype=np.float64)
    conditions = np.asarray(conditions)
    if values.ndim != 3 or conditions.shape != (values.shape[0],):
        raise ValueError(
            f"values {values.shape} and conditions {conditions.shape}: expected a "
            "(n_trials, n_timesteps, n_neurons) array and one label per trial"
        )
    labels = np.unique(conditions) if labels is None else np.asarray(labels)
    psth = np.full((labels.size,) + values.shape[1:], np.nan)
    for i, label in enumerate(labels):
        trials = values[conditions == label]
        observed = ~np.isnan(trials)
        n_obs = observed.sum(axis=0)
        # A plain nanmean would warn on all-NaN slices; those stay NaN here.
        total = np.where(observed, trials, 0.0).sum(axis=0)
        psth[i] = np.where(n_obs > 0, total / np.maximum(n_obs, 1), np.nan)
    return psth, labels


def psth_r2(conditions, rates, reference_psth, labels=None) -> float:
    """R² of condition-averaged predicted rates against reference PSTHs.

    Predicted PSTHs are the mean rates over each condition's trials. Time bins where the
    reference is NaN are dropped, conditions without trials are skipped, and the PSTHs of all
    conditions are stacked along time; the score is the R² per neuron over those
    (condition, time) rows, averaged uniformly over neurons. Matches
    ``nlb_tools.evaluation.eval_psth`` (without jitter).

    Parameters
    ----------
    conditions : array of int (n_trials,)
        Condition label of each trial of ``rates``.
    rates : array (n_trials, n_timesteps, n_neurons)
        Predicted rates.
    reference_psth : array (n_conditions, n_timesteps, n_neurons)
        Reference (e.g. true) PSTH of each condition; NaN rows (time bins) are skipped.
    labels : array of int (n_conditions,), optional
        Condition label of each reference row; default the sorted unique ``conditions``.

    Returns
    -------
    float

    Examples
    --------
    >>> rates = np.array([[[1.0], [2.0]], [[3.0], [5.0]]])
    >>> reference, _ = condition_psth(rates, np.array([0, 1]))
    >>> psth_r2(np.array([0, 1]), rates, reference)
    1.0
    """
    rates = _check_rates("rates", rates)
    reference = np.asarray(reference_psth, dtype=np.float64)
    labels = np.unique(conditions) if labels is None else np.asarray(labels)
    if reference.ndim != 3 or reference.shape[0] != labels.size:
        raise ValueError(
            f"reference_psth: shape {reference.shape}, expected ({labels.size} conditions, "
            "n_timesteps, n_neurons), one row per label"
        )
    if rates.ndim != 3 or reference.shape[1:] != rates.shape[1:]:
        raise ValueError(
            f"rates: shape {rates.shape} does not match reference_psth's (time, neuron) "
            f"shape {reference.shape[1:]}"
        )
    predicted, _ = condition_psth(rates, conditions, labels)
    true_rows, pred_rows = [], []
    for ref, pred in zip(reference, predicted, strict=True):
        if np.isnan(pred).all():  # no trials of this condition
            continue
        keep = ~np.isnan(ref).any(axis=1)
        true_rows.append(ref[keep])
        pred_rows.append(pred[keep])
    if not true_rows or sum(len(t) for t in true_rows) < 2:
        raise ValueError("conditions: fewer than 2 (condition, time) rows to compare")
    return float(r2_score(np.vstack(true_rows), np.vstack(pred_rows)))
