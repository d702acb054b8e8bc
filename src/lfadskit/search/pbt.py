"""Population based training rules (exploit and explore), as pure functions.

These functions see only the population's metrics, hyperparameters, the search space and a
numpy random generator. They know nothing about how members are trained, so the local
backend and a Ray backend apply exactly the same rules.

- ``tournament``: binary tournament; members are paired at random and the worse of each pair
  (higher metric; a non-finite metric always loses) copies the better.
- ``explore``: each non-fixed hyperparameter is multiplied by ``exp(u)``,
  ``u ~ Uniform(-log(1 + w), log(1 + w))`` with w the spec's exploration weight, and redrawn
  until the result is inside the bounds. The factor lies in [1/(1+w), 1+w], is symmetric in
  log space and has median 1, so exploration has no drift on the log scale. (AutoLFADS's
  original rule draws the factor uniformly in [1-w, 1+w], which is biased downwards on the
  log scale and can reach 0.2 for w = 0.8; we prefer the log-symmetric rule.)
- ``should_stop``: the best metric improved by less than ``min_improvement`` (relative) over
  the last ``patience`` generations.
- ``plan_generation``: tournament + explore for a whole population, returning a plan.

Examples
--------
>>> import numpy as np
>>> from lfadskit.search.space import SearchSpace
>>> rng = np.random.default_rng(0)
>>> hparams = {"lr": [1e-3, 2e-3], "dropout": [0.1, 0.2], "cd_rate": [0.3, 0.4],
...            "kl_ic_scale": [1e-4, 1e-4], "kl_co_scale": [1e-5, 1e-5],
...            "l2_gen_scale": [1e-3, 1e-3], "l2_con_scale": [1e-3, 1e-3]}
>>> plan = plan_generation([0.5, float("nan")], hparams, SearchSpace(), rng)
>>> plan.copies, plan.parents
([(0, 1)], [0, 0])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lfadskit.search.space import SearchSpace

__all__ = [
    "GenerationPlan",
    "tournament",
    "explore",
    "explore_factor_bounds",
    "should_stop",
    "plan_generation",
]

MAX_TRIES = 1000  # redraws of one perturbation before falling back to clipping


def _as_metrics(metrics: Sequence[float]) -> np.ndarray:
    values = np.asarray(metrics, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"metrics: expected a non-empty 1-D sequence (K,), got {values.shape}")
    return values


def _beats(a: float, b: float) -> bool:
    """True when metric ``a`` is strictly better (lower) than ``b``; non-finite is worst."""
    if not math.isfinite(a):
        return False
    return not math.isfinite(b) or a < b


def tournament(metrics: Sequence[float], rng: np.random.Generator) -> list[tuple[int, int]]:
    """Binary tournament: pair members at random; the worse of each pair copies the better.

    Parameters
    ----------
    metrics : sequence of K floats
        Lower is better. NaN or inf (a failed member) always loses.
    rng : numpy.random.Generator

    Returns
    -------
    list of (winner, loser)
        One entry per pair with a strictly better member. Ties and pairs of two failed
        members copy nothing; with an odd K one random member sits out.

    Examples
    --------
    >>> tournament([1.0, 0.5], np.random.default_rng(0))
    [(1, 0)]
    """
    values = _as_metrics(metrics)
    order = rng.permutation(values.size)
    pairs = []
    for i in range(0, values.size - 1, 2):
        a, b = int(order[i]), int(order[i + 1])
        if _beats(values[a], values[b]):
            pairs.append((a, b))
        elif _beats(values[b], values[a]):
            pairs.append((b, a))
    return pairs


def explore_factor_bounds(weight: float) -> tuple[float, float]:
    """Smallest and largest factor of a perturbation with exploration weight ``weight``."""
    return 1.0 / (1.0 + weight), 1.0 + weight


def explore(
    hparams: Mapping[str, float], space: SearchSpace, rng: np.random.Generator
) -> dict[str, float]:
    """Perturb one member's hyperparameters (PBT's explore step).

    Parameters
    ----------
    hparams : dict name -> float
        One member's values; every name must be in the space.
    space : SearchSpace
    rng : numpy.random.Generator

    Returns
    -------
    dict name -> float
        Fixed hyperparameters keep the space's value. Others are multiplied by
        ``exp(u)``, ``u ~ Uniform(-log(1 + w), log(1 + w))``, redrawn until inside
        [low, high]. A value that cannot get inside (it started far outside the bounds) is
        clipped after ``MAX_TRIES`` draws. Names are perturbed in ``SEARCHABLE`` order.
        The rule is multiplicative: a value of exactly 0 stays 0.

    Examples
    --------
    >>> from lfadskit.search.space import SearchSpace
    >>> space = SearchSpace().replace(dropout=0.2)
    >>> member = {"lr": 1e-3, "dropout": 0.2, "cd_rate": 0.5}
    >>> new = explore(member, space, np.random.default_rng(0))
    >>> new["dropout"], space.lr.contains(new["lr"]), sorted(new) == sorted(member)
    (0.2, True, True)
    """
    specs = space.specs()
    unknown = sorted(set(hparams) - set(specs))
    if unknown:
        raise ValueError(f"hparams: unknown name(s) {unknown}; valid names: {tuple(specs)}")
    out = {}
    for name, spec in specs.items():
        if name not in hparams:
            continue
        value = float(hparams[name])
        if spec.fixed:
            out[name] = spec.low
            continue
        half_width = math.log1p(spec.weight)
        new = value
        for _ in range(MAX_TRIES):
            new = value * math.exp(rng.uniform(-half_width, half_width))
            if spec.contains(new):
                break
        else:
            new = min(max(new, spec.low), spec.high)
        out[name] = new
    return out


def should_stop(
    best_history: Sequence[float], patience: int = 4, min_improvement: float = 0.0005
) -> bool:
    """Whether PBT has converged: the best metric barely moved over ``patience`` generations.

    Parameters
    ----------
    best_history : sequence of float
        The population's best (smoothed) metric after each generation, lower is better;
        NaN entries (no finite member) are ignored.
    patience : int
        Generations looked back.
    min_improvement : float
        Relative improvement required: stop when
        ``(best_before - best_now) / |best_before| < min_improvement``, with ``best_before``
        the best up to ``patience`` generations ago and ``best_now`` the best so far.

    Returns
    -------
    bool
        False while fewer than ``patience + 1`` generations are done.

    Examples
    --------
    >>> should_stop([1.0, 0.9, 0.9, 0.9, 0.9])
    False
    >>> should_stop([1.0, 0.9, 0.9, 0.9, 0.9, 0.9])
    True
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience: expected an integer >= 1, got {patience!r}")
    if not min_improvement >= 0:
        raise ValueError(f"min_improvement: expected a number >= 0, got {min_improvement!r}")
    values = np.asarray(best_history, dtype=float)
    if values.size <= patience:
        return False
    before, now = values[: values.size - patience], values
    if not np.isfinite(before).any():
        return False  # nothing to compare with yet
    best_before = float(np.nanmin(np.where(np.isfinite(before), before, np.nan)))
    best_now = float(np.nanmin(np.where(np.isfinite(now), now, np.nan)))
    scale = abs(best_before) if best_before != 0 else 1.0
    return (best_before - best_now) / scale < min_improvement


@dataclass(frozen=True)
class GenerationPlan:
    """What happens at one generation boundary.

    Attributes
    ----------
    copies : list of (source, destination)
        Destination takes a copy of the source's weights, optimizer state and
        hyperparameters. No member is both a source and a destination.
    parents : list of K int
        ``parents[k]`` is the member k copied from (k itself when it was not replaced).
    hparams : dict name -> list of K float
        Every member's hyperparameters for the next generation (destinations: the explored
        copy of their source's; others: unchanged).
    """

    copies: list[tuple[int, int]]
    parents: list[int]
    hparams: dict[str, list[float]]


def plan_generation(
    metrics: Sequence[float],
    hparams: Mapping[str, Sequence[float]],
    space: SearchSpace,
    rng: np.random.Generator,
) -> GenerationPlan:
    """Binary tournament, then explore for every loser.

    Failed members (non-finite metric) that the tournament left alone (paired with another
    failed member, or sitting out) copy a random finite member that is not itself replaced,
    so a NaN member never survives a boundary while a healthy one exists.

    Parameters
    ----------
    metrics : K floats, lower is better
    hparams : dict name -> K floats (the population's current values)
    space : SearchSpace
    rng : numpy.random.Generator
        Drawn from in a fixed order (pairing, rescue of failed members, then exploration of
        each destination in increasing member order), so a seed fixes the plan.

    Returns
    -------
    GenerationPlan
    """
    values = _as_metrics(metrics)
    k = values.size
    current = {name: [float(v) for v in vals] for name, vals in hparams.items()}
    for name, vals in current.items():
        if len(vals) != k:
            raise ValueError(f"hparams[{name!r}]: expected {k} values (one per member)")
    pairs = tournament(values, rng)
    source = {loser: winner for winner, loser in pairs}
    failed = [m for m in range(k) if not math.isfinite(values[m]) and m not in source]
    donors = [m for m in range(k) if math.isfinite(values[m]) and m not in source]
    for member in failed:
        if donors:
            source[member] = int(donors[rng.integers(len(donors))])

    new = {name: list(vals) for name, vals in current.items()}
    for dst in sorted(source):
        src = source[dst]
        explored = explore({name: vals[src] for name, vals in current.items()}, space, rng)
        for name, value in explored.items():
            new[name][dst] = value
    copies = [(source[dst], dst) for dst in sorted(source)]
    parents = [source.get(m, m) for m in range(k)]
    return GenerationPlan(copies=copies, parents=parents, hparams=new)
