"""Paired PBT-minus-defaults differences over several ``pbt_vs_defaults.py`` results.

Each JSON is one dataset seed with both arms; the table gives each arm's valid metric, the
difference, and the mean and standard error of the differences::

    python benchmarks/summarize_pbt.py benchmarks/results/pbt_seeds/lorenz80_valid_nll_s*.json
    python benchmarks/summarize_pbt.py --metric co_bps benchmarks/results/pbt_seeds/*.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="pbt_vs_defaults.py JSON files")
    parser.add_argument("--metric", default="rate_r2", help="valid metric (default rate_r2)")
    args = parser.parse_args(argv)
    diffs = []
    print(f"{'file':42s} {'defaults':>9s} {'PBT':>9s} {'PBT - def':>10s}")
    for path in args.results:
        result = json.loads(path.read_text())
        fixed = result["fixed"]["metrics"]["valid"][args.metric]
        searched = result["pbt"]["metrics"]["valid"][args.metric]
        diffs.append(searched - fixed)
        print(f"{path.name:42s} {fixed:9.3f} {searched:9.3f} {diffs[-1]:+10.3f}")
    mean = statistics.fmean(diffs)
    sem = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    wins = sum(d > 0 for d in diffs)
    print(
        f"mean difference {mean:+.4f} (standard error {sem:.4f}), PBT higher in {wins}/{len(diffs)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
