"""``chainrule train``'s settings, and the limits they are checked against before anything is allocated.

A run refuses settings whose memory estimate is over a limit, or past the iteration and
depth limits run.json allows, in one line, before it claims a folder or loads any data.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, replace

from chainrule.codegen.i18n import _
from chainrule.console import human_bytes
from chainrule.runs.folder import RunError
from chainrule.runs.record import CLASSES, MAX_HIDDEN_LAYERS, MAX_ITERS

MAX_EPOCH_LINES = 20  # by default; full MNIST's chapter run has 17 epochs, so it prints every one
MEMORY_CAP = 4 * 2**30  # bytes; the limit is this or half the physical memory, whichever is smaller
INPUTS = 784


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
