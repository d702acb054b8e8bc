"""What a search returns and leaves on disk: the result object, tables and the best model.

A search run directory ``RUN_DIR`` holds::

    config.json, outputs.h5, metrics.json   the best model's run (``lfadskit evaluate RUN_DIR``)
    history.csv                             per-epoch history of the best model's weights, up
                                            to its best epoch (PBT: along its lineage)
    best/lfads.json, best/weights.pt        the best model (``LFADS.load(RUN_DIR / "best")``)
    search/space.json                       the search space
    search/results.csv                      random search: one row per configuration
    search/generations.csv                  PBT: one row per generation and member (lineage)
    search/summary.json                     best member, its hyperparameters and metrics
    search/checkpoint.pt                    PBT: state after the last completed generation
    search/random_state.pt                  random search: settings, completed populations'
                                            rows and the best member so far
    search/chunk.pt                         random search: the population in training, after
                                            its last epoch (``lfadskit.search.random_state``)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads.config import SEARCHABLE, LFADSConfig
from lfadskit.lfads.network import Sizes
from lfadskit.runs import write_csv, write_json

__all__ = [
    "SearchResult",
    "SEARCH_DIR",
    "BEST_DIR",
    "PBT_CHECKPOINT",
    "write_table",
    "member_record",
    "member_seeds",
    "export_best",
]

SEARCH_DIR = "search"
BEST_DIR = "best"
PBT_CHECKPOINT = "checkpoint.pt"  # in SEARCH_DIR
HISTORY = "history.csv"


@dataclass
class SearchResult:
    """Outcome of a random search or a PBT run.

    Attributes
    ----------
    kind : {'random', 'pbt'}
    metric : {'valid_nll', 'sv_nll'}
        Selection metric (lower is better).
    history : list of dict
        Random search: one row per configuration (hparams, seed, metrics, rank). PBT: one
        row per generation and member (hparams used in that generation, metrics at its end,
        ``parent``: the member it copied from at the start of the generation).
    best_member : int or None
        Random search: index of the best configuration. PBT: the member that held the best
        model when it was found. None when no member ever produced a finite metric.
    best_hparams : dict name -> float
        Hyperparameters of the best model at its best epoch.
    best_metrics : dict
        'metric' (smoothed selection metric at the best epoch), 'valid_nll', 'sv_nll' (raw,
        same epoch), 'epoch' and, for PBT, 'generation'.
    run_dir : Path or None
        Where the search wrote its files (None when ``out`` was not given).
    config : LFADSConfig
        The shared settings the members trained with (searchable fields: defaults only).
    best_params : dict name -> Tensor (1, ...)
        Weights of the best model (population axis of size one).
    n_generations : int
        PBT: completed generations (random search: 0).
    stop_reason : str
        PBT: 'generations', 'converged' or 'all_failed'; random search: 'done'.
    """

    kind: str
    metric: str
    history: list[dict]
    best_member: int | None
    best_hparams: dict[str, float]
    best_metrics: dict[str, float]
    run_dir: Path | None
    config: LFADSConfig
    best_params: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    n_generations: int = 0
    stop_reason: str = "done"

    def to_frame(self):
        """The history as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.history)


def member_seeds(seed: int, n: int) -> list[int]:
    """``n`` distinct member seeds derived from a search seed (stable across versions)."""
    state = np.random.SeedSequence([int(seed), 17]).generate_state(n, dtype=np.uint32)
    # keep them below 2**31 so they are valid everywhere a seed is accepted
    return [int(s) >> 1 for s in state]


def finite_or_nan(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


def member_record(record: Mapping[str, Any], member: int) -> dict[str, Any]:
    """One member's values of a population history record (lists of K -> numbers)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if key == "hparams":
            flat.update({name: values[member] for name, values in value.items()})
        elif isinstance(value, (list, tuple)):
            flat[key] = value[member]
        else:
            flat[key] = value
    return flat


def write_table(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows as CSV, atomically (whole file rewritten through a temporary file).

    Columns are the keys in order of first appearance; missing values are empty; floats are
    written with ``repr`` so they read back exactly.
    """
    write_csv(path, rows, lambda v: repr(v) if isinstance(v, float) else v)


def export_best(
    run_dir: str | os.PathLike,
    data: SpikeData,
    *,
    config: LFADSConfig,
    sizes: Sizes,
    params: Mapping[str, torch.Tensor],
    hparams: Mapping[str, float],
    best_epoch: int,
    best_metric: float,
    history: Sequence[Mapping[str, Any]],
    search_info: Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> Path:
    """Write the best model as an ordinary LFADS run directory.

    ``RUN_DIR/best`` gets the model in the format of ``LFADS.save`` (so
    ``LFADS.load(RUN_DIR / "best")`` works) and ``RUN_DIR`` gets ``config.json``,
    ``outputs.h5`` (rates, factors, inferred inputs, initial conditions of every trial) and
    ``metrics.json`` through ``lfadskit.runs.write_run`` (so ``lfadskit evaluate RUN_DIR``
    works), and ``history`` as ``history.csv``.

    Parameters
    ----------
    run_dir : path
    data : SpikeData
        The data the search trained on (outputs are inferred for all its trials).
    config : LFADSConfig
        Shared settings; the best hyperparameters are written into the saved config.
    sizes : Sizes
    params : dict name -> Tensor (1, ...)
    hparams : dict name -> float
    best_epoch : int
    best_metric : float
    history : list of dict
        Per-epoch records of the best model (numbers, not lists).
    search_info : dict
        Kind of search, metric, member, generation...: stored in ``config.json``.
    device : torch device for inference

    Returns
    -------
    Path of the run directory.
    """
    from lfadskit.evaluation import evaluate_rates
    from lfadskit.lfads.estimator import LFADS
    from lfadskit.runs import write_run

    run_dir = Path(run_dir)
    model_config = config.replace(**{name: float(hparams[name]) for name in SEARCHABLE})
    model = LFADS.from_params(
        model_config,
        sizes,
        params,
        int(data.n_forward),
        best_epoch=int(best_epoch),
        best_metric=float(best_metric) if math.isfinite(best_metric) else math.inf,
        history=history,
        status="search",
        device=str(device),
    )
    model.save(run_dir / BEST_DIR)  # the one writer of the model format
    outputs = model.predict(data)
    metrics = evaluate_rates(data, outputs["rates"])
    write_run(
        run_dir,
        data=data,
        model="lfads",
        params={
            "config": model_config.to_dict(),
            "hparams": dict(hparams),
            "search": dict(search_info),
            "model_dir": BEST_DIR,
        },
        outputs=outputs,
        metrics=metrics,
    )
    if history:
        write_table(run_dir / HISTORY, history)  # training curves of the report
    return run_dir


def write_summary(search_dir: Path, result: SearchResult) -> None:
    """``search/summary.json``: the best member, its hyperparameters and metrics."""
    write_json(
        search_dir / "summary.json",
        {
            "kind": result.kind,
            "metric": result.metric,
            "best_member": result.best_member,
            "best_hparams": result.best_hparams,
            "best_metrics": result.best_metrics,
            "n_generations": result.n_generations,
            "stop_reason": result.stop_reason,
        },
    )
