"""Read a continuous NWB recording (no trials) as overlapping segments.

Needs the optional ``nwb`` extra. The whole recording is binned (half-open bins, integer
nanoseconds, see :mod:`lfadskit.formats.nwb`), then chopped into overlapping segments with
:func:`lfadskit.continuous.chop`; merge inferred rates back with
:func:`lfadskit.continuous.merge` and ``data.meta["starts"]``.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from lfadskit.continuous import bin_continuous, chop, to_nanoseconds
from lfadskit.data import DataError, SpikeData, make_split
from lfadskit.formats.nwb import (
    _inside,
    _interpolate,
    _pynwb,
    _read_behavior,
    _read_units,
    _select_heldout,
)

__all__ = ["load_nwb_continuous"]

logger = logging.getLogger("lfadskit")


def load_nwb_continuous(
    path: str | os.PathLike,
    bin_size: float = 0.005,
    segment_length: int = 140,
    overlap: int = 40,
    t_start: float | None = None,
    t_stop: float | None = None,
    heldout=None,
    behavior: str | None = None,
    behavior_lag: float = 0.0,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> SpikeData:
    """Bin a whole NWB recording and chop it into overlapping segments (treated as trials).

    Parameters
    ----------
    path : str or PathLike
        NWB file with a units table; a trials table is not needed.
    bin_size : float
        Bin width in seconds (half-open bins, see :func:`lfadskit.continuous.bin_continuous`).
    segment_length, overlap : int
        Bins per segment and bins shared by consecutive segments
        (:func:`lfadskit.continuous.chop`).
    t_start, t_stop : float, optional
        Stretch to bin, in seconds. Default: from the earliest to the latest
        ``obs_intervals`` bound of the units, or from 0 to one bin past the last spike when
        the units have no ``obs_intervals``. A trailing partial bin is dropped.
    heldout, behavior, behavior_lag, seed
        As in :func:`load_nwb`. The behavior must cover every bin center + lag.
    valid_fraction : float
        Fraction of segments in the seeded random valid split. Overlapping segments share
        bins, so the valid segments are not independent of the train segments.

    Returns
    -------
    SpikeData
        (n_segments, segment_length, n_units) counts. ``meta`` holds ``starts`` (first bin of
        each segment), ``n_time``, ``segment_length``, ``overlap``, ``t_start`` and
        ``t_stop`` (end of the last whole bin): merge inferred rates back with
        ``merge(rates, meta["starts"], meta["n_time"])``.
        Bins in gaps between ``obs_intervals`` count zero spikes (a warning says how much
        of the stretch is unobserved).

    Examples
    --------
    >>> data = load_nwb_continuous("rec.nwb", segment_length=100, overlap=20)  # doctest: +SKIP
    >>> merged = merge(rates, data.meta["starts"], data.meta["n_time"])  # doctest: +SKIP
    """
    pynwb = _pynwb()
    bin_ns = int(to_nanoseconds(bin_size, "bin_size")) if np.isfinite(bin_size) else 0
    if bin_ns <= 0:
        raise ValueError(f"bin_size: must be a positive number of seconds, got {bin_size}")
    path = Path(path)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        units = _read_units(nwbfile, path, heldout)
        series = _read_behavior(nwbfile, behavior, path) if behavior is not None else None
    obs = units["obs"]
    if obs is not None and all(o.size for o in obs):
        lo = min(int(o[0, 0]) for o in obs) / 1e9
        hi = max(int(o[-1, 1]) for o in obs) / 1e9
    else:
        lo, hi = 0.0, max((int(s[-1]) for s in units["spikes"] if s.size), default=0) / 1e9
        hi += bin_size
    t_start = lo if t_start is None else float(t_start)
    t_stop = hi if t_stop is None else float(t_stop)
    seconds = [s / 1e9 for s in units["spikes"]]
    counts = bin_continuous(seconds, t_start, t_stop, bin_size)
    n_time = counts.shape[0]
    start_ns = int(to_nanoseconds(t_start, "t_start"))
    stop_ns = start_ns + n_time * bin_ns
    if obs is not None:
        # Fraction of bins whose whole span is observed for every unit.
        left = start_ns + bin_ns * np.arange(n_time, dtype=np.int64)
        observed = np.ones(n_time, dtype=bool)
        for intervals in obs:
            observed &= _inside(intervals, left, left + bin_ns)
        if not observed.all():
            warnings.warn(
                f"{path}: {100 * (1 - observed.mean()):.1f} % of the bins in [{t_start}, "
                f"{stop_ns / 1e9}] s lie outside some unit's obs_intervals; they count zero "
                "spikes there",
                stacklevel=2,
            )
    segments, starts = chop(counts, segment_length, overlap)
    out_mask = _select_heldout(heldout, units, seed)
    fields = {}
    if series is not None:
        lag_ns = int(to_nanoseconds(behavior_lag, "behavior_lag"))
        at_ns = start_ns + bin_ns * np.arange(n_time, dtype=np.int64) + bin_ns // 2 + lag_ns
        times_ns = to_nanoseconds(series[1])
        if at_ns[0] < times_ns[0] or at_ns[-1] > times_ns[-1]:
            raise DataError(
                f"behavior: {series[0]!r} covers [{series[1][0]}, {series[1][-1]}] s but the "
                f"bins (centers + lag) need [{at_ns[0] / 1e9}, {at_ns[-1] / 1e9}] s; pass "
                "t_start/t_stop inside its range"
            )
        resampled = _interpolate(series[1], series[2], at_ns / 1e9)
        fields["behavior"] = chop(resampled, segment_length, overlap)[0]
    train_idx, valid_idx = make_split(starts.size, valid_fraction, seed)
    meta = {
        "layout": "nwb-continuous",
        "source": str(path),
        "bin_size": float(bin_size),
        "binning": "half-open [left, right) bins, times rounded to 1 ns",
        "t_start": t_start,
        "t_stop": stop_ns / 1e9,
        "n_time": int(n_time),
        "segment_length": int(segment_length),
        "overlap": int(overlap),
        "starts": starts.tolist(),
        "unit_ids": units["ids"][~out_mask].tolist(),
        "heldout_unit_ids": units["ids"][out_mask].tolist(),
        "behavior": None if series is None else series[0],
        "behavior_lag": float(behavior_lag),
        "valid_fraction": float(valid_fraction),
        "seed": int(seed),
    }
    return SpikeData(
        spikes=segments[..., ~out_mask],
        heldout=segments[..., out_mask] if out_mask.any() else None,
        bin_size=float(bin_size),
        train_idx=train_idx,
        valid_idx=valid_idx,
        name=path.stem,
        meta=meta,
        **fields,
    )
