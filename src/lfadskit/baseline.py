"""Spike smoothing + Poisson GLM: the floor every model must beat.

Held-in rates are the held-in counts smoothed in time with a Gaussian kernel. Held-out rates
come from a Poisson GLM per held-out neuron whose inputs are the square roots of the smoothed
held-in rates, z-scored with train statistics (fit on the train trials). On MC_Maze_Small the
square root scored a little better than the log or the plain smoothed rates, and z-scoring
makes one L2 penalty mean the same for every neuron; the penalty must be fairly strong
(alpha ~0.1) because smoothed bins are strongly correlated, so a weak one overfits.

Forward-bin rates are each neuron's mean count in each forward bin over the observed train
trials (the best trial-independent guess; smoothing cannot see the future).

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> rng = np.random.default_rng(0)
>>> counts = rng.poisson(0.3, size=(20, 40, 8)).astype(float)
>>> data = SpikeData(spikes=counts[..., :6], heldout=counts[..., 6:], bin_size=0.01)
>>> model = SpikeSmoothing(kernel_sd=0.05).fit(data)
>>> model.predict_rates(data).shape
(20, 40, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import convolve1d
from sklearn.linear_model import PoissonRegressor

from lfadskit.data import SpikeData
from lfadskit.metrics import bits_per_spike

__all__ = ["MIN_RATE", "SpikeSmoothing", "gaussian_smooth"]

#: Floor of every predicted rate (expected spikes per bin), so that log-rates stay finite.
MIN_RATE = 1e-9


def gaussian_smooth(counts: np.ndarray, kernel_sd_bins: float) -> np.ndarray:
    """Smooth counts along time (axis 1) with a centered, trial-edge-normalized Gaussian.

    The kernel is truncated at 4 standard deviations. Near a trial's first and last bins the
    part of the kernel that falls outside the trial is dropped and the rest renormalized to
    sum to one, so edges are not biased toward zero. NaN elements (unobserved) propagate:
    a trial that is NaN stays NaN.

    Parameters
    ----------
    counts : array (n_trials, n_timesteps, n_neurons)
        Spike counts (or any values) per bin.
    kernel_sd_bins : float
        Standard deviation of the kernel in bins (seconds / bin size); 0 returns a copy.

    Returns
    -------
    smoothed : array (n_trials, n_timesteps, n_neurons), float64
        Same units as ``counts`` (e.g. expected spikes per bin).

    Examples
    --------
    >>> x = np.ones((1, 5, 1))
    >>> np.allclose(gaussian_smooth(x, 2.0), 1.0)  # constant in, constant out (edges too)
    True
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 3:
        raise ValueError(f"counts: expected (n_trials, n_timesteps, n_neurons), got {counts.shape}")
    if not np.isfinite(kernel_sd_bins) or kernel_sd_bins < 0:
        raise ValueError(f"kernel_sd_bins: must be a finite number >= 0, got {kernel_sd_bins}")
    if kernel_sd_bins == 0:
        return counts.copy()
    half = int(np.ceil(4 * kernel_sd_bins))
    offsets = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets / kernel_sd_bins) ** 2)
    kernel /= kernel.sum()
    summed = convolve1d(counts, kernel, axis=1, mode="constant", cval=0.0)
    # Weight of the kernel inside the trial at each bin: the edge normalizer.
    inside = convolve1d(np.ones(counts.shape[1]), kernel, mode="constant", cval=0.0)
    return summed / inside[None, :, None]


class SpikeSmoothing:
    """Gaussian spike smoothing with a Poisson GLM to held-out neurons.

    Parameters
    ----------
    kernel_sd : float or "auto"
        Standard deviation of the smoothing kernel in seconds. ``"auto"`` picks it from
        ``kernel_grid`` by ``n_folds``-fold cross-validated co-bps on the train trials
        (held-in bps when there are no held-out neurons).
    alpha : float
        L2 penalty of each held-out neuron's ``sklearn.linear_model.PoissonRegressor`` (on
        z-scored inputs).
    kernel_grid : sequence of float
        Candidate kernel standard deviations (seconds) for ``kernel_sd="auto"``.
    n_folds : int
        Trial folds of the ``"auto"`` search.
    seed : int
        Seed of the fold assignment of the ``"auto"`` search.
    max_iter : int
        Iterations of each GLM fit (L-BFGS).

    Attributes
    ----------
    kernel_sd_ : float
        Kernel standard deviation used (seconds).
    cv_scores_ : dict[float, float]
        Cross-validated score per candidate kernel (only after ``kernel_sd="auto"``).
    coef_ : ndarray (n_heldout, n_neurons)
        GLM weights on the z-scored square-root smoothed held-in rates (absent without
        held-out neurons).
    intercept_ : ndarray (n_heldout,)
    feature_mean_, feature_scale_ : ndarray (n_neurons,)
        Train statistics that z-score the GLM inputs.
    forward_rates_ : ndarray (n_forward, n_neurons + n_heldout)
        Mean train count per forward bin and neuron (absent without forward bins).
    n_neurons_, n_heldout_, n_forward_ : int
        Sizes seen in ``fit``.

    Examples
    --------
    >>> model = SpikeSmoothing(kernel_sd=0.07, alpha=0.1)
    >>> model.get_params()["kernel_sd"]
    0.07
    """

    def __init__(
        self,
        kernel_sd: float | str = 0.07,
        alpha: float = 0.1,
        kernel_grid: Sequence[float] = (0.03, 0.05, 0.07, 0.1),
        n_folds: int = 3,
        seed: int = 0,
        max_iter: int = 500,
    ):
        self.kernel_sd = kernel_sd
        self.alpha = alpha
        self.kernel_grid = kernel_grid
        self.n_folds = n_folds
        self.seed = seed
        self.max_iter = max_iter

    def get_params(self) -> dict:
        """Constructor parameters, as plain Python values (for a config file)."""
        return {
            "kernel_sd": self.kernel_sd,
            "alpha": float(self.alpha),
            "kernel_grid": [float(s) for s in self.kernel_grid],
            "n_folds": int(self.n_folds),
            "seed": int(self.seed),
            "max_iter": int(self.max_iter),
        }

    # ------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        if self.kernel_sd != "auto":
            sd = self.kernel_sd
            if isinstance(sd, str) or not np.isfinite(sd) or sd < 0:
                raise ValueError(f"kernel_sd: expected seconds >= 0 or 'auto', got {sd!r}")
        if not np.isfinite(self.alpha) or self.alpha < 0:
            raise ValueError(f"alpha: expected a finite L2 penalty >= 0, got {self.alpha!r}")
        if self.kernel_sd == "auto" and (len(self.kernel_grid) == 0 or self.n_folds < 2):
            raise ValueError("kernel_grid/n_folds: 'auto' needs a non-empty grid and n_folds >= 2")

    @staticmethod
    def _features(smoothed: np.ndarray) -> np.ndarray:
        """GLM inputs before z-scoring: sqrt of smoothed rates, (n_samples, n_neurons)."""
        return np.sqrt(smoothed).reshape(-1, smoothed.shape[2])

    def _fit_glm(self, features: np.ndarray, heldout: np.ndarray):
        """Z-score features, then one PoissonRegressor per held-out neuron (observed samples).

        Returns (coef, intercept, mean, scale) such that
        ``rates = exp(((features - mean) / scale) @ coef.T + intercept)``.
        """
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)  # silent neuron: constant input, any scale
        z = (features - mean) / scale
        coef = np.zeros((heldout.shape[1], features.shape[1]))
        intercept = np.zeros(heldout.shape[1])
        for j in range(heldout.shape[1]):
            observed = ~np.isnan(heldout[:, j])
            glm = PoissonRegressor(alpha=self.alpha, max_iter=self.max_iter)
            glm.fit(z[observed], heldout[observed, j])
            coef[j], intercept[j] = glm.coef_, glm.intercept_
        return coef, intercept, mean, scale

    @staticmethod
    def _glm_rates(features, coef, intercept, mean, scale) -> np.ndarray:
        return np.exp(((features - mean) / scale) @ coef.T + intercept)

    def _cv_score(self, data: SpikeData, trials: np.ndarray, kernel_sd: float) -> float:
        """Mean co-bps (or held-in bps) over trial folds, for one kernel width."""
        rng = np.random.default_rng(self.seed)
        folds = np.array_split(rng.permutation(trials), self.n_folds)
        scores = []
        for fold in folds:
            rest = np.setdiff1d(trials, fold)
            if data.n_heldout == 0:
                smooth = gaussian_smooth(data.spikes[fold], kernel_sd / data.bin_size)
                scores.append(bits_per_spike(data.spikes[fold], np.maximum(smooth, MIN_RATE)))
                continue
            smooth = gaussian_smooth(data.spikes, kernel_sd / data.bin_size)
            params = self._fit_glm(
                self._features(smooth[rest]), data.heldout[rest].reshape(-1, data.n_heldout)
            )
            rates = self._glm_rates(self._features(smooth[fold]), *params)
            rates = rates.reshape(len(fold), data.n_timesteps, data.n_heldout)
            scores.append(bits_per_spike(data.heldout[fold], np.maximum(rates, MIN_RATE)))
        return float(np.nanmean(scores))

    def fit(self, data: SpikeData) -> SpikeSmoothing:
        """Fit the GLM (and forward means) on the train trials of ``data``; returns self."""
        if not isinstance(data, SpikeData):
            raise TypeError(f"data: expected a SpikeData, got {type(data).__name__}")
        self._check_params()
        train = data.train_idx
        if self.kernel_sd == "auto":
            self.cv_scores_ = {
                float(sd): self._cv_score(data, train, float(sd)) for sd in self.kernel_grid
            }
            self.kernel_sd_ = max(self.cv_scores_, key=self.cv_scores_.get)
        else:
            self.kernel_sd_ = float(self.kernel_sd)
        self.n_neurons_, self.n_heldout_, self.n_forward_ = (
            data.n_neurons,
            data.n_heldout,
            data.n_forward,
        )
        self.bin_size_ = data.bin_size
        if data.n_heldout:
            smooth = gaussian_smooth(data.spikes[train], self.kernel_sd_ / data.bin_size)
            params = self._fit_glm(
                self._features(smooth), data.heldout[train].reshape(-1, data.n_heldout)
            )
            self.coef_, self.intercept_, self.feature_mean_, self.feature_scale_ = params
        if data.n_forward:
            forward = data.forward[train]
            observed = ~np.isnan(forward)
            n_obs = observed.sum(axis=0)
            mean = np.where(observed, forward, 0.0).sum(axis=0) / np.maximum(n_obs, 1)
            # Never observed in train: fall back to the neuron's mean over all forward bins.
            fallback = np.nanmean(np.where(n_obs > 0, mean, np.nan), axis=0)
            mean = np.where(n_obs > 0, mean, np.nan_to_num(fallback, nan=0.0)[None, :])
            self.forward_rates_ = mean
        return self

    # ------------------------------------------------------------ predicting
    def _check_fitted(self, data: SpikeData) -> None:
        if not hasattr(self, "kernel_sd_"):
            raise RuntimeError("SpikeSmoothing: call fit(data) before predicting")
        sizes = (data.n_neurons, data.n_heldout, data.n_forward)
        if sizes != (self.n_neurons_, self.n_heldout_, self.n_forward_):
            raise ValueError(
                f"data: (n_neurons, n_heldout, n_forward) = {sizes} but the model was fit on "
                f"{(self.n_neurons_, self.n_heldout_, self.n_forward_)}"
            )

    def predict_rates(self, data: SpikeData) -> np.ndarray:
        """Rates of all trials in ``data.recon_shape``, expected spikes per bin, >= 1e-9.

        Held-in neurons: smoothed counts; held-out neurons: GLM prediction; forward bins:
        train mean count per bin and neuron (the same for every trial). Values are floored at
        ``MIN_RATE`` (1e-9) so that the log-likelihood stays finite.
        """
        self._check_fitted(data)
        smoothed = gaussian_smooth(data.spikes, self.kernel_sd_ / data.bin_size)
        rates = np.empty(data.recon_shape)
        rates[:, : data.n_timesteps, : data.n_neurons] = smoothed
        if data.n_heldout:
            heldout = self._glm_rates(
                self._features(smoothed),
                self.coef_,
                self.intercept_,
                self.feature_mean_,
                self.feature_scale_,
            )
            rates[:, : data.n_timesteps, data.n_neurons :] = heldout.reshape(
                data.n_trials, data.n_timesteps, data.n_heldout
            )
        if data.n_forward:
            rates[:, data.n_timesteps :, :] = self.forward_rates_[None]
        return np.maximum(rates, MIN_RATE)

    def score(self, data: SpikeData, split: str = "valid") -> float:
        """Co-bps of ``split`` (held-in bps without held-out neurons); higher is better."""
        trials = data.index(split)
        rates = self.predict_rates(data)[trials]
        if data.n_heldout:
            return bits_per_spike(
                data.heldout[trials], rates[:, : data.n_timesteps, data.n_neurons :]
            )
        return bits_per_spike(data.spikes[trials], rates[:, : data.n_timesteps, : data.n_neurons])
