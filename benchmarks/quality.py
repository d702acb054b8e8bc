"""Quality of single LFADS models with default settings, against the smoothing baseline.

Two datasets:

- ``lorenz``: simulated Lorenz data with ground truth (sizes below); reports valid rate R²
  against the true rates, and co-bps of the held-out neurons.
- ``mc_maze``: the shared MC_Maze_Small NLB tensors (75 train trials, 25 valid trials);
  reports valid co-bps, 5-fold velocity R² within the train trials and train fp-bps.

Usage (from the repository root)::

    python benchmarks/quality.py lorenz --out benchmarks/results/quality_lorenz.json
    python benchmarks/quality.py mc_maze --out benchmarks/results/quality_mc_maze.json

Every run writes a normal run directory next to the JSON (``<out stem>_run/``) so that
``lfadskit report`` can show it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

import lfadskit
from lfadskit.baseline import SpikeSmoothing
from lfadskit.evaluation import evaluate_rates, format_table
from lfadskit.lfads import LFADS, LFADSConfig
from lfadskit.runs import write_history, write_run

REPO = Path(__file__).resolve().parents[1]

# The Lorenz benchmark dataset: 65 conditions x 6 trials (312 train, 78 valid), 50 bins of
# 20 ms, 29 neurons, mean rate about 7 Hz (lfadskit.simulate.lorenz defaults otherwise).
LORENZ = dict(n_trials_per_condition=6, seed=0)


def mc_maze_small():
    """The shared MC_Maze_Small NLB tensors ($LFADSKIT_DATA, else ../shared/data)."""
    root = Path(os.environ.get("LFADSKIT_DATA", REPO.parent / "shared" / "data"))
    return lfadskit.load(root / "mc_maze_small")


def load_dataset(name: str):
    if name == "lorenz":
        return lfadskit.simulate.lorenz(**LORENZ)
    return mc_maze_small()


def write_result(out: Path, result: dict, script: str, argv, threads: int) -> None:
    """Write ``result`` as JSON with the machine, torch version, threads and command added."""
    result = {
        **result,
        "threads": threads,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": f"python benchmarks/{script} " + " ".join(argv or sys.argv[1:]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["lorenz", "mc_maze"])
    parser.add_argument("--out", type=Path, required=True, help="JSON file of results")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override an LFADSConfig field (JSON value); repeatable",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset)
    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = json.loads(value)
    config = LFADSConfig(**overrides)

    start = time.perf_counter()
    smooth = SpikeSmoothing().fit(data)
    baseline = evaluate_rates(data, smooth.predict_rates(data))
    smooth_s = time.perf_counter() - start

    start = time.perf_counter()
    run_dir = args.out.with_name(args.out.stem + "_run")
    model = LFADS(config, verbose=True, run_dir=run_dir).fit(data)
    fit_s = time.perf_counter() - start
    model.save(run_dir)
    outputs = model.predict(data)
    metrics = evaluate_rates(data, outputs["rates"])
    write_run(
        run_dir, data=data, model="lfads", params=config.to_dict(), outputs=outputs, metrics=metrics
    )
    write_history(run_dir / "history.csv", model.history_)

    print("spike smoothing baseline\n" + format_table(baseline))
    print(f"LFADS, default settings{' + ' + str(overrides) if overrides else ''}")
    print(format_table(metrics))
    result = {
        "dataset": args.dataset,
        "data": data.summary(),
        "config": config.to_dict(),
        "lfads": metrics,
        "smoothing": baseline,
        "best_epoch": model.best_epoch_,
        "epochs_run": len(model.history_),
        "fit_seconds": fit_s,
        "smoothing_seconds": smooth_s,
    }
    write_result(args.out, result, "quality.py", argv, args.threads)
    print(f"wrote {args.out} and {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
