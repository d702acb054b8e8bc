"""Pieces shared by the figures: the style, the figure grid, table checks, small helpers.

Internal to :mod:`lfadskit.plot`; :data:`LOG_SCALED` is re-exported there.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["LOG_SCALED"]

#: Hyperparameters explored multiplicatively (log space); their panels get a log y axis.
LOG_SCALED = ("lr", "kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale")
STYLE = {
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
INFERRED_COLOR, TRUE_COLOR = "#2563eb", "#111827"


def styled(func):
    """Build the figure under the package style without touching global rcParams."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = func(*args, **kwargs)
        FigureCanvasAgg(fig)  # attach the Agg canvas: savefig then needs no backend
        return fig

    return wrapper


def new_figure(n_panels: int, n_cols: int, panel_size=(3.6, 2.6), **kwargs):
    n_cols = max(1, min(n_cols, n_panels))
    n_rows = int(np.ceil(n_panels / n_cols))
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False, **kwargs)).ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, axes[:n_panels]


def check_table(table: Mapping[str, np.ndarray], required: Sequence[str], name: str) -> int:
    missing = [c for c in required if c not in table]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; columns: {sorted(table)}")
    lengths = {len(np.asarray(v)) for v in table.values()}
    if len(lengths) != 1:
        raise ValueError(f"{name}: columns have different lengths {sorted(lengths)}")
    return lengths.pop()


def as_numeric(values) -> np.ndarray | None:
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64)
    return None


def wants_log(values: np.ndarray) -> bool:
    """Log axis for strictly positive values spanning more than ~two decades."""
    finite = values[np.isfinite(values)]
    return finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() > 50


def label_text(value) -> str:
    """``3.0`` -> ``'3'``; anything else as str."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def member_column(table: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
    if "member" in table:
        return np.asarray(table["member"])
    return np.zeros(n_rows)
