"""Random search: sampling, vectorized training, ranking, results table, exported best run."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads import LFADS, LFADSConfig, fit_population
from lfadskit.lfads.config import SEARCHABLE
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
