"""Consecutive epoch times of one population on MC_Maze_Small, with page faults per epoch.

Shows how a population settles (the heap reaches its working size after a few epochs) and
compares settings of the process, e.g. heap retention on and off::

    PYTHONPATH=src python benchmarks/epoch_series.py --k 8 --threads 2 --epochs 8
    LFADSKIT_KEEP_FREED_MEMORY=0 PYTHONPATH=src \
        python benchmarks/epoch_series.py --k 8 --threads 2 --epochs 4
    PYTHONPATH=src python benchmarks/epoch_series.py --k 8 --decoder steps  # A/B the decoder

Prints one line: ``K threads  seconds/thousands-of-minor-faults`` per epoch.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from lfadskit.lfads import LFADSConfig, decoder, network
from lfadskit.lfads.train import PopulationTrainer
from quality import mc_maze_small  # benchmarks/ is on sys.path when run as a script


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="population size (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs to time (default 8)")
    parser.add_argument(
        "--decoder",
        choices=["auto", "steps"],
        default="auto",
        help="steps: train with the per-step decoder loop instead of the fused node",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.decoder == "steps":
        network.decode = decoder.decode_steps
    lrs = [1e-3 * (i + 1) for i in range(args.k)]  # different members, as in a search
    trainer = PopulationTrainer(mc_maze_small(), LFADSConfig(), {"lr": lrs}, list(range(args.k)))
    cells = []
    for _ in range(args.epochs):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        trainer.train_epoch()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        cells.append(f"{time.perf_counter() - start:.2f}/{faults // 1000}k")
    print(args.k, args.threads, args.decoder, " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
