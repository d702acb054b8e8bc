"""Figures of a fit or a search: each function takes arrays or tables and returns a Figure.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never through
``pyplot``, so they need no display, hold no global state and are freed with the object.
Tables are mappings ``column name -> 1-D array`` (as read by
:func:`lfadskit.report.read_table`); numeric columns are float arrays with NaN for empty cells.

Rates are expected spikes per bin; the rate figures show spikes per second when a
``bin_size`` (seconds) is given.

Modules: :mod:`~lfadskit.plot.progress` (training curves, search figures),
:mod:`~lfadskit.plot.outputs` (rates, latents, behavior and other outputs of a fit) and
:mod:`~lfadskit.plot.common` (the style and helpers they share).

Examples
--------
>>> import numpy as np
>>> from lfadskit import plot
>>> history = {"epoch": np.arange(5.0), "loss": np.linspace(2, 1, 5)}
>>> fig = plot.training_curves(history)
>>> len(fig.axes)
1
"""

from lfadskit.plot.common import LOG_SCALED
from lfadskit.plot.outputs import (
    decoded_behavior,
    latent_trajectories,
    output_pca,
    output_traces,
    pca_project,
    rates_scatter,
    rates_vs_truth,
)
from lfadskit.plot.progress import (
    hparam_trajectories,
    is_lower_better,
    metric_by_generation,
    metric_vs_hparams,
    training_curves,
)

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
