"""Speed of the LFADS population trainer on a CPU, measured as ratios in one run (SPEC 8).

Sections (each row is printed and written to JSON):

- ``k1``: training time per epoch of one lfadskit model (``PopulationTrainer``, K = 1) against
  a straightforward PyTorch LFADS of the same sizes (``reference_lfads.py``), on MC_Maze_Small
  and a Lorenz simulation, with 1 and 2 torch threads. Both sides run interleaved in one
  process; ratio = reference / lfadskit (> 1: lfadskit is faster).
- ``population``: a population of K = 8 members with different hyperparameters against the
  same 8 models trained one after another (K = 1 each). Each side runs in a fresh subprocess,
  which reports its median epoch time and its peak resident memory (``ru_maxrss``).
  speedup = (sum of the 8 single-model epoch times) / (population epoch time).
- ``inference``: posterior averaging with ``n_samples`` samples, batched (``lfads.infer``)
  against a loop of ``n_samples`` sampled forward passes; ratio = loop / batched.
- ``growth``: lfadskit epoch time against trials, time bins, neurons and population size
  (synthetic Poisson counts, 1 thread).

Every timing is the median of a few epochs after a warm-up epoch.

Examples
--------
Run from the repository root (the package on the path)::

    PYTHONPATH=src python benchmarks/bench_speed.py --quick --out /tmp/speed.json
    PYTHONPATH=src python benchmarks/bench_speed.py --out /tmp/speed.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import lfadskit
from lfadskit.data import SpikeData, make_split
from lfadskit.lfads import LFADSConfig, PopulationTrainer
from lfadskit.lfads.inference import infer
from lfadskit.lfads.network import draw_noise, forward

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_lfads import ReferenceTrainer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent

# the AutoLFADS search space, narrowed to values that train stably from the start
HPARAM_RANGES = {
    "lr": (1e-3, 5e-3, "log"),
    "dropout": (0.05, 0.5, "lin"),
    "cd_rate": (0.1, 0.6, "lin"),
    "kl_ic_scale": (1e-6, 1e-3, "log"),
    "kl_co_scale": (1e-6, 1e-4, "log"),
    "l2_gen_scale": (1e-4, 1.0, "log"),
    "l2_con_scale": (1e-4, 1.0, "log"),
}


# ---------------------------------------------------------------------------- setup
def data_dir(arg: str | None) -> Path:
    """The shared data folder: --data-dir, else $LFADSKIT_DATA, else ../shared/data."""
    if arg:
        return Path(arg)
    if os.environ.get("LFADSKIT_DATA"):
        return Path(os.environ["LFADSKIT_DATA"])
    return REPO_ROOT.parent / "shared" / "data"


def make_dataset(name: str, root: Path) -> SpikeData:
    """'mc_maze' (MC_Maze_Small), 'lorenz' (260 trials x 50 bins x 29) or 'tiny' (smoke)."""
    if name == "mc_maze":
        return lfadskit.load(root / "mc_maze_small")
    if name == "lorenz":
        return lfadskit.simulate.lorenz(n_conditions=65, n_trials_per_condition=4, seed=0)
    if name == "tiny":
        return lfadskit.simulate.lorenz(
            n_neurons=12, n_conditions=6, n_trials_per_condition=4, n_timesteps=20, seed=0
        )
    raise ValueError(f"dataset: unknown name {name!r}; use mc_maze, lorenz or tiny")


def make_config(quick: bool, batch_size: int | None = None) -> LFADSConfig:
    """Default sizes (tiny ones with ``quick``); ``batch_size`` None keeps the default."""
    if quick:
        cfg = LFADSConfig(ic_enc_dim=16, ci_enc_dim=16, ic_dim=8, con_dim=16, gen_dim=16)
    else:
        cfg = LFADSConfig()
    return cfg if batch_size is None else cfg.replace(batch_size=batch_size)


def member_hparams(n_members: int, seed: int = 0) -> dict[str, list[float]]:
    """Different hyperparameters for each member, drawn from ``HPARAM_RANGES``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (low, high, scale) in HPARAM_RANGES.items():
        if scale == "log":
            values = np.exp(rng.uniform(np.log(low), np.log(high), n_members))
        else:
            values = rng.uniform(low, high, n_members)
        out[name] = [float(v) for v in values]
    return out


def synthetic(n_trials: int, n_timesteps: int, n_neurons: int, seed: int = 0) -> SpikeData:
    """Poisson counts (rate 0.2 per bin) of a given shape; the cost does not depend on values."""
    counts = np.random.default_rng(seed).poisson(0.2, size=(n_trials, n_timesteps, n_neurons))
    train_idx, valid_idx = make_split(n_trials, 0.2, seed)
    return SpikeData(spikes=counts, train_idx=train_idx, valid_idx=valid_idx)


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes)
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def epoch_time(trainer) -> float:
    start = time.perf_counter()
    trainer.train_epoch()
    return time.perf_counter() - start


def timed_epochs(trainer, n_warmup: int, n_timed: int) -> list[float]:
    for _ in range(n_warmup):
        trainer.train_epoch()
    return [epoch_time(trainer) for _ in range(n_timed)]


# ---------------------------------------------------------------------------- k = 1
def bench_k1(datasets: dict, cfg: LFADSConfig, threads: list[int], n_timed: int) -> list[dict]:
    """lfadskit K = 1 against the reference, interleaved epoch by epoch."""
    rows = []
    for name, data in datasets.items():
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            sides = {
                "lfadskit": PopulationTrainer(data, cfg, seeds=[0]),
                "reference": ReferenceTrainer(data, cfg, seed=0),
            }
            for trainer in sides.values():
                trainer.train_epoch()  # warm-up
            times = {side: [] for side in sides}
            for rep in range(n_timed):
                # alternate the order so that drifting machine load hits both sides alike
                order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
                for side in order:
                    times[side].append(epoch_time(sides[side]))
            lfk = statistics.median(times["lfadskit"])
            ref = statistics.median(times["reference"])
            rows.append(
                {
                    "dataset": name,
                    "threads": n_threads,
                    "lfadskit_s": lfk,
                    "reference_s": ref,
                    "ratio_ref_over_lfadskit": ref / lfk,
                    "epochs_timed": n_timed,
                    "all_times": times,
                }
            )
            print_row("k1", rows[-1])
    return rows


# ---------------------------------------------------------------------------- population
def run_worker(spec: dict) -> dict:
    """Body of a fresh subprocess: train a population or K sequential single models."""
    torch.set_num_threads(spec["threads"])
    cfg = make_config(spec["quick"], spec["batch_size"])
    data = make_dataset(spec["dataset"], Path(spec["data_dir"]))
    hparams = member_hparams(spec["k"])
    rss_before = current_rss_mib()
    start = time.perf_counter()
    if spec["mode"] == "population":
        trainer = PopulationTrainer(data, cfg, hparams, seeds=list(range(spec["k"])))
        times = timed_epochs(trainer, spec["n_warmup"], spec["n_timed"])
        epoch_s = statistics.median(times)
        per_member = None
    else:
        per_member = []
        for member in range(spec["k"]):
            one = {name: [values[member]] for name, values in hparams.items()}
            trainer = PopulationTrainer(data, cfg, one, seeds=[member])
            times = timed_epochs(trainer, spec["n_warmup"], spec["n_timed"])
            per_member.append(statistics.median(times))
            del trainer
        epoch_s = sum(per_member)  # time for all K models to advance one epoch each
    return {
        "mode": spec["mode"],
        "epoch_s": epoch_s,
        "per_member_s": per_member,
        "wall_s": time.perf_counter() - start,
        "rss_before_train_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
    }


def spawn_worker(spec: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec['mode']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_population(
    dataset: str,
    root: Path,
    k: int,
    threads: list[int],
    n_timed: int,
    n_repeats: int,
    quick: bool,
    batch_size: int | None = None,
    n_warmup: int = 1,
) -> list[dict]:
    """K members in lockstep against K single models in sequence, fresh process each."""
    rows = []
    for n_threads in threads:
        results = {"population": [], "sequential": []}
        for rep in range(n_repeats):
            order = ["population", "sequential"] if rep % 2 == 0 else ["sequential", "population"]
            for mode in order:
                spec = {
                    "mode": mode,
                    "k": k,
                    "threads": n_threads,
                    "dataset": dataset,
                    "data_dir": str(root),
                    "n_timed": n_timed,
                    "quick": quick,
                    "batch_size": batch_size,
                    "n_warmup": n_warmup,
                }
                results[mode].append(spawn_worker(spec))
        pop = statistics.median(r["epoch_s"] for r in results["population"])
        seq = statistics.median(r["epoch_s"] for r in results["sequential"])
        rows.append(
            {
                "dataset": dataset,
                "k": k,
                "threads": n_threads,
                "population_epoch_s": pop,
                "sequential_epoch_s": seq,
                "speedup": seq / pop,
                "population_member_epochs_per_s": k / pop,
                "sequential_member_epochs_per_s": k / seq,
                "population_peak_rss_mib": max(r["peak_rss_mib"] for r in results["population"]),
                "sequential_peak_rss_mib": max(r["peak_rss_mib"] for r in results["sequential"]),
                "rss_before_train_mib": results["population"][0]["rss_before_train_mib"],
                "repeats": n_repeats,
                "workers": results,
            }
        )
        print_row("population", rows[-1])
    return rows


# ---------------------------------------------------------------------------- inference
@torch.no_grad()
def looped_inference(params, cfg, spikes, n_timesteps_out, n_samples, seed=0):
    """Posterior averaging as a Python loop of sampled forward passes (the slow way)."""
    generators = [torch.Generator().manual_seed(seed)]
    total = None
    for _ in range(n_samples):
        noise = draw_noise(
            generators,
            cfg,
            spikes.shape[0],
            spikes.shape[1],
            n_timesteps_out,
            spikes.shape[2],
            None,
        )
        rates = torch.exp(forward(params, spikes, cfg, n_timesteps_out, noise)["log_rates"])
        total = rates if total is None else total + rates
    return total / n_samples


def bench_inference(
    datasets: dict, cfg: LFADSConfig, threads: list[int], n_samples: int, n_timed: int
) -> list[dict]:
    rows = []
    for name, data in datasets.items():
        params = PopulationTrainer(data, cfg, seeds=[0]).params
        params = {n: p.detach() for n, p in params.items()}
        spikes = torch.as_tensor(data.spikes[data.valid_idx])
        t_out = data.n_timesteps_out
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            sides = {
                "batched": partial(infer, params, cfg, spikes, t_out, n_samples=n_samples),
                "looped": partial(looped_inference, params, cfg, spikes, t_out, n_samples),
            }
            times = {side: [] for side in sides}
            for rep in range(n_timed + 1):
                order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
                for side in order:
                    start = time.perf_counter()
                    sides[side]()
                    if rep > 0:  # the first round is the warm-up
                        times[side].append(time.perf_counter() - start)
            batched, looped = (statistics.median(times[s]) for s in ("batched", "looped"))
            rows.append(
                {
                    "dataset": name,
                    "threads": n_threads,
                    "n_trials": int(spikes.shape[0]),
                    "n_samples": n_samples,
                    "batched_s": batched,
                    "looped_s": looped,
                    "ratio_looped_over_batched": looped / batched,
                }
            )
            print_row("inference", rows[-1])
    return rows


# ---------------------------------------------------------------------------- growth
def bench_growth(cfg: LFADSConfig, quick: bool, n_timed: int) -> list[dict]:
    """Epoch time when one size changes and the others stay at the base point (1 thread)."""
    torch.set_num_threads(1)
    base = {"n_trials": 80, "n_timesteps": 50, "n_neurons": 50, "k": 1}
    grid = {
        "n_trials": [40, 80, 160, 320],
        "n_timesteps": [25, 50, 100, 200],
        "n_neurons": [25, 50, 100, 200],
        "k": [1, 2, 4, 8],
    }
    if quick:
        base = {"n_trials": 20, "n_timesteps": 10, "n_neurons": 8, "k": 1}
        grid = {name: [v, 2 * v] for name, v in base.items()}
    rows = []
    for varied, values in grid.items():
        for value in values:
            sizes = {**base, varied: value}
            data = synthetic(sizes["n_trials"], sizes["n_timesteps"], sizes["n_neurons"])
            trainer = PopulationTrainer(data, cfg, seeds=list(range(sizes["k"])))
            epoch_s = statistics.median(timed_epochs(trainer, 1, n_timed))
            rows.append({"varied": varied, **sizes, "epoch_s": epoch_s})
            print_row("growth", rows[-1])
    return rows


# ---------------------------------------------------------------------------- output
def print_row(section: str, row: dict) -> None:
    shown = {k: v for k, v in row.items() if k not in ("all_times", "workers")}
    text = "  ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
    )
    print(f"[{section}] {text}", flush=True)


def print_tables(results: dict) -> None:
    print("\n== K = 1: seconds per epoch (median), lfadskit vs reference PyTorch LFADS")
    print(f"{'dataset':10s} {'threads':>7s} {'lfadskit':>9s} {'reference':>9s} {'ref/lfk':>8s}")
    for r in results["k1"]:
        print(
            f"{r['dataset']:10s} {r['threads']:7d} {r['lfadskit_s']:9.3f} "
            f"{r['reference_s']:9.3f} {r['ratio_ref_over_lfadskit']:8.2f}"
        )
    print("\n== Population K members vs K sequential single models (fresh process each)")
    print(
        f"{'dataset':10s} {'K':>3s} {'threads':>7s} {'pop s/ep':>9s} {'seq s/ep':>9s} "
        f"{'speedup':>8s} {'pop MiB':>8s} {'seq MiB':>8s}"
    )
    for r in results["population"]:
        print(
            f"{r['dataset']:10s} {r['k']:3d} {r['threads']:7d} {r['population_epoch_s']:9.3f} "
            f"{r['sequential_epoch_s']:9.3f} {r['speedup']:8.2f} "
            f"{r['population_peak_rss_mib']:8.0f} {r['sequential_peak_rss_mib']:8.0f}"
        )
    print("\n== Inference: posterior averaging, batched vs a loop of forward passes")
    print(f"{'dataset':10s} {'threads':>7s} {'samples':>7s} {'batched':>8s} {'looped':>8s} ratio")
    for r in results["inference"]:
        print(
            f"{r['dataset']:10s} {r['threads']:7d} {r['n_samples']:7d} {r['batched_s']:8.3f} "
            f"{r['looped_s']:8.3f} {r['ratio_looped_over_batched']:6.2f}"
        )
    print("\n== Cost growth (lfadskit, 1 thread, synthetic data): seconds per epoch")
    print(f"{'varied':12s} {'trials':>6s} {'bins':>5s} {'neurons':>7s} {'K':>3s} {'s/epoch':>8s}")
    for r in results["growth"]:
        print(
            f"{r['varied']:12s} {r['n_trials']:6d} {r['n_timesteps']:5d} {r['n_neurons']:7d} "
            f"{r['k']:3d} {r['epoch_s']:8.3f}"
        )


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "n_cpus": os.cpu_count(),
        "cuda": torch.cuda.is_available(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--data-dir", default=None, help="folder holding mc_maze_small/")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="subprocess pairs per setting")
    parser.add_argument("--k", type=int, default=8, help="population size")
    parser.add_argument(
        "--population-warmup",
        type=int,
        default=1,
        help="untimed epochs before timing, per population / single model (default 1)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="trials per step (default: LFADSConfig's)"
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["k1", "population", "inference", "growth"],
        choices=["k1", "population", "inference", "growth"],
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return {}

    root = data_dir(args.data_dir)
    cfg = make_config(args.quick, args.batch_size)
    if args.quick:
        names, threads, n_timed, repeats, k = ["tiny"], [1], 1, 1, 2
    else:
        names, threads, n_timed, repeats, k = (
            ["mc_maze", "lorenz"],
            args.threads,
            args.epochs,
            args.repeats,
            args.k,
        )
    datasets = {name: make_dataset(name, root) for name in names}
    results = {
        "meta": {
            "command": " ".join(["python benchmarks/bench_speed.py", *(argv or sys.argv[1:])]),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine_start": machine(),
            "config": cfg.to_dict(),
            "datasets": {
                n: {
                    "n_train": len(d.train_idx),
                    "n_valid": len(d.valid_idx),
                    "n_timesteps": d.n_timesteps,
                    "n_timesteps_out": d.n_timesteps_out,
                    "n_neurons_in": d.n_neurons,
                    "n_neurons_out": d.n_neurons_out,
                }
                for n, d in datasets.items()
            },
        },
        "k1": [],
        "population": [],
        "inference": [],
        "growth": [],
    }
    start = time.perf_counter()
    if "k1" in args.sections:
        results["k1"] = bench_k1(datasets, cfg, threads, n_timed)
    if "population" in args.sections:
        results["population"] = bench_population(
            names[0],
            root,
            k,
            threads,
            max(2, n_timed // 2) if not args.quick else 1,
            repeats,
            args.quick,
            args.batch_size,
            args.population_warmup,
        )
    if "inference" in args.sections:
        results["inference"] = bench_inference(
            {names[0]: datasets[names[0]]},
            cfg,
            threads,
            50 if not args.quick else 5,
            max(1, n_timed // 2),
        )
    if "growth" in args.sections:
        results["growth"] = bench_growth(cfg, args.quick, max(1, n_timed // 2))
    results["meta"]["machine_end"] = machine()
    results["meta"]["total_s"] = time.perf_counter() - start
    print_tables(results)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
