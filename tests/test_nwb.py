"""Tests of lfadskit.formats.nwb against the real MC_Maze_Small NWB file and synthetic files."""

from __future__ import annotations

import json
import sys
import warnings
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from lfadskit.continuous import merge
from lfadskit.data import DataError
from lfadskit.formats.nwb import load_nwb
from lfadskit.formats.nwb_continuous import load_nwb_continuous
from lfadskit.formats.nwb_write import write_nwb_outputs

pynwb = pytest.importorskip("pynwb")

NWB_NAME = "sub-Jenkins_ses-small_desc-test_ecephys.nwb"

# ------------------------------------------------------------------ synthetic file
# Everything in integer microseconds, so the expected counts are integer arithmetic.
UNIT_IDS = [10, 11, 12, 13, 14, 15]
TRIAL_IDS = [100 + i for i in range(8)]
SPLITS = ["train", "train", "val", "test", "Train", "valid", "train", "none"]
CONDS = ["a", "b", "a", "b", "a", "b", "a", "b"]
START_US = [2_000_000 * i for i in range(8)]
# Alignment ("go") 0.5 s after the start, except trials 102 and 105: 0.3 s.
GO_US = [s + (300_000 if i in (2, 5) else 500_000) for i, s in enumerate(START_US)]
STOP_US = [s + 1_500_000 for s in START_US]
WINDOW_US, BIN_US = (-200_000, 300_000), 10_000  # 50 bins of 10 ms
N_BINS = (WINDOW_US[1] - WINDOW_US[0]) // BIN_US
WINDOW, BIN = (-0.2, 0.3), 0.01
RECORDING_US = 16_000_000


def _plan(seed=0):
    """Spike times (int us) per unit and the expected (trial, bin, unit) counts."""
    rng = np.random.default_rng(seed)
    times = [[] for _ in UNIT_IDS]
    expected = np.zeros((8, N_BINS, len(UNIT_IDS)))
    for trial, go in enumerate(GO_US):
        first_edge = go + WINDOW_US[0]
        for unit in range(len(UNIT_IDS)):
            for _ in range(rng.integers(5, 25)):
                k = int(rng.integers(0, N_BINS))
                offset = int(rng.choice([0, 3_000, BIN_US - 1]))  # 0: exactly on an edge
                times[unit].append(first_edge + k * BIN_US + offset)
                expected[trial, k, unit] += 1
            # Spikes just outside the window are never counted.
            times[unit] += [first_edge - 1, go + WINDOW_US[1]]
    return [np.sort(np.array(t)) for t in times], expected


def _write_nwb(path, obs_intervals=None, with_trials=True):
    from pynwb import NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries

    spikes_us, expected = _plan()
    nwbfile = NWBFile(
        session_description="synthetic",
        identifier="lfadskit-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwbfile.add_unit_column(name="is_out", description="held out in the test")
    for unit, unit_id in enumerate(UNIT_IDS):
        obs = [[0.0, RECORDING_US / 1e6]] if obs_intervals is None else obs_intervals[unit]
        nwbfile.add_unit(
            spike_times=spikes_us[unit] / 1e6, obs_intervals=obs, id=unit_id, is_out=unit % 3 == 0
        )
    if with_trials:
        nwbfile.add_trial_column(name="go_time", description="alignment time")
        nwbfile.add_trial_column(name="split", description="train/val/test")
        nwbfile.add_trial_column(name="cond", description="condition")
        nwbfile.add_trial_column(name="reward_time", description="NaN: no reward")
        for i in range(8):
            nwbfile.add_trial(
                start_time=START_US[i] / 1e6,
                stop_time=STOP_US[i] / 1e6,
                go_time=GO_US[i] / 1e6,
                split=SPLITS[i],
                cond=CONDS[i],
                reward_time=np.nan if i == 3 else GO_US[i] / 1e6 + 0.1,
                id=TRIAL_IDS[i],
            )
    # Behavior: linear in time, so linear interpolation is exact: (t, 2 t + 1).
    stamps = np.arange(0, RECORDING_US + 1, 1000) / 1e6
    module = nwbfile.create_processing_module(name="behavior", description="behavior")
    module.add(
        TimeSeries(
            name="hand_vel", data=np.c_[stamps, 2 * stamps + 1], timestamps=stamps, unit="mm/s"
        )
    )
    eye = BehavioralTimeSeries(name="eye")
    eye.add_timeseries(TimeSeries(name="eye_x", data=-stamps, timestamps=stamps, unit="deg"))
    module.add(eye)
    nwbfile.add_acquisition(
        TimeSeries(
            name="pupil",
            data=3.0 * np.arange(1601) / 100,
            starting_time=0.0,
            rate=100.0,
            unit="mm",
        )
    )
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return spikes_us, expected


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("nwb") / "synthetic.nwb"
    spikes_us, expected = _write_nwb(path)
    return path, spikes_us, expected


def _load(path, **options):
    options = {"align": "go_time", "window": WINDOW, "bin_size": BIN, **options}
    return load_nwb(path, **options)


# ------------------------------------------------------------------ real file
def _h5_reference(path, window_ms=(-250, 450), bin_ms=5):
    """Counts from the raw NWB arrays with h5py and integer microseconds (not pynwb)."""
    with h5py.File(path, "r") as h5:
        times = h5["units/spike_times"][:]
        ends = h5["units/spike_times_index"][:]
        unit_ids = h5["units/id"][:]
        onsets = h5["intervals/trials/move_onset_time"][:]
        trial_ids = h5["intervals/trials/id"][:]
    times_us = np.round(times * 1e6).astype(np.int64)
    onset_us = np.round(onsets * 1e6).astype(np.int64)
    n_bins = (window_ms[1] - window_ms[0]) // bin_ms
    counts = np.zeros((onsets.size, n_bins, unit_ids.size))
    on_edge = 0
    for unit, (lo, hi) in enumerate(zip(np.r_[0, ends[:-1]], ends, strict=True)):
        for trial, onset in enumerate(onset_us):
            rel = times_us[lo:hi] - (onset + window_ms[0] * 1000)
            rel = rel[(rel >= 0) & (rel < n_bins * bin_ms * 1000)]
            np.add.at(counts[trial, :, unit], rel // (bin_ms * 1000), 1)
            on_edge += int((rel % (bin_ms * 1000) == 0).sum())
    return counts, unit_ids, trial_ids, on_edge


def test_real_file_counts_match_raw_spike_times(mc_maze_dir):
    path = mc_maze_dir / NWB_NAME
    data = load_nwb(path, align="move_onset_time", window=(-0.25, 0.45), bin_size=0.005)
    expected, unit_ids, trial_ids, on_edge = _h5_reference(path)
    assert data.spikes.shape == (100, 140, 107)
    assert on_edge > 0  # spikes on bin edges exist, so the edge convention is exercised
    np.testing.assert_array_equal(data.spikes, expected)
    assert data.heldout is None and data.behavior is None
    assert data.meta["unit_ids"] == unit_ids.tolist()
    assert data.meta["trial_ids"] == trial_ids.tolist()
    assert data.meta["window"] == [-0.25, 0.45] and data.meta["bin_size"] == 0.005
    json.dumps(data.meta)  # JSON-serializable
    # Seeded random split when no split column is named.
    assert data.train_idx.size == 80 and data.valid_idx.size == 20


def test_real_file_counts_match_nlb_tools(mc_maze_dir):
    """The benchmark's own reader (1 ms bins summed to 5 ms) gives the same tensor."""
    nwb_interface = pytest.importorskip("nlb_tools.nwb_interface")
    path = mc_maze_dir / NWB_NAME
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = nwb_interface.NWBDataset(str(path))
        dataset.resample(5)
        trial_data = dataset.make_trial_data(align_field="move_onset_time", align_range=(-250, 450))
    reference = trial_data["spikes"].to_numpy().reshape(100, 140, 107)
    data = load_nwb(path, align="move_onset_time", window=(-0.25, 0.45), bin_size=0.005)
    np.testing.assert_array_equal(data.spikes, reference)


def test_real_file_errors_and_dispatch(mc_maze_dir):
    path = mc_maze_dir / NWB_NAME
    with pytest.raises(DataError, match="0 train and 0 valid.*'test': 100"):
        load_nwb(path, split="split")
    # The window reaches 50 ms before the recorded trials (and the units' obs_intervals).
    for bounds in ("trial", "recording"):
        with pytest.raises(DataError, match=r"trial ids 0, 1, 2, .*\(100 in all\)"):
            load_nwb(path, window=(-0.3, 0.45), bounds=bounds)
    formats = pytest.importorskip("lfadskit.formats")
    data = formats.load(path, window=(-0.25, 0.45), bin_size=0.005, heldout=[1011, 1022])
    assert data.meta["layout"] == "nwb" and data.n_neurons == 105 and data.n_heldout == 2


# ------------------------------------------------------------------ synthetic file
def test_alignment_and_binning(synthetic):
    path, _, expected = synthetic
    data = _load(path)
    assert data.spikes.shape == (8, N_BINS, 6)
    np.testing.assert_array_equal(data.spikes, expected)
    assert data.meta["trial_ids"] == TRIAL_IDS
    np.testing.assert_allclose(data.meta["align_times"], np.array(GO_US) / 1e6)
    np.testing.assert_allclose(data.meta["start_times"], (np.array(GO_US) - 200_000) / 1e6)


def test_heldout_by_ids_fraction_and_column(synthetic):
    path, _, expected = synthetic
    data = _load(path, heldout=[14, 11])
    assert data.meta["unit_ids"] == [10, 12, 13, 15]
    assert data.meta["heldout_unit_ids"] == [11, 14]
    np.testing.assert_array_equal(data.spikes, expected[..., [0, 2, 3, 5]])
    np.testing.assert_array_equal(data.heldout, expected[..., [1, 4]])
    frac = _load(path, heldout=0.34, seed=5)
    again = _load(path, heldout=0.34, seed=5)
    assert len(frac.meta["heldout_unit_ids"]) == 2  # round(0.34 * 6)
    assert frac.meta["heldout_unit_ids"] == again.meta["heldout_unit_ids"]
    chosen = [UNIT_IDS.index(u) for u in frac.meta["heldout_unit_ids"]]
    np.testing.assert_array_equal(frac.heldout, expected[..., chosen])
    column = _load(path, heldout="is_out")
    assert column.meta["heldout_unit_ids"] == [10, 13]
    with pytest.raises(DataError, match=r"unit ids 98, 99 are not .*unit ids: 10, 11"):
        _load(path, heldout=[10, 99, 98])
    with pytest.raises(DataError, match="no units column 'held'; units columns: is_out"):
        _load(path, heldout="held")
    with pytest.raises(DataError, match="every unit"):
        _load(path, heldout=UNIT_IDS)
    with pytest.raises(ValueError, match="heldout"):
        _load(path, heldout=1.5)
    with pytest.raises(ValueError, match="list of unit ids or a fraction"):
        _load(path, heldout=1)


def test_behavior_resampled_at_bin_centers_with_lag(synthetic):
    path, _, _ = synthetic
    for lag in (0.0, 0.12, -0.05):
        data = _load(path, behavior="hand_vel", behavior_lag=lag)
        centers = (np.array(GO_US)[:, None] - 200_000 + BIN_US * (np.arange(N_BINS) + 0.5)) / 1e6
        t = centers + lag
        assert data.behavior.shape == (8, N_BINS, 2)
        np.testing.assert_allclose(data.behavior[..., 0], t, atol=1e-5)
        np.testing.assert_allclose(data.behavior[..., 1], 2 * t + 1, atol=1e-5)
        assert data.meta["behavior"] == "processing/behavior/hand_vel"
    # A series given by starting_time + rate, in acquisition, found by its path.
    pupil = _load(path, behavior="acquisition/pupil")
    np.testing.assert_allclose(pupil.behavior[0, :, 0], 3 * (0.3 + 0.005 + 0.01 * np.arange(50)))
    # A series inside a container (BehavioralTimeSeries) of a processing module.
    eye = _load(path, behavior="eye_x")
    assert eye.meta["behavior"] == "processing/behavior/eye/eye_x"
    np.testing.assert_allclose(eye.behavior[0, :, 0], -(0.3 + 0.005 + 0.01 * np.arange(50)))
    with pytest.raises(DataError, match=r"no time series 'hand_pos'.*processing/behavior/hand_vel"):
        _load(path, behavior="hand_pos")


def test_behavior_out_of_range_names_trials(synthetic):
    path, _, _ = synthetic
    # Trial 100's first bin center is at 0.305 s; a lag of -0.4 s asks for behavior before 0.
    with pytest.raises(DataError, match=r"behavior time range.*trial ids 100\b"):
        _load(path, behavior="hand_vel", behavior_lag=-0.4)


def test_trial_filter_split_column_and_conditions(synthetic):
    path, _, expected = synthetic
    data = _load(path, trial_filter={"cond": "a"}, conditions="cond")
    assert data.meta["trial_ids"] == [100, 102, 104, 106]
    np.testing.assert_array_equal(data.spikes, expected[[0, 2, 4, 6]])
    np.testing.assert_array_equal(data.conditions, np.zeros(4))
    both = _load(path, trial_filter={"cond": ["a", "b"], "split": ["train", "test"]})
    assert both.meta["trial_ids"] == [100, 101, 103, 106]
    split = _load(path, split="split", conditions="cond")
    # "test" and "none" trials are dropped; "Train" counts as train, "valid" as valid.
    assert split.meta["trial_ids"] == [100, 101, 102, 104, 105, 106]
    np.testing.assert_array_equal(split.spikes, expected[[0, 1, 2, 4, 5, 6]])
    assert split.train_idx.tolist() == [0, 1, 3, 5] and split.valid_idx.tolist() == [2, 4]
    assert split.meta["conditions"]["values"] == ["a", "b"]
    np.testing.assert_array_equal(split.conditions, [0, 1, 0, 0, 1, 0])
    with pytest.raises(DataError, match="1 train and 1 valid"):
        _load(path, split="split", trial_filter={"cond": "b"})
    with pytest.raises(DataError, match=r"no trial left.*'a', 'b'"):
        _load(path, trial_filter={"cond": "c"})
    with pytest.raises(
        DataError, match="column 'side' not in .*cond, go_time, id, reward_time, split"
    ):
        _load(path, trial_filter={"side": "left"})


def test_missing_align_column_and_out_of_range_trials(synthetic):
    path, _, expected = synthetic
    with pytest.raises(
        DataError, match="'move_onset_time' not in .*go_time, id, reward_time, split"
    ):
        load_nwb(path, window=WINDOW, bin_size=BIN)
    # 0.4 s before "go" is before the start of trials 102 and 105 (go 0.3 s after start).
    with pytest.raises(DataError, match=r"trial ids 102, 105;"):
        _load(path, window=(-0.4, 0.3))
    with pytest.warns(UserWarning, match="dropping 2 trial"):
        data = _load(path, window=(-0.4, 0.3), drop_out_of_range=True)
    assert data.meta["dropped_trial_ids"] == [102, 105]
    assert data.meta["trial_ids"] == [100, 101, 103, 104, 106, 107]
    np.testing.assert_array_equal(data.spikes[:, 20:], expected[[0, 1, 3, 4, 6, 7]])
    # A trial without an alignment time (NaN) is out of range too.
    with pytest.raises(DataError, match=r"around 'reward_time' .*trial ids 103;"):
        _load(path, align="reward_time")
    with pytest.warns(UserWarning, match="dropping 1 trial"):
        reward = _load(path, align="reward_time", drop_out_of_range=True)
    assert 103 not in reward.meta["trial_ids"] and reward.n_trials == 7
    # Only the trial table limits it: bounds="recording" accepts the window.
    assert _load(path, window=(-0.4, 0.3), bounds="recording").n_trials == 8
    with pytest.raises(ValueError, match="whole number"):
        _load(path, window=(-0.2, 0.305))


def test_obs_intervals_limit_the_window(tmp_path):
    path = tmp_path / "gaps.nwb"
    full = [[0.0, 16.0]]
    gap = [[0.0, 6.0], [8.0, 16.0]]  # trial 103 (go at 6.5 s) is not observed
    _write_nwb(path, obs_intervals=[full, full, gap, full, full, full])
    with pytest.raises(DataError, match=r"trial ids 103;"):
        _load(path, bounds="recording")


def test_missing_pynwb_says_how_to_install(synthetic, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(ImportError, match=r'pip install "lfadskit\[nwb\]"'):
        _load(synthetic[0])


def test_continuous_segments_merge_back_to_the_recording(synthetic):
    path, spikes_us, _ = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # obs_intervals cover everything: no warning
        data = load_nwb_continuous(path, bin_size=0.01, segment_length=50, overlap=30)
    n_time = RECORDING_US // 10_000
    expected = np.zeros((n_time, 6))
    for unit, times in enumerate(spikes_us):
        np.add.at(expected[:, unit], times // 10_000, 1)
    assert data.meta["n_time"] == n_time and data.spikes.shape[1:] == (50, 6)
    merged = merge(data.spikes, np.array(data.meta["starts"]), data.meta["n_time"])
    np.testing.assert_array_equal(merged, expected)
    beh = load_nwb_continuous(
        path,
        bin_size=0.01,
        segment_length=50,
        overlap=10,
        behavior="hand_vel",
        heldout=[12],
        t_start=1.0,
        t_stop=3.0,
    )
    assert beh.meta["n_time"] == 200 and beh.meta["heldout_unit_ids"] == [12]
    first = 1.005 + 0.01 * np.arange(50)
    np.testing.assert_allclose(beh.behavior[0, :, 1], 2 * first + 1, atol=1e-5)
    with pytest.raises(DataError, match="t_start/t_stop"):
        load_nwb_continuous(
            path,
            bin_size=0.01,
            segment_length=50,
            overlap=10,
            behavior="hand_vel",
            behavior_lag=1.0,
        )


def test_continuous_without_trials_warns_about_gaps(tmp_path):
    path = tmp_path / "gaps.nwb"
    gap = [[0.0, 6.0], [8.0, 16.0]]
    _write_nwb(path, obs_intervals=[gap] * 6, with_trials=False)
    with pytest.warns(UserWarning, match=r"12.5 % of the bins"):
        data = load_nwb_continuous(path, bin_size=0.01, segment_length=100, overlap=0)
    assert data.meta["starts"][:3] == [0, 100, 200] and data.meta["n_time"] == 1600
    with pytest.raises(DataError, match="no trials table"):
        _load(path)


def test_write_outputs_round_trip(synthetic, tmp_path):
    path, spikes_us, _ = synthetic
    data = _load(path, heldout=[11])
    rng = np.random.default_rng(1)
    rates = rng.gamma(2.0, 0.1, size=data.recon_shape)
    factors = rng.normal(size=(data.n_trials, data.n_timesteps, 3))
    out = write_nwb_outputs(path, tmp_path / "out.nwb", rates, factors, data=data)
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwbfile = io.read()
        module = nwbfile.processing["lfadskit"]
        table = module["lfadskit_trials"]
        np.testing.assert_array_equal(table["rates"].data[:], rates)
        np.testing.assert_array_equal(table["factors"].data[:], factors)
        assert table["trial_id"].data[:].tolist() == TRIAL_IDS
        centers = (np.array(GO_US)[:, None] - 200_000 + BIN_US * (np.arange(N_BINS) + 0.5)) / 1e6
        np.testing.assert_allclose(table["timestamps"].data[:], centers)
        units = module["lfadskit_units"]
        assert units["unit_id"].data[:].tolist() == [10, 12, 13, 14, 15, 11]
        assert units["heldout"].data[:].tolist() == [False] * 5 + [True]
        # The source content is still there.
        np.testing.assert_allclose(nwbfile.units.get_unit_spike_times(0), spikes_us[0] / 1e6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nwb"]
    # Writing again from the output fails cleanly: no partial file, no temporary left over.
    with pytest.raises(DataError, match="already has a processing module"):
        write_nwb_outputs(out, tmp_path / "again.nwb", rates, data=data)
    with pytest.raises(ValueError, match="trial_ids"):
        write_nwb_outputs(path, tmp_path / "bad.nwb", rates[:3], data=data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nwb"]
