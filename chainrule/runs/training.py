"""``chainrule train``: the chapter's MNIST run, with a progress bar and saved outputs.

What a run may do to the user's files and machine is bounded here: it writes only into
a run folder it claimed (see ``chainrule.runs.folder``), it refuses settings whose memory
estimate is over a limit before allocating anything, and SIGINT, SIGTERM, SIGHUP, a
closed stdout and a diverging loss all end it with one whole set of outputs or none.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TextIO

from chainrule.codegen.i18n import _, message_of

from chainrule.errors import Stopped
from chainrule.runs.folder import RunDir, RunError, claim_out, fresh_run_dir
from chainrule.runs.record import METRICS_COLUMNS, RUN_JSON, DataInfo, FinalScores, RunInfo, chainrule_version

if TYPE_CHECKING:  # NumPy is imported where arrays are made, so building the command line stays light
    import numpy as np

    from chainrule.mnist import MnistSource

MAX_ITERS = 1_000_000  # 100 times the chapter's run; the loss curve keeps one number per iteration
MAX_HIDDEN_LAYERS = 100
MAX_EPOCH_LINES = 20  # by default; full MNIST's chapter run has 17 epochs, so it prints every one
MEMORY_CAP = 4 * 2**30  # bytes; the limit is this or half the physical memory, whichever is smaller
INPUTS, CLASSES = 784, 10
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass(frozen=True)
class Settings:
    """The chapter's hyper-parameters, as defaults."""

    iters: int = 10_000
    batch_size: int = 100
    lr: float = 0.1
    hidden: tuple[int, ...] = (50,)
    seed: int = 0
    activation: str | None = None  # None: the chapter's TwoLayerNet (with one hidden layer)
    package: str | None = None  # a generated package's folder; None: the installed generated/

    def describe(self, inputs: int = INPUTS) -> str:
        """The network, as a learner would write it, for images of ``inputs`` pixels."""
        if self.activation is None and len(self.hidden) == 1:
            return f"TwoLayerNet({inputs}, {self.hidden[0]}, 10)"
        return f"MultiLayerNet({inputs}, {list(self.hidden)}, 10, activation={self.activation or 'relu'!r})"


@dataclass
class Record:
    """What a run has done so far: every loss, and one row per epoch."""

    losses: list[float] = field(default_factory=list)
    epochs: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    interrupted_at: int | None = None
    stopped_by: int | None = None  # the signal that stopped it
    final: FinalScores | None = None  # the saved weights, scored when training ends


# --- limits, checked before anything is allocated ------------------------------------------------


def memory_limit() -> int:
    """The most memory a run may plan to use: MEMORY_CAP or half the physical memory, the smaller."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return MEMORY_CAP
    return min(MEMORY_CAP, physical // 2) if physical > 0 else MEMORY_CAP


def memory_estimate(settings: Settings, inputs: int = INPUTS) -> int:
    """Bytes a run needs besides the data set, in float32, from the settings and the pixels per image.

    Parameters four times over (weights, gradients, the scaled update, the kept copy of
    the last good epoch) plus the float64 draw of the largest weight matrix; per image of
    a batch, two numbers per pixel (the gathered batch, and room for one copy) and eight per unit
    (activations, masks, gradients, temporaries); a thousand iterations' batch indices
    (int64); and the 10,000-image chunks accuracy is scored in, three numbers per unit
    (the chunk's pixels are a view of the data, not a copy).
    """
    sizes = [inputs, *settings.hidden, CLASSES]
    pairs = list(zip(sizes, sizes[1:], strict=False))
    n_params = sum(a * b + b for a, b in pairs)
    largest = max(a * b for a, b in pairs)
    units = sum(sizes[1:])
    batch = settings.batch_size
    return (
        4 * 4 * n_params
        + 8 * largest
        + 4 * batch * (2 * inputs + 8 * units)
        + 8 * min(1000, settings.iters) * batch
        + 4 * 3 * 10_000 * units
    )


def human_bytes(n: int) -> str:
    """``4.0 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_settings(settings: Settings, limit: int | None = None, inputs: int = INPUTS) -> None:
    """Refuse, in one line, settings past the iteration, depth or memory limits, for images of ``inputs`` pixels."""
    if settings.iters > MAX_ITERS:
        raise RunError(
            _(
                "--iters {iters} is more than the limit of {limit}",
                iters=format(settings.iters, ","),
                limit=format(MAX_ITERS, ","),
            )
        )
    if len(settings.hidden) > MAX_HIDDEN_LAYERS:
        raise RunError(
            _(
                "--hidden has {layers} layers, more than the limit of {limit}",
                layers=format(len(settings.hidden), ","),
                limit=MAX_HIDDEN_LAYERS,
            )
        )
    limit = memory_limit() if limit is None else limit
    need = memory_estimate(settings, inputs)
    if need <= limit:
        return
    if memory_estimate(replace(settings, batch_size=1), inputs) > limit:
        shown = " ".join(str(h) for h in settings.hidden[:4]) + (" ..." if len(settings.hidden) > 4 else "")
        option = f"--hidden {shown}"
    else:
        option = f"--batch-size {settings.batch_size}"
    values = {
        "option": option,
        "need": human_bytes(need),
        "limit": human_bytes(limit),
        "cap": human_bytes(MEMORY_CAP),
        "pixels": format(inputs, ","),
    }
    if inputs == INPUTS:
        raise RunError(
            _(
                "{option} needs about {need} of memory (estimated), more than the limit of {limit}"
                " (the smaller of {cap} and half the physical memory)",
                **values,
            )
        )
    raise RunError(
        _(
            "{option} needs about {need} of memory (estimated) for images of {pixels} pixels,"
            " more than the limit of {limit} (the smaller of {cap} and half the physical memory)",
            **values,
        )
    )


def check_batch(settings: Settings, train_size: int) -> None:
    """A batch larger than the training set is refused rather than quietly shrunk."""
    if settings.batch_size > train_size:
        raise RunError(
            _(
                "--batch-size {batch} is larger than the training set ({size} images); use at most {size}",
                batch=format(settings.batch_size, ","),
                size=format(train_size, ","),
            )
        )


# --- signals and a closed stdout -----------------------------------------------------------------


class Stops:
    """SIGINT, SIGTERM and SIGHUP, handled alike while installed (a context manager).

    Before training starts they stop at once (``Stopped`` is raised). Once ``deferred``
    is set they are only noted: the loop calls ``check`` after each whole step, so the
    weights saved belong to whole steps, and while the set is saved they change nothing,
    so a second Ctrl-C cannot tear it.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.deferred = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Stops:
        for signum in STOP_SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._note)
            except ValueError:
                break  # not the main thread: Python's own Ctrl-C handling stays
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is closest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _note(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if not self.deferred:
            self.deferred = True  # a second signal while the first unwinds is noted, not raised
            raise Stopped(signum)

    def check(self) -> None:
        """Stop here, between two steps, if a signal came."""
        if self.signum is not None:
            raise Stopped(self.signum)


def signal_name(signum: int) -> str:
    """``SIGTERM``."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def say(text: str, stream: TextIO | None = None) -> None:
    """Print one line; if its reader has gone (``| head -1``), the rest of that stream goes to /dev/null.

    A closed pipe is the reader's choice, not a reason to lose the run: it goes on and saves.
    """
    stream = sys.stdout if stream is None else stream
    if stream is None:  # closed (>&-): the run goes on and saves; its lines have no reader
        return
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        _to_devnull(stream)


def _to_devnull(stream: TextIO) -> None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)  # the unwritten rest of the buffer, and all later lines, go nowhere
    finally:
        os.close(null)


# --- outputs -------------------------------------------------------------------------------------


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
    from chainrule.packages import imported_digest

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


def epoch_count(iters: int, train_size: int, batch_size: int) -> int:
    """How many epoch rows a run of ``iters`` iterations makes: the loop scores where ``i % per_epoch == 0``."""
    per_epoch = max(train_size / batch_size, 1)
    if float(per_epoch).is_integer():
        return len(range(0, iters, int(per_epoch)))
    return sum(1 for i in range(iters) if i % per_epoch == 0)


def log_stride(epochs: int, most: int = MAX_EPOCH_LINES) -> int:
    """Every how many epochs a line prints, so that with the last epoch's line at most ``most`` print."""
    if epochs <= most:
        return 1
    # Multiples of the stride below the last epoch number: at most most - 1 of them, then the last.
    return math.ceil((epochs - 1) / (most - 1))


class Diverged(Exception):
    """The loss, or the weights, stopped being finite numbers."""

    def __init__(self, iteration: int, what: str) -> None:
        super().__init__(iteration, what)
        self.iteration = iteration
        self.what = what


@dataclass(frozen=True)
class Checkpoint:
    """Copies of the weights at the end of an epoch, and how much of the record goes with them."""

    params: dict[str, np.ndarray]
    losses: int
    epochs: int


def _finite(params: dict[str, np.ndarray]) -> bool:
    import numpy as np

    return all(bool(np.isfinite(v).all()) for v in params.values())


def _train(
    settings: Settings,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    echo: Callable[[str], object],
    progress: bool | None,
    stops: Stops,
    log_every: int | None = None,
) -> tuple[Record, dict[str, np.ndarray] | None, Diverged | None]:
    """Train; the record and the weights to save (None: nothing fit to save), and why it diverged.

    ``log_every``: print every that many epochs' line, and the last; None chooses so that at
    most MAX_EPOCH_LINES print; 0 prints none.
    """
    import numpy as np
    from tqdm import tqdm

    train = _package_attr(settings.package, "train_neuralnet", "train")

    (x_train, t_train), (x_test, t_test) = data
    epochs = epoch_count(settings.iters, len(x_train), settings.batch_size)
    stride = log_stride(epochs) if log_every is None else log_every
    record = Record()
    show = (sys.stderr is not None and sys.stderr.isatty()) if progress is None else progress
    bar = tqdm(total=settings.iters, unit="it", disable=not show, leave=False, dynamic_ncols=True)
    state: dict[str, object] = {}
    # An epoch's weights become the fallback once the next step has computed a finite loss from them.
    pending: list[Checkpoint] = []
    good: list[Checkpoint] = []

    def on_start(network: object) -> None:
        state["network"] = network
        stops.deferred = True  # from here on a signal stops the loop between two steps

    def on_iteration(i: int, loss: float) -> None:
        record.losses.append(loss)
        bar.update(1)
        if not math.isfinite(loss):
            raise Diverged(i, _("the loss became {loss}", loss=loss))
        if pending:
            good[:] = pending
            pending.clear()
        if i % 50 == 0:
            bar.set_postfix(loss=format(loss, ".3f"), refresh=False)
        stops.check()

    def on_epoch(epoch: int, i: int, train_acc: float, test_acc: float) -> None:
        record.epochs.append((epoch, i, record.losses[-1], float(train_acc), float(test_acc)))
        params = state["network"].params  # type: ignore[attr-defined]
        if _finite(params):
            pending[:] = [
                Checkpoint(
                    {k: np.array(v) for k, v in params.items()}, len(record.losses), len(record.epochs)
                )
            ]
        if not stride or (epoch % stride and epoch != epochs - 1):
            return
        line = _(
            "epoch {epoch}  iteration {iteration}  train acc {train}  test acc {test}",
            epoch=format(epoch, "3d"),
            iteration=format(i, "6d"),
            train=format(float(train_acc), ".4f"),
            test=format(float(test_acc), ".4f"),
        )
        if show:
            bar.write(line)
        else:
            echo(line)

    diverged = None
    started = time.monotonic()
    try:
        # A diverging run is caught and named by on_iteration; numpy's warnings would only repeat it.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            train(
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
                on_start=on_start,
            )
    except Diverged as exc:
        diverged = exc
    except KeyboardInterrupt as exc:
        if "network" not in state:
            raise
        record.interrupted_at = len(record.losses)
        record.stopped_by = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
    finally:
        bar.close()
        stops.deferred = True  # saving: signals are noted, never raised
    params = {k: np.array(v) for k, v in state["network"].params.items()}  # type: ignore[attr-defined]
    if diverged is None and not _finite(params):
        diverged = Diverged(len(record.losses) - 1, _("the weights stopped being finite"))
    if diverged is not None:
        if not good:
            return record, None, diverged
        kept = good[0]
        record.losses[kept.losses :] = []
        record.epochs[kept.epochs :] = []
        params = kept.params
    record.final = final_scores(state["network"], params, data, len(record.losses), started)
    return record, params, diverged


def final_scores(
    network: object,
    params: dict[str, np.ndarray],
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    iterations: int,
    started: float,
    chunk: int = 10_000,
) -> FinalScores:
    """The weights to be saved, put back into ``network`` and scored as ``evaluate`` scores them.

    The chapter scores once per epoch, so its last line may be many steps before the last
    step; this scoring is of the very weights params.npz holds.
    """
    import numpy as np

    from chainrule.runs.record import scores

    for name, array in params.items():
        network.params[name][...] = array  # type: ignore[attr-defined]

    def accuracy(x: np.ndarray, t: np.ndarray) -> float:
        labels = t if t.ndim == 1 else np.argmax(t, axis=1)
        predicted = np.argmax(scores(network, x, chunk), axis=1)
        return int(np.count_nonzero(predicted == labels)) / float(len(labels))

    (x_train, t_train), (x_test, t_test) = data
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # The loss goes through the layers, which keep their inputs for a backward pass: smaller chunks.
        step = max(1, chunk // 10)
        for start in range(0, len(x_train), step):
            part = x_train[start : start + step]
            total += float(network.loss(part, t_train[start : start + step])) * len(part)  # type: ignore[attr-defined]
        loss = total / len(x_train)
        train_acc, test_acc = accuracy(x_train, t_train), accuracy(x_test, t_test)
    return FinalScores(
        iterations=iterations,
        train_acc=train_acc,
        test_acc=test_acc,
        loss=loss if math.isfinite(loss) else None,
        seconds=round(time.monotonic() - started, 3),
    )


def run(
    settings: Settings,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    out: Path | RunDir,
    echo: Callable[[str], object] = say,
    progress: bool | None = None,
    stops: Stops | None = None,
    *,
    log_every: int | None = None,
    source: MnistSource | None = None,
    package: Path | None = None,
) -> tuple[Record, dict[str, np.ndarray], list[Path]]:
    """Train the generated network and save its outputs into ``out`` as one set.

    run.json records the network, the settings, ``package`` (the generated package whose
    layers it used, if not the installed one) and ``source`` (where the data came from), so
    that ``chainrule evaluate`` and ``predict`` can load the run without repeating them.

    A signal (see ``Stops``) ends the loop after a whole step and saves what was done.
    A loss that is not finite saves the last epoch whose weights gave a finite loss, or
    nothing when there is none, then raises RunError saying which.
    """
    run_dir = out if isinstance(out, RunDir) else claim_out(Path(out))
    with contextlib.ExitStack() as stack:
        if stops is None:
            stops = stack.enter_context(Stops())
        try:
            record, params, diverged = _train(settings, data, echo, progress, stops, log_every)
            info = run_info(settings, data, source, package, record.final)
            paths = run_dir.install(outputs(record, params, info)) if params is not None else []
        except OSError as exc:
            run_dir.release()
            raise RunError(
                _("cannot write to {path}: {reason}", path=run_dir.path, reason=exc.strerror or exc)
            ) from None
        except BaseException:
            run_dir.release()
            raise
    if diverged is not None:
        raise RunError(_diverged_message(diverged, settings, record, run_dir))
    return record, params, paths  # type: ignore[return-value]


def _diverged_message(diverged: Diverged, settings: Settings, record: Record, run_dir: RunDir) -> str:
    head = _(
        "{what} at iteration {iteration}: the learning rate {lr} is too large; try a smaller --lr such as {smaller}",
        what=diverged.what,
        iteration=format(diverged.iteration, ","),
        lr=format(settings.lr, "g"),
        smaller=format(settings.lr / 10, "g"),
    )
    if run_dir.saved:
        epoch, iteration = record.epochs[-1][:2]
        return _(
            "{head}; saved epoch {epoch} (iteration {iteration}), the last with weights that gave"
            " a finite loss, to {path}",
            head=head,
            epoch=epoch,
            iteration=format(iteration, ","),
            path=run_dir.path,
        )
    kept = _("; {path} keeps the run it held", path=run_dir.path) if run_dir.replaces else ""
    return _(
        "{head}; nothing was saved (no epoch ended with weights that gave a finite loss){kept}",
        head=head,
        kept=kept,
    )


def _package_module(package: str | None, name: str) -> ModuleType:
    """Module ``name`` of the package being trained: generated/, or the one in the folder ``package``."""
    from chainrule.packages import PackageError, package_module

    try:
        return package_module(None if package is None else Path(package), name)
    except PackageError as exc:
        raise RunError(message_of(exc)) from None


def _package_attr(package: str | None, module: str, name: str) -> object:
    """``train`` (a function) or ``ACTIVATIONS`` (names) of a module of the package being trained.

    A package that lacks it, or holds something else under that name, is refused in one line.
    """
    found = getattr(_package_module(package, module), name, None)
    if name == "ACTIVATIONS":
        fits = isinstance(found, (dict, list, tuple)) and all(isinstance(k, str) for k in found)
    else:
        fits = callable(found)
    if not fits:
        raise RunError(
            _(
                "{folder}: {module}.py has no {name} as a package chainrule generated has; generate it again",
                folder=package or "generated",
                module=module,
                name=name,
            )
        )
    return found


def check_activation(settings: Settings) -> None:
    """Refuse an activation the package being trained does not have, naming those it has."""
    known: list[str] = list(_package_attr(settings.package, "multi_layer_net", "ACTIVATIONS"))  # type: ignore[call-overload]
    if settings.activation in known:
        return
    hint = "" if settings.package else _("; a layer of a spec trains from its package: --package DIR")
    raise RunError(
        _(
            "unknown activation {name}; choose from {known}{hint}",
            name=repr(settings.activation),
            known=", ".join(known),
            hint=hint,
        )
    )


def main_train(args: argparse.Namespace) -> int:
    """The ``train`` subcommand: check the settings, claim a folder, load data, train, save, say where."""
    from chainrule.mnist import MnistError, load_mnist, locate_mnist
    from chainrule.mnist.sources import image_pixels, peek_image_pixels

    settings = Settings(
        iters=args.iters,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=tuple(args.hidden),
        seed=args.seed,
        activation=args.activation,
        package=getattr(args, "package", None),
    )
    if settings.activation is not None:
        check_activation(settings)
    if settings.package is not None:
        _package_attr(
            settings.package, "train_neuralnet", "train"
        )  # a folder that is no package: before any data
    # Before any folder is made or any data loaded: the pixels per image from a named folder's header.
    check_settings(settings, inputs=peek_image_pixels(args.data_dir) or INPUTS)
    out = getattr(args, "out", None)
    run_dir: RunDir | None = None
    with Stops() as stops:
        try:
            run_dir = claim_out(Path(out), getattr(args, "force", False)) if out else fresh_run_dir()
            try:
                source = locate_mnist(args.data_dir, verbose=getattr(args, "verbose", False))
                check_settings(settings, inputs=image_pixels(source))
                data = load_mnist(normalize=True, one_hot_label=True, source=source)
            except MnistError as exc:
                raise RunError(message_of(exc)) from None
            (x_train, _labels), (x_test, _test_labels) = data
            check_batch(settings, len(x_train))
            say(
                _(
                    "training {network} on {train} images, testing on {test}: {iters} iterations,"
                    " batch {batch}, lr {lr}, seed {seed}",
                    network=settings.describe(x_train.shape[1]),
                    train=format(len(x_train), ","),
                    test=format(len(x_test), ","),
                    iters=format(settings.iters, ","),
                    batch=settings.batch_size,
                    lr=settings.lr,
                    seed=settings.seed,
                ),
                sys.stderr,
            )
            quiet = getattr(args, "quiet", False)
            record, _params, paths = run(
                settings,
                data,
                run_dir,
                progress=False if quiet else None,
                stops=stops,
                log_every=0 if quiet else getattr(args, "log_every", None),
                source=source,
                package=None if settings.package is None else Path(settings.package),
            )
        except Stopped as exc:
            if run_dir is not None:
                run_dir.release()
            say(
                _(
                    "interrupted by {signal} before training started; nothing was saved",
                    signal=signal_name(exc.signum),
                ),
                sys.stderr,
            )
            return 128 + exc.signum
        except BaseException:
            if run_dir is not None:
                run_dir.release()
            raise
    if record.interrupted_at is not None:
        say(
            _(
                "interrupted after {iterations} iterations by {signal}; saved what was done",
                iterations=format(record.interrupted_at, ","),
                signal=signal_name(record.stopped_by or 2),
            ),
            sys.stderr,
        )
    elif stops.signum is not None:
        say(
            _("{signal} came while saving; the whole set was saved first", signal=signal_name(stops.signum)),
            sys.stderr,
        )
    if stops.count > 1:
        say(
            _(
                "{count} more stop signal(s) ignored, so that the saved set stays whole",
                count=stops.count - 1,
            ),
            sys.stderr,
        )
    final = record.final
    if final is not None:
        # The saved weights, scored after the last step (the epoch lines may be many steps earlier).
        say(
            _(
                "final (the saved weights, after {iterations} iterations, {seconds} s): loss {loss},"
                " train acc {train}, test acc {test}",
                iterations=format(final.iterations, ","),
                seconds=format(final.seconds, ".1f"),
                loss="nan" if final.loss is None else format(final.loss, ".4f"),
                train=final.accuracy("train"),
                test=final.accuracy("test"),
            )
        )
    say(_("wrote {paths}", paths=", ".join(str(p) for p in paths)))
    return 0 if stops.signum is None else 128 + stops.signum


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a whole number: {text}", text=repr(text))) from None
    if value < 1:
        raise argparse.ArgumentTypeError(_("must be at least 1, not {value}", value=value))
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a number: {text}", text=repr(text))) from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(_("must be a positive number, not {text}", text=text))
    return value


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--log-every N``, ``--quiet`` and ``--verbose``: how much ``train`` prints while it runs."""
    lines = parser.add_mutually_exclusive_group()
    lines.add_argument(
        "--log-every",
        type=positive_int,
        metavar="N",
        help=_(
            "print every N-th epoch's line and the last (default: every epoch, or at most {max_epoch_lines} lines)",
            max_epoch_lines=MAX_EPOCH_LINES,
        ),
    )
    lines.add_argument("--quiet", action="store_true", help=_("print no epoch lines and no progress bar"))
    parser.add_argument(
        "--verbose", action="store_true", help=_("say in full why the shipped MNIST sample is used")
    )
