"""Writing files so that a reader never sees half of one, and reading only what is a plain file.

A file the user names with ``-o`` is written by ``write_output``: over nothing, over the same
bytes, or over a file chainrule wrote there and nobody changed since.  What chainrule wrote is
known from a list it keeps in its cache folder (``outputs.json``: each file's path, size and
SHA-256); any other file is the user's, and is refused.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

from codegen.i18n import _

LEDGER = "outputs.json"
LEDGER_TAG = "chainrule outputs"
LEDGER_LIMIT = 1000  # files remembered; the oldest are forgotten first
LEDGER_MAX_BYTES = 1 << 20
OUTPUT_MAX_BYTES = 256 << 20  # a file larger than this is never one chainrule wrote


class UnsafeTarget(OSError):
    """An output path names something chainrule must not replace (a device, a FIFO, a link, a folder)."""


class NotOurs(UnsafeTarget):
    """An output path names a regular file that chainrule did not write, or that changed since it did."""


class UnsafeSource(OSError):
    """An input path is not a regular file, or is larger than chainrule reads."""


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in (
        (stat.S_ISLNK, _("a symbolic link")),
        (stat.S_ISDIR, _("a folder")),
        (stat.S_ISCHR, _("a character device")),
        (stat.S_ISBLK, _("a block device")),
        (stat.S_ISFIFO, _("a FIFO")),
        (stat.S_ISSOCK, _("a socket")),
    ):
        if test(mode):
            return name
    return _("not a regular file")


def check_target(path: str | os.PathLike[str]) -> None:
    """Raise UnsafeTarget unless ``path`` is absent or a regular file (a link is never followed).

    Replacing a device, FIFO or link with a regular file would destroy the user's object, so
    chainrule refuses instead of writing through it.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there to lose; the write itself reports a missing folder
    if not stat.S_ISREG(mode):
        raise UnsafeTarget(
            errno.EEXIST, _("it is {kind}; chainrule only replaces regular files", kind=_kind(mode))
        )


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists (it may belong to another user): a staging folder's owner."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one existing file (so writing one would destroy the other)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    target = Path(path)
    check_target(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        check_target(target)  # again: something may have appeared there while we wrote
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8, atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; UnsafeSource for anything else.

    Opened without blocking, so a FIFO is refused instead of waiting forever for a writer.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeSource(errno.EINVAL, _("it is {kind}, not a regular file", kind=_kind(info.st_mode)))
        if info.st_size > limit:
            raise UnsafeSource(
                errno.EFBIG,
                _(
                    "it is {size} bytes, more than the {limit} chainrule reads here",
                    size=format(info.st_size, ","),
                    limit=format(limit, ","),
                ),
            )
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafeSource(
            errno.EFBIG, _("it grew past {limit} bytes while being read", limit=format(limit, ","))
        )
    return data


def ledger_path() -> Path:
    """Where chainrule lists the files it wrote: ``outputs.json`` in the platform's cache folder."""
    import pooch

    return Path(pooch.os_cache("chainrule")).expanduser() / LEDGER


def _key(path: Path) -> str:
    """The ledger's name for ``path``: its folder resolved, so two spellings of one file agree."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def _read_ledger() -> dict[str, list] | None:
    """The files chainrule wrote, ``{path: [size, sha256]}``; None when the list is not chainrule's.

    A missing list is empty.  One that is not a regular file, too large, or not in chainrule's
    format is left alone (and never written over): chainrule then replaces nothing it cannot
    account for, which costs the user only a refusal.
    """
    try:
        raw = read_regular(ledger_path(), LEDGER_MAX_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not (isinstance(doc, dict) and doc.get("format") == LEDGER_TAG and isinstance(doc.get("files"), dict)):
        return None
    return {
        k: v
        for k, v in doc["files"].items()
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
    }


def _remember(target: Path, data: bytes) -> None:
    """Add ``target`` to the list of what chainrule wrote; a cache that cannot take it costs only a later refusal."""
    files = _read_ledger()
    if files is None:
        return
    key = _key(target)
    files.pop(key, None)
    files[key] = [len(data), hashlib.sha256(data).hexdigest()]
    kept = dict(list(files.items())[-LEDGER_LIMIT:])
    text = json.dumps({"format": LEDGER_TAG, "files": kept}, ensure_ascii=False, indent=0)
    try:
        ledger_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(ledger_path(), text.encode("utf-8"))
    except OSError:
        pass


def check_replaceable(target: Path, data: bytes) -> None:
    """NotOurs unless ``target`` is absent, holds ``data`` already, or holds what chainrule last wrote there."""
    try:
        size = os.lstat(target).st_size
    except (FileNotFoundError, NotADirectoryError):
        return
    if size <= OUTPUT_MAX_BYTES:
        current = read_regular(target, OUTPUT_MAX_BYTES)
        if current == data:
            return
        entry = (_read_ledger() or {}).get(_key(target))
        if entry == [len(current), hashlib.sha256(current).hexdigest()]:
            return
    raise NotOurs(
        errno.EEXIST,
        _("chainrule did not write it, or it was changed since; move it away or name another file"),
    )


def write_output(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write a file the user named: atomically, and only over nothing or over chainrule's own unchanged output."""
    target = Path(path)
    check_target(target)
    check_replaceable(target, data)
    atomic_write_bytes(target, data)
    _remember(target, data)
    return target


def write_output_text(path: str | os.PathLike[str], text: str) -> Path:
    """``write_output`` for text, as UTF-8."""
    return write_output(path, text.encode("utf-8"))
