"""Screenshot a run's HTML report with headless Chromium, to check how the page looks.

Usage::

    python benchmarks/screenshot_report.py RUN_DIR OUT.png [--rebuild] [--height 4000]

Writes ``RUN_DIR/report.html`` first when it is missing (or always with ``--rebuild``), then
renders it with ``chromium --headless`` in a fresh temporary profile (no network services, no
sandbox so that it runs as root in containers) into ``OUT.png``, 1280 px wide. Needs the
``chromium`` binary on PATH (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH = 1280


def screenshot(html_path: Path, png_path: Path, height: int = 4000, timeout: float = 120) -> Path:
    """Render ``html_path`` with headless Chromium into ``png_path`` (WIDTH x height pixels)."""
    binary = shutil.which("chromium")
    if binary is None:
        raise FileNotFoundError(
            "chromium: not found on PATH; install it (apt-get install chromium)"
        )
    png_path = Path(png_path).resolve()
    png_path.unlink(missing_ok=True)  # so a stale file never passes for a new screenshot
    with tempfile.TemporaryDirectory(prefix="lfadskit-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{height}",
            "--hide-scrollbars",
            f"--screenshot={png_path}",
            Path(html_path).resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not png_path.is_file():
        raise RuntimeError(
            f"chromium failed (exit {result.returncode}) to screenshot {html_path}:\n"
            f"{result.stderr[-2000:]}"
        )
    return png_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="run directory (fit or search)")
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--rebuild", action="store_true", help="rewrite report.html first")
    parser.add_argument("--height", type=int, default=4000, help="window height in pixels")
    args = parser.parse_args(argv)
    from lfadskit.report import REPORT, write_report

    html_path = args.run_dir / REPORT
    if args.rebuild or not html_path.is_file():
        html_path = write_report(args.run_dir)
    out = screenshot(html_path, args.out, height=args.height)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
