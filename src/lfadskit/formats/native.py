"""lfadskit's own file layout, in ``.npz`` or ``.h5``, and plain NumPy files.

One entry per array field of :class:`~lfadskit.data.SpikeData` (``spikes``, ``heldout``,
``forward``, ``behavior``, ``truth``, ``conditions``, ``ext_input``, ``train_idx``,
``valid_idx``; fields that are None are left out), plus ``bin_size``, ``name`` and ``meta``
(a JSON string). The file is marked with ``lfadskit_format = 1``: an entry in ``.npz``, an
attribute in ``.h5`` (where ``bin_size``, ``name`` and ``meta`` are attributes too). Arrays
are stored with their exact dtype, so a round trip gives back identical arrays.

Plain files load too: an ``.npz`` or ``.h5`` holding just a ``spikes`` (or ``counts``)
array, optionally with any other field, and an ``.npy`` holding one trial x time x neuron
array. A missing split gets the default seeded split of ``SpikeData``.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from lfadskit.data import SpikeData
>>> data = SpikeData(spikes=np.ones((6, 4, 3)), name="demo")
>>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
>>> write_native(data, path)
>>> read_native(path).name
'demo'
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lfadskit.data import DataError, SpikeData

__all__ = [
    "ARRAY_FIELDS",
    "FORMAT_VERSION",
    "meta_from_json",
    "meta_to_json",
    "read_h5_meta",
    "read_native",
    "write_h5_meta",
    "write_native",
]

logger = logging.getLogger("lfadskit")

FORMAT_VERSION = 1
ARRAY_FIELDS = (
    "spikes",
    "heldout",
    "forward",
    "behavior",
    "truth",
    "conditions",
    "ext_input",
    "train_idx",
    "valid_idx",
)
SCALAR_FIELDS = ("bin_size", "name", "meta", "lfadskit_format")
NPZ_SUFFIXES = (".npz",)
NPY_SUFFIXES = (".npy",)
H5_SUFFIXES = (".h5", ".hdf5", ".hdf")
# HDF5 keeps small attributes in the object header, which is limited to 64 KiB; a longer
# meta string goes to a dataset instead.
_MAX_ATTR_BYTES = 32_000


# ------------------------------------------------------------------------ meta as JSON
def _json_default(value: Any) -> Any:
    # numpy scalars and arrays and paths are common in provenance; store their plain form.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(
        f"meta: value {value!r} of type {type(value).__name__} cannot be stored in a file; "
        "keep meta to str, numbers, bool, None, lists and dicts"
    )


def meta_to_json(meta: dict) -> str:
    """Serialize ``meta`` to a JSON string (numpy values become plain Python values).

    Examples
    --------
    >>> meta_to_json({"seed": np.int64(3)})
    '{"seed": 3}'
    """
    return json.dumps(meta, default=_json_default)


def meta_from_json(text: Any, where: str) -> dict:
    """Parse a JSON ``meta`` string read from ``where``; it must hold a dict."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError as err:
        raise DataError(f"meta in {where}: not valid JSON ({err}); the file is corrupt") from err
    if not isinstance(meta, dict):
        raise DataError(f"meta in {where}: expected a JSON object, got {type(meta).__name__}")
    return meta


def write_h5_meta(h5: h5py.File, meta: dict) -> None:
    """Store ``meta`` as JSON in attribute ``meta`` (a dataset when too long for one)."""
    text = meta_to_json(meta)
    if len(text.encode("utf-8")) <= _MAX_ATTR_BYTES:
        h5.attrs["meta"] = text
    else:
        h5.create_dataset("meta", data=text, dtype=h5py.string_dtype())


def read_h5_meta(h5: h5py.File, where: str) -> dict | None:
    """The ``meta`` dict written by :func:`write_h5_meta`, or None when absent."""
    if "meta" in h5.attrs:
        return meta_from_json(h5.attrs["meta"], where)
    if "meta" in h5 and isinstance(h5["meta"], h5py.Dataset):
        return meta_from_json(h5["meta"][()], where)
    return None


# ------------------------------------------------------------------------ helpers
def _scalar(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.shape != ():
        raise DataError(f"expected a single value, got an array of shape {arr.shape}")
    item = arr[()]
    return item.decode("utf-8") if isinstance(item, bytes) else item


def _check_version(version: Any, where: str) -> None:
    version = int(_scalar(version))
    if version > FORMAT_VERSION:
        raise DataError(
            f"lfadskit_format: {where} was written in format {version} by a newer lfadskit "
            f"(this one reads up to {FORMAT_VERSION}); upgrade lfadskit"
        )


def _build(arrays: dict, scalars: dict, where: str, bin_size: float | None) -> SpikeData:
    """Make a SpikeData from arrays and scalars read from ``where``."""
    if "spikes" in arrays and "counts" in arrays:
        raise DataError(
            f"{where}: holds both 'spikes' and 'counts'; keep one (they mean the same thing)"
        )
    if "counts" in arrays:
        arrays["spikes"] = arrays.pop("counts")
    if "spikes" not in arrays:
        raise DataError(
            f"{where}: no 'spikes' array (keys seen: {sorted(arrays) + sorted(scalars)}); "
            "store the trial x time x neuron counts under 'spikes' (or 'counts')"
        )
    unknown = sorted(set(arrays) - set(ARRAY_FIELDS))
    if unknown:
        logger.warning("%s: ignored entries %s (not SpikeData fields)", where, unknown)
    kwargs = {k: v for k, v in arrays.items() if k in ARRAY_FIELDS}
    if bin_size is not None:
        kwargs["bin_size"] = bin_size
    elif "bin_size" in scalars:
        kwargs["bin_size"] = float(_scalar(scalars["bin_size"]))
    else:
        logger.info("%s: no bin_size stored; assuming 5 ms (pass bin_size= to change)", where)
    if "name" in scalars:
        kwargs["name"] = str(_scalar(scalars["name"]))
    if "meta" in scalars:
        kwargs["meta"] = meta_from_json(_scalar(scalars["meta"]), where)
    return SpikeData(**kwargs)


# ------------------------------------------------------------------------ reading
def _read_npz(path: Path, bin_size: float | None) -> SpikeData:
    where = str(path)
    try:
        # allow_pickle=False: a data file must never run code when it is opened. Our own
        # handle makes sure the file is closed even when numpy fails on a corrupt zip.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            entries = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as err:
        raise DataError(
            f"{where}: cannot read as .npz ({err}); the file is empty or corrupt"
        ) from err
    except ValueError as err:
        raise DataError(
            f"{where}: cannot read as .npz ({err}); object arrays are refused, store numbers "
            "and strings only"
        ) from err
    if not entries:
        raise DataError(f"{where}: the .npz file holds no arrays; store counts under 'spikes'")
    if "lfadskit_format" in entries:
        _check_version(entries["lfadskit_format"], where)
    scalars = {k: entries.pop(k) for k in SCALAR_FIELDS if k in entries}
    return _build(entries, scalars, where, bin_size)


def _read_npy(path: Path, bin_size: float | None) -> SpikeData:
    try:
        with open(path, "rb") as handle:
            spikes = np.load(handle, allow_pickle=False)
    except (EOFError, OSError, ValueError) as err:
        raise DataError(
            f"{path}: cannot read as .npy ({err}); the file is empty or corrupt"
        ) from err
    return _build({"spikes": spikes}, {}, str(path), bin_size)


def _read_h5(path: Path, bin_size: float | None) -> SpikeData:
    where = str(path)
    try:
        with h5py.File(path, "r") as h5:
            arrays = {k: h5[k][()] for k in h5 if isinstance(h5[k], h5py.Dataset)}
            scalars = {k: h5.attrs[k] for k in SCALAR_FIELDS if k in h5.attrs}
    except OSError as err:
        raise DataError(f"{where}: cannot read as HDF5 ({err}); the file is corrupt") from err
    if "lfadskit_format" in scalars:
        _check_version(scalars["lfadskit_format"], where)
    # A long meta is stored as a dataset (see _MAX_ATTR_BYTES); other scalars may be too.
    for key in ("bin_size", "name", "meta"):
        if key in arrays and key not in scalars:
            scalars[key] = arrays.pop(key)
    return _build(arrays, scalars, where, bin_size)


def read_native(path: str | os.PathLike, bin_size: float | None = None) -> SpikeData:
    """Read an lfadskit-layout or plain ``.npz``, ``.npy`` or ``.h5`` file.

    Parameters
    ----------
    path : str or PathLike
        File ending in ``.npz``, ``.npy``, ``.h5``, ``.hdf5`` or ``.hdf``.
    bin_size : float, optional
        Bin width in seconds; overrides the stored one (default: stored, else 0.005).

    Returns
    -------
    SpikeData

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "counts.npy")
    >>> np.save(path, np.ones((5, 4, 3)))
    >>> read_native(path, bin_size=0.01).bin_size
    0.01
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        return _read_npz(path, bin_size)
    if suffix in NPY_SUFFIXES:
        return _read_npy(path, bin_size)
    if suffix in H5_SUFFIXES:
        return _read_h5(path, bin_size)
    # Unknown suffix: the caller (``load``) sniffed the content; trust the HDF5 signature.
    if h5py.is_hdf5(path):
        return _read_h5(path, bin_size)
    return _read_npz(path, bin_size)


# ------------------------------------------------------------------------ writing
def _field_arrays(data: SpikeData) -> dict[str, np.ndarray]:
    arrays = {}
    for key in ARRAY_FIELDS:
        value = getattr(data, key)
        if value is not None:
            arrays[key] = np.asarray(value)
    return arrays


def _write_npz(data: SpikeData, path: Path) -> None:
    entries = _field_arrays(data)
    entries["bin_size"] = np.float64(data.bin_size)
    entries["name"] = np.str_(data.name)
    entries["meta"] = np.str_(meta_to_json(data.meta))
    entries["lfadskit_format"] = np.int64(FORMAT_VERSION)
    # Write through a file object so numpy does not append ".npz" to a temporary name.
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **entries)


def _write_h5(data: SpikeData, path: Path) -> None:
    with h5py.File(path, "w") as h5:
        for key, value in _field_arrays(data).items():
            h5.create_dataset(key, data=value, compression="gzip", shuffle=True)
        h5.attrs["lfadskit_format"] = FORMAT_VERSION
        h5.attrs["bin_size"] = data.bin_size
        h5.attrs["name"] = data.name
        write_h5_meta(h5, data.meta)


def write_native(data: SpikeData, path: str | os.PathLike) -> None:
    """Write ``data`` in the lfadskit layout: ``.npz`` or ``.h5``/``.hdf5`` by suffix.

    Not atomic by itself; :func:`lfadskit.formats.save` writes to a temporary file and
    renames it.

    Parameters
    ----------
    data : SpikeData
    path : str or PathLike
        Target file; its suffix picks the container.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in NPZ_SUFFIXES:
        _write_npz(data, path)
    elif suffix in H5_SUFFIXES:
        _write_h5(data, path)
    else:
        raise ValueError(
            f"path: suffix {path.suffix!r} is not written by the lfadskit layout; "
            "use .npz or .h5 (.hdf5)"
        )
