"""``chainrule report -o DIR``: one self-contained HTML page of the derivations, checks and last run.

The page needs no network: the LaTeX that ``codegen.document.section`` prints
becomes MathML (browsers typeset it natively), the figures are inline SVG and
the training plot is a ``data:`` URI.
"""

from __future__ import annotations

import argparse
import base64
import csv
import errno
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainrule.codegen.html import figure_names, filters, inline_svg
from chainrule.codegen.i18n import JAPANESE_FONTS, N_, _, active, gettext, message_of

if TYPE_CHECKING:
    from chainrule.runs.record import RunInfo

REPORT = "report.html"
NO_RUN = N_("no training run found: run chainrule train")
# A run's plot is ~50 kB and its metrics a few kB; anything far larger is not a run's output.
PLOT_MAX_BYTES = 16 * 2**20
METRICS_MAX_BYTES = 2**20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The tag report.html.jinja writes into every page's head: what marks a report.html as ours.
GENERATOR_TAG = b'<meta name="generator" content="chainrule report'


class ReportError(Exception):
    """Something the report needs cannot be read: reported in one line."""


@dataclass(frozen=True)
class TrainingRun:
    """The newest run's plot, ready to embed, and its last epoch in words.

    A file of the run that is not what train writes (a link, a device, too large, not a PNG)
    is left out, and ``notes`` says which and why.
    """

    path: str
    image: str | None  # None: the plot was left out (see notes)
    summary: str
    notes: tuple[str, ...] = ()
    setting: str | None = None  # its data set and settings in words, from run.json; None without one


def latest_run(runs_dir: Path) -> TrainingRun | None:
    """The run in ``runs_dir`` whose accuracy.png is newest (by modification time, then name), or None.

    Its folder and files are read where they are, never through a symbolic link: the page
    embeds only a PNG of a bounded size and the words of metrics.csv.
    """
    folder = _newest_run(runs_dir)
    if folder is None:
        return None
    notes: list[str] = []
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        reason = (
            _("refusing to read {path}: it is a symbolic link, not a run folder", path=folder)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR)
            else _("cannot read {path}: {reason}", path=folder, reason=exc.strerror or exc)
        )
        return TrainingRun(str(folder), None, _("no metrics: {reason}", reason=reason), (reason,))
    try:
        try:
            data = _read_run_file(fd, folder / "accuracy.png", PLOT_MAX_BYTES)
            if not data.startswith(PNG_MAGIC):
                raise ReportError(
                    _("refusing to embed {path}: it is not a PNG image", path=folder / "accuracy.png")
                )
            image: str | None = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        except ReportError as exc:
            image = None
            notes.append(message_of(exc))
        summary, note = metrics_summary(fd, folder / "metrics.csv")
        info = _run_info(fd, folder / "run.json")
        saved = saved_weights_summary(info)
        if saved is not None:
            summary = _("{summary}; {saved}", summary=summary, saved=saved)
    finally:
        os.close(fd)
    setting = run_setting(info) if info is not None else None
    return TrainingRun(str(folder), image, summary, (*notes, *([note] if note else [])), setting)


def _newest_run(runs_dir: Path) -> Path | None:
    """The folder of ``runs_dir`` holding the newest accuracy.png, judged without following it."""
    found = []
    try:
        entries = sorted(os.listdir(runs_dir))
    except OSError:
        return None
    for name in entries:
        try:
            info = os.lstat(runs_dir / name / "accuracy.png")
        except OSError:
            continue
        found.append((info.st_mtime_ns, name))
    return runs_dir / max(found)[1] if found else None


def _read_run_file(fd: int, path: Path, limit: int) -> bytes:
    """A run's file (``path.name`` in the open folder ``fd``), if it is a regular file of at most ``limit`` bytes."""
    from chainrule.fs.guard import UnsafeSource, read_regular

    try:
        return read_regular(path.name, limit, follow=False, dir_fd=fd)
    except UnsafeSource as exc:
        raise ReportError(_("refusing to read {path}: {reason}", path=path, reason=exc.strerror)) from None
    except OSError as exc:
        raise ReportError(_("cannot read {path}: {reason}", path=path, reason=exc.strerror or exc)) from None


def metrics_summary(fd: int, path: Path) -> tuple[str, str | None]:
    """The last line of a run's metrics.csv in words, and why it could not be read if it is refused.

    The line must have the five columns train writes, accuracies in [0, 1] and a loss that is not
    negative (or NaN, as a diverged step records it).
    """
    from chainrule.runs.record import METRICS_COLUMNS

    try:
        text = _read_run_file(fd, path, METRICS_MAX_BYTES).decode("utf-8")
        rows = list(csv.DictReader(text.splitlines()))
    except (ReportError, UnicodeDecodeError, csv.Error) as exc:
        if isinstance(exc, ReportError) and not os.path.lexists(path):
            return _("no metrics: cannot read {path}", path=path), None
        reason = (
            message_of(exc)
            if isinstance(exc, ReportError)
            else _(
                "{path} is not a metrics file: {reason}", path=path, reason=" ".join(str(exc).split())[:200]
            )
        )
        return _("no metrics: {reason}", reason=reason), reason
    if not rows:
        return _("no epoch finished (metrics.csv has no rows)"), None
    last = rows[-1]
    try:
        if list(last) != list(METRICS_COLUMNS) or None in last.values():
            raise ValueError("not the five columns")
        epoch, iteration = int(last["epoch"]), int(last["iteration"])
        loss, train, test = (float(last[key]) for key in ("loss", "train_acc", "test_acc"))
        finite_loss = 0 <= loss < float("inf")
        if epoch < 0 or iteration < 0 or not (0 <= train <= 1 and 0 <= test <= 1):
            raise ValueError("an accuracy out of [0, 1]")
        if not (finite_loss or loss != loss):  # loss != loss: a NaN, as a diverged step records it
            raise ValueError("a negative or infinite loss")
        return _(
            "final epoch {epoch} (iteration {iteration}): loss {loss}, train accuracy {train}, test accuracy {test}",
            epoch=epoch,
            iteration=format(iteration, ","),
            loss=format(loss, ".4f"),
            train=format(train, ".4f"),
            test=format(test, ".4f"),
        ), None
    except (KeyError, TypeError, ValueError):
        return _(
            "metrics.csv's last line is not epoch,iteration,loss,train_acc,test_acc: {path}", path=path
        ), None


def _run_info(fd: int, path: Path) -> RunInfo | None:
    """A run's run.json, read in its open folder ``fd``; None for a run without a readable one."""
    from chainrule.runs.record import RUN_JSON_MAX_BYTES, RunFileError, parse_run_json

    try:
        return parse_run_json(_read_run_file(fd, path, RUN_JSON_MAX_BYTES), str(path))
    except (ReportError, RunFileError):
        return None


def saved_weights_summary(info: RunInfo | None) -> str | None:
    """The scores run.json records for the saved weights, in words; None for a run without them."""
    if info is None or info.final is None:
        return None
    return _(
        "the saved weights, after {iterations} iterations: train accuracy {train}, test accuracy {test}",
        iterations=format(info.final.iterations, ","),
        train=info.final.accuracy("train"),
        test=info.final.accuracy("test"),
    )


@dataclass(frozen=True)
class VerifyTables:
    """``chainrule verify``'s two tables as printed strings, in its order."""

    tolerances: str
    grads: tuple[tuple[str, str, str, str, str, str], ...]  # layer, grad, three errors, verdict
    hygiene_names: tuple[str, ...]
    hygiene: tuple[tuple[str, tuple[str, ...]], ...]  # layer, one verdict per name
    verdict: str


def checked_catalog(appendix: bool) -> Any:
    """The layers whose checks the page shows: the chapter's, and with ``appendix`` the shipped ones."""
    from chainrule.checks.gradients import catalog
    from chainrule.codegen.model import Catalog
    from chainrule.symbolic.shipped import SHIPPED

    cat = catalog()
    if appendix:
        return cat
    shipped = {spec.key for spec in SHIPPED}
    kept = [(s, d) for s, d in zip(cat.layers, cat.derivations, strict=True) if d.name not in shipped]
    return Catalog(tuple(s for s, _d in kept), tuple(d for _s, d in kept))


def verify_tables(appendix: bool = True) -> VerifyTables:
    """Run the checks of the generated layers and print their results for the page.

    Without ``appendix``, only the chapter's layers: the others are shown with ``--appendix``.
    """
    from chainrule.checks.gradients import TOL_NUMERIC, TOL_SYMBOLIC, results

    grads, hygiene = results(cat=checked_catalog(appendix))
    names = tuple(dict.fromkeys(h.name for h in hygiene))
    ok = {(h.case, h.name): h.ok for h in hygiene}
    failed = sum(not g.ok for g in grads) + sum(not h.ok for h in hygiene)
    return VerifyTables(
        tolerances=_(
            "generated~symbolic ≤ {symbolic}, ~central differences ≤ {numeric}",
            symbolic=format(TOL_SYMBOLIC, "g"),
            numeric=format(TOL_NUMERIC, "g"),
        ),
        grads=tuple(
            (g.case, g.grad, f"{g.gen_sym:.1e}", f"{g.gen_num:.1e}", f"{g.sym_num:.1e}", _verdict(g.ok))
            for g in grads
        ),
        hygiene_names=names,
        hygiene=tuple(
            (c, tuple(_verdict(ok[c, n]) if (c, n) in ok else "none" for n in names))
            for c in dict.fromkeys(h.case for h in hygiene)
        ),
        verdict=_("all checks pass") if failed == 0 else _("{failed} checks FAILED", failed=failed),
    )


def _verdict(ok: bool) -> str:
    """A check's verdict: also the cell's CSS class, so it stays in English; ``verdict_text`` shows it."""
    return "pass" if ok else "FAIL"


def verdict_text(verdict: str) -> str:
    """A verdict in the reader's language; "none" is a check that does not apply to the layer."""
    return {"pass": _("pass"), "none": "–"}.get(verdict, _("FAIL"))


# The book's run (ゼロから作るDeep Learning, 5.7.4), to compare a run of one's own with.
BOOK_RUN = N_(
    "The book's run: test accuracy 0.9688 after 10,000 iterations on the full MNIST (60,000 training "
    "and 10,000 test images), batch size 100, learning rate 0.1, hidden size 50."
)
FULL_MNIST = 60_000


def run_setting(info: RunInfo) -> str:
    """A run's data set and settings in words, as the book's run is described beside it."""
    data = info.data
    if data is None:
        dataset = _("a data set this run did not record")
    elif data.kind == "sample":
        dataset = _(
            "the sample of MNIST shipped with chainrule ({train} training and {test} test images), "
            "not the full set: fewer images to learn from than the book's run",
            train=format(data.n_train, ","),
            test=format(data.n_test, ","),
        )
    elif data.n_train >= FULL_MNIST:
        dataset = _(
            "the full MNIST ({train} training and {test} test images)",
            train=format(data.n_train, ","),
            test=format(data.n_test, ","),
        )
    else:
        dataset = _(
            "part of MNIST ({train} training and {test} test images)",
            train=format(data.n_train, ","),
            test=format(data.n_test, ","),
        )
    return _(
        "This run: {dataset}; {iterations} iterations, batch size {batch}, learning rate {lr}, hidden size {hidden}.",
        dataset=dataset,
        iterations=format(info.iters, ","),
        batch=info.batch_size,
        lr=format(info.lr, "g"),
        hidden=", ".join(str(h) for h in info.hidden),
    )


def build_report(runs_dir: Path, appendix: bool = False) -> str:
    """The whole page: the chapter's derivations with their figures (``appendix``: the other layers
    after them), the verify tables, the newest run."""
    return _page(latest_run(runs_dir), appendix)


def _page(training: TrainingRun | None, appendix: bool = False) -> str:
    """The page around an already-read training run."""
    from chainrule import symbolic
    from chainrule.codegen.document import section
    from chainrule.codegen.environment import render
    from chainrule.codegen.live import messages, runtime, view
    from chainrule.symbolic.shipped import SHIPPED

    shipped = {spec.key for spec in SHIPPED}  # the layers beyond the chapter's, derived only when shown
    sections = [
        replace(section(symbolic.derive(n)), figures=tuple(inline_svg(f) for f in drawn_still(n)))
        for n in symbolic.NAMES
        if appendix or n not in shipped
    ]
    sections.sort(key=lambda s: s.appendix)  # the chapter first, in its order; then the appendix
    live = {s.name: tuple(view(f) for f in figure_names(s.name)) for s in sections}
    return render(
        "report.html.jinja",
        sections=sections,
        live=live,
        live_messages=messages(),
        live_runtime=runtime(),
        verify=verify_tables(appendix),
        training=training,
        book_run=gettext(BOOK_RUN),
        verdict=verdict_text,
        no_run=_(NO_RUN),
        lang=active(),
        japanese_fonts=JAPANESE_FONTS.replace("'", '"') if active() == "ja" else "",
        **filters(),
    )


def drawn_still(derivation: str) -> tuple[str, ...]:
    """A derivation's figures the page draws as the book does, with the formulas on their arrows.

    A figure of numbers (section 5.1's, the worked examples) is drawn once, live: the same picture
    with its inputs above it. A figure of formulas is drawn as the book has it, then again live,
    with numbers where its formulas were.
    """
    from chainrule.codegen.layout import inputs_of

    return tuple(f for f in figure_names(derivation) if not inputs_of(f))


def _check_ours(path: Path) -> None:
    """ReportError unless ``path`` is absent or a page this command wrote (its generator tag near the top).

    The user names the folder, not the file: a report.html of their own there is not ours to replace.
    """
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except (FileNotFoundError, NotADirectoryError):
        return
    if GENERATOR_TAG not in head:
        raise ReportError(
            _(
                "refusing to replace {path}: chainrule did not write it (no chainrule generator tag); choose another -o folder",
                path=path,
            )
        )


def write_report(out_dir: Path, runs_dir: Path, appendix: bool = False) -> Path:
    """Make ``out_dir`` and write ``report.html`` into it atomically; a run file refused is left out, noted."""
    from chainrule.fs.guard import check_target
    from chainrule.fs.ledger import check_output, write_output_text

    training = latest_run(runs_dir)  # first: the page shows what was read then, nothing read later
    for note in training.notes if training is not None else ():
        print(_("note: {reason}; the report leaves it out", reason=note), file=sys.stderr)
    check_target(out_dir / REPORT)
    _check_ours(out_dir / REPORT)
    check_output(out_dir / REPORT)  # a page of chainrule's that was edited since is the user's now
    out_dir.mkdir(parents=True, exist_ok=True)  # before the work, so a bad folder fails fast
    return write_output_text(out_dir / REPORT, _page(training, appendix))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``report`` subcommand on the CLI's subparsers."""
    report = sub.add_parser(
        "report", help=_("write one self-contained HTML page: derivations, figures, checks and the last run")
    )
    report.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        required=True,
        help=_("the folder to write {report} into", report=REPORT),
    )
    report.add_argument(
        "--runs",
        metavar="DIR",
        help=_("where the training runs are (default: runs/, if there is one)"),
    )
    report.add_argument(
        "--appendix",
        action="store_true",
        help=_("also the layers that are not in the chapter (Tanh, GELU, ...), after it and marked so"),
    )
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write ``<args.output>/report.html``; say where."""
    from chainrule.errors import UsageError

    out = Path(args.output)
    if args.runs is not None and (not args.runs or not Path(args.runs).is_dir()):
        # Named on purpose: a misspelt folder must not give a report silently without its run.
        raise UsageError(
            _("no runs folder {path}: name the folder 'chainrule train' saves into", path=args.runs)
        )
    try:
        path = write_report(out, Path("runs" if args.runs is None else args.runs), args.appendix)
    except FileExistsError:
        raise UsageError(_("cannot write to {path}: it exists and is not a folder", path=out)) from None
    except OSError as exc:
        raise UsageError(
            _("cannot write {path}: {reason}", path=out / REPORT, reason=exc.strerror or exc)
        ) from None
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    print(_("wrote {path}", path=path), file=sys.stderr)
    return 0
