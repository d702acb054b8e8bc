"""Population based training (AutoLFADS) with the local backend.

The whole population trains in one process, vectorized (``PopulationTrainer``). Schedule:
the first generation lasts ``burn_in + epochs_per_generation`` epochs (the burn-in covers the
KL/L2 ramps, so the selection metric is counted by its end), later ones
``epochs_per_generation``. At the end of every generation but the last, the pure rules of
``lfadskit.search.pbt`` decide who copies whom and the new hyperparameters
(``plan_generation``) and ``apply_plan`` carries them out: the loser takes the winner's
weights, Adam state and best checkpoint, then every member's hyperparameters are (re)set, so
the learning rate used after a copy is the explored one.

After every generation: ``search/generations.csv`` (one row per member: hyperparameters used
in that generation, metrics at its end, ``parent`` = whom it copied from at its start) is
rewritten atomically, then ``search/checkpoint.pt`` (the trainer's full state with Adam and
random streams, the search's rng state and histories), so ``resume=True`` continues exactly
from the last completed generation.

Columns of ``generations.csv``: ``generation`` (0-based), ``member``, ``parent`` (the member
whose weights it took at the start of this generation; itself when it kept its own),
``epochs`` (epochs completed at the end of the generation), ``status`` ('running' or
'failed'), ``metric`` (smoothed selection metric at the end of the generation: what the
tournament compares; NaN for a failed member), ``valid_nll`` and ``sv_nll`` (raw values of
the last epoch), ``best_metric`` (best smoothed metric of the weights' lineage so far), then
the hyperparameters used during the generation (as the trainer holds them, float32).

Examples
--------
>>> import numpy as np
>>> from lfadskit.data import SpikeData
>>> from lfadskit.lfads.config import LFADSConfig
>>> counts = np.random.default_rng(0).poisson(1.0, size=(12, 8, 5))
>>> cfg = LFADSConfig(ic_enc_dim=4, ci_enc_dim=4, ic_dim=2, con_dim=4, gen_dim=4, fac_dim=2,
...                   kl_increase_epoch=1, l2_increase_epoch=1)
>>> result = pbt(SpikeData(spikes=counts), population=4, generations=2,
...              epochs_per_generation=1, config=cfg)
>>> result.n_generations, len(result.history)
(2, 8)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads.config import SEARCHABLE, LFADSConfig
from lfadskit.lfads.train import PopulationTrainer
from lfadskit.runs import write_json, write_torch
from lfadskit.search.pbt import GenerationPlan, plan_generation, should_stop
from lfadskit.search.random_search import check_common
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

__all__ = ["pbt", "apply_plan", "CHECKPOINT", "GENERATIONS"]

CHECKPOINT = PBT_CHECKPOINT
GENERATIONS = "generations.csv"
BACKENDS = ("local", "ray")


def apply_plan(trainer: PopulationTrainer, plan: GenerationPlan) -> None:
    """Carry out a generation plan on a local population.

    Copies first (weights, optimizer state, best checkpoint, early-stopping state), then sets
    every member's hyperparameters, so no copied state can bring back an old value.
    """
    for src, dst in plan.copies:
        trainer.copy_member(src, dst)
    for name, values in plan.hparams.items():
        trainer.set_hparam(name, values)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")


def pbt(
    data: SpikeData,
    space: SearchSpace | None = None,
    population: int = 20,
    generations: int = 50,
    epochs_per_generation: int = 25,
    burn_in: int | None = None,
    config: LFADSConfig | None = None,
    metric: str = "valid_nll",
    out: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    backend: str = "local",
    device: str | torch.device = "cpu",
    progress: Callable[[dict], None] | None = None,
    patience: int = 4,
    min_improvement: float = 0.0005,
    initial_points: Sequence[Mapping[str, float]] | None = None,
) -> SearchResult:
    """Population based training of LFADS (binary tournament, log-symmetric explore).

    Parameters
    ----------
    data : SpikeData
        Trains on ``data.train_idx``; the tournament uses the valid trials' held-in neurons
        ('valid_nll') or the sample-validation elements ('sv_nll').
    space : SearchSpace, optional
        Default: AutoLFADS's. Members start from each spec's ``init`` when it has one,
        otherwise from a random draw.
    population : int
        Members K (trained together, vectorized).
    generations : int
        Maximum number of generations G.
    epochs_per_generation : int
        Epochs E between two tournaments.
    burn_in : int, optional
        Extra epochs of the first generation; at least the ramp length
        (``config.ramp_end_epoch``, the default).
    config : LFADSConfig, optional
        Shared settings. ``selection_metric``, ``seed``, ``max_epochs`` (burn_in + G E) and
        ``patience`` (off: members never stop early in PBT) are set by the search.
    metric : {'valid_nll', 'sv_nll'}
        Tournament metric: each member's smoothed metric at the end of the generation; the
        best model is the one with the lowest smoothed metric at any epoch.
    out : path, optional
        Run directory (see ``lfadskit.search.results``); needed for checkpoints and resume.
    resume : bool
        Continue from ``out/search/checkpoint.pt``. Without it an existing checkpoint is an
        error (nothing is overwritten by accident).
    seed : int
        Seeds the initial population, members' weights and streams, batch order and the
        tournaments.
    backend : {'local', 'ray'}
        'ray' is not available yet.
    device : torch device
    progress : callable(dict), optional
        Called after every epoch with ``{"stage": "epoch", "search": "pbt", "generation",
        "n_generations", "epoch", "max_epochs", "metrics", "best_metric"}`` and after every
        generation with ``{"stage": "generation", "search": "pbt", "generation",
        "n_generations", "epoch", "max_epochs", "best_metric", "metrics", "hparams",
        "parents", "copies", "stop_reason", "elapsed_s"}`` (``generation`` is 0-based).
    patience, min_improvement :
        Convergence rule (``lfadskit.search.pbt.should_stop``).
    initial_points : list of dict name -> value, optional
        Hyperparameters for the first members (``lfadskit.search.space.place_points``), e.g.
        ``[config.hparams()]`` so that the search starts from a known-good model; names a
        point leaves out are drawn as for the other members.

    Returns
    -------
    SearchResult
    """
    if backend == "ray":
        raise NotImplementedError(
            "backend='ray': the Ray Tune backend is a later issue (search on a Ray cluster) "
            "and not available yet; use backend='local'"
        )
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    space, cfg = check_common(data, space, population, config, metric, seed)
    _check_int("generations", generations, 1)
    _check_int("epochs_per_generation", epochs_per_generation, 1)
    _check_int("patience", patience, 1)
    if burn_in is None:
        burn_in = cfg.ramp_end_epoch
    _check_int("burn_in", burn_in, 0)
    if burn_in < cfg.ramp_end_epoch:
        raise ValueError(
            f"burn_in={burn_in}: must cover the KL/L2 ramps (>= {cfg.ramp_end_epoch} epochs, "
            "config.ramp_end_epoch) so that members are compared on the final objective"
        )
    if resume and out is None:
        raise ValueError("resume: needs out (the run directory holding search/checkpoint.pt)")
    total = burn_in + generations * epochs_per_generation
    cfg = cfg.replace(max_epochs=total, patience=total + 1)
    settings = {
        "population": population,
        "generations": generations,
        "epochs_per_generation": epochs_per_generation,
        "burn_in": burn_in,
        "metric": metric,
        "seed": seed,
        "patience": patience,
        "min_improvement": float(min_improvement),
        "space": space.to_dict(),
        "config": cfg.to_dict(),
    }

    rng = np.random.default_rng(seed)
    initial = sample(space, population, rng, use_init=True)
    if initial_points:
        initial = place_points(space, initial, initial_points)
        # in the settings only when given, so that older checkpoints still resume
        settings["initial_points"] = points_setting(initial_points)
    trainer = PopulationTrainer(
        data,
        cfg,
        {name: initial[name].tolist() for name in SEARCHABLE},
        member_seeds(seed, population),
        device,
    )
    state = _new_state(population)
    search_dir = None if out is None else Path(out) / SEARCH_DIR
    if search_dir is not None:
        checkpoint = search_dir / CHECKPOINT
        if checkpoint.is_file():
            if not resume:
                raise ValueError(
                    f"out: {checkpoint} exists; pass resume=True to continue that search or "
                    "choose a new run directory"
                )
            state = _load(checkpoint, settings, trainer, rng, device)
        write_json(search_dir / "space.json", space.to_dict())

    start_time = time.perf_counter()
    while state["stop_reason"] is None:
        g = state["generation"]
        first_epoch = trainer.epoch
        hparams = trainer.hparams_list()
        n_epochs = epochs_per_generation + (burn_in if g == 0 else 0)
        for _ in range(n_epochs):
            if "running" not in trainer.status:
                break  # every member failed
            record = trainer.train_epoch()
            _track_member_best(state, trainer, record, metric)
            if progress is not None:
                progress(
                    {
                        "stage": "epoch",
                        "search": "pbt",
                        "generation": g,
                        "n_generations": generations,
                        "epoch": record["epoch"],
                        "max_epochs": total,
                        "metrics": record[metric],
                        "best_metric": _best_known(state, trainer),
                    }
                )
        metrics = [
            finite_or_nan(trainer.smoothed[m]) if trainer.status[m] == "running" else math.nan
            for m in range(population)
        ]
        state["bounds"].append((first_epoch, trainer.epoch))
        state["rows"].extend(_rows(g, trainer, hparams, metrics, state["parents"]))
        _update_best(state, trainer, g)
        state["best_history"].append(state["best"]["metric"] if state["best"] else math.nan)
        state["generation"] = g + 1

        plan = None
        if not any(math.isfinite(m) for m in metrics):
            state["stop_reason"] = "all_failed"
        elif g + 1 >= generations:
            state["stop_reason"] = "generations"
        elif should_stop(state["best_history"], patience, min_improvement):
            state["stop_reason"] = "converged"
        else:
            plan = plan_generation(metrics, trainer.hparams_list(), space, rng)
            apply_plan(trainer, plan)
            for src, dst in plan.copies:
                state["member_best"][dst] = state["member_best"][src]
            state["parents"] = list(plan.parents)

        if search_dir is not None:
            write_table(search_dir / GENERATIONS, state["rows"])
            _save(search_dir / CHECKPOINT, settings, trainer, rng, state)
        if progress is not None:
            progress(
                {
                    "stage": "generation",
                    "search": "pbt",
                    "generation": g,
                    "n_generations": generations,
                    "epoch": trainer.epoch,
                    "max_epochs": total,
                    "best_metric": state["best_history"][-1],
                    "metrics": metrics,
                    "hparams": hparams,
                    "parents": [row["parent"] for row in state["rows"][-population:]],
                    "copies": [] if plan is None else list(plan.copies),
                    "stop_reason": state["stop_reason"],
                    "elapsed_s": time.perf_counter() - start_time,
                }
            )

    return _finish(state, trainer, cfg, metric, out, data, device)


# ------------------------------------------------------------------ bookkeeping
def _new_state(population: int) -> dict:
    return {
        "generation": 0,  # completed generations
        "stop_reason": None,
        "rows": [],  # generations.csv
        "bounds": [],  # (first epoch, end epoch) of each generation
        "best_history": [],  # best smoothed metric so far, after each generation
        "parents": list(range(population)),  # whom each member copied from this generation
        "member_best": [None] * population,  # metrics/hparams at each member's best epoch
        "best": None,  # snapshot of the best model found so far
    }


def _track_member_best(state: dict, trainer: PopulationTrainer, record: dict, metric: str):
    # the trainer keeps each member's best weights; remember what they were trained with
    for m in range(trainer.k):
        if trainer.best_epoch[m] == record["epoch"]:
            state["member_best"][m] = {
                "epoch": record["epoch"],
                "metric": float(trainer.best_metric[m]),
                "valid_nll": finite_or_nan(record["valid_nll"][m]),
                "sv_nll": finite_or_nan(record["sv_nll"][m]) if "sv_nll" in record else math.nan,
                "hparams": {name: record["hparams"][name][m] for name in SEARCHABLE},
            }


def _best_known(state: dict, trainer: PopulationTrainer) -> float:
    values = [m for m in trainer.best_metric if math.isfinite(m)]
    if state["best"] is not None:
        values.append(state["best"]["metric"])
    return min(values) if values else math.nan


def _rows(g: int, trainer: PopulationTrainer, hparams: dict, metrics: list, parents: list):
    last = trainer.history[-1] if trainer.history else {}
    rows = []
    for m in range(trainer.k):
        row = {
            "generation": g,
            "member": m,
            "parent": int(parents[m]),
            "epochs": trainer.epoch,
            "status": trainer.status[m],
            "metric": metrics[m],
            "valid_nll": finite_or_nan(last["valid_nll"][m]) if last else math.nan,
            "sv_nll": finite_or_nan(last["sv_nll"][m]) if "sv_nll" in last else math.nan,
            "best_metric": finite_or_nan(trainer.best_metric[m]),
        }
        row.update({name: float(hparams[name][m]) for name in SEARCHABLE})
        rows.append(row)
    return rows


def _lineage_history(state: dict, trainer: PopulationTrainer, member: int, g: int, epoch: int):
    """Per-epoch records of the weights now held by ``member``, following its ancestors."""
    parents = {}
    for row in state["rows"]:
        parents[(row["generation"], row["member"])] = row["parent"]
    owner = {}
    for gen in range(g, -1, -1):
        owner[gen] = member
        member = parents[(gen, member)]
    records = []
    for gen in range(g + 1):
        first, end = state["bounds"][gen]
        for e in range(first, min(end, epoch + 1)):
            records.append(member_record(trainer.history[e], owner[gen]))
    return records


def _update_best(state: dict, trainer: PopulationTrainer, g: int) -> None:
    candidates = [
        m
        for m in range(trainer.k)
        if math.isfinite(trainer.best_metric[m]) and state["member_best"][m] is not None
    ]
    if not candidates:
        return
    m = min(candidates, key=lambda i: trainer.best_metric[i])
    value = float(trainer.best_metric[m])
    if state["best"] is not None and value >= state["best"]["metric"]:
        return
    info = state["member_best"][m]
    state["best"] = {
        **info,
        "member": m,
        "generation": g,
        "params": {n: t[m : m + 1].detach().clone() for n, t in trainer.best_params.items()},
        "history": _lineage_history(state, trainer, m, g, info["epoch"]),
    }


def _save(path: Path, settings: dict, trainer: PopulationTrainer, rng, state: dict) -> None:
    payload = {
        "format": 1,
        "settings": settings,
        "trainer": trainer.state_dict(),
        "rng": rng.bit_generator.state,
        "state": state,
    }
    write_torch(path, payload)


def _load(path: Path, settings: dict, trainer: PopulationTrainer, rng, device) -> dict:
    payload = torch.load(path, map_location=device, weights_only=True)
    saved = payload.get("settings", {})
    differ = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
    if differ:
        raise ValueError(
            f"resume: {path} was written by a search with different settings ({differ}); "
            "use the same arguments or a new run directory"
        )
    trainer.load_state_dict(payload["trainer"])
    rng.bit_generator.state = payload["rng"]
    state = payload["state"]
    state["bounds"] = [tuple(b) for b in state["bounds"]]
    return state


def _finish(state, trainer, cfg, metric, out, data, device) -> SearchResult:
    best = state["best"]
    result = SearchResult(
        kind="pbt",
        metric=metric,
        history=list(state["rows"]),
        best_member=None if best is None else best["member"],
        best_hparams={} if best is None else dict(best["hparams"]),
        best_metrics={}
        if best is None
        else {k: best[k] for k in ("metric", "valid_nll", "sv_nll", "epoch", "generation")},
        run_dir=None if out is None else Path(out),
        config=cfg,
        best_params={} if best is None else best["params"],
        n_generations=state["generation"],
        stop_reason=state["stop_reason"],
    )
    if out is not None:
        write_summary(Path(out) / SEARCH_DIR, result)
        if best is not None:
            export_best(
                out,
                data,
                config=cfg,
                sizes=trainer.sizes,
                params=best["params"],
                hparams=best["hparams"],
                best_epoch=best["epoch"],
                best_metric=best["metric"],
                history=best["history"],
                search_info={
                    "kind": "pbt",
                    "metric": metric,
                    "member": best["member"],
                    "generation": best["generation"],
                    "n_generations": state["generation"],
                    "stop_reason": state["stop_reason"],
                },
                device=device,
            )
    return result
