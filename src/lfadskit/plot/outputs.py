"""Figures of what a fit inferred: rates against truth, latents, decoded behavior, outputs."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import mpl_toolkits.mplot3d  # noqa: F401  (registers the "3d" projection)
import numpy as np
from matplotlib.figure import Figure

from lfadskit.plot.common import INFERRED_COLOR, TRUE_COLOR, new_figure, styled

__all__ = [
    "decoded_behavior",
    "latent_trajectories",
    "output_pca",
    "output_traces",
    "pca_project",
    "rates_scatter",
    "rates_vs_truth",
]


# ---------------------------------------------------------------- rates
def _to_display(rates: np.ndarray, bin_size: float | None) -> tuple[np.ndarray, str]:
    if bin_size:
        return rates / bin_size, "spikes/s"
    return rates, "spikes/bin"


@styled
def rates_vs_truth(
    rates,
    truth_rates,
    trials: Sequence[int] | None = None,
    neurons: Sequence[int] | None = None,
    bin_size: float | None = None,
) -> Figure:
    """Inferred and true rates over time: one panel per (neuron, trial).

    Parameters
    ----------
    rates, truth_rates : array (n_trials, n_timesteps, n_neurons)
        Inferred and ground-truth rates, expected spikes per bin.
    trials : sequence of int, optional
        Trials to show (default: the first 3).
    neurons : sequence of int, optional
        Neurons to show (default: the 4 whose true rate varies most over the shown trials).
    bin_size : float, optional
        Bin width in seconds; when given, rates are shown in spikes/s and time in seconds.

    Returns
    -------
    Figure

    Examples
    --------
    >>> truth = np.ones((4, 10, 5))
    >>> len(rates_vs_truth(truth * 1.1, truth, trials=[0, 1], neurons=[2]).axes)
    2
    """
    rates, truth_rates = np.asarray(rates, float), np.asarray(truth_rates, float)
    if rates.shape != truth_rates.shape or rates.ndim != 3:
        raise ValueError(
            f"rates {rates.shape} and truth_rates {truth_rates.shape}: expected equal "
            "(n_trials, n_timesteps, n_neurons) shapes"
        )
    trials = list(range(min(3, rates.shape[0]))) if trials is None else list(trials)
    if neurons is None:
        spread = np.nanvar(truth_rates[trials], axis=(0, 1))
        neurons = np.argsort(spread)[::-1][: min(4, rates.shape[2])]
    neurons = list(neurons)
    shown_rates, unit = _to_display(rates, bin_size)
    shown_truth, _ = _to_display(truth_rates, bin_size)
    time = np.arange(rates.shape[1]) * (bin_size or 1.0)
    fig, axes = new_figure(len(neurons) * len(trials), len(trials), panel_size=(3.4, 1.9))
    axes = axes.reshape(len(neurons), len(trials))
    for i, n in enumerate(neurons):
        for j, t in enumerate(trials):
            ax = axes[i, j]
            ax.plot(time, shown_truth[t, :, n], color=TRUE_COLOR, linewidth=1.2, label="true")
            ax.plot(
                time, shown_rates[t, :, n], color=INFERRED_COLOR, linewidth=1.2, label="inferred"
            )
            ax.set_title(f"neuron {n}, trial {t}", fontsize=8, fontweight="normal")
            if j == 0:
                ax.set_ylabel(unit)
            if i == len(neurons) - 1:
                ax.set_xlabel("time (s)" if bin_size else "bin")
    axes[0, 0].legend(loc="upper right")
    return fig


@styled
def rates_scatter(rates, truth_rates, max_points: int = 20000, seed: int = 0) -> Figure:
    """Scatter of inferred against true rates (a random subsample), with the identity line.

    The title gives R² of all finite pairs (``1 - SS_res / SS_tot`` pooled over everything).

    Parameters
    ----------
    rates, truth_rates : arrays of the same shape, expected spikes per bin
    max_points : int
        Points drawn at most (chosen with ``numpy.random.default_rng(seed)``).
    seed : int

    Returns
    -------
    Figure

    Examples
    --------
    >>> truth = np.linspace(0.1, 1, 30).reshape(1, 10, 3)
    >>> rates_scatter(truth, truth).axes[0].get_title()
    'Inferred vs true rates (R² = 1.000)'
    """
    rates, truth_rates = np.asarray(rates, float), np.asarray(truth_rates, float)
    if rates.shape != truth_rates.shape:
        raise ValueError(f"rates {rates.shape} and truth_rates {truth_rates.shape} differ")
    x, y = truth_rates.ravel(), rates.ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size == 0:
        raise ValueError("rates and truth_rates: no finite pair to plot")
    ss_tot = np.sum((x - x.mean()) ** 2)
    r2 = 1.0 - np.sum((x - y) ** 2) / ss_tot if ss_tot > 0 else np.nan
    if x.size > max_points:
        pick = np.random.default_rng(seed).choice(x.size, max_points, replace=False)
        x, y = x[pick], y[pick]
    fig, axes = new_figure(1, 1, panel_size=(3.9, 3.7))
    ax = axes[0]
    ax.plot(x, y, ".", markersize=2, alpha=0.25, color=INFERRED_COLOR, rasterized=True)
    low, high = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([low, high], [low, high], color=TRUE_COLOR, linewidth=1, linestyle="--")
    ax.set_xlabel("true rate (spikes/bin)")
    ax.set_ylabel("inferred rate (spikes/bin)")
    ax.set_title(f"Inferred vs true rates (R² = {r2:.3f})")
    ax.set_aspect("equal", adjustable="datalim")
    return fig


# ---------------------------------------------------------------- latents
def pca_project(values, n_components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Project samples on their top principal components.

    Parameters
    ----------
    values : array (..., n_features)
        Samples along every axis but the last; non-finite samples are skipped when fitting
        and come out as NaN.
    n_components : int

    Returns
    -------
    projected : array (..., k) with k = min(n_components, n_features)
    explained : array (k,), fraction of the variance each component explains

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(50, 4)) * [5, 1, 0.1, 0.1]
    >>> proj, explained = pca_project(x, 2)
    >>> proj.shape, bool(explained[0] > 0.9)
    ((50, 2), True)
    """
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(-1, values.shape[-1])
    finite = np.isfinite(flat).all(axis=1)
    if finite.sum() < 2:
        raise ValueError("values: need at least 2 finite samples for PCA")
    mean = flat[finite].mean(axis=0)
    _, sing, vt = np.linalg.svd(flat[finite] - mean, full_matrices=False)
    k = min(n_components, vt.shape[0])
    total = np.sum(sing**2)
    explained = sing[:k] ** 2 / total if total > 0 else np.zeros(k)
    projected = np.full((flat.shape[0], k), np.nan)
    projected[finite] = (flat[finite] - mean) @ vt[:k].T
    return projected.reshape(*values.shape[:-1], k), explained


def _trial_colors(n_trials: int, conditions):
    if conditions is None:
        cmap = matplotlib.colormaps["viridis"]
        return [cmap(i / max(1, n_trials - 1)) for i in range(n_trials)]
    labels = np.unique(conditions)
    cmap = matplotlib.colormaps["tab10" if labels.size <= 10 else "hsv"]
    position = {c: i for i, c in enumerate(labels)}
    scale = 1 if labels.size <= 10 else labels.size
    return [cmap(position[c] / scale if scale > 1 else position[c]) for c in conditions]


@styled
def latent_trajectories(factors, conditions=None, max_trials: int = 100) -> Figure:
    """Factors projected on their top 3 principal components: PC1-PC2 and a 3-D view.

    Parameters
    ----------
    factors : array (n_trials, n_timesteps, fac_dim)
    conditions : array (n_trials,), optional
        Condition labels; trajectories are colored by condition (else by trial order).
    max_trials : int
        Draw at most this many trials (the first ones).

    Returns
    -------
    Figure
        Two panels (PC1 vs PC2, PCs 1-3 in 3-D), one when ``fac_dim < 3``. Start points dotted.

    Examples
    --------
    >>> f = np.random.default_rng(0).normal(size=(5, 20, 4))
    >>> len(latent_trajectories(f).axes)
    2
    """
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 3:
        raise ValueError(f"factors: expected (n_trials, n_timesteps, fac_dim), got {factors.shape}")
    if conditions is not None and len(conditions) != factors.shape[0]:
        raise ValueError(
            f"conditions: {len(conditions)} labels for {factors.shape[0]} trials of factors"
        )
    projected, explained = pca_project(factors, 3)
    shown = min(max_trials, factors.shape[0])
    colors = _trial_colors(shown, None if conditions is None else np.asarray(conditions)[:shown])
    three_d = projected.shape[2] >= 3
    fig = Figure(figsize=(10 if three_d else 5, 4.4), layout="constrained")
    ax2 = fig.add_subplot(1, 2 if three_d else 1, 1)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d") if three_d else None
    for t in range(shown):
        pc = projected[t]
        ax2.plot(pc[:, 0], pc[:, 1], color=colors[t], linewidth=0.8, alpha=0.8)
        ax2.plot(pc[0, 0], pc[0, 1], "o", color=colors[t], markersize=2.5)
        if ax3 is not None:
            ax3.plot(pc[:, 0], pc[:, 1], pc[:, 2], color=colors[t], linewidth=0.7, alpha=0.8)
    ax2.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax2.set_ylabel(f"PC2 ({explained[1]:.0%})" if explained.size > 1 else "PC2")
    how = "by condition" if conditions is not None else "by trial order"
    ax2.set_title(f"Latent factors, top PCs ({shown} trials, colored {how})")
    if ax3 is not None:
        ax3.set_xlabel("PC1")
        ax3.set_ylabel("PC2")
        ax3.set_zlabel("PC3")
        ax3.set_title(f"PCs 1-3 ({explained[:3].sum():.0%} of variance)")
    return fig


# ---------------------------------------------------------------- behavior
@styled
def decoded_behavior(
    decoded,
    behavior,
    trials: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    r2: float | None = None,
    bin_size: float | None = None,
    trial_ids: Sequence[int] | None = None,
) -> Figure:
    """Decoded against true behavior over time: one row per behavior dim, one column per trial.

    Parameters
    ----------
    decoded, behavior : array (n_trials, n_timesteps, n_behavior)
    trials : sequence of int, optional
        Rows of the arrays to show (default: the first 3).
    names : sequence of str, optional
        Name of each behavior dim (default ``dim 0``, ``dim 1`` ...).
    r2 : float, optional
        Decoding R² to show in the title.
    bin_size : float, optional
        Bin width in seconds (time axis in seconds when given).
    trial_ids : sequence of int, optional
        Trial number to show in the title of each row of the arrays (default: the row).

    Returns
    -------
    Figure

    Examples
    --------
    >>> b = np.random.default_rng(0).normal(size=(4, 10, 2))
    >>> len(decoded_behavior(b, b, trials=[0]).axes)
    2
    """
    decoded, behavior = np.asarray(decoded, float), np.asarray(behavior, float)
    if decoded.shape != behavior.shape or decoded.ndim != 3:
        raise ValueError(
            f"decoded {decoded.shape} and behavior {behavior.shape}: expected equal "
            "(n_trials, n_timesteps, n_behavior) shapes"
        )
    trials = list(range(min(3, decoded.shape[0]))) if trials is None else list(trials)
    n_dims = decoded.shape[2]
    names = [f"dim {i}" for i in range(n_dims)] if names is None else list(names)
    time = np.arange(decoded.shape[1]) * (bin_size or 1.0)
    fig, axes = new_figure(n_dims * len(trials), len(trials), panel_size=(3.4, 2.0))
    axes = axes.reshape(n_dims, len(trials))
    for i in range(n_dims):
        for j, t in enumerate(trials):
            ax = axes[i, j]
            ax.plot(time, behavior[t, :, i], color=TRUE_COLOR, linewidth=1.2, label="true")
            ax.plot(time, decoded[t, :, i], color=INFERRED_COLOR, linewidth=1.2, label="decoded")
            trial = t if trial_ids is None else trial_ids[t]
            ax.set_title(f"{names[i]}, trial {trial}", fontsize=8, fontweight="normal")
            if i == n_dims - 1:
                ax.set_xlabel("time (s)" if bin_size else "bin")
    axes[0, 0].legend(loc="upper right")
    if r2 is not None:
        fig.suptitle(f"Ridge decoder from rates, held-out trials: R² = {r2:.3f}", fontsize=9)
    return fig


# ---------------------------------------------------------------- other outputs
@styled
def output_traces(
    values, name: str, trials: Sequence[int] | None = None, max_dims: int = 8
) -> Figure:
    """Time courses of a per-trial output (e.g. inferred inputs): one panel per trial.

    Parameters
    ----------
    values : array (n_trials, n_timesteps, n_dims)
    name : str
        Name of the output, for titles.
    trials : sequence of int, optional
        Trials to show (default: the first 3).
    max_dims : int
        Draw at most this many dims.

    Returns
    -------
    Figure

    Examples
    --------
    >>> len(output_traces(np.zeros((5, 10, 2)), "inputs").axes)
    3
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3:
        raise ValueError(f"{name}: expected (n_trials, n_timesteps, n_dims), got {values.shape}")
    trials = list(range(min(3, values.shape[0]))) if trials is None else list(trials)
    fig, axes = new_figure(len(trials), 3, panel_size=(3.6, 2.3))
    for ax, t in zip(axes, trials, strict=True):
        for d in range(min(max_dims, values.shape[2])):
            ax.plot(values[t, :, d], linewidth=1.0, label=f"{d}")
        ax.set_title(f"{name}, trial {t}", fontsize=8, fontweight="normal")
        ax.set_xlabel("bin")
    if values.shape[2] > 1:
        axes[-1].legend(title="dim", loc="upper right", ncols=2)
    return fig


@styled
def output_pca(values, name: str, conditions=None) -> Figure:
    """Per-trial vectors (e.g. initial conditions) on their top two principal components.

    Parameters
    ----------
    values : array (n_trials, n_dims)
    name : str
    conditions : array (n_trials,), optional
        Color points by condition.

    Returns
    -------
    Figure

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3))
    >>> output_pca(x, "ic_mean").axes[0].get_xlabel().startswith("PC1")
    True
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{name}: expected (n_trials, n_dims), got {values.shape}")
    projected, explained = pca_project(values, 2)
    colors = _trial_colors(values.shape[0], conditions)
    fig, axes = new_figure(1, 1, panel_size=(4.2, 3.6))
    ax = axes[0]
    y = projected[:, 1] if projected.shape[1] > 1 else np.zeros(values.shape[0])
    ax.scatter(projected[:, 0], y, c=colors, s=12)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})" if explained.size > 1 else "")
    ax.set_title(f"{name} per trial")
    return fig
