"""Population training: lockstep equivalence, early stopping, NaN members, resume, no leaks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads import LFADSConfig, PopulationTrainer, fit_population

TINY = dict(ic_enc_dim=6, ci_enc_dim=6, ic_dim=4, con_dim=6, co_dim=2, gen_dim=8, fac_dim=3)


def tiny_data(n_trials=16, n_time=10, n_in=7, n_heldout=3, n_forward=2, seed=0):
    rng = np.random.default_rng(seed)
    heldout = rng.poisson(1.0, (n_trials, n_time, n_heldout)).astype(float)
    forward_ = rng.poisson(1.0, (n_trials, n_forward, n_in + n_heldout)).astype(float)
    valid = np.arange(n_trials - 4, n_trials)
    heldout[valid] = rng.poisson(1.0, (4, n_time, n_heldout))  # observed: a leak would show
    forward_[valid] = np.nan
    return SpikeData(
        spikes=rng.poisson(1.5, (n_trials, n_time, n_in)),
        heldout=heldout,
        forward=forward_,
        train_idx=np.arange(n_trials - 4),
        valid_idx=valid,
    )


def config(**changes):
    base = dict(
        TINY, max_epochs=3, kl_increase_epoch=1, l2_increase_epoch=1, batch_size=5, patience=100
    )
    return LFADSConfig(**{**base, **changes})


HPARAMS = {
    "lr": [4e-3, 1e-3, 8e-3],
    "dropout": [0.0, 0.3, 0.1],
    "cd_rate": [0.0, 0.5, 0.3],
    "kl_ic_scale": [1e-4, 1e-2, 0.0],
    "kl_co_scale": [1e-3, 1e-5, 1e-2],
    "l2_gen_scale": [1.0, 0.0, 1e-2],
    "l2_con_scale": [0.0, 1.0, 1e-3],
}


def test_population_members_train_exactly_as_they_would_alone():
    data = tiny_data()
    cfg = config(sv_rate=0.1, max_epochs=4)
    seeds = [5, 6, 7]
    together = fit_population(data, cfg, HPARAMS, seeds)
    for k, seed in enumerate(seeds):
        alone = fit_population(data, cfg, {n: [v[k]] for n, v in HPARAMS.items()}, [seed])
        for name, tensor in together.params.items():
            assert torch.allclose(tensor[k], alone.params[name][0], atol=1e-5), name
        assert together.history[-1]["valid_nll"][k] == pytest.approx(
            alone.history[-1]["valid_nll"][0], abs=1e-5
        )
        assert together.best_epoch[k] == alone.best_epoch[0]
    # and the members really differ
    assert not torch.allclose(together.params["gen.w_hh"][0], together.params["gen.w_hh"][1])


def test_training_is_deterministic_and_lowers_the_loss():
    data = tiny_data()
    cfg = config(max_epochs=6, cd_rate=0.0, dropout=0.0, lr=1e-2)
    a = fit_population(data, cfg)
    b = fit_population(data, cfg)
    for name in a.params:
        assert torch.equal(a.params[name], b.params[name])
    assert a.history[-1]["nll"][0] < a.history[0]["nll"][0]


def test_a_nan_member_fails_alone_and_the_others_go_on():
    data = tiny_data()
    cfg = config()
    trainer = PopulationTrainer(data, cfg, {"lr": [4e-3, 4e-3]}, seeds=[1, 2])
    with torch.no_grad():
        trainer.params["readout.b"][1, 0] = float("nan")
    frozen = {n: p[1].detach().clone() for n, p in trainer.params.items()}
    result = trainer.run().result()
    assert result.status == ["running", "failed"]
    alone = fit_population(data, cfg, {"lr": [4e-3]}, [1])
    for name in result.params:
        assert torch.allclose(result.params[name][0], alone.params[name][0], atol=1e-6)
        # the failed member never updated again
        assert torch.equal(trainer.params[name][1].nan_to_num(), frozen[name].nan_to_num())


def test_a_huge_learning_rate_marks_the_member_failed():
    data = tiny_data()
    cfg = config(max_epochs=6)
    result = fit_population(data, cfg, {"lr": [4e-3, 1e6]}, seeds=[0, 1])
    assert result.status[0] == "running"
    assert result.status[1] == "failed"
    assert all(math.isfinite(v) for v in result.history[-1]["valid_nll"][:1])


def test_early_stopping_is_per_member_and_stopped_members_freeze():
    data = tiny_data()
    cfg = config(max_epochs=8, patience=2, kl_increase_epoch=0, l2_increase_epoch=0)
    snapshots = []
    trainer = PopulationTrainer(
        data,
        cfg,
        {"lr": [1e-3, 1e-20]},
        seeds=[0, 1],
        callback=lambda rec, tr: snapshots.append(tr.params["gen.w_hh"].detach().clone()),
    )
    result = trainer.run().result()
    # a member that cannot move cannot improve: its smoothed metric is flat, so it stops
    # after `patience` epochs without improvement
    assert result.status[1] == "stopped"
    stopped_at = next(r["epoch"] for r in result.history if r["status"][1] == "stopped")
    assert stopped_at == 2
    for snap in snapshots[stopped_at:]:
        assert torch.equal(snap[1], snapshots[stopped_at][1])
    assert len(result.history) == 8 or result.status[0] == "stopped"


def test_best_checkpoint_and_selection_only_after_the_ramps():
    data = tiny_data()
    cfg = config(max_epochs=7, kl_increase_epoch=3, l2_increase_epoch=2, lr=2e-2)
    snapshots = {}
    trainer = PopulationTrainer(
        data,
        cfg,
        {"lr": [2e-2, 5e-3]},
        seeds=[0, 1],
        callback=lambda rec, tr: snapshots.__setitem__(
            rec["epoch"], {n: p.detach().clone() for n, p in tr.params.items()}
        ),
    )
    result = trainer.run().result()
    for k in range(2):
        best = result.best_epoch[k]
        assert best >= cfg.ramp_end_epoch == 3
        for name in result.params:
            assert torch.equal(result.params[name][k], snapshots[best][name][k])
        smoothed = [r["metric_smoothed"][k] for r in result.history]
        assert all(math.isnan(s) for s in smoothed[:3])
        # s <- 0.3 s + 0.7 value, started at the first counted value
        values = [r["valid_nll"][k] for r in result.history][3:]
        s = values[0]
        for value, got in zip(values[1:], smoothed[4:], strict=True):
            s = 0.3 * s + 0.7 * value
            assert got == pytest.approx(s, rel=1e-6)
        assert result.best_metric[k] == pytest.approx(min(smoothed[3:]))


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    data = tiny_data()
    cfg = config(max_epochs=5, sv_rate=0.2, selection_metric="sv_nll")
    hp = {"lr": [4e-3, 1e-2], "cd_rate": [0.2, 0.4]}
    full = fit_population(data, cfg, hp, [3, 4])
    fit_population(data, cfg.replace(max_epochs=2), hp, [3, 4], run_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").is_file()
    resumed = fit_population(data, cfg, hp, [3, 4], run_dir=tmp_path, resume=True)
    assert len(resumed.history) == 5
    for name in full.params:
        assert torch.equal(full.params[name], resumed.params[name]), name
    for a, b in zip(full.history, resumed.history, strict=True):
        assert a["loss"] == b["loss"] and a["sv_nll"] == b["sv_nll"]
    assert full.best_epoch == resumed.best_epoch


def test_resume_refuses_a_different_configuration(tmp_path):
    data = tiny_data()
    fit_population(data, config(max_epochs=1), run_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint"):
        fit_population(data, config(max_epochs=2, gen_dim=9), run_dir=tmp_path, resume=True)


def test_selection_never_sees_the_valid_trials_heldout_neurons():
    data = tiny_data()
    changed = data.heldout.copy()
    changed[data.valid_idx] = np.random.default_rng(9).poisson(5.0, changed[data.valid_idx].shape)
    other = data.replace(heldout=changed)
    cfg = config(max_epochs=4)
    a = fit_population(data, cfg, {"lr": [4e-3, 1e-2]}, [0, 1])
    b = fit_population(other, cfg, {"lr": [4e-3, 1e-2]}, [0, 1])
    for name in a.params:
        assert torch.equal(a.params[name], b.params[name])
    assert [r["valid_nll"] for r in a.history] == [r["valid_nll"] for r in b.history]


def test_set_hyperparameters_between_epochs_and_copy_members():
    data = tiny_data()
    trainer = PopulationTrainer(data, config(), {"lr": [1e-3, 2e-3, 3e-3]}, seeds=[0, 1, 2])
    trainer.train_epoch()
    trainer.set_member_hparams(2, lr=5e-3, dropout=0.2)
    assert trainer.hparams_list()["lr"] == pytest.approx([1e-3, 2e-3, 5e-3])
    assert trainer.hparams_list()["dropout"][2] == pytest.approx(0.2)
    trainer.copy_member(0, 1)
    for tensor in trainer.params.values():
        assert torch.equal(tensor[1], tensor[0])
    for name, tensor in trainer.optimizer.state.items():
        assert torch.equal(tensor[1], tensor[0]), name
    assert trainer.hparams_list()["lr"][1] == pytest.approx(2e-3)  # hparams are not copied
    record = trainer.train_epoch()
    assert record["hparams"]["lr"] == pytest.approx([1e-3, 2e-3, 5e-3])
    with pytest.raises(ValueError, match="dropout"):
        trainer.set_hparam("dropout", [0.1, 1.0, 0.1])
    with pytest.raises(ValueError, match="unknown"):
        trainer.set_member_hparams(0, momentum=0.9)


def test_bad_population_arguments():
    data = tiny_data()
    with pytest.raises(ValueError, match="lengths differ"):
        PopulationTrainer(data, config(), {"lr": [1e-3, 2e-3]}, seeds=[0])
    with pytest.raises(ValueError, match="unknown name"):
        PopulationTrainer(data, config(), {"learning_rate": [1e-3]})
