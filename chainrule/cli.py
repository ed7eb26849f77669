"""The ``chainrule`` command: assembles the subcommands and reports user errors in one line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from chainrule.codegen import i18n
from chainrule.codegen.i18n import N_, _
from chainrule.console import EscapedStderr, GuardedStdout, StdoutFailed
from chainrule.errors import Stopped, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line and carry no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(_("{message} (see '{prog} --help')", message=message, prog=self.prog))


def build_parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per job."""
    parser = _Parser(
        prog="chainrule",
        description=_("Backpropagation derived by SymPy, generated as NumPy, and verified."),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from chainrule.commands import cache, derive, generate, gradcheck, train, verify

    for command in (derive, generate, verify, train, gradcheck, cache):
        command.add_parser(sub)
    from chainrule.commands import graph as graph_cmd

    graph_cmd.add_parser(sub)
    from chainrule.commands import explore

    explore.add_parser(sub)
    from chainrule.commands import report

    report.add_parser(sub)
    from chainrule.commands import evaluate, predict

    evaluate.add_parser(sub)
    predict.add_parser(sub)
    from chainrule.commands import notebook

    notebook.add_parser(sub)
    for command in (parser, *sub.choices.values()):  # before the subcommand or after it
        command.add_argument(
            "--lang",
            metavar="LANG",
            help=_(
                "language of the sentences: en or ja (default: $CHAINRULE_LANG, else the locale, else en)"
            ),
        )
    return parser


def _language(argv: Sequence[str]) -> str | None:
    """The --lang value on the command line, read before parsing so parse errors speak it too.

    The last one counts, as argparse would take it: ``chainrule --lang ja derive --lang en``.
    """
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--lang="):
            found = arg.split("=", 1)[1]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; user errors are one line on stderr and exit status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        lang = i18n.resolve(_language(argv))
    except i18n.LanguageError as exc:
        print(f"chainrule: error: {exc}", file=sys.stderr)
        return 2
    with i18n.language(lang):
        return _main(argv)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop chainrule as Ctrl-C does: it unwinds, so its temporary files are removed.

    Left as they are when ignored (``nohup``) or set outside Python. A second one while the first
    unwinds is ignored, so the cleaning is not cut short.
    """

    def stop(signum: int, frame: object) -> None:
        for other in names:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    names = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    for signum in names:
        if signal.getsignal(signum) == signal.SIG_DFL:
            signal.signal(signum, stop)


def interrupted(exc: KeyboardInterrupt) -> int:
    """Say that a signal stopped the command, in one line; the exit status it gives (128 + its number)."""
    signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
    if signum == signal.SIGINT:
        line = _("chainrule: interrupted")
    else:
        line = _("chainrule: interrupted by {signal}", signal=signal.Signals(signum).name)
    try:
        if sys.stderr is not None:
            print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 128 + int(signum)


def _stderr_or_devnull() -> None:
    """A closed standard error (2>&-) becomes /dev/null: messages have no reader, but the work is done and saved.

    Descriptor 2 may then be a file the interpreter opened for reading; writing there fails, so
    sys.stderr is pointed at /dev/null instead (descriptor 2 itself is left alone).
    """
    try:
        import fcntl

        writable = fcntl.fcntl(2, fcntl.F_GETFL) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except ImportError:
        return
    except OSError:
        writable = False
    if not writable:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the process


def run() -> NoReturn:
    """The ``chainrule`` program: ``main()``, then an exit that skips the interpreter's teardown.

    When main returns, every file a command makes is written (atomically, synced) and its
    output flushed.  What remains of a normal exit is freeing SymPy's, NumPy's and
    Matplotlib's objects one at a time: about 0.3 s after ``derive``, 0.1 s after ``train``.
    The operating system frees the whole process at once instead.  ``main()`` itself stays a
    plain function for callers in Python, which keep running after it.
    """
    try:
        _stop_on_signals()
        _stderr_or_devnull()
        try:
            status = main()
        except SystemExit as exc:  # argparse's --help and its errors exit from inside main
            status = exc.code
    except KeyboardInterrupt as exc:  # before main's own handling starts, or after it ends
        status = interrupted(exc)
    if status is None:
        status = 0
    elif not isinstance(status, int):
        print(status, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError, StdoutFailed):
            status = status or 120  # what Python's own exit gives when the last flush fails
    os._exit(status)


# argparse's own sentences that a user meets, translated by handing argparse our gettext
# while it parses (it looks up its module-level ``_`` and ``ngettext`` at each message).
ARGPARSE_SENTENCES = (
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("expected one argument"),
    N_("expected at least one argument"),
    N_("expected at most one argument"),
    N_("invalid %(type)s value: %(value)r"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
)


class _ArgparseSpeaks:
    """argparse's messages in the active language while the command line is parsed."""

    def __enter__(self) -> None:
        self.saved = argparse._, argparse.ngettext  # type: ignore[attr-defined]
        argparse._, argparse.ngettext = i18n.gettext, i18n.ngettext  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        argparse._, argparse.ngettext = self.saved  # type: ignore[attr-defined]


def _main(argv: list[str]) -> int:
    """main() in the language already chosen."""
    stdout, stderr = sys.stdout, sys.stderr
    if stdout is not None:
        sys.stdout = GuardedStdout(stdout)  # type: ignore[assignment]
    if stderr is not None:
        sys.stderr = EscapedStderr(stderr)  # type: ignore[assignment]
    try:
        with _ArgparseSpeaks():  # argparse names its sections when the parser is built
            parser = build_parser()
            args = parser.parse_args(argv)
        status = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, not at exit, so a full or broken pipe is reported below
        return status
    except UsageError as exc:
        print(_("chainrule: error: {message}", message=i18n.translate(i18n.message_of(exc))), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return interrupted(exc)
    except (StdoutFailed, BrokenPipeError) as exc:
        _silence_stdout(stdout)
        reason = exc.strerror if isinstance(exc, OSError) else exc
        print(
            _(
                "chainrule: error: {message}",
                message=_("cannot write to standard output: {reason}", reason=reason),
            ),
            file=sys.stderr,
        )
        return 2
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _silence_stdout(stdout: TextIO | None) -> None:
    """Point standard output at the null device, so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())  # type: ignore[union-attr]
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
