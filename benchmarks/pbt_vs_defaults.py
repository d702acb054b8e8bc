"""Population based training (with CD) against one model with fixed default hyperparameters.

Both arms use the same architecture and data; the report gives each arm's valid metrics and its
compute in member-epochs (one member trained for one epoch).

Usage (from the repository root)::

    python benchmarks/pbt_vs_defaults.py lorenz --out benchmarks/results/pbt_vs_defaults_lorenz.json
    python benchmarks/pbt_vs_defaults.py mc_maze --population 8 --generations 10 \\
        --epochs-per-generation 25 --out benchmarks/results/pbt_vs_defaults_mc_maze.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import lfadskit
from lfadskit.evaluation import evaluate_rates, format_table
from lfadskit.lfads import LFADS, LFADSConfig
from lfadskit.runs import read_json
from lfadskit.search import pbt
from quality import mc_maze_small, write_result  # benchmarks/ is on sys.path when run as a script

# The Lorenz arm uses the demo's data and model sizes (lfadskit.commands.DEMO_*).
LORENZ = dict(n_conditions=20, n_trials_per_condition=10, n_heldout=5, seed=0)
SMALL_MODEL = dict(
    ic_enc_dim=32,
    ci_enc_dim=32,
    ic_dim=32,
    con_dim=32,
    co_dim=2,
    gen_dim=64,
    fac_dim=16,
    kl_increase_epoch=10,
    l2_increase_epoch=10,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["lorenz", "mc_maze"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--epochs-per-generation", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--metric",
        choices=["valid_nll", "sv_nll"],
        default="valid_nll",
        help="PBT's selection metric (sv_nll: the PBT arm trains with --sv-rate)",
    )
    parser.add_argument("--sv-rate", type=float, default=0.1, help="with --metric sv_nll")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the PBT search and of the fixed model"
    )
    parser.add_argument("--data-seed", type=int, default=0, help="lorenz: simulation seed")
    parser.add_argument(
        "--start-from-config",
        action="store_true",
        help="PBT's member 0 starts from the default hyperparameters (the fixed arm's)",
    )
    parser.add_argument(
        "--trials-per-condition",
        type=int,
        default=LORENZ["n_trials_per_condition"],
        help="lorenz: trials per condition (20 conditions; default: the demo's 10)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.dataset == "lorenz":
        data = lfadskit.simulate.lorenz(
            **{
                **LORENZ,
                "n_trials_per_condition": args.trials_per_condition,
                "seed": args.data_seed,
            }
        )
        config = LFADSConfig(**SMALL_MODEL, seed=args.seed)
    else:
        data = mc_maze_small()
        config = LFADSConfig(seed=args.seed)
    run_root = args.out.with_name(args.out.stem + "_runs")

    start = time.perf_counter()
    fixed = LFADS(config).fit(data)
    fixed_s = time.perf_counter() - start
    fixed_metrics = evaluate_rates(data, fixed.predict_rates(data))

    start = time.perf_counter()
    result = pbt(
        data,
        population=args.population,
        generations=args.generations,
        epochs_per_generation=args.epochs_per_generation,
        config=config.replace(sv_rate=args.sv_rate) if args.metric == "sv_nll" else config,
        metric=args.metric,
        seed=args.seed,
        out=run_root / "pbt",
        initial_points=[config.hparams()] if args.start_from_config else None,
    )
    pbt_s = time.perf_counter() - start
    pbt_metrics = read_json(run_root / "pbt" / "metrics.json")
    # generations actually run: the plateau rule may stop the search before --generations
    pbt_epochs = config.ramp_end_epoch + result.n_generations * args.epochs_per_generation

    print("fixed default hyperparameters\n" + format_table(fixed_metrics))
    print(f"PBT ({args.population} members)\n" + format_table(pbt_metrics))
    summary = {
        "dataset": args.dataset,
        "data": data.summary(),
        "config": config.to_dict(),
        "fixed": {
            "metrics": fixed_metrics,
            "member_epochs": len(fixed.history_),
            "seconds": fixed_s,
            "best_epoch": fixed.best_epoch_,
        },
        "pbt": {
            "metrics": pbt_metrics,
            "member_epochs": pbt_epochs * args.population,
            "epochs": pbt_epochs,
            "generations_run": result.n_generations,
            "seconds": pbt_s,
            "best_hparams": result.best_hparams,
        },
    }
    write_result(args.out, summary, "pbt_vs_defaults.py", argv, args.threads)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
