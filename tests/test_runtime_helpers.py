"""Process-level helpers of the training loop: heap retention and per-member random draws."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from lfadskit.lfads import memory
from lfadskit.lfads.streams import per_member


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_keep_freed_memory_applies_once_and_reports_the_same_answer():
    first = memory.keep_freed_memory()
    assert isinstance(first, bool)
    assert memory.keep_freed_memory() is first
    if sys.platform.startswith("linux") and os.environ.get(memory.ENV_VAR, "1") != "0":
        # glibc Linux (the CI image): mallopt exists and accepts both settings
        assert first is True


def test_keep_freed_memory_is_switched_off_by_the_environment_variable():
    code = "from lfadskit.lfads.memory import keep_freed_memory as k; print(k(), k())"
    assert _run(code, **{memory.ENV_VAR: "0"}) == "False False"


def test_per_member_draws_equal_a_sequential_loop_whatever_the_thread_count():
    def draw(gen):
        return torch.rand(1000, generator=gen), torch.randn(7, 3, generator=gen)

    def generators():
        return [torch.Generator().manual_seed(seed) for seed in (3, 1, 4, 1, 5)]

    expected = [draw(g) for g in generators()]
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            got = per_member(draw, generators())
            assert len(got) == len(expected)
            for (u, n), (eu, en) in zip(got, expected, strict=True):
                assert torch.equal(u, eu) and torch.equal(n, en)
    finally:
        torch.set_num_threads(previous)


def test_per_member_keeps_member_order_and_advances_each_generator_once():
    gens = [torch.Generator().manual_seed(s) for s in range(6)]
    states = [g.get_state().clone() for g in gens]
    out = per_member(lambda g: torch.rand(2, generator=g), gens)
    for seed, value in enumerate(out):
        assert torch.equal(value, torch.rand(2, generator=torch.Generator().manual_seed(seed)))
    assert all(not torch.equal(g.get_state(), s) for g, s in zip(gens, states, strict=True))
