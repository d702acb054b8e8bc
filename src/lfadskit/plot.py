"""Figures of a fit or a search: each function takes arrays or tables and returns a Figure.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never through
``pyplot``, so they need no display, hold no global state and are freed with the object.
Tables are mappings ``column name -> 1-D array`` (as read by
:func:`lfadskit.report.read_table`); numeric columns are float arrays with NaN for empty cells.

Rates are expected spikes per bin; the rate figures show spikes per second when a
``bin_size`` (seconds) is given.

Examples
--------
>>> import numpy as np
>>> from lfadskit import plot
>>> history = {"epoch": np.arange(5.0), "loss": np.linspace(2, 1, 5)}
>>> fig = plot.training_curves(history)
>>> len(fig.axes)
1
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import matplotlib
import mpl_toolkits.mplot3d  # noqa: F401  (registers the "3d" projection)
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "LOG_SCALED",
    "decoded_behavior",
    "hparam_trajectories",
    "is_lower_better",
    "latent_trajectories",
    "metric_by_generation",
    "metric_vs_hparams",
    "output_pca",
    "output_traces",
    "pca_project",
    "rates_scatter",
    "rates_vs_truth",
    "training_curves",
]

#: Hyperparameters explored multiplicatively (log space); their panels get a log y axis.
LOG_SCALED = ("lr", "kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale")

# Columns of a history table that index rows rather than measure anything.
_INDEX_COLUMNS = ("epoch", "member", "generation", "parent", "step")
# History columns drawn together in one panel (title, members), in this order.
_HISTORY_GROUPS = (
    ("loss", ("loss",)),
    ("Reconstruction NLL", ("nll", "train_nll", "valid_nll", "sv_nll", "metric_smoothed")),
    ("KL penalties", ("kl_ic", "kl_co")),
    ("Ramp weights", ("w_kl", "w_l2")),
)
# Searchable hyperparameters (a history may carry them per epoch); drawn last, if they vary.
_HPARAM_NAMES = ("lr", "dropout", "cd_rate", *LOG_SCALED[1:])
_STYLE = {
    "figure.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9ca3af",
    "axes.prop_cycle": matplotlib.cycler(
        color=["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"]
    ),
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_INFERRED, _TRUE = "#2563eb", "#111827"


def _styled(func):
    """Build the figure under the package style without touching global rcParams."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            fig = func(*args, **kwargs)
        FigureCanvasAgg(fig)  # attach the Agg canvas: savefig then needs no backend
        return fig

    return wrapper


def _new_figure(n_panels: int, n_cols: int, panel_size=(3.6, 2.6), **kwargs):
    n_cols = max(1, min(n_cols, n_panels))
    n_rows = int(np.ceil(n_panels / n_cols))
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False, **kwargs)).ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, axes[:n_panels]


def _check_table(table: Mapping[str, np.ndarray], required: Sequence[str], name: str) -> int:
    missing = [c for c in required if c not in table]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; columns: {sorted(table)}")
    lengths = {len(np.asarray(v)) for v in table.values()}
    if len(lengths) != 1:
        raise ValueError(f"{name}: columns have different lengths {sorted(lengths)}")
    return lengths.pop()


def _numeric(values) -> np.ndarray | None:
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    return None


def _wants_log(values: np.ndarray) -> bool:
    """Log axis for strictly positive values spanning more than ~two decades."""
    finite = values[np.isfinite(values)]
    return finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() > 50


def _label(value) -> str:
    """``3.0`` -> ``'3'``; anything else as str."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _members(table: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
    if "member" in table:
        return np.asarray(table["member"])
    return np.zeros(n_rows)


# ---------------------------------------------------------------- training history
@_styled
def training_curves(history: Mapping[str, np.ndarray], max_panels: int = 12) -> Figure:
    """Per-epoch training curves: one panel per quantity, one line per member.

    Parameters
    ----------
    history : mapping column -> array
        Needs ``epoch``; every other numeric column is drawn (``member`` splits lines).
            ``nll``/``valid_nll``/``sv_nll``/``metric_smoothed`` share a panel, as do
        ``kl_ic``/``kl_co`` and ``w_kl``/``w_l2``; searchable hyperparameters come last and
        only when they change.
    max_panels : int
        Draw at most this many panels (columns beyond are dropped, in table order).

    Returns
    -------
    Figure

    Examples
    --------
    >>> h = {"epoch": np.arange(3.0), "nll": np.ones(3), "valid_nll": np.ones(3)}
    >>> [ax.get_title() for ax in training_curves(h).axes]
    ['Reconstruction NLL']
    """
    n_rows = _check_table(history, ["epoch"], "history")
    epoch = _numeric(history["epoch"])
    if epoch is None:
        raise ValueError("history: column 'epoch' must be numeric")
    numeric = [c for c in history if c not in _INDEX_COLUMNS and _numeric(history[c]) is not None]
    if not numeric:
        raise ValueError(f"history: no numeric column to plot besides epoch ({sorted(history)})")
    panels, grouped = [], set()
    for title, names in _HISTORY_GROUPS:
        present = [c for c in names if c in numeric]
        if present:
            panels.append((title if len(present) > 1 else present[0], present))
            grouped.update(present)
    rest = [c for c in numeric if c not in grouped]
    panels += [(c, [c]) for c in rest if c not in _HPARAM_NAMES]
    # A hyperparameter that never changed says nothing per epoch.
    panels += [
        (c, [c]) for c in rest if c in _HPARAM_NAMES and np.unique(_numeric(history[c])).size > 1
    ]
    panels = panels[:max_panels]
    members = _members(history, n_rows)
    unique_members = np.unique(members)
    fig, axes = _new_figure(len(panels), 3)
    styles = ["-", "--", ":", "-."]
    for ax, (title, columns) in zip(axes, panels, strict=True):
        for j, column in enumerate(columns):
            values = _numeric(history[column])
            for k, member in enumerate(unique_members):
                rows = np.flatnonzero(members == member)
                rows = rows[np.argsort(epoch[rows])]
                label = column if len(unique_members) == 1 else f"{column} m{_label(member)}"
                ax.plot(
                    epoch[rows],
                    values[rows],
                    linestyle=styles[j % len(styles)],
                    color=f"C{k % 7}" if len(unique_members) > 1 else f"C{j % 7}",
                    linewidth=1.2,
                    label=label,
                )
        stacked = np.concatenate([_numeric(history[c]) for c in columns])
        if _wants_log(stacked):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if len(columns) > 1 and len(columns) * len(unique_members) <= 8:
            ax.legend()
    return fig


# ---------------------------------------------------------------- search
def _generation_index(generations: Mapping[str, np.ndarray]):
    n_rows = _check_table(generations, ["generation", "member"], "generations")
    gen = _numeric(generations["generation"])
    member = _numeric(generations["member"])
    if gen is None or member is None:
        raise ValueError("generations: 'generation' and 'member' must be numeric columns")
    parent = np.full(n_rows, np.nan)
    if "parent" in generations and _numeric(generations["parent"]) is not None:
        parent = _numeric(generations["parent"])
    lookup = {(g, m): i for i, (g, m) in enumerate(zip(gen, member, strict=True))}
    return gen, member, parent, lookup


@_styled
def hparam_trajectories(
    generations: Mapping[str, np.ndarray],
    hparams: Sequence[str] | None = None,
    log_scaled: Sequence[str] = LOG_SCALED,
) -> Figure:
    """Hyperparameters of every member across generations, with the lineage of copies.

    Row ``(g, m)`` holds the values member ``m`` trained with in generation ``g``; a
    ``parent`` ``p`` on that row means ``m`` copied ``p`` at the start of ``g`` and then
    explored. Each member is a thin colored line; a copy event is drawn as a dashed black
    segment from the parent's point at ``g - 1`` to the child's new point at ``g`` (the
    child's own line is broken there, since its old values were discarded).

    Parameters
    ----------
    generations : mapping column -> array
        Needs ``generation``, ``member``; optional ``parent`` (NaN or empty = no copy).
    hparams : sequence of str, optional
        Columns to draw (default: the numeric columns among
        :data:`lfadskit.lfads.SEARCHABLE` names present).
    log_scaled : sequence of str
        Hyperparameters drawn on a log y axis (default :data:`LOG_SCALED`).

    Returns
    -------
    Figure
        One panel per hyperparameter.

    Examples
    --------
    >>> table = {"generation": np.array([0., 0, 1, 1]), "member": np.array([0., 1, 0, 1]),
    ...          "parent": np.array([np.nan, np.nan, np.nan, 0]),
    ...          "lr": np.array([1e-3, 2e-3, 1e-3, 1.2e-3])}
    >>> [ax.get_title() for ax in hparam_trajectories(table, ["lr"]).axes]
    ['lr']
    """
    gen, member, parent, lookup = _generation_index(generations)
    if hparams is None:
        from lfadskit.lfads.config import SEARCHABLE

        hparams = [h for h in SEARCHABLE if h in generations]
    hparams = [h for h in hparams if _numeric(generations.get(h, [])) is not None]
    if not hparams:
        raise ValueError(
            f"generations: no numeric hyperparameter column found (columns: {sorted(generations)})"
        )
    unique_members = np.unique(member)
    fig, axes = _new_figure(len(hparams), 3, panel_size=(3.8, 2.7))
    for ax, name in zip(axes, hparams, strict=True):
        values = _numeric(generations[name])
        for k, m in enumerate(unique_members):
            rows = np.flatnonzero(member == m)
            rows = rows[np.argsort(gen[rows])]
            palette = "tab10" if unique_members.size <= 10 else "tab20"
            color = matplotlib.colormaps[palette](k % (10 if palette == "tab10" else 20))
            ax.plot(gen[rows], values[rows], "o", color=color, markersize=2.5)
            for prev, cur in zip(rows[:-1], rows[1:], strict=True):
                copied = np.isfinite(parent[cur]) and parent[cur] != m
                if not copied:
                    ax.plot(gen[[prev, cur]], values[[prev, cur]], color=color, linewidth=1.0)
        for cur in np.flatnonzero(np.isfinite(parent) & (parent != member)):
            src = lookup.get((gen[cur] - 1, parent[cur]))
            if src is not None:
                ax.plot(
                    [gen[src], gen[cur]],
                    [values[src], values[cur]],
                    color="black",
                    linestyle="--",
                    linewidth=0.7,
                    alpha=0.6,
                )
        if name in log_scaled and np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("generation")
    copies = int(np.sum(np.isfinite(parent) & (parent != member)))
    fig.suptitle(
        f"{unique_members.size} members; dashed: copy from parent ({copies} copies)", fontsize=9
    )
    return fig


def is_lower_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is better: yes unless its name says bps, r2 or score."""
    return not any(word in metric for word in ("bps", "r2", "score", "acc"))


@_styled
def metric_by_generation(
    generations: Mapping[str, np.ndarray],
    metric: str | None = None,
    lower_is_better: bool | None = None,
) -> Figure:
    """The search metric per generation: every member, the median and the best.

    Parameters
    ----------
    generations : mapping column -> array
        Needs ``generation`` and the metric column; rows with a truthy ``failed`` column, a
        ``status`` of ``"failed"`` or a non-finite metric are drawn as red crosses at the
        panel bottom and left out of the median and best.
    metric : str, optional
        Column to draw (default: the first of ``metric``, ``valid_nll``, ``sv_nll`` present).
    lower_is_better : bool, optional
        Direction of "best" (default: lower, unless the name has bps/r2/score in it).

    Returns
    -------
    Figure

    Examples
    --------
    >>> table = {"generation": np.array([0., 0, 1, 1]), "member": np.array([0., 1, 0, 1]),
    ...          "metric": np.array([1.0, 0.9, 0.8, 0.85])}
    >>> metric_by_generation(table).axes[0].get_ylabel()
    'metric'
    """
    if metric is None:
        present = [c for c in ("metric", "valid_nll", "sv_nll") if c in generations]
        if not present:
            raise ValueError(
                "generations: no metric column ('metric', 'valid_nll' or 'sv_nll'); pass "
                f"metric= one of {sorted(generations)}"
            )
        metric = present[0]
    _check_table(generations, ["generation", metric], "generations")
    if lower_is_better is None:
        lower_is_better = is_lower_better(metric)
    gen = _numeric(generations["generation"])
    values = _numeric(generations[metric])
    if gen is None or values is None:
        raise ValueError(f"generations: 'generation' and {metric!r} must be numeric columns")
    failed = ~np.isfinite(values)
    if "failed" in generations and _numeric(generations["failed"]) is not None:
        failed |= np.nan_to_num(_numeric(generations["failed"])) != 0
    if "status" in generations:
        failed |= np.asarray(generations["status"]).astype(str) == "failed"
    fig, axes = _new_figure(1, 1, panel_size=(7.5, 3.2))
    ax = axes[0]
    ok = ~failed
    ax.plot(gen[ok], values[ok], "o", color="#9ca3af", markersize=3, label="each member")
    steps = np.unique(gen)
    best, median = [], []
    for g in steps:
        vals = values[ok & (gen == g)]
        best.append(np.nan if vals.size == 0 else (vals.min() if lower_is_better else vals.max()))
        median.append(np.nan if vals.size == 0 else np.median(vals))
    ax.plot(steps, median, color="C0", linewidth=1.5, label="median")
    ax.plot(steps, best, color="C1", linewidth=2.0, label="best")
    if failed.any():
        low = np.nanmin(values[ok]) if ok.any() else 0.0
        ax.plot(gen[failed], np.full(failed.sum(), low), "x", color="#dc2626", label="failed")
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per generation ({'lower' if lower_is_better else 'higher'} is better)")
    ax.legend(loc="best")
    return fig


@_styled
def metric_vs_hparams(
    results: Mapping[str, np.ndarray],
    metric: str,
    hparams: Sequence[str],
    log_scaled: Sequence[str] = LOG_SCALED,
    lower_is_better: bool | None = None,
) -> Figure:
    """A random search: the metric of every configuration against each hyperparameter.

    Parameters
    ----------
    results : mapping column -> array
        One row per configuration, with the ``metric`` and ``hparams`` columns.
    metric : str
    hparams : sequence of str
        One panel each (log x for names in ``log_scaled``).
    log_scaled : sequence of str
    lower_is_better : bool, optional
        Which configuration is marked best (default: lower unless bps/r2 in the name).

    Returns
    -------
    Figure

    Examples
    --------
    >>> table = {"lr": np.array([1e-4, 1e-3, 1e-2]), "metric": np.array([1.0, 0.8, 0.9])}
    >>> metric_vs_hparams(table, "metric", ["lr"]).axes[0].get_xscale()
    'log'
    """
    _check_table(results, [metric, *hparams], "results")
    if not hparams:
        raise ValueError("hparams: give at least one hyperparameter column")
    values = _numeric(results[metric])
    if values is None:
        raise ValueError(f"results: column {metric!r} must be numeric")
    if lower_is_better is None:
        lower_is_better = is_lower_better(metric)
    finite = np.isfinite(values)
    best = None
    if finite.any():
        score = np.where(finite, values, np.inf if lower_is_better else -np.inf)
        best = int(np.argmin(score) if lower_is_better else np.argmax(score))
    fig, axes = _new_figure(len(hparams), 4, panel_size=(3.0, 2.5))
    for ax, name in zip(axes, hparams, strict=True):
        x = _numeric(results[name])
        ax.plot(x[finite], values[finite], "o", color="C0", markersize=3.5, alpha=0.7)
        if best is not None:
            ax.plot(x[best], values[best], "*", color="C1", markersize=11, label="best")
        if name in log_scaled and np.nanmin(x) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
    fig.suptitle(
        f"{int(finite.sum())} configurations with a finite {metric} "
        f"({int((~finite).sum())} failed); star: best",
        fontsize=9,
    )
    return fig


# ---------------------------------------------------------------- rates
def _to_display(rates: np.ndarray, bin_size: float | None) -> tuple[np.ndarray, str]:
    if bin_size:
        return rates / bin_size, "spikes/s"
    return rates, "spikes/bin"


@_styled
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
    fig, axes = _new_figure(len(neurons) * len(trials), len(trials), panel_size=(3.4, 1.9))
    axes = axes.reshape(len(neurons), len(trials))
    for i, n in enumerate(neurons):
        for j, t in enumerate(trials):
            ax = axes[i, j]
            ax.plot(time, shown_truth[t, :, n], color=_TRUE, linewidth=1.2, label="true")
            ax.plot(time, shown_rates[t, :, n], color=_INFERRED, linewidth=1.2, label="inferred")
            ax.set_title(f"neuron {n}, trial {t}", fontsize=8, fontweight="normal")
            if j == 0:
                ax.set_ylabel(unit)
            if i == len(neurons) - 1:
                ax.set_xlabel("time (s)" if bin_size else "bin")
    axes[0, 0].legend(loc="upper right")
    return fig


@_styled
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
    fig, axes = _new_figure(1, 1, panel_size=(3.9, 3.7))
    ax = axes[0]
    ax.plot(x, y, ".", markersize=2, alpha=0.25, color=_INFERRED, rasterized=True)
    low, high = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([low, high], [low, high], color=_TRUE, linewidth=1, linestyle="--")
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


@_styled
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
@_styled
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
    fig, axes = _new_figure(n_dims * len(trials), len(trials), panel_size=(3.4, 2.0))
    axes = axes.reshape(n_dims, len(trials))
    for i in range(n_dims):
        for j, t in enumerate(trials):
            ax = axes[i, j]
            ax.plot(time, behavior[t, :, i], color=_TRUE, linewidth=1.2, label="true")
            ax.plot(time, decoded[t, :, i], color=_INFERRED, linewidth=1.2, label="decoded")
            trial = t if trial_ids is None else trial_ids[t]
            ax.set_title(f"{names[i]}, trial {trial}", fontsize=8, fontweight="normal")
            if i == n_dims - 1:
                ax.set_xlabel("time (s)" if bin_size else "bin")
    axes[0, 0].legend(loc="upper right")
    if r2 is not None:
        fig.suptitle(f"Ridge decoder from rates, held-out trials: R² = {r2:.3f}", fontsize=9)
    return fig


# ---------------------------------------------------------------- other outputs
@_styled
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
    fig, axes = _new_figure(len(trials), 3, panel_size=(3.6, 2.3))
    for ax, t in zip(axes, trials, strict=True):
        for d in range(min(max_dims, values.shape[2])):
            ax.plot(values[t, :, d], linewidth=1.0, label=f"{d}")
        ax.set_title(f"{name}, trial {t}", fontsize=8, fontweight="normal")
        ax.set_xlabel("bin")
    if values.shape[2] > 1:
        axes[-1].legend(title="dim", loc="upper right", ncols=2)
    return fig


@_styled
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
    fig, axes = _new_figure(1, 1, panel_size=(4.2, 3.6))
    ax = axes[0]
    y = projected[:, 1] if projected.shape[1] > 1 else np.zeros(values.shape[0])
    ax.scatter(projected[:, 0], y, c=colors, s=12)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})" if explained.size > 1 else "")
    ax.set_title(f"{name} per trial")
    return fig
