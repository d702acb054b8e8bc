"""Read the Neural Latents Benchmark tensor HDF5 layout (read only).

NLB ships a dataset as two files, ``<name>_train.h5`` and ``<name>_val.h5`` (made by
``nlb_tools.make_tensors``). Keys used, each trial x time x neuron:

- ``train_spikes_heldin``, ``train_spikes_heldout``: counts of the train trials;
- ``train_spikes_heldin_forward``, ``train_spikes_heldout_forward``: the bins after the window;
- ``train_behavior``: behavior (e.g. hand velocity), trial x time x dims;
- ``eval_spikes_heldin``, ``eval_spikes_heldout``: the evaluation trials (``eval_*_forward``
  and ``eval_behavior`` are read too when a file has them).

One :class:`~lfadskit.data.SpikeData` is built with the train trials first, then the eval
trials; the train trials form the train split and the eval trials the valid split. Parts a
file lacks (held-out counts of test-phase eval trials, forward bins or behavior of the eval
trials) are NaN, which marks them unobserved. The bin width is read from a ``bin_size`` or
``bin_width`` attribute when present, else from the NLB name suffix (``mc_maze_small_20``
means 20 ms bins), else 5 ms.

Examples
--------
>>> data = read_nlb("mc_maze_small/")  # doctest: +SKIP
>>> data.summary()  # doctest: +SKIP
'100 trials (75 train, 25 valid), 140 bins of 5 ms, 107 held-in neurons, ...'
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import h5py
import numpy as np

from lfadskit.data import DataError, SpikeData

__all__ = ["NLB_KEYS", "is_nlb_keys", "nlb_files", "read_nlb"]

logger = logging.getLogger("lfadskit")

NLB_KEYS = ("train_spikes_heldin", "eval_spikes_heldin")
PARTS = ("train", "eval")
_SUFFIX = {"train": "_train.h5", "eval": "_val.h5"}
_BIN_ATTRS = ("bin_size", "bin_width")


def is_nlb_keys(keys) -> bool:
    """True when an HDF5 file's top-level ``keys`` mark the NLB tensor layout."""
    return any(key in keys for key in NLB_KEYS)


def nlb_files(path: str | os.PathLike) -> list[Path]:
    """The NLB files to read for ``path``: a directory, a ``*_train.h5`` or a ``*_val.h5``.

    A directory must hold exactly one ``*_train.h5`` (its ``*_val.h5`` sibling is added when
    present). A ``*_train.h5`` or ``*_val.h5`` path brings in its sibling. Any other file
    is read alone.

    Examples
    --------
    >>> [p.name for p in nlb_files("mc_maze_small/mc_maze_small_val.h5")]  # doctest: +SKIP
    ['mc_maze_small_train.h5', 'mc_maze_small_val.h5']
    """
    path = Path(path)
    if path.is_dir():
        trains = sorted(path.glob("*" + _SUFFIX["train"]))
        if len(trains) != 1:
            seen = sorted(p.name for p in path.iterdir())
            what = "no" if not trains else f"{len(trains)}"
            raise DataError(
                f"{path}: {what} '*_train.h5' files found (files seen: {seen}); an NLB "
                "directory holds one '<name>_train.h5' and its '<name>_val.h5'; pass the "
                "path of the file to load instead"
            )
        path = trains[0]
    name = path.name
    for part, suffix in _SUFFIX.items():
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            train = path.with_name(stem + _SUFFIX["train"])
            val = path.with_name(stem + _SUFFIX["eval"])
            if part == "eval" and not train.is_file():
                raise DataError(
                    f"{path}: the train file {train.name} is missing next to it; the val file "
                    "alone has no train trials to fit on"
                )
            return [p for p in (train, val) if p.is_file()]
    return [path]


def _nlb_name(files: list[Path]) -> str:
    name = files[0].name
    for suffix in _SUFFIX.values():
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return files[0].stem


def _bin_size(files: list[Path], attrs: dict, override: float | None) -> float:
    if override is not None:
        return float(override)
    for key in _BIN_ATTRS:
        if key in attrs:
            value = float(np.asarray(attrs[key]))
            # NLB writes bin widths in ms (5, 20); lfadskit uses seconds.
            return value / 1000.0 if value >= 1.0 else value
    # nlb_tools names a dataset binned at other than 5 ms '<name>_<ms>' (e.g. mc_maze_20).
    match = re.search(r"_(\d+)$", _nlb_name(files))
    if match:
        bin_ms = int(match.group(1))
        logger.info("NLB bin size taken from the file name suffix: %d ms", bin_ms)
        return bin_ms / 1000.0
    return 0.005


def _read_arrays(files: list[Path]) -> tuple[dict, dict]:
    arrays, attrs = {}, {}
    for path in files:
        try:
            with h5py.File(path, "r") as h5:
                keys = list(h5.keys())
                if not is_nlb_keys(keys):
                    raise DataError(
                        f"{path}: not an NLB tensor file (keys seen: {sorted(keys)}); NLB files "
                        f"hold {' or '.join(NLB_KEYS)}"
                    )
                for key in keys:
                    if key in arrays:
                        raise DataError(f"{path}: key {key!r} is also in another file of the pair")
                    if isinstance(h5[key], h5py.Dataset):
                        arrays[key] = h5[key][()]
                attrs.update({k: h5.attrs[k] for k in _BIN_ATTRS if k in h5.attrs})
        except OSError as err:
            raise DataError(f"{path}: cannot read as HDF5 ({err}); the file is corrupt") from err
    return arrays, attrs


def _check_3d(key: str, arr: np.ndarray, n_trials: int | None = None) -> np.ndarray:
    if arr.ndim != 3:
        raise DataError(f"{key}: expected trial x time x neuron, got shape {arr.shape}")
    if n_trials is not None and arr.shape[0] != n_trials:
        raise DataError(f"{key}: has {arr.shape[0]} trials, expected {n_trials}")
    return arr


def _stack(parts: list, width: tuple[int, int]) -> np.ndarray | None:
    """Concatenate per-part arrays on the trial axis; None parts become NaN blocks."""
    if all(p is None for _, p in parts):
        return None
    blocks = []
    for n_trials, arr in parts:
        if arr is None:
            arr = np.full((n_trials, *width), np.nan, dtype=np.float32)
        blocks.append(arr.astype(np.float32))
    return np.concatenate(blocks, axis=0)


def read_nlb(path: str | os.PathLike, bin_size: float | None = None) -> SpikeData:
    """Read NLB tensors (a directory, a ``*_train.h5`` or a ``*_val.h5``) into one SpikeData.

    Parameters
    ----------
    path : str or PathLike
        NLB directory or one file of the pair (the sibling is found automatically).
    bin_size : float, optional
        Bin width in seconds; overrides the stored or default one.

    Returns
    -------
    SpikeData
        Train trials first (train split), then eval trials (valid split). When only a train
        file is present the default seeded split of the train trials is used.

    Examples
    --------
    >>> data = read_nlb("mc_maze_small/mc_maze_small_train.h5")  # doctest: +SKIP
    >>> data.heldout.shape  # doctest: +SKIP
    (100, 140, 35)
    """
    files = nlb_files(path)
    arrays, attrs = _read_arrays(files)
    present = [p for p in PARTS if f"{p}_spikes_heldin" in arrays]
    if "train" not in present:
        raise DataError(
            f"{files[0]}: no train_spikes_heldin (keys seen: {sorted(arrays)}); the train "
            "trials are needed to fit a model"
        )
    heldin = {p: _check_3d(f"{p}_spikes_heldin", arrays[f"{p}_spikes_heldin"]) for p in present}
    n_trials = {p: heldin[p].shape[0] for p in present}
    n_timesteps, n_neurons = heldin["train"].shape[1:]
    for p in present:
        if heldin[p].shape[1:] != (n_timesteps, n_neurons):
            raise DataError(
                f"{p}_spikes_heldin: shape {heldin[p].shape} does not match "
                f"train_spikes_heldin (n_timesteps, n_neurons) = {(n_timesteps, n_neurons)}"
            )

    def get(key: str, part: str) -> np.ndarray | None:
        full = f"{part}_{key}"
        return _check_3d(full, arrays[full], n_trials[part]) if full in arrays else None

    heldout = {p: get("spikes_heldout", p) for p in present}
    n_heldout = next((a.shape[2] for a in heldout.values() if a is not None), 0)
    n_out = n_neurons + n_heldout

    # Forward bins: held-in and held-out columns side by side, NaN for whatever is missing.
    forward = {}
    n_forward = 0
    for p in present:
        fwd_in, fwd_out = get("spikes_heldin_forward", p), get("spikes_heldout_forward", p)
        if fwd_in is None and fwd_out is None:
            forward[p] = None
            continue
        n_bins = (fwd_in if fwd_in is not None else fwd_out).shape[1]
        block = np.full((n_trials[p], n_bins, n_out), np.nan, dtype=np.float32)
        if fwd_in is not None:
            block[:, :, :n_neurons] = fwd_in
        if fwd_out is not None:
            block[:, :, n_neurons:] = fwd_out
        forward[p] = block
        if n_forward and n_bins != n_forward:
            raise DataError(f"{p}_spikes_*_forward: {n_bins} bins, other part has {n_forward}")
        n_forward = n_bins

    behavior = {p: get("behavior", p) for p in present}
    n_behavior = next((a.shape[2] for a in behavior.values() if a is not None), 0)

    def stacked(parts: dict, width: tuple[int, int]) -> np.ndarray | None:
        return _stack([(n_trials[p], parts[p]) for p in present], width)

    ignored = sorted(
        k
        for k in arrays
        if not re.fullmatch(r"(train|eval)_(spikes_held(in|out)(_forward)?|behavior)", k)
    )
    if ignored:
        logger.info("NLB: ignored keys %s", ignored)
    if len(present) == 2:
        n_train = n_trials["train"]
        split = {
            "train_idx": np.arange(n_train),
            "valid_idx": np.arange(n_train, n_train + n_trials["eval"]),
        }
    else:
        logger.info("NLB: no eval trials in %s; using a random split of the train trials", files)
        split = {}
    return SpikeData(
        spikes=np.concatenate([heldin[p] for p in present], axis=0),
        heldout=stacked(heldout, (n_timesteps, n_heldout)) if n_heldout else None,
        forward=stacked(forward, (n_forward, n_out)) if n_forward else None,
        behavior=stacked(behavior, (n_timesteps, n_behavior)) if n_behavior else None,
        bin_size=_bin_size(files, attrs, bin_size),
        name=_nlb_name(files),
        meta={"files": [p.name for p in files]},
        **split,
    )
