"""Random search: sampling, vectorized training, ranking, results table, exported best run."""

from __future__ import annotations

import json
import math
import re
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from killing import run_until_ready_then_kill
from lfadskit.cli import main
from lfadskit.data import SpikeData
from lfadskit.lfads import LFADS, LFADSConfig, fit_population
from lfadskit.lfads.config import SEARCHABLE
from lfadskit.runs import read_outputs
from lfadskit.search import SearchSpace, random_search, sample
from lfadskit.search.random_search import rank
from lfadskit.search.results import member_seeds

TINY = dict(
    ic_enc_dim=4,
    ci_enc_dim=4,
    ic_dim=2,
    con_dim=4,
    co_dim=1,
    gen_dim=6,
    fac_dim=2,
    kl_increase_epoch=1,
    l2_increase_epoch=1,
    batch_size=6,
    n_samples=3,
    max_epochs=4,
    patience=100,
)


def tiny_data(seed=0, n_trials=16):
    rng = np.random.default_rng(seed)
    return SpikeData(
        spikes=rng.poisson(1.5, (n_trials, 10, 6)),
        heldout=rng.poisson(1.0, (n_trials, 10, 2)),
        train_idx=np.arange(n_trials - 4),
        valid_idx=np.arange(n_trials - 4, n_trials),
    )


def test_rank_puts_lower_first_and_non_finite_last():
    assert rank([0.3, math.nan, 0.1, math.inf, 0.2]) == [3, 4, 1, 5, 2]


def test_random_search_trains_sampled_configs_and_ranks_them(tmp_path):
    data = tiny_data()
    space = SearchSpace().replace(dropout=0.1, lr=(1e-3, 1e-2))
    cfg = LFADSConfig(**TINY, sv_rate=0.2)
    seen = []
    result = random_search(
        data,
        space,
        n_configs=5,
        population=2,
        config=cfg,
        metric="sv_nll",
        out=tmp_path,
        seed=3,
        progress=seen.append,
    )
    rows = result.history
    assert [r["config"] for r in rows] == list(range(5))
    # the configurations are the space's draws for this seed
    expected = sample(space, 5, np.random.default_rng(3))
    for name in SEARCHABLE:
        assert [r[name] for r in rows] == pytest.approx(expected[name].tolist(), rel=1e-6)
    assert all(r["dropout"] == pytest.approx(0.1) for r in rows)
    # ranks order the smoothed metric at each member's best epoch
    metrics = [r["metric"] for r in rows]
    assert all(math.isfinite(m) for m in metrics)
    order = sorted(range(5), key=lambda i: metrics[i])
    assert [rows[i]["rank"] for i in order] == [1, 2, 3, 4, 5]
    best = order[0]
    assert result.best_member == best
    assert result.best_metrics["metric"] == metrics[best]
    assert result.best_hparams == {n: rows[best][n] for n in SEARCHABLE}
    assert result.config.selection_metric == "sv_nll"

    # independent reference: the best configuration trained alone gives the same numbers
    alone = fit_population(
        data,
        result.config,
        {n: [rows[best][n]] for n in SEARCHABLE},
        seeds=[member_seeds(3, 5)[best]],
    )
    assert alone.best_metric[0] == pytest.approx(metrics[best], rel=1e-5)
    assert alone.best_epoch[0] == rows[best]["best_epoch"] == result.best_metrics["epoch"]
    for name, tensor in alone.params.items():
        assert torch.allclose(tensor, result.best_params[name], atol=1e-5), name

    # the table on disk is the history; progress saw every population
    table = pd.read_csv(tmp_path / "search" / "results.csv")
    assert table["rank"].tolist() == [r["rank"] for r in rows]
    assert np.allclose(table["metric"], metrics)
    chunks = [p for p in seen if p["stage"] == "chunk"]
    assert [p["n_done"] for p in chunks] == [2, 4, 5]
    assert sum(p["stage"] == "epoch" for p in seen) == 3 * cfg.max_epochs
    assert (tmp_path / "search" / "summary.json").is_file()


def test_best_run_is_exported_and_evaluable(tmp_path):
    from lfadskit.cli import main
    from lfadskit.formats import load, save
    from lfadskit.runs import read_json, read_outputs

    save(tiny_data(seed=1), tmp_path / "data.npz")
    data = load(tmp_path / "data.npz")
    out = tmp_path / "run"
    result = random_search(data, n_configs=2, population=2, config=LFADSConfig(**TINY), out=out)
    model = LFADS.load(out / "best")
    assert model.config_.lr == pytest.approx(result.best_hparams["lr"])
    rates = read_outputs(out / "outputs.h5")["rates"]
    assert rates.shape == data.recon_shape
    np.testing.assert_allclose(model.predict_rates(data), rates, rtol=1e-6)
    metrics = read_json(out / "metrics.json")
    assert "co_bps" in metrics["valid"]
    assert main(["evaluate", str(out), "--quiet"]) == 0
    assert read_json(out / "metrics.json")["valid"]["co_bps"] == pytest.approx(
        metrics["valid"]["co_bps"]
    )


def test_initial_points_are_the_first_configurations():
    data, cfg = tiny_data(), LFADSConfig(**TINY)
    point = {"l2_gen_scale": 0.3, "kl_co_scale": 1e-5}
    plain = random_search(data, n_configs=3, population=3, config=cfg)
    placed = random_search(data, n_configs=3, population=3, config=cfg, initial_points=[point])
    first = placed.history[0]
    # (the trainer holds hyperparameters in float32)
    assert first["l2_gen_scale"] == pytest.approx(0.3) and first["kl_co_scale"] == pytest.approx(
        1e-5
    )
    assert first["lr"] == plain.history[0]["lr"]  # names the point leaves out: as drawn
    for a, b in zip(plain.history[1:], placed.history[1:], strict=True):
        assert a["l2_gen_scale"] == b["l2_gen_scale"]
        assert a["metric"] == pytest.approx(b["metric"], rel=1e-5)
    with pytest.raises(ValueError, match=r"initial points\[0\]\['lr'\].*outside"):
        random_search(data, config=cfg, initial_points=[{"lr": 1.0}])


def test_random_search_argument_errors():
    data = tiny_data()
    cfg = LFADSConfig(**TINY)
    with pytest.raises(ValueError, match="n_configs"):
        random_search(data, n_configs=0, config=cfg)
    with pytest.raises(ValueError, match="metric"):
        random_search(data, config=cfg, metric="co_bps")
    with pytest.raises(ValueError, match="sv_rate"):
        random_search(data, config=cfg, metric="sv_nll")
    with pytest.raises(ValueError, match="max_epochs"):
        random_search(data, config=cfg.replace(max_epochs=1))
    with pytest.raises(ValueError, match="SearchSpace"):
        random_search(data, space={"lr": 1e-3}, config=cfg)


# ----------------------------------------------------------------------------- resume
CLI_SEARCH = [
    "--method", "random", "--n-configs", "5", "--population", "2", "--seed", "3",
    "--enc-dim", "4", "--ic-dim", "2", "--con-dim", "4", "--co-dim", "1", "--gen-dim", "6",
    "--fac-dim", "2", "--ramp-epochs", "1", "--batch-size", "6", "--n-samples", "3",
]  # fmt: skip

CHILD = """
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from lfadskit import commands
from lfadskit.cli import main

folder = Path(sys.argv[1])
show = commands.SearchProgress.__call__

def hang(self, info):
    show(self, info)
    # hang in the middle of the second population, after the first one completed
    if info["stage"] == "epoch" and info["chunk"] == 1 and info["epoch"] == 1:
        (folder / "ready").write_text("x")
        time.sleep(120)

commands.SearchProgress.__call__ = hang
sys.exit(main(sys.argv[2:]))
"""


def search_argv(folder, out, *extra):
    # search has no --epochs flag: max_epochs and patience come from --config
    (folder / "config.json").write_text(json.dumps({"max_epochs": 4, "patience": 100}))
    config = ["--config", str(folder / "config.json")]
    return ["search", str(folder / "data.npz"), "--out", str(out), *CLI_SEARCH, *config, *extra]


def assert_same_search(run, straight):
    """The files of two finished random searches agree (up to wall-clock times)."""
    for name in ("search/results.csv", "search/summary.json", "search/space.json", "metrics.json"):
        assert (run / name).read_text() == (straight / name).read_text(), name
    a, b = LFADS.load(run / "best"), LFADS.load(straight / "best")
    assert a.config_ == b.config_ and a.best_epoch_ == b.best_epoch_
    assert a.best_metric_ == b.best_metric_
    for name, tensor in b.params_.items():
        assert torch.equal(a.params_[name], tensor), name
    drop = ["time_s"]  # wall-clock seconds of each epoch: the one thing allowed to differ
    assert [{k: v for k, v in r.items() if k not in drop} for r in a.history_] == [
        {k: v for k, v in r.items() if k not in drop} for r in b.history_
    ]
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "history.csv").drop(columns=drop),
        pd.read_csv(straight / "history.csv").drop(columns=drop),
    )
    np.testing.assert_array_equal(
        read_outputs(run / "outputs.h5")["rates"], read_outputs(straight / "outputs.h5")["rates"]
    )


def test_cli_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, capsys):
    from lfadskit.formats import save

    save(tiny_data(seed=2), tmp_path / "data.npz")
    run = tmp_path / "run"
    killed = run_until_ready_then_kill(CHILD, tmp_path, *search_argv(tmp_path, run))
    assert killed == -signal.SIGKILL

    # what survived the kill: the first population (rows, best) and the second one's epochs
    state = torch.load(run / "search" / "random_state.pt", weights_only=True)
    assert state["state"]["n_chunks_done"] == 1 and len(state["state"]["rows"]) == 2
    chunk = torch.load(run / "search" / "chunk.pt", weights_only=True)
    assert chunk["chunk"] == 1 and chunk["trainer"]["epoch"] == 2
    assert len(pd.read_csv(run / "search" / "results.csv")) == 2
    assert not (run / "best").exists() and not (run / "search" / "summary.json").exists()

    # without --resume the saved state is never overwritten
    code = main(search_argv(tmp_path, run, "--quiet"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--resume" in err
    assert "random_state.pt" in err and "--out" in err
    # with other settings it is refused, naming them
    code = main(search_argv(tmp_path, run, "--quiet", "--resume", "--n-configs", "6"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "different settings (n_configs)" in err

    assert main(search_argv(tmp_path, run, "--quiet", "--resume")) == 0
    assert main(search_argv(tmp_path, tmp_path / "straight", "--quiet")) == 0
    assert not (run / "search" / "chunk.pt").exists()
    assert_same_search(run, tmp_path / "straight")
    assert len(pd.read_csv(run / "search" / "results.csv")) == 5
    # resuming a finished search returns it again
    assert main(search_argv(tmp_path, run, "--quiet", "--resume")) == 0
    assert_same_search(run, tmp_path / "straight")


class Interrupt(Exception):
    """Stands in for a kill: raised from the progress callback, nothing else runs."""


def interrupt_at(stage, chunk, epoch=None):
    def progress(info):
        if info["stage"] == stage and info["chunk"] == chunk and info.get("epoch") == epoch:
            raise Interrupt

    return progress


@pytest.fixture(scope="module")
def straight_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    kwargs = dict(n_configs=5, population=2, config=LFADSConfig(**TINY), seed=4)
    return out, kwargs, random_search(tiny_data(seed=5), out=out, **kwargs)


@pytest.mark.parametrize(
    ("stage", "chunk", "epoch"),
    [
        ("epoch", 0, 0),  # first epoch of all: only the settings and one epoch saved
        ("chunk", 0, None),  # a population just completed (chunk.pt already removed)
        ("epoch", 2, 3),  # last epoch of the last population, before its rows are saved
    ],
)
def test_resume_after_an_interruption_anywhere_equals_an_uninterrupted_run(
    stage, chunk, epoch, straight_search, tmp_path
):
    straight_dir, kwargs, straight = straight_search
    data = tiny_data(seed=5)
    with pytest.raises(Interrupt):
        random_search(data, out=tmp_path, progress=interrupt_at(stage, chunk, epoch), **kwargs)
    assert (tmp_path / "search" / "random_state.pt").is_file()
    assert (tmp_path / "search" / "chunk.pt").is_file() == (stage == "epoch")
    epochs = []
    resumed = random_search(
        data, out=tmp_path, resume=True, progress=lambda i: epochs.append(i), **kwargs
    )
    # only the epochs after the interruption are trained (3 populations x 4 epochs)
    trained = [(i["chunk"], i["epoch"]) for i in epochs if i["stage"] == "epoch"]
    done = (chunk, 3 if epoch is None else epoch)
    assert trained == [(c, e) for c in range(3) for e in range(4) if (c, e) > done]
    # DataFrame.equals: exact, with NaN equal to NaN (sv_nll is NaN without SV)
    assert pd.DataFrame(resumed.history).equals(pd.DataFrame(straight.history))
    assert resumed.best_member == straight.best_member
    assert pd.Series(resumed.best_metrics).equals(pd.Series(straight.best_metrics))
    for name, tensor in straight.best_params.items():
        assert torch.equal(resumed.best_params[name], tensor), name
    assert_same_search(tmp_path, straight_dir)


def test_resume_refuses_other_settings_and_clobbering(straight_search, tmp_path):
    straight_dir, kwargs, _ = straight_search
    data = tiny_data(seed=5)
    with pytest.raises(ValueError, match="resume: needs out"):
        random_search(data, resume=True, **kwargs)
    # resume=True with nothing saved yet simply starts
    with pytest.raises(Interrupt):
        random_search(data, out=tmp_path, resume=True, progress=interrupt_at("chunk", 0), **kwargs)
    with pytest.raises(ValueError, match=r"exists .*pass resume=True \(--resume\)"):
        random_search(data, out=tmp_path, **kwargs)
    changes = [
        (dict(kwargs, n_configs=6), "n_configs"),
        (dict(kwargs, population=3), "population"),
        (dict(kwargs, seed=5), "seed"),
        (dict(kwargs, config=kwargs["config"].replace(gen_dim=8)), "config.gen_dim"),
        (dict(kwargs, space=SearchSpace().replace(dropout=0.2)), "space.dropout.high"),
        (dict(kwargs, initial_points=[{"lr": 1e-3}]), "initial_points"),
    ]
    for changed, field in changes:
        with pytest.raises(ValueError, match=rf"different settings \({re.escape(field)}\b"):
            random_search(data, out=tmp_path, resume=True, **changed)
    with pytest.raises(ValueError, match=r"different settings \(data\)"):
        random_search(tiny_data(seed=6), out=tmp_path, resume=True, **kwargs)
    with pytest.raises(ValueError, match=r"different settings \(config.sv_rate, metric\);"):
        cfg = kwargs["config"].replace(sv_rate=0.2)
        random_search(data, out=tmp_path, resume=True, **dict(kwargs, config=cfg), metric="sv_nll")
    # nothing was overwritten by the refusals: resuming still gives the uninterrupted result
    resumed = random_search(data, out=tmp_path, resume=True, **kwargs)
    assert_same_search(tmp_path, straight_dir)
    assert resumed.best_member == straight_search[2].best_member


def test_random_search_refuses_a_pbt_run_directory(tmp_path):
    from lfadskit.search import pbt

    data = tiny_data()
    cfg = LFADSConfig(**TINY)
    pbt(data, population=2, generations=1, epochs_per_generation=1, config=cfg, out=tmp_path)
    for resume in (False, True):
        with pytest.raises(ValueError, match="holds a PBT search"):
            random_search(data, n_configs=2, population=2, config=cfg, out=tmp_path, resume=resume)
