"""``chainrule train``: the chapter's MNIST run, with a progress bar and saved outputs.

What a run may do to the user's files and machine is bounded here: it writes only into
a run folder it claimed (see ``chainrule.runs.folder``), it refuses settings whose memory
estimate is over a limit before allocating anything (``chainrule.runs.settings``), and SIGINT,
SIGTERM, SIGHUP, a closed stdout and a diverging loss all end it with one whole set of outputs
or none (``chainrule.runs.outputs``).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from chainrule.codegen.i18n import _, message_of
from chainrule.errors import Stopped
from chainrule.runs.folder import RunDir, RunError, claim_out
from chainrule.runs.outputs import Record, outputs, run_info
from chainrule.runs.record import FinalScores
from chainrule.runs.settings import MAX_EPOCH_LINES, Settings

if TYPE_CHECKING:  # NumPy is imported where arrays are made, so building the command line stays light
    import numpy as np

    from chainrule.mnist import MnistSource

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
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


def _package_attr(package: str | None, module: str, name: str) -> object:
    """``train`` (a function) or ``ACTIVATIONS`` (names) of a module of the package being trained.

    A package that lacks it, or holds something else under that name, is refused in one line.
    """
    from chainrule.packages.importer import import_package
    from chainrule.packages.marker import PackageError

    try:
        (found_in,) = import_package(None if package is None else Path(package), (module,))
    except PackageError as exc:
        raise RunError(message_of(exc)) from None
    found = getattr(found_in, name, None)
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
