"""Figures of how a fit or a search progressed: training curves and search trajectories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from lfadskit.plot.common import (
    LOG_SCALED,
    as_numeric,
    check_table,
    label_text,
    member_column,
    new_figure,
    styled,
    wants_log,
)

__all__ = [
    "hparam_trajectories",
    "is_lower_better",
    "metric_by_generation",
    "metric_vs_hparams",
    "training_curves",
]

#: Columns that may hold a search's metric, in order of preference.
METRIC_COLUMNS = ("metric", "valid_nll", "sv_nll")
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


# ---------------------------------------------------------------- training history
@styled
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
    n_rows = check_table(history, ["epoch"], "history")
    epoch = as_numeric(history["epoch"])
    if epoch is None:
        raise ValueError("history: column 'epoch' must be numeric")
    numeric = [c for c in history if c not in _INDEX_COLUMNS and as_numeric(history[c]) is not None]
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
        (c, [c]) for c in rest if c in _HPARAM_NAMES and np.unique(as_numeric(history[c])).size > 1
    ]
    panels = panels[:max_panels]
    members = member_column(history, n_rows)
    unique_members = np.unique(members)
    fig, axes = new_figure(len(panels), 3)
    styles = ["-", "--", ":", "-."]
    for ax, (title, columns) in zip(axes, panels, strict=True):
        for j, column in enumerate(columns):
            values = as_numeric(history[column])
            for k, member in enumerate(unique_members):
                rows = np.flatnonzero(members == member)
                rows = rows[np.argsort(epoch[rows])]
                label = column if len(unique_members) == 1 else f"{column} m{label_text(member)}"
                ax.plot(
                    epoch[rows],
                    values[rows],
                    linestyle=styles[j % len(styles)],
                    color=f"C{k % 7}" if len(unique_members) > 1 else f"C{j % 7}",
                    linewidth=1.2,
                    label=label,
                )
        stacked = np.concatenate([as_numeric(history[c]) for c in columns])
        if wants_log(stacked):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if len(columns) > 1 and len(columns) * len(unique_members) <= 8:
            ax.legend()
    return fig


# ---------------------------------------------------------------- search
def _generation_index(generations: Mapping[str, np.ndarray]):
    n_rows = check_table(generations, ["generation", "member"], "generations")
    gen = as_numeric(generations["generation"])
    member = as_numeric(generations["member"])
    if gen is None or member is None:
        raise ValueError("generations: 'generation' and 'member' must be numeric columns")
    parent = np.full(n_rows, np.nan)
    if "parent" in generations and as_numeric(generations["parent"]) is not None:
        parent = as_numeric(generations["parent"])
    lookup = {(g, m): i for i, (g, m) in enumerate(zip(gen, member, strict=True))}
    return gen, member, parent, lookup


@styled
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
    hparams = [h for h in hparams if as_numeric(generations.get(h, [])) is not None]
    if not hparams:
        raise ValueError(
            f"generations: no numeric hyperparameter column found (columns: {sorted(generations)})"
        )
    unique_members = np.unique(member)
    fig, axes = new_figure(len(hparams), 3, panel_size=(3.8, 2.7))
    for ax, name in zip(axes, hparams, strict=True):
        values = as_numeric(generations[name])
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


@styled
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
        present = [c for c in METRIC_COLUMNS if c in generations]
        if not present:
            raise ValueError(
                "generations: no metric column ('metric', 'valid_nll' or 'sv_nll'); pass "
                f"metric= one of {sorted(generations)}"
            )
        metric = present[0]
    check_table(generations, ["generation", metric], "generations")
    if lower_is_better is None:
        lower_is_better = is_lower_better(metric)
    gen = as_numeric(generations["generation"])
    values = as_numeric(generations[metric])
    if gen is None or values is None:
        raise ValueError(f"generations: 'generation' and {metric!r} must be numeric columns")
    failed = ~np.isfinite(values)
    if "failed" in generations and as_numeric(generations["failed"]) is not None:
        failed |= np.nan_to_num(as_numeric(generations["failed"])) != 0
    if "status" in generations:
        failed |= np.asarray(generations["status"]).astype(str) == "failed"
    fig, axes = new_figure(1, 1, panel_size=(7.5, 3.2))
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


@styled
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
    check_table(results, [metric, *hparams], "results")
    if not hparams:
        raise ValueError("hparams: give at least one hyperparameter column")
    values = as_numeric(results[metric])
    if values is None:
        raise ValueError(f"results: column {metric!r} must be numeric")
    if lower_is_better is None:
        lower_is_better = is_lower_better(metric)
    finite = np.isfinite(values)
    best = None
    if finite.any():
        score = np.where(finite, values, np.inf if lower_is_better else -np.inf)
        best = int(np.argmin(score) if lower_is_better else np.argmax(score))
    fig, axes = new_figure(len(hparams), 4, panel_size=(3.0, 2.5))
    for ax, name in zip(axes, hparams, strict=True):
        x = as_numeric(results[name])
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
