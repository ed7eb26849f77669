"""``chainrule train``: the chapter's MNIST run, with a progress bar and saved outputs."""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule.files import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # NumPy is imported where arrays are made, so building the command line stays light
    import numpy as np


class RunError(Exception):
    """A training run cannot start or cannot save: reported in one line."""


@dataclass(frozen=True)
class Settings:
    """The chapter's hyper-parameters, as defaults."""

    iters: int = 10_000
    batch_size: int = 100
    lr: float = 0.1
    hidden: tuple[int, ...] = (50,)
    seed: int = 0
    activation: str | None = None  # None: the chapter's TwoLayerNet (with one hidden layer)

    def describe(self) -> str:
        """The network, as a learner would write it."""
        if self.activation is None and len(self.hidden) == 1:
            return f"TwoLayerNet(784, {self.hidden[0]}, 10)"
        return f"MultiLayerNet(784, {list(self.hidden)}, 10, activation={self.activation or 'relu'!r})"


@dataclass
class Record:
    """What a run has done so far: every loss, and one row per epoch."""

    losses: list[float] = field(default_factory=list)
    epochs: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    interrupted_at: int | None = None


def fresh_run_dir(root: Path = Path("runs")) -> Path:
    """A new folder under ``runs/`` named by the time, never one that exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        candidate = root / (stamp if n == 1 else f"{stamp}-{n}")
        if not candidate.exists():
            return candidate
    raise RunError(f"cannot find a fresh folder under {root}")


def prepare_out(out: Path) -> Path:
    """Make ``out`` and prove it is writable before any training starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except FileExistsError:
        raise RunError(f"cannot write to {out}: it exists and is not a folder") from None
    except OSError as exc:
        raise RunError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return out


def metrics_csv(record: Record) -> str:
    """One row per epoch: epoch, iteration, loss, train accuracy, test accuracy."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", "iteration", "loss", "train_acc", "test_acc"])
    for epoch, it, loss, train_acc, test_acc in record.epochs:
        writer.writerow([epoch, it, repr(loss), repr(train_acc), repr(test_acc)])
    return buf.getvalue()


def accuracy_png(record: Record) -> bytes:
    """The chapter's figure: train and test accuracy per epoch, and the loss curve."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    acc, loss = fig.subplots(1, 2)
    epochs = [e[0] for e in record.epochs]
    acc.plot(epochs, [e[3] for e in record.epochs], marker="o", markersize=3, label="train acc")
    acc.plot(
        epochs, [e[4] for e in record.epochs], linestyle="--", marker="s", markersize=3, label="test acc"
    )
    acc.set_xlabel("epochs")
    acc.set_ylabel("accuracy")
    acc.set_ylim(0, 1.0)
    acc.legend(loc="lower right")
    acc.set_title("accuracy")
    loss.plot(range(len(record.losses)), record.losses, linewidth=0.6)
    loss.set_xlabel("iteration")
    loss.set_ylabel("loss")
    loss.set_title("training loss")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def params_npz(params: dict[str, np.ndarray]) -> bytes:
    """The learned parameters as an .npz (no pickle)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **params)
    return buf.getvalue()


def save(out: Path, record: Record, params: dict[str, np.ndarray]) -> list[Path]:
    """Write the three outputs, each atomically."""
    try:
        return [
            atomic_write_text(out / "metrics.csv", metrics_csv(record)),
            atomic_write_bytes(out / "accuracy.png", accuracy_png(record)),
            atomic_write_bytes(out / "params.npz", params_npz(params)),
        ]
    except OSError as exc:
        raise RunError(f"cannot write to {out}: {exc.strerror or exc}") from None


class _NoBar:
    """What run() asks of a progress bar, doing nothing: without a terminal, tqdm is not even imported."""

    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **values: object) -> None:
        pass

    def write(self, line: str) -> None:
        print(line, file=sys.stderr)

    def close(self) -> None:
        pass


def _progress_bar(total: int) -> object:
    """tqdm's bar on standard error, cleared when done."""
    from tqdm import tqdm

    return tqdm(total=total, unit="it", leave=False, dynamic_ncols=True)


def run(
    settings: Settings,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    out: Path,
    echo: Callable[[str], object] = print,
    progress: bool | None = None,
) -> tuple[Record, dict[str, np.ndarray], list[Path]]:
    """Train the generated TwoLayerNet; Ctrl-C stops it and keeps what was done."""
    import numpy as np

    from generated.train_neuralnet import train

    prepare_out(out)
    (x_train, t_train), (x_test, t_test) = data
    record = Record()
    show = sys.stderr.isatty() if progress is None else progress
    bar = _progress_bar(settings.iters) if show else _NoBar()
    state: dict[str, object] = {}

    def on_iteration(i: int, loss: float) -> None:
        record.losses.append(loss)
        bar.update(1)
        if i % 50 == 0:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def on_epoch(epoch: int, i: int, train_acc: float, test_acc: float) -> None:
        record.epochs.append((epoch, i, record.losses[-1], float(train_acc), float(test_acc)))
        line = f"epoch {epoch:3d}  iteration {i:6d}  train acc {float(train_acc):.4f}  test acc {float(test_acc):.4f}"
        if show:
            bar.write(line)
        else:
            echo(line)

    def keep(network: object) -> None:
        state["network"] = network

    try:
        network, _ = train(
            x_train,
            t_train,
            x_test,
            t_test,
            iters_num=settings.iters,
            batch_size=settings.batch_size,
            learning_rate=settings.lr,
            hidden_size=settings.hidden[0]
            if settings.activation is None and len(settings.hidden) == 1
            else list(settings.hidden),
            activation=settings.activation,
            seed=settings.seed,
            on_epoch=on_epoch,
            on_iteration=on_iteration,
            on_start=keep,
        )
    except KeyboardInterrupt:
        record.interrupted_at = len(record.losses)
        network = state.get("network")
        if network is None:
            raise
    finally:
        bar.close()
    params = {k: np.array(v) for k, v in network.params.items()}  # type: ignore[attr-defined]
    return record, params, save(out, record, params)


def main_train(args: object) -> int:
    """The ``train`` subcommand: load data, train, save, say where."""
    from chainrule.mnist import MnistError, load_mnist

    settings = Settings(
        iters=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=tuple(args.hidden),
        seed=args.seed,
        activation=args.activation,
    )
    if settings.activation is not None:
        from generated.multi_layer_net import ACTIVATIONS

        if settings.activation not in ACTIVATIONS:
            raise RunError(
                f"unknown activation {settings.activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
    out = prepare_out(Path(args.out) if args.out else fresh_run_dir())  # fail before loading data
    try:
        data = load_mnist(normalize=True, one_hot_label=True, data_dir=args.data_dir)
    except MnistError as exc:
        raise RunError(str(exc)) from None
    (x_train, _), (x_test, _) = data
    print(
        f"training {settings.describe()} on {len(x_train):,} images, testing on {len(x_test):,}:"
        f" {settings.iters:,} iterations, batch {settings.batch_size}, lr {settings.lr}, seed {settings.seed}",
        file=sys.stderr,
    )
    record, _, paths = run(settings, data, out)
    final = record.epochs[-1] if record.epochs else None
    if record.interrupted_at is not None:
        print(f"interrupted after {record.interrupted_at:,} iterations; saved what was done", file=sys.stderr)
    if final is not None:
        print(f"final: train acc {final[3]:.4f}, test acc {final[4]:.4f}")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 130 if record.interrupted_at is not None else 0


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value
