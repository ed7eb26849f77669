"""Writing so that a reader never sees half of anything: a file is written beside its target and
renamed over it, a folder is swapped with its replacement in one step."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from chainrule.fs.guard import check_target
from chainrule.fs.reaper import own_name, reap


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside folder ``path`` durable (where the system allows syncing a folder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot.

    Once swapped, ``b``'s folder is synced so the swap outlasts a crash (as far as the system
    lets a folder be synced: the swap is done either way).  Any other failure (a path gone, no
    permission) is an OSError naming ``b``, and nothing was swapped.
    """
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        with contextlib.suppress(OSError):
            fsync_dir(Path(b).parent)
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # a filesystem or kernel without the exchange
    raise OSError(err, os.strerror(err), os.fspath(b))


def write_new(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Create ``path`` (FileExistsError if anything is there, a link included), write ``data`` and sync it.

    Its mode is 0666 less the umask, or ``mode`` (private until then).  A file made here that
    could not be filled is removed again.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise


def staged(target: Path, data: bytes) -> str:
    """A temporary file beside ``target`` holding ``data``, synced to disk: its path.

    Named by ``own_name`` (with this process's id); a signal that stops chainrule unwinds
    through here and removes it, and what a killed process left is removed on the next write.
    """
    folder = target.parent
    reap(folder, "chainrule", target=target.name, suffixes=(".tmp",))
    for _attempt in range(100):
        tmp = os.path.join(folder, own_name(target.name, "chainrule", ".tmp"))
        try:
            write_new(tmp, data, 0o600)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    target = Path(path)
    check_target(target)
    tmp = staged(target, data)
    try:
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
