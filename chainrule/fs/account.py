"""This account's secret, kept in chainrule's cache folder, and the seals made with it.

A seal says a record was written by chainrule on this account and has not changed since; the
same key tags the names of chainrule's temporary files (see ``chainrule.fs.reaper``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from chainrule.fs.guard import read_regular

ACCOUNT_KEY = "package-key"  # the per-account secret, in chainrule's cache folder (mode 0600)


def cache_folder() -> Path:
    """chainrule's folder in the platform's cache folder: its secret and its list of outputs are there."""
    import pooch

    return Path(pooch.os_cache("chainrule")).expanduser()


def account_key(create: bool = False) -> bytes | None:
    """This account's secret (32 random bytes, mode 0600), kept beside the list of the files chainrule wrote.

    Made the first time it is needed with ``create``; None when there is none yet and
    ``create`` is false, when it cannot be made, or when it is not a plain file of 32 bytes that
    this account owns and nobody else may read or write (a key others can read seals nothing).
    """
    path = cache_folder() / ACCOUNT_KEY
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
