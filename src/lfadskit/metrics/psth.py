"""Peri-stimulus time histograms (condition averages) and their R² against a reference."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import r2_score

from lfadskit.metrics.rates import check_rates

__all__ = ["condition_psth", "psth_r2"]


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
    rates = check_rates("rates", rates)
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
