"""Shared fixtures.

The real data lives outside the repository. Tests find it through the environment variable
``LFADSKIT_DATA`` (default ``../shared/data`` next to the repository). When it is absent the
tests that need it are skipped with a reason, unless ``LFADSKIT_REQUIRE_DATA=1`` (set by CI),
which turns the missing folder into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]

# Two cores: one thread per process is the steady choice for small recurrent models.
torch.set_num_threads(1)
# numpy's BLAS threads make small linear algebra (ridge decoders, GLMs) 5-10x slower on two
# busy cores; one thread is the steady choice for the tests.
threadpool_limits(1)


def data_root() -> Path:
    return Path(os.environ.get("LFADSKIT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder with the real data (``mc_maze_small/`` inside)."""
    root = data_root()
    if not (root / "mc_maze_small" / "mc_maze_small_train.h5").is_file():
        message = (
            f"real data not found under {root} (set LFADSKIT_DATA to the folder holding "
            "mc_maze_small/)"
        )
        if os.environ.get("LFADSKIT_REQUIRE_DATA") == "1":
            pytest.fail(message + "; LFADSKIT_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def mc_maze_dir(shared_data: Path) -> Path:
    return shared_data / "mc_maze_small"
