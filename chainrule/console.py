"""Standard output for commands: a closed one is a user error, a full or broken one is told apart."""

from __future__ import annotations

import sys
from typing import TextIO

from chainrule.codegen.i18n import _
from chainrule.errors import UsageError


class StdoutFailed(Exception):
    """Standard output is full or broken: main says so in one line."""


# C0 and C1 control characters but newline, carriage return and tab, each shown as its escape.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) not in "\n\r\t"}


class EscapedStderr:
    """Standard error that shows control characters as ``\\x1b`` and the like, never hands them to the terminal.

    A folder or file name a user gives may hold a terminal's escape sequences (a new window
    title, a cleared screen); every message that names it goes through here.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(text.translate(_CONTROLS))

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


class GuardedStdout:
    """Standard output whose failed writes say they came from it, so main tells them from other I/O errors.

    Control characters are shown as escapes, as on standard error (no output of chainrule holds one).

    BrokenPipeError passes unchanged: a command may catch it to stop cleanly (main reports it too).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text.translate(_CONTROLS))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFailed(exc.strerror or str(exc)) from None
        except UnicodeEncodeError as exc:  # PYTHONIOENCODING=ascii, or a C locale: nothing of it was written
            raise StdoutFailed(
                _(
                    "its encoding {encoding} cannot show {text}; set PYTHONIOENCODING=utf-8"
                    " (or write to a file with -o FILE where the command has it)",
                    encoding=exc.encoding,
                    text=repr(exc.object[exc.start : exc.end]),
                )
            ) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutFailed(exc.strerror or str(exc)) from None

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def write_stdout(text: str) -> None:
    """Print ``text``; a closed standard output is a user error, a full or broken one is reported by main."""
    if sys.stdout is None:
        raise UsageError(_("standard output is closed: name a file with -o FILE"))
    sys.stdout.write(text)


def cannot_write(path: str, exc: OSError) -> UsageError:
    """The one line said when ``path`` cannot be written."""
    from chainrule.fs.guard import shown

    return UsageError(_("cannot write {path}: {reason}", path=shown(path), reason=exc.strerror or exc))


def output(data: str | bytes, path: str | None) -> None:
    """Print ``data`` (text), or write it atomically to ``path`` (text as UTF-8)."""
    if path is None:
        write_stdout(data)  # type: ignore[arg-type]
        return
    from chainrule.fs.guard import shown
    from chainrule.fs.ledger import write_output

    try:
        write_output(path, data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    print(_("wrote {path}", path=shown(path)), file=sys.stderr)


def human_bytes(n: int) -> str:
    """``4.0 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
