"""Run directories: outputs round trip per split, atomic writes, JSON without NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lfadskit.data import SpikeData
from lfadskit.runs import (
    RunError,
    atomic_path,
    read_json,
    read_outputs,
    write_json,
    write_outputs,
)


def small_data():
    rng = np.random.default_rng(0)
    spikes = rng.poisson(3.0, size=(10, 5, 3)).astype(np.float32) + 1
    return SpikeData(spikes=spikes, train_idx=[0, 2, 4, 6, 8, 9], valid_idx=[1, 3, 5, 7])


def test_outputs_round_trip_in_original_trial_order(tmp_path):
    data = small_data()
    rng = np.random.default_rng(1)
    outputs = {"rates": rng.random((10, 5, 3)), "factors": rng.random((10, 5, 2))}
    write_outputs(tmp_path / "outputs.h5", data, outputs)
    back = read_outputs(tmp_path / "outputs.h5")
    assert set(back) == {"rates", "factors"}
    for name, arr in outputs.items():
        np.testing.assert_array_equal(back[name], arr)


def test_outputs_need_one_row_per_trial(tmp_path):
    with pytest.raises(ValueError, match=r"outputs\['rates'\]: first axis has 9 rows"):
        write_outputs(tmp_path / "o.h5", small_data(), {"rates": np.ones((9, 5, 3))})


def test_atomic_path_leaves_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_json_writes_nan_as_null_and_numpy_scalars(tmp_path):
    write_json(tmp_path / "m.json", {"x": np.float32(0.5), "y": float("nan"), "z": np.arange(2)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.5, "y": None, "z": [0, 1]}


def test_missing_files_are_run_errors(tmp_path):
    with pytest.raises(RunError, match="not found"):
        read_json(tmp_path / "config.json")
    with pytest.raises(RunError, match="not found"):
        read_outputs(tmp_path / "outputs.h5")
