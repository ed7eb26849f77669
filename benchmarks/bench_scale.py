"""Time per training step of the generated MultiLayerNet against PyTorch on the CPU, over a grid of networks.

Run: python benchmarks/bench_scale.py [--steps 400] [--repeats 3] [--nets NET ...] [--write]

Every network trains in float32, batch 100, lr 0.1, on random images in [0, 1)
(60,000 x 784, a fixed seed) with random labels 0..9: no MNIST is needed, and the
timings are those of MNIST-sized batches.  Both implementations start from the same
weights (``MultiLayerNet(seed=...)``, copied into PyTorch transposed) and read the
same batches (one array of batch indices, drawn once).  For each network the two
alternate in one process, the order rotated each repeat; each timed run starts from
the initial weights and takes ``--warmup`` untimed steps first.  Peak memory is
ru_maxrss of a fresh process per implementation and network
(``--only NET --impl IMPL --json``), less its ru_maxrss before training.
``--write`` replaces the "## Scale: MultiLayerNet against PyTorch" section of
BENCHMARKS.md and draws benchmarks/scale.png.  A network is written
``784-100-100-10-relu``: the layer sizes, then the activation.  Linux only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import subprocess
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
    Memory,
    available,
    cpu_sample,
    machine,
    maxrss_mib,
    memory_of,
    others_share,
    positive_int,
    write_section,
)
from chainrule.generated.multi_layer_net import ACTIVATIONS, MultiLayerNet  # noqa: E402

SECTION = "## Scale: MultiLayerNet against PyTorch"
PLOT = ROOT / "benchmarks" / "scale.png"
IMPLS = ("generated", "torch")
BATCH_SIZE = 100
LEARNING_RATE = 0.1
N_IMAGES = 60_000
N_PIXELS, N_CLASSES = 784, 10
# The targets for generated ÷ torch: at most 1.0 everywhere, at most 0.8 for these activations.
TARGET = 1.0
TARGET_STRICT, STRICT_ACTIVATIONS = 0.8, ("relu", "sigmoid", "tanh")


# ---------------------------------------------------------------- networks, data, setup


@dataclass(frozen=True)
class Net:
    """A network of the grid: layer sizes (input first, classes last) and the activation between them."""

    sizes: tuple[int, ...]
    activation: str

    @property
    def name(self) -> str:
        """How the command line and the table write it: ``784-50-10-relu``."""
        return "-".join(map(str, self.sizes)) + "-" + self.activation

    @property
    def n_params(self) -> int:
        """Weights and biases of every Affine layer."""
        return sum(a * b + b for a, b in zip(self.sizes, self.sizes[1:], strict=False))

    @property
    def target(self) -> float:
        """The largest generated ÷ torch the issue accepts for this network."""
        return TARGET_STRICT if self.activation in STRICT_ACTIVATIONS else TARGET


def parse_net(text: str) -> Net:
    """``784-50-10-relu`` (a space or a colon before the activation also works) as a Net."""
    head, sep, activation = text.replace(":", "-").replace(" ", "-").rpartition("-")
    try:
        sizes = tuple(int(s) for s in head.split("-")) if sep else ()
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write a network as layer sizes then activation, e.g. 784-50-10-relu"
        )
    if activation not in ACTIVATIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}"
        )
    return Net(sizes, activation)


GRID = (
    Net((784, 50, 10), "relu"),
    Net((784, 256, 256, 10), "gelu"),
    Net((784, 1000, 10), "relu"),
    Net((784, 512, 512, 512, 10), "tanh"),
    Net((784, 1000, 1000, 10), "relu"),
    *(Net((784, 100, 100, 100, 10), activation) for activation in ACTIVATIONS),
)


@dataclass(frozen=True)
class Data:
    """Images as float32 rows in [0, 1), integer labels."""

    x: np.ndarray
    labels: np.ndarray


def make_data(n_images: int = N_IMAGES, seed: int = 0) -> Data:
    """Random images and labels from a fixed seed: the shapes of MNIST with nothing to learn."""
    rng = np.random.default_rng([seed, 1])
    x = rng.random((n_images, N_PIXELS), dtype=np.float32)
    return Data(x, rng.integers(0, N_CLASSES, n_images))


@dataclass(frozen=True)
class Setup:
    """What both implementations start from for one network: its initial weights, and the batches."""

    net: Net
    init: dict[str, np.ndarray]  # float32, W as (fan_in, fan_out) as MultiLayerNet holds it
    batches: np.ndarray  # (warm-up + timed steps, BATCH_SIZE) int64; row i is step i's batch


def draw_batches(n_images: int, n_steps: int, seed: int = 0) -> np.ndarray:
    """The batch indices of every step, drawn once and shared by every network and implementation."""
    return np.random.default_rng([seed, 2]).integers(0, n_images, (n_steps, BATCH_SIZE))


def make_setup(net: Net, batches: np.ndarray, seed: int = 0) -> Setup:
    """The initial weights as ``MultiLayerNet(seed=seed)`` draws them (the activation's own init)."""
    model = MultiLayerNet(
        net.sizes[0], list(net.sizes[1:-1]), net.sizes[-1], net.activation, dtype=np.float32, seed=seed
    )
    return Setup(net, {key: value.copy() for key, value in model.params.items()}, batches)


# ---------------------------------------------------------------- the two training loops


@dataclass
class Run:
    """One training run: the timed steps' wall time, every step's loss, the final parameters."""

    impl: str
    steps: int  # timed steps
    seconds: float
    losses: list[float]  # every step's batch loss before its update, warm-up included
    params: dict[str, np.ndarray]

    @property
    def ms_per_step(self) -> float:
        return self.seconds / self.steps * 1e3


def generated_step(net: MultiLayerNet) -> Callable[[np.ndarray, np.ndarray], float]:
    """``net.train_step`` when the class has it; else ``gradient`` and an in-place update."""
    if hasattr(net, "train_step"):
        return lambda x, t: net.train_step(x, t, LEARNING_RATE)

    def step(x: np.ndarray, t: np.ndarray) -> float:
        grads = net.gradient(x, t)
        for key, grad in grads.items():
            net.params[key] -= LEARNING_RATE * grad  # in place: the layers hold these arrays
        return net.last_loss

    return step


def run_generated(data: Data, setup: Setup, warmup: int, steps: int) -> Run:
    """The generated MultiLayerNet, float32, from setup.init: warm-up steps, then timed steps."""
    net = setup.net
    model = MultiLayerNet(
        net.sizes[0], list(net.sizes[1:-1]), net.sizes[-1], net.activation, dtype=np.float32
    )
    for key, value in setup.init.items():
        np.copyto(model.params[key], value)  # in place: the layers hold these arrays
    step = generated_step(model)
    x_all, labels, batches = data.x, data.labels, setup.batches
    losses = [float(step(x_all[batches[i]], labels[batches[i]])) for i in range(warmup)]
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        batch = batches[i]
        losses.append(step(x_all[batch], labels[batch]))
    seconds = time.perf_counter() - start
    params = {key: value.copy() for key, value in model.params.items()}
    return Run("generated", steps, seconds, [float(loss) for loss in losses], params)


TORCH_ACTIVATIONS = {  # activation name -> a function making the torch module
    "relu": lambda nn: nn.ReLU(),
    "sigmoid": lambda nn: nn.Sigmoid(),
    "tanh": lambda nn: nn.Tanh(),
    "leaky_relu": lambda nn: nn.LeakyReLU(0.01),
    "elu": lambda nn: nn.ELU(1.0),
    "softplus": lambda nn: nn.Softplus(),
    "silu": lambda nn: nn.SiLU(),
    "gelu": lambda nn: nn.GELU(approximate="tanh"),
}


def run_torch(data: Data, setup: Setup, warmup: int, steps: int) -> Run:
    """PyTorch on the CPU as its users write it: nn.Sequential, F.cross_entropy, optim.SGD; default threads."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    n_layers = len(setup.net.sizes) - 1
    modules = []
    for idx in range(1, n_layers + 1):
        fan_in, fan_out = setup.init[f"W{idx}"].shape
        modules.append(nn.Linear(fan_in, fan_out))
        if idx < n_layers:
            modules.append(TORCH_ACTIVATIONS[setup.net.activation](nn))
    model = nn.Sequential(*modules)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for idx, linear in enumerate(linears, start=1):
            linear.weight.copy_(torch.from_numpy(setup.init[f"W{idx}"].T))  # nn.Linear stores W as (out, in)
            linear.bias.copy_(torch.from_numpy(setup.init[f"b{idx}"]))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    x_all, labels, batches = (
        torch.from_numpy(data.x),
        torch.from_numpy(data.labels),
        torch.from_numpy(setup.batches),
    )

    def step(batch) -> float:
        loss = F.cross_entropy(model(x_all[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    losses = [step(batches[i]) for i in range(warmup)]
    start = time.perf_counter()
    for i in range(warmup, warmup + steps):
        losses.append(step(batches[i]))
    seconds = time.perf_counter() - start
    with torch.no_grad():
        params = {}
        for idx, linear in enumerate(linears, start=1):
            params[f"W{idx}"] = linear.weight.T.numpy().copy()
            params[f"b{idx}"] = linear.bias.numpy().copy()
    return Run("torch", steps, seconds, losses, params)


RUNNERS = {"generated": run_generated, "torch": run_torch}


@dataclass
class Pair:
    """One network's alternating runs: per implementation, each repeat's Run; per repeat, others' CPU share."""

    net: Net
    runs: dict[str, list[Run]]
    others: list[float]  # a repeat at a time (both implementations): /proc/stat counts in ticks of 10 ms

    def ms(self, impl: str) -> float:
        """Median time per step over the repeats."""
        return statistics.median(r.ms_per_step for r in self.runs[impl])

    def ratios(self) -> list[float] | None:
        """generated ÷ torch of each repeat (None without torch)."""
        if not {"generated", "torch"} <= self.runs.keys():
            return None
        return [
            g.seconds / t.seconds for g, t in zip(self.runs["generated"], self.runs["torch"], strict=True)
        ]


# Before each run: the threads the other library's last call left spinning (OpenMP's and
# OpenBLAS's workers wait busy for a while before they sleep) would share the CPUs with it.
PAUSE_S = 0.5


def time_pair(
    data: Data, setup: Setup, impls: list[str], warmup: int, steps: int, repeats: int, log: bool = True
) -> Pair:
    """Time one network: the implementations alternate in this process, the order rotated each repeat."""
    runs: dict[str, list[Run]] = {impl: [] for impl in impls}
    others: list[float] = []
    for r in range(repeats):
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        before = cpu_sample()
        for impl in order:
            time.sleep(PAUSE_S)
            runs[impl].append(RUNNERS[impl](data, setup, warmup, steps))
        others.append(others_share(before, cpu_sample()))
        if log:
            print(
                f"{setup.net.name:24} repeat {r + 1}/{repeats}: "
                + ", ".join(
                    f"{impl} {runs[impl][-1].ms_per_step:.3f} ms/step (loss {runs[impl][-1].losses[-1]:.4f})"
                    for impl in order
                )
                + f"; other processes: {others[-1]:.0%} of the CPUs",
                file=sys.stderr,
                flush=True,
            )
    return Pair(setup.net, runs, others)


# ---------------------------------------------------------------- peak memory, in fresh processes


def child_memory(net: Net, impl: str, args: argparse.Namespace) -> Memory | None:
    """One implementation on one network, once, in a fresh interpreter: its ru_maxrss (None: skipped).

    Linux carries the RSS high-water mark of the process that starts a child across
    exec into the child's ru_maxrss, so call this while the caller is still small.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", net.name, "--impl", impl, "--json"]
    cmd += ["--repeats", "1", "--steps", str(args.steps), "--warmup", str(args.warmup)]
    cmd += ["--seed", str(args.seed), "--images", str(args.images)]
    print(f"memory: {net.name} {impl} in a subprocess", file=sys.stderr, flush=True)
    return memory_of(cmd)


def memory_child_main(data: Data, batches: np.ndarray, net: Net, impl: str, args: argparse.Namespace) -> int:
    """The child's side: load what the run needs, note ru_maxrss, train once, print both as JSON."""
    setup = make_setup(net, batches, args.seed)
    if impl == "torch":
        import torch  # noqa: F401 - the library belongs to the baseline, the training to the peak
    before_mib = maxrss_mib()
    RUNNERS[impl](data, setup, args.warmup, args.steps)
    print(json.dumps({"net": net.name, "impl": impl, "peak_mib": maxrss_mib(), "before_mib": before_mib}))
    return 0


# ---------------------------------------------------------------- reporting


# Above this share of the CPUs taken by other processes during a network's repeats, its ratio
# says more about them than about the two implementations: no verdict is given.
WITHHOLD_SHARE = 0.25


def verdict(pair: Pair) -> str:
    """Whether the median generated ÷ torch meets the network's target (withheld on a busy machine)."""
    ratios = pair.ratios()
    if ratios is None:
        return "n/a"
    if max(pair.others) > WITHHOLD_SHARE:
        return "withheld (busy)"
    return "met" if statistics.median(ratios) <= pair.net.target else "**not met**"


def table(pairs: list[Pair], memory: dict[tuple[str, str], Memory], repeats: int) -> str:
    """The Markdown table: one row per network."""
    lines = [
        f"| network | parameters | generated, median of {repeats} (ms/step) | torch (ms/step) "
        "| generated ÷ torch, median (min–max) | target | target met | final loss generated / torch "
        "| peak memory above baseline, generated / torch (MiB) | other processes' CPU share, max |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for pair in pairs:
        net, ratios = pair.net, pair.ratios()
        torch_ms = f"{pair.ms('torch'):.3f}" if "torch" in pair.runs else "—"
        ratio = (
            "—"
            if ratios is None
            else f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"
        )
        losses = " / ".join(
            f"{statistics.median(r.losses[-1] for r in pair.runs[impl]):.4f}" if impl in pair.runs else "—"
            for impl in IMPLS
        )
        mems = " / ".join(
            f"{memory[net.name, impl].peak_mib - memory[net.name, impl].before_mib:.1f}"
            if (net.name, impl) in memory
            else "—"
            for impl in IMPLS
        )
        busy = max(pair.others)
        lines.append(
            f"| {net.name} | {net.n_params:,} | {pair.ms('generated'):.3f} | {torch_ms} | {ratio} "
            f"| ≤ {net.target:.1f} | {verdict(pair)} | {losses} | {mems} | {busy:.0%} |"
        )
    return "\n".join(lines)


def notes(memory: dict[tuple[str, str], Memory], generated_path: str, images: int) -> list[str]:
    """What the columns mean."""
    out = [
        "Time per step: the timed steps' wall time over their number, the batch gathered inside the loop "
        "by both; the median over the repeats. generated ÷ torch: each repeat's ratio (the two ran next "
        "to each other), their median and range; the target is the issue's (≤ 0.8 for relu, sigmoid, "
        "tanh; ≤ 1.0 for every network), met when the median is at most it.",
        f"`generated`: `MultiLayerNet(..., dtype=np.float32)`, {generated_path}. `torch`: `nn.Sequential` "
        "of `nn.Linear` and the same activation (`nn.GELU(approximate='tanh')`, `nn.LeakyReLU(0.01)`, "
        "`nn.ELU(1.0)`), `F.cross_entropy` on integer labels, `optim.SGD(lr=0.1)`; `zero_grad`, "
        "`backward`, `step`, and `loss.item()` each step.",
        "Final loss: the last timed step's batch loss (before its update). Both start from the same "
        "weights and read the same batches, so the two agree to float32 rounding; with random labels "
        "there is nothing to learn and it stays near ln 10 ≈ 2.30.",
        "Other processes' CPU share: CPU time of everything else on the machine (from /proc/stat, steal "
        "included) during a repeat (both implementations' runs), as a fraction of all CPUs; the largest "
        "over the network's repeats.",
    ]
    if memory:
        baselines = []
        for impl in IMPLS:
            values = [f"{m.before_mib:.0f}" for (_, i), m in memory.items() if i == impl]
            if values:
                spread = sorted(set(values), key=float)
                baselines.append(f"{impl} {spread[0]}" + (f"–{spread[-1]}" if len(spread) > 1 else ""))
        images_mb = images * N_PIXELS * 4 / 1e6
        out.append(
            "Peak memory: ru_maxrss of a fresh process per implementation and network that makes the data and "
            "runs the warm-up and timed steps once, less its ru_maxrss just before training (the baseline: "
            f"the interpreter, NumPy, PyTorch for torch, the {images_mb:.0f} MB of images; MiB: {', '.join(baselines)})."
        )
    return out


def warning(pairs: list[Pair]) -> list[str]:
    """A warning when other processes took a noticeable share of the CPUs during some run."""
    worst = max(max(pair.others) for pair in pairs)
    if worst <= BUSY_SHARE:
        return []
    return [
        f"**Warning**: other processes used up to {worst:.0%} of the CPUs during a repeat; multi-threaded "
        "BLAS and OpenMP slow down badly when they share CPUs, so these timings are not representative.",
        "",
    ]


def report(
    pairs: list[Pair],
    memory: dict[tuple[str, str], Memory],
    args: argparse.Namespace,
    command: str,
    generated_path: str,
    plot: Path | None,
) -> str:
    """The Markdown body of the section: command, machine, setup, table, plot, notes."""
    met = [verdict(p) for p in pairs]
    parts = [
        f"Command: `{command}` ({datetime.date.today().isoformat()}).",
        *machine(),
        f"Data: random float32 images in [0, 1) ({args.images:,} × {N_PIXELS}) with random labels 0..9, "
        f"seed {args.seed}; no MNIST.",
        f"{args.steps:,} timed steps after {args.warmup} untimed warm-up steps, batch {BATCH_SIZE}, "
        f"lr {LEARNING_RATE}, float32; {args.repeats} repeats per network alternating generated and PyTorch, "
        "the order rotated each repeat, each from the initial weights; medians.",
        "",
        *warning(pairs),
        table(pairs, memory, args.repeats),
        "",
        f"Targets met: {met.count('met')} of {len(pairs)}"
        + ("" if "n/a" not in met else " (PyTorch not installed: no ratios)")
        + (
            ""
            if "withheld (busy)" not in met
            else f"; {met.count('withheld (busy)')} withheld, other processes having taken more than"
            f" {WITHHOLD_SHARE:.0%} of the CPUs during their repeats"
        )
        + ".",
        "",
    ]
    if plot is not None:
        parts += [f"![Time per step against parameter count]({plot.relative_to(ROOT).as_posix()})", ""]
    parts += [f"- {n}" for n in notes(memory, generated_path, args.images)]
    return "\n".join(parts)


def draw(pairs: list[Pair], path: Path) -> None:
    """Time per step (log) against parameter count (log), a point per network and implementation.

    A network alone at its parameter count is labelled by name beside its generated point.
    Networks sharing a count (the 784-100-100-100-10 row, one per activation) are labelled by
    activation, generated to the right and PyTorch to the left, the labels spread so none overlap.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(10, 6.5), layout="constrained")
    series = (("generated", "generated (NumPy)", "o"), ("torch", "PyTorch (CPU)", "s"))
    for impl, label, marker in series:
        points = [(p.net.n_params, p.ms(impl)) for p in pairs if impl in p.runs]
        if points:
            ax.scatter(*zip(*points, strict=True), marker=marker, label=label, zorder=3)
    for pair in pairs:  # a thin line joins a network's two points
        if "torch" in pair.runs:
            ax.plot(
                [pair.net.n_params] * 2,
                [pair.ms("generated"), pair.ms("torch")],
                color="0.8",
                lw=0.8,
                zorder=1,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(x=0.25, y=0.1)
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_xlabel("parameters")
    ax.set_ylabel("time per training step (ms)")
    ax.set_title("MultiLayerNet against PyTorch, float32, batch 100")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left")
    ax.autoscale_view()

    groups: dict[int, list[Pair]] = {}
    for pair in pairs:
        groups.setdefault(pair.net.n_params, []).append(pair)
    for n_params, group in groups.items():
        if len(group) == 1:
            y = group[0].ms("generated")
            ax.annotate(
                group[0].net.name, (n_params, y), xytext=(6, -3), textcoords="offset points", fontsize=7
            )
            continue
        sizes = "-".join(map(str, group[0].net.sizes))
        low = min(min(p.ms(impl) for impl in p.runs) for p in group)
        ax.annotate(
            sizes, (n_params, low), xytext=(0, -14), textcoords="offset points", fontsize=7, ha="center"
        )
        for impl, dx, ha in (("generated", 10, "left"), ("torch", -10, "right")):
            labels = sorted((p.ms(impl), p.net.activation) for p in group if impl in p.runs)
            _spread_labels(ax, n_params, labels, dx, ha)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _spread_labels(
    ax, x: float, labels: list[tuple[float, str]], dx: float, ha: str, gap: float = 9.0
) -> None:
    """Labels for points at one x, sorted by y, pushed apart to `gap` points and joined to their points."""
    to_pt = 72 / ax.figure.dpi
    last = -np.inf
    for y, text in labels:
        y_pt = ax.transData.transform((x, y))[1] * to_pt
        placed = max(y_pt, last + gap)
        last = placed
        ax.annotate(
            text,
            (x, y),
            xytext=(dx, placed - y_pt - 3),
            textcoords="offset points",
            fontsize=7,
            ha=ha,
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5, "shrinkA": 0, "shrinkB": 2},
        )


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=400, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before each timed run")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per implementation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=positive_int, default=N_IMAGES, help="random training images")
    parser.add_argument(
        "--nets", nargs="+", type=parse_net, metavar="NET", help="networks to run (default: the grid)"
    )
    parser.add_argument("--only", type=parse_net, metavar="NET", help="run one network")
    parser.add_argument("--impl", choices=IMPLS, help="run one implementation")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument(
        "--write", action="store_true", help=f"update the '{SECTION}' section of BENCHMARKS.md"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the memory child's report
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    if args.json and not (args.only and args.impl):
        parser.error("--json needs --only NET and --impl IMPL")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nets = [args.only] if args.only else list(args.nets or GRID)
    impls = available([args.impl] if args.impl else list(IMPLS))
    if not impls:
        return 0
    memory: dict[tuple[str, str], Memory] = {}
    if not (args.json or args.no_memory):
        # First, while this process holds no data and no torch (see child_memory).
        for net in nets:
            for impl in impls:
                try:
                    if (mem := child_memory(net, impl, args)) is not None:
                        memory[net.name, impl] = mem
                except subprocess.CalledProcessError as exc:
                    print(
                        f"bench_scale: the memory run of {net.name} {impl} failed (exit status {exc.returncode})",
                        file=sys.stderr,
                    )
                    return 1
    data = make_data(args.images, args.seed)
    batches = draw_batches(args.images, args.warmup + args.steps, args.seed)
    if args.json:
        return memory_child_main(data, batches, nets[0], impls[0], args)

    pairs = [
        time_pair(data, make_setup(net, batches, args.seed), impls, args.warmup, args.steps, args.repeats)
        for net in nets
    ]
    probe = MultiLayerNet(2, [2], 2, dtype=np.float32, seed=0)
    generated_path = (
        "one `train_step` per step"
        if hasattr(probe, "train_step")
        else "`gradient` then `params[key] -= lr * grads[key]` in place (this MultiLayerNet has no `train_step`)"
    )
    command = shlex.join(["python", "benchmarks/bench_scale.py", *(sys.argv[1:] if argv is None else argv)])
    plot = PLOT if args.write else None
    body = report(pairs, memory, args, command, generated_path, plot)
    print(body)
    if args.write:
        draw(pairs, PLOT)
        write_section(body, heading=SECTION)
        print(
            f"\nwrote the '{SECTION}' section of {BENCHMARKS_MD.name} and {PLOT.relative_to(ROOT)}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
