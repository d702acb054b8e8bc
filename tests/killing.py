"""Run a script in a child process and SIGKILL it at a chosen moment (for resume tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lfadskit


def run_until_ready_then_kill(script: str, folder: Path, *args: str, timeout: float = 120) -> int:
    """Run ``script`` with ``folder`` and ``args`` as argv; SIGKILL it once ``folder/ready`` exists.

    The script writes ``ready`` at the moment the test wants it killed (and then sleeps).
    Returns the child's exit status (``-signal.SIGKILL`` when the kill landed).
    """
    (folder / "child.py").write_text(script)
    src = str(Path(lfadskit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [sys.executable, str(folder / "child.py"), str(folder), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout
        while not (folder / "ready").exists():
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child did not reach the kill point in time"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode
