"""The command line: happy paths write what they say, bad input ends in one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import lfadskit
from lfadskit.cli import main
from lfadskit.lfads import LFADSConfig


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_simulate_writes_a_dataset_load_reads_back_with_truth(tmp_path, capsys):
    out = tmp_path / "lorenz.h5"
    code, stdout, _ = run_cli(
        capsys,
        "simulate",
        "lorenz",
        "--out",
        out,
        "--n-conditions",
        4,
        "--trials-per-condition",
        3,
        "--n-timesteps",
        20,
        "--seed",
        3,
    )
    assert code == 0 and "wrote" in stdout
    data = lfadskit.load(out)
    assert data.truth is not None and data.truth.shape == data.recon_shape
    assert data.n_trials == 12 and data.n_timesteps == 20
    again = lfadskit.simulate.lorenz(
        n_conditions=4, n_trials_per_condition=3, n_timesteps=20, seed=3
    )
    assert np.array_equal(data.spikes, again.spikes)
    assert np.array_equal(data.truth, again.truth)


def test_simulate_quiet_prints_nothing(tmp_path, capsys):
    code, stdout, stderr = run_cli(
        capsys,
        "simulate",
        "chaotic_rnn",
        "--out",
        tmp_path / "rnn.npz",
        "--n-conditions",
        2,
        "--trials-per-condition",
        3,
        "--quiet",
    )
    assert code == 0 and stdout == "" and stderr == ""
    assert lfadskit.load(tmp_path / "rnn.npz").truth is not None


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["fit", "no/such/file.h5", "--out", "r"], ["no/such/file.h5: no such file"]),
        (["simulate", "lorenz", "--out", "x.txt"], ["--out x.txt", ".h5"]),
        (["simulate", "lorenz", "--out", "x.h5", "--n-neurons", "-3"], ["--n-neurons", "-3"]),
        (["simulate", "lorenz", "--out", "x.h5", "--bin-size", "abc"], ["--bin-size", "abc"]),
        (["simulate", "duffing", "--out", "x.h5"], ["duffing"]),
        (["evaluate", "."], ["config.json: not found"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_bad_arguments_end_in_one_line_and_exit_2(argv, fragments, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside parse_args
        code = exit_.code
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, *fragments)


def test_fit_on_a_file_that_is_not_a_dataset(tmp_path, capsys):
    bad = tmp_path / "notes.h5"
    bad.write_text("this is not HDF5")
    code, _, err = run_cli(capsys, "fit", bad, "--model", "smoothing", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "notes.h5")


@pytest.mark.parametrize("command", ["simulate", "fit", "evaluate"])
def test_help_for_each_command(command):
    result = subprocess.run(
        [sys.executable, "-m", "lfadskit.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "usage: lfadskit " + command in result.stdout


def test_fit_smoothing_on_real_data_then_evaluate_prints_the_same(mc_maze_dir, tmp_path, capsys):
    run_dir = tmp_path / "smooth"
    code, stdout, _ = run_cli(capsys, "fit", mc_maze_dir, "--model", "smoothing", "--out", run_dir)
    assert code == 0
    written = json.loads((run_dir / "metrics.json").read_text())
    co_bps = written["valid"]["co_bps"]
    assert 0.08 < co_bps < 0.2  # smoothing gives about 0.12 on MC_Maze_Small (README)
    assert set(written) == {"train", "valid"}
    assert "vel_r2" in written["train"] and "fp_bps" in written["train"]
    assert (run_dir / "config.json").is_file() and (run_dir / "outputs.h5").is_file()

    (run_dir / "metrics.json").unlink()
    code, stdout, _ = run_cli(capsys, "evaluate", run_dir)
    assert code == 0
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again == written
    assert "co_bps" in stdout and f"{co_bps:.4f}" in stdout


TINY_LFADS = [
    "--epochs",
    2,
    "--enc-dim",
    8,
    "--gen-dim",
    8,
    "--fac-dim",
    4,
    "--ic-dim",
    4,
    "--con-dim",
    4,
    "--co-dim",
    2,
    "--n-samples",
    3,
    "--batch-size",
    40,
]


def test_fit_lfads_writes_a_loadable_run_and_refuses_to_overwrite(tmp_path, capsys):
    data_path = tmp_path / "lorenz.npz"
    run_cli(
        capsys,
        "simulate",
        "lorenz",
        "--out",
        data_path,
        "--n-conditions",
        4,
        "--trials-per-condition",
        5,
        "--n-timesteps",
        20,
        "--n-heldout",
        3,
        "--quiet",
    )
    run_dir = tmp_path / "run"
    code, stdout, _ = run_cli(
        capsys, "fit", data_path, "--out", run_dir, "--sv-rate", 0.1, *TINY_LFADS
    )
    assert code == 0, stdout
    assert "epoch    2/2" in stdout
    for name in ("config.json", "outputs.h5", "metrics.json", "history.csv", "lfads.json"):
        assert (run_dir / name).is_file(), name
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 3  # header + 2 epochs
    from lfadskit.lfads import LFADS
    from lfadskit.runs import read_outputs

    model = LFADS.load(run_dir)
    data = lfadskit.load(data_path)
    outputs = read_outputs(run_dir / "outputs.h5")
    assert outputs["rates"].shape == data.recon_shape
    assert {"factors", "ic_mean", "ic_std"} <= set(outputs)
    assert model.config_.sv_rate == 0.1 and model.config_.max_epochs == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"co_bps", "rate_r2", "nll"} <= set(metrics["valid"])

    code, _, err = run_cli(capsys, "fit", data_path, "--out", run_dir, *TINY_LFADS)
    assert_one_line_error(code, err, "--resume")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--cd-rate", "1.5"], ["--cd-rate", "[0, 1)"]),
        (["--metric", "sv_nll"], ["sv_nll", "sv_rate"]),
        (["--align", "move_onset_time"], ["--align", "only for NWB"]),
    ],
)
def test_fit_option_errors(argv, fragments, tmp_path, capsys):
    data_path = tmp_path / "d.npz"
    run_cli(
        capsys,
        "simulate",
        "lorenz",
        "--out",
        data_path,
        "--n-conditions",
        2,
        "--trials-per-condition",
        4,
        "--quiet",
    )
    try:
        code = main(["fit", str(data_path), "--out", str(tmp_path / "r"), *argv])
    except SystemExit as exit_:
        code = exit_.code
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, *fragments)


def test_fit_nwb_recording_end_to_end(mc_maze_dir, tmp_path, capsys):
    nwb = mc_maze_dir / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"
    run_dir = tmp_path / "nwb"
    code, stdout, _ = run_cli(
        capsys,
        "fit",
        nwb,
        "--align",
        "move_onset_time",
        "--window",
        -0.25,
        0.45,
        "--bin-size",
        0.005,
        "--heldout",
        0.2,
        "--out",
        run_dir,
        *TINY_LFADS,
    )
    assert code == 0, stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["load_options"]["window"] == [-0.25, 0.45]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.isfinite(metrics["valid"]["co_bps"])
    assert (run_dir / "outputs.nwb").is_file()
    code, stdout, _ = run_cli(capsys, "evaluate", run_dir)  # reloads the NWB with its options
    assert code == 0 and json.loads((run_dir / "metrics.json").read_text()) == metrics


def test_fit_continuous_nwb_merges_rates_back(mc_maze_dir, tmp_path, capsys):
    nwb = mc_maze_dir / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"
    run_dir = tmp_path / "cont"
    code, _, _ = run_cli(
        capsys,
        "fit",
        nwb,
        "--continuous",
        "--segment",
        0.5,
        "--overlap",
        0.3,
        "--model",
        "smoothing",
        "--out",
        run_dir,
    )
    assert code == 0
    from lfadskit.runs import read_outputs

    outputs = read_outputs(run_dir / "outputs.h5")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["load_options"]["segment_length"] == 100
    assert config["data"]["load_options"]["overlap"] == 60
    data = lfadskit.load(nwb, **config["data"]["load_options"])
    assert outputs["continuous_rates"].shape == (data.meta["n_time"], data.n_neurons)
    # each merged bin comes from a segment that covers it: spot-check the first segment's centre
    centre = data.meta["starts"][0] + 50
    assert np.allclose(outputs["continuous_rates"][centre], outputs["rates"][0, 50])


TINY_SEARCH = [
    "--enc-dim",
    "8",
    "--gen-dim",
    "8",
    "--fac-dim",
    "4",
    "--ic-dim",
    "4",
    "--con-dim",
    "4",
    "--co-dim",
    "2",
    "--n-samples",
    "3",
    "--batch-size",
    "40",
    "--ramp-epochs",
    "1",
]


def test_search_pbt_then_evaluate_and_report(tmp_path, capsys):
    data_path = tmp_path / "lorenz.npz"
    lfadskit.save(
        lfadskit.simulate.lorenz(
            n_conditions=4, n_trials_per_condition=5, n_timesteps=20, n_heldout=3
        ),
        data_path,
    )
    run_dir = tmp_path / "pbt"
    argv = [
        "search",
        data_path,
        "--out",
        run_dir,
        "--method",
        "pbt",
        "--population",
        4,
        "--generations",
        2,
        "--epochs-per-generation",
        1,
        "--set",
        "dropout=0.1",
        "--set",
        "lr=1e-3:1e-2:log",
        "--start-from-config",  # member 0 starts from the default hyperparameters
        *TINY_SEARCH,
    ]
    code, stdout, _ = run_cli(capsys, *argv)
    assert code == 0, stdout
    assert "generation 2/2" in stdout and "best member" in stdout
    rows = (run_dir / "search" / "generations.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 4  # header + 2 generations x 4 members
    header = rows[0].split(",")
    dropout = [float(r.split(",")[header.index("dropout")]) for r in rows[1:]]
    assert np.allclose(dropout, 0.1)  # fixed by --set: never explored
    first = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:5]]
    assert float(first[0]["l2_gen_scale"]) == pytest.approx(LFADSConfig().l2_gen_scale)
    assert float(first[0]["kl_co_scale"]) == pytest.approx(LFADSConfig().kl_co_scale)
    assert float(first[1]["l2_gen_scale"]) != pytest.approx(LFADSConfig().l2_gen_scale)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    code, _, _ = run_cli(capsys, "evaluate", run_dir)
    assert code == 0 and json.loads((run_dir / "metrics.json").read_text()) == metrics
    code, stdout, _ = run_cli(capsys, "report", run_dir)
    assert code == 0 and (run_dir / "report.html").is_file()
    # running again without --resume must not overwrite the finished search
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "resume")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--set", "frobnication=3"], ["frobnication", "lr"]),
        (["--set", "lr=1e-2:1e-4"], ["lr"]),
        (["--method", "random", "--metric", "sv_nll", "--sv-rate", "0"], ["sv_rate"]),
        # the default lr (4e-3) lies outside the narrowed range
        (["--start-from-config", "--set", "lr=1e-4:1e-3"], ["--start-from-config", "lr", "0.004"]),
    ],
)
def test_search_option_errors(argv, fragments, tmp_path, capsys):
    data_path = tmp_path / "d.npz"
    lfadskit.save(lfadskit.simulate.lorenz(n_conditions=2, n_trials_per_condition=4), data_path)
    code, _, err = run_cli(capsys, "search", data_path, "--out", tmp_path / "r", *argv)
    assert_one_line_error(code, err, *fragments)


def test_demo_runs_the_whole_workflow(tmp_path, capsys, monkeypatch):
    from lfadskit import commands

    # the real demo takes minutes: same workflow, tiny sizes
    monkeypatch.setattr(
        commands,
        "DEMO_DATA",
        dict(n_conditions=4, n_trials_per_condition=5, n_timesteps=20, n_heldout=3),
    )
    tiny = dict(
        ic_enc_dim=8,
        ci_enc_dim=8,
        ic_dim=4,
        con_dim=4,
        co_dim=2,
        gen_dim=8,
        fac_dim=4,
        sv_rate=0.1,
        cd_rate=0.3,
        selection_metric="sv_nll",
        n_samples=3,
        kl_increase_epoch=1,
        l2_increase_epoch=1,
    )
    monkeypatch.setattr(commands, "DEMO_MODEL", tiny)
    monkeypatch.setattr(
        commands, "DEMO_PBT", dict(population=2, generations=2, epochs_per_generation=1)
    )
    code, stdout, _ = run_cli(capsys, "demo", "--out", tmp_path / "demo")
    assert code == 0, stdout
    assert "best model: valid rate_r2" in stdout and "baseline:   valid rate_r2" in stdout
    assert (tmp_path / "demo" / "pbt" / "report.html").is_file()
    assert (tmp_path / "demo" / "lorenz.h5").is_file()
