"""Random search: sample N configurations, train them as populations of K, rank them.

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> from lfadskit.lfads.config import LFADSConfig
>>> counts = np.random.default_rng(0).poisson(1.0, size=(12, 8, 5))
>>> cfg = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4, fac_dim=2,
...                   max_epochs=3, kl_increase_epoch=1, l2_increase_epoch=1)
>>> result = random_search(SpikeData(spikes=counts), n_configs=3, population=2, config=cfg)
>>> len(result.history), sorted(row["rank"] for row in result.history)
(3, [1, 2, 3])
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from lfadskit.data import DataError, SpikeData
from lfadskit.lfads.config import SEARCHABLE, SELECTION_METRICS, LFADSConfig
from lfadskit.lfads.train import PopulationTrainer
from lfadskit.runs import write_json
from lfadskit.search.random_state import (
    CHUNK,
    STATE,
    data_fingerprint,
    load_chunk,
    load_state,
    new_state,
    save_chunk,
    save_state,
)
from lfadskit.search.results import (
    PBT_CHECKPOINT,
    SEARCH_DIR,
    SearchResult,
    export_best,
    finite_or_nan,
    member_record,
    member_seeds,
    write_summary,
    write_table,
)
from lfadskit.search.space import SearchSpace, place_points, points_setting, sample

__all__ = ["random_search", "rank"]


def rank(metrics) -> list[int]:
    """1-based ranks of lower-is-better metrics; non-finite values rank last (by index).

    Examples
    --------
    >>> rank([0.3, float("nan"), 0.1])
    [2, 3, 1]
    """
    values = [float(v) for v in metrics]
    order = sorted(
        range(len(values)),
        key=lambda i: (not math.isfinite(values[i]), values[i] if math.isfinite(values[i]) else 0),
    )
    ranks = [0] * len(values)
    for position, i in enumerate(order):
        ranks[i] = position + 1
    return ranks


def check_common(data, space, population, config, metric, seed) -> tuple[SearchSpace, LFADSConfig]:
    """Validate the arguments shared by the search drivers; return the space and config."""
    if not isinstance(data, SpikeData):
        raise DataError(f"data: expected a SpikeData, got {type(data).__name__}")
    space = SearchSpace() if space is None else space
    if not isinstance(space, SearchSpace):
        raise ValueError(
            f"space: expected a SearchSpace (lfadskit.search.SearchSpace), got "
            f"{type(space).__name__}"
        )
    if isinstance(population, bool) or not isinstance(population, int) or population < 1:
        raise ValueError(f"population: expected an integer >= 1, got {population!r}")
    if metric not in SELECTION_METRICS:
        raise ValueError(f"metric: expected one of {SELECTION_METRICS}, got {metric!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    config = LFADSConfig() if config is None else config
    if not isinstance(config, LFADSConfig):
        raise ValueError(f"config: expected an LFADSConfig, got {type(config).__name__}")
    if metric == "sv_nll" and config.sv_rate == 0:
        raise ValueError("metric: 'sv_nll' needs config.sv_rate > 0 (e.g. sv_rate=0.1)")
    return space, config.replace(selection_metric=metric, seed=seed)


def random_search(
    data: SpikeData,
    space: SearchSpace | None = None,
    n_configs: int = 20,
    population: int = 8,
    config: LFADSConfig | None = None,
    metric: str = "valid_nll",
    out: str | os.PathLike | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
    resume: bool = False,
    initial_points: Sequence[Mapping[str, float]] | None = None,
) -> SearchResult:
    """Sample ``n_configs`` hyperparameter sets, train them ``population`` at a time, rank.

    Parameters
    ----------
    data : SpikeData
        Trains on ``data.train_idx``; selects on the valid trials' held-in neurons
        ('valid_nll') or on the sample-validation elements ('sv_nll').
    space : SearchSpace, optional
        Default: AutoLFADS's space. Initial values (``init``) are ignored: every
        configuration is a random draw.
    n_configs : int
        Number of configurations.
    population : int
        Members trained together (vectorized) in one population.
    config : LFADSConfig, optional
        Shared settings (sizes, epochs, ramps, patience...). Its ``selection_metric`` and
        ``seed`` are replaced by ``metric`` and ``seed``.
    metric : {'valid_nll', 'sv_nll'}
        Ranking uses each member's smoothed metric at its best epoch (lower is better).
    out : path, optional
        Run directory (see ``lfadskit.search.results``), every file written atomically.
        At the start: ``search/space.json`` and ``search/random_state.pt`` (settings, no
        population done). After every epoch: ``search/chunk.pt``, the training population's
        full state. After every population: ``search/random_state.pt`` (rows so far and the
        best member's weights), then ``search/results.csv`` (rows so far, ranked), then
        ``search/chunk.pt`` is removed. At the end: ``search/summary.json`` and the best
        model as a run (``best/``, ``config.json``, ``outputs.h5``, ``metrics.json``,
        ``history.csv``). A kill loses at most the epoch in progress.
    seed : int
        Seeds the sampling, every member's weights and streams, and the batch order.
    device : torch device
    progress : callable(dict), optional
        Called after every epoch with ``{"stage": "epoch", "search": "random", "chunk",
        "n_chunks", "epoch", "max_epochs", "metrics", "best_metric"}`` and after every
        population with ``{"stage": "chunk", ..., "n_done", "n_configs", "best_metric",
        "hparams", "metrics", "elapsed_s"}`` (completed populations skipped on resume are
        not reported again).
    resume : bool
        Continue the search in ``out`` (``search/random_state.pt`` and ``search/chunk.pt``):
        completed populations are kept, the current one continues from its last epoch, and
        the results equal an uninterrupted run's. Refused when the settings (space,
        n_configs, population, config, metric, seed, data) differ. Without a saved state
        the search simply starts. Without ``resume``, an existing state is an error (nothing
        is overwritten by accident).
    initial_points : list of dict name -> value, optional
        Hyperparameters of the first configurations (``lfadskit.search.space.place_points``),
        e.g. ``[config.hparams()]`` to rank the default setting among the draws; names a
        point leaves out are drawn.

    Returns
    -------
    SearchResult
        ``history`` has one row per configuration in sampling order, with its ``rank``.
    """
    space, cfg = check_common(data, space, population, config, metric, seed)
    if isinstance(n_configs, bool) or not isinstance(n_configs, int) or n_configs < 1:
        raise ValueError(f"n_configs: expected an integer >= 1, got {n_configs!r}")
    if cfg.max_epochs <= cfg.ramp_end_epoch:
        raise ValueError(
            f"config.max_epochs={cfg.max_epochs}: the selection metric is counted only after "
            f"the KL/L2 ramps end (epoch {cfg.ramp_end_epoch}); raise max_epochs or shorten "
            "the ramps"
        )
    if resume and out is None:
        raise ValueError("resume: needs out (the run directory holding search/random_state.pt)")
    rng = np.random.default_rng(seed)
    values = sample(space, n_configs, rng)
    if initial_points:
        values = place_points(space, values, initial_points)
    seeds = member_seeds(seed, n_configs)
    search_dir = None if out is None else Path(out) / SEARCH_DIR
    settings, state = {}, new_state()
    if search_dir is not None:
        settings = _settings(data, space, n_configs, population, cfg, metric, seed)
        if initial_points:  # only when given, so that older states still resume
            settings["initial_points"] = points_setting(initial_points)
        state = _open_state(search_dir, settings, resume, device)
        write_json(search_dir / "space.json", space.to_dict())

    starts = list(range(0, n_configs, population))
    rows: list[dict] = state["rows"]
    start_time = time.perf_counter()
    for chunk, first in enumerate(starts):
        if chunk < state["n_chunks_done"]:
            continue  # completed before an interruption: its rows are in the state
        members = list(range(first, min(first + population, n_configs)))
        hparams = {name: [float(values[name][i]) for i in members] for name in SEARCHABLE}

        def on_epoch(record: dict, trainer: PopulationTrainer, chunk: int = chunk) -> None:
            if search_dir is not None:
                save_chunk(search_dir / CHUNK, settings, chunk, trainer)
            if progress is not None:
                finite = [m for m in trainer.best_metric if math.isfinite(m)]
                progress(
                    {
                        "stage": "epoch",
                        "search": "random",
                        "chunk": chunk,
                        "n_chunks": len(starts),
                        "epoch": record["epoch"],
                        "max_epochs": cfg.max_epochs,
                        "metrics": record[metric],
                        "best_metric": min(finite) if finite else math.nan,
                    }
                )

        trainer = PopulationTrainer(
            data, cfg, hparams, [seeds[i] for i in members], device, callback=on_epoch
        )
        if search_dir is not None:
            load_chunk(search_dir / CHUNK, settings, chunk, trainer)
        result = trainer.run().result()
        for k, index in enumerate(members):
            row = _row(index, seeds[index], result, k, metric)
            rows.append(row)
            best = state["best"]
            if math.isfinite(row["metric"]) and (best is None or row["metric"] < best["metric"]):
                state["best"] = {
                    **row,
                    "params": {n: p[k : k + 1].clone() for n, p in result.params.items()},
                    "record_history": [
                        member_record(r, k) for r in result.history[: row["best_epoch"] + 1]
                    ],
                    "sizes": result.sizes,
                }
        for row, r in zip(rows, rank([row["metric"] for row in rows]), strict=True):
            row["rank"] = r
        state["n_chunks_done"] = chunk + 1
        if search_dir is not None:
            # state first: once it holds this population, chunk.pt is stale and can go
            save_state(search_dir / STATE, settings, state)
            write_table(search_dir / "results.csv", rows)
            (search_dir / CHUNK).unlink(missing_ok=True)
        if progress is not None:
            best = state["best"]
            progress(
                {
                    "stage": "chunk",
                    "search": "random",
                    "chunk": chunk,
                    "n_chunks": len(starts),
                    "n_done": len(rows),
                    "n_configs": n_configs,
                    "best_metric": math.nan if best is None else best["metric"],
                    "hparams": hparams,
                    "metrics": [finite_or_nan(m) for m in result.best_metric],
                    "elapsed_s": time.perf_counter() - start_time,
                }
            )

    if search_dir is not None:
        (search_dir / CHUNK).unlink(missing_ok=True)  # a kill may have left the last one
    best = state["best"]
    search = SearchResult(
        kind="random",
        metric=metric,
        history=rows,
        best_member=None if best is None else best["config"],
        best_hparams={} if best is None else {n: best[n] for n in SEARCHABLE},
        best_metrics={}
        if best is None
        else {
            "metric": best["metric"],
            "valid_nll": best["valid_nll"],
            "sv_nll": best["sv_nll"],
            "epoch": best["best_epoch"],
        },
        run_dir=None if out is None else Path(out),
        config=cfg,
        best_params={} if best is None else best["params"],
    )
    if search_dir is not None:
        write_summary(search_dir, search)
        if best is not None:
            export_best(
                out,
                data,
                config=cfg,
                sizes=best["sizes"],
                params=best["params"],
                hparams=search.best_hparams,
                best_epoch=best["best_epoch"],
                best_metric=best["metric"],
                history=best["record_history"],
                search_info={"kind": "random", "metric": metric, "config_index": best["config"]},
                device=device,
            )
    return search


def _settings(data, space, n_configs, population, cfg, metric, seed) -> dict:
    """What a resumed search must share with the interrupted one."""
    config = cfg.to_dict()
    for name in ("seed", "selection_metric"):  # compared as ``seed`` and ``metric``
        config.pop(name)
    return {
        "n_configs": n_configs,
        "population": population,
        "metric": metric,
        "seed": seed,
        "space": space.to_dict(),
        "config": config,
        "data": data_fingerprint(data),
    }


def _open_state(search_dir: Path, settings: dict, resume: bool, device) -> dict:
    """The saved progress when resuming (else a new one, written at once); refuse clobbering."""
    pbt_checkpoint = search_dir / PBT_CHECKPOINT
    if pbt_checkpoint.is_file():
        raise ValueError(
            f"out: {pbt_checkpoint} holds a PBT search; use a new run directory (--out) "
            "for a random search"
        )
    saved = [path for path in (search_dir / STATE, search_dir / CHUNK) if path.is_file()]
    if saved and not resume:
        raise ValueError(
            f"out: {saved[0]} exists (an earlier random search); pass resume=True (--resume) "
            "to continue it or use a new run directory (--out)"
        )
    if (search_dir / STATE).is_file():
        return load_state(search_dir / STATE, settings, device)
    state = new_state()
    # settings on disk from the start, so even a kill in the first epoch is resumable
    save_state(search_dir / STATE, settings, state)
    return state


def _row(index: int, seed: int, result, k: int, metric: str) -> dict:
    epoch = result.best_epoch[k]
    at_best = result.history[epoch] if epoch >= 0 else {}
    row = {
        "config": index,
        "seed": seed,
        "rank": 0,
        "status": result.status[k],
        "best_epoch": epoch,
        "metric": finite_or_nan(result.best_metric[k]),
        "valid_nll": finite_or_nan(at_best["valid_nll"][k]) if at_best else math.nan,
        "sv_nll": finite_or_nan(at_best["sv_nll"][k])
        if at_best and "sv_nll" in at_best
        else math.nan,
    }
    row.update({name: float(result.hparams[name][k]) for name in SEARCHABLE})
    return row
