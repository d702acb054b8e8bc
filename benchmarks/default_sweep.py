"""Candidate default settings, trained together as one population and scored like single models.

How the defaults of ``LFADSConfig`` were chosen: every candidate differs only in searchable
hyperparameters (dropout, cd_rate, KL and L2 scales, lr), so all of them train as one vectorized
population. Every member gets the same seed, so member k trains exactly as
``LFADS(config.replace(**candidate_k)).fit(data)`` would (the population test guarantees it);
each member is then scored with ``evaluate_rates`` as ``benchmarks/quality.py`` scores a model.

Usage (from the repository root)::

    python benchmarks/default_sweep.py mc_maze --set co_dim=0 --set batch_size=25 \\
        --candidates benchmarks/candidates.json --out /tmp/sweep.json

``--candidates`` is a JSON list of objects, each mapping searchable names to values, e.g.
``[{"dropout": 0.5, "cd_rate": 0.5}, {"dropout": 0.3, "l2_gen_scale": 0.1}]``; names left out
keep the config's value.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lfadskit.evaluation import evaluate_rates, format_table
from lfadskit.lfads import LFADS, LFADSConfig, fit_population
from lfadskit.lfads.config import SEARCHABLE
from quality import load_dataset, write_result  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["lorenz", "mc_maze"])
    parser.add_argument("--candidates", type=Path, required=True, help="JSON list of settings")
    parser.add_argument("--out", type=Path, required=True, help="JSON file of results")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    candidates = json.loads(args.candidates.read_text())
    if not isinstance(candidates, list) or not candidates:
        parser.error("--candidates: expected a non-empty JSON list of objects")
    for item in candidates:
        unknown = sorted(set(item) - set(SEARCHABLE))
        if unknown:
            parser.error(f"--candidates: unknown name(s) {unknown}; valid: {SEARCHABLE}")
    overrides = {f: json.loads(v) for f, _, v in (s.partition("=") for s in args.set)}
    config = LFADSConfig(**overrides)
    data = load_dataset(args.dataset)

    hparams = {
        name: [float(c.get(name, getattr(config, name))) for c in candidates] for name in SEARCHABLE
    }
    start = time.perf_counter()

    def progress(record: dict, trainer) -> None:
        if record["epoch"] % 25 == 0:
            best = ", ".join(f"{m:.4f}" for m in trainer.best_metric)
            print(f"epoch {record['epoch']}: best {best}  {record['time_s']:.1f} s", flush=True)

    result = fit_population(
        data, config, hparams, seeds=[config.seed] * len(candidates), callback=progress
    )
    fit_s = time.perf_counter() - start

    rows = []
    for k, candidate in enumerate(candidates):
        member = config.replace(**{name: hparams[name][k] for name in SEARCHABLE})
        params = {name: p[k : k + 1] for name, p in result.params.items()}
        model = LFADS.from_params(member, result.sizes, params, int(data.n_forward))
        metrics = evaluate_rates(data, model.predict_rates(data))
        rows.append(
            {
                "candidate": candidate,
                "metrics": metrics,
                "best_epoch": result.best_epoch[k],
                "status": result.status[k],
            }
        )
        print(f"candidate {k}: {candidate}  best epoch {result.best_epoch[k]}")
        print(format_table(metrics))
    out = {
        "dataset": args.dataset,
        "data": data.summary(),
        "config": config.to_dict(),
        "rows": rows,
        "epochs_run": len(result.history),
        "fit_seconds": fit_s,
    }
    write_result(args.out, out, "default_sweep.py", argv, args.threads)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
