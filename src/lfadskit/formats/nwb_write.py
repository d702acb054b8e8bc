"""Write inferred rates and factors back into a copy of an NWB file.

Needs the optional ``nwb`` extra. The copy gets a processing module "lfadskit" with one row per
trial (rates, factors, bin-center timestamps) and one per unit, so users can keep working in
their NWB tools.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lfadskit.data import DataError, SpikeData
from lfadskit.formats.nwb import OUTPUT_MODULE, _pynwb

__all__ = ["write_nwb_outputs"]


# ------------------------------------------------------------------------------ writing
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _per(values, n: int, name: str) -> np.ndarray:
    """``values`` as a 1-D array of ``n`` items (one per trial or neuron)."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected {n} values (one per row of rates), got {arr.shape}")
    return arr


def _output_table(name: str, description: str, columns: dict):
    from hdmf.common import DynamicTable, VectorData

    vectors = [
        VectorData(name=key, description=desc, data=values)
        for key, (desc, values) in columns.items()
    ]
    return DynamicTable(name=name, description=description, columns=vectors)


def write_nwb_outputs(
    source_path: str | os.PathLike,
    out_path: str | os.PathLike,
    rates,
    factors=None,
    *,
    data: SpikeData | None = None,
    bin_size: float | None = None,
    trial_ids=None,
    start_times=None,
    unit_ids=None,
) -> Path:
    """Copy an NWB file and add the inferred rates (and factors) per trial to it.

    The copy gets a processing module "lfadskit" with two tables:

    - ``lfadskit_trials``, one row per trial: ``trial_id``, ``timestamps`` (bin centers in
      the file's time, seconds, (n_trials, n_timesteps)), ``rates`` (expected spikes per bin,
      (n_trials, n_timesteps, n_neurons)) and, when given, ``factors``;
    - ``lfadskit_units``, one row per neuron of the rates' last axis: ``unit_id`` and
      ``heldout`` (held-in units first, as in :func:`load_nwb`).

    The file is written to a temporary name next to ``out_path`` and renamed (atomic).

    Parameters
    ----------
    source_path, out_path : str or PathLike
        The NWB file the data came from, and where to write the copy (may be the same).
    rates : array (n_trials, n_timesteps, n_neurons)
        Inferred rates in expected spikes per bin.
    factors : array (n_trials, n_timesteps, n_factors), optional
    data : SpikeData, optional
        What :func:`load_nwb` returned; supplies ``bin_size``, ``trial_ids``,
        ``start_times`` and ``unit_ids`` from its meta unless they are given.
    bin_size : float
        Bin width in seconds.
    trial_ids : sequence of int (n_trials,)
        Trials-table ids of the trials.
    start_times : sequence of float (n_trials,)
        Left edge of each trial's first bin, in seconds.
    unit_ids : sequence of int (n_neurons,), optional
        Unit id of each neuron of ``rates``.

    Returns
    -------
    Path
        ``out_path``.

    Examples
    --------
    >>> data = load_nwb("session.nwb", heldout=0.2)  # doctest: +SKIP
    >>> write_nwb_outputs("session.nwb", "session_lfads.nwb", rates, data=data)  # doctest: +SKIP
    """
    pynwb = _pynwb()
    meta = data.meta if data is not None else {}
    bin_size = bin_size if bin_size is not None else (data.bin_size if data else None)
    trial_ids = trial_ids if trial_ids is not None else meta.get("trial_ids")
    start_times = start_times if start_times is not None else meta.get("start_times")
    if unit_ids is None and "unit_ids" in meta:
        unit_ids = meta["unit_ids"] + meta.get("heldout_unit_ids", [])
    given = {"bin_size": bin_size, "trial_ids": trial_ids, "start_times": start_times}
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise ValueError(f"{', '.join(missing)}: required (pass them, or data= from load_nwb)")
    rates = np.asarray(rates, dtype=np.float64)
    if rates.ndim != 3 or not np.isfinite(rates).all() or (rates < 0).any():
        raise ValueError(
            "rates: expected finite values >= 0 (expected spikes per bin) with shape "
            f"(n_trials, n_timesteps, n_neurons), got shape {rates.shape}"
        )
    n_trials, n_timesteps, n_neurons = rates.shape
    centers = np.arange(n_timesteps) + 0.5
    trials = {
        "trial_id": ("id of the trial in the trials table", _per(trial_ids, n_trials, "trial_ids")),
        "timestamps": (
            "bin centers in seconds (session time)",
            _per(start_times, n_trials, "start_times")[:, None] + centers * bin_size,
        ),
        "rates": (f"inferred rates in expected spikes per {bin_size:g} s bin", rates),
    }
    if factors is not None:
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 3 or factors.shape[:2] != (n_trials, n_timesteps):
            raise ValueError(
                f"factors: expected shape ({n_trials}, {n_timesteps}, n_factors), "
                f"got {factors.shape}"
            )
        trials["factors"] = ("latent factors (trial x time x factor)", factors)
    units = None
    if unit_ids is not None:
        n_heldin = len(meta.get("unit_ids", [])) or n_neurons
        units = {
            "unit_id": ("id in the units table", _per(unit_ids, n_neurons, "unit_ids")),
            "heldout": ("held out from the model's input", np.arange(n_neurons) >= n_heldin),
        }
    source_path, out_path = Path(source_path), Path(out_path)
    if not source_path.is_file():
        raise FileNotFoundError(f"source_path: {source_path} does not exist")
    handle, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source_path, tmp)  # mkstemp's private mode stays; restore the usual
        os.chmod(tmp, 0o666 & ~_umask())
        with pynwb.NWBHDF5IO(str(tmp), "a") as io:
            nwbfile = io.read()
            if OUTPUT_MODULE in nwbfile.processing:
                raise DataError(
                    f"{source_path}: already has a processing module {OUTPUT_MODULE!r}; write "
                    "the outputs from the original file"
                )
            module = nwbfile.create_processing_module(
                name=OUTPUT_MODULE, description="LFADS outputs written by lfadskit"
            )
            module.add(_output_table("lfadskit_trials", "LFADS outputs per trial", trials))
            if units is not None:
                module.add(_output_table("lfadskit_units", "neurons of the rates", units))
            io.write(nwbfile)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path
