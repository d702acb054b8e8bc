"""What each ``lfadskit`` command does, behind the argument parser of :mod:`lfadskit.cli`.

Each ``cmd_*`` function takes the parsed arguments and returns the exit code. User mistakes
found here raise :class:`UsageError` (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UsageError", "cmd_simulate", "cmd_fit", "cmd_evaluate", "load_options"]


class UsageError(Exception):
    """A user mistake detected after parsing: reported in one line, exit code 2."""


def say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, flush=True)


# ---------------------------------------------------------------------------- simulate
SIM_ARGS = {
    "n_neurons": "n_neurons",
    "n_heldout": "n_heldout",
    "n_forward": "n_forward",
    "n_conditions": "n_conditions",
    "trials_per_condition": "n_trials_per_condition",
    "n_timesteps": "n_timesteps",
    "bin_size": "bin_size",
    "base_rate": "base_rate",
}


def cmd_simulate(args: argparse.Namespace) -> int:
    from lfadskit import simulate
    from lfadskit.formats import save

    if args.out.suffix not in (".h5", ".hdf5", ".npz"):
        raise UsageError(f"--out {args.out}: use a .h5, .hdf5 or .npz file name")
    if args.system == "chaotic_rnn" and args.base_rate is not None:
        raise UsageError("--base-rate: applies to lorenz only (chaotic_rnn sets a maximum rate)")
    kwargs = {dst: getattr(args, src) for src, dst in SIM_ARGS.items()}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    data = getattr(simulate, args.system)(seed=args.seed, **kwargs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save(data, args.out)
    say(args, f"wrote {args.out}: {data.summary()}")
    return 0


# ---------------------------------------------------------------------------- loading
def _heldout_option(text: str) -> Any:
    """'0.2' -> fraction, '3,7,9' -> unit ids, anything else -> a boolean units column."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if 0 < value < 1 and "," not in text:
            return value
    parts = [p.strip() for p in text.split(",")]
    if all(p.lstrip("-").isdigit() for p in parts):
        return [int(p) for p in parts]
    return text


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """Reader options from the command line (NWB alignment, binning, continuous chopping)."""
    is_nwb = Path(args.data).suffix.lower() == ".nwb"
    nwb_only = {
        "--align": args.align,
        "--window": args.window,
        "--heldout": args.heldout,
        "--behavior": args.behavior,
        "--behavior-lag": args.behavior_lag,
        "--split-column": args.split_column,
        "--continuous": args.continuous or None,
        "--segment": args.segment,
        "--overlap": args.overlap,
    }
    given = [flag for flag, value in nwb_only.items() if value is not None]
    if given and not is_nwb:
        raise UsageError(f"{', '.join(given)}: only for NWB recordings (.nwb), not {args.data}")
    options: dict[str, Any] = {}
    if args.bin_size is not None:
        options["bin_size"] = args.bin_size
    if not is_nwb:
        return options
    if args.continuous:
        for flag in ("--align", "--window", "--split-column"):
            if nwb_only[flag] is not None:
                raise UsageError(f"{flag}: not used with --continuous (a recording without trials)")
        bin_size = options.setdefault("bin_size", 0.005)
        segment = 1.0 if args.segment is None else args.segment
        overlap = 0.2 if args.overlap is None else args.overlap
        options["continuous"] = True
        options["segment_length"] = _bins("--segment", segment, bin_size)
        options["overlap"] = _bins("--overlap", overlap, bin_size, allow_zero=True)
    else:
        for flag in ("--segment", "--overlap"):
            if nwb_only[flag] is not None:
                raise UsageError(f"{flag}: only with --continuous")
        if args.align is not None:
            options["align"] = args.align
        if args.window is not None:
            options["window"] = tuple(args.window)
        if args.split_column is not None:
            options["split"] = args.split_column
    if args.heldout is not None:
        options["heldout"] = _heldout_option(args.heldout)
    if args.behavior is not None:
        options["behavior"] = args.behavior
    if args.behavior_lag is not None:
        options["behavior_lag"] = args.behavior_lag
    return options


def _bins(flag: str, seconds: float, bin_size: float, allow_zero: bool = False) -> int:
    n = round(seconds / bin_size)
    if abs(n * bin_size - seconds) > 1e-9 or (n == 0 and not allow_zero):
        raise UsageError(f"{flag} {seconds}: must be a whole number of bins of {bin_size} s")
    return int(n)


# ---------------------------------------------------------------------------- fit
LFADS_FLAGS = {
    "epochs": "max_epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "cd_rate": "cd_rate",
    "sv_rate": "sv_rate",
    "dropout": "dropout",
    "gen_dim": "gen_dim",
    "fac_dim": "fac_dim",
    "ic_dim": "ic_dim",
    "co_dim": "co_dim",
    "con_dim": "con_dim",
    "enc_dim": ("ic_enc_dim", "ci_enc_dim"),
    "ramp_epochs": ("kl_increase_epoch", "l2_increase_epoch"),
    "patience": "patience",
    "metric": "selection_metric",
    "n_samples": "n_samples",
    "seed": "seed",
}


def lfads_config(args: argparse.Namespace):
    """LFADSConfig from ``--config FILE`` (JSON) and the flags given (flags win)."""
    from lfadskit.lfads import LFADSConfig

    values: dict[str, Any] = {}
    if args.config is not None:
        try:
            values = json.loads(Path(args.config).read_text())
        except json.JSONDecodeError as err:
            raise UsageError(f"--config {args.config}: not valid JSON ({err})") from None
        if not isinstance(values, dict):
            raise UsageError(f"--config {args.config}: expected a JSON object of config fields")
    for flag, fields in LFADS_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            for field in (fields,) if isinstance(fields, str) else fields:
                values[field] = value
    try:
        return LFADSConfig.from_dict(values)
    except ValueError as err:
        raise UsageError(f"config: {err}") from None


def cmd_fit(args: argparse.Namespace) -> int:
    from lfadskit.evaluation import evaluate_rates, format_table
    from lfadskit.formats import load
    from lfadskit.runs import write_history, write_run

    options = load_options(args)
    data = load(args.data, **options)
    if args.model == "smoothing":
        model, params, outputs = _fit_smoothing(args, data)
        history = None
    else:
        model, params, outputs = _fit_lfads(args, data)
        history = model.history_
    extra = _continuous_outputs(data, outputs["rates"]) if options.get("continuous") else None
    metrics = evaluate_rates(data, outputs["rates"])
    write_run(
        args.out,
        data=data,
        model=args.model,
        params=params,
        outputs=outputs,
        metrics=metrics,
        extra=extra,
    )
    if history:
        write_history(args.out / "history.csv", history)
    if data.meta.get("layout") == "nwb" and not options.get("continuous"):
        _write_nwb_copy(args, data, outputs)
    say(args, format_table(metrics))
    say(args, f"wrote {args.out}")
    return 0


def _fit_smoothing(args: argparse.Namespace, data):
    from lfadskit.baseline import SpikeSmoothing

    params: dict[str, Any] = {}
    if args.kernel_sd is not None:
        if args.kernel_sd == "auto":
            params["kernel_sd"] = "auto"
        else:
            try:
                params["kernel_sd"] = float(args.kernel_sd)
            except ValueError:
                raise UsageError(
                    f"--kernel-sd: expected seconds or 'auto', got {args.kernel_sd!r}"
                ) from None
    if args.alpha is not None:
        params["alpha"] = args.alpha
    model = SpikeSmoothing(**params).fit(data)
    return model, model.get_params(), {"rates": model.predict_rates(data)}


def _fit_lfads(args: argparse.Namespace, data):
    from lfadskit.lfads import LFADS

    config = lfads_config(args)
    checkpoint = args.out / "checkpoint.pt"
    if checkpoint.exists() and not args.resume:
        raise UsageError(
            f"--out {args.out}: holds a training checkpoint; pass --resume to continue it "
            "or choose a new run directory"
        )
    say(args, f"fitting LFADS: {data.summary()}")
    model = LFADS(
        config, device=args.device, verbose=not args.quiet, run_dir=args.out, resume=args.resume
    ).fit(data)
    model.save(args.out)
    if model.best_epoch_ >= 0:
        say(
            args,
            f"best epoch {model.best_epoch_ + 1}: smoothed {config.selection_metric} "
            f"{model.best_metric_:.5f} ({model.status_})",
        )
    else:
        say(args, "the KL/L2 ramps never completed: kept the last weights (train longer)")
    return model, config.to_dict(), model.predict(data)


def _continuous_outputs(data, rates: np.ndarray) -> dict[str, np.ndarray]:
    from lfadskit.continuous import merge

    starts = np.asarray(data.meta["starts"])
    window = rates[:, : data.n_timesteps, :]
    return {"continuous_rates": merge(window, starts, int(data.meta["n_time"]))}


def _write_nwb_copy(args: argparse.Namespace, data, outputs: dict[str, np.ndarray]) -> None:
    from lfadskit.formats.nwb_write import write_nwb_outputs

    window = slice(0, data.n_timesteps)
    factors = outputs.get("factors")
    path = write_nwb_outputs(
        data.meta["source"],
        args.out / "outputs.nwb",
        outputs["rates"][:, window],
        None if factors is None else factors[:, window],
        data=data,
    )
    say(args, f"wrote {path} (the recording with an 'lfadskit' processing module)")


# ---------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from lfadskit.evaluation import format_table
    from lfadskit.runs import evaluate_run

    metrics = evaluate_run(args.run_dir, data_path=args.data)
    say(args, format_table(metrics))
    return 0


# ---------------------------------------------------------------------------- report
def cmd_report(args: argparse.Namespace) -> int:
    from lfadskit.report import write_report

    say(args, f"wrote {write_report(args.run_dir)}")
    return 0


# ---------------------------------------------------------------------------- search
class SearchProgress:
    """Live view of a search: one line per generation (or population) with the best metric
    and the spread of the population's hyperparameters; a short line per epoch."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        # A transient per-epoch line only where it can be overwritten (a terminal).
        self.live = self.stream.isatty()

    def __call__(self, info: dict) -> None:
        if info["stage"] == "epoch":
            if self.live:
                where = (
                    f"generation {info['generation'] + 1}/{info['n_generations']}"
                    if info["search"] == "pbt"
                    else f"population {info['chunk'] + 1}/{info['n_chunks']}"
                )
                best = info["best_metric"]
                best = "-" if math.isnan(best) else f"{best:.5f}"
                line = f"  {where}  epoch {info['epoch'] + 1}/{info['max_epochs']}  best {best}"
                print(f"\r\033[K{line}", end="", file=self.stream, flush=True)
            return
        if self.live:
            print("\r\033[K", end="", file=self.stream)
        if info["stage"] == "generation":
            head = (
                f"generation {info['generation'] + 1}/{info['n_generations']}  "
                f"best {info['best_metric']:.5f}  copies {len(info['copies'])}  "
                f"{info['elapsed_s'] / 60:.1f} min"
            )
        else:
            head = (
                f"population {info['chunk'] + 1}/{info['n_chunks']}  {info['n_done']}/"
                f"{info['n_configs']} configs  best {info['best_metric']:.5f}  "
                f"{info['elapsed_s'] / 60:.1f} min"
            )
        spread = "  ".join(
            f"{name} {min(values):.3g}..{max(values):.3g}"
            for name, values in info["hparams"].items()
            if max(values) > min(values)
        )
        print(f"{head}\n    {spread}" if spread else head, file=self.stream, flush=True)
        if info.get("stop_reason"):
            print(f"    stopping: {info['stop_reason']}", file=self.stream, flush=True)


def cmd_search(args: argparse.Namespace) -> int:
    from lfadskit.evaluation import format_table
    from lfadskit.formats import load
    from lfadskit.runs import read_json
    from lfadskit.search import SearchSpace, load_space, parse_space_args, pbt, random_search

    options = load_options(args)
    if options.get("continuous"):
        raise UsageError("--continuous: not supported by search yet; use fit")
    try:
        space = load_space(args.space) if args.space is not None else None
        space = parse_space_args(args.set, base=space)
    except ValueError as err:
        raise UsageError(f"--set/--space: {err}") from None
    config = lfads_config(args)
    data = load(args.data, **options)
    say(args, f"searching ({args.method}): {data.summary()}")
    common = dict(
        space=space,
        config=config,
        metric=config.selection_metric,
        out=args.out,
        seed=config.seed,
        device=args.device,
        progress=None if args.quiet else SearchProgress(),
    )
    points = None
    if args.start_from_config:
        fixed = {n for n, spec in (space or SearchSpace()).specs().items() if spec.fixed}
        points = [{n: v for n, v in config.hparams().items() if n not in fixed}]
    try:
        if args.method == "pbt":
            result = pbt(
                data,
                population=args.population or 20,
                generations=args.generations,
                epochs_per_generation=args.epochs_per_generation,
                burn_in=args.burn_in,
                resume=args.resume,
                initial_points=points,
                **common,
            )
        else:
            result = random_search(
                data,
                n_configs=args.n_configs,
                population=args.population or 8,
                resume=args.resume,
                initial_points=points,
                **common,
            )
    except ValueError as err:
        if points is None or "initial points" not in str(err):
            raise
        raise UsageError(f"--start-from-config: {err}") from None
    say(
        args,
        f"best member {result.best_member}: "
        + ", ".join(f"{k}={v:.3g}" for k, v in result.best_hparams.items()),
    )
    say(args, format_table(read_json(args.out / "metrics.json")))
    say(args, f"wrote {args.out} (lfadskit report {args.out} for figures)")
    return 0


# ---------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate Lorenz data, run a small PBT with CD + SV, evaluate the best model, report."""
    import time

    import torch

    from lfadskit import simulate
    from lfadskit.baseline import SpikeSmoothing
    from lfadskit.evaluation import evaluate_rates, format_table
    from lfadskit.formats import load, save
    from lfadskit.lfads import LFADSConfig
    from lfadskit.report import write_report
    from lfadskit.runs import read_json
    from lfadskit.search import pbt

    start = time.perf_counter()
    # One thread: a small population steps steadily on it; two threads on two cores stall
    # whenever anything else runs (benchmarks/RESULTS.md).
    torch.set_num_threads(1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data_path = out / "lorenz.h5"
    save(simulate.lorenz(**DEMO_DATA, seed=args.seed), data_path)
    data = load(data_path)
    say(args, f"1/4 simulated {data_path}: {data.summary()}")

    smooth = SpikeSmoothing().fit(data)
    baseline = evaluate_rates(data, smooth.predict_rates(data))["valid"]
    say(args, "2/4 spike-smoothing baseline: valid " + _headline(baseline))

    run_dir = out / "pbt"
    config = LFADSConfig(**DEMO_MODEL, seed=args.seed)
    say(args, f"3/4 population based training ({DEMO_PBT['population']} members, CD + SV)")
    pbt(
        data,
        config=config,
        metric=config.selection_metric,
        out=run_dir,
        seed=args.seed,
        resume=args.resume,
        progress=None if args.quiet else SearchProgress(),
        **DEMO_PBT,
    )
    metrics = read_json(run_dir / "metrics.json")
    report = write_report(run_dir)
    say(args, "4/4 best model:\n" + format_table(metrics))
    say(args, "best model: valid " + _headline(metrics["valid"]))
    say(args, "baseline:   valid " + _headline(baseline))
    say(args, f"wrote {run_dir} and {report} in {(time.perf_counter() - start) / 60:.1f} min")
    return 0


def _headline(metrics: dict) -> str:
    return "  ".join(f"{key} {metrics[key]:.3f}" for key in ("rate_r2", "co_bps") if key in metrics)


# Sizes of the demo: a small Lorenz dataset and model, so that it runs in a few minutes on
# two CPU cores (measured: benchmarks/RESULTS.md).
DEMO_DATA = dict(n_conditions=20, n_trials_per_condition=10, n_heldout=5)
DEMO_MODEL = dict(
    ic_enc_dim=32, ci_enc_dim=32, ic_dim=32, con_dim=32, co_dim=2, gen_dim=64, fac_dim=16,
    sv_rate=0.1, cd_rate=0.3, selection_metric="sv_nll", n_samples=20,
    kl_increase_epoch=10, l2_increase_epoch=10, batch_size=64,  # 3 batches: keeps it fast
)  # fmt: skip
DEMO_PBT = dict(population=8, generations=6, epochs_per_generation=10)
