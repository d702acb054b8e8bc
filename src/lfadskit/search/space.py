"""The hyperparameter search space: bounds, sampling scale, initial value, exploration weight.

One ``ParamSpec`` per searchable hyperparameter (the names of
``lfadskit.lfads.config.SEARCHABLE``), gathered in the frozen ``SearchSpace``. The defaults
are AutoLFADS's. A spec with ``low == high`` is *fixed*: every member gets that value and PBT
never changes it.

Users change the space by name, from Python (``space.replace(lr=(1e-4, 1e-2))``), from a JSON
file (``load_space``) or from command-line strings (``parse_space_args(["lr=1e-4:1e-2:log",
"dropout=0.2"])``).

Examples
--------
>>> import numpy as np
>>> space = SearchSpace().replace(dropout=0.2, lr=(1e-4, 1e-2))
>>> space.dropout.fixed, space.lr.sampling
(True, 'log')
>>> values = sample(space, 5, np.random.default_rng(0))
>>> values["dropout"].tolist()
[0.2, 0.2, 0.2, 0.2, 0.2]
>>> bool(((values["lr"] >= 1e-4) & (values["lr"] <= 1e-2)).all())
True
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfadskit.lfads.config import SEARCHABLE

__all__ = [
    "ParamSpec",
    "SearchSpace",
    "SAMPLINGS",
    "sample",
    "place_points",
    "points_setting",
    "parse_param",
    "parse_space_args",
    "load_space",
]

SAMPLINGS = ("uniform", "log")
# Rates the trainer accepts only in [0, 1); lr must be > 0; everything else >= 0.
_BELOW_ONE = ("dropout", "cd_rate")


@dataclass(frozen=True)
class ParamSpec:
    """How one hyperparameter is searched.

    Parameters
    ----------
    name : str
        One of ``SEARCHABLE``.
    low, high : float
        Bounds (inclusive). ``low == high`` fixes the value.
    sampling : {'uniform', 'log'}
        Scale on which random search (and PBT's initial population) samples.
    init : float, optional
        Value every PBT member starts from (instead of a sample); ignored by random search.
    weight : float
        PBT exploration weight w: a perturbation multiplies the value by a factor in
        [1/(1+w), 1+w] (see ``lfadskit.search.pbt.explore``).

    Examples
    --------
    >>> ParamSpec("lr", 1e-5, 5e-3, "log", init=4e-3).fixed
    False
    >>> ParamSpec("lr", 1e-3, 1e-3).fixed
    True
    """

    name: str
    low: float
    high: float
    sampling: str = "uniform"
    init: float | None = None
    weight: float = 0.3

    def __post_init__(self) -> None:
        if self.name not in SEARCHABLE:
            raise ValueError(
                f"search space: unknown hyperparameter {self.name!r}; valid names: {SEARCHABLE}"
            )
        where = f"search space[{self.name!r}]"
        for attr in ("low", "high", "weight"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: {attr} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{where}: {attr} must be finite, got {value!r}")
            object.__setattr__(self, attr, float(value))
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"{where}: sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.low > self.high:
            raise ValueError(
                f"{where}: inverted range low={self.low:g} > high={self.high:g}; "
                "give low:high with low <= high"
            )
        if self.sampling == "log" and self.low <= 0:
            raise ValueError(
                f"{where}: log sampling needs positive bounds, got low={self.low:g}; "
                "use uniform sampling or a positive lower bound"
            )
        if self.low < 0:
            raise ValueError(f"{where}: must be >= 0, got low={self.low:g}")
        if self.name == "lr" and self.low <= 0:
            raise ValueError(f"{where}: the learning rate must be > 0, got low={self.low:g}")
        if self.name in _BELOW_ONE and self.high >= 1:
            raise ValueError(f"{where}: must be < 1, got high={self.high:g}")
        if self.weight < 0:
            raise ValueError(f"{where}: weight must be >= 0, got {self.weight:g}")
        if self.init is not None:
            if isinstance(self.init, bool) or not isinstance(self.init, (int, float)):
                raise ValueError(f"{where}: init must be a number or None, got {self.init!r}")
            object.__setattr__(self, "init", float(self.init))
            if not self.low <= self.init <= self.high:
                raise ValueError(
                    f"{where}: init={self.init:g} outside [{self.low:g}, {self.high:g}]"
                )

    @property
    def fixed(self) -> bool:
        """True when the value cannot vary (``low == high``)."""
        return self.low == self.high

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies within the bounds."""
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without the name (JSON-serializable)."""
        out = dataclasses.asdict(self)
        del out["name"]
        return out


def _spec(name: str, low: float, high: float, sampling: str, weight: float, init=None):
    return field(default_factory=lambda: ParamSpec(name, low, high, sampling, init, weight))


@dataclass(frozen=True)
class SearchSpace:
    """One ``ParamSpec`` per searchable hyperparameter; defaults are AutoLFADS's.

    Examples
    --------
    >>> space = SearchSpace()
    >>> space.lr.low, space.lr.high, space.lr.init
    (1e-05, 0.005, 0.004)
    >>> space.replace(cd_rate=(0.1, 0.5)).cd_rate.init  # 0.5 still inside: kept
    0.5
    """

    lr: ParamSpec = _spec("lr", 1e-5, 5e-3, "log", 0.3, init=4e-3)
    dropout: ParamSpec = _spec("dropout", 0.0, 0.6, "uniform", 0.3)
    cd_rate: ParamSpec = _spec("cd_rate", 0.01, 0.7, "uniform", 0.3, init=0.5)
    kl_ic_scale: ParamSpec = _spec("kl_ic_scale", 1e-6, 1e-3, "log", 0.8)
    kl_co_scale: ParamSpec = _spec("kl_co_scale", 1e-6, 1e-4, "log", 0.8)
    l2_gen_scale: ParamSpec = _spec("l2_gen_scale", 1e-4, 1.0, "log", 0.8)
    l2_con_scale: ParamSpec = _spec("l2_con_scale", 1e-4, 1.0, "log", 0.8)

    def __post_init__(self) -> None:
        for name in SEARCHABLE:
            spec = getattr(self, name)
            if not isinstance(spec, ParamSpec) or spec.name != name:
                raise ValueError(f"search space[{name!r}]: expected a ParamSpec named {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return SEARCHABLE

    def specs(self) -> dict[str, ParamSpec]:
        """Name -> spec, in ``SEARCHABLE`` order."""
        return {name: getattr(self, name) for name in SEARCHABLE}

    def replace(self, **changes: Any) -> SearchSpace:
        """A copy with some hyperparameters fixed, narrowed or widened.

        Each value may be a ``ParamSpec``; a number (fix the value); a tuple
        ``(low, high[, sampling])``; a dict with any of low, high, sampling, init, weight
        (missing keys keep the current values); or a string as on the command line
        (``"1e-4:1e-2:log"``, ``"0.2"``). A new range keeps the current sampling, weight and
        init unless given (the init is dropped when it falls outside the new range).
        """
        unknown = sorted(set(changes) - set(SEARCHABLE))
        if unknown:
            raise ValueError(
                f"search space: unknown hyperparameter(s) {unknown}; valid names: {SEARCHABLE}"
            )
        new = {name: _merge(getattr(self, name), value) for name, value in changes.items()}
        return dataclasses.replace(self, **new)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-serializable dict name -> {low, high, sampling, init, weight}."""
        return {name: spec.to_dict() for name, spec in self.specs().items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: SearchSpace | None = None) -> SearchSpace:
        """Apply ``values`` (as accepted by ``replace``) on ``base`` (default: AutoLFADS's)."""
        return (base if base is not None else cls()).replace(**dict(values))


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"search space[{name!r}]: expected a number, got {text!r} "
            "(write name=value to fix, name=low:high[:log|uniform] for a range)"
        ) from None
    return value


def _from_string(name: str, text: str) -> dict[str, Any]:
    parts = [p.strip() for p in text.strip().split(":")]
    if len(parts) == 1:
        value = _number(name, parts[0])
        return {"low": value, "high": value}
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"search space[{name!r}]: cannot read {text!r}; write low:high[:log]")
    out: dict[str, Any] = {"low": _number(name, parts[0]), "high": _number(name, parts[1])}
    for part in parts[2:]:
        if part in SAMPLINGS:
            out["sampling"] = part
        elif part.startswith(("init=", "weight=")):
            key, _, value = part.partition("=")
            out[key] = _number(name, value)
        else:
            raise ValueError(
                f"search space[{name!r}]: unknown option {part!r} in {text!r}; "
                f"use one of {SAMPLINGS}, init=VALUE or weight=VALUE"
            )
    return out


def _merge(current: ParamSpec, value: Any) -> ParamSpec:
    name = current.name
    if isinstance(value, ParamSpec):
        if value.name != name:
            raise ValueError(f"search space[{name!r}]: got the spec of {value.name!r}")
        return value
    if isinstance(value, str):
        changes = _from_string(name, value)
        if ":" in value and changes["low"] == changes["high"]:
            raise ValueError(
                f"search space[{name!r}]: empty range {value!r}; "
                f"to fix the value write {name}={changes['low']:g}"
            )
    elif isinstance(value, Mapping):
        changes = dict(value)
        bad = sorted(set(changes) - {"low", "high", "sampling", "init", "weight"})
        if bad:
            raise ValueError(
                f"search space[{name!r}]: unknown key(s) {bad}; "
                "use low, high, sampling, init, weight"
            )
    elif isinstance(value, (tuple, list)):
        if len(value) not in (2, 3):
            raise ValueError(
                f"search space[{name!r}]: expected (low, high[, sampling]), got {value!r}"
            )
        changes = {"low": value[0], "high": value[1]}
        if value[0] == value[1]:
            raise ValueError(
                f"search space[{name!r}]: empty range {tuple(value)!r}; "
                f"to fix the value pass the number alone ({name}={value[0]!r})"
            )
        if len(value) == 3:
            changes["sampling"] = value[2]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        changes = {"low": value, "high": value}
    else:
        raise ValueError(
            f"search space[{name!r}]: expected a number, (low, high[, sampling]), a dict, "
            f"a string or a ParamSpec, got {value!r}"
        )
    is_range = ("low" in changes or "high" in changes) and "init" not in changes
    merged = {**current.to_dict(), **changes}
    if merged["low"] == merged["high"]:
        merged["init"] = None  # a fixed value needs no initial value
        if merged["sampling"] == "log" and merged["low"] <= 0:
            merged["sampling"] = "uniform"  # fixing at 0 is fine; the scale does not matter
    elif is_range and merged["init"] is not None:
        if not merged["low"] <= merged["init"] <= merged["high"]:
            merged["init"] = None
    return ParamSpec(name=name, **merged)


def parse_param(text: str) -> tuple[str, dict[str, Any]]:
    """Read one command-line setting ``name=value`` or ``name=low:high[:log|uniform]``.

    Optional extra fields ``:init=VALUE`` and ``:weight=VALUE`` may follow the range.

    Returns
    -------
    name : str
    changes : dict with low, high and possibly sampling, init, weight

    Examples
    --------
    >>> parse_param("lr=1e-4:1e-2:log")
    ('lr', {'low': 0.0001, 'high': 0.01, 'sampling': 'log'})
    >>> parse_param("dropout=0.2")
    ('dropout', {'low': 0.2, 'high': 0.2})
    """
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not value.strip():
        raise ValueError(
            f"search space: cannot read {text!r}; write name=value or name=low:high[:log] "
            f"with a name in {SEARCHABLE}"
        )
    if name not in SEARCHABLE:
        raise ValueError(
            f"search space: unknown hyperparameter {name!r} in {text!r}; valid names: {SEARCHABLE}"
        )
    changes = _from_string(name, value)
    if ":" in value and changes["low"] == changes["high"]:
        raise ValueError(
            f"search space[{name!r}]: empty range in {text!r}; to fix the value write "
            f"{name}={changes['low']:g}"
        )
    return name, changes


def parse_space_args(items: Sequence[str], base: SearchSpace | None = None) -> SearchSpace:
    """The space after applying command-line settings (for ``lfadskit search``).

    Examples
    --------
    >>> space = parse_space_args(["lr=1e-4:1e-2:log", "dropout=0.2"])
    >>> space.lr.low, space.dropout.fixed
    (0.0001, True)
    """
    if isinstance(items, str):
        items = [items]
    space = base if base is not None else SearchSpace()
    for item in items:
        name, changes = parse_param(item)
        space = space.replace(**{name: changes})
    return space


def load_space(path: str | os.PathLike, base: SearchSpace | None = None) -> SearchSpace:
    """Read a JSON object name -> setting and apply it on ``base`` (default AutoLFADS's).

    A setting is a number (fixed), ``[low, high]`` / ``[low, high, "log"]``, a string as on
    the command line, or ``{"low": ..., "high": ..., "sampling": ..., "init": ...,
    "weight": ...}`` (missing keys keep the base's values).
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"search space file {path}: not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise ValueError(
            f"search space file {path}: expected a JSON object name -> setting, "
            f"got {type(values).__name__}"
        )
    return SearchSpace.from_dict(values, base)


def sample(
    space: SearchSpace, n: int, rng: np.random.Generator, use_init: bool = False
) -> dict[str, np.ndarray]:
    """Draw ``n`` configurations: dict name -> float64 array of shape (n,).

    Uniform specs are drawn uniformly in [low, high]; log specs uniformly in
    [log low, log high]. Fixed specs give their value. With ``use_init`` (PBT's initial
    population) a spec with an ``init`` gives that value to every member.
    Names are drawn in ``SEARCHABLE`` order, so the result depends only on the rng state.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space: expected a SearchSpace, got {type(space).__name__}")
    out = {}
    for name, spec in space.specs().items():
        if spec.fixed:
            values = np.full(n, spec.low)
        elif use_init and spec.init is not None:
            values = np.full(n, spec.init)
        elif spec.sampling == "log":
            values = np.exp(rng.uniform(math.log(spec.low), math.log(spec.high), size=n))
            values = np.clip(values, spec.low, spec.high)  # exp(log x) may round past x
        else:
            values = rng.uniform(spec.low, spec.high, size=n)
        out[name] = values
    return out


def place_points(
    space: SearchSpace, values: Mapping[str, np.ndarray], points: Sequence[Mapping[str, float]]
) -> dict[str, np.ndarray]:
    """Give the first members of a sampled population chosen hyperparameters.

    Member i < len(points) takes point i's values for the names it gives (for example a
    known-good configuration, so that a search starts from it); other names and members keep
    their sampled values. Returns new arrays; ``values`` is not changed.

    Raises ValueError for more points than members, unknown names (the message lists the valid
    ones), non-numbers, values outside a spec's bounds and values that differ from a fixed
    spec.

    Examples
    --------
    >>> space = SearchSpace()
    >>> values = sample(space, 3, np.random.default_rng(0))
    >>> placed = place_points(space, values, [{"l2_gen_scale": 0.3}])
    >>> placed["l2_gen_scale"][0], bool(placed["l2_gen_scale"][1] == values["l2_gen_scale"][1])
    (np.float64(0.3), True)
    """
    n = len(next(iter(values.values())))
    if isinstance(points, Mapping) or not isinstance(points, Sequence):
        raise ValueError(
            f"initial points: expected a list of dicts name -> value, got {type(points).__name__}"
        )
    if len(points) > n:
        raise ValueError(f"initial points: {len(points)} points for a population of {n}")
    out = {name: np.array(column, dtype=np.float64) for name, column in values.items()}
    specs = space.specs()
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise ValueError(
                f"initial points[{i}]: expected a dict name -> value, got {type(point).__name__}"
            )
        for name, value in point.items():
            where = f"initial points[{i}][{name!r}]"
            if name not in specs:
                raise ValueError(f"{where}: unknown hyperparameter; valid names: {list(specs)}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ValueError(f"{where}: expected a number, got {value!r}")
            spec = specs[name]
            if not spec.low <= value <= spec.high:
                kind = f"fixed at {spec.low:g}" if spec.fixed else f"[{spec.low:g}, {spec.high:g}]"
                raise ValueError(
                    f"{where}: {value:g} is outside the search space ({kind}); widen the space "
                    "or change the point"
                )
            out[name][i] = float(value)
    return out


def points_setting(points: Sequence[Mapping[str, float]]) -> list[dict[str, float]]:
    """Initial points as plain JSON-able dicts, for a search's saved settings."""
    return [{name: float(value) for name, value in point.items()} for point in points]
