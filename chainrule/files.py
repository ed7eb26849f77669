"""Writing files so that a reader never sees half of one, and reading only what is a plain file."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


class UnsafeTarget(OSError):
    """An output path names something chainrule must not replace (a device, a FIFO, a link, a folder)."""


class UnsafeSource(OSError):
    """An input path is not a regular file, or is larger than chainrule reads."""


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


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
        raise UnsafeTarget(errno.EEXIST, f"it is {_kind(mode)}; chainrule only replaces regular files")


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
            raise UnsafeSource(errno.EINVAL, f"it is {_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise UnsafeSource(
                errno.EFBIG, f"it is {info.st_size:,} bytes, more than the {limit:,} chainrule reads here"
            )
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UnsafeSource(errno.EFBIG, f"it grew past {limit:,} bytes while being read")
    return data
