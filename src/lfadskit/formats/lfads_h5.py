"""Read and write the LFADS HDF5 layout used by lfads-torch (and the original LFADS).

Keys, for each split ``s`` in ``train`` and ``valid`` (arrays are trial x time x neuron):

- ``s_encod_data`` (n, T, N): encoder input -> ``spikes``;
- ``s_recon_data`` (n, T_out, N_out): reconstruction target. lfadskit requires its held-in
  part ``recon[:, :T, :N]`` to equal the encoder input; ``recon[:, :T, N:]`` -> ``heldout``
  and ``recon[:, T:, :]`` -> ``forward``;
- optional ``s_inds``: original trial numbers, used to order the trials;
- optional ``s_truth``: ground-truth rates, same shape as ``s_recon_data``. As lfads-torch
  does, the stored values are divided by ``conversion_factor`` (a dataset or attribute;
  1 when absent) and the result is taken to be in **expected spikes per bin**;
- optional ``s_ext_input`` and ``s_behavior`` (trial x time x dims), and ``s_conditions``
  (one integer per trial, an lfadskit addition that lfads-torch ignores).

The older single-array form (``train_data``/``valid_data``, input = target) is read too.
``test_*`` arrays are not read (SpikeData has only train and valid splits); a warning says
so. Files written here also carry the attributes ``bin_size``, ``name`` and ``meta`` (JSON).

Examples
--------
>>> import numpy as np, tempfile, os
>>> from lfadskit.data import SpikeData
>>> counts = np.random.default_rng(0).poisson(2.0, size=(10, 8, 4))
>>> data = SpikeData(spikes=counts[:, :6, :3], heldout=counts[:, :6, 3:],
...                  forward=counts[:, 6:, :])
>>> path = os.path.join(tempfile.mkdtemp(), "lfads.h5")
>>> write_lfads(data, path)
>>> np.array_equal(read_lfads(path).recon, data.recon)
True
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

from lfadskit.data import DataError, SpikeData
from lfadskit.formats.native import read_h5_meta, write_h5_meta

__all__ = ["LFADS_KEYS", "is_lfads_keys", "read_lfads", "write_lfads"]

logger = logging.getLogger("lfadskit")

LFADS_KEYS = ("train_encod_data", "train_recon_data", "valid_encod_data", "valid_recon_data")
_LEGACY_KEYS = ("train_data", "valid_data")
SPLITS = ("train", "valid")
_OPTIONAL = ("truth", "ext_input", "behavior", "conditions", "inds")


def is_lfads_keys(keys) -> bool:
    """True when an HDF5 file's top-level ``keys`` mark the LFADS layout."""
    return "train_encod_data" in keys or all(k in keys for k in _LEGACY_KEYS)


def _first_difference(a: np.ndarray, b: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(a != b)[0])


def _read_split(h5: h5py.File, split: str, where: str) -> dict:
    """Arrays of one split, with ``encod``/``recon`` split into the SpikeData fields."""
    if f"{split}_encod_data" in h5:
        encod = h5[f"{split}_encod_data"][()]
        if f"{split}_recon_data" not in h5:
            raise DataError(
                f"{where}: {split}_encod_data without {split}_recon_data; LFADS files need "
                f"both (write the reconstruction target, equal to the input if nothing else)"
            )
        recon = h5[f"{split}_recon_data"][()]
    elif f"{split}_data" in h5:
        encod = recon = h5[f"{split}_data"][()]
    else:
        raise DataError(
            f"{where}: no {split}_encod_data (keys seen: {sorted(h5.keys())}); LFADS files "
            f"hold {', '.join(LFADS_KEYS)}"
        )
    for key, arr in ((f"{split}_encod_data", encod), (f"{split}_recon_data", recon)):
        if arr.ndim != 3:
            raise DataError(f"{key}: expected trial x time x neuron, got shape {arr.shape}")
    (n, n_t, n_in), (n_r, n_t_out, n_out) = encod.shape, recon.shape
    if n_r != n or n_t_out < n_t or n_out < n_in:
        raise DataError(
            f"{split}_recon_data: shape {recon.shape} does not fit {split}_encod_data "
            f"{encod.shape}; it needs the same trials and at least as many bins and neurons"
        )
    window = recon[:, :n_t, :n_in]
    if not np.array_equal(window, encod):
        raise DataError(
            f"{split}_recon_data: its held-in part recon[:, :{n_t}, :{n_in}] differs from "
            f"{split}_encod_data (first at trial, time, neuron {_first_difference(window, encod)});"
            " lfadskit requires the reconstruction target's held-in part to equal the encoder "
            "input (held-out neurons after the input neurons, forward bins after the window)"
        )
    arrays = {
        "spikes": encod,
        "heldout": recon[:, :n_t, n_in:] if n_out > n_in else None,
        "forward": recon[:, n_t:, :] if n_t_out > n_t else None,
    }
    for key in _OPTIONAL:
        full = f"{split}_{key}"
        arrays[key] = h5[full][()] if full in h5 else None
        if arrays[key] is not None and arrays[key].shape[:1] != (n,):
            raise DataError(f"{full}: has {arrays[key].shape[0]} trials, {split} has {n}")
    if arrays["truth"] is not None and arrays["truth"].shape != recon.shape:
        raise DataError(
            f"{split}_truth: shape {arrays['truth'].shape} differs from {split}_recon_data "
            f"{recon.shape}; lfadskit needs ground-truth rates for every target element"
        )
    return arrays


def _conversion_factor(h5: h5py.File, override: float | None) -> float:
    if override is not None:
        factor = float(override)
    elif "conversion_factor" in h5:
        factor = float(np.asarray(h5["conversion_factor"][()]).reshape(-1)[0])
    elif "conversion_factor" in h5.attrs:
        factor = float(np.asarray(h5.attrs["conversion_factor"]).reshape(-1)[0])
    else:
        factor = 1.0
    if not np.isfinite(factor) or factor <= 0:
        raise DataError(f"conversion_factor: must be a positive number, got {factor}")
    return factor


def _trial_order(parts: dict, where: str) -> tuple[np.ndarray, dict]:
    """Order of the concatenated train+valid trials, and the split indices after ordering."""
    n = {s: parts[s]["spikes"].shape[0] for s in SPLITS}
    has_inds = [parts[s]["inds"] is not None for s in SPLITS]
    if not any(has_inds):
        order = np.arange(n["train"] + n["valid"])
    elif not all(has_inds):
        raise DataError(f"{where}: has only one of train_inds and valid_inds; give both or neither")
    else:
        inds = np.concatenate([np.asarray(parts[s]["inds"]).reshape(-1) for s in SPLITS])
        if not np.issubdtype(inds.dtype, np.integer) and not np.array_equal(inds, np.round(inds)):
            raise DataError(f"{where}: train_inds/valid_inds must hold integer trial numbers")
        if np.unique(inds).size != inds.size:
            raise DataError(f"{where}: train_inds and valid_inds repeat a trial number")
        order = np.argsort(inds, kind="stable")
    # position[i] = where concatenated trial i lands after ordering
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    split_idx = {
        "train_idx": np.sort(position[: n["train"]]),
        "valid_idx": np.sort(position[n["train"] :]),
    }
    return order, split_idx


def read_lfads(
    path: str | os.PathLike,
    bin_size: float | None = None,
    conversion_factor: float | None = None,
) -> SpikeData:
    """Read an LFADS / lfads-torch HDF5 file.

    Parameters
    ----------
    path : str or PathLike
        The ``.h5`` file.
    bin_size : float, optional
        Bin width in seconds; default the file's ``bin_size`` attribute, else 0.005.
    conversion_factor : float, optional
        Divisor that turns stored truth into expected spikes per bin; default the file's
        ``conversion_factor``, else 1.

    Returns
    -------
    SpikeData
        Trials ordered by ``train_inds``/``valid_inds`` when present, else train then valid.
    """
    where = str(path)
    try:
        with h5py.File(path, "r") as h5:
            parts = {s: _read_split(h5, s, where) for s in SPLITS}
            factor = _conversion_factor(h5, conversion_factor)
            test_keys = sorted(k for k in h5 if k.startswith("test_"))
            attrs = {k: h5.attrs[k] for k in ("bin_size", "name") if k in h5.attrs}
            meta = read_h5_meta(h5, where) or {}
    except OSError as err:
        raise DataError(f"{where}: cannot read as HDF5 ({err}); the file is corrupt") from err
    if test_keys:
        logger.warning(
            "%s: test trials not loaded (%s); lfadskit keeps train and valid splits only",
            where,
            ", ".join(test_keys),
        )
    order, split_idx = _trial_order(parts, where)
    fields = {}
    for key in ("spikes", "heldout", "forward", "truth", "ext_input", "behavior", "conditions"):
        present = [parts[s][key] is not None for s in SPLITS]
        if not any(present):
            continue
        if not all(present):
            have = SPLITS[present.index(True)]
            lacks = SPLITS[present.index(False)]
            name = {"spikes": "encod_data", "heldout": "recon_data", "forward": "recon_data"}
            raise DataError(
                f"{where}: {have}_{name.get(key, key)} has {key} but {lacks} does not; "
                "both splits need the same fields and shapes"
            )
        try:
            joined = np.concatenate([parts[s][key] for s in SPLITS], axis=0)
        except ValueError as err:
            raise DataError(
                f"{where}: train and valid {key} shapes differ ({err}); both splits need the "
                "same bins and neurons"
            ) from err
        fields[key] = joined[order]
    if "truth" in fields and factor != 1.0:
        fields["truth"] = fields["truth"] / factor
    if bin_size is not None:
        fields["bin_size"] = bin_size
    elif "bin_size" in attrs:
        fields["bin_size"] = float(np.asarray(attrs["bin_size"]))
    else:
        logger.info("%s: no bin_size stored; assuming 5 ms (pass bin_size= to change)", where)
    if "name" in attrs:
        fields["name"] = str(attrs["name"])
    if "truth" in fields and factor != 1.0:
        meta["truth_conversion_factor"] = factor
    return SpikeData(**fields, **split_idx, meta=meta)


def write_lfads(data: SpikeData, path: str | os.PathLike) -> None:
    """Write ``data`` in the LFADS HDF5 layout that lfads-torch reads.

    The reconstruction target is ``data.recon``; it must be fully observed because the
    layout has no way to mark missing values. Trials are written by split with their
    indices in ``train_inds``/``valid_inds``; truth is written in expected spikes per bin
    with ``conversion_factor = 1``. Not atomic by itself; use :func:`lfadskit.formats.save`.

    Parameters
    ----------
    data : SpikeData
    path : str or PathLike
        Target ``.h5`` file.
    """
    in_split = np.zeros(data.n_trials, dtype=bool)
    in_split[data.train_idx] = in_split[data.valid_idx] = True
    if not in_split.all():
        raise DataError(
            f"train_idx/valid_idx: trials {np.flatnonzero(~in_split)[:5].tolist()} are in "
            "neither split; the LFADS layout stores train and valid trials only; put every "
            "trial in a split (data.with_split) or save in the lfadskit layout"
        )
    for key in ("heldout", "forward"):
        value = getattr(data, key)
        if value is not None and np.isnan(value).any():
            trials = np.flatnonzero(np.isnan(value).any(axis=(1, 2)))
            raise DataError(
                f"{key}: NaN (unobserved) in {trials.size} trial(s), first {trials[:5].tolist()}"
                "; the LFADS layout cannot mark missing targets; drop those trials or save in "
                "the lfadskit layout"
            )
    recon = data.recon
    with h5py.File(Path(path), "w") as h5:
        for split in SPLITS:
            idx = data.index(split)
            arrays = {
                "encod_data": data.spikes[idx],
                "recon_data": recon[idx],
                "inds": idx,
                "truth": None if data.truth is None else data.truth[idx],
                "ext_input": None if data.ext_input is None else data.ext_input[idx],
                "behavior": None if data.behavior is None else data.behavior[idx],
                "conditions": None if data.conditions is None else data.conditions[idx],
            }
            for key, value in arrays.items():
                if value is not None:
                    kwargs = {"compression": "gzip", "shuffle": True} if value.ndim > 1 else {}
                    h5.create_dataset(f"{split}_{key}", data=value, **kwargs)
        if data.truth is not None:
            # lfads-torch divides truth by this; 1 keeps it in expected spikes per bin.
            h5.create_dataset("conversion_factor", data=1.0)
        h5.attrs["bin_size"] = data.bin_size
        h5.attrs["name"] = data.name
        write_h5_meta(h5, data.meta)
