"""Run directories: what a fit leaves on disk, and re-evaluating it.

A run directory holds::

    config.json    model name, its parameters, the data source and load options
    outputs.h5     one group per split ("train", "valid"): trial_idx, rates and any other
                   per-trial outputs (factors, inferred inputs, initial conditions); at the
                   top level, outputs that are not per trial (continuous_rates)
    metrics.json   {"train": {...}, "valid": {...}} from lfadskit.evaluation.evaluate_rates
    history.csv    per-epoch training history (LFADS fits)

Every file is written atomically (temporary file in the same folder, then rename), so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from lfadskit.data import SpikeData

__all__ = [
    "atomic_path",
    "write_json",
    "read_json",
    "write_outputs",
    "read_outputs",
    "write_run",
    "write_history",
    "write_csv",
    "evaluate_run",
    "RunError",
]

CONFIG = "config.json"
OUTPUTS = "outputs.h5"
METRICS = "metrics.json"


class RunError(ValueError):
    """A run directory is missing or incomplete."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing metric is null
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically. NaN/inf become null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` ``obj`` to ``path``, atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err})") from None


def write_outputs(
    path: str | os.PathLike,
    data: SpikeData,
    outputs: Mapping[str, np.ndarray],
    extra: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write per-trial outputs (first axis = all trials of ``data``) split by split.

    Parameters
    ----------
    path : path of the HDF5 file
    data : SpikeData whose ``train_idx`` / ``valid_idx`` define the groups
    outputs : mapping name -> array with ``data.n_trials`` rows, e.g. ``{"rates": rates}``
    extra : mapping name -> array not per trial (e.g. ``continuous_rates`` of a recording
        merged back from its segments), stored at the top level of the file
    """
    if "rates" not in outputs:
        raise ValueError("outputs: a 'rates' array is required")
    for name, arr in outputs.items():
        if np.shape(arr)[0] != data.n_trials:
            raise ValueError(
                f"outputs[{name!r}]: first axis has {np.shape(arr)[0]} rows, "
                f"expected one per trial ({data.n_trials})"
            )
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["n_trials"] = data.n_trials
        f.attrs["rates_unit"] = "expected spikes per bin"
        f.attrs["bin_size"] = data.bin_size
        for split in ("train", "valid"):
            idx = data.index(split)
            group = f.create_group(split)
            group.create_dataset("trial_idx", data=idx)
            for name, arr in outputs.items():
                group.create_dataset(name, data=np.asarray(arr)[idx], compression="gzip")
        for name, arr in (extra or {}).items():
            f.create_dataset(name, data=np.asarray(arr), compression="gzip")


def read_outputs(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read ``outputs.h5`` back: all-trial arrays (rows in original trial order) and extras."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: not found")
    with h5py.File(path, "r") as f:
        n_trials = int(f.attrs["n_trials"])
        names = [k for k in f["train"] if k != "trial_idx"]
        result: dict[str, np.ndarray] = {}
        for name in names:
            first = f["train"][name]
            full = np.full((n_trials, *first.shape[1:]), np.nan, dtype=first.dtype)
            for split in ("train", "valid"):
                full[f[split]["trial_idx"][()]] = f[split][name][()]
            result[name] = full
        for name in f:
            if isinstance(f[name], h5py.Dataset):
                result[name] = f[name][()]
    return result


def write_history(path: str | os.PathLike, history: Sequence[Mapping[str, Any]]) -> None:
    """Write per-epoch records (dicts of numbers) as a CSV with one column per key, atomically.

    Lists (one value per population member) are written as one row per member with a
    ``member`` column.
    """
    rows: list[dict[str, Any]] = []
    for record in history:
        lengths = {len(v) for v in record.values() if isinstance(v, (list, tuple))}
        n_members = max(lengths, default=0)
        if n_members == 0:
            rows.append(dict(record))
            continue
        for member in range(n_members):
            row = {"member": member}
            for key, value in record.items():
                row[key] = value[member] if isinstance(value, (list, tuple)) else value
            rows.append(row)
    write_csv(path, rows, _jsonable)


def write_csv(
    path: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    encode: Callable[[Any], Any] = _jsonable,
) -> None:
    """Write rows (dicts) as a CSV with a header, atomically.

    The columns are the keys in order of first appearance; a key missing from a row leaves
    its cell empty; every value is passed through ``encode`` before ``csv`` formats it.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "t.csv"
    >>> write_csv(path, [{"a": 1, "b": 0.5}, {"a": 2, "c": "x"}])
    >>> path.read_text().splitlines()
    ['a,b,c', '1,0.5,', '2,,x']
    """
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: encode(v) for k, v in row.items()} for row in rows)


def write_run(
    run_dir: str | os.PathLike,
    *,
    data: SpikeData,
    model: str,
    params: Mapping[str, Any],
    outputs: Mapping[str, np.ndarray],
    metrics: Mapping[str, Any],
    extra: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a complete run directory (config, outputs, metrics) and return its path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    source = data.meta.get("source")
    config = {
        "model": model,
        "params": dict(params),
        "data": {
            "source": str(Path(source).resolve()) if source else None,
            "layout": data.meta.get("layout"),
            "load_options": dict(data.meta.get("load_options", {})),
            "summary": data.summary(),
        },
    }
    write_json(run_dir / CONFIG, config)
    write_outputs(run_dir / OUTPUTS, data, outputs, extra)
    write_json(run_dir / METRICS, metrics)
    return run_dir


def evaluate_run(
    run_dir: str | os.PathLike,
    data_path: str | os.PathLike | None = None,
    loader: Callable[..., SpikeData] | None = None,
) -> dict[str, dict[str, float]]:
    """Recompute every metric the data allows for a run and rewrite its ``metrics.json``.

    Parameters
    ----------
    run_dir : the run directory
    data_path : the dataset, when it moved since the fit (default: the source in config.json)
    loader : function ``(path, **load_options) -> SpikeData`` (default ``lfadskit.load``)
    """
    from lfadskit.evaluation import evaluate_rates

    if loader is None:
        from lfadskit.formats import load as loader
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    config = read_json(run_dir / CONFIG)
    source = data_path or config.get("data", {}).get("source")
    if not source:
        raise RunError(f"{run_dir / CONFIG}: no data source recorded; pass the data path")
    data = loader(source, **config["data"].get("load_options", {}))
    rates = read_outputs(run_dir / OUTPUTS)["rates"]
    if rates.shape != data.recon_shape:
        raise RunError(
            f"{run_dir / OUTPUTS}: rates have shape {rates.shape} but the data {source} "
            f"needs {data.recon_shape}; is this the dataset the run was fitted on?"
        )
    metrics = evaluate_rates(data, rates)
    write_json(run_dir / METRICS, metrics)
    return metrics
