"""Hyperparameter search for LFADS: search space, random search and population based training.

The PBT rules (``tournament``, ``explore``, ``should_stop``, ``plan_generation``) are pure
functions of the population's metrics and hyperparameters, shared by every backend.

Examples
--------
>>> from lfadskit.search import SearchSpace, parse_space_args
>>> parse_space_args(["lr=1e-4:1e-2:log", "dropout=0.2"]).dropout.fixed
True
"""

from lfadskit.search.pbt import (
    GenerationPlan,
    explore,
    plan_generation,
    should_stop,
    tournament,
)
from lfadskit.search.pbt_search import apply_plan, pbt
from lfadskit.search.random_search import random_search
from lfadskit.search.results import SearchResult, export_best
from lfadskit.search.space import (
    ParamSpec,
    SearchSpace,
    load_space,
    parse_param,
    parse_space_args,
    sample,
)

__all__ = [
    "ParamSpec",
    "SearchSpace",
    "sample",
    "parse_param",
    "parse_space_args",
    "load_space",
    "GenerationPlan",
    "tournament",
    "explore",
    "should_stop",
    "plan_generation",
    "apply_plan",
    "random_search",
    "pbt",
    "SearchResult",
    "export_best",
]
