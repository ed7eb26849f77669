"""Cold-process time of ``chainrule derive`` and ``chainrule generate``: median of 5.

Run: python benchmarks/bench_derive.py [--runs 5]
Each run starts a fresh Python, so the SymPy import is included.  ``generate`` writes
into a temporary folder, so the checkout's generated/ is not touched.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRATCH = Path(tempfile.mkdtemp(prefix="bench-derive-"))
COMMANDS = {
    "derive": ["derive"],
    "derive --standalone": ["derive", "--standalone"],
    "generate": ["generate", "--out", str(SCRATCH / "generated")],
}


def cold_seconds(args: list[str]) -> float:
    """Wall time of one ``python -m chainrule ARGS`` with output discarded."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "chainrule", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(f"| command | median of {runs} (s) | min (s) | max (s) |")
    print("|---|---:|---:|---:|")
    for label, args in COMMANDS.items():
        times = [cold_seconds(args) for _ in range(runs)]
        shown = label.split(" --out")[0]
        print(f"| chainrule {shown} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} |")


if __name__ == "__main__":
    main()
