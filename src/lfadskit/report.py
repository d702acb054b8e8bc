"""The self-contained HTML report of a run directory (a fit or a search).

:func:`write_report` reads what a run directory holds (see :mod:`lfadskit.runs`)::

    config.json              model, parameters, data source and load options
    outputs.h5               rates, and for LFADS factors, inferred inputs, initial conditions
    metrics.json             {"train": {...}, "valid": {...}}
    history.csv              per-epoch training history (optional)
    search/generations.csv   PBT: per generation and member, hyperparameters, metric, parent
    search/results.csv       random search: per configuration, hyperparameters and metric
    search/space.json        the search space (which hyperparameters are log-scaled)

and writes ``report.html`` next to them: one file, figures embedded as base64 PNG, inline CSS,
no script and no external reference, written atomically. Any missing optional piece (a file,
the dataset, ground truth, behavior) skips its section and leaves a note saying why.

Examples
--------
>>> from lfadskit.report import write_report
>>> path = write_report("runs/fit1")  # doctest: +SKIP
>>> path.name  # doctest: +SKIP
'report.html'
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lfadskit import plot
from lfadskit.data import SpikeData
from lfadskit.metrics.decoding import decode_behavior
from lfadskit.plot.common import label_text
from lfadskit.plot.progress import METRIC_COLUMNS
from lfadskit.report_html import metrics_html, page_html, ranked_table, try_figure
from lfadskit.runs import CONFIG, METRICS, OUTPUTS, RunError, atomic_path, read_json, read_outputs

__all__ = ["REPORT", "SECTIONS", "build_report", "decode_behavior", "read_table", "write_report"]

REPORT = "report.html"
HISTORY = "history.csv"
GENERATIONS = Path("search") / "generations.csv"
RESULTS = Path("search") / "results.csv"
SPACE = Path("search") / "space.json"

#: Section id -> title, in page order.
SECTIONS = {
    "metrics": "Metrics",
    "training": "Training curves",
    "search": "Hyperparameter search",
    "rates": "Inferred vs true rates",
    "latents": "Latent trajectories",
    "behavior": "Decoded vs true behavior",
    "outputs": "Other outputs",
}

_MISSING = {"", "nan", "none", "null", "na"}
_BOOLEAN = {"true": 1.0, "false": 0.0}
_MAIN_OUTPUTS = ("rates", "factors")


# ---------------------------------------------------------------- reading
def _parse_cell(text: str) -> float | None:
    """Float value of a CSV cell, NaN for an empty one, None if it is not a number."""
    text = text.strip()
    if text.lower() in _MISSING:
        return float("nan")
    if text.lower() in _BOOLEAN:
        return _BOOLEAN[text.lower()]
    try:
        return float(text)
    except ValueError:
        return None


def read_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV file with a header into columns.

    A column whose cells are all numbers, booleans (``True``/``False``) or empty becomes a
    float array (empty -> NaN, booleans -> 1/0); any other column stays an array of str.

    Parameters
    ----------
    path : path of the CSV file

    Returns
    -------
    dict column name -> 1-D array

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("epoch,loss,parent,status\\n0,1.5,,ok\\n1,1.2,3,ok\\n")
    >>> table = read_table(path)
    >>> table["loss"].tolist(), table["parent"].tolist(), table["status"].tolist()
    ([1.5, 1.2], [nan, 3.0], ['ok', 'ok'])
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: not found")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise RunError(f"{path}: empty CSV file (no header row)")
        rows = list(reader)
        names = [name for name in reader.fieldnames if name]
    table: dict[str, np.ndarray] = {}
    for name in names:
        cells = [row.get(name) or "" for row in rows]
        parsed = [_parse_cell(cell) for cell in cells]
        if all(value is not None for value in parsed):
            table[name] = np.array(parsed, dtype=np.float64)
        else:
            table[name] = np.array(cells, dtype=str)
    return table


def _load_data(config: Mapping[str, Any], notes: list[str]) -> SpikeData | None:
    """The run's dataset, or None with a note when it cannot be loaded."""
    from lfadskit.formats import load

    info = config.get("data") or {}
    source = info.get("source")
    if not source:
        notes.append("config.json records no data source: data-dependent figures are skipped.")
        return None
    if not Path(source).exists():
        notes.append(
            f"The dataset {source} is not there any more: figures that need it (rates vs "
            "truth, decoded behavior, conditions) are skipped."
        )
        return None
    options = dict(info.get("load_options") or {})
    if info.get("layout") and "layout" not in options:
        options["layout"] = info["layout"]
    try:
        return load(source, **options)
    except (OSError, ValueError, ImportError) as err:
        notes.append(f"Could not load the dataset {source}: {err}")
        return None


def _behavior_trials(data: SpikeData, rates: np.ndarray, seed: int = 0):
    """(fit trials, shown trials, how) for decoding: valid trials if they have behavior."""
    usable = np.isfinite(data.behavior).all(axis=(1, 2)) & np.isfinite(rates).all(axis=(1, 2))
    fit = data.train_idx[usable[data.train_idx]]
    shown = data.valid_idx[usable[data.valid_idx]]
    if fit.size >= 2 and shown.size >= 2:
        return fit, shown, "fit on the train trials, shown on valid trials"
    # Valid trials without behavior (e.g. NLB eval trials): hold back some train trials.
    order = np.random.default_rng(seed).permutation(fit)
    n_shown = max(2, int(round(0.2 * order.size)))
    how = f"fit on {order.size - n_shown} train trials, shown on {n_shown} held-back train trials"
    return np.sort(order[n_shown:]), np.sort(order[:n_shown]), how


# ---------------------------------------------------------------- sections
def _log_scaled(run_dir: Path) -> tuple[str, ...]:
    """Hyperparameters sampled in log space: from search/space.json, else plot.LOG_SCALED."""
    path = run_dir / SPACE
    if path.is_file():
        try:
            space = read_json(path)
        except RunError:
            return plot.LOG_SCALED
        if isinstance(space, Mapping):
            return tuple(
                name
                for name, spec in space.items()
                if isinstance(spec, Mapping) and spec.get("sampling") == "log"
            )
    return plot.LOG_SCALED


def _search_hparams(table: Mapping[str, np.ndarray]) -> list[str]:
    from lfadskit.lfads.config import SEARCHABLE

    # Only those that varied: a fixed hyperparameter has nothing to show.
    return [
        h
        for h in SEARCHABLE
        if h in table and table[h].dtype.kind == "f" and np.unique(table[h]).size > 1
    ]


def _pbt_html(table: dict[str, np.ndarray], log_scaled, notes: list[str]) -> str:
    hparams = _search_hparams(table)
    parts = []
    if hparams:
        logs = ", ".join(h for h in hparams if h in log_scaled) or "none"
        parts.append(
            try_figure(
                notes,
                f"Hyperparameters of every member across generations (log axis: {logs}). "
                "Dashed segments: a member copied its parent's weights and hyperparameters, "
                "then explored from there.",
                plot.hparam_trajectories,
                table,
                hparams,
                log_scaled,
            )
        )
    else:
        notes.append("generations.csv has no varying hyperparameter: trajectories skipped.")
    metric = next((c for c in METRIC_COLUMNS if c in table), None)
    if metric is None:
        notes.append("generations.csv has no metric column: metric per generation skipped.")
        return "".join(parts)
    parts.append(
        try_figure(
            notes,
            f"Search metric ({metric}) of every member per generation, with median and best.",
            plot.metric_by_generation,
            table,
            metric,
        )
    )
    gen = table.get("generation")
    if gen is not None and gen.dtype.kind == "f" and "member" in table:
        last = np.flatnonzero(gen == np.nanmax(gen))
        parts.append(f"<h3>Final generation ({label_text(np.nanmax(gen))}), best first</h3>")
        parts.append(ranked_table(table, last, metric, ["member", metric, *hparams]))
    return "".join(parts)


def _random_html(table: dict[str, np.ndarray], log_scaled, notes: list[str]) -> str:
    metric = next((c for c in METRIC_COLUMNS if c in table), None)
    if metric is None or table[metric].dtype.kind != "f":
        notes.append("results.csv has no numeric metric column: the random search is skipped.")
        return ""
    hparams = _search_hparams(table)
    parts = []
    if hparams:
        parts.append(
            try_figure(
                notes,
                f"Random search: {metric} of every configuration against each hyperparameter.",
                plot.metric_vs_hparams,
                table,
                metric,
                hparams,
                log_scaled,
            )
        )
    rows = np.arange(len(table[metric]))
    first = [c for c in ("rank",) if c in table]
    parts.append(f"<h3>Best configurations (of {rows.size})</h3>")
    parts.append(ranked_table(table, rows, metric, [*first, metric, *hparams]))
    return "".join(parts)


def _data_sections(
    outputs: dict[str, np.ndarray], data: SpikeData | None, notes: list[str]
) -> dict[str, str]:
    """HTML of the rates, latents, behavior and other-output sections that apply."""
    sections: dict[str, str] = {}
    rates = outputs.get("rates")
    if data is not None and rates is not None and rates.shape != data.recon_shape:
        notes.append(
            f"outputs.h5 rates have shape {rates.shape} but the dataset needs "
            f"{data.recon_shape}: data-dependent figures are skipped."
        )
        data = None
    conditions = None if data is None else data.conditions
    if rates is None:
        notes.append("outputs.h5 has no rates: rate and behavior figures are skipped.")
        data = None
    if data is not None and data.truth is not None:
        shown = data.valid_idx[:3]
        valid = data.valid_idx
        sections["rates"] = try_figure(
            notes,
            "Inferred (blue) and true (black) rates of the 4 neurons whose true rate varies "
            "most, on the first valid trials.",
            plot.rates_vs_truth,
            rates,
            data.truth,
            trials=shown,
            bin_size=data.bin_size,
        ) + try_figure(
            notes,
            f"Inferred vs true rate of every neuron and bin of the {valid.size} valid trials.",
            plot.rates_scatter,
            rates[valid],
            data.truth[valid],
        )
    elif data is not None:
        notes.append("The data has no ground-truth rates: the rate comparison is skipped.")
    if "factors" in outputs:
        sections["latents"] = try_figure(
            notes,
            "Factors of every trial projected on their top principal components.",
            plot.latent_trajectories,
            outputs["factors"],
            conditions,
        )
    else:
        notes.append(
            "outputs.h5 has no factors (only LFADS runs have them): latent trajectories skipped."
        )
    if data is not None and data.behavior is not None and rates is not None:
        in_window = rates[:, : data.n_timesteps]
        fit, shown, how = _behavior_trials(data, in_window)
        try:
            decoded, r2 = decode_behavior(in_window, data.behavior, fit, shown)
        except ValueError as err:
            notes.append(f"Behavior decoding failed: {err}")
        else:
            names = ["x", "y", "z"][: data.behavior.shape[2]]
            if data.behavior.shape[2] > 3:
                names = None
            sections["behavior"] = try_figure(
                notes,
                f"Ridge decoder from inferred rates to behavior ({how}); R² = {r2:.3f}.",
                plot.decoded_behavior,
                decoded,
                data.behavior[shown],
                trials=range(min(3, shown.size)),
                names=names,
                r2=r2,
                bin_size=data.bin_size,
                trial_ids=shown,
            )
    elif data is not None:
        notes.append("The data has no behavior: decoded behavior is skipped.")
    others = []
    # Time courses (inferred inputs) before per-trial vectors (initial conditions).
    for name, values in sorted(outputs.items(), key=lambda item: -item[1].ndim):
        if name in _MAIN_OUTPUTS:
            continue
        if values.ndim == 3:
            others.append(
                try_figure(notes, f"{name} of the first trials.", plot.output_traces, values, name)
            )
        elif values.ndim == 2 and not any(w in name for w in ("std", "var")):
            others.append(
                try_figure(
                    notes,
                    f"{name} of every trial, top two principal components.",
                    plot.output_pca,
                    values,
                    name,
                    conditions,
                )
            )
    if any(others):
        sections["outputs"] = "".join(others)
    return sections


# ---------------------------------------------------------------- the page
def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    expected = [CONFIG, OUTPUTS, METRICS, HISTORY, str(GENERATIONS), str(RESULTS)]
    if not any((run_dir / name).is_file() for name in expected):
        raise RunError(
            f"{run_dir}: not a run directory (none of {', '.join(expected)} is there); pass "
            "the folder written by 'lfadskit fit' or 'lfadskit search'"
        )


def build_report(run_dir: str | os.PathLike) -> str:
    """The HTML text of the report of ``run_dir`` (see :func:`write_report`)."""
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    notes: list[str] = []
    sections: dict[str, str] = {}
    config: dict[str, Any] = {}
    if (run_dir / CONFIG).is_file():
        config = read_json(run_dir / CONFIG)
    else:
        notes.append("config.json is missing: model, parameters and data are unknown.")
    if (run_dir / METRICS).is_file():
        sections["metrics"] = metrics_html(read_json(run_dir / METRICS))
    else:
        notes.append("metrics.json is missing: run 'lfadskit evaluate' to compute the metrics.")
    if (run_dir / HISTORY).is_file():
        sections["training"] = try_figure(
            notes,
            "Per-epoch training history.",
            plot.training_curves,
            read_table(run_dir / HISTORY),
        )
    else:
        notes.append("history.csv is missing: no training curves.")
    is_search = (run_dir / GENERATIONS).is_file() or (run_dir / RESULTS).is_file()
    if is_search:
        log_scaled = _log_scaled(run_dir)
        parts = []
        if (run_dir / GENERATIONS).is_file():
            parts.append(_pbt_html(read_table(run_dir / GENERATIONS), log_scaled, notes))
        if (run_dir / RESULTS).is_file():
            parts.append(_random_html(read_table(run_dir / RESULTS), log_scaled, notes))
        sections["search"] = "".join(parts)
    data = _load_data(config, notes) if config else None
    if (run_dir / OUTPUTS).is_file():
        sections.update(_data_sections(read_outputs(run_dir / OUTPUTS), data, notes))
    else:
        notes.append("outputs.h5 is missing: no rates, latents or behavior figures.")
    return page_html(run_dir, config, is_search, sections, notes, SECTIONS)


def write_report(run_dir: str | os.PathLike) -> Path:
    """Write ``RUN_DIR/report.html``, a single self-contained HTML file, atomically.

    Parameters
    ----------
    run_dir : path of a run directory written by a fit or a search

    Returns
    -------
    Path
        The report file.

    Raises
    ------
    RunError
        ``run_dir`` does not exist or holds none of the files of a run.

    Examples
    --------
    >>> write_report("runs/fit1")  # doctest: +SKIP
    PosixPath('runs/fit1/report.html')
    """
    run_dir = Path(run_dir)
    text = build_report(run_dir)
    target = run_dir / REPORT
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        # mkstemp creates 0600 files; a report is meant to be shared like any other output.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
    return target
