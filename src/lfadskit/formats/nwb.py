"""Read NWB recordings into trial tensors or continuous segments; write outputs back to NWB.

Needs the optional ``nwb`` extra (``pip install "lfadskit[nwb]"``, which brings pynwb);
pynwb is imported only inside the functions.

- :func:`load_nwb`: units' spike times + the trials table -> trials aligned to a column of
  the trials table (e.g. ``move_onset_time``), binned into trial x time x neuron counts.
- ``nwb_continuous.load_nwb_continuous``: the whole recording binned, then chopped into
  overlapping segments (:func:`lfadskit.continuous.chop`); merge rates back with
  :func:`lfadskit.continuous.merge` and ``meta["starts"]``.
- ``nwb_write.write_nwb_outputs``: a copy of the source file with a processing module
  "lfadskit" holding the inferred rates (and factors) per trial.

Binning convention: bins are half-open, ``[left, right)``. Spike times, alignment times,
window and bin size are rounded to whole nanoseconds and compared as integers
(:func:`lfadskit.continuous.to_nanoseconds`), so a spike that sits exactly on a bin edge
(in MC_Maze_Small, 223 of 32,897 spikes, 0.7 %: spike times are 30 kHz samples stored to
1 us and the alignment times sit on whole milliseconds) always counts in the bin that
starts at that edge, independent of floating-point rounding.

Examples
--------
>>> data = load_nwb("sub-Jenkins_ses-small_desc-test_ecephys.nwb", align="move_onset_time",
...                 window=(-0.25, 0.45), bin_size=0.005)  # doctest: +SKIP
>>> data.spikes.shape  # doctest: +SKIP
(100, 140, 107)
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from lfadskit.continuous import count_in_bins, to_nanoseconds
from lfadskit.data import DataError, SpikeData, make_split

__all__ = ["load_nwb"]

logger = logging.getLogger("lfadskit")

TRAIN_VALUES = ("train",)
VALID_VALUES = ("val", "valid", "validation")
OUTPUT_MODULE = "lfadskit"
_SHOW = 10  # how many ids an error message lists before "..."


def _pynwb():
    try:
        import pynwb
    except ImportError as err:
        raise ImportError(
            'reading and writing NWB files needs pynwb: pip install "lfadskit[nwb]"'
        ) from err
    return pynwb


def _listing(values) -> str:
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    more = f" ... ({len(values)} in all)" if len(values) > _SHOW else ""
    return ", ".join(map(repr, values[:_SHOW])) + more


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------------------ reading parts
def _read_units(nwbfile, path, heldout=None) -> dict:
    """Unit ids, sorted spike times (int ns), merged obs_intervals (int ns, or None), and
    the units column named by ``heldout`` when it is a string (read while the file is open)."""
    units = nwbfile.units
    if units is None or len(units) == 0:
        raise DataError(f"{path}: the file has no units table (spike-sorted units); nothing to bin")
    ids = np.asarray(units.id.data[:], dtype=np.int64)
    spikes = [
        np.sort(to_nanoseconds(units.get_unit_spike_times(i), "spike_times"))
        for i in range(len(ids))
    ]
    obs = None
    if "obs_intervals" in units.colnames:
        obs = [
            _merge_intervals(to_nanoseconds(units.get_unit_obs_intervals(i)))
            for i in range(len(ids))
        ]
    column = None
    if isinstance(heldout, str):
        if heldout not in units.colnames:
            raise DataError(
                f"heldout: no units column {heldout!r}; units columns: "
                f"{', '.join(sorted(units.colnames))}"
            )
        column = np.asarray(units[heldout].data[:])
    return {"ids": ids, "spikes": spikes, "obs": obs, "heldout_column": column}


def _merge_intervals(intervals_ns: np.ndarray) -> np.ndarray:
    """Sort (n, 2) intervals and join those that overlap or touch."""
    intervals_ns = np.asarray(intervals_ns, dtype=np.int64).reshape(-1, 2)
    merged: list[list[int]] = []
    for start, stop in intervals_ns[np.argsort(intervals_ns[:, 0])]:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], int(stop))
        else:
            merged.append([int(start), int(stop)])
    return np.asarray(merged, dtype=np.int64).reshape(-1, 2)


def _inside(intervals_ns: np.ndarray, lo_ns: np.ndarray, hi_ns: np.ndarray) -> np.ndarray:
    """Whether each [lo, hi] lies inside one of the merged, sorted intervals."""
    if intervals_ns.shape[0] == 0:
        return np.zeros(lo_ns.shape, dtype=bool)
    which = np.searchsorted(intervals_ns[:, 0], lo_ns, side="right") - 1
    safe = np.clip(which, 0, None)
    return (which >= 0) & (intervals_ns[safe, 1] >= hi_ns)


def _read_trials(nwbfile, path, wanted) -> dict[str, np.ndarray | None]:
    """The trials-table columns named in ``wanted`` (and ``id``); other columns map to None
    (only listed in errors: ragged or reference columns need not be read)."""
    trials = nwbfile.trials
    if trials is None or len(trials) == 0:
        raise DataError(
            f"{path}: the file has no trials table; use load_nwb_continuous to cut the "
            "recording into segments instead"
        )
    table = dict.fromkeys(trials.colnames)
    for name in set(wanted) & set(trials.colnames):
        column = np.asarray(trials[name].data[:])
        if column.dtype.kind in "SO":  # text may come back as bytes
            column = np.array([v.decode() if isinstance(v, bytes) else v for v in column])
        table[name] = column
    table["id"] = np.asarray(trials.id.data[:], dtype=np.int64)
    return table


def _column(table: dict, name: str, what: str, path) -> np.ndarray:
    if name not in table:
        raise DataError(
            f"{what}: column {name!r} not in the trials table of {path}; columns: "
            f"{', '.join(sorted(table))}"
        )
    return table[name]


def _time_series(nwbfile) -> dict:
    """Every TimeSeries in acquisition and processing modules, keyed by its path."""
    pynwb = _pynwb()
    found = {}

    def visit(prefix, container):
        if isinstance(container, pynwb.TimeSeries):
            found[f"{prefix}/{container.name}"] = container
            return
        for group in ("time_series", "spatial_series"):  # BehavioralTimeSeries, Position, ...
            for child in (getattr(container, group, None) or {}).values():
                visit(f"{prefix}/{container.name}", child)

    for obj in nwbfile.acquisition.values():
        visit("acquisition", obj)
    for module in nwbfile.processing.values():
        for obj in module.data_interfaces.values():
            visit(f"processing/{module.name}", obj)
    return found


def _read_behavior(nwbfile, name: str, path) -> tuple[str, np.ndarray, np.ndarray]:
    """(path in file, times in s, values (n_samples, n_dims)) of the series called ``name``."""
    found = _time_series(nwbfile)
    matches = [key for key in found if key == name or key.rsplit("/", 1)[-1] == name]
    if not matches:
        raise DataError(
            f"behavior: no time series {name!r} in {path}; available: "
            f"{', '.join(sorted(found)) or 'none'}"
        )
    if len(matches) > 1:
        raise DataError(f"behavior: {name!r} is ambiguous in {path}; pass one of {matches}")
    series = found[matches[0]]
    values = np.asarray(series.data[:], dtype=np.float64)
    values = values * series.conversion + (getattr(series, "offset", 0.0) or 0.0)
    values = values.reshape(values.shape[0], -1)
    if series.timestamps is not None:
        times = np.asarray(series.timestamps[:], dtype=np.float64)
    else:
        times = series.starting_time + np.arange(values.shape[0]) / series.rate
    if times.size < 2 or (np.diff(times) <= 0).any():
        raise DataError(
            f"behavior: the timestamps of {matches[0]!r} must increase strictly and hold at "
            "least 2 samples to interpolate"
        )
    return matches[0], times, values


def _interpolate(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of each column of ``values`` at times ``at`` (any shape)."""
    flat = at.ravel()
    out = np.stack([np.interp(flat, times, values[:, d]) for d in range(values.shape[1])], -1)
    return out.reshape(*at.shape, values.shape[1])


def _select_heldout(heldout, units: dict, seed: int) -> np.ndarray:
    """Boolean mask over units: True for held-out units."""
    ids = units["ids"]
    if heldout is None:
        return np.zeros(ids.size, dtype=bool)
    if isinstance(heldout, str):
        column = units["heldout_column"]
        if column.shape != ids.shape or column.dtype.kind not in "bi":
            raise DataError(f"heldout: units column {heldout!r} must hold one bool per unit")
        mask = column.astype(bool)
    elif isinstance(heldout, float):
        if not 0.0 < heldout < 1.0:
            raise ValueError(f"heldout: a fraction must be in (0, 1), got {heldout}")
        n_out = min(max(int(round(heldout * ids.size)), 1), ids.size - 1)
        mask = np.zeros(ids.size, dtype=bool)
        mask[np.random.default_rng(seed).choice(ids.size, n_out, replace=False)] = True
    elif isinstance(heldout, (int, np.integer)):
        raise ValueError(f"heldout: pass a list of unit ids or a fraction, got {heldout!r}")
    else:
        wanted = np.asarray(list(heldout))
        if wanted.size and not np.issubdtype(wanted.dtype, np.integer):
            raise ValueError(f"heldout: expected unit ids (integers), got {heldout!r}")
        unknown = np.setdiff1d(wanted, ids)
        if unknown.size:
            raise DataError(
                f"heldout: unit ids {_listing(unknown)} are not in the file; unit ids: "
                f"{_listing(ids)}"
            )
        mask = np.isin(ids, wanted)
    if mask.all():
        raise DataError("heldout: every unit is held out; keep at least one held-in unit")
    return mask


def _window_ns(window, bin_size) -> tuple[int, int, int]:
    try:
        start, stop = (float(v) for v in window)
    except (TypeError, ValueError) as err:
        raise ValueError(f"window: expected (start, stop) in seconds, got {window!r}") from err
    bin_ns = int(to_nanoseconds(bin_size, "bin_size")) if np.isfinite(bin_size) else 0
    if bin_ns <= 0:
        raise ValueError(f"bin_size: must be a positive number of seconds, got {bin_size}")
    start_ns, stop_ns = (int(v) for v in to_nanoseconds([start, stop], "window"))
    if stop_ns <= start_ns:
        raise ValueError(f"window: stop must be after start, got {window!r}")
    if (stop_ns - start_ns) % bin_ns:
        raise ValueError(
            f"window: its length {stop - start:g} s is not a whole number of {bin_size:g} s "
            "bins; adjust the window or bin_size"
        )
    return start_ns, stop_ns, bin_ns


def _split_indices(values: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray]:
    labels = np.char.lower(values.astype(str))
    train_idx = np.flatnonzero(np.isin(labels, TRAIN_VALUES))
    valid_idx = np.flatnonzero(np.isin(labels, VALID_VALUES))
    if train_idx.size < 2 or valid_idx.size < 2:
        seen, counts = np.unique(values.astype(str), return_counts=True)
        found = dict(zip(seen.tolist(), counts.tolist(), strict=True))
        raise DataError(
            f"split: column {column!r} gives {train_idx.size} train and {valid_idx.size} valid "
            f"trials (values {found}); each split needs "
            f"at least 2 (train: {TRAIN_VALUES}, valid: {VALID_VALUES}); pass split=None for "
            "a seeded random split"
        )
    return train_idx, valid_idx


def load_nwb(
    path: str | os.PathLike,
    align: str = "move_onset_time",
    window: tuple[float, float] = (-0.25, 0.45),
    bin_size: float = 0.005,
    heldout=None,
    behavior: str | None = None,
    behavior_lag: float = 0.0,
    trial_filter: dict | None = None,
    split: str | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
    drop_out_of_range: bool = False,
    bounds: str = "trial",
    conditions: str | None = None,
) -> SpikeData:
    """Read an NWB file into trials aligned to a column of its trials table, binned.

    Parameters
    ----------
    path : str or PathLike
        NWB file with a units table (spike times) and a trials table.
    align : str
        Trials-table column holding each trial's alignment time in seconds.
    window : (float, float)
        Start and stop of each trial's window relative to its alignment time, in seconds;
        a whole number of bins long.
    bin_size : float
        Bin width in seconds. Bins are half-open ``[left, right)`` (see module docstring).
    heldout : None, list of int, float or str
        Units to hold out (predicted, never input): their unit ids, a fraction of the units
        drawn at random with ``seed``, or the name of a boolean units column (e.g. NLB's
        ``"heldout"``). Held-in and held-out units each keep the file's order.
    behavior : str, optional
        Name (or path such as ``"processing/behavior/hand_vel"``) of a TimeSeries in
        acquisition or a processing module; resampled by linear interpolation.
    behavior_lag : float
        Seconds; the behavior at time ``t + behavior_lag`` is attached to the bin centered
        at ``t``.
    trial_filter : dict, optional
        ``{column: value or list of values}``: keep trials whose column matches.
    split : str, optional
        Trials-table column that gives the split: values "train" -> train, "val", "valid"
        or "validation" -> valid (any case). Trials with other values (e.g. "test",
        "none") are dropped. None: a seeded random split with ``valid_fraction``.
    valid_fraction, seed : float, int
        Random split (when ``split`` is None); ``seed`` also draws a fractional ``heldout``.
    drop_out_of_range : bool
        Trials whose window is not fully recorded are an error (naming their ids) unless
        this is True, in which case they are dropped with a warning.
    bounds : {'trial', 'recording'}
        What "recorded" means. Always: the alignment time is finite, the window lies inside
        one of the ``obs_intervals`` of every unit (when the units table has them) and the
        behavior samples (bin centers + lag) lie inside the behavior's time range.
        'trial' adds: the window lies inside the trial's [start_time, stop_time].
    conditions : str, optional
        Trials-table column of condition labels, numbered in sorted order of its values.

    Returns
    -------
    SpikeData
        ``meta`` (JSON-serializable) holds source, align, window, bin_size, unit_ids,
        heldout_unit_ids, trial_ids, align_times and start_times (left edge of each trial's
        first bin, seconds), dropped_trial_ids (dropped as out of range), and the options
        used.

    Raises
    ------
    ImportError
        pynwb is missing.
    DataError
        Missing column, series or units (the message lists what is available), windows out
        of range (lists trial ids), too few trials in a split.

    Examples
    --------
    >>> data = load_nwb("sub-Jenkins_ses-full_desc-train_behavior+ecephys.nwb",
    ...                 heldout="heldout", behavior="hand_vel", behavior_lag=0.12,
    ...                 split="split", drop_out_of_range=True)  # doctest: +SKIP
    >>> print(data.summary())  # doctest: +SKIP
    """
    pynwb = _pynwb()
    if bounds not in ("trial", "recording"):
        raise ValueError(f"bounds: expected 'trial' or 'recording', got {bounds!r}")
    win_start_ns, win_stop_ns, bin_ns = _window_ns(window, bin_size)
    n_bins = (win_stop_ns - win_start_ns) // bin_ns
    path = Path(path)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        units = _read_units(nwbfile, path, heldout)
        wanted = [align, "start_time", "stop_time", split, conditions, *(trial_filter or {})]
        table = _read_trials(nwbfile, path, wanted)
        series = _read_behavior(nwbfile, behavior, path) if behavior is not None else None

    out_mask = _select_heldout(heldout, units, seed)
    # Trial selection: filter, then split values, then the range checks.
    keep = np.ones(table["id"].size, dtype=bool)
    for column, wanted in (trial_filter or {}).items():
        wanted = np.atleast_1d(np.asarray(wanted))
        keep &= np.isin(_column(table, column, "trial_filter", path), wanted)
        if not keep.any():
            raise DataError(
                f"trial_filter: no trial left after {column!r} in {wanted.tolist()}; values "
                f"in that column: {_listing(np.unique(table[column]))}"
            )
    if split is not None:
        values = _column(table, split, "split", path)
        _split_indices(values[keep], split)  # too few trials: say so before the range checks
        keep &= np.isin(np.char.lower(values.astype(str)), TRAIN_VALUES + VALID_VALUES)
    align_s = _column(table, align, "align", path).astype(np.float64)
    ok = np.isfinite(align_s)
    align_ns = np.where(ok, np.round(np.where(ok, align_s, 0.0) * 1e9), 0).astype(np.int64)
    lo_ns, hi_ns = align_ns + win_start_ns, align_ns + win_stop_ns
    if bounds == "trial":
        ok &= lo_ns >= to_nanoseconds(table["start_time"])
        ok &= hi_ns <= to_nanoseconds(table["stop_time"])
    for intervals in units["obs"] or []:
        ok &= _inside(intervals, lo_ns, hi_ns)
    if series is not None:
        lag_ns = int(to_nanoseconds(behavior_lag, "behavior_lag"))
        first_ns = lo_ns + bin_ns // 2 + lag_ns
        last_ns = lo_ns + (n_bins - 1) * bin_ns + bin_ns // 2 + lag_ns
        times_ns = to_nanoseconds(series[1])
        ok &= (first_ns >= times_ns[0]) & (last_ns <= times_ns[-1])
    bad = keep & ~ok
    if bad.any():
        what = (
            f"window {tuple(window)} s around {align!r} is not fully recorded (bounds="
            f"{bounds!r}{', behavior time range' if series is not None else ''})"
        )
        if not drop_out_of_range:
            raise DataError(
                f"{path}: {what} for trial ids {_listing(table['id'][bad])}; narrow the window "
                "or pass drop_out_of_range=True to drop them"
            )
        warnings.warn(
            f"dropping {bad.sum()} trial(s): {what}: ids {_listing(table['id'][bad])}", stacklevel=2
        )
    keep &= ok
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        raise DataError(f"{path}: no trial left to load after filtering and range checks")

    # Counts: one searchsorted per unit over all trials' edges.
    edges = lo_ns[rows, None] + bin_ns * np.arange(n_bins + 1, dtype=np.int64)[None, :]
    counts = np.stack([count_in_bins(times, edges) for times in units["spikes"]], axis=-1)
    counts = counts.astype(np.float32)

    fields = {}
    if series is not None:
        centers_s = (edges[:, :-1] + bin_ns // 2 + lag_ns) / 1e9
        fields["behavior"] = _interpolate(series[1], series[2], centers_s)
    if conditions is not None:
        values = _column(table, conditions, "conditions", path)[rows]
        names, labels = np.unique(values, return_inverse=True)
        fields["conditions"] = labels.astype(np.int64)
    if split is not None:
        fields["train_idx"], fields["valid_idx"] = _split_indices(table[split][rows], split)
    else:
        fields["train_idx"], fields["valid_idx"] = make_split(rows.size, valid_fraction, seed)

    meta = {
        "layout": "nwb",
        "source": str(path),
        "align": align,
        "window": [float(window[0]), float(window[1])],
        "bin_size": float(bin_size),
        "binning": "half-open [left, right) bins, times rounded to 1 ns",
        "bounds": bounds,
        "unit_ids": units["ids"][~out_mask].tolist(),
        "heldout_unit_ids": units["ids"][out_mask].tolist(),
        "trial_ids": table["id"][rows].tolist(),
        "align_times": align_s[rows].tolist(),
        "start_times": (lo_ns[rows] / 1e9).tolist(),
        "dropped_trial_ids": table["id"][bad].tolist(),
        "behavior": None if series is None else series[0],
        "behavior_lag": float(behavior_lag),
        "trial_filter": _jsonable(trial_filter),
        "split": split,
        "valid_fraction": None if split is not None else float(valid_fraction),
        "seed": int(seed),
    }
    if conditions is not None:
        meta["conditions"] = {"column": conditions, "values": _jsonable(names)}
    data = SpikeData(
        spikes=counts[..., ~out_mask],
        heldout=counts[..., out_mask] if out_mask.any() else None,
        bin_size=float(bin_size),
        name=path.stem,
        meta=meta,
        **fields,
    )
    return data
