"""Ridge decoders from rates to behavior, and the velocity R² of the Neural Latents Benchmark.

One decoder serves every caller: :func:`fit_ridge_decoder` (alpha chosen by 5-fold unshuffled
cross-validation, then refit on all samples, as ``nlb_tools`` does) returns a
:class:`RidgeDecoder` whose :meth:`~RidgeDecoder.predict` maps rates to behavior.
:func:`velocity_r2` and :func:`velocity_r2_cv` score it; :func:`decode_behavior` returns its
predictions of some trials with their R² (the report draws them).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> rates = rng.poisson(2.0, size=(20, 30, 4)).astype(float)
>>> behavior = rates @ np.array([[1.0], [-1.0], [0.5], [0.0]])
>>> decoder = fit_ridge_decoder(rates[:15], behavior[:15])
>>> decoder.predict(rates[15:]).shape
(5, 30, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import r2_score

from lfadskit.metrics.rates import check_rates

__all__ = [
    "DEFAULT_ALPHAS",
    "RidgeDecoder",
    "decode_behavior",
    "fit_ridge_decoder",
    "velocity_r2",
    "velocity_r2_cv",
]

#: Ridge penalties searched by the velocity decoders (the benchmark's grid).
DEFAULT_ALPHAS = np.logspace(-4, 0, 9)


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
    check_rates(rates_name, x)
    return x, y


@dataclass(frozen=True)
class RidgeDecoder:
    """A fitted linear decoder ``behavior = (rates - x_mean) @ coef + y_mean``.

    Attributes
    ----------
    coef : array (n_neurons, n_behavior)
        Ridge weights of the centered rates.
    x_mean : array (n_neurons,)
        Mean rates of the fit samples.
    y_mean : array (n_behavior,)
        Mean behavior of the fit samples (the intercept of centered rates).
    alpha : float
        Ridge penalty of the fit.
    """

    coef: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    alpha: float

    def predict(self, rates) -> np.ndarray:
        """Decoded behavior of ``rates`` (..., n_neurons): an array (..., n_behavior)."""
        rates = np.asarray(rates, dtype=np.float64)
        # Flattened to samples first: one 2-D product, whatever the leading dimensions.
        samples = rates.reshape(-1, rates.shape[-1])
        decoded = (samples - self.x_mean) @ self.coef + self.y_mean
        return decoded.reshape(rates.shape[:-1] + (self.coef.shape[1],))


def _trial_arrays(rates, behavior) -> tuple[np.ndarray, np.ndarray]:
    """Rates and behavior as float arrays (n_trials, n_timesteps, n) over the same trials."""
    rates = np.asarray(rates, dtype=np.float64)
    behavior = np.asarray(behavior, dtype=np.float64)
    if rates.ndim != 3 or behavior.ndim != 3 or rates.shape[:2] != behavior.shape[:2]:
        raise ValueError(
            f"rates {rates.shape} and behavior {behavior.shape}: expected (n_trials, "
            "n_timesteps, n) arrays with the same trials and bins"
        )
    return rates, behavior


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

    def decoder(self, alpha: float) -> RidgeDecoder:
        coef = self.vecs @ (self.vty / (self.eig + alpha)[:, None])
        return RidgeDecoder(coef, self.x_mean, self.y_mean, float(alpha))


def _stats(x: np.ndarray, y: np.ndarray) -> tuple:
    return (x.shape[0], x.sum(axis=0), y.sum(axis=0), x.T @ x, x.T @ y)


def _fit_ridge_cv(x: np.ndarray, y: np.ndarray, alphas) -> RidgeDecoder:
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
            scores[i] += r2_score(y[fold], path.decoder(alpha).predict(x[fold])) / 5
    return _RidgePath(total).decoder(alphas[int(np.argmax(scores))])


def fit_ridge_decoder(rates, behavior, alphas: Sequence[float] = DEFAULT_ALPHAS) -> RidgeDecoder:
    """Fit the ridge decoder of :func:`velocity_r2` from rates to behavior.

    Rates and behavior are flattened over trials x time into samples; samples with NaN
    behavior are dropped. The penalty is chosen from ``alphas`` by 5-fold cross-validation
    (contiguous, unshuffled folds scored by R² averaged over behavior dimensions, the first
    best on ties), then the decoder is refit on all samples: the recipe of
    ``nlb_tools.evaluation.fit_and_eval_decoder``, in closed form.

    Parameters
    ----------
    rates : array (n_trials, n_timesteps, n_neurons) or (n_samples, n_neurons)
        Expected spikes per bin; finite and >= 0.
    behavior : array (n_trials, n_timesteps, n_behavior) or (n_samples, n_behavior)
    alphas : sequence of float
        Ridge penalties to search.

    Returns
    -------
    RidgeDecoder

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.poisson(2.0, size=(50, 3)).astype(float)
    >>> decoder = fit_ridge_decoder(rates, rates @ np.array([[1.0], [-1.0], [0.5]]) + 2.0)
    >>> decoder.coef.round(2).ravel().tolist()
    [1.0, -1.0, 0.5]
    """
    x, y = _decoder_pairs("rates", rates, "behavior", behavior)
    if x.shape[0] < 5:
        raise ValueError(f"behavior: {x.shape[0]} observed samples; need at least 5")
    return _fit_ridge_cv(x, y, alphas)


def decode_behavior(
    rates, behavior, train_idx, eval_idx, alphas: Sequence[float] = DEFAULT_ALPHAS
) -> tuple[np.ndarray, float]:
    """Fit a ridge decoder from rates to behavior on some trials and predict others.

    The decoder is :func:`fit_ridge_decoder`, the one of :func:`velocity_r2`, so the R²
    returned equals
    ``velocity_r2(rates[train_idx], behavior[train_idx], rates[eval_idx], behavior[eval_idx])``.

    Parameters
    ----------
    rates : array (n_trials, n_timesteps, n_neurons)
        Expected spikes per bin, aligned with ``behavior``.
    behavior : array (n_trials, n_timesteps, n_behavior)
        NaN samples are left out of the fit and the score.
    train_idx, eval_idx : arrays of int
        Trials to fit on and to predict.
    alphas : sequence of float
        Ridge penalties searched.

    Returns
    -------
    decoded : array (len(eval_idx), n_timesteps, n_behavior)
    r2 : float
        R² on the observed eval samples, averaged over behavior dims.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> rates = rng.poisson(2.0, size=(10, 40, 3)).astype(float)
    >>> decoded, r2 = decode_behavior(rates, rates @ np.ones((3, 2)), np.arange(8), [8, 9])
    >>> decoded.shape, r2 > 0.99
    ((2, 40, 2), True)
    """
    rates, behavior = _trial_arrays(rates, behavior)
    decoder = fit_ridge_decoder(rates[train_idx], behavior[train_idx], alphas)
    decoded = decoder.predict(rates[eval_idx])
    n_behavior = behavior.shape[2]
    y_eval = behavior[eval_idx].reshape(-1, n_behavior)
    seen = ~np.isnan(y_eval).any(axis=1)
    r2 = float(r2_score(y_eval[seen], decoded.reshape(-1, n_behavior)[seen]))
    return decoded, r2


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
    decoder = _fit_ridge_cv(x_train, y_train, alphas)
    return float(r2_score(y_eval, decoder.predict(x_eval)))


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
    >>> rng = np.random.default_rng(1)
    >>> rates = rng.poisson(3.0, size=(12, 25, 3)).astype(float)
    >>> velocity_r2_cv(rates, rates[..., :2] - rates[..., 2:], n_folds=3) > 0.99
    True
    """
    rates, behavior = _trial_arrays(rates, behavior)
    check_rates("rates", rates)
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
        decoder = _fit_ridge_cv(x_fit, y_fit, alphas)
        pred.append(decoder.predict(rates[fold].reshape(-1, rates.shape[2])))
        truth.append(behavior[fold].reshape(-1, behavior.shape[2]))
    return float(r2_score(np.concatenate(truth), np.concatenate(pred)))
