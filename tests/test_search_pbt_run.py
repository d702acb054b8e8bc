"""PBT driver: exploit/explore on a live population, lineage table, NaN members, resume."""

from __future__ import annotations

import json
import math
import signal

import numpy as np
import pandas as pd
import pytest
import torch

from killing import run_until_ready_then_kill
from lfadskit.data import SpikeData
from lfadskit.lfads import LFADS, LFADSConfig, PopulationTrainer
from lfadskit.lfads.config import SEARCHABLE
from lfadskit.search import SearchSpace, apply_plan, pbt, plan_generation
from lfadskit.search import pbt_search as pbt_module

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
)


def arrays(seed=0, n_trials=16):
    rng = np.random.default_rng(seed)
    return {
        "spikes": rng.poisson(1.5, (n_trials, 10, 6)),
        "heldout": rng.poisson(1.0, (n_trials, 10, 2)),
        "train_idx": np.arange(n_trials - 4),
        "valid_idx": np.arange(n_trials - 4, n_trials),
    }


def tiny_data(seed=0):
    return SpikeData(**arrays(seed))


def test_lr_after_a_copy_is_the_explored_one():
    data = tiny_data()
    cfg = LFADSConfig(**TINY, max_epochs=10)
    space = SearchSpace()
    hparams = {n: [getattr(cfg, n)] * 4 for n in SEARCHABLE}
    hparams["lr"] = [1e-3, 2e-3, 3e-3, 4e-3]
    trainer = PopulationTrainer(data, cfg, hparams, seeds=[0, 1, 2, 3])
    trainer.run(2)
    metrics = [1.0, 0.5, 2.0, 0.1]  # constructed so that every pair has a loser
    plan = plan_generation(metrics, trainer.hparams_list(), space, np.random.default_rng(0))
    assert len(plan.copies) == 2
    before = {n: p.detach().clone() for n, p in trainer.params.items()}
    adam_before = {n: t.clone() for n, t in trainer.optimizer.state.items()}
    apply_plan(trainer, plan)
    for src, dst in plan.copies:
        for name, tensor in trainer.params.items():
            assert torch.equal(tensor[dst], before[name][src])
        for name, tensor in trainer.optimizer.state.items():
            assert torch.equal(tensor[dst], adam_before[name][src])  # Adam moments and step
        assert trainer.hparams["lr"][dst].item() != trainer.hparams["lr"][src].item()
    # the optimizer steps with the explored learning rates, not the copied member's
    used = []
    original_step = trainer.optimizer.step

    def spy(grads, lr, active):
        used.append(lr.clone())
        return original_step(grads, lr, active)

    trainer.optimizer.step = spy
    trainer.train_epoch()
    expected = torch.tensor(plan.hparams["lr"], dtype=torch.float32)
    assert used and all(torch.equal(lr, expected) for lr in used)


def check_lineage(table: pd.DataFrame, space: SearchSpace, k: int):
    for g in sorted(table.generation.unique())[1:]:
        prev = table[table.generation == g - 1].set_index("member")
        cur = table[table.generation == g].set_index("member")
        for member, row in cur.iterrows():
            parent = row["parent"]
            if parent == member:
                for name in SEARCHABLE:  # not replaced: unchanged
                    assert row[name] == prev.loc[member, name]
                continue
            # the loser was worse than its parent at the end of the previous generation
            loser_metric = prev.loc[member, "metric"]
            assert math.isnan(loser_metric) or prev.loc[parent, "metric"] < loser_metric
            # the parent itself was not replaced in that boundary
            assert cur.loc[parent, "parent"] == parent
            for name, spec in space.specs().items():
                value, source = row[name], prev.loc[parent, name]
                assert spec.low * (1 - 1e-6) <= value <= spec.high * (1 + 1e-6)
                if spec.fixed:
                    assert value == pytest.approx(spec.low)
                else:  # float32 storage in the trainer: compare with a tolerance
                    ratio = value / source
                    assert 1 / (1 + spec.weight) - 1e-5 <= ratio <= 1 + spec.weight + 1e-5


def test_pbt_writes_lineage_and_exports_the_best(tmp_path):
    data = tiny_data()
    space = SearchSpace().replace(dropout=0.1)
    seen = []
    result = pbt(
        data,
        space,
        population=4,
        generations=4,
        epochs_per_generation=1,
        config=LFADSConfig(**TINY),
        out=tmp_path,
        seed=2,  # a seed whose best model was found after copies
        progress=seen.append,
    )
    assert result.n_generations == 4 and result.stop_reason == "generations"
    table = pd.read_csv(tmp_path / "search" / "generations.csv")
    assert len(table) == 4 * 4 == len(result.history)
    assert table.groupby("generation").member.apply(sorted).tolist() == [[0, 1, 2, 3]] * 4
    assert np.allclose(table.dropout, 0.1)
    assert (table[table.generation == 0].parent == table[table.generation == 0].member).all()
    assert (table.parent != table.member).any()  # some copies happened
    check_lineage(table, space, 4)
    # initial values: every member started at the space's init
    first = table[table.generation == 0]
    assert np.allclose(first.lr, 4e-3) and (first.cd_rate == 0.5).all()
    # the trainer really used the hyperparameters of the table in every epoch
    state = torch.load(tmp_path / "search" / "checkpoint.pt", weights_only=True)
    history = state["trainer"]["history"]
    for g, (first_epoch, end) in enumerate(state["state"]["bounds"]):
        rows = table[table.generation == g].sort_values("member")
        for e in range(first_epoch, end):
            for name in ("lr", "cd_rate", "kl_ic_scale"):
                np.testing.assert_allclose(history[e]["hparams"][name], rows[name], rtol=1e-7)
    # the best model is the lowest smoothed metric ever reached
    assert result.best_metrics["metric"] == pytest.approx(table.best_metric.min())
    gens = [p for p in seen if p["stage"] == "generation"]
    assert [p["generation"] for p in gens] == [0, 1, 2, 3]
    assert [p["best_metric"] for p in gens] == sorted([p["best_metric"] for p in gens])[::-1]
    model = LFADS.load(tmp_path / "best")
    assert model.config_.lr == pytest.approx(result.best_hparams["lr"])
    assert len(model.history_) == result.best_metrics["epoch"] + 1
    assert model.history_[-1]["metric_smoothed"] == pytest.approx(result.best_metrics["metric"])
    for name, tensor in model.params_.items():
        assert torch.equal(tensor, result.best_params[name])
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "outputs.h5").is_file()
    # history.csv follows the best weights' lineage back through the copies
    history_csv = pd.read_csv(tmp_path / "history.csv")
    assert history_csv.epoch.tolist() == list(range(result.best_metrics["epoch"] + 1))
    owner, g = result.best_member, result.best_metrics["generation"]
    by_key = table.set_index(["generation", "member"])
    ends = table.groupby("generation").epochs.first().tolist()
    copies_on_lineage = 0
    while g >= 0:
        first_epoch = ends[g - 1] if g > 0 else 0
        epochs = history_csv[(history_csv.epoch >= first_epoch) & (history_csv.epoch < ends[g])]
        assert len(epochs) > 0
        assert np.allclose(epochs.lr, by_key.loc[(g, owner), "lr"])
        assert np.allclose(epochs.kl_ic_scale, by_key.loc[(g, owner), "kl_ic_scale"])
        parent = by_key.loc[(g, owner), "parent"]
        copies_on_lineage += parent != owner
        owner, g = parent, g - 1
    assert copies_on_lineage > 0


def test_pbt_stops_when_converged_and_validates_arguments(tmp_path):
    data = tiny_data()
    cfg = LFADSConfig(**TINY)
    result = pbt(
        data, population=2, generations=6, epochs_per_generation=1, config=cfg,
        patience=1, min_improvement=1.0,
    )  # fmt: skip
    assert result.stop_reason == "converged" and result.n_generations == 2
    with pytest.raises(NotImplementedError, match="later issue"):
        pbt(data, config=cfg, backend="ray")
    with pytest.raises(ValueError, match="backend"):
        pbt(data, config=cfg, backend="dask")
    with pytest.raises(ValueError, match="burn_in"):
        pbt(data, config=cfg.replace(kl_increase_epoch=5), burn_in=2)
    with pytest.raises(ValueError, match="resume: needs out"):
        pbt(data, config=cfg, resume=True)
    pbt(data, population=2, generations=1, epochs_per_generation=1, config=cfg, out=tmp_path)
    with pytest.raises(ValueError, match="resume=True"):
        pbt(data, population=2, generations=1, epochs_per_generation=1, config=cfg, out=tmp_path)
    with pytest.raises(ValueError, match="different settings"):
        pbt(data, population=3, generations=1, epochs_per_generation=1, config=cfg, out=tmp_path,
            resume=True)  # fmt: skip


class PoisonedTrainer(PopulationTrainer):
    """Member 1's weights turn to NaN before its second epoch."""

    def train_epoch(self):
        if self.epoch == 1:
            with torch.no_grad():
                for tensor in self.params.values():
                    tensor[1] = math.nan
        return super().train_epoch()


def test_a_nan_member_loses_and_the_search_goes_on(monkeypatch, tmp_path):
    monkeypatch.setattr(pbt_module, "PopulationTrainer", PoisonedTrainer)
    result = pbt(
        tiny_data(), population=3, generations=3, epochs_per_generation=1,
        config=LFADSConfig(**TINY), out=tmp_path, seed=2,
    )  # fmt: skip
    table = pd.DataFrame(result.history)
    gen0 = table[table.generation == 0].set_index("member")
    assert gen0.loc[1, "status"] == "failed" and math.isnan(gen0.loc[1, "metric"])
    gen1 = table[table.generation == 1].set_index("member")
    assert gen1.loc[1, "parent"] != 1 and gen1.loc[1, "status"] == "running"
    assert math.isfinite(gen1.loc[1, "metric"])
    assert result.n_generations == 3 and math.isfinite(result.best_metrics["metric"])
    assert table.metric[table.generation == 2].notna().all()


CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
from lfadskit.data import SpikeData
from lfadskit.lfads import LFADSConfig
from lfadskit.search import pbt

folder = Path(sys.argv[1])
data = SpikeData(**dict(np.load(folder / "data.npz")))
cfg = LFADSConfig.from_dict(json.loads((folder / "config.json").read_text()))

def progress(info):
    # hang in the middle of the second generation, after the first one's checkpoint
    if info["stage"] == "epoch" and info["generation"] == 1:
        (folder / "ready").write_text("x")
        time.sleep(120)

pbt(data, **json.loads((folder / "kwargs.json").read_text()), config=cfg,
    out=folder / "run", progress=progress)
"""


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    cfg = LFADSConfig(**TINY)
    kwargs = dict(population=3, generations=3, epochs_per_generation=2, seed=4)
    np.savez(tmp_path / "data.npz", **arrays(seed=3))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    (tmp_path / "kwargs.json").write_text(json.dumps(kwargs))
    assert run_until_ready_then_kill(CHILD, tmp_path) == -signal.SIGKILL
    run = tmp_path / "run"
    saved = torch.load(run / "search" / "checkpoint.pt", weights_only=True)
    assert saved["state"]["generation"] == 1  # the first generation survived the kill
    assert len(pd.read_csv(run / "search" / "generations.csv")) == 3
    assert not (run / "best").exists()

    data = SpikeData(**arrays(seed=3))
    resumed = pbt(data, config=cfg, out=run, resume=True, **kwargs)
    straight = pbt(data, config=cfg, out=tmp_path / "straight", **kwargs)
    assert resumed.n_generations == straight.n_generations == 3
    assert pd.DataFrame(resumed.history).equals(pd.DataFrame(straight.history))
    assert resumed.best_member == straight.best_member
    assert resumed.best_hparams == straight.best_hparams
    for name, tensor in straight.best_params.items():
        assert torch.equal(resumed.best_params[name], tensor), name
    a = pd.read_csv(run / "search" / "generations.csv")
    b = pd.read_csv(tmp_path / "straight" / "search" / "generations.csv")
    assert a.equals(b)
    # resuming a finished search just returns it
    again = pbt(data, config=cfg, out=run, resume=True, **kwargs)
    assert pd.DataFrame(again.history).equals(pd.DataFrame(straight.history))
