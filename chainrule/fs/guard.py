"""What chainrule may read, and what it may write over: plain files only, never through a link."""

from __future__ import annotations

import errno
import os
import stat

from chainrule.codegen.i18n import _


class UnsafeTarget(OSError):
    """An output path names something chainrule must not replace (a device, a FIFO, a link, a folder)."""


class UnsafeSource(OSError):
    """An input path is not a regular file, or is larger than chainrule reads."""


def kind_of(mode: int) -> str:
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
            errno.EEXIST, _("it is {kind}; chainrule only replaces regular files", kind=kind_of(mode))
        )


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one existing file (so writing one would destroy the other)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_regular(
    path: str | os.PathLike[str], limit: int, *, follow: bool = True, dir_fd: int | None = None
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; UnsafeSource for anything else.

    Opened without blocking, so a FIFO is refused instead of waiting forever for a writer.
    ``follow=False``: a symbolic link is refused, never read through.  ``dir_fd``: ``path``
    is relative to that open folder.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if not follow and exc.errno == errno.ELOOP:
            raise UnsafeSource(
                errno.ELOOP, _("it is {kind}, not a regular file", kind=_("a symbolic link"))
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeSource(
                errno.EINVAL, _("it is {kind}, not a regular file", kind=kind_of(info.st_mode))
            )
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


def shown(path: str | os.PathLike[str]) -> str:
    """A path as one line of a message: quoted when it holds a newline or another unprintable character."""
    text = os.fspath(path)
    text = text if isinstance(text, str) else os.fsdecode(text)
    return text if text.isprintable() else repr(text)
