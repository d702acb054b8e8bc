"""Continuous recordings: bin spike times, chop into overlapping segments, merge back.

LFADS works on trials of a fixed length. A recording without trials is binned into one
long (n_time, n_channels) array, cut into overlapping segments that the model treats as
trials, and the inferred rates of the segments are merged back into one long array.

Conventions
-----------
- Binning is half-open: a spike at time ``t`` falls in bin ``k`` when
  ``t_start + k * bin_size <= t < t_start + (k + 1) * bin_size``. Times and edges are first
  rounded to whole nanoseconds (:func:`to_nanoseconds`) and compared as integers, so a spike
  that sits on an edge always goes to the bin on its right, independent of floating-point
  rounding (in MC_Maze_Small 0.7 % of spikes sit on 5 ms edges; flooring float ratios
  misplaces 218 counts there).
- :func:`chop` starts a segment every ``segment_length - overlap`` bins. When the last
  regular segment stops short of the end, one more segment is added that ends exactly at the
  last bin (its overlap with the previous one is then larger). Nothing is padded; every bin
  is covered; a recording shorter than one segment is an error.
- :func:`merge` takes each bin from the segment in which it is most central
  (``method="center"``, exact: ``merge(*chop(x)) == x``), or cross-fades overlapping segments
  with trapezoid weights normalized to sum to 1 at every bin (``method="taper"``). Both work
  for any overlap, including overlaps of more than half a segment, where a bin is covered by
  three or more segments.

Examples
--------
>>> import numpy as np
>>> x = np.arange(20.0).reshape(10, 2)
>>> segments, starts = chop(x, segment_length=4, overlap=2)
>>> segments.shape, starts.tolist()
((4, 4, 2), [0, 2, 4, 6])
>>> np.array_equal(merge(segments, starts, n_time=10), x)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bin_continuous", "chop", "count_in_bins", "merge", "to_nanoseconds"]

NS_PER_SECOND = 1_000_000_000
MERGE_METHODS = ("center", "taper")


def to_nanoseconds(seconds, name: str = "times") -> np.ndarray:
    """Round times in seconds to whole nanoseconds (int64).

    One nanosecond is far below any bin width and far above the rounding error of float64
    times of a day-long recording (about 1e-11 s), so times meant to be equal become equal.

    Examples
    --------
    >>> to_nanoseconds([0.005, 0.1 + 0.2]).tolist()
    [5000000, 300000000]
    """
    arr = np.asarray(seconds, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: must be finite numbers of seconds (found NaN or inf)")
    return np.round(arr * NS_PER_SECOND).astype(np.int64)


def _bin_ns(bin_size: float) -> int:
    if not np.isfinite(bin_size) or bin_size <= 0:
        raise ValueError(f"bin_size: must be a positive number of seconds, got {bin_size}")
    bin_ns = int(to_nanoseconds(bin_size, "bin_size"))
    if bin_ns < 1:
        raise ValueError(f"bin_size: {bin_size} s is below the 1 ns time resolution")
    return bin_ns


def count_in_bins(spike_times_ns: np.ndarray, edges_ns: np.ndarray) -> np.ndarray:
    """Count sorted spike times (int ns) in half-open bins ``[edges[k], edges[k + 1])``.

    Parameters
    ----------
    spike_times_ns : array of int64, sorted
        Spike times of one unit in nanoseconds.
    edges_ns : array of int64, shape (..., n_bins + 1)
        Increasing bin edges along the last axis (one row per trial, for example).

    Returns
    -------
    counts : array of int64, shape (..., n_bins)

    Examples
    --------
    >>> count_in_bins(np.array([0, 5, 9, 10]), np.array([0, 5, 10])).tolist()
    [1, 2]
    """
    # searchsorted(side="left") gives the number of spikes strictly before each edge, so the
    # difference counts spikes with left <= t < right.
    before = np.searchsorted(spike_times_ns, edges_ns, side="left")
    return np.diff(before, axis=-1)


def bin_continuous(
    spike_times: Sequence[np.ndarray], t_start: float, t_stop: float, bin_size: float
) -> np.ndarray:
    """Bin the spike times of each unit into counts over one continuous stretch.

    Parameters
    ----------
    spike_times : sequence of 1-D arrays
        Spike times in seconds, one array per unit (any order).
    t_start, t_stop : float
        Stretch to bin, in seconds. Only whole bins are made:
        ``n_time = floor((t_stop - t_start) / bin_size)``; spikes at or after
        ``t_start + n_time * bin_size`` are not counted.
    bin_size : float
        Bin width in seconds.

    Returns
    -------
    counts : array (n_time, n_units), float32
        Spike counts (whole numbers), half-open bins ``[left, right)``.

    Examples
    --------
    >>> bin_continuous([np.array([0.0, 0.004, 0.005]), np.array([0.012])], 0.0, 0.015, 0.005)
    array([[2., 0.],
           [1., 0.],
           [0., 1.]], dtype=float32)
    """
    bin_ns = _bin_ns(bin_size)
    start_ns, stop_ns = (int(v) for v in to_nanoseconds([t_start, t_stop], "t_start/t_stop"))
    n_time = (stop_ns - start_ns) // bin_ns
    if n_time < 1:
        raise ValueError(
            f"t_start, t_stop: ({t_start}, {t_stop}) holds no whole bin of {bin_size} s; "
            "pass t_stop > t_start + bin_size"
        )
    if (
        isinstance(spike_times, np.ndarray)
        and spike_times.ndim == 1
        and spike_times.dtype != object
    ):
        raise ValueError(
            "spike_times: expected one array of spike times per unit (a list of arrays), "
            "got a single 1-D array; wrap it as [times] for one unit"
        )
    edges = start_ns + bin_ns * np.arange(n_time + 1, dtype=np.int64)
    counts = np.zeros((n_time, len(spike_times)), dtype=np.float32)
    for unit, times in enumerate(spike_times):
        times_ns = np.sort(to_nanoseconds(np.ravel(times), f"spike_times[{unit}]"))
        counts[:, unit] = count_in_bins(times_ns, edges)
    return counts


def _check_segment_args(segment_length, overlap) -> tuple[int, int]:
    for name, value in (("segment_length", segment_length), ("overlap", overlap)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}: expected a whole number of bins, got {value!r}")
    if segment_length < 1:
        raise ValueError(f"segment_length: must be at least 1 bin, got {segment_length}")
    if overlap < 0:
        raise ValueError(f"overlap: must be >= 0 bins, got {overlap}")
    if overlap >= segment_length:
        raise ValueError(
            f"overlap: must be smaller than segment_length ({segment_length}), got {overlap}; "
            "otherwise segments would not advance"
        )
    return int(segment_length), int(overlap)


def chop(array, segment_length: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a long (n_time, n_channels) array into overlapping segments covering every bin.

    Segments start every ``segment_length - overlap`` bins; if the last of these ends before
    the last bin, one more segment ending exactly at the last bin is added (no padding).

    Parameters
    ----------
    array : array (n_time, n_channels)
        Binned counts (or any signal) of a continuous recording.
    segment_length : int
        Bins per segment; must be <= n_time.
    overlap : int
        Bins shared by consecutive regular segments, ``0 <= overlap < segment_length``.

    Returns
    -------
    segments : array (n_segments, segment_length, n_channels)
        Copies of the stretches, same dtype as ``array``.
    starts : array of int64 (n_segments,)
        First bin of each segment, increasing; keep it for :func:`merge`.

    Examples
    --------
    >>> segments, starts = chop(np.zeros((10, 3)), segment_length=4, overlap=1)
    >>> segments.shape, starts.tolist()
    ((3, 4, 3), [0, 3, 6])
    """
    segment_length, overlap = _check_segment_args(segment_length, overlap)
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(
            f"array: expected 2 dimensions (n_time, n_channels), got shape {array.shape}"
        )
    n_time = array.shape[0]
    if n_time < segment_length:
        raise ValueError(
            f"segment_length: {segment_length} bins is longer than the recording ({n_time} "
            "bins); use a shorter segment"
        )
    stride = segment_length - overlap
    starts = np.arange(0, n_time - segment_length + 1, stride, dtype=np.int64)
    if starts[-1] + segment_length < n_time:
        starts = np.append(starts, n_time - segment_length)
    index = starts[:, None] + np.arange(segment_length)[None, :]
    return array[index], starts


def _check_merge_args(segments, starts, n_time, method):
    segments = np.asarray(segments)
    if segments.ndim != 3:
        raise ValueError(
            "segments: expected 3 dimensions (n_segments, segment_length, n_channels), got "
            f"shape {segments.shape}"
        )
    starts = np.asarray(starts)
    if starts.shape != (segments.shape[0],) or not np.issubdtype(starts.dtype, np.integer):
        raise ValueError(
            f"starts: expected {segments.shape[0]} integer start bins (one per segment), got "
            f"shape {starts.shape} dtype {starts.dtype}"
        )
    if isinstance(n_time, bool) or not isinstance(n_time, (int, np.integer)) or n_time < 1:
        raise ValueError(f"n_time: expected a positive whole number of bins, got {n_time!r}")
    if method not in MERGE_METHODS:
        raise ValueError(f"method: expected one of {MERGE_METHODS}, got {method!r}")
    segment_length = segments.shape[1]
    if (starts < 0).any() or (starts + segment_length > n_time).any():
        raise ValueError(
            f"starts: segments must lie inside the {n_time} bins; got starts from "
            f"{int(starts.min())} to {int(starts.max())} with segment_length {segment_length}"
        )
    covered = np.zeros(n_time, dtype=bool)
    for start in starts:
        covered[start : start + segment_length] = True
    if not covered.all():
        raise ValueError(
            f"starts: bin {int(np.flatnonzero(~covered)[0])} is covered by no segment; pass the "
            "starts returned by chop"
        )
    return segments, starts.astype(np.int64)


def merge(segments, starts, n_time: int, method: str = "center") -> np.ndarray:
    """Merge overlapping segments (e.g. inferred rates) back into one long array.

    Parameters
    ----------
    segments : array (n_segments, segment_length, n_channels)
        Values per segment, e.g. rates in expected spikes per bin.
    starts : array of int (n_segments,)
        First bin of each segment in the recording, as returned by :func:`chop`.
    n_time : int
        Number of bins of the recording.
    method : {'center', 'taper'}
        'center': each bin is copied from the segment in which it lies farthest from the
        segment's ends (ties go to the earlier segment), so segment edges, where LFADS
        estimates are weakest, are never used except at the ends of the recording.
        'taper': weighted mean with trapezoid weights that ramp linearly over the overlap
        (``min(1, (p + 1) / (overlap + 1), (segment_length - p) / (overlap + 1))`` at
        position ``p``), normalized to sum to 1 at each bin: a seamless cross-fade.

    Returns
    -------
    array (n_time, n_channels)
        'center' keeps the dtype of ``segments``; 'taper' returns float64.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(25, 2))
    >>> segments, starts = chop(x, segment_length=10, overlap=7)
    >>> np.array_equal(merge(segments, starts, 25), x)
    True
    >>> np.allclose(merge(segments, starts, 25, method="taper"), x)
    True
    """
    segments, starts = _check_merge_args(segments, starts, n_time, method)
    n_segments, segment_length, n_channels = segments.shape
    positions = np.arange(segment_length)
    if method == "center":
        # Distance to the nearer end of the segment: larger is more central.
        centrality = np.minimum(positions, segment_length - 1 - positions)
        best = np.full(n_time, -1, dtype=np.int64)
        merged = np.zeros((n_time, n_channels), dtype=segments.dtype)
        for seg, start in enumerate(starts):
            span = slice(start, start + segment_length)
            better = centrality > best[span]  # strict: ties keep the earlier segment
            merged[span][better] = segments[seg][better]
            best[span] = np.where(better, centrality, best[span])
        return merged
    strides = np.diff(np.sort(starts))
    # The regular stride is the largest; chop's shifted last segment overlaps more.
    overlap = segment_length - int(strides.max()) if strides.size else 0
    overlap = max(overlap, 0)
    ramp = float(overlap + 1)
    weights = np.minimum(
        1.0, np.minimum((positions + 1) / ramp, (segment_length - positions) / ramp)
    )
    total = np.zeros((n_time, n_channels), dtype=np.float64)
    weight_sum = np.zeros(n_time, dtype=np.float64)
    for seg, start in enumerate(starts):
        total[start : start + segment_length] += weights[:, None] * segments[seg]
        weight_sum[start : start + segment_length] += weights
    return total / weight_sum[:, None]
