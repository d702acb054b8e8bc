"""What each ``lfadskit`` command does, behind the argument parser of :mod:`lfadskit.cli`.

Each ``cmd_*`` function takes the parsed arguments and returns the exit code. User mistakes
found here raise :class:`UsageError` (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
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
        value = getattr(args, flag)
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
        load_options=options,
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
