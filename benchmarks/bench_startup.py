"""Whole-command times as a user sees them: `chainrule --help`, and `chainrule train --iters 1` cold and warm.

Run: python benchmarks/bench_startup.py [--runs 5] [--data-dir DIR] [--json]

Every run is a fresh process (`python -m chainrule ...` with this checkout first on
PYTHONPATH), timed from start to exit, data loading and the saved figure included.
"cold" starts with an empty CHAINRULE_CACHE_DIR of its own (a new temporary folder
per run, so only chainrule's own decoded copies are ever cleared): it gunzips and
decodes the IDX files and keeps the decoded copies. "warm" reuses one cache that a
first run filled: memory-mapped copies, no gunzip. The kinds alternate round by
round so that a change in the machine's load touches them alike; the load average
is reported with the medians. `python -c pass` is timed too: the interpreter's own
start, which no command can go below. Linux/macOS (os.wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# The targets these timings are held to, in seconds.
TARGETS = {"help": 0.15, "train --iters 1, warm": 0.8}


@dataclass(frozen=True)
class Run:
    """One process: wall time from spawn to exit, its CPU time and peak memory."""

    wall_s: float
    cpu_s: float
    max_rss_mib: float


@dataclass(frozen=True)
class Summary:
    """The runs of one command."""

    name: str
    command: str
    median_s: float
    min_s: float
    max_s: float
    median_cpu_s: float
    max_rss_mib: float
    runs: int


def has_mnist(folder: Path) -> bool:
    """True if ``folder`` holds the four IDX files, raw or .gz."""
    return all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in IDX_NAMES)


def find_data_dir(named: str | None) -> Path | None:
    """--data-dir, else $CHAINRULE_DATA_DIR, else the user's MNIST download cache, if it holds MNIST."""
    candidates = [named, os.environ.get("CHAINRULE_DATA_DIR")]
    if not named:
        sys.path.insert(0, str(ROOT))
        from chainrule.mnist.sources import mnist_cache_dir

        candidates.append(str(mnist_cache_dir()))
    for candidate in candidates:
        if candidate and has_mnist(Path(candidate).expanduser()):
            return Path(candidate).expanduser().resolve()
    return None


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run ``argv`` once as a fresh process; fail loudly if it fails."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"bench_startup: {' '.join(argv)} exited {child.returncode}: {' '.join(tail)}")
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
    return Run(wall, usage.ru_utime + usage.ru_stime, rss)


def summarize(name: str, argv: list[str], runs: list[Run]) -> Summary:
    """Median, spread, CPU and memory of one command's runs."""
    walls = [r.wall_s for r in runs]
    return Summary(
        name=name,
        command=" ".join(argv),
        median_s=statistics.median(walls),
        min_s=min(walls),
        max_s=max(walls),
        median_cpu_s=statistics.median(r.cpu_s for r in runs),
        max_rss_mib=max(r.max_rss_mib for r in runs),
        runs=len(runs),
    )


def measure(runs: int, data_dir: Path, work: Path) -> list[Summary]:
    """Time each command ``runs`` times, round by round."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["CHAINRULE_OFFLINE"] = "1"  # never a download: the data comes from data_dir
    env.pop("CHAINRULE_DATA_DIR", None)
    python = [sys.executable]
    chainrule = [*python, "-m", "chainrule"]
    out = work / "run"
    # --force: every run replaces the one before it in the same folder, as a user re-running would.
    train = [*chainrule, "train", "--iters", "1", "--data-dir", str(data_dir), "--out", str(out), "--force"]
    warm_cache = work / "warm-cache"
    warm_env = {**env, "CHAINRULE_CACHE_DIR": str(warm_cache)}
    timed(train, warm_env, work)  # fills the warm cache; not counted

    commands = {
        "python -c pass": ([*python, "-c", "pass"], env),
        "help": ([*chainrule, "--help"], env),
        "train --iters 1, cold": (train, None),
        "train --iters 1, warm": (train, warm_env),
    }
    results: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, run_env) in commands.items():
            if run_env is None:  # cold: a cache folder of its own, removed afterwards
                cold_cache = Path(tempfile.mkdtemp(prefix="cold-cache-", dir=work))
                results[name].append(timed(argv, {**env, "CHAINRULE_CACHE_DIR": str(cold_cache)}, work))
                shutil.rmtree(cold_cache)
            else:
                results[name].append(timed(argv, run_env, work))
    return [summarize(name, commands[name][0], results[name]) for name in commands]


def report(summaries: list[Summary], data_dir: Path, load_before: tuple, load_after: tuple) -> str:
    """The table, the targets and the conditions, as text."""
    lines = [
        f"data: {data_dir}",
        f"machine: {os.cpu_count()} CPUs; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in load_before)}, after {', '.join(f'{x:.2f}' for x in load_after)}",
        "",
        f"{'command':<24} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>7} {'peak MiB':>9}  runs",
    ]
    for s in summaries:
        lines.append(
            f"{s.name:<24} {s.median_s:9.3f} {s.min_s:7.3f} {s.max_s:7.3f} "
            f"{s.median_cpu_s:7.3f} {s.max_rss_mib:9.0f}  {s.runs}"
        )
    lines.append("")
    by_name = {s.name: s for s in summaries}
    for name, limit in TARGETS.items():
        got = by_name[name].median_s
        verdict = "met" if got <= limit else "NOT met"
        lines.append(f"target {name}: median {got:.3f} s <= {limit} s: {verdict}")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=positive_int, default=5, help="fresh processes per command (default 5)"
    )
    parser.add_argument("--data-dir", help="a folder with the four MNIST IDX files (default: the cache)")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    args = parser.parse_args(argv)
    data_dir = find_data_dir(args.data_dir)
    if data_dir is None:
        print(
            "bench_startup: no MNIST found: pass --data-dir DIR with the four IDX files "
            "(the shipped sample has nothing to decode, so it says nothing about start-up)",
            file=sys.stderr,
        )
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-startup-") as work:
        summaries = measure(args.runs, data_dir, Path(work))
    load_after = os.getloadavg()
    if args.json:
        print(json.dumps([asdict(s) for s in summaries], indent=1))
    else:
        print(report(summaries, data_dir, load_before, load_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
