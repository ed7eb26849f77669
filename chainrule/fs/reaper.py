"""Names that say which chainrule process made a temporary, and the removal of what stopped ones left.

What a chainrule process makes beside a target is named
``.<name>.<kind>-<pid>-<8 hex nonce><16 hex tag>[suffix]``, the name shortened to fit NAME_MAX.
The tag is an HMAC, with this account's key, of the kind, the name, the pid and the nonce:
only this account's chainrule can make a name that verifies.  The pid says whose it is, so
what a killed process left is known and removed by the next one (``reap``); a name that does
not verify is the user's, whatever it looks like.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chainrule.codegen.i18n import _
from chainrule.fs.account import account_key
from chainrule.fs.guard import shown

NAME_MAX = 255  # bytes in one file name, on Linux and macOS file systems
_NONCE_HEX = 8
_TAG_HEX = 16


def pid_alive(pid: int) -> bool:
    """True if a process with this id exists (it may belong to another user): a staging folder's owner."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def reap(
    folder: str | os.PathLike[str],
    kinds: str | tuple[str, ...],
    empty: Callable[[Path], Sequence[Path]] | None = None,
    *,
    target: str | None = None,
    suffixes: tuple[str, ...] = ("",),
    say: bool = True,
) -> list[Path]:
    """Remove what chainrule processes now gone left in ``folder``: what was removed, each said on stderr.

    Only entries named by ``own_name(target, kind, suffix)`` for one of ``kinds`` and
    ``suffixes`` (verified with this account's key: see ``leftover_owner``) whose process no
    longer runs are touched.  Without ``empty`` they must be regular files, and are unlinked;
    with it they must be folders (never a link), and ``empty(path)`` removes chainrule's own
    files in one (then the folder, if that empties it) and returns the paths it removed.  What
    cannot be removed now is left for a later run.  ``say=False``: nothing is said.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    removed = []
    for entry in entries:
        pid = next(filter(None, (leftover_owner(entry.name, kinds, target, s) for s in suffixes)), None)
        if pid is None or pid_alive(pid):
            continue
        path = Path(entry.path)
        try:
            if empty is None and entry.is_file(follow_symlinks=False):
                os.unlink(path)
                gone: Sequence[Path] = [path]
            elif empty is not None and entry.is_dir(follow_symlinks=False):
                gone = empty(path)
            else:
                continue
        except OSError:
            continue
        for done in gone:
            if say:
                say_removed(entry.path if done == path else done, pid)  # the entry as the folder names it
            removed.append(done)
    return removed
