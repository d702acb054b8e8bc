"""The LFADS estimator: fit/predict/score/save/load, and a smoke run on MC_Maze_Small."""

from __future__ import annotations

import numpy as np
import pytest

from lfadskit.data import DataError, SpikeData
from lfadskit.lfads import LFADS, LFADSConfig
from lfadskit.metrics import co_bps

TINY = dict(ic_enc_dim=6, ci_enc_dim=6, ic_dim=4, con_dim=6, co_dim=2, gen_dim=8, fac_dim=3)


def tiny_data(n_trials=16, n_time=10, n_in=7, n_heldout=3, n_forward=2, seed=0):
    rng = np.random.default_rng(seed)
    heldout = rng.poisson(1.0, (n_trials, n_time, n_heldout)).astype(float)
    forward_ = rng.poisson(1.0, (n_trials, n_forward, n_in + n_heldout)).astype(float)
    valid = np.arange(n_trials - 4, n_trials)
    forward_[valid] = np.nan
    return SpikeData(
        spikes=rng.poisson(1.5, (n_trials, n_time, n_in)),
        heldout=heldout,
        forward=forward_,
        train_idx=np.arange(n_trials - 4),
        valid_idx=valid,
    )


def small_model(**changes):
    settings = dict(TINY, max_epochs=3, kl_increase_epoch=1, l2_increase_epoch=1, n_samples=8)
    return LFADS(**{**settings, **changes})


def test_constructor_only_stores():
    model = LFADS(gen_dim=-5)  # invalid, but only checked at fit
    assert model.overrides == {"gen_dim": -5}
    assert not hasattr(model, "params_")
    with pytest.raises(ValueError, match="gen_dim"):
        model.fit(tiny_data())


def test_fit_predict_shapes_and_learned_attributes():
    data = tiny_data()
    model = small_model()
    assert model.fit(data) is model
    out = model.predict(data)
    assert out["rates"].shape == (16, 12, 10)
    assert out["factors"].shape == (16, 12, 3)
    assert out["inputs"].shape == (16, 10, 2)
    assert out["ic_mean"].shape == out["ic_std"].shape == (16, 4)
    assert (out["rates"] > 0).all() and (out["ic_std"] > 0).all()
    assert model.predict_rates(data).shape == (16, 12, 10)
    assert model.transform(data).shape == (16, 12, 3)
    assert len(model.history_) == 3
    first = model.history_[0]
    for key in ("loss", "nll", "kl_ic", "kl_co", "l2", "valid_nll", "time_s", "lr"):
        assert np.isfinite(first[key])
    assert model.best_epoch_ in (1, 2) and model.status_ == "running"
    assert model.n_neurons_in_ == 7 and model.n_neurons_out_ == 10 and model.n_forward_ == 2


def test_posterior_mean_prediction_is_deterministic():
    data = tiny_data()
    model = small_model().fit(data)
    a = model.predict(data, posterior_mean=True)
    b = model.predict(data, posterior_mean=True)
    for name in a:
        assert np.array_equal(a[name], b[name])


def test_score_is_valid_co_bps_with_heldout_neurons_else_minus_nll():
    data = tiny_data()
    model = small_model().fit(data)
    rates = model.predict_rates(data)
    v = data.valid_idx
    expected = co_bps(data.heldout[v], rates[v, :10, 7:])
    assert model.score(data) == pytest.approx(expected, abs=1e-6)
    no_heldout = SpikeData(spikes=data.spikes, train_idx=data.train_idx, valid_idx=v)
    model2 = small_model().fit(no_heldout)
    mean_rates = model2.predict(no_heldout, posterior_mean=True)["rates"][v]
    counts = data.spikes[v]
    from scipy.stats import poisson

    assert model2.score(no_heldout) == pytest.approx(
        poisson.logpmf(counts, mean_rates).mean(), rel=1e-5
    )


def test_save_and_load_round_trip(tmp_path):
    data = tiny_data()
    model = small_model().fit(data)
    model.save(tmp_path / "model")
    loaded = LFADS.load(tmp_path / "model")
    assert loaded.config_ == model.config_
    assert loaded.best_epoch_ == model.best_epoch_ and len(loaded.history_) == 3
    for name in ("rates", "factors", "ic_mean"):
        assert np.array_equal(model.predict(data, seed=1)[name], loaded.predict(data, seed=1)[name])


def test_predict_checks_the_data():
    model = small_model().fit(tiny_data())
    with pytest.raises(DataError, match="held-in neurons"):
        model.predict(tiny_data(n_in=5))
    with pytest.raises(RuntimeError, match="not fitted"):
        LFADS().predict(tiny_data())


def test_verbose_prints_progress(capsys):
    small_model(verbose=True, max_epochs=2).fit(tiny_data())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "epoch    2/2" in lines[1] and "min left" in lines[1]
    small_model(max_epochs=1).fit(tiny_data())
    assert capsys.readouterr().out == ""


def test_config_object_and_overrides_combine():
    cfg = LFADSConfig(**TINY, max_epochs=1)
    model = LFADS(cfg, cd_rate=0.5).fit(tiny_data())
    assert model.config_.cd_rate == 0.5 and model.config_.gen_dim == 8


def test_smoke_fit_on_mc_maze_small(mc_maze_dir):
    from lfadskit.formats import load

    data = load(mc_maze_dir)
    model = LFADS(**TINY, max_epochs=1, n_samples=2).fit(data)
    rates = model.predict_rates(data)
    assert rates.shape == (100, 180, 142)
    assert np.isfinite(rates).all()
    assert np.isfinite(model.score(data))


@pytest.mark.slow
def test_default_lfads_recovers_lorenz_rates():
    # ~5-8 min on one core: 390 trials, default settings (measured valid R^2 0.93)
    from lfadskit.metrics import rate_r2
    from lfadskit.simulate import lorenz

    data = lorenz(n_trials_per_condition=6, seed=0)
    model = LFADS().fit(data)
    rates = model.predict_rates(data)
    v = data.valid_idx
    assert rate_r2(data.truth[v], rates[v]) >= 0.9


def test_from_params_builds_the_model_a_population_member_is(tmp_path):
    from lfadskit.lfads import fit_population
    from lfadskit.lfads.network import Sizes

    data = tiny_data()
    model = small_model(seed=7).fit(data)
    # member 1 of a population trains exactly as the single model with its seed
    pop = fit_population(data, model.config_, {"lr": [1e-3, model.config_.lr]}, seeds=[3, 7])
    member = {name: p[1:2] for name, p in pop.params.items()}
    history = [{"epoch": e, "loss": r["loss"][1]} for e, r in enumerate(pop.history)]
    rebuilt = LFADS.from_params(
        model.config_, pop.sizes, member, data.n_forward,
        best_epoch=pop.best_epoch[1], best_metric=pop.best_metric[1], history=history,
        status="search",
    )  # fmt: skip
    assert rebuilt.best_epoch_ == model.best_epoch_
    assert rebuilt.n_neurons_out_ == 10 and rebuilt.n_forward_ == 2
    np.testing.assert_allclose(
        rebuilt.predict_rates(data, seed=2), model.predict_rates(data, seed=2), rtol=1e-5
    )
    # its tensors are copies: changing the population's does not change the model
    before = rebuilt.predict_rates(data, seed=2)
    pop.params["readout.b"].add_(1.0)
    assert np.array_equal(rebuilt.predict_rates(data, seed=2), before)

    rebuilt.save(tmp_path / "m")
    loaded = LFADS.load(tmp_path / "m")
    assert np.array_equal(loaded.predict_rates(data, seed=2), before)
    assert loaded.config_ == model.config_ and loaded.history_ == history
    assert (loaded.best_epoch_, loaded.best_metric_, loaded.status_) == (
        pop.best_epoch[1], pytest.approx(pop.best_metric[1]), "search",
    )  # fmt: skip
    assert Sizes(loaded.n_neurons_in_, loaded.n_neurons_out_, loaded.n_ext_) == pop.sizes


def test_from_params_validates_its_arguments():
    from lfadskit.lfads import fit_population

    data = tiny_data()
    cfg = LFADSConfig(**TINY, max_epochs=1)
    pop = fit_population(data, cfg, seeds=[0, 1])
    one = {name: p[:1] for name, p in pop.params.items()}
    LFADS.from_params(cfg, pop.sizes, one, 2)  # the valid call
    with pytest.raises(ValueError, match=r"params\['.*'\]: shape \(2, .*population axis"):
        LFADS.from_params(cfg, pop.sizes, pop.params, 2)
    missing = {name: p for name, p in one.items() if name != "gen.w_hh"}
    with pytest.raises(ValueError, match=r"missing \['gen.w_hh'\], unexpected \[\]"):
        LFADS.from_params(cfg, pop.sizes, missing, 2)
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['extra'\]"):
        LFADS.from_params(cfg, pop.sizes, {**one, "extra": one["gen.w_hh"]}, 2)
    with pytest.raises(ValueError, match=r"params\['gen.*'\]: shape"):  # other sizes
        LFADS.from_params(cfg.replace(gen_dim=9), pop.sizes, one, 2)
    with pytest.raises(ValueError, match="config: expected an LFADSConfig"):
        LFADS.from_params(cfg.to_dict(), pop.sizes, one, 2)
    with pytest.raises(ValueError, match="sizes: expected a Sizes"):
        LFADS.from_params(cfg, pop.sizes.to_dict(), one, 2)
    with pytest.raises(ValueError, match="n_forward"):
        LFADS.from_params(cfg, pop.sizes, one, -1)
