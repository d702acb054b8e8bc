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

import base64
import csv
import html
import io
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import r2_score

from lfadskit import plot
from lfadskit.data import SpikeData
from lfadskit.metrics import DEFAULT_ALPHAS
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

# Metric key -> (meaning, better direction), in table order.
_METRICS = {
    "co_bps": ("co-smoothing, held-out neurons (bits/spike)", "higher"),
    "fp_bps": ("forward prediction (bits/spike)", "higher"),
    "vel_r2": ("velocity decoding R²", "higher"),
    "psth_r2": ("PSTH R²", "higher"),
    "rate_r2": ("R² of rates against ground truth", "higher"),
    "bps": ("all recon targets (bits/spike)", "higher"),
    "nll": ("Poisson NLL per element", "lower"),
}
_MISSING = {"", "nan", "none", "null", "na"}
_BOOLEAN = {"true": 1.0, "false": 0.0}
_MAIN_OUTPUTS = ("rates", "factors")
_FIGURE_RUN = re.compile(r"((?:<figure>.*?</figure>)+)")

_CSS = """
body{margin:0;background:#f3f4f6;color:#111827;
 font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1160px;margin:0 auto;padding:24px 28px 48px}
header{background:#1e3a8a;color:#fff;padding:22px 28px}
header .inner{max-width:1160px;margin:0 auto}
header h1{margin:0 0 6px;font-size:22px;font-weight:600}
header p{margin:2px 0;color:#dbeafe}
header code{color:#fff}
nav{margin-top:12px}
nav a{color:#fff;margin-right:14px;font-size:13px;text-decoration:none;
 border-bottom:1px solid #93c5fd}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;
 padding:16px 22px;margin:18px 0}
h2{font-size:17px;margin:0 0 10px;color:#1e3a8a}
h3{font-size:14px;margin:14px 0 6px}
.figs{display:flex;flex-wrap:wrap;gap:6px 28px;align-items:flex-start}
figure{margin:10px 0 4px;min-width:0;max-width:100%}
figure img{max-width:100%;height:auto;display:block}
figcaption{color:#4b5563;font-size:12.5px;margin-top:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 12px;text-align:left}
th{background:#f9fafb;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.notes{background:#fffbeb;border-color:#fcd34d}
.notes li{margin:2px 0}
details summary{cursor:pointer;color:#1e3a8a;font-weight:600}
.muted{color:#6b7280}
"""


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


# ---------------------------------------------------------------- behavior decoding
def decode_behavior(
    rates, behavior, train_idx, eval_idx, alphas=DEFAULT_ALPHAS
) -> tuple[np.ndarray, float]:
    """Fit a ridge decoder from rates to behavior on some trials and predict others.

    The decoder is the one of :func:`lfadskit.metrics.velocity_r2` (samples = trials x bins,
    alpha chosen by 5-fold unshuffled CV on mean R², refit on all fit samples; computed here
    in closed form), so the R² returned equals
    ``velocity_r2(rates[train_idx], behavior[train_idx], rates[eval_idx], behavior[eval_idx])``.

    Parameters
    ----------
    rates : array (n_trials, n_timesteps, n_neurons)
        Expected spikes per bin, aligned with ``behavior``.
    behavior : array (n_trials, n_timesteps, n_behavior)
        NaN samples are left out of the fit and the score.
    train_idx, eval_idx : arrays of int
        Trials to fit on and to predict.
    alphas : sequence of float
        Ridge penalties searched.

    Returns
    -------
    decoded : array (len(eval_idx), n_timesteps, n_behavior)
    r2 : float
        R² on the observed eval samples, averaged over behavior dims.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.poisson(2.0, size=(20, 30, 4)).astype(float)
    >>> behavior = rates @ np.array([[1.0], [-1.0], [0.5], [0.0]])
    >>> decoded, r2 = decode_behavior(rates, behavior, np.arange(15), np.arange(15, 20))
    >>> decoded.shape, r2 > 0.99
    ((5, 30, 1), True)
    """
    rates = np.asarray(rates, dtype=np.float64)
    behavior = np.asarray(behavior, dtype=np.float64)
    if rates.ndim != 3 or behavior.ndim != 3 or rates.shape[:2] != behavior.shape[:2]:
        raise ValueError(
            f"rates {rates.shape} and behavior {behavior.shape}: expected (n_trials, "
            "n_timesteps, n) arrays with the same trials and bins"
        )
    x_fit = rates[train_idx].reshape(-1, rates.shape[2])
    y_fit = behavior[train_idx].reshape(-1, behavior.shape[2])
    keep = np.isfinite(y_fit).all(axis=1)
    if keep.sum() < 5:
        raise ValueError(f"behavior: {int(keep.sum())} observed fit samples; need at least 5")
    coef, intercept = _ridge_cv(x_fit[keep], y_fit[keep], np.asarray(alphas, dtype=float))
    x_eval = rates[eval_idx].reshape(-1, rates.shape[2])
    decoded = (x_eval @ coef + intercept).reshape(len(eval_idx), rates.shape[1], behavior.shape[2])
    y_eval = behavior[eval_idx].reshape(-1, behavior.shape[2])
    seen = np.isfinite(y_eval).all(axis=1)
    r2 = float(r2_score(y_eval[seen], decoded.reshape(-1, behavior.shape[2])[seen]))
    return decoded, r2


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: np.ndarray):
    """Ridge fits with an unpenalized intercept, one per alpha: [(coef, intercept), ...].

    ``coef`` is (n_x, n_y) and ``intercept`` (n_y,); the Gram matrix is formed once.
    """
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc = x - x_mean
    gram, cross = xc.T @ xc, xc.T @ (y - y_mean)
    fits = []
    for alpha in alphas:
        coef = np.linalg.solve(gram + alpha * np.eye(x.shape[1]), cross)
        fits.append((coef, y_mean - x_mean @ coef))
    return fits


def _ridge_cv(x: np.ndarray, y: np.ndarray, alphas: np.ndarray):
    """Ridge with alpha chosen by 5 contiguous folds on mean R², refit on all samples.

    The same choice as sklearn's ``GridSearchCV(Ridge(), alphas, cv=KFold(5))`` used by
    :func:`lfadskit.metrics.velocity_r2`, in closed form: one Gram matrix per fold and a
    small solve per alpha instead of a full estimator fit each (much faster on busy CPUs).
    """
    folds = np.array_split(np.arange(x.shape[0]), 5)
    scores = np.zeros(alphas.size)
    for fold in folds:
        rest = np.setdiff1d(np.arange(x.shape[0]), fold)
        for i, (coef, intercept) in enumerate(_ridge_path(x[rest], y[rest], alphas)):
            scores[i] += r2_score(y[fold], x[fold] @ coef + intercept) / len(folds)
    best = alphas[int(np.argmax(scores))]
    return _ridge_path(x, y, np.array([best]))[0]


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


# ---------------------------------------------------------------- HTML pieces
def _figure_html(fig, caption: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    text = html.escape(caption)
    return (
        f'<figure><img alt="{text}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def _try_figure(notes: list[str], caption: str, func, *args, **kwargs) -> str:
    """A figure's HTML, or an empty string and a note when its inputs cannot be drawn."""
    try:
        return _figure_html(func(*args, **kwargs), caption)
    except (ValueError, KeyError, IndexError) as err:
        notes.append(f"Could not draw '{caption}': {err}")
        return ""


def _label(value: Any) -> str:
    """A member or generation number as text: ``3.0`` -> ``'3'``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, (int, float, np.number)):
        value = float(value)
        if not np.isfinite(value):
            return "—"
        return f"{value:.4g}" if (value != 0 and abs(value) < 1e-3) else f"{value:.4f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, (int, float, np.number)) and not isinstance(cell, bool)
            cls = ' class="num"' if numeric or cell is None else ""
            cells.append(f"<td{cls}>{_format(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    splits = [s for s in ("train", "valid") if isinstance(metrics.get(s), Mapping)]
    keys = [k for k in _METRICS if any(k in metrics[s] for s in splits)]
    keys += sorted({k for s in splits for k in metrics[s]} - set(keys))
    rows = []
    for key in keys:
        meaning, better = _METRICS.get(key, ("", ""))
        arrow = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(better, "")
        rows.append([key, *(metrics[s].get(key) for s in splits), meaning + arrow])
    return _table(["metric", *splits, "meaning"], rows)


def _params_html(params: Mapping[str, Any]) -> str:
    rows = [
        [k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)] for k, v in params.items()
    ]
    return (
        f"<details><summary>Configuration ({len(rows)} parameters)</summary>"
        f"{_table(['parameter', 'value'], rows)}</details>"
    )


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


def _ranked_table(table, rows: np.ndarray, metric: str, columns: list[str], limit=10) -> str:
    """Rows sorted best first by ``metric`` (NaN last), at most ``limit`` of them."""
    values = table[metric][rows]
    lower = plot.is_lower_better(metric)
    key = np.where(np.isfinite(values), values if lower else -values, np.inf)
    order = rows[np.argsort(key, kind="stable")][:limit]
    cells = [
        [_label(table[c][i]) if c in ("member", "rank", "config") else table[c][i] for c in columns]
        for i in order
    ]
    return _table(columns, cells)


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
            _try_figure(
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
    metric = next((c for c in ("metric", "valid_nll", "sv_nll") if c in table), None)
    if metric is None:
        notes.append("generations.csv has no metric column: metric per generation skipped.")
        return "".join(parts)
    parts.append(
        _try_figure(
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
        parts.append(f"<h3>Final generation ({_label(np.nanmax(gen))}), best first</h3>")
        parts.append(_ranked_table(table, last, metric, ["member", metric, *hparams]))
    return "".join(parts)


def _random_html(table: dict[str, np.ndarray], log_scaled, notes: list[str]) -> str:
    metric = next((c for c in ("metric", "valid_nll", "sv_nll") if c in table), None)
    if metric is None or table[metric].dtype.kind != "f":
        notes.append("results.csv has no numeric metric column: the random search is skipped.")
        return ""
    hparams = _search_hparams(table)
    parts = []
    if hparams:
        parts.append(
            _try_figure(
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
    parts.append(_ranked_table(table, rows, metric, [*first, metric, *hparams]))
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
        sections["rates"] = _try_figure(
            notes,
            "Inferred (blue) and true (black) rates of the 4 neurons whose true rate varies "
            "most, on the first valid trials.",
            plot.rates_vs_truth,
            rates,
            data.truth,
            trials=shown,
            bin_size=data.bin_size,
        ) + _try_figure(
            notes,
            f"Inferred vs true rate of every neuron and bin of the {valid.size} valid trials.",
            plot.rates_scatter,
            rates[valid],
            data.truth[valid],
        )
    elif data is not None:
        notes.append("The data has no ground-truth rates: the rate comparison is skipped.")
    if "factors" in outputs:
        sections["latents"] = _try_figure(
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
            sections["behavior"] = _try_figure(
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
                _try_figure(notes, f"{name} of the first trials.", plot.output_traces, values, name)
            )
        elif values.ndim == 2 and not any(w in name for w in ("std", "var")):
            others.append(
                _try_figure(
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
        sections["metrics"] = _metrics_html(read_json(run_dir / METRICS))
    else:
        notes.append("metrics.json is missing: run 'lfadskit evaluate' to compute the metrics.")
    if (run_dir / HISTORY).is_file():
        sections["training"] = _try_figure(
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
    return _page(run_dir, config, is_search, sections, notes)


def _page(run_dir, config, is_search, sections, notes) -> str:
    info = config.get("data") or {}
    kind = "search" if is_search else "fit"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"lfadskit report: {run_dir.resolve().name}"
    shown = [key for key in SECTIONS if sections.get(key)]
    nav = "".join(f'<a href="#{key}">{SECTIONS[key]}</a>' for key in shown)
    header = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Model <code>{html.escape(str(config.get('model', 'unknown')))}</code>, "
        f"{kind} run &middot; written {stamp}</p>",
    ]
    if info.get("summary"):
        header.append(f"<p>Data: {html.escape(str(info['summary']))}</p>")
    if info.get("source"):
        layout = f" ({html.escape(str(info['layout']))} layout)" if info.get("layout") else ""
        header.append(f"<p>Source: <code>{html.escape(str(info['source']))}</code>{layout}</p>")
    header.append(f"<nav>{nav}</nav>")
    body = []
    if config.get("params"):
        body.append(f"<section id='config'>{_params_html(config['params'])}</section>")
    if notes:
        items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
        body.append(f"<section class='notes'><h2>Notes</h2><ul>{items}</ul></section>")
    for key in shown:
        # Consecutive figures flow side by side when they fit.
        content = re.sub(
            r"((?:<figure>.*?</figure>)+)", r"<div class='figs'>\1</div>", sections[key]
        )
        body.append(f"<section id='{key}'><h2>{SECTIONS[key]}</h2>{content}</section>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><div class='inner'>{''.join(header)}</div></header>"
        f"<main>{''.join(body)}</main></body></html>\n"
    )


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
