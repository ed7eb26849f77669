"""The chapter's MNIST training run (784-50-10, batch 100, lr 0.1): generated code vs the chapter's, PyTorch, and the BLAS floor.

Run: python benchmarks/bench_train.py [--runs 3] [--iters 10000] [--data-dir DIR] [--write]

All implementations start from the same weights and see the same batches (see
benchmarks/_impls.py).  The timed runs alternate between implementations in one
process; peak memory is measured in a fresh subprocess per implementation
(``--only IMPL --runs 1``).  ``--write`` also replaces the "## Training loop"
section of BENCHMARKS.md.  MNIST comes from --data-dir or the chainrule cache;
it is never downloaded: without it the shipped sample is tiled to 60,000/10,000.
Linux only (/proc, ru_maxrss in KiB).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Measure this checkout's generated/, not whatever copy of chainrule is installed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks._impls import IMPLEMENTATIONS, Data, Result, Setup, make_setup, torch_available  # noqa: E402
from chainrule.mnist import MnistError, MnistSource, load_mnist, locate_mnist  # noqa: E402
from chainrule.mnist.download import ENV_OFFLINE  # noqa: E402

FULL_TRAIN, FULL_TEST = 60_000, 10_000
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "## Training loop"
RATIO_TO = ("chapter", "torch", "floor")
BUSY_SHARE = 0.05  # other processes' CPU share above which the timings are flagged as unreliable


@dataclass(frozen=True)
class Memory:
    """ru_maxrss of a child that ran one implementation once: at its peak, and before training."""

    peak_mib: float
    before_mib: float


# ---------------------------------------------------------------- data


def find_data(data_dir: str | None) -> MnistSource:
    """Where the data is: --data-dir, else the cache, else the shipped sample; never a download."""
    os.environ[ENV_OFFLINE] = "1"
    return locate_mnist(data_dir, announce=None)


def load_data(source: MnistSource) -> tuple[Data, str]:
    """The training data and a one-line description of where it came from."""
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=True, one_hot_label=True, dtype=np.float32, source=source, announce=None
    )
    data = Data.from_one_hot(x_train, t_train, x_test, t_test)
    if source.kind != "sample":
        return data, source.describe()
    described = (
        f"MNIST not found (no --data-dir, nothing in the cache): the shipped sample "
        f"({source.n_train:,} training, {source.n_test:,} test digits) tiled to "
        f"{FULL_TRAIN:,}/{FULL_TEST:,} images, so the timings are those of full MNIST "
        f"but the accuracies are not (train accuracy is on repeated digits)"
    )
    return data.tiled(FULL_TRAIN, FULL_TEST), described


# ---------------------------------------------------------------- running


def available(names: list[str]) -> list[str]:
    """The implementations that can run here, with a note on stdout for the ones that cannot."""
    if "torch" in names and not torch_available():
        print("torch: not installed, skipped")
        return [n for n in names if n != "torch"]
    return names


def timed_runs(
    data: Data, setup: Setup, names: list[str], runs: int, iters: int
) -> tuple[dict[str, list[Result]], dict[str, list[float]]]:
    """Run every implementation `runs` times, alternating, the order rotated each run.

    Also returns, per run, the share of the CPUs that other processes used meanwhile.
    """
    results: dict[str, list[Result]] = {name: [] for name in names}
    others: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            before = cpu_sample()
            result = IMPLEMENTATIONS[name](data, setup, iters)
            share = others_share(before, cpu_sample())
            results[name].append(result)
            others[name].append(share)
            print(
                f"run {r + 1}/{runs}: {name:9} {result.loop_s:7.2f} s  (other processes: {share:.0%} of the CPUs)",
                file=sys.stderr,
                flush=True,
            )
    return results, others


@dataclass(frozen=True)
class CpuSample:
    """A moment's CPU accounting: wall clock, CPU-seconds of everything, CPU-seconds of this process."""

    wall_s: float
    busy_s: float  # all processes on the machine, from /proc/stat (steal included)
    mine_s: float  # this process and its finished children


def cpu_sample() -> CpuSample:
    """Read the machine's CPU time (the first line of /proc/stat) and this process's."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy_s = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return CpuSample(time.monotonic(), busy_s, t.user + t.system + t.children_user + t.children_system)


def others_share(before: CpuSample, after: CpuSample) -> float:
    """The fraction of all CPUs that other processes kept busy between two samples."""
    capacity = (after.wall_s - before.wall_s) * (os.cpu_count() or 1)
    others = (after.busy_s - before.busy_s) - (after.mine_s - before.mine_s)
    return max(0.0, others) / capacity if capacity > 0 else 0.0


def maxrss_mib() -> float:
    """This process's peak resident set size so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_memory(name: str, args: argparse.Namespace) -> Memory | None:
    """Run one implementation once in a fresh interpreter and read its peak memory (None: it was skipped).

    Linux carries the RSS high-water mark of the process that starts a child across
    exec into the child's ru_maxrss, so call this while the caller is still small.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", name, "--runs", "1", "--json"]
    cmd += ["--iters", str(args.iters), "--seed", str(args.seed)]
    if args.data_dir is not None:
        cmd += ["--data-dir", args.data_dir]
    print(f"memory: {name} in a subprocess", file=sys.stderr, flush=True)
    return memory_of(cmd)


def memory_of(cmd: list[str]) -> Memory | None:
    """Run a benchmark's ``--json`` child and read the peak memory it reports (None: it ran nothing)."""
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        return None
    report = json.loads(lines[-1])
    return Memory(report["peak_mib"], report["before_mib"])


# ---------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Measurements:
    """Everything the report shows."""

    results: dict[str, list[Result]]
    others: dict[str, list[float]]  # per run, the CPU share other processes used meanwhile
    memory: dict[str, Memory]
    runs: int
    iters: int
    draw_s: float
    data: str

    def median(self, name: str, attr: str) -> float:
        """The median over the runs of one implementation's Result attribute."""
        return statistics.median(getattr(r, attr) for r in self.results[name])


def table(m: Measurements) -> str:
    """The Markdown table of medians over the runs."""
    gen_loop = m.median("generated", "loop_s") if "generated" in m.results else None
    lines = [
        f"| implementation | loop, median of {m.runs} (s) | loop min–max (s) | per iteration, without "
        "evaluation (ms) | evaluation (s) | peak memory (MiB) | final train acc | final test acc "
        "| generated ÷ this (loop) | other processes' CPU share, max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rs in m.results.items():
        loop, loops = m.median(name, "loop_s"), [r.loop_s for r in rs]
        evals = "—"
        if rs[0].n_evals:
            evals = (
                f"{m.median(name, 'eval_s'):.2f} ({rs[0].n_evals}×{' est.' if name == 'generated' else ''})"
            )
        mem = f"{m.memory[name].peak_mib:.0f}" if name in m.memory else "—"
        accs = [
            "—" if getattr(rs[0], a) is None else f"{m.median(name, a):.4f}"
            for a in ("train_acc", "test_acc")
        ]
        ratio = f"{gen_loop / loop:.2f}" if gen_loop is not None else "—"
        lines.append(
            f"| {name} | {loop:.2f} | {min(loops):.2f}–{max(loops):.2f} | {m.median(name, 'per_iter_ms'):.3f} "
            f"| {evals} | {mem} | {accs[0]} | {accs[1]} | {ratio} | {max(m.others[name]):.0%} |"
        )
    return "\n".join(lines)


def ratios(m: Measurements) -> str:
    """generated/chapter, generated/torch, generated/floor of the median loop times."""
    if "generated" not in m.results:
        return "Loop-time ratios: n/a (generated not run)."
    gen = m.median("generated", "loop_s")
    parts = [
        f"generated/{name} = {gen / m.median(name, 'loop_s'):.2f}"
        if name in m.results
        else f"generated/{name} = n/a"
        for name in RATIO_TO
    ]
    return "Loop-time ratios: " + ", ".join(parts) + "."


def notes(m: Measurements) -> list[str]:
    """What the table's columns mean and where they are estimated."""
    out = [
        "Loop: the whole training loop, accuracy evaluation included. Per iteration: (loop − evaluation) / iterations.",
        "Evaluation: train and test accuracy on the full sets once per epoch. For `generated` it is estimated "
        "(est.): train() computes the accuracies before it calls on_epoch, so one evaluation is timed after "
        "the loop and multiplied by the number of evaluations. For `chapter` and `torch` it is timed inside the loop.",
        "`chapter`: float64 weights (the same initial values), float32 images, so every product converts; "
        "8 products per iteration (dx of the first layer, and a second forward pass for the loss after the update). "
        "`generated`: float32, 5 products per iteration in `TwoLayerNet.train_step`, each into an array kept "
        "across steps, the batch gathered into one array; evaluation through the cache-free `scores`. "
        "`torch`: float32, 5 products; it records the loss of the forward pass it backpropagates, as PyTorch "
        "code does, so there is no second forward pass. "
        "`floor`: only the float32 matrix products: 5 per iteration on the gathered batch, and the evaluation's two forward products over both sets once per epoch; no ReLU, softmax, bias, update or argmax. Like `generated`, it gathers into one array and writes every product into an array allocated once, so that it stays the fastest way to do that work. Its per-iteration column is the training products alone.",
        f"Batches: `generated` draws its own in the loop (`rng.integers`, a thousand iterations' batches a call: "
        f"the same numbers as one `rng.choice` per iteration, which take {m.draw_s:.2f} s outside any loop); "
        "the others read the identical batches precomputed, so their loops do not include them.",
        "Other processes' CPU share: CPU time of everything else on the machine (from /proc/stat, steal "
        "included) during a run, as a fraction of all CPUs; the largest over the runs.",
    ]
    if m.memory:
        before = ", ".join(
            f"{name} {m.memory[name].before_mib:.0f}" for name in m.results if name in m.memory
        )
        out.append(
            "Peak memory: ru_maxrss of a fresh process that loads the data and runs one implementation once; "
            f"it includes the interpreter, NumPy and the data (MiB before training: {before})."
        )
    return out


def warning(m: Measurements) -> list[str]:
    """A warning when other processes took a noticeable share of the CPUs during some run."""
    worst = max(max(shares) for shares in m.others.values())
    if worst <= BUSY_SHARE:
        return []
    return [
        f"**Warning**: other processes used up to {worst:.0%} of the CPUs during a run; multi-threaded "
        "BLAS and OpenMP slow down badly when they share CPUs, so these timings are not representative.",
        "",
    ]


def machine() -> list[str]:
    """nproc, CPU model, Python, NumPy and its BLAS, PyTorch if present."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        f"Machine: {len(os.sched_getaffinity(0))} CPUs (nproc), {cpu}; Python {platform.python_version()}; "
        f"NumPy {np.__version__} with {blas()}."
    ]
    if torch_available():
        import torch

        lines.append(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads (its default).")
    return lines


def blas() -> str:
    """NumPy's BLAS: from threadpoolctl if installed, else from np.show_config."""
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            i = infos[0]
            return f"{i.get('internal_api')} {i.get('version')}, {i.get('num_threads')} threads"
    except ImportError:
        pass
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{config['name']} {config.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - the BLAS name is a nicety; never fail the benchmark for it
        return "unknown BLAS"


def report(m: Measurements, command: str) -> str:
    """The Markdown body of the report: command, machine, setup, table, ratios, notes."""
    parts = [
        f"Command: `{command}` ({datetime.date.today().isoformat()}).",
        *machine(),
        f"Data: {m.data}.",
        f"{m.iters:,} iterations, batch 100, lr 0.1, hidden 50; {m.runs} runs alternating between "
        "implementations in one process; medians.",
        "",
        *warning(m),
        table(m),
        "",
        ratios(m),
        "",
        *(f"- {n}" for n in notes(m)),
    ]
    return "\n".join(parts)


def replace_section(text: str, heading: str, body: str) -> str:
    """Put body under heading in a Markdown text, replacing that section or appending it; others are kept."""
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    return (text.rstrip("\n") + "\n\n" if text.strip() else "# Benchmarks\n\n") + section


def write_section(body: str, path: Path = BENCHMARKS_MD, heading: str = SECTION) -> None:
    """Replace one section of BENCHMARKS.md (the training loop's unless told), atomically."""
    text = path.read_text() if path.exists() else ""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(replace_section(text, heading, body))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- command line


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=positive_int, default=3, help="timed runs per implementation")
    parser.add_argument("--iters", type=positive_int, default=10000, help="iterations per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="a directory with the four MNIST IDX files")
    parser.add_argument("--only", choices=list(IMPLEMENTATIONS), help="run one implementation")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument(
        "--write", action="store_true", help=f"update the '{SECTION}' section of BENCHMARKS.md"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the memory child's report
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        source = find_data(args.data_dir)
    except MnistError as exc:
        print(f"bench_train: {exc}", file=sys.stderr)
        return 2
    memory: dict[str, Memory] = {}
    if not (args.json or args.only or args.no_memory):
        # First, while this process holds no data and no torch (see child_memory).
        for name in IMPLEMENTATIONS:
            try:
                if (mem := child_memory(name, args)) is not None:
                    memory[name] = mem
            except subprocess.CalledProcessError as exc:
                print(
                    f"bench_train: the memory run of {name} failed (exit status {exc.returncode})",
                    file=sys.stderr,
                )
                return 1
    try:
        data, described = load_data(source)
    except MnistError as exc:
        print(f"bench_train: {exc}", file=sys.stderr)
        return 2
    names = available([args.only] if args.only else list(IMPLEMENTATIONS))
    if not names:
        return 0
    before_mib = maxrss_mib()
    setup = make_setup(data, args.seed, args.iters)
    results, others = timed_runs(data, setup, names, args.runs, args.iters)

    if args.json:
        print(json.dumps({"impl": names[0], "peak_mib": maxrss_mib(), "before_mib": before_mib}))
        return 0
    if args.only:
        # One implementation ran in this process, so its own peak is the measurement.
        memory = {names[0]: Memory(maxrss_mib(), before_mib)}

    m = Measurements(results, others, memory, args.runs, args.iters, setup.draw_s, described)
    command = shlex.join(["python", "benchmarks/bench_train.py", *(sys.argv[1:] if argv is None else argv)])
    body = report(m, command)
    print(body)
    if args.write:
        write_section(body)
        print(f"\nwrote the '{SECTION}' section of {BENCHMARKS_MD.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
