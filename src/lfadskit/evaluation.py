"""Every metric the data allows, for each split, in one call.

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> rng = np.random.default_rng(0)
>>> data = SpikeData(spikes=rng.poisson(1.0, size=(10, 20, 4)))
>>> metrics = evaluate_rates(data, np.ones(data.recon_shape))
>>> sorted(metrics["valid"])
['bps', 'nll']
"""

from __future__ import annotations

import numpy as np

from lfadskit.baseline import gaussian_smooth
from lfadskit.data import SpikeData
from lfadskit.metrics import (
    bits_per_spike,
    condition_psth,
    poisson_nll,
    psth_r2,
    rate_r2,
    velocity_r2,
    velocity_r2_cv,
)

__all__ = ["METRIC_KEYS", "PSTH_SMOOTH_SD", "evaluate_rates", "format_table"]

#: Metric names in display order (see :func:`evaluate_rates`).
METRIC_KEYS = ("nll", "bps", "co_bps", "fp_bps", "rate_r2", "vel_r2", "psth_r2")
#: Gaussian kernel std (seconds) that smooths counts into reference PSTHs when there is no truth.
PSTH_SMOOTH_SD = 0.05


def _check_rates(data: SpikeData, rates) -> np.ndarray:
    rates = np.asarray(rates, dtype=np.float64)
    if rates.shape != data.recon_shape:
        raise ValueError(
            f"rates: shape {rates.shape} does not match data.recon_shape {data.recon_shape} "
            "(all trials; window then forward bins; held-in then held-out neurons)"
        )
    if not np.isfinite(rates).all():
        raise ValueError("rates: contains NaN or infinite values; predict every element")
    if (rates < 0).any():
        raise ValueError(f"rates: negative values (min {rates.min():g}); rates must be >= 0")
    return rates


def _finite(value: float) -> bool:
    return value is not None and bool(np.isfinite(value))


def _observed_trials(counts: np.ndarray) -> np.ndarray:
    """Indices (into ``counts``) of trials with at least one observed element."""
    return np.flatnonzero(~np.isnan(counts).all(axis=(1, 2)))


def _velocity(data: SpikeData, rates: np.ndarray, split: str, n_folds: int, seed: int):
    """vel_r2 of one split, or None when the split (or train) has no behavior."""
    window = rates[:, : data.n_timesteps, :]
    behavior = data.behavior
    has_behavior = ~np.isnan(behavior).any(axis=(1, 2))
    train = data.train_idx[has_behavior[data.train_idx]]
    if split == "train":
        if train.size < 2:
            return None
        return velocity_r2_cv(window[train], behavior[train], min(n_folds, train.size), seed)
    trials = data.index(split)
    trials = trials[has_behavior[trials]]
    if trials.size == 0 or train.size < 2:
        return None
    return velocity_r2(window[train], behavior[train], window[trials], behavior[trials])


def _psth(data: SpikeData, rates: np.ndarray, trials: np.ndarray):
    """psth_r2 on the window bins of ``trials``, vs truth or vs smoothed counts."""
    window = slice(0, data.n_timesteps)
    conditions = data.conditions[trials]
    pred = rates[trials, window, :]
    if data.truth is not None:
        reference, labels = condition_psth(data.truth[trials, window, :], conditions)
    else:
        counts = data.recon[trials, window, :]
        smoothed = gaussian_smooth(counts, PSTH_SMOOTH_SD / data.bin_size)
        reference, labels = condition_psth(smoothed, conditions)
    # Neurons never observed in some condition (e.g. held-out neurons of trials without
    # targets) have no reference there; score only neurons observed in every condition.
    neurons = ~np.isnan(reference).all(axis=1).any(axis=0)
    if not neurons.any() or labels.size * data.n_timesteps < 2:
        return None
    return psth_r2(conditions, pred[..., neurons], reference[..., neurons], labels)


def evaluate_rates(
    data: SpikeData,
    rates: np.ndarray,
    splits=("train", "valid"),
    n_folds: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Score predicted rates on every metric that ``data`` allows, per split.

    Keys per split (each present only when the data allow it and the value is finite):

    - ``nll``: mean Poisson NLL (with ``log k!``) of the held-in neurons in the input window;
    - ``bps``: bits per spike of the held-in neurons in the window;
    - ``co_bps``: bits per spike of the held-out neurons in the window (trials of the split
      whose held-out counts are observed);
    - ``fp_bps``: bits per spike of all neurons in the forward bins (observed trials);
    - ``rate_r2``: R² against ``data.truth`` over the whole recon layout;
    - ``vel_r2``: ridge decoding of behavior from the window rates of all output neurons.
      "train": trial-wise ``n_folds``-fold CV within the train trials
      (:func:`~lfadskit.metrics.velocity_r2_cv`). Other splits: decoder fit on the train
      trials and scored on the split's trials, omitted when they have no behavior;
    - ``psth_r2``: when ``data.conditions`` exist; condition-averaged predicted rates (window
      bins, all output neurons) against the condition-averaged truth, or, without truth,
      against condition-averaged counts smoothed with a Gaussian kernel of
      ``PSTH_SMOOTH_SD`` (50 ms), using only the split's trials (neurons unobserved in some
      condition are left out).

    Parameters
    ----------
    data : SpikeData
    rates : array ``data.recon_shape``
        Expected spikes per bin for all trials: held-in then held-out neurons, window bins
        then forward bins.
    splits : sequence of str
        Splits to score ("train", "valid", "all").
    n_folds, seed : int
        Folds and shuffle seed of the train-split velocity cross-validation.

    Returns
    -------
    dict[str, dict[str, float]]
        ``{split: {metric: value}}`` in ``METRIC_KEYS`` order.
    """
    if not isinstance(data, SpikeData):
        raise TypeError(f"data: expected a SpikeData, got {type(data).__name__}")
    rates = _check_rates(data, rates)
    n_in, n_t = data.n_neurons, data.n_timesteps
    results: dict[str, dict[str, float]] = {}
    for split in splits:
        trials = data.index(split)
        values: dict[str, float | None] = {}
        spikes = data.spikes[trials]
        values["nll"] = poisson_nll(spikes, rates[trials, :n_t, :n_in])
        values["bps"] = bits_per_spike(spikes, rates[trials, :n_t, :n_in])
        if data.n_heldout:
            heldout = data.heldout[trials]
            seen = _observed_trials(heldout)
            if seen.size:
                values["co_bps"] = bits_per_spike(heldout[seen], rates[trials[seen], :n_t, n_in:])
        if data.n_forward:
            forward = data.forward[trials]
            seen = _observed_trials(forward)
            if seen.size:
                values["fp_bps"] = bits_per_spike(forward[seen], rates[trials[seen], n_t:, :])
        if data.truth is not None:
            values["rate_r2"] = rate_r2(data.truth[trials], rates[trials])
        if data.behavior is not None:
            values["vel_r2"] = _velocity(data, rates, split, n_folds, seed)
        if data.conditions is not None:
            values["psth_r2"] = _psth(data, rates, trials)
        results[split] = {
            key: float(values[key]) for key in METRIC_KEYS if _finite(values.get(key))
        }
    return results


def format_table(metrics: dict[str, dict[str, float]], digits: int = 4) -> str:
    """Aligned text table: one row per metric, one column per split ("-" when absent).

    Examples
    --------
    >>> print(format_table({"train": {"bps": 0.1}, "valid": {"bps": 0.05, "co_bps": 0.2}}))
    metric   train   valid
    bps     0.1000  0.0500
    co_bps       -  0.2000
    """
    splits = list(metrics)
    known = [k for k in METRIC_KEYS if any(k in metrics[s] for s in splits)]
    extra = sorted({k for s in splits for k in metrics[s]} - set(METRIC_KEYS))
    rows = [["metric", *splits]]
    for key in known + extra:
        cells = [f"{metrics[s][key]:.{digits}f}" if key in metrics[s] else "-" for s in splits]
        rows.append([key, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        first = row[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    return "\n".join(lines)
