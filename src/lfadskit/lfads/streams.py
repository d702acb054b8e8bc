"""Per-member random draws, run side by side in threads.

Every population member has its own ``torch.Generator``; drawing from a CPU generator is
single-threaded, so with K members and several torch threads the draws of one member at a
time leave the other cores idle (about a tenth of a K = 8 epoch at 2 threads). Different
generators can draw at once: torch releases the GIL inside ``rand``/``randn``. Member k's
numbers come from generator k alone, in the same order, so the result is identical to a
sequential loop, whatever the number of threads.

Examples
--------
>>> import torch
>>> gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
>>> a = per_member(lambda g: torch.rand(3, generator=g), gens)
>>> b = [torch.rand(3, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
>>> all(torch.equal(x, y) for x, y in zip(a, b))
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

__all__ = ["per_member"]

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _executor(n_workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != n_workers:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lfadskit-rng")
        _pool_size = n_workers
    return _pool


def per_member(
    draw: Callable[[torch.Generator], T], generators: Sequence[torch.Generator]
) -> list[T]:
    """``[draw(g) for g in generators]``, with up to ``torch.get_num_threads()`` at once.

    ``draw`` should only draw (``torch.rand``/``randn`` with the given generator): it runs in
    a worker thread, and intra-op parallel arithmetic there would compete with the others.
    CUDA generators are drawn in order (their kernels are asynchronous already).
    """
    n_workers = min(len(generators), torch.get_num_threads())
    if n_workers <= 1 or any(g.device.type != "cpu" for g in generators):
        return [draw(g) for g in generators]
    return list(_executor(n_workers).map(draw, generators))
