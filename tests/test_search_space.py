"""Search space: AutoLFADS defaults, changes by name (Python, JSON, CLI), errors, sampling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from lfadskit.lfads.config import SEARCHABLE
from lfadskit.search.space import (
    ParamSpec,
    SearchSpace,
    load_space,
    parse_param,
    parse_space_args,
    place_points,
    sample,
)

AUTOLFADS = {
    # name: (low, high, sampling, init, weight), from the AutoLFADS paper / SPEC section 3
    "lr": (1e-5, 5e-3, "log", 4e-3, 0.3),
    "dropout": (0.0, 0.6, "uniform", None, 0.3),
    "cd_rate": (0.01, 0.7, "uniform", 0.5, 0.3),
    "l2_gen_scale": (1e-4, 1.0, "log", None, 0.8),
    "l2_con_scale": (1e-4, 1.0, "log", None, 0.8),
    "kl_co_scale": (1e-6, 1e-4, "log", None, 0.8),
    "kl_ic_scale": (1e-6, 1e-3, "log", None, 0.8),
}


def test_defaults_are_autolfads_and_cover_every_searchable_name():
    specs = SearchSpace().specs()
    assert tuple(specs) == SEARCHABLE
    for name, (low, high, sampling, init, weight) in AUTOLFADS.items():
        spec = specs[name]
        assert (spec.low, spec.high, spec.sampling, spec.init, spec.weight) == (
            low,
            high,
            sampling,
            init,
            weight,
        ), name
        assert not spec.fixed


def test_fix_narrow_widen_from_python():
    space = SearchSpace().replace(
        dropout=0.2, lr=(1e-4, 1e-2), cd_rate={"high": 0.4}, kl_ic_scale=(1e-7, 1e-2, "log")
    )
    assert space.dropout.fixed and space.dropout.low == 0.2
    assert (space.lr.low, space.lr.high, space.lr.sampling) == (1e-4, 1e-2, "log")
    assert space.lr.init == 4e-3  # still inside the new range: kept
    assert (space.cd_rate.low, space.cd_rate.high) == (0.01, 0.4)
    assert space.cd_rate.init is None  # 0.5 fell outside: dropped
    assert (space.kl_ic_scale.low, space.kl_ic_scale.high) == (1e-7, 1e-2)
    # untouched names keep their defaults
    assert space.l2_gen_scale == SearchSpace().l2_gen_scale
    # a space is frozen
    with pytest.raises(AttributeError):
        space.lr = space.dropout  # type: ignore[misc]


def test_cli_strings_parse_to_the_same_space_as_python():
    assert parse_param("lr=1e-4:1e-2:log") == ("lr", {"low": 1e-4, "high": 1e-2, "sampling": "log"})
    assert parse_param(" dropout = 0.2 ") == ("dropout", {"low": 0.2, "high": 0.2})
    from_cli = parse_space_args(
        ["lr=1e-4:1e-2:log", "dropout=0.2", "cd_rate=0.1:0.6:uniform:init=0.3:weight=0.5"]
    )
    from_python = SearchSpace().replace(
        lr=(1e-4, 1e-2, "log"),
        dropout=0.2,
        cd_rate={"low": 0.1, "high": 0.6, "sampling": "uniform", "init": 0.3, "weight": 0.5},
    )
    assert from_cli == from_python
    # without a scale, a new range keeps the hyperparameter's scale
    assert parse_space_args(["l2_gen_scale=1e-3:1e-1"]).l2_gen_scale.sampling == "log"


def test_json_file(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(
        json.dumps(
            {
                "lr": [1e-4, 1e-2, "log"],
                "dropout": 0.1,
                "cd_rate": "0.2:0.5",
                "kl_co_scale": {"low": 1e-7, "weight": 0.5},
            }
        )
    )
    space = load_space(path)
    assert (space.lr.low, space.lr.high) == (1e-4, 1e-2)
    assert space.dropout.fixed and space.dropout.low == 0.1
    assert (space.cd_rate.low, space.cd_rate.high, space.cd_rate.init) == (0.2, 0.5, 0.5)
    assert (space.kl_co_scale.low, space.kl_co_scale.high, space.kl_co_scale.weight) == (
        1e-7,
        1e-4,
        0.5,
    )
    # round trip through to_dict
    assert SearchSpace.from_dict(space.to_dict()) == space
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        load_space(path)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"learning_rate": 1e-3}, "unknown hyperparameter"),
        ({"lr": (1e-2, 1e-4)}, "inverted range"),
        ({"lr": (1e-3, 1e-3)}, "empty range"),
        ({"kl_ic_scale": (0.0, 1e-3, "log")}, "positive bounds"),
        ({"l2_gen_scale": (-1.0, 1.0, "uniform")}, ">= 0"),
        ({"dropout": (0.0, 1.0)}, "< 1"),
        ({"lr": 0.0}, "> 0"),
        ({"cd_rate": (0.1, 0.5, "cubic")}, "sampling"),
        ({"cd_rate": {"lo": 0.1}}, "unknown key"),
        ({"lr": "1e-4:1e-2:logg"}, "unknown option"),
    ],
)
def test_invalid_changes_raise_value_errors_naming_the_problem(changes, match):
    with pytest.raises(ValueError, match=match) as err:
        SearchSpace().replace(**changes)
    if "unknown hyperparameter" in match:
        assert all(name in str(err.value) for name in SEARCHABLE)


@pytest.mark.parametrize(
    "text, match",
    [
        ("learning_rate=1e-3", "unknown hyperparameter"),
        ("lr=1e-3:1e-3", "empty range"),
        ("lr=1e-2:1e-4:log", "inverted range"),
        ("lr", "cannot read"),
        ("lr=", "cannot read"),
        ("lr=abc", "expected a number"),
        ("kl_co_scale=0:1e-3:log", "positive bounds"),
    ],
)
def test_invalid_cli_strings(text, match):
    with pytest.raises(ValueError, match=match) as err:
        parse_space_args([text])
    if "unknown" in match:
        assert "valid names" in str(err.value) and "kl_ic_scale" in str(err.value)


def test_param_spec_checks_its_init():
    with pytest.raises(ValueError, match="outside"):
        ParamSpec("lr", 1e-5, 1e-3, "log", init=4e-3)


def test_sample_respects_bounds_scale_and_fixed_values():
    space = SearchSpace().replace(dropout=0.25)
    n = 4000
    values = sample(space, n, np.random.default_rng(1))
    assert set(values) == set(SEARCHABLE)
    for name, spec in space.specs().items():
        v = values[name]
        assert v.shape == (n,) and v.dtype == np.float64
        assert (v >= spec.low).all() and (v <= spec.high).all(), name
    assert (values["dropout"] == 0.25).all()
    # log sampling: log10(lr) is uniform on [-5, log10 5e-3]; uniform: cd_rate uniform
    lo, hi = -5.0, math.log10(5e-3)
    ks = stats.kstest(np.log10(values["lr"]), stats.uniform(loc=lo, scale=hi - lo).cdf)
    assert ks.pvalue > 1e-3
    ks = stats.kstest(values["cd_rate"], stats.uniform(loc=0.01, scale=0.69).cdf)
    assert ks.pvalue > 1e-3
    # and a log-sampled value is not uniform on the linear scale (most mass at small lr)
    assert np.median(values["lr"]) < (1e-5 + 5e-3) / 4


def test_sample_is_deterministic_and_uses_init_only_when_asked():
    space = SearchSpace()
    a = sample(space, 6, np.random.default_rng(3))
    b = sample(space, 6, np.random.default_rng(3))
    assert all(np.array_equal(a[n], b[n]) for n in SEARCHABLE)
    assert len(set(a["lr"])) == 6  # random search: drawn, init ignored
    c = sample(space, 6, np.random.default_rng(3), use_init=True)
    assert (c["lr"] == 4e-3).all() and (c["cd_rate"] == 0.5).all()
    assert len(set(c["dropout"])) == 6  # no init: still drawn
    with pytest.raises(ValueError, match="positive integer"):
        sample(space, 0, np.random.default_rng(0))


def test_place_points_sets_only_the_given_members_and_names():
    space = SearchSpace().replace(dropout=0.2)
    values = sample(space, 4, np.random.default_rng(0))
    points = [{"l2_gen_scale": 0.3, "lr": 1e-3}, {"kl_co_scale": 1e-5, "dropout": 0.2}]
    placed = place_points(space, values, points)
    assert placed["l2_gen_scale"][0] == 0.3 and placed["lr"][0] == 1e-3
    assert placed["kl_co_scale"][1] == 1e-5
    for name in values:
        changed = {(i, n) for i, p in enumerate(points) for n in p}
        for i in range(4):
            if (i, name) not in changed:
                assert placed[name][i] == values[name][i]
    assert values["l2_gen_scale"][0] != 0.3  # the input is not changed


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ([{"l2_gen": 0.3}], r"unknown hyperparameter.*l2_gen_scale"),
        ([{"lr": 1.0}], r"points\[0\]\['lr'\].*outside.*widen"),
        ([{}, {"dropout": 0.3}], r"points\[1\]\['dropout'\].*fixed at 0.2"),
        ([{"lr": True}], "expected a number"),
        ([{"lr": "4e-3"}], "expected a number"),
        ([{}] * 5, "5 points for a population of 4"),
        ({"lr": 1e-3}, "expected a list of dicts"),
        (["lr"], r"points\[0\]: expected a dict"),
    ],
)
def test_place_points_rejects_bad_points(points, match):
    space = SearchSpace().replace(dropout=0.2)
    with pytest.raises(ValueError, match=match):
        place_points(space, sample(space, 4, np.random.default_rng(0)), points)
