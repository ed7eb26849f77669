"""The files a run saves: metrics.csv, accuracy.png, params.npz and run.json, made in memory first."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule.runs.record import METRICS_COLUMNS, RUN_JSON, DataInfo, FinalScores, RunInfo

if TYPE_CHECKING:
    import numpy as np

    from chainrule.mnist import MnistSource
    from chainrule.runs.settings import Settings


@dataclass
class Record:
    """What a run has done so far: every loss, and one row per epoch."""

    losses: list[float] = field(default_factory=list)
    epochs: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    interrupted_at: int | None = None
    stopped_by: int | None = None  # the signal that stopped it
    final: FinalScores | None = None  # the saved weights, scored when training ends


def metrics_csv(record: Record) -> str:
    """One row per epoch: epoch, iteration, loss, train accuracy, test accuracy."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(METRICS_COLUMNS)
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


def outputs(record: Record, params: dict[str, np.ndarray], info: RunInfo) -> dict[str, bytes]:
    """The four files of a run, in memory, before any of them is written."""
    return {
        "metrics.csv": metrics_csv(record).encode("utf-8"),
        "accuracy.png": accuracy_png(record),
        "params.npz": params_npz(params),
        RUN_JSON: info.to_json().encode("utf-8"),
    }


def run_info(
    settings: Settings,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    source: MnistSource | None = None,
    package: Path | None = None,
    final: FinalScores | None = None,
) -> RunInfo:
    """What run.json records: the network as ``train`` builds it from these settings and this data."""
    from chainrule.packages.importer import imported_digest
    from chainrule.packages.marker import chainrule_version

    (x_train, t_train), (_x_test, t_test) = data
    two_layer = settings.activation is None and len(settings.hidden) == 1
    classes = t_train.shape[1] if t_train.ndim == 2 else int(max(t_train.max(), t_test.max())) + 1
    return RunInfo(
        network="TwoLayerNet" if two_layer else "MultiLayerNet",
        input_size=int(x_train.shape[1]),
        hidden=tuple(settings.hidden),
        output_size=int(classes),
        activation=None if two_layer else settings.activation or "relu",
        package=None if package is None else str(Path(package).resolve()),
        seed=settings.seed,
        iters=settings.iters,
        batch_size=settings.batch_size,
        lr=settings.lr,
        data=None if source is None else DataInfo.of(source),
        chainrule=chainrule_version(),
        final=final,
        package_sha256=None if package is None else imported_digest(Path(package)),
    )
