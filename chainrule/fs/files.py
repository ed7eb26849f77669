"""Writing files so that a reader never sees half of one, and reading only what is a plain file.

A file the user names with ``-o`` is written by ``write_output``: over nothing, over the same
bytes, or over a file chainrule wrote there and nobody changed since.  What chainrule wrote is
known from a list it keeps in its cache folder (``outputs.json``: each file's path, size and
SHA-256); any other file is the user's, and is refused.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from chainrule.codegen.i18n import _

LEDGER = "outputs.json"
LEDGER_TAG = "chainrule outputs"
LEDGER_LIMIT = 1000  # files remembered; the oldest are forgotten first
LEDGER_MAX_BYTES = 1 << 20
OUTPUT_MAX_BYTES = 256 << 20  # a file larger than this is never one chainrule wrote
NAME_MAX = 255  # bytes in one file name, on Linux and macOS file systems
# What a chainrule process names the temporary files and folders it makes beside a target:
# ``.<name>.<kind>-<pid>-<8 hex nonce><16 hex tag>[.tmp]``, the name shortened to fit NAME_MAX.
# The tag is an HMAC, with this account's key, of the kind, the name, the pid and the nonce:
# only this account's chainrule can make a name that verifies.  The pid says whose it is, so
# what a killed process left is known and removed by the next one; a name that does not verify
# is the user's, whatever it looks like.
ACCOUNT_KEY = "package-key"  # the per-account secret, in chainrule's cache folder (mode 0600)
_NONCE_HEX = 8
_TAG_HEX = 16


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


def exchange(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot.

    Any other failure (a path gone, no permission) is an OSError naming ``b``.
    """
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False  # a filesystem or kernel without the exchange
    raise OSError(err, os.strerror(err), os.fspath(b))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside folder ``path`` durable (where the system allows syncing a folder)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one existing file (so writing one would destroy the other)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def account_key(create: bool = False) -> bytes | None:
    """This account's secret (32 random bytes, mode 0600), kept beside the list of the files chainrule wrote.

    Made the first time it is needed with ``create``; None when there is none yet and
    ``create`` is false, when it cannot be made, or when it is not a plain file of 32 bytes that
    this account owns and nobody else may read or write (a key others can read seals nothing).
    """
    path = ledger_path().parent / ACCOUNT_KEY
    try:
        info = os.lstat(path)
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            return None
        key = read_regular(path, 64, follow=False)
    except FileNotFoundError:
        if not create:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:  # made meanwhile by another chainrule: use that one
            return account_key()
        except OSError:  # no folder of chainrule's can be written
            return None
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        return account_key()
    except OSError:
        return None
    return key if len(key) == 32 else None


def record_seal(record: Mapping[str, object], purpose: str, create: bool = False) -> str | None:
    """This account's seal of a JSON record (all of it but its "seal" field), for one purpose.

    An HMAC-SHA256 with ``account_key`` over the record as canonical JSON: only chainrule, on this
    account, can write it, and any change to the record breaks it. None when this account has no
    key (and ``create`` is false, or none can be made) or the record is no JSON.
    """
    key = account_key(create)
    if key is None:
        return None
    sealed = {k: v for k, v in record.items() if k != "seal"}
    try:
        canonical = json.dumps(sealed, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        return None
    return hmac.new(
        key, purpose.encode("ascii") + b"\0" + canonical.encode("ascii"), hashlib.sha256
    ).hexdigest()


def record_sealed(record: Mapping[str, object], purpose: str) -> bool:
    """True when ``record`` carries this account's seal (see record_seal) of all it says, for ``purpose``."""
    seal = record.get("seal")
    expected = record_seal(record, purpose) if isinstance(seal, str) else None
    if expected is None:
        return False
    return hmac.compare_digest(seal.encode("utf-8", "surrogatepass"), expected.encode("ascii"))  # type: ignore[union-attr]


def _tag(key: bytes, kind: str, name: str, pid: int, nonce: str) -> str:
    """The part of an own name only this account's chainrule can compute: for this kind, whole name and pid."""
    fields = (
        b"chainrule leftover",
        kind.encode("utf-8"),
        os.fsencode(name),
        str(pid).encode(),
        nonce.encode(),
    )
    return hmac.new(key, b"\0".join(fields), hashlib.sha256).hexdigest()[:_TAG_HEX]


def _tail(kind: str, pid: int, suffix: str) -> int:
    """The bytes an own name takes besides the target's name (its leading dot included)."""
    return len(os.fsencode(f"..{kind}-{pid}-{suffix}")) + _NONCE_HEX + _TAG_HEX


def _stem(name: str, kind: str, pid: int, suffix: str) -> str:
    """``name`` cut (at a character, so the rest stays readable) until the own name fits in NAME_MAX bytes."""
    room = NAME_MAX - _tail(kind, pid, suffix)
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return name


def own_name(name: str, kind: str, suffix: str = "", pid: int | None = None) -> str:
    """A hidden name beside the file or folder ``name`` for a temporary of this process, within NAME_MAX.

    ``.<name>.<kind>-<pid>-<nonce><tag><suffix>`` (``.<kind>-...`` when ``name`` is empty),
    the tag made with this account's key (see ``leftover_owner``).  Without a key (chainrule's
    cache folder cannot be written) the tag is random: nothing then ever removes it but its maker.
    """
    pid = os.getpid() if pid is None else pid
    stem = _stem(name, kind, pid, suffix)
    nonce = secrets.token_hex(_NONCE_HEX // 2)
    key = account_key(create=True)
    tag = _tag(key, kind, name, pid, nonce) if key is not None else secrets.token_hex(_TAG_HEX // 2)
    head = f".{stem}." if name else "."
    return f"{head}{kind}-{pid}-{nonce}{tag}{suffix}"


def leftover_owner(
    name: str, kinds: str | tuple[str, ...], target: str | None = None, suffix: str = ""
) -> int | None:
    """The process id in a name ``own_name`` made here for one of ``kinds``; None when ``name`` is not one.

    The tag must verify with this account's key, for ``target``'s whole name (without
    ``target``: for the name the leftover shows, so a shortened one never verifies).  A name
    that only looks like one is the user's.
    """
    for kind in (kinds,) if isinstance(kinds, str) else kinds:
        found = re.fullmatch(
            rf"\.(?:(?P<stem>.*)\.)?{re.escape(kind)}-(?P<pid>[1-9][0-9]{{0,9}})"
            rf"-(?P<nonce>[0-9a-f]{{{_NONCE_HEX}}})(?P<tag>[0-9a-f]{{{_TAG_HEX}}}){re.escape(suffix)}",
            name,
            re.DOTALL,
        )
        if found is None:
            continue
        stem, pid = found["stem"] or "", int(found["pid"])
        whole = stem if target is None else target
        key = account_key() if stem == _stem(whole, kind, pid, suffix) else None
        if key is None:
            continue
        if hmac.compare_digest(found["tag"], _tag(key, kind, whole, pid, found["nonce"])):
            return pid
    return None


def say_removed(path: str | os.PathLike[str], pid: int) -> None:
    """One line on stderr: what chainrule removed that a stopped run of it had left."""
    if sys.stderr is not None:
        print(
            _("removed {path}, left by chainrule process {pid} that was stopped", path=shown(path), pid=pid),
            file=sys.stderr,
        )


def clean_temporaries(folder: Path, target: str | None = None) -> None:
    """Remove the temporary files (``own_name(target, "chainrule", ".tmp")``) of chainrule processes that are gone.

    Only regular files whose name verifies as made here (for ``target``, when given) are removed.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        pid = leftover_owner(entry.name, "chainrule", target, ".tmp")
        if pid is None or pid_alive(pid):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                say_removed(entry.path, pid)
        except OSError:
            continue  # left for a later write


def _staged(target: Path, data: bytes) -> str:
    """A temporary file beside ``target`` holding ``data``, synced to disk: its path.

    Named by ``own_name`` (with this process's id); a signal that stops chainrule unwinds
    through here and removes it, and what a killed process left is removed on the next write.
    """
    folder = target.parent
    clean_temporaries(folder, target.name)
    for _attempt in range(100):
        tmp = os.path.join(folder, own_name(target.name, "chainrule", ".tmp"))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    target = Path(path)
    check_target(target)
    tmp = _staged(target, data)
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

    A missing list is empty.  One that is not a regular file, too large, too deeply nested or
    not in chainrule's format is left alone (and never written over): chainrule then replaces
    nothing it cannot account for, which costs the user only a refusal.
    """
    try:
        raw = read_regular(ledger_path(), LEDGER_MAX_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(doc, dict) and doc.get("format") == LEDGER_TAG and isinstance(doc.get("files"), dict)):
        return None
    return {
        k: v
        for k, v in doc["files"].items()
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
    }


class _LedgerLock:
    """One chainrule process at a time checks, writes and records an output (an advisory lock).

    Where the cache folder cannot hold the lock, the write goes on unlocked: the list may then
    miss an entry, which costs only a refusal later.
    """

    def __enter__(self) -> _LedgerLock:
        self.fd = None
        try:
            import fcntl

            ledger_path().parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(
                ledger_path().with_name(LEDGER + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644
            )
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock


def _remember(target: Path, data: bytes) -> str | None:
    """Add ``target`` to the list of what chainrule wrote; why it could not, or None."""
    files = _read_ledger()
    if files is None:
        return _("{path} is not a list chainrule keeps", path=ledger_path())
    key = _key(target)
    files.pop(key, None)
    files[key] = [len(data), hashlib.sha256(data).hexdigest()]
    kept = list(files.items())[-LEDGER_LIMIT:]
    while True:
        # ASCII only: a file name that is not UTF-8 is kept as an escaped surrogate, and read back the same.
        text = json.dumps({"format": LEDGER_TAG, "files": dict(kept)}, indent=0).encode("ascii")
        if len(text) <= LEDGER_MAX_BYTES // 2 or len(kept) <= 1:
            break
        kept = kept[len(kept) // 4 :]  # the oldest quarter is forgotten: the list stays readable
    try:
        ledger_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(ledger_path(), text)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _holds(target: Path, data: bytes | None) -> str:
    """What is at ``target``: "absent", "same" (exactly ``data``), "ours" (chainrule's, unchanged) or "theirs"."""
    try:
        size = os.lstat(target).st_size
    except (FileNotFoundError, NotADirectoryError):
        return "absent"
    if size > OUTPUT_MAX_BYTES:
        return "theirs"
    current = read_regular(target, OUTPUT_MAX_BYTES)
    if data is not None and current == data:
        return "same"
    entry = (_read_ledger() or {}).get(_key(target))
    return "ours" if entry == [len(current), hashlib.sha256(current).hexdigest()] else "theirs"


def _refusal() -> NotOurs:
    return NotOurs(
        errno.EEXIST,
        _("chainrule did not write it, or it was changed since; move it away or name another file"),
    )


def _check_name(target: Path, raw: str) -> None:
    if not raw or raw.endswith(("/", os.sep)):
        raise UnsafeTarget(errno.EISDIR, _("a file name is needed here, not a folder"))
    if target.name in (LEDGER, ACCOUNT_KEY) and os.path.realpath(target.parent) == os.path.realpath(
        ledger_path().parent
    ):
        raise UnsafeTarget(errno.EPERM, _("it is chainrule's own record in its cache folder"))


def check_output(path: str | os.PathLike[str]) -> None:
    """Before the work: refuse what ``write_output`` would refuse whatever it writes (a file of the user's)."""
    target = Path(path)
    _check_name(target, os.fspath(path))
    check_target(target)
    if _holds(target, None) == "theirs":
        raise _refusal()


def umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_file_mode() -> int:
    """0666 less the umask, as for any file a program creates."""
    return 0o666 & ~umask()


def write_output(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write a file the user named: atomically, and only over nothing or over chainrule's own unchanged output.

    A file that already holds exactly ``data`` is left as it is (its inode, mode and links), and
    not claimed.  A new file is created exclusively (a hard link from the temporary file), so a
    file that appears meanwhile is never replaced.  A note on stderr says when the list of
    chainrule's files cannot take the new one (chainrule will then not replace it later).
    """
    target = Path(path)
    _check_name(target, os.fspath(path))
    with _LedgerLock():
        check_target(target)
        held = _holds(target, data)
        if held == "theirs":
            raise _refusal()
        if held == "same":
            return target
        tmp = _staged(target, data)
        try:
            if held == "absent":
                os.chmod(tmp, _new_file_mode())
                try:
                    os.link(tmp, target)  # fails if anything appeared there: nothing is replaced
                except FileExistsError:
                    raise
                except OSError:  # a file system without hard links: check once more, then rename
                    if _holds(target, None) != "absent":
                        raise _refusal() from None
                    os.replace(tmp, target)
                else:
                    os.unlink(tmp)
            else:
                os.chmod(tmp, stat.S_IMODE(os.lstat(target).st_mode))
                check_target(target)
                if _holds(target, None) != "ours":  # changed while we wrote: now it is the user's
                    raise _refusal()
                os.replace(tmp, target)
        except FileExistsError:
            Path(tmp).unlink(missing_ok=True)
            raise _refusal() from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        why = _remember(target, data)
    if why is not None:
        import sys

        print(
            _(
                "note: {path} could not be recorded as chainrule's ({reason}); it will not be replaced later",
                path=shown(target),
                reason=why,
            ),
            file=sys.stderr,
        )
    return target


def shown(path: str | os.PathLike[str]) -> str:
    """A path as one line of a message: quoted when it holds a newline or another unprintable character."""
    text = os.fspath(path)
    text = text if isinstance(text, str) else os.fsdecode(text)
    return text if text.isprintable() else repr(text)


def write_output_text(path: str | os.PathLike[str], text: str) -> Path:
    """``write_output`` for text, as UTF-8."""
    return write_output(path, text.encode("utf-8"))
