"""Each generated activation's forward + backward against the memory floor (a copy) and one np.tanh pass.

Run: python benchmarks/bench_kernels.py [--repeats 5] [--number 100] [--write]

For each shape (100x256 and 100x1000, float32) and each activation of
``generated.multi_layer_net.ACTIVATIONS``: ``layer.forward(x)`` then
``layer.backward(dout)``.  Two references read the same arrays: the copy floor
(``np.copyto`` of x into a kept array and of dout into another: each input read once,
as much written) and ``np.tanh(x, out=kept)``, a one-pass transcendental.  Each repeat
draws a fresh pool of 8 standard-normal (x, dout) pairs and cycles through it, so
that no branch predictor learns the signs (np.where costs more when it cannot), and
times every kernel on it in turn, the order rotated each repeat.  Outputs must stay
float32, or the benchmark stops.  ``--write`` replaces the "## Activation kernels
against the memory floor" section of BENCHMARKS.md.  Linux only (/proc/stat).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Measure this checkout's generated/, not whatever copy of chainrule is installed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.bench_train import (  # noqa: E402
    BENCHMARKS_MD,
    BUSY_SHARE,
    cpu_sample,
    machine,
    others_share,
    positive_int,
    write_section,
)
from chainrule.generated.multi_layer_net import ACTIVATIONS  # noqa: E402

SECTION = "## Activation kernels against the memory floor"
SHAPES = ((100, 256), (100, 1000))
DTYPE = np.float32
POOL = 8  # different (x, dout) pairs cycled through within a timed batch of calls
COPY, TANH = "copy floor", "np.tanh"
READABLE = " (forward, backward)"
# Above this share of the CPUs taken by other processes during the repeats, no verdict is given.
WITHHOLD_SHARE = 0.25
# The target: forward + backward at most 3x the copy floor, at 100x1000 float32.
TARGET, TARGET_SHAPE = 3.0, (100, 1000)


class DtypeError(RuntimeError):
    """An activation returned something other than float32 from float32 inputs."""


@dataclass(frozen=True)
class Row:
    """One kernel at one shape: per repeat, the time of one call and its multiple of the copy floor."""

    kernel: str
    shape: tuple[int, int]
    seconds: list[float]
    ratios: list[float]  # ÷ the copy floor of the same repeat
    others: list[float]  # per repeat, the CPU share other processes used during it (all kernels)
    dtypes: tuple[str, ...]  # of what the kernel returns: forward's and backward's for an activation

    @property
    def ns_per_element(self) -> float:
        """Median time of one call over the elements of x."""
        return statistics.median(self.seconds) / (self.shape[0] * self.shape[1]) * 1e9

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


def kernels(shape: tuple[int, int]) -> dict[str, Callable[[np.ndarray, np.ndarray], tuple]]:
    """Name -> a call on (x, dout): the two references, then each activation's forward and backward."""
    kept_x, kept_dout, kept_tanh = (np.empty(shape, DTYPE) for _ in range(3))

    def copy_floor(x, dout):
        np.copyto(kept_x, x)
        np.copyto(kept_dout, dout)
        return kept_x, kept_dout

    def one_tanh(x, dout):
        return (np.tanh(x, out=kept_tanh),)

    def step(layer_class):
        layer = layer_class()
        return lambda x, dout: (layer.step_forward(x), layer.step_backward(dout))

    def readable(layer_class):
        layer = layer_class()
        return lambda x, dout: (layer.forward(x), layer.backward(dout))

    calls = {COPY: copy_floor, TANH: one_tanh}
    calls.update({name: step(layer_class) for name, (layer_class, _init) in ACTIVATIONS.items()})
    calls.update(
        {f"{name}{READABLE}": readable(layer_class) for name, (layer_class, _init) in ACTIVATIONS.items()}
    )
    return calls


def draw_pool(rng: np.random.Generator, shape: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """POOL fresh (x, dout) pairs, standard normal, float32."""
    return [
        (rng.standard_normal(shape, dtype=DTYPE), rng.standard_normal(shape, dtype=DTYPE))
        for _ in range(POOL)
    ]


def time_calls(call: Callable, pool: list[tuple[np.ndarray, np.ndarray]], number: int) -> float:
    """Seconds per call over `number` calls cycling through the pool, the garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for i in range(number):
            x, dout = pool[i % POOL]
            call(x, dout)
        return (time.perf_counter() - start) / number
    finally:
        if enabled:
            gc.enable()


def report_rows(
    shape: tuple[int, int], repeats: int = 5, number: int = 100, seed: int = 0, log: bool = False
) -> list[Row]:
    """Time every kernel at one shape: a row each, the references first. Raises DtypeError on a non-float32 output."""
    rng = np.random.default_rng([seed, *shape])
    calls = kernels(shape)
    names = list(calls)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    others: list[float] = []  # a whole repeat at a time: /proc/stat counts in ticks of 10 ms
    dtypes: dict[str, tuple[str, ...]] = {}
    for r in range(repeats):
        pool = draw_pool(rng, shape)
        order = names[r % len(names) :] + names[: r % len(names)]
        before = cpu_sample()
        for name in order:
            for x, dout in pool:  # warm-up, untimed: one pass through the pool, and the dtype check
                outputs = calls[name](x, dout)
            dtypes[name] = tuple(str(out.dtype) for out in outputs)
            if any(out.dtype != DTYPE for out in outputs):
                raise DtypeError(
                    f"{name} at {shape[0]}x{shape[1]} returns {' and '.join(dtypes[name])} from float32 inputs"
                )
            seconds[name].append(time_calls(calls[name], pool, number))
        others.append(others_share(before, cpu_sample()))
        if log:
            print(
                f"{shape[0]}x{shape[1]} repeat {r + 1}/{repeats}: "
                + ", ".join(f"{n} {seconds[n][-1] * 1e6:.1f} µs" for n in names)
                + f" (other processes: {others[-1]:.0%} of the CPUs)",
                file=sys.stderr,
                flush=True,
            )
    return [
        Row(
            name,
            shape,
            seconds[name],
            [s / c for s, c in zip(seconds[name], seconds[COPY], strict=True)],
            others,
            dtypes[name],
        )
        for name in names
    ]


def verdict(row: Row) -> str:
    """Whether an activation's training step meets the issue's target; references, the readable
    methods and other shapes have none."""
    if row.kernel in (COPY, TANH) or row.kernel.endswith(READABLE) or row.shape != TARGET_SHAPE:
        return ""
    if max(row.others) > WITHHOLD_SHARE:
        return "withheld (busy)"
    return "met" if row.ratio <= TARGET else "**not met**"


def table(rows: list[Row]) -> str:
    """The Markdown table: a row per shape and kernel."""
    lines = [
        "| shape | kernel | ns per element, median | ÷ copy floor, median (min–max) | ÷ np.tanh "
        f"| target ≤ {TARGET:.0f}× copy at {TARGET_SHAPE[0]}x{TARGET_SHAPE[1]} |",
        "|---|---|---:|---:|---:|---|",
    ]
    tanh = {row.shape: row for row in rows if row.kernel == TANH}
    for row in rows:
        ratio = f"{row.ratio:.2f} ({min(row.ratios):.2f}–{max(row.ratios):.2f})"
        vs_tanh = statistics.median(s / t for s, t in zip(row.seconds, tanh[row.shape].seconds, strict=True))
        lines.append(
            f"| {row.shape[0]}x{row.shape[1]} | {row.kernel} | {row.ns_per_element:.2f} | {ratio} "
            f"| {vs_tanh:.2f} | {verdict(row)} |"
        )
    return "\n".join(lines)


def report(rows: list[Row], args: argparse.Namespace, command: str) -> str:
    """The Markdown body of the section."""
    worst = max(max(row.others) for row in rows)
    targeted = [verdict(row) for row in rows if verdict(row)]
    parts = [
        f"Command: `{command}` ({datetime.date.today().isoformat()}).",
        *machine(),
        f"float32; {args.repeats} repeats, each a fresh pool of {POOL} standard-normal (x, dout) pairs "
        f"(seed {args.seed}) and {args.number} timed calls per kernel cycling through it, after one untimed "
        "pass; the kernels alternate, the order rotated each repeat; medians.",
        "Other processes' CPU share, the largest over the repeats (CPU time of everything else on the "
        "machine from /proc/stat, steal included, as a fraction of all CPUs): "
        + ", ".join(
            f"{row.shape[0]}x{row.shape[1]} {max(row.others):.0%}" for row in rows if row.kernel == COPY
        )
        + ".",
        "",
    ]
    if worst > BUSY_SHARE:
        parts += [
            f"**Warning**: other processes used up to {worst:.0%} of the CPUs during a repeat; these "
            "numbers are not representative.",
            "",
        ]
    parts += [
        table(rows),
        "",
        f"Target met by {targeted.count('met')} of {len(targeted)} activations at "
        f"{TARGET_SHAPE[0]}x{TARGET_SHAPE[1]}.",
        "",
        "- A call: `layer.step_forward(x)` then `layer.step_backward(dout)`, what `MultiLayerNet.train_step` "
        "runs: every pass into an array the layer keeps, backward reading what forward kept. "
        f"`{READABLE.strip()}`: the same layer's `forward(x)` then `backward(dout)`, the formulas as the "
        "derivation prints them, each operation allocating its result. ns per element: the median time of "
        "one call over the elements of x.",
        "- Copy floor: `np.copyto` of x into a kept array and of dout into another: the inputs read once and "
        "as much written, no arithmetic; a forward+backward cannot touch less memory. `np.tanh`: "
        "`np.tanh(x, out=kept)`, one pass of one transcendental function over x.",
        "- ÷ copy floor: each repeat's time over that repeat's copy floor, the median and range; ÷ np.tanh "
        "likewise. Every output was checked to be float32.",
        "- Fresh data: `np.where` (ReLU, LeakyReLU, ELU, sigmoid) costs more when the branch predictor "
        f"cannot learn the signs, as in training; cycling through {POOL} different arrays keeps it from "
        "learning them.",
    ]
    return "\n".join(parts)


def parse_shape(text: str) -> tuple[int, int]:
    """``100x1000`` as (100, 1000)."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write a shape as ROWSxCOLUMNS, e.g. 100x1000") from None
    if rows < 1 or cols < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sizes must be at least 1")
    return rows, cols


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5, help="fresh pools per shape")
    parser.add_argument("--number", type=positive_int, default=100, help="timed calls per kernel and repeat")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=parse_shape,
        default=list(SHAPES),
        metavar="RxC",
        help="default: 100x256 100x1000",
    )
    parser.add_argument(
        "--write", action="store_true", help=f"update the '{SECTION}' section of BENCHMARKS.md"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows: list[Row] = []
    try:
        for shape in args.shapes:
            rows += report_rows(shape, args.repeats, args.number, args.seed, log=True)
    except DtypeError as exc:
        print(f"bench_kernels: {exc}", file=sys.stderr)
        return 1
    command = shlex.join(["python", "benchmarks/bench_kernels.py", *(sys.argv[1:] if argv is None else argv)])
    body = report(rows, args, command)
    print(body)
    if args.write:
        write_section(body, heading=SECTION)
        print(f"\nwrote the '{SECTION}' section of {BENCHMARKS_MD.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
