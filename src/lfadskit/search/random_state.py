"""What a random search keeps on disk to be resumed: finished populations and the current one.

Two files in ``RUN_DIR/search``, each written atomically (temporary file, then rename), so a
kill at any moment leaves either the old or the new version, never a torn one:

``random_state.pt``
    Written when the search starts and after every completed population: the search's
    settings, the rows of the completed populations, the number of completed populations and
    the best member so far (row, weights, history, sizes).
``chunk.pt``
    Written after every epoch of the population in training: the settings, its index and
    the trainer's full state (weights, Adam, random streams, history). Removed once the
    population's rows are in ``random_state.pt``.

A resumed search skips the completed populations and continues the current one from its
last epoch; the trainer's own checkpoint is bit-identical, so the final results equal an
uninterrupted run's.

Examples
--------
>>> settings_differ({"seed": 0, "config": {"lr": 1e-3}}, {"seed": 0, "config": {"lr": 2e-3}})
['config.lr']
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfadskit.data import SpikeData
from lfadskit.lfads.network import Sizes
from lfadskit.lfads.train import PopulationTrainer
from lfadskit.runs import write_torch

__all__ = [
    "STATE",
    "CHUNK",
    "data_fingerprint",
    "settings_differ",
    "new_state",
    "save_state",
    "load_state",
    "save_chunk",
    "load_chunk",
]

STATE = "random_state.pt"
CHUNK = "chunk.pt"
FORMAT = 1


def data_fingerprint(data: SpikeData) -> str:
    """SHA-256 of what training reads (targets, splits, external inputs) and their shapes.

    Examples
    --------
    >>> counts = np.ones((4, 3, 2))
    >>> data_fingerprint(SpikeData(spikes=counts)) == data_fingerprint(SpikeData(spikes=counts))
    True
    """
    digest = hashlib.sha256()
    arrays = (data.recon, data.train_idx, data.valid_idx, data.ext_input)
    for array in arrays:
        if array is None:
            digest.update(b"none")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def settings_differ(saved: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """Names of the settings that differ; nested dicts are compared field by field."""
    differ = []
    for key in sorted(set(saved) | set(settings)):
        old, new = saved.get(key), settings.get(key)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            differ += [f"{key}.{name}" for name in settings_differ(old, new)]
        elif old != new:
            differ.append(key)
    return differ


def _check_settings(path: Path, saved: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    differ = settings_differ(saved, settings)
    if differ:
        raise ValueError(
            f"resume: {path} was written by a random search with different settings "
            f"({', '.join(differ)}); use the same arguments or a new run directory (--out)"
        )


def new_state() -> dict:
    """Progress of a search that has not completed any population."""
    return {"n_chunks_done": 0, "rows": [], "best": None}


def save_state(path: Path, settings: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Write the completed populations' rows and the best member so far, atomically."""
    best = state["best"]
    if best is not None:
        best = {**best, "sizes": best["sizes"].to_dict()}  # plain types: weights_only loads
    payload = {"format": FORMAT, "settings": dict(settings), "state": {**state, "best": best}}
    write_torch(path, payload)


def load_state(path: Path, settings: Mapping[str, Any], device) -> dict:
    """Read ``random_state.pt``; refuse it when it was written with other settings."""
    payload = torch.load(path, map_location=device, weights_only=True)
    _check_settings(path, payload.get("settings", {}), settings)
    state = payload["state"]
    if state["best"] is not None:
        state["best"]["sizes"] = Sizes(**state["best"]["sizes"])
    return state


def save_chunk(
    path: Path, settings: Mapping[str, Any], chunk: int, trainer: PopulationTrainer
) -> None:
    """Write the training population's full state after an epoch, atomically."""
    payload = {
        "format": FORMAT,
        "settings": dict(settings),
        "chunk": int(chunk),
        "trainer": trainer.state_dict(),
    }
    write_torch(path, payload)


def load_chunk(
    path: Path, settings: Mapping[str, Any], chunk: int, trainer: PopulationTrainer
) -> bool:
    """Continue ``trainer`` from ``chunk.pt`` when it holds population ``chunk``.

    Returns whether a state was loaded. A file of another population is stale (that
    population completed, or a kill came before the new one's first epoch) and is ignored.
    """
    if not path.is_file():
        return False
    payload = torch.load(path, map_location=trainer.device, weights_only=True)
    _check_settings(path, payload.get("settings", {}), settings)
    if payload["chunk"] != chunk:
        return False
    trainer.load_state_dict(payload["trainer"])
    return True
