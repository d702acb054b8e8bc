"""Tests of lfadskit.formats: native, NLB and LFADS layouts, detection, atomic save, errors."""

from __future__ import annotations

import logging
import sys
import types

import h5py
import numpy as np
import pytest

from lfadskit.data import DataError, SpikeData, make_split
from lfadskit.formats import detect_layout, load, save

N_TRIALS, N_T, N_IN, N_OUT_EXTRA, N_FWD = 12, 10, 4, 2, 3


def full_data(observed: bool = False) -> SpikeData:
    """Every field filled; with ``observed=False`` some targets are NaN and two trials are
    in neither split (both allowed by SpikeData and the lfadskit layout)."""
    rng = np.random.default_rng(1)
    n_out = N_IN + N_OUT_EXTRA
    truth = rng.uniform(0.5, 3.0, size=(N_TRIALS, N_T + N_FWD, n_out))
    counts = rng.poisson(truth).astype(np.float32)
    heldout = counts[:, :N_T, N_IN:].copy()
    forward = counts[:, N_T:, :].copy()
    behavior = rng.normal(size=(N_TRIALS, N_T, 2))
    train_idx, valid_idx = np.array([0, 2, 3, 5, 6, 8, 9, 11]), np.array([1, 4, 7, 10])
    if not observed:
        heldout[[4, 7]] = np.nan
        forward[[7, 10]] = np.nan
        behavior[10] = np.nan
        train_idx, valid_idx = np.array([0, 2, 3, 5, 6, 8]), np.array([1, 4, 7, 10])
    return SpikeData(
        spikes=counts[:, :N_T, :N_IN],
        heldout=heldout,
        forward=forward,
        behavior=behavior,
        truth=truth,
        conditions=rng.integers(0, 3, size=N_TRIALS),
        ext_input=rng.normal(size=(N_TRIALS, N_T, 1)),
        bin_size=0.02,
        train_idx=train_idx,
        valid_idx=valid_idx,
        name="full",
        meta={"seed": np.int64(7), "nested": {"a": [1, 2.5, "x"], "b": None}, "ok": True},
    )


ARRAYS = (
    "spikes",
    "heldout",
    "forward",
    "behavior",
    "truth",
    "conditions",
    "ext_input",
    "train_idx",
    "valid_idx",
)


def assert_same(loaded: SpikeData, data: SpikeData) -> None:
    for key in ARRAYS:
        want, got = getattr(data, key), getattr(loaded, key)
        if want is None:
            assert got is None, key
        else:
            assert got.dtype == want.dtype, key
            np.testing.assert_array_equal(got, want, err_msg=key)
    assert loaded.bin_size == data.bin_size
    assert loaded.name == data.name


# ------------------------------------------------------------------ native layout
@pytest.mark.parametrize("suffix", [".npz", ".h5", ".hdf5"])
def test_native_round_trip_is_exact(tmp_path, suffix):
    data = full_data()
    path = save(data, tmp_path / f"data{suffix}")
    loaded = load(path)
    assert_same(loaded, data)
    expected_meta = {"seed": 7, "nested": {"a": [1, 2.5, "x"], "b": None}, "ok": True}
    provenance = {"layout": "lfadskit", "source": str(path), "load_options": {}}
    assert loaded.meta == {**expected_meta, **provenance}
    assert load(path, bin_size=0.01).meta["load_options"] == {"bin_size": 0.01}


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_native_round_trip_keeps_none_fields(tmp_path, suffix):
    counts = np.random.default_rng(0).poisson(2.0, size=(6, 5, 3))
    data = SpikeData(spikes=counts)
    loaded = load(save(data, tmp_path / f"min{suffix}"))
    assert_same(loaded, data)
    assert loaded.n_heldout == 0 and loaded.n_forward == 0


def test_native_h5_marks_format_and_long_meta_round_trips(tmp_path):
    data = full_data().replace(meta={"long": list(range(20_000))})
    path = save(data, tmp_path / "long.h5")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["lfadskit_format"] == 1
    assert load(path).meta["long"] == list(range(20_000))


def test_plain_npz_with_counts_gets_default_split(tmp_path):
    counts = np.random.default_rng(2).poisson(1.5, size=(20, 7, 5)).astype(np.int64)
    np.savez(tmp_path / "user.npz", counts=counts)
    data = load(tmp_path / "user.npz")
    np.testing.assert_array_equal(data.spikes, counts)
    train, valid = make_split(20)
    np.testing.assert_array_equal(data.train_idx, train)
    np.testing.assert_array_equal(data.valid_idx, valid)
    assert data.bin_size == 0.005 and data.heldout is None and data.meta["layout"] == "lfadskit"


def test_plain_npz_with_some_fields_and_npy(tmp_path):
    counts = np.random.default_rng(3).poisson(1.5, size=(8, 6, 3))
    np.savez(
        tmp_path / "user.npz",
        spikes=counts,
        bin_size=0.01,
        train_idx=[0, 1, 2, 3, 4],
        valid_idx=[5, 6, 7],
    )
    data = load(tmp_path / "user.npz")
    assert data.bin_size == 0.01
    np.testing.assert_array_equal(data.valid_idx, [5, 6, 7])
    np.save(tmp_path / "user.npy", counts)
    data = load(tmp_path / "user.npy", bin_size=0.02)
    np.testing.assert_array_equal(data.spikes, counts)
    assert data.bin_size == 0.02


def test_npz_with_object_array_is_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", spikes=np.array([[1], [1, 2]], dtype=object))
    with pytest.raises(DataError, match="object arrays"):
        load(tmp_path / "obj.npz")


def test_npz_without_spikes_names_the_keys(tmp_path):
    np.savez(tmp_path / "other.npz", rates=np.ones((4, 3, 2)))
    with pytest.raises(DataError, match=r"no 'spikes'.*rates"):
        load(tmp_path / "other.npz")


# ------------------------------------------------------------------ LFADS layout
def test_lfads_round_trip_and_file_contents(tmp_path):
    data = full_data(observed=True)
    path = save(data, tmp_path / "lfads.h5", layout="lfads")
    # The file itself, read independently, must follow the lfads-torch layout.
    with h5py.File(path, "r") as h5:
        for split, idx in (("train", data.train_idx), ("valid", data.valid_idx)):
            np.testing.assert_array_equal(h5[f"{split}_encod_data"][()], data.spikes[idx])
            recon = h5[f"{split}_recon_data"][()]
            assert recon.shape == (idx.size, N_T + N_FWD, N_IN + N_OUT_EXTRA)
            np.testing.assert_array_equal(recon[:, :N_T, :N_IN], data.spikes[idx])
            np.testing.assert_array_equal(recon[:, :N_T, N_IN:], data.heldout[idx])
            np.testing.assert_array_equal(recon[:, N_T:, :], data.forward[idx])
            np.testing.assert_array_equal(h5[f"{split}_inds"][()], idx)
            np.testing.assert_array_equal(h5[f"{split}_ext_input"][()], data.ext_input[idx])
        assert h5["conversion_factor"][()] == 1.0
    loaded = load(path)
    assert loaded.meta["layout"] == "lfads"
    assert_same(loaded, data)


def write_lfads_torch_file(path, with_test=True):
    """A file as lfads-torch users make them: integer counts, interleaved inds, truth
    scaled by a conversion factor, a test split."""
    rng = np.random.default_rng(5)
    n, n_in, n_hold = 9, 3, 2
    rates = rng.uniform(0.5, 2.0, size=(n, 6, n_in + n_hold))
    counts = rng.poisson(rates).astype(np.int32)
    valid_inds = np.array([7, 1, 4])
    train_inds = np.array([0, 2, 3, 5, 6, 8])
    factor = 0.25
    with h5py.File(path, "w") as h5:
        for split, inds in (("train", train_inds), ("valid", valid_inds)):
            h5[f"{split}_encod_data"] = counts[inds, :, :n_in]
            h5[f"{split}_recon_data"] = counts[inds]
            h5[f"{split}_inds"] = inds
            h5[f"{split}_truth"] = rates[inds] * factor
        h5["conversion_factor"] = factor
        if with_test:
            h5["test_encod_data"] = counts[:2, :, :n_in]
            h5["test_recon_data"] = counts[:2, :, :n_in]
    return counts, rates, n_in


def test_reads_lfads_torch_file(tmp_path, caplog):
    path = tmp_path / "lorenz_like.h5"
    counts, rates, n_in = write_lfads_torch_file(path)
    assert detect_layout(path) == "lfads"
    with caplog.at_level(logging.INFO, logger="lfadskit"):
        data = load(path)
    # Trials come back in original order (by *_inds), held-out columns from the target.
    np.testing.assert_array_equal(data.spikes, counts[:, :, :n_in])
    np.testing.assert_array_equal(data.heldout, counts[:, :, n_in:])
    np.testing.assert_array_equal(data.valid_idx, [1, 4, 7])
    np.testing.assert_array_equal(data.train_idx, [0, 2, 3, 5, 6, 8])
    np.testing.assert_allclose(data.truth, rates, rtol=1e-6)  # spikes per bin
    assert data.forward is None and data.bin_size == 0.005
    assert "test trials not loaded" in caplog.text
    assert any("lfads layout" in r.message and "9 trials" in r.message for r in caplog.records)


def test_lfads_legacy_single_array_form(tmp_path):
    counts = np.random.default_rng(6).poisson(2.0, size=(8, 5, 3))
    with h5py.File(tmp_path / "old.h5", "w") as h5:
        h5["train_data"], h5["valid_data"] = counts[:6], counts[6:]
    data = load(tmp_path / "old.h5")
    np.testing.assert_array_equal(data.spikes, counts)
    np.testing.assert_array_equal(data.valid_idx, [6, 7])


def test_lfads_recon_inconsistent_with_encod(tmp_path):
    path = tmp_path / "bad.h5"
    counts, _, n_in = write_lfads_torch_file(path, with_test=False)
    with h5py.File(path, "a") as h5:
        recon = h5["valid_recon_data"][()]
        recon[1, 2, 0] += 1
        h5["valid_recon_data"][...] = recon
    with pytest.raises(DataError, match=r"valid_recon_data.*held-in part.*\(1, 2, 0\)"):
        load(path)


def test_lfads_write_refuses_unobserved_targets(tmp_path):
    every_trial = full_data().with_split(0.3, seed=1)
    with pytest.raises(DataError, match=r"heldout: NaN .*first \[4, 7\]"):
        save(every_trial, tmp_path / "nan.h5", layout="lfads")
    observed = full_data(observed=True)
    with pytest.raises(DataError, match=r"trials \[1\] are in neither split"):
        save(
            observed.replace(valid_idx=observed.valid_idx[1:]), tmp_path / "nan.h5", layout="lfads"
        )
    assert not (tmp_path / "nan.h5").exists()
    assert list(tmp_path.iterdir()) == []


def test_lfads_truth_shape_mismatch(tmp_path):
    counts = np.random.default_rng(6).poisson(2.0, size=(8, 5, 3))
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        h5["train_encod_data"], h5["valid_encod_data"] = counts[:6], counts[6:]
        h5["train_recon_data"], h5["valid_recon_data"] = counts[:6], counts[6:]
        h5["train_truth"], h5["valid_truth"] = np.ones((6, 5, 2)), np.ones((2, 5, 2))
    with pytest.raises(DataError, match="train_truth: shape"):
        load(tmp_path / "t.h5")


# ------------------------------------------------------------------ atomic writes
@pytest.mark.parametrize(
    ("suffix", "layout"), [(".h5", "lfadskit"), (".npz", "lfadskit"), (".h5", "lfads")]
)
def test_failed_save_leaves_old_file_intact(tmp_path, suffix, layout):
    old = full_data(observed=True)
    path = save(old, tmp_path / f"d{suffix}", layout=layout)
    before = path.read_bytes()
    # meta that JSON cannot hold fails after the arrays are already written.
    broken = old.replace(meta={"callback": object()})
    with pytest.raises(ValueError, match="meta"):
        save(broken, path, layout=layout)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert_same(load(path), old)


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    import lfadskit.formats as formats

    def half_writer(data, path):
        path.write_bytes(b"partial")
        raise KeyboardInterrupt  # the harshest interruption still cleans up

    monkeypatch.setattr(formats, "write_native", half_writer)
    with pytest.raises(KeyboardInterrupt):
        save(full_data(), tmp_path / "new.h5")
    assert list(tmp_path.iterdir()) == []


def test_save_argument_errors(tmp_path):
    data = full_data()
    with pytest.raises(ValueError, match="layout"):
        save(data, tmp_path / "x.h5", layout="nlb")
    with pytest.raises(ValueError, match="suffix|files"):
        save(data, tmp_path / "x.npz", layout="lfads")
    with pytest.raises(FileNotFoundError, match="directory"):
        save(data, tmp_path / "missing" / "x.h5")
    with pytest.raises(ValueError, match="SpikeData"):
        save(data.spikes, tmp_path / "x.h5")


# ------------------------------------------------------------------ errors on load
def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "nope.h5")


def test_empty_files(tmp_path):
    for name in ("empty.h5", "empty.npz", "empty.npy"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(DataError, match="empty"):
            load(tmp_path / name)
    with h5py.File(tmp_path / "nokeys.h5", "w"):
        pass
    with pytest.raises(DataError, match=r"keys seen: none.*train_encod_data"):
        load(tmp_path / "nokeys.h5")


def test_unknown_keys_are_listed(tmp_path):
    with h5py.File(tmp_path / "odd.h5", "w") as h5:
        h5["firing"], h5["labels"] = np.ones((3, 2, 2)), np.arange(3)
    with pytest.raises(DataError) as err:
        load(tmp_path / "odd.h5")
    message = str(err.value)
    for word in ("firing", "labels", "lfadskit", "nlb", "lfads", "train_spikes_heldin"):
        assert word in message


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_truncated_file(tmp_path, suffix):
    path = save(full_data(), tmp_path / f"t{suffix}")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="corrupt"):
        load(path)


def test_unknown_suffix_and_content(tmp_path):
    (tmp_path / "notes.txt").write_text("spikes, lots of them")
    with pytest.raises(DataError, match="unknown file type"):
        load(tmp_path / "notes.txt")
    # An HDF5 file with an unusual suffix is recognized by its content.
    path = save(full_data(), tmp_path / "d.h5")
    path.rename(tmp_path / "d.dat")
    assert detect_layout(tmp_path / "d.dat") == "lfadskit"


def test_forced_layout_and_bad_options(tmp_path):
    path = save(full_data(), tmp_path / "d.h5")
    with pytest.raises(DataError, match="train_encod_data"):
        load(path, layout="lfads")
    with pytest.raises(ValueError, match="layout"):
        load(path, layout="matlab")
    with pytest.raises(ValueError, match="conversion_factor"):
        load(path, conversion_factor=2.0)
    with pytest.raises(DataError, match="directory"):
        load(tmp_path, layout="lfads")


def test_nwb_without_reader_gives_clear_error(tmp_path, monkeypatch):
    (tmp_path / "s.nwb").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "lfadskit.formats.nwb", None)  # import fails
    with pytest.raises(DataError, match="NWB support"):
        load(tmp_path / "s.nwb")


def test_nwb_goes_to_the_nwb_reader(tmp_path, monkeypatch):
    (tmp_path / "s.nwb").write_bytes(b"x")
    calls = []

    def load_nwb(path, **options):
        calls.append((path, options))
        return SpikeData(spikes=np.ones((5, 3, 2)))

    fake = types.ModuleType("lfadskit.formats.nwb")
    fake.load_nwb = load_nwb
    monkeypatch.setitem(sys.modules, "lfadskit.formats.nwb", fake)
    data = load(tmp_path / "s.nwb", bin_size=0.01)
    assert calls == [(tmp_path / "s.nwb", {"bin_size": 0.01})]
    assert data.meta["layout"] == "nwb"


# ------------------------------------------------------------------ NLB layout
def test_nlb_real_data(mc_maze_dir, caplog):
    with caplog.at_level(logging.INFO, logger="lfadskit"):
        data = load(mc_maze_dir)
    assert "nlb layout" in caplog.text and data.summary() in caplog.text
    assert data.meta["layout"] == "nlb" and data.meta["source"] == str(mc_maze_dir)
    assert (data.n_trials, data.n_timesteps, data.n_neurons) == (100, 140, 107)
    assert (data.n_heldout, data.n_forward, data.behavior.shape[2]) == (35, 40, 2)
    assert data.bin_size == 0.005
    np.testing.assert_array_equal(data.train_idx, np.arange(75))
    np.testing.assert_array_equal(data.valid_idx, np.arange(75, 100))
    with h5py.File(mc_maze_dir / "mc_maze_small_train.h5", "r") as h5:
        train = {k: h5[k][()] for k in h5}
    with h5py.File(mc_maze_dir / "mc_maze_small_val.h5", "r") as h5:
        val = {k: h5[k][()] for k in h5}
    np.testing.assert_array_equal(data.spikes[:75], train["train_spikes_heldin"])
    np.testing.assert_array_equal(data.spikes[75:], val["eval_spikes_heldin"])
    np.testing.assert_array_equal(data.heldout[:75], train["train_spikes_heldout"])
    np.testing.assert_array_equal(data.heldout[75:], val["eval_spikes_heldout"])
    np.testing.assert_array_equal(data.forward[:75, :, :107], train["train_spikes_heldin_forward"])
    np.testing.assert_array_equal(data.forward[:75, :, 107:], train["train_spikes_heldout_forward"])
    np.testing.assert_array_equal(data.behavior[:75], train["train_behavior"])
    assert np.isnan(data.forward[75:]).all() and np.isnan(data.behavior[75:]).all()


def test_nlb_dir_train_file_and_val_file_agree(mc_maze_dir):
    by_dir = load(mc_maze_dir)
    for name in ("mc_maze_small_train.h5", "mc_maze_small_val.h5"):
        other = load(mc_maze_dir / name)
        assert other.meta["layout"] == "nlb"
        assert_same(other, by_dir)
        np.testing.assert_array_equal(other.recon, by_dir.recon)


def write_nlb(folder, name, n_train=6, n_eval=4, eval_heldout=True, forward=True):
    rng = np.random.default_rng(8)
    folder.mkdir(exist_ok=True)
    arrays = {"train": {}, "eval": {}}
    for part, n in (("train", n_train), ("eval", n_eval)):
        arrays[part]["spikes_heldin"] = rng.poisson(2.0, size=(n, 5, 3)).astype(np.float32)
        if part == "train" or eval_heldout:
            arrays[part]["spikes_heldout"] = rng.poisson(2.0, size=(n, 5, 2)).astype(np.float32)
    if forward:
        arrays["train"]["spikes_heldin_forward"] = rng.poisson(2.0, size=(n_train, 2, 3))
        arrays["train"]["spikes_heldout_forward"] = rng.poisson(2.0, size=(n_train, 2, 2))
    for part, suffix in (("train", "_train.h5"), ("eval", "_val.h5")):
        if n_eval == 0 and part == "eval":
            continue
        with h5py.File(folder / f"{name}{suffix}", "w") as h5:
            for key, value in arrays[part].items():
                h5[f"{part}_{key}"] = value
    return arrays


def test_nlb_test_phase_eval_without_heldout_and_bin_suffix(tmp_path):
    arrays = write_nlb(tmp_path / "d", "mc_rtt_20", eval_heldout=False, forward=False)
    data = load(tmp_path / "d")
    assert data.name == "mc_rtt_20" and data.bin_size == 0.020
    np.testing.assert_array_equal(data.heldout[:6], arrays["train"]["spikes_heldout"])
    assert np.isnan(data.heldout[6:]).all() and data.forward is None and data.behavior is None


def test_nlb_train_file_alone_and_bad_dirs(tmp_path):
    write_nlb(tmp_path / "d", "toy", n_train=10, n_eval=0)
    data = load(tmp_path / "d" / "toy_train.h5")
    train, valid = make_split(10)
    np.testing.assert_array_equal(data.valid_idx, valid)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"_train\.h5"):
        load(tmp_path / "empty")
    write_nlb(tmp_path / "v", "toy")
    (tmp_path / "v" / "toy_train.h5").unlink()
    with pytest.raises(DataError, match="train file"):
        load(tmp_path / "v" / "toy_val.h5")


def test_nlb_non_integer_counts_are_an_error(tmp_path):
    write_nlb(tmp_path / "d", "toy")
    with h5py.File(tmp_path / "d" / "toy_train.h5", "a") as h5:
        h5["train_spikes_heldin"][0, 0, 0] = 0.5
    with pytest.raises(DataError, match="non-integer"):
        load(tmp_path / "d")
