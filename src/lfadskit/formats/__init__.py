"""Load and save spike data files: find the layout, read it, write atomically.

Layouts read by :func:`load` (``layout=`` forces one):

- ``"lfadskit"``: lfadskit's own ``.npz``/``.h5`` files and plain NumPy files
  (:mod:`lfadskit.formats.native`);
- ``"nlb"``: Neural Latents Benchmark tensors, a directory or ``*_train.h5``/``*_val.h5``
  (:mod:`lfadskit.formats.nlb`);
- ``"lfads"``: the LFADS / lfads-torch HDF5 layout (:mod:`lfadskit.formats.lfads_h5`);
- ``"nwb"``: NWB files, through ``lfadskit.formats.nwb`` (needs the ``nwb`` extra).

:func:`save` writes the ``"lfadskit"`` layout (``.npz`` or ``.h5``) and the ``"lfads"``
layout (``.h5``).

Examples
--------
>>> import numpy as np, tempfile, os
>>> from lfadskit.data import SpikeData
>>> data = SpikeData(spikes=np.ones((6, 4, 3)))
>>> path = save(data, os.path.join(tempfile.mkdtemp(), "data.h5"))
>>> loaded = load(path)
>>> loaded.meta["layout"], np.array_equal(loaded.spikes, data.spikes)
('lfadskit', True)
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import tempfile
from pathlib import Path

import h5py

from lfadskit.data import DataError, SpikeData
from lfadskit.formats.lfads_h5 import is_lfads_keys, read_lfads, write_lfads
from lfadskit.formats.native import (
    H5_SUFFIXES,
    NPY_SUFFIXES,
    NPZ_SUFFIXES,
    read_native,
    write_native,
)
from lfadskit.formats.nlb import is_nlb_keys, read_nlb

__all__ = ["LAYOUTS", "detect_layout", "load", "save"]

logger = logging.getLogger("lfadskit")

# What identifies each layout; quoted in error messages so users see what was expected.
LAYOUTS = {
    "lfadskit": ".npz/.npy, or .h5 with attribute 'lfadskit_format' or a 'spikes' dataset",
    "nlb": "a directory with '<name>_train.h5' and '<name>_val.h5', or .h5 with "
    "'train_spikes_heldin' or 'eval_spikes_heldin'",
    "lfads": ".h5 with 'train_encod_data', 'train_recon_data', 'valid_encod_data', "
    "'valid_recon_data' (or 'train_data', 'valid_data')",
    "nwb": ".nwb with units and trials tables (needs the nwb extra)",
}
WRITABLE = ("lfadskit", "lfads")
NWB_SUFFIXES = (".nwb",)
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _supported() -> str:
    return "; ".join(f"{name}: {keys}" for name, keys in LAYOUTS.items())


def _h5_contents(path: Path) -> tuple[list[str], list[str]]:
    """Top-level keys and attribute names of an HDF5 file; DataError if it cannot be read."""
    try:
        with h5py.File(path, "r") as h5:
            return sorted(h5.keys()), sorted(h5.attrs.keys())
    except OSError as err:
        size = path.stat().st_size
        state = "empty (0 bytes)" if size == 0 else f"corrupt or not HDF5 ({size} bytes)"
        raise DataError(f"{path}: cannot read as HDF5, the file is {state}: {err}") from err


def _h5_layout(path: Path) -> str:
    keys, attrs = _h5_contents(path)
    if "lfadskit_format" in attrs:
        return "lfadskit"
    if is_nlb_keys(keys):
        return "nlb"
    if is_lfads_keys(keys):
        return "lfads"
    if "spikes" in keys or "counts" in keys:
        return "lfadskit"
    seen = ", ".join(keys) if keys else "none (the file is empty)"
    raise DataError(
        f"{path}: unknown HDF5 layout; keys seen: {seen}; attributes seen: {attrs or 'none'}. "
        f"Supported layouts: {_supported()}"
    )


def detect_layout(path: str | os.PathLike) -> str:
    """Name of the layout of ``path``: 'lfadskit', 'nlb', 'lfads' or 'nwb'.

    A directory is an NLB pair; ``.npz``/``.npy`` are lfadskit; ``.nwb`` is NWB; HDF5 files
    are told apart by their keys. Other suffixes are recognized by content (HDF5 or zip).

    Examples
    --------
    >>> detect_layout("mc_maze_small/")  # doctest: +SKIP
    'nlb'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory; check the path")
    if path.is_dir():
        return "nlb"
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES + NPY_SUFFIXES:
        return "lfadskit"
    if suffix in NWB_SUFFIXES:
        return "nwb"
    if suffix in H5_SUFFIXES or h5py.is_hdf5(path):
        return _h5_layout(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_NPY_MAGIC):
        return "lfadskit"
    raise DataError(
        f"{path}: unknown file type (suffix {path.suffix!r}, not HDF5, not NumPy). "
        f"Supported layouts: {_supported()}"
    )


def _read_nwb(path: Path, continuous: bool = False, **options) -> SpikeData:
    # continuous=True: a recording without trials, read as overlapping segments.
    module = "lfadskit.formats.nwb_continuous" if continuous else "lfadskit.formats.nwb"
    try:
        nwb = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise DataError(
                f"{path}: NWB support arrives with the nwb extra: this lfadskit has no NWB "
                "reader yet; convert the file to NLB tensors or .npz"
            ) from err
        raise ImportError(
            f"{path}: reading NWB needs {err.name}; install it with pip install 'lfadskit[nwb]'"
        ) from err
    if continuous:
        return nwb.load_nwb_continuous(path, **options)
    return nwb.load_nwb(path, **options)


_READERS = {"lfadskit": read_native, "nlb": read_nlb, "lfads": read_lfads, "nwb": _read_nwb}


def _check_options(layout: str, options: dict) -> None:
    reader = _READERS[layout]
    if layout == "nwb":
        return  # the NWB reader checks its own options
    allowed = [p for p in inspect.signature(reader).parameters if p != "path"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options: {unknown} not understood by the {layout!r} layout; it takes {allowed}"
        )


def load(path: str | os.PathLike, layout: str | None = None, **options) -> SpikeData:
    """Load spike data from a file or NLB directory, detecting its layout.

    Parameters
    ----------
    path : str or PathLike
        File (``.npz``, ``.npy``, ``.h5``, ``.hdf5``, ``.nwb``) or NLB directory.
    layout : {'lfadskit', 'nlb', 'lfads', 'nwb'}, optional
        Force a layout instead of detecting it.
    **options
        Passed to the layout's reader, e.g. ``bin_size`` (seconds) for every layout and
        ``conversion_factor`` for 'lfads'.

    Returns
    -------
    SpikeData
        With ``meta["layout"]``, ``meta["source"]`` (the path as given) and
        ``meta["load_options"]`` (the reader options) set.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    DataError
        The file is empty, corrupt or of an unknown layout (the message lists the keys seen
        and the layouts supported), or its contents are invalid.

    Examples
    --------
    >>> data = load("mc_maze_small")  # doctest: +SKIP
    >>> data.meta["layout"]  # doctest: +SKIP
    'nlb'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory; check the path")
    if layout is None:
        layout = detect_layout(path)
    elif layout not in _READERS:
        raise ValueError(f"layout: expected one of {sorted(_READERS)} or None, got {layout!r}")
    if path.is_dir() and layout != "nlb":
        raise DataError(
            f"{path}: is a directory; only the 'nlb' layout reads directories (holding "
            f"'<name>_train.h5' and '<name>_val.h5'); pass a file for the {layout!r} layout"
        )
    _check_options(layout, options)
    data = _READERS[layout](path, **options)
    # SpikeData is frozen but owns its meta dict (copied at construction); updating it
    # in place avoids validating every array a second time.
    # load_options let a run directory reload exactly this dataset (lfadskit evaluate).
    data.meta.update(layout=layout, source=str(path), load_options=_jsonable(options))
    logger.info("loaded %s (%s layout): %s", path, layout, data.summary())
    return data


def _jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def save(data: SpikeData, path: str | os.PathLike, layout: str = "lfadskit") -> Path:
    """Write ``data`` atomically: to a temporary file in the same directory, then rename.

    A failure part way leaves no partial file and any existing file at ``path`` intact.

    Parameters
    ----------
    data : SpikeData
    path : str or PathLike
        Target file: ``.npz`` or ``.h5``/``.hdf5`` for 'lfadskit', ``.h5``/``.hdf5`` for
        'lfads'.
    layout : {'lfadskit', 'lfads'}
        Layout to write.

    Returns
    -------
    Path
        The written file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> data = SpikeData(spikes=np.ones((6, 4, 3)))
    >>> save(data, os.path.join(tempfile.mkdtemp(), "x.npz")).suffix
    '.npz'
    """
    if not isinstance(data, SpikeData):
        raise ValueError(f"data: expected a SpikeData, got {type(data).__name__}")
    if layout not in WRITABLE:
        raise ValueError(f"layout: can write {list(WRITABLE)}, got {layout!r}")
    path = Path(path)
    suffix = path.suffix.lower()
    allowed = NPZ_SUFFIXES + H5_SUFFIXES if layout == "lfadskit" else H5_SUFFIXES
    if suffix not in allowed:
        raise ValueError(
            f"path: the {layout!r} layout is written to {list(allowed)} files, got {path.name!r}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: directory does not exist; create it first")
    writer = write_native if layout == "lfadskit" else write_lfads
    # The temporary name keeps the suffix because the writers choose the container by it.
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        writer(data, tmp)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("saved %s (%s layout): %s", path, layout, data.summary())
    return path
