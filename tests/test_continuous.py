"""Tests of lfadskit.continuous: binning, chopping and merging continuous recordings."""

from __future__ import annotations

import numpy as np
import pytest

from lfadskit.continuous import bin_continuous, chop, count_in_bins, merge, to_nanoseconds

# (segment_length, overlap) pairs: no overlap, small, exactly half, more than half, L - 1.
GRID = [(1, 0), (2, 1), (5, 0), (5, 2), (6, 3), (7, 5), (8, 7), (10, 6), (12, 11)]


def _centrality(position: int, segment_length: int) -> int:
    return min(position, segment_length - 1 - position)


@pytest.mark.parametrize("segment_length, overlap", GRID)
def test_chop_covers_every_bin_with_the_right_stretches(segment_length, overlap):
    rng = np.random.default_rng(segment_length * 100 + overlap)
    for n_time in range(segment_length, segment_length + 25):
        x = rng.normal(size=(n_time, 3))
        segments, starts = chop(x, segment_length, overlap)
        assert segments.shape == (starts.size, segment_length, 3)
        assert starts[0] == 0 and starts[-1] + segment_length == n_time
        for segment, start in zip(segments, starts, strict=True):
            np.testing.assert_array_equal(segment, x[start : start + segment_length])
        # Regular stride everywhere except possibly the shifted last segment.
        strides = np.diff(starts)
        assert (strides[:-1] == segment_length - overlap).all()
        assert (strides > 0).all() and (strides <= segment_length - overlap).all()


@pytest.mark.parametrize("segment_length, overlap", GRID)
def test_merge_inverts_chop_exactly_and_taper_closely(segment_length, overlap):
    rng = np.random.default_rng(7 + segment_length + overlap)
    for n_time in range(segment_length, segment_length + 25):
        x = rng.normal(size=(n_time, 2)).astype(np.float32)
        segments, starts = chop(x, segment_length, overlap)
        merged = merge(segments, starts, n_time)
        assert merged.dtype == np.float32
        np.testing.assert_array_equal(merged, x)
        np.testing.assert_allclose(merge(segments, starts, n_time, "taper"), x, rtol=1e-6)


@pytest.mark.parametrize("segment_length, overlap", [(6, 2), (10, 7), (9, 8)])
def test_center_merge_takes_each_bin_from_its_most_central_segment(segment_length, overlap):
    n_time = 37
    segments, starts = chop(np.zeros((n_time, 1)), segment_length, overlap)
    # Mark every value with (segment index, position) to see where each bin came from.
    n_segments = starts.size
    label = np.arange(n_segments)[:, None] * 1000 + np.arange(segment_length)[None, :]
    merged = merge(label[:, :, None].astype(np.int64), starts, n_time)[:, 0]
    for t in range(n_time):
        covering = [s for s in range(n_segments) if starts[s] <= t < starts[s] + segment_length]
        best = max(_centrality(t - starts[s], segment_length) for s in covering)
        seg, pos = divmod(int(merged[t]), 1000)
        assert seg in covering and pos == t - starts[seg]
        assert _centrality(pos, segment_length) == best


def test_taper_weights_are_a_normalized_crossfade():
    segment_length, overlap, n_time = 10, 4, 28
    segments, starts = chop(np.zeros((n_time, 1)), segment_length, overlap)
    # Constant value per segment: each merged bin is a convex mix of the covering segments.
    values = np.arange(starts.size, dtype=float)
    filled = np.broadcast_to(values[:, None, None], segments.shape)
    merged = merge(filled, starts, n_time, method="taper")[:, 0]
    ramp = np.minimum(np.arange(1, segment_length + 1), np.arange(segment_length, 0, -1))
    weights = np.minimum(1.0, ramp / (overlap + 1))
    for t in range(n_time):
        w = np.array([weights[t - s] if s <= t < s + segment_length else 0.0 for s in starts])
        assert merged[t] == pytest.approx((w * values).sum() / w.sum())
    # A cross-fade has no jump larger than one step between neighbouring values.
    assert np.abs(np.diff(merged)).max() < 1.0


def test_chop_and_merge_reject_bad_arguments():
    x = np.zeros((20, 2))
    with pytest.raises(ValueError, match="overlap"):
        chop(x, 5, 5)
    with pytest.raises(ValueError, match="overlap"):
        chop(x, 5, -1)
    with pytest.raises(ValueError, match="segment_length"):
        chop(x, 0, 0)
    with pytest.raises(ValueError, match="segment_length"):
        chop(x, 2.5, 0)
    with pytest.raises(ValueError, match="segment_length"):
        chop(x, 21, 0)  # longer than the recording: an error, never padding
    with pytest.raises(ValueError, match="array"):
        chop(np.zeros(20), 5, 1)
    segments, starts = chop(x, 5, 1)
    with pytest.raises(ValueError, match="method"):
        merge(segments, starts, 20, method="mean")
    with pytest.raises(ValueError, match="starts"):
        merge(segments, starts[:-1], 20)
    with pytest.raises(ValueError, match="starts"):
        merge(segments, starts, 19)  # the last segment runs past n_time
    with pytest.raises(ValueError, match="covered by no segment"):
        merge(segments, starts, 25)
    with pytest.raises(ValueError, match="segments"):
        merge(segments[0], starts, 20)


def test_bin_continuous_half_open_bins_by_hand():
    # Bins of 5 ms from 0: [0, 5), [5, 10), [10, 15) ms.
    unit_a = np.array([0.0, 0.004, 0.005, 0.0099999, 0.010, 0.015])
    unit_b = np.array([0.1 + 0.2 - 0.29])  # 0.01000000000000001: on the 10 ms edge
    counts = bin_continuous([unit_a, unit_b], 0.0, 0.015, 0.005)
    np.testing.assert_array_equal(counts, [[2, 0], [2, 0], [1, 1]])
    assert counts.dtype == np.float32
    with pytest.raises(ValueError, match="list of arrays"):
        bin_continuous(unit_a, 0.0, 0.015, 0.005)
    with pytest.raises(ValueError, match="bin_size"):
        bin_continuous([unit_a], 0.0, 0.015, 0.0)
    with pytest.raises(ValueError, match="t_start, t_stop"):
        bin_continuous([unit_a], 0.01, 0.012, 0.005)


def test_bin_continuous_matches_integer_microsecond_counts():
    """Times on a 1 ms grid (a fifth on 5 ms edges) against integer arithmetic."""
    rng = np.random.default_rng(3)
    t_start_ms, bin_ms, n_time = 1234, 5, 400
    times_ms = [np.sort(rng.integers(t_start_ms - 50, t_start_ms + 2100, 300)) for _ in range(4)]
    counts = bin_continuous([t / 1000 for t in times_ms], t_start_ms / 1000, 3.234, 0.005)
    expected = np.zeros((n_time, 4))
    for unit, times in enumerate(times_ms):
        rel = times - t_start_ms
        rel = rel[(rel >= 0) & (rel < n_time * bin_ms)]
        np.add.at(expected[:, unit], rel // bin_ms, 1)
    assert counts.shape == (n_time, 4)
    np.testing.assert_array_equal(counts, expected)
    assert sum(((t - t_start_ms) % bin_ms == 0).sum() for t in times_ms) > 100


def test_count_in_bins_and_nanoseconds():
    assert to_nanoseconds(0.1 + 0.2) == 300_000_000
    with pytest.raises(ValueError, match="finite"):
        to_nanoseconds([0.0, np.nan])
    edges = np.array([[0, 10, 20], [5, 15, 25]])
    spikes = np.array([0, 5, 10, 19, 20, 24])
    # [0,10): 0,5  [10,20): 10,19  [5,15): 5,10  [15,25): 19,20,24
    np.testing.assert_array_equal(count_in_bins(spikes, edges), [[2, 2], [2, 3]])
