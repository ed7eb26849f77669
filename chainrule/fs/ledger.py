"""Files the user names with ``-o``: written only over nothing, over the same bytes, or over a
file chainrule wrote there and nobody changed since.

What chainrule wrote is known from a list it keeps in its cache folder (``outputs.json``: each
file's path, size and SHA-256); any other file is the user's, and is refused.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

from chainrule.codegen.i18n import _
from chainrule.fs.account import ACCOUNT_KEY, cache_folder
from chainrule.fs.atomic import atomic_write_bytes, staged, umask
from chainrule.fs.guard import UnsafeTarget, check_target, read_regular, shown

LEDGER = "outputs.json"
LEDGER_TAG = "chainrule outputs"
LEDGER_LIMIT = 1000  # files remembered; the oldest are forgotten first
LEDGER_MAX_BYTES = 1 << 20
OUTPUT_MAX_BYTES = 256 << 20  # a file larger than this is never one chainrule wrote


class NotOurs(UnsafeTarget):
    """An output path names a regular file that chainrule did not write, or that changed since it did."""


def ledger_path() -> Path:
    """Where chainrule lists the files it wrote: ``outputs.json`` in the platform's cache folder."""
    return cache_folder() / LEDGER


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
        tmp = staged(target, data)
        try:
            if held == "absent":
                os.chmod(tmp, 0o666 & ~umask())  # as for any file a program creates
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
        print(
            _(
                "note: {path} could not be recorded as chainrule's ({reason}); it will not be replaced later",
                path=shown(target),
                reason=why,
            ),
            file=sys.stderr,
        )
    return target


def write_output_text(path: str | os.PathLike[str], text: str) -> Path:
    """``write_output`` for text, as UTF-8."""
    return write_output(path, text.encode("utf-8"))
