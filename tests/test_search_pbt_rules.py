"""Pure PBT rules: binary tournament, log-symmetric explore, stopping rule, generation plan."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from lfadskit.lfads.config import SEARCHABLE
from lfadskit.search.pbt import explore, plan_generation, should_stop, tournament
from lfadskit.search.space import SearchSpace, sample

NAN = math.nan


def population_hparams(k: int, seed: int = 0, space: SearchSpace | None = None) -> dict:
    values = sample(space or SearchSpace(), k, np.random.default_rng(seed))
    return {name: values[name].tolist() for name in SEARCHABLE}


# ----------------------------------------------------------------- tournament
@pytest.mark.parametrize("k", [2, 3, 6, 7])
def test_tournament_pairs_disjoint_members_and_losers_copy_strictly_better_winners(k):
    for seed in range(200):
        rng = np.random.default_rng(seed)
        metrics = rng.normal(size=k)
        pairs = tournament(metrics, rng)
        members = [m for pair in pairs for m in pair]
        assert len(members) == len(set(members))  # each member in at most one pair
        assert len(pairs) == k // 2  # distinct finite metrics: every pair has a loser
        for winner, loser in pairs:
            assert metrics[winner] < metrics[loser]


def test_tournament_pairs_at_random():
    # every pair of members meets, about 1/(K-1) of the time
    k, n = 4, 3000
    counts = dict.fromkeys(itertools.combinations(range(k), 2), 0)
    metrics = np.arange(k, dtype=float)
    rng = np.random.default_rng(0)
    for _ in range(n):
        for winner, loser in tournament(metrics, rng):
            counts[tuple(sorted((winner, loser)))] += 1
    expected = n * (k // 2) / len(counts)
    assert all(abs(c - expected) < 0.15 * expected for c in counts.values()), counts


def test_nan_and_inf_members_always_lose_and_ties_copy_nothing():
    metrics = [0.5, NAN, 0.2, math.inf, NAN, 0.9]
    bad = {1, 3, 4}
    seen_bad_pairs = 0
    for seed in range(300):
        for winner, loser in tournament(metrics, np.random.default_rng(seed)):
            assert winner not in bad
            if loser in bad:
                seen_bad_pairs += 1
            else:
                assert metrics[winner] < metrics[loser]
    assert seen_bad_pairs > 0
    assert tournament([1.0, 1.0], np.random.default_rng(0)) == []
    assert tournament([NAN, NAN], np.random.default_rng(0)) == []
    assert tournament([NAN, 3.0], np.random.default_rng(0)) == [(1, 0)]


def test_tournament_is_deterministic_given_the_seed():
    metrics = np.random.default_rng(5).normal(size=9)
    a = tournament(metrics, np.random.default_rng(42))
    b = tournament(metrics, np.random.default_rng(42))
    assert a == b
    assert any(tournament(metrics, np.random.default_rng(s)) != a for s in range(5))


# -------------------------------------------------------------------- explore
def test_explore_stays_inside_the_bounds_over_many_draws():
    space = SearchSpace()
    rng = np.random.default_rng(0)
    starts = [
        {n: s.low for n, s in space.specs().items()},
        {n: s.high for n, s in space.specs().items()},
        *[{n: v[0] for n, v in population_hparams(1, seed=s).items()} for s in range(20)],
    ]
    for start in starts:
        for _ in range(100):
            new = explore(start, space, rng)
            for name, spec in space.specs().items():
                assert spec.low <= new[name] <= spec.high, (name, new[name])
                low_f, high_f = 1 / (1 + spec.weight), 1 + spec.weight
                if start[name] > 0:
                    ratio = new[name] / start[name]
                    assert low_f * (1 - 1e-12) <= ratio <= high_f * (1 + 1e-12)


def test_explore_factor_is_symmetric_in_log_space_with_median_one():
    # wide bounds: no redraw, so the factor's distribution is the raw rule
    space = SearchSpace().replace(
        lr=(1e-9, 0.9), l2_gen_scale=(1e-9, 1e9, "log"), dropout=(1e-9, 0.999)
    )
    rng = np.random.default_rng(1)
    start = {"lr": 1e-3, "l2_gen_scale": 1.0, "dropout": 0.1}
    draws = [explore(start, space, rng) for _ in range(6000)]
    for name, weight in [("lr", 0.3), ("l2_gen_scale", 0.8), ("dropout", 0.3)]:
        log_factor = np.log([d[name] / start[name] for d in draws])
        half = math.log(1 + weight)
        assert abs(np.median(log_factor)) < 0.03 * half  # median factor 1
        assert abs(np.mean(log_factor)) < 0.03 * half
        assert abs(stats.skew(log_factor)) < 0.1  # symmetric
        # log factor uniform on [-log(1+w), log(1+w)]
        ks = stats.kstest(log_factor, stats.uniform(loc=-half, scale=2 * half).cdf)
        assert ks.pvalue > 1e-3, name
        # P(factor > 1) = P(factor < 1) = 1/2
        assert abs(np.mean(log_factor > 0) - 0.5) < 0.03


def test_explore_never_changes_fixed_parameters_and_is_deterministic():
    space = SearchSpace().replace(dropout=0.2, kl_co_scale=1e-5)
    start = {n: v[0] for n, v in population_hparams(1, space=space).items()}
    a = [explore(start, space, np.random.default_rng(9)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    for _ in range(200):
        new = explore(start, space, rng)
        assert new["dropout"] == 0.2 and new["kl_co_scale"] == 1e-5
        assert new["lr"] != start["lr"]
    with pytest.raises(ValueError, match="unknown name"):
        explore({"learning_rate": 1.0}, space, rng)


def test_explore_clips_a_value_that_cannot_get_inside():
    space = SearchSpace()
    new = explore({"lr": 1.0}, space, np.random.default_rng(0))  # 200x above the bound
    assert new["lr"] == space.lr.high


# ---------------------------------------------------------------- should_stop
def test_should_stop_on_constructed_histories():
    assert not should_stop([])
    assert not should_stop([1.0, 1.0, 1.0, 1.0])  # fewer than patience + 1 generations
    assert should_stop([1.0, 1.0, 1.0, 1.0, 1.0])  # flat over 4 generations
    assert should_stop([1.0, 1.0, 1.0, 1.0, 0.9996])  # 0.04 % < 0.05 %
    assert not should_stop([1.0, 1.0, 1.0, 1.0, 0.999])  # 0.1 %
    # steady 1 % improvement per generation never stops
    steady = [0.99**g for g in range(30)]
    assert not any(should_stop(steady[: g + 1]) for g in range(30))
    # big early gains, then a plateau: stops exactly 4 generations into the plateau
    history = [2.0, 1.5, 1.2, 1.1, 1.1, 1.1, 1.1, 1.1]
    stops = [should_stop(history[: g + 1]) for g in range(len(history))]
    assert stops == [False] * 7 + [True]
    # the improvement is relative: the same absolute gain matters less on a larger metric
    assert not should_stop([0.1, 0.1, 0.1, 0.1, 0.09995 - 1e-6])
    assert should_stop([100.0, 100.0, 100.0, 100.0, 99.96])
    # other patience / threshold; NaN generations are ignored
    assert should_stop([1.0, 0.99, 0.98], patience=2, min_improvement=0.05)
    assert not should_stop([1.0, 0.99, 0.98], patience=2, min_improvement=0.01)
    assert not should_stop([NAN, NAN, NAN, NAN, NAN])
    assert should_stop([NAN, 1.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="patience"):
        should_stop([1.0], patience=0)


# ------------------------------------------------------------ plan_generation
def check_plan(plan, metrics, hparams, space):
    k = len(metrics)
    sources = {s for s, _ in plan.copies}
    destinations = [d for _, d in plan.copies]
    assert len(destinations) == len(set(destinations))
    assert not sources & set(destinations)
    for src, dst in plan.copies:
        better = math.isfinite(metrics[src]) and (
            not math.isfinite(metrics[dst]) or metrics[src] < metrics[dst]
        )
        assert better
        assert plan.parents[dst] == src
    for m in range(k):
        if m not in destinations:
            assert plan.parents[m] == m
            # winners and members that sat out keep their hyperparameters exactly
            assert all(plan.hparams[n][m] == hparams[n][m] for n in hparams)
    for name, spec in space.specs().items():
        for m in range(k):
            assert spec.low <= plan.hparams[name][m] <= spec.high
        for src, dst in plan.copies:
            if spec.fixed:
                assert plan.hparams[name][dst] == spec.low
            else:
                ratio = plan.hparams[name][dst] / hparams[name][src]
                assert 1 / (1 + spec.weight) - 1e-12 <= ratio <= 1 + spec.weight + 1e-12


def test_plan_generation_invariants_over_many_seeds():
    space = SearchSpace().replace(dropout=0.3)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(2, 9))
        metrics = rng.normal(size=k).tolist()
        for m in rng.choice(k, size=int(rng.integers(0, k)), replace=False):
            metrics[m] = NAN
        hparams = population_hparams(k, seed=seed, space=space)
        plan = plan_generation(metrics, hparams, space, rng)
        check_plan(plan, metrics, hparams, space)
        finite = [m for m in range(k) if math.isfinite(metrics[m])]
        destinations = {d for _, d in plan.copies}
        if finite:  # no failed member survives while a healthy one exists
            assert all(m in destinations for m in range(k) if not math.isfinite(metrics[m]))
        assert all(hparams[n] == population_hparams(k, seed=seed, space=space)[n] for n in hparams)


def test_plan_generation_is_deterministic_and_all_failed_copies_nothing():
    space = SearchSpace()
    metrics = [0.3, 0.1, 0.7, 0.2, 0.5, 0.4]
    hparams = population_hparams(6)
    a = plan_generation(metrics, hparams, space, np.random.default_rng(7))
    b = plan_generation(metrics, hparams, space, np.random.default_rng(7))
    assert a == b
    none = plan_generation([NAN, NAN, NAN], population_hparams(3), space, np.random.default_rng(0))
    assert none.copies == [] and none.parents == [0, 1, 2]
    with pytest.raises(ValueError, match="expected 6 values"):
        plan_generation(metrics, population_hparams(5), space, np.random.default_rng(0))
