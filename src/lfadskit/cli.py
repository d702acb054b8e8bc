"""The ``lfadskit`` command line.

Every command validates its arguments up front; a bad path or argument ends with exit code 2
and one line saying what is wrong (no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from lfadskit import commands
from lfadskit.commands import UsageError

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with a pointer to --help), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def _existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return path


# ---------------------------------------------------------------------------- simulate
def _add_simulate(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="write a simulated dataset with ground-truth rates",
        description="Simulate spiking data with known rates and write it to a dataset file "
        "(.h5 or .npz, lfadskit layout; read it back with lfadskit.load).",
    )
    p.add_argument("system", choices=["lorenz", "chaotic_rnn"], help="the latent dynamical system")
    p.add_argument("--out", required=True, type=Path, help="output file (.h5, .hdf5 or .npz)")
    p.add_argument("--n-neurons", type=_positive_int, help="held-in neurons")
    p.add_argument("--n-heldout", type=_non_negative_int, help="held-out neurons (co-smoothing)")
    p.add_argument("--n-forward", type=_non_negative_int, help="forward-prediction bins")
    p.add_argument("--n-conditions", type=_positive_int, help="conditions (initial states)")
    p.add_argument("--trials-per-condition", type=_positive_int, help="trials per condition")
    p.add_argument("--n-timesteps", type=_positive_int, help="time bins per trial")
    p.add_argument("--bin-size", type=_positive_float, help="bin width in seconds")
    p.add_argument("--base-rate", type=_positive_float, help="baseline firing rate in Hz")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=commands.cmd_simulate)


def _add_lfads_options(p: argparse.ArgumentParser, search: bool = False) -> None:
    """LFADSConfig flags; a search sets the searchable ones through its space (--set)."""
    g = p.add_argument_group("lfads model (defaults: lfadskit.lfads.LFADSConfig)")
    g.add_argument("--config", type=_existing_path, help="JSON file of LFADSConfig fields")
    g.add_argument("--batch-size", type=_positive_int, help="trials per step")
    g.add_argument("--sv-rate", type=_fraction, help="sample-validation rate in [0, 1)")
    g.add_argument(
        "--ramp-epochs", type=_non_negative_int, help="epochs of the KL and L2 weight ramps"
    )
    if not search:
        g.add_argument("--epochs", type=_positive_int, help="maximum training epochs")
        g.add_argument("--patience", type=_positive_int, help="early-stopping patience (epochs)")
        g.add_argument("--lr", type=_positive_float, help="Adam learning rate")
        g.add_argument("--cd-rate", type=_fraction, help="coordinated-dropout rate in [0, 1)")
        g.add_argument("--dropout", type=_fraction, help="dropout rate in [0, 1)")
    g.add_argument("--enc-dim", type=_positive_int, help="units of both encoder GRUs")
    g.add_argument("--gen-dim", type=_positive_int, help="generator units")
    g.add_argument("--fac-dim", type=_positive_int, help="latent factors")
    g.add_argument("--ic-dim", type=_positive_int, help="initial-condition size")
    g.add_argument("--con-dim", type=_positive_int, help="controller units")
    g.add_argument("--co-dim", type=_non_negative_int, help="inferred inputs (0: no controller)")
    g.add_argument(
        "--metric",
        choices=["valid_nll", "sv_nll"],
        help="selection metric (sv_nll needs --sv-rate)",
    )
    g.add_argument("--n-samples", type=_positive_int, help="posterior samples at inference")
    g.add_argument("--seed", type=int, help="random seed")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")


def _add_load_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("NWB recordings (.nwb)")
    g.add_argument("--align", help="trials-table column to align to (default move_onset_time)")
    g.add_argument(
        "--window",
        nargs=2,
        type=float,
        metavar=("START", "STOP"),
        help="window around the alignment time, seconds (default -0.25 0.45)",
    )
    g.add_argument("--bin-size", type=_positive_float, help="bin width in seconds")
    g.add_argument(
        "--heldout",
        help="held-out units: a fraction (0.2), unit ids (3,7,9) or a boolean units column",
    )
    g.add_argument("--behavior", help="time series to attach as behavior (e.g. hand_vel)")
    g.add_argument("--behavior-lag", type=float, help="behavior lag in seconds")
    g.add_argument("--split-column", help="trials-table column with train/val labels")
    g.add_argument(
        "--continuous",
        action="store_true",
        help="a recording without trials: chop into overlapping segments, merge rates back",
    )
    g.add_argument("--segment", type=_positive_float, help="segment length, seconds (1.0)")
    g.add_argument("--overlap", type=float, help="segment overlap, seconds (0.2)")


# ---------------------------------------------------------------------------- fit
def _add_fit(sub) -> None:
    p = sub.add_parser(
        "fit",
        help="fit a model to a dataset and write a run directory",
        description="Fit a model on the train trials of DATA (selection on the valid trials), "
        "infer rates for every trial and write RUN_DIR: config.json, outputs.h5 (rates, and "
        "for lfads factors, inferred inputs and initial conditions, per split), metrics.json, "
        "history.csv and the model (lfads.json, weights.pt; LFADS.load(RUN_DIR)).",
    )
    p.add_argument("data", type=_existing_path, help="dataset file or NLB directory")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument(
        "--model",
        choices=["lfads", "smoothing"],
        default="lfads",
        help="lfads (default): the sequential autoencoder; smoothing: Gaussian spike smoothing "
        "+ Poisson GLM to held-out neurons (the baseline every model must beat)",
    )
    _add_lfads_options(p)
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/checkpoint.pt")
    g = p.add_argument_group("smoothing model")
    g.add_argument(
        "--kernel-sd",
        help="Gaussian kernel standard deviation in seconds, or 'auto' to choose it by "
        "cross-validation on the train trials (default: 0.07)",
    )
    g.add_argument("--alpha", type=float, help="GLM L2 penalty (default: 0.1)")
    _add_load_options(p)
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=commands.cmd_fit)


# ---------------------------------------------------------------------------- evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="recompute every metric of a run directory",
        description="Recompute every metric the data allows (co_bps, fp_bps, vel_r2, psth_r2, "
        "rate_r2, nll, bps) for a run, print a table and rewrite RUN_DIR/metrics.json.",
    )
    p.add_argument("run_dir", type=_existing_path, help="run directory written by fit")
    p.add_argument("--data", type=_existing_path, help="dataset, if it moved since the fit")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=commands.cmd_evaluate)


# ---------------------------------------------------------------------------- search
def _add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="hyperparameter search: population based training or random search",
        description="Search LFADS hyperparameters on DATA with population based training "
        "(AutoLFADS: binary tournament + log-symmetric exploration) or random search, all "
        "members of a population trained together, vectorized. Writes RUN_DIR/search/ "
        "(space.json, generations.csv or results.csv, checkpoint.pt) and exports the best "
        "model as an ordinary run directory (RUN_DIR/config.json, outputs.h5, metrics.json, "
        "best/ for LFADS.load).",
    )
    p.add_argument("data", type=_existing_path, help="dataset file or NLB directory")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument("--method", choices=["pbt", "random"], default="pbt", help="default pbt")
    p.add_argument(
        "--population",
        type=_positive_int,
        default=None,
        help="members trained together (default: 20 for pbt, 8 for random)",
    )
    p.add_argument("--generations", type=_positive_int, default=50, help="pbt generations (50)")
    p.add_argument(
        "--epochs-per-generation",
        type=_positive_int,
        default=25,
        help="pbt epochs per generation (25)",
    )
    p.add_argument(
        "--burn-in",
        type=_non_negative_int,
        help="pbt epochs before the first generation ends (default: the KL/L2 ramp length)",
    )
    p.add_argument("--n-configs", type=_positive_int, default=20, help="random configs (20)")
    p.add_argument(
        "--start-from-config",
        action="store_true",
        help="member 0 (pbt) or configuration 0 (random) takes the model options' "
        "hyperparameters (the defaults unless --config or options change them) instead of a "
        "random draw",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="change the search space: lr=1e-4:1e-2:log (range), dropout=0.2 (fixed); repeatable",
    )
    p.add_argument("--space", type=_existing_path, help="JSON file of search-space changes")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/search")
    _add_lfads_options(p, search=True)
    _add_load_options(p)
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=commands.cmd_search)


# ---------------------------------------------------------------------------- report
def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN_DIR/report.html, one self-contained file with figures",
        description="Write RUN_DIR/report.html for a fit or a search: metrics, training "
        "curves, search trajectories and lineage, inferred vs true rates, latent trajectories "
        "and decoded behavior (as far as the run and its data allow). One file, figures "
        "embedded, no network access needed to view it.",
    )
    p.add_argument("run_dir", type=_existing_path, help="run directory written by fit or search")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=commands.cmd_report)


# ---------------------------------------------------------------------------- demo
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate Lorenz data, run a small PBT with CD + SV, evaluate, write a report",
        description="The whole workflow on simulated data with ground truth, in a few minutes "
        "on a laptop: simulate Lorenz data, fit the spike-smoothing baseline, run a small "
        "population based training with coordinated dropout and sample validation, evaluate "
        "the best model against the true rates and write OUT/pbt/report.html.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_run"), help="folder (demo_run)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=commands.cmd_demo)


# ---------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lfadskit",
        description="Fit LFADS sequential autoencoders to spiking data, with coordinated "
        "dropout, sample validation and hyperparameter search.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_simulate(sub)
    _add_fit(sub)
    _add_search(sub)
    _add_evaluate(sub)
    _add_report(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from lfadskit.data import DataError
    from lfadskit.runs import RunError

    args = build_parser().parse_args(argv)

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except (UsageError, DataError, RunError, OSError, ValueError) as err:
        print(f"lfadskit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"lfadskit {args.command}: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Warnings for people, not developers: one line, no source excerpt.
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
