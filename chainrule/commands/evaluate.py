"""``chainrule evaluate RUN_DIR``: a saved run's accuracy on the test set, and its confusion matrix.

The matrix prints as a text table; ``-o FILE`` also draws it as a PNG, written atomically.
Nothing is written into the run folder: it holds one complete set from ``train``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule.codegen import i18n
from chainrule.codegen.i18n import _

if TYPE_CHECKING:
    import numpy as np

    from chainrule.runs.record import RunInfo

CLASSES = 10


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` subcommand on the CLI's subparsers."""
    evaluate = sub.add_parser(
        "evaluate", help=_("a trained run's test accuracy and confusion matrix (text, and PNG with -o)")
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help=_("a folder written by 'chainrule train'"))
    evaluate.add_argument(
        "--data-dir",
        metavar="DIR",
        help=_("test on the four MNIST IDX files in DIR (default: the data the run was trained with)"),
    )
    evaluate.add_argument(
        "-o", "--output", metavar="FILE", help=_("also draw the confusion matrix as a PNG here")
    )
    evaluate.add_argument(
        "--verbose", action="store_true", help=_("say in full why the shipped MNIST sample is used")
    )
    evaluate.set_defaults(func=run)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """Counts: row = the true digit, column = the digit the network chose."""
    import numpy as np

    flat = np.bincount(labels.astype(np.int64) * classes + predicted.astype(np.int64), minlength=classes**2)
    return flat.reshape(classes, classes)


def confusion_text(matrix: np.ndarray) -> str:
    """The matrix as an aligned table, true digits down, predicted digits across."""
    width = max(5, len(f"{int(matrix.max()):,}") + 1)
    corner = _("true\\pred")  # the true digit down, the predicted digit across
    head = (
        corner
        + " " * max(9 - i18n.columns(corner), 0)
        + "".join(f"{d:>{width}}" for d in range(matrix.shape[1]))
    )
    rows = [f"{t:>9}" + "".join(f"{int(n):>{width},}" for n in row) for t, row in enumerate(matrix)]
    return "\n".join([head, *rows]) + "\n"


def confusion_png(matrix: np.ndarray, title: str) -> bytes:
    """The matrix drawn as a heat map with every count written in its cell."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.6), dpi=100)
    ax = fig.subplots()
    # A log scale keeps the few mistakes visible beside the diagonal's hundreds.
    image = ax.imshow(matrix + 1, cmap="Blues", norm=LogNorm(vmin=1, vmax=max(2, int(matrix.max()) + 1)))
    fig.colorbar(image, ax=ax, label="images + 1 (log scale)")
    middle = (matrix.max() + 1) ** 0.5
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            if matrix[t, p]:
                color = "white" if matrix[t, p] + 1 > middle else "black"
                ax.text(p, t, f"{int(matrix[t, p])}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def test_set(info: RunInfo, data_dir: str | None, verbose: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The test images (uint8, flattened), their labels, and where they came from.

    The data the run recorded unless ``data_dir`` names other data; data that is gone is
    an error, never a silent switch to some other set.
    """
    from chainrule.mnist import SAMPLE_PATH, MnistError, MnistSource, load_mnist, locate_mnist
    from chainrule.mnist.sources import mnist_cache_dir
    from chainrule.runs.record import RunFileError

    recorded = info.data
    try:
        if data_dir is not None or recorded is None:
            source = locate_mnist(data_dir, verbose=verbose)
        elif recorded.kind == "sample":
            source = MnistSource("sample", SAMPLE_PATH, recorded.n_train, recorded.n_test)
        elif recorded.kind == "dir":
            source = locate_mnist(Path(recorded.path))
        else:
            source = MnistSource("cache", mnist_cache_dir(), recorded.n_train, recorded.n_test)
        _train, (x, t) = load_mnist(normalize=False, source=source)
    except MnistError as exc:
        if data_dir is not None:
            raise RunFileError(str(exc)) from None
        raise RunFileError(
            _("{error} (the run's data); name a copy with --data-dir DIR", error=exc)
        ) from None
    return x, t, source.describe()


def _refuse_inside_run(output: str, run_dir: str) -> None:
    """A run folder holds one whole set that train saved: -o there would replace or add to it."""
    from chainrule.errors import UsageError

    try:
        inside = os.path.samefile(Path(output).absolute().parent, run_dir)
    except OSError:
        return  # no such folder: then it is not the run's, and the write reports what is missing
    if inside:
        raise UsageError(
            _(
                "refusing to write {output}: it is in the run folder {run_dir}, which holds only what 'chainrule train' saved; name a file outside it",
                output=output,
                run_dir=run_dir,
            )
        )


def run(args: argparse.Namespace) -> int:
    """Score the run's network on the test set; print the accuracy and the matrix, draw it with -o."""
    import numpy as np

    from chainrule.console import cannot_write, output, write_stdout
    from chainrule.errors import UsageError
    from chainrule.fs.ledger import check_output
    from chainrule.runs.record import RunFileError, load_run, scores

    try:
        if args.output is not None:
            _refuse_inside_run(args.output, args.run_dir)
            check_output(args.output)  # before the work: a device, a link or a file of yours is refused now
        loaded = load_run(args.run_dir)
        x_u8, labels, where = test_set(loaded.info, args.data_dir, args.verbose)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise cannot_write(args.output, exc) from None
    if x_u8.shape[1] != loaded.info.input_size:
        raise UsageError(
            _(
                "the test images have {value} pixels, but {describe} takes {input_size}",
                value=format(x_u8.shape[1], ","),
                describe=loaded.info.describe(),
                input_size=format(loaded.info.input_size, ","),
            )
        )
    # As train scales them: float32, divided in place, so the numbers match its test accuracy.
    x = x_u8.astype(np.float32)
    np.divide(x, 255, out=x)
    predicted = np.argmax(scores(loaded.network, x), axis=1)
    matrix = confusion_matrix(labels, predicted)
    correct, total = int(np.trace(matrix)), int(matrix.sum())
    accuracy = correct / float(total)
    print(
        _(
            "evaluating {network} from {folder} on {data}",
            network=loaded.info.describe(),
            folder=loaded.folder,
            data=where,
        ),
        file=sys.stderr,
    )

    def said() -> str:
        return _(
            "test accuracy {accuracy} ({correct} of {total} images)",
            accuracy=format(accuracy, ".4f"),
            correct=format(correct, ","),
            total=format(total, ","),
        )

    summary = said()
    heading = _("confusion matrix (rows: true digit, columns: predicted digit)")
    write_stdout(f"{summary}\n{heading}\n{confusion_text(matrix)}")
    if args.output is not None:
        with i18n.language("en"):  # the figure's fonts have Latin letters only: its title stays English
            title = said()
        output(confusion_png(matrix, f"{Path(args.run_dir).name}: {title}"), args.output)
    return 0
