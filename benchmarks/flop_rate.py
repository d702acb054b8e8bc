"""How much of the machine's matrix-product speed an epoch uses, for K = 1 and a population.

Counts the floating-point operations of one training epoch on MC_Maze_Small (matrix products
of the forward and backward passes, counted by ``torch.utils.flop_counter``; elementwise ops
are not counted), times epochs without the counter, and measures the machine's ``bmm``
throughput on one large product and on the model's per-step shapes at the same thread count.
achieved = counted FLOPs / epoch time; the gap to the peak is time spent outside matrix
products (elementwise ops, memory traffic, per-op overhead)::

    PYTHONPATH=src python benchmarks/flop_rate.py --k 1 8 --threads 1 2 \\
        --out benchmarks/results/flop_rate.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from lfadskit.lfads import LFADSConfig
from lfadskit.lfads.train import PopulationTrainer
from quality import mc_maze_small, write_result  # benchmarks/ is on sys.path when run as a script


def bmm_rate(shape_a, shape_b, seconds=0.5):
    """GFLOP/s of torch.bmm on random operands of the given shapes."""
    a, b = torch.randn(shape_a), torch.randn(shape_b)
    torch.bmm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.bmm(a, b)
        n += 1
    elapsed = (time.perf_counter() - start) / n
    return 2 * shape_a[0] * shape_a[1] * shape_a[2] * shape_b[2] / elapsed / 1e9


def measure(data, k, n_epochs):
    cfg = LFADSConfig()
    lrs = [1e-3 * (i + 1) for i in range(k)]  # different members, as in a search
    trainer = PopulationTrainer(data, cfg, {"lr": lrs}, list(range(k)))
    for _ in range(2):  # warm-up: the heap reaches its working size
        trainer.train_epoch()
    times = []
    for _ in range(n_epochs):
        start = time.perf_counter()
        trainer.train_epoch()
        times.append(time.perf_counter() - start)
    with FlopCounterMode(display=False) as counter:
        trainer.train_epoch()
    return counter.get_total_flops(), statistics.median(times), times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 8], help="population sizes")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (median)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    data = mc_maze_small()
    cfg = LFADSConfig()
    b = cfg.batch_size
    rows = []
    for n_threads in args.threads:
        torch.set_num_threads(n_threads)
        peaks = {
            "bmm 8 x (512 x 512 @ 512 x 512)": bmm_rate((8, 512, 512), (8, 512, 512)),
            f"generator step, K = 8: 8 x ({b} x {cfg.gen_dim} @ {cfg.gen_dim} x "
            f"{3 * cfg.gen_dim})": bmm_rate((8, b, cfg.gen_dim), (8, cfg.gen_dim, 3 * cfg.gen_dim)),
            f"encoder step, K = 8: 32 x ({b} x {cfg.ic_enc_dim} @ {cfg.ic_enc_dim} x "
            f"{3 * cfg.ic_enc_dim})": bmm_rate(
                (32, b, cfg.ic_enc_dim), (32, cfg.ic_enc_dim, 3 * cfg.ic_enc_dim)
            ),
        }
        for k in args.k:
            flops, epoch_s, times = measure(data, k, args.epochs)
            achieved = flops / epoch_s / 1e9
            row = {
                "k": k,
                "threads": n_threads,
                "gflop_per_epoch": flops / 1e9,
                "gflop_per_member_epoch": flops / 1e9 / k,
                "epoch_s": epoch_s,
                "epoch_times": times,
                "achieved_gflop_s": achieved,
                "peak_gflop_s": peaks,
                "fraction_of_large_bmm": achieved / next(iter(peaks.values())),
            }
            rows.append(row)
            print(
                f"K={k} threads={n_threads}: {flops / 1e9 / k:.2f} GFLOP per member-epoch, "
                f"{epoch_s:.3f} s/epoch, {achieved:.1f} GFLOP/s achieved; peaks "
                + ", ".join(f"{name}: {value:.0f}" for name, value in peaks.items()),
                flush=True,
            )
    if args.out:
        write_result(args.out, {"rows": rows}, "flop_rate.py", argv, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
