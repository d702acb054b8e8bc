"""The data container: spike counts and everything that travels with them.

Every array is trial x time x neuron (or trial x time x dims). Spike counts are
stored as float32 so that a missing target can be NaN; observed counts must be
non-negative whole numbers.

Layout of the reconstruction target (what a model predicts), see ``SpikeData.recon``::

                 held-in neurons    held-out neurons
    time bins    spikes             heldout
    forward bins forward[..., :n_neurons]  forward[..., n_neurons:]

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> counts = np.random.default_rng(0).poisson(1.0, size=(10, 20, 5))
>>> data = SpikeData(spikes=counts)
>>> data.n_trials, data.n_timesteps, data.n_neurons
(10, 20, 5)
>>> data.recon.shape
(10, 20, 5)
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DataError", "SpikeData", "make_split"]

SPLITS = ("train", "valid")


class DataError(ValueError):
    """Invalid input data. The message names the field, the problem and the fix."""


def make_split(n_trials: int, valid_fraction: float = 0.2, seed: int = 0):
    """Split ``n_trials`` trial indices at random into sorted train and valid indices.

    Parameters
    ----------
    n_trials : int
        Number of trials.
    valid_fraction : float
        Fraction of trials in the valid split (rounded, at least 2 trials each side).
    seed : int
        Seed of the permutation.

    Returns
    -------
    train_idx, valid_idx : ndarray of int64

    Examples
    --------
    >>> train, valid = make_split(10, 0.2, seed=0)
    >>> len(train), len(valid)
    (8, 2)
    """
    if not 0.0 < valid_fraction < 1.0:
        raise DataError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    n_valid = int(round(n_trials * valid_fraction))
    n_valid = min(max(n_valid, 2), n_trials - 2)
    if n_trials < 4 or n_valid < 2:
        raise DataError(
            f"too few trials to split: {n_trials} trials, need at least 4 "
            "(2 for train and 2 for valid)"
        )
    perm = np.random.default_rng(seed).permutation(n_trials)
    return np.sort(perm[n_valid:]).astype(np.int64), np.sort(perm[:n_valid]).astype(np.int64)


def _as_float_array(name: str, value: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(
            f"{name}: expected a numeric array, got dtype {arr.dtype}; "
            "convert it with np.asarray(x, dtype=float)"
        )
    if np.iscomplexobj(arr):
        raise DataError(f"{name}: complex values are not allowed; pass real numbers")
    if arr.ndim != ndim:
        layout = {3: "trial x time x neuron", 1: "one value per trial"}[ndim]
        raise DataError(f"{name}: expected {ndim} dimensions ({layout}), got shape {arr.shape}")
    return arr


def _first_index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_counts(name: str, value: Any, allow_nan: bool) -> np.ndarray:
    arr = _as_float_array(name, value, 3)
    if 0 in arr.shape:
        what = ("trials", "time bins", "neurons")[arr.shape.index(0)]
        raise DataError(f"{name}: has zero {what} (shape {arr.shape}); every axis needs data")
    arr = arr.astype(np.float32) if arr.dtype != np.float32 else arr
    nan = np.isnan(arr)
    if nan.any() and not allow_nan:
        raise DataError(
            f"{name}: NaN at index {_first_index(nan)} (trial, time, neuron); input spike "
            "counts must all be observed; drop or fill those trials"
        )
    if np.isinf(arr).any():
        raise DataError(f"{name}: infinite value at index {_first_index(np.isinf(arr))}")
    observed = np.where(nan, 0.0, arr)
    if (observed < 0).any():
        idx = _first_index(observed < 0)
        raise DataError(
            f"{name}: negative count {arr[idx]} at index {idx} (trial, time, neuron); "
            "spike counts must be >= 0"
        )
    frac = observed != np.round(observed)
    if frac.any():
        idx = _first_index(frac)
        raise DataError(
            f"{name}: non-integer count {arr[idx]} at index {idx} (trial, time, neuron); "
            "pass binned spike counts, not rates or smoothed data"
        )
    return arr


def _check_real(name: str, value: Any, allow_nan: bool, ndim: int = 3) -> np.ndarray:
    arr = _as_float_array(name, value, ndim).astype(np.float32)
    if not allow_nan and np.isnan(arr).any():
        raise DataError(f"{name}: NaN at index {_first_index(np.isnan(arr))}")
    if np.isinf(arr).any():
        raise DataError(f"{name}: infinite value at index {_first_index(np.isinf(arr))}")
    return arr


def _check_aligned(name: str, arr: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """``arr`` must have the trials and time bins of ``spikes`` (any last axis)."""
    if arr.shape[:2] != spikes.shape[:2]:
        raise DataError(
            f"{name}: shape {arr.shape} does not match (n_trials, n_timesteps)"
            f" = {spikes.shape[:2]} of spikes"
        )
    return arr


def _check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...], meaning: str) -> None:
    if arr.shape != expected:
        raise DataError(f"{name}: shape {arr.shape} does not match {meaning} {expected}")


def _check_index(name: str, value: Any, n_trials: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise DataError(f"{name}: expected a 1-D array of integer trial indices, got {arr!r}")
    arr = arr.astype(np.int64)
    if arr.size < 2:
        raise DataError(
            f"{name}: has {arr.size} trial(s); each split needs at least 2 trials "
            "(use make_split or pass more trials)"
        )
    bad = (arr < 0) | (arr >= n_trials)
    if bad.any():
        raise DataError(
            f"{name}: trial index {int(arr[bad][0])} out of range for {n_trials} trials"
        )
    if np.unique(arr).size != arr.size:
        raise DataError(f"{name}: contains repeated trial indices")
    return np.sort(arr)


@dataclass(frozen=True, eq=False)
class SpikeData:
    """Binned spike counts of a set of trials, with targets, behavior, truth and split.

    Parameters
    ----------
    spikes : array (n_trials, n_timesteps, n_neurons)
        Encoder-input counts of the held-in neurons. Non-negative integers, no NaN.
    heldout : array (n_trials, n_timesteps, n_heldout), optional
        Counts of held-out neurons (predicted, never input). NaN marks unobserved trials.
    forward : array (n_trials, n_forward, n_neurons + n_heldout), optional
        Counts in the bins after the input window (forward prediction), held-in neurons
        first. NaN marks unobserved trials.
    behavior : array (n_trials, n_timesteps, n_behavior), optional
        Behavior aligned to the bins (e.g. hand velocity). NaN marks unobserved trials.
    truth : array (n_trials, n_timesteps + n_forward, n_neurons + n_heldout), optional
        Ground-truth rates in expected spikes per bin (simulated data), same layout as
        ``recon``.
    conditions : array (n_trials,), optional
        Integer condition label of each trial.
    ext_input : array (n_trials, n_timesteps, n_ext), optional
        External inputs fed to the generator.
    bin_size : float
        Bin width in seconds.
    train_idx, valid_idx : array of int, optional
        Trial indices of each split. When both are None a seeded random split with
        20 % valid trials is made (``make_split(n_trials, 0.2, seed=0)``).
    name : str
        Short description of the dataset.
    meta : dict
        Free-form provenance (source file, layout, simulator settings).
    """

    spikes: np.ndarray
    heldout: np.ndarray | None = None
    forward: np.ndarray | None = None
    behavior: np.ndarray | None = None
    truth: np.ndarray | None = None
    conditions: np.ndarray | None = None
    ext_input: np.ndarray | None = None
    bin_size: float = 0.005
    train_idx: np.ndarray | None = None
    valid_idx: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = lambda key, val: object.__setattr__(self, key, val)  # noqa: E731 (frozen)
        spikes = _check_counts("spikes", self.spikes, allow_nan=False)
        put("spikes", spikes)
        n_trials, n_timesteps, n_neurons = spikes.shape
        if self.heldout is not None:
            put(
                "heldout",
                _check_aligned(
                    "heldout", _check_counts("heldout", self.heldout, allow_nan=True), spikes
                ),
            )
        n_out = n_neurons + self.n_heldout
        if self.forward is not None:
            forward = _check_counts("forward", self.forward, allow_nan=True)
            if forward.shape[0] != n_trials or forward.shape[2] != n_out:
                raise DataError(
                    f"forward: shape {forward.shape} does not match (n_trials={n_trials}, "
                    f"n_forward, n_neurons + n_heldout={n_out})"
                )
            put("forward", forward)
        if self.behavior is not None:
            put(
                "behavior",
                _check_aligned(
                    "behavior", _check_real("behavior", self.behavior, allow_nan=True), spikes
                ),
            )
        if self.truth is not None:
            truth = _check_real("truth", self.truth, allow_nan=False)
            _check_shape("truth", truth, self.recon_shape, "recon shape")
            if (truth < 0).any():
                raise DataError(f"truth: negative rate at index {_first_index(truth < 0)}")
            put("truth", truth)
        if self.ext_input is not None:
            put(
                "ext_input",
                _check_aligned(
                    "ext_input", _check_real("ext_input", self.ext_input, allow_nan=False), spikes
                ),
            )
        if self.conditions is not None:
            cond = np.asarray(self.conditions)
            if cond.shape != (n_trials,) or not np.issubdtype(cond.dtype, np.integer):
                raise DataError(
                    f"conditions: expected {n_trials} integer labels, got dtype {cond.dtype} "
                    f"shape {cond.shape}"
                )
            put("conditions", cond.astype(np.int64))
        if not np.isfinite(self.bin_size) or self.bin_size <= 0:
            raise DataError(f"bin_size: must be a positive number of seconds, got {self.bin_size}")
        put("bin_size", float(self.bin_size))
        if (self.train_idx is None) != (self.valid_idx is None):
            raise DataError("train_idx and valid_idx: give both or neither")
        if self.train_idx is None:
            train_idx, valid_idx = make_split(n_trials)
        else:
            train_idx = _check_index("train_idx", self.train_idx, n_trials)
            valid_idx = _check_index("valid_idx", self.valid_idx, n_trials)
            both = np.intersect1d(train_idx, valid_idx)
            if both.size:
                raise DataError(f"train_idx and valid_idx: trial {int(both[0])} is in both")
        put("train_idx", train_idx)
        put("valid_idx", valid_idx)
        put("meta", dict(self.meta))
        silent = np.flatnonzero(spikes[train_idx].sum(axis=(0, 1)) == 0)
        if silent.size:
            warnings.warn(
                f"spikes: {silent.size} neuron(s) never fire in the train trials "
                f"(first: {silent[:5].tolist()}); they carry no information",
                stacklevel=3,
            )

    # ---------------------------------------------------------------- sizes
    @property
    def n_trials(self) -> int:
        return self.spikes.shape[0]

    @property
    def n_timesteps(self) -> int:
        return self.spikes.shape[1]

    @property
    def n_neurons(self) -> int:
        """Number of held-in (input) neurons."""
        return self.spikes.shape[2]

    @property
    def n_heldout(self) -> int:
        return 0 if self.heldout is None else self.heldout.shape[2]

    @property
    def n_forward(self) -> int:
        return 0 if self.forward is None else self.forward.shape[1]

    @property
    def n_neurons_out(self) -> int:
        return self.n_neurons + self.n_heldout

    @property
    def n_timesteps_out(self) -> int:
        return self.n_timesteps + self.n_forward

    @property
    def recon_shape(self) -> tuple[int, int, int]:
        return (self.n_trials, self.n_timesteps_out, self.n_neurons_out)

    # ---------------------------------------------------------------- views
    @property
    def recon(self) -> np.ndarray:
        """Reconstruction target (n_trials, n_timesteps + n_forward, n_neurons + n_heldout).

        NaN marks elements that were not observed; losses and metrics skip them.
        """
        in_window = self.spikes
        if self.heldout is not None:
            in_window = np.concatenate([in_window, self.heldout], axis=2)
        if self.forward is not None:
            in_window = np.concatenate([in_window, self.forward], axis=1)
        return in_window

    def index(self, split: str) -> np.ndarray:
        """Trial indices of ``split``: 'train', 'valid' or 'all'."""
        if split == "train":
            return self.train_idx
        if split == "valid":
            return self.valid_idx
        if split == "all":
            return np.arange(self.n_trials)
        raise ValueError(f"split: expected 'train', 'valid' or 'all', got {split!r}")

    def replace(self, **changes: Any) -> SpikeData:
        """A validated copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_split(self, valid_fraction: float = 0.2, seed: int = 0) -> SpikeData:
        """A copy with a new seeded random train/valid split."""
        train_idx, valid_idx = make_split(self.n_trials, valid_fraction, seed)
        return self.replace(train_idx=train_idx, valid_idx=valid_idx)

    def summary(self) -> str:
        """One line describing the sizes and the optional fields present."""
        parts = [
            f"{self.n_trials} trials ({self.train_idx.size} train, {self.valid_idx.size} valid)",
            f"{self.n_timesteps} bins of {self.bin_size * 1000:g} ms",
            f"{self.n_neurons} held-in neurons",
        ]
        if self.n_heldout:
            parts.append(f"{self.n_heldout} held-out neurons")
        if self.n_forward:
            parts.append(f"{self.n_forward} forward bins")
        extras = [
            k
            for k in ("behavior", "truth", "conditions", "ext_input")
            if getattr(self, k) is not None
        ]
        if extras:
            parts.append("with " + ", ".join(extras))
        return ", ".join(parts)

    def __repr__(self) -> str:
        label = f"{self.name!r}: " if self.name else ""
        return f"SpikeData({label}{self.summary()})"
