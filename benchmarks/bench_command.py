"""The whole command, as a user times it: `chainrule train` against the chapter's own script.

Run: python benchmarks/bench_command.py --data-dir DIR [--runs 3] [--iters 10000] [--write]

Each run is a fresh process timed from spawn to exit: the interpreter's start, the
imports, loading the data, training with the per-epoch accuracies, and (for chainrule)
saving metrics.csv, accuracy.png, params.npz and run.json.  The chapter's side is
benchmarks/chapter_train.py: the section 5.7.4 listing with the book's way of loading
(a pickle of the decoded data, normalised and one-hot encoded on every run).  Both are
measured warm: one untimed run of each first fills chainrule's decoded cache and the
chapter's pickle, as a second run on a user's machine would find them.  The two
commands alternate, round by round; the ratio is taken per round, and the table gives
its median and its worst.  --write replaces the "## Whole command" section of
BENCHMARKS.md.  Linux (os.wait4, /proc/loadavg).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_startup import IDX_NAMES, find_data_dir, positive_int  # noqa: E402
from benchmarks.bench_train import BENCHMARKS_MD, machine, replace_section  # noqa: E402

SECTION = "## Whole command"
CHAPTER_TEST_ACC = 0.9688  # the chapter's last printed test accuracy
TARGET_RATIO = 0.25


@dataclass(frozen=True)
class Run:
    """One process: wall and CPU seconds, peak memory."""

    wall_s: float
    cpu_s: float
    max_rss_mib: float


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[Run, str]:
    """Run ``argv`` once as a fresh process; its standard output; fail loudly if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"bench_command: {shlex.join(argv)} exited {code}: {' '.join(tail)}")
        text = out.read().decode(errors="replace")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), text


def md5s(data_dir: Path) -> list[tuple[str, str]]:
    """The MD5 of each of the four files, so a reader can check they measured the same data."""
    found = []
    for name in IDX_NAMES:
        path = next(p for p in (data_dir / f"{name}.gz", data_dir / name) if p.is_file())
        found.append((path.name, hashlib.md5(path.read_bytes()).hexdigest()))
    return found


def last_test_acc(run_dir: Path) -> float:
    """The test accuracy of chainrule's last epoch line, from its metrics.csv."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["test_acc"])


def measure(runs: int, iters: int, data_dir: Path, work: Path) -> dict[str, object]:
    """Alternate the two commands ``runs`` times after one untimed warm-up run each."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["CHAINRULE_OFFLINE"] = "1"
    env["CHAINRULE_CACHE_DIR"] = str(work / "cache")
    env.pop("CHAINRULE_DATA_DIR", None)
    (work / "pickle").mkdir()
    train = lambda out: [  # noqa: E731
        sys.executable,
        "-m",
        "chainrule",
        "train",
        "--data-dir",
        str(data_dir),
        "--iters",
        str(iters),
        "--out",
        str(out),
    ]
    chapter = [
        sys.executable,
        str(ROOT / "benchmarks" / "chapter_train.py"),
        "--data-dir",
        str(data_dir),
        "--cache",
        str(work / "pickle"),
        "--iters",
        str(iters),
    ]
    timed(train(work / "warm"), env, work)
    timed(chapter, env, work)
    ours: list[Run] = []
    theirs: list[Run] = []
    accs: list[float] = []
    chapter_accs: list[float] = []
    loads = []
    for i in range(runs):
        out = work / f"run{i}"
        # Alternate which goes first, so a drift in the machine's load touches both alike.
        order = ("chainrule", "chapter") if i % 2 == 0 else ("chapter", "chainrule")
        for which in order:
            loads.append(os.getloadavg()[0])
            if which == "chainrule":
                run, _ = timed(train(out), env, work)
                ours.append(run)
                accs.append(last_test_acc(out))
            else:
                run, text = timed(chapter, env, work)
                theirs.append(run)
                chapter_accs.append(float(text.split()[-1]))
            print(f"run {i + 1}/{runs}: {which:9s} {run.wall_s:6.2f} s", file=sys.stderr)
    _, text = timed(
        [sys.executable, str(ROOT / "benchmarks" / "_phases.py"), *train(work / "phases")[4:]], env, work
    )
    phases = json.loads(text.strip().splitlines()[-1])
    return {
        "ours": ours,
        "theirs": theirs,
        "accs": accs,
        "chapter_accs": chapter_accs,
        "loads": loads,
        "phases": phases,
    }


def report(m: dict[str, object], runs: int, iters: int, data_dir: Path, command: str) -> str:
    """The section of BENCHMARKS.md."""
    ours, theirs = m["ours"], m["theirs"]
    ratios = [a.wall_s / b.wall_s for a, b in zip(ours, theirs, strict=True)]
    med = lambda rs: statistics.median(r.wall_s for r in rs)  # noqa: E731
    rows = [
        f"| command | median of {runs} (s) | min–max (s) | CPU, median (s) | peak memory (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rs in (("`chainrule train`", ours), ("the chapter's script", theirs)):
        rows.append(
            f"| {name} | {med(rs):.2f} | {min(r.wall_s for r in rs):.2f}–{max(r.wall_s for r in rs):.2f} | "
            f"{statistics.median(r.cpu_s for r in rs):.2f} | {max(r.max_rss_mib for r in rs):.0f} |"
        )
    acc = statistics.median(m["accs"])
    verdict = "met" if max(ratios) <= TARGET_RATIO else "not met"
    lines = [
        f"Command: `{command}` ({datetime.date.today().isoformat()}).",
        *machine(),
        f"Data: the MNIST files in {data_dir}: "
        + ", ".join(f"`{name}` MD5 `{digest}`" for name, digest in md5s(data_dir))
        + ".",
        f"{iters:,} iterations, batch 100, lr 0.1, hidden 50; {runs} runs of each, alternating, after one "
        "untimed run of each (a warm cache: chainrule's decoded copies, the chapter's pickle).",
        f"Load average (1 min) at the start of the runs: {min(m['loads']):.2f}–{max(m['loads']):.2f}.",
        "",
        *rows,
        "",
        "Ratio `chainrule train` ÷ the chapter's script, per round: "
        + ", ".join(f"{r:.3f}" for r in ratios)
        + f"; median {statistics.median(ratios):.3f}, worst {max(ratios):.3f} (target ≤ {TARGET_RATIO}: {verdict}).",
        f"Test accuracy of chainrule's last epoch line: {acc:.4f} (median over the runs; every run: "
        + ", ".join(f"{a:.4f}" for a in m["accs"])
        + f"); the chapter reports {CHAPTER_TEST_ACC}, a difference of {acc - CHAPTER_TEST_ACC:+.4f}. "
        "The chapter's script here, from its own random weights each run: "
        + ", ".join(f"{a:.4f}" for a in m["chapter_accs"])
        + ".",
        "",
        "Where the time of one more `chainrule train` went (benchmarks/_phases.py: the same command in one "
        "process with a clock around each phase; the interpreter's start is not in it):",
        "",
        "| phase | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds:.2f} |" for name, seconds in m["phases"].items()),
        "",
        "- Both are one process each, timed from spawn to exit, with output to a file. chainrule "
        "also draws and saves accuracy.png, metrics.csv, params.npz and run.json; the chapter's script "
        "saves nothing.",
        "- The chapter's script: benchmarks/chapter_train.py (the listing of section 5.7.4, the book's "
        "loader: pickle, float32 ÷ 255, one-hot by a loop over the rows).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=3, help="timed runs of each command (default 3)")
    parser.add_argument(
        "--iters", type=positive_int, default=10000, help="iterations of each run (default 10000)"
    )
    parser.add_argument("--data-dir", help="a folder with the four gzipped MNIST IDX files")
    parser.add_argument(
        "--write", action="store_true", help=f"replace the '{SECTION}' section of BENCHMARKS.md"
    )
    args = parser.parse_args(argv)
    data_dir = find_data_dir(args.data_dir)
    if data_dir is None or not all((data_dir / f"{n}.gz").is_file() for n in IDX_NAMES):
        print("bench_command: needs --data-dir DIR with the four gzipped MNIST IDX files", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="chainrule-bench-command-") as work:
        m = measure(args.runs, args.iters, data_dir, Path(work))
    command = shlex.join(["python", "benchmarks/bench_command.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(m, args.runs, args.iters, data_dir, command)
    print(text)
    if args.write:
        BENCHMARKS_MD.write_text(replace_section(BENCHMARKS_MD.read_text(), SECTION, text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
