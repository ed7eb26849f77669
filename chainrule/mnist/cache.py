"""Decoded copies of IDX files in the user cache: .npy files with sealed JSON sidecars, within a budget."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import DTypeLike

from chainrule.codegen.i18n import _, ngettext
from chainrule.fs.account import record_seal, record_sealed
from chainrule.fs.reaper import own_name, pid_alive, reap
from chainrule.mnist.idx import MnistError, read_idx
from chainrule.mnist.sources import (
    Announce,
    SourceStamp,
    _same_file_state,
    _say,
    mnist_cache_dir,
    source_stamp,
)

# Decoded copies of IDX files live in this folder of the cache, each .npy with a JSON sidecar that
# says which source it was decoded from, sealed with this account's key: only that seal marks it as chainrule's.
DECODED_DIR = "decoded"
DECODED_FORMAT = "chainrule-decoded-idx"

# What a sidecar's seal is for (see chainrule.fs.account.record_seal): a marker's seal never passes as one.
_SIDECAR_SEAL = "chainrule decoded copy"
DECODED_VERSION = 1

# A sidecar is a few hundred bytes; anything much larger was not written by chainrule.
SIDECAR_MAX_BYTES = 2**16

# The most the decoded copies may take together (full MNIST as bytes and float32 is 0.24 GB);
# the least recently used go first. $CHAINRULE_CACHE_MAX sets it: 0 keeps none.
ENV_CACHE_MAX = "CHAINRULE_CACHE_MAX"
DECODED_MAX_BYTES = 2**30


@dataclass
class DecodedCache:
    """Where decoded copies go, and who hears about a copy that cannot be kept (once per load)."""

    folder: Path
    announce: Announce = None
    unwritable: bool = False  # set by the first copy that cannot be written; the rest are not tried
    budget: int = DECODED_MAX_BYTES  # bytes all copies may take together
    in_use: set[str] = field(default_factory=set)  # sidecars this load reads or writes: never evicted by it


def decoded_cache_dir() -> Path:
    """Where decoded copies go: a folder of their own inside the MNIST cache, never in a user's data folder."""
    return mnist_cache_dir() / DECODED_DIR


def scale_pixels(images: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """Bytes 0..255 as ``dtype`` values in [0, 1], divided in ``dtype`` itself: one pass, no float64 detour.

    Each quotient of two exact values is correctly rounded, so float32 here equals float64 rounded to float32.
    """
    dtype = np.dtype(dtype)
    return np.divide(images, dtype.type(255), dtype=dtype)


def decoded_paths(folder: Path, stamp: SourceStamp, pixels: np.dtype) -> tuple[Path, Path]:
    """The .npy and JSON sidecar of one source in one representation.

    Named by the source's path (not its contents), so a changed file replaces its own copy instead of
    leaving the old one behind.
    """
    key = hashlib.sha256(stamp.path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    stem = f"{Path(stamp.path).name}-{key}-{pixels.name}"
    return folder / f"{stem}.npy", folder / f"{stem}.json"


def _array_crc(array: np.ndarray) -> int:
    """CRC-32 of an array's bytes: fast enough to check a memory-mapped copy on every load."""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def _sidecar(stamp: SourceStamp, array: np.ndarray, npy_size: int) -> dict[str, object] | None:
    """What a sidecar records: that chainrule wrote it, the source, and the decoded array, sealed.

    The seal (this account's, see ``chainrule.fs.account.record_seal``) is what makes the copy
    chainrule's; None when this account has no key and none can be made (no copy is kept then).
    """
    record: dict[str, object] = {
        "format": DECODED_FORMAT,
        "version": DECODED_VERSION,
        "source": {
            "path": stamp.path,
            "size": stamp.size,
            "mtime_ns": stamp.mtime_ns,
            "sha256": stamp.sha256,
        },
        "array": {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "npy_size": npy_size,
            "crc32": _array_crc(array),
        },
    }
    seal = record_seal(record, _SIDECAR_SEAL, create=True)
    if seal is None:
        return None
    record["seal"] = seal
    return record


def _read_sidecar(path: Path) -> dict | None | Literal["foreign"]:
    """A sidecar chainrule wrote, None if there is nothing at ``path``, or "foreign" for anything else."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # no copy yet, or no folder for copies: _keep_copy says if it cannot make one
    except OSError:
        return "foreign"
    if not stat.S_ISREG(info.st_mode) or info.st_size > SIDECAR_MAX_BYTES:
        return "foreign"
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return "foreign"
    if (
        not isinstance(meta, dict)
        or meta.get("format") != DECODED_FORMAT
        or not record_sealed(meta, _SIDECAR_SEAL)
    ):
        return "foreign"  # a sidecar anyone could have written: only this account's seal makes it chainrule's
    return meta


def _load_copy(npy: Path, meta: dict, stamp: SourceStamp, pixels: np.dtype) -> np.ndarray | None:
    """The decoded copy, memory-mapped, if it is exactly what the sidecar describes for this source; else None."""
    if meta.get("version") != DECODED_VERSION or meta.get("source") != _sidecar_source(stamp):
        return None
    want = meta.get("array")
    try:
        info = os.lstat(npy)
        if not stat.S_ISREG(info.st_mode) or info.st_size != want["npy_size"]:
            return None
        # Copy-on-write: the arrays are writable like freshly decoded ones, and a write never reaches the file.
        array = np.load(npy, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, TypeError, KeyError, EOFError):
        return None
    if (
        array.dtype != pixels
        or array.dtype.str != want.get("dtype")
        or list(array.shape) != want.get("shape")
        or _array_crc(array) != want.get("crc32")
    ):
        return None
    return array.view(np.ndarray)  # a plain array; the memory map stays alive as its base


def _sidecar_source(stamp: SourceStamp) -> dict[str, object]:
    """The source part of a sidecar, as JSON reads it back."""
    return {"path": stamp.path, "size": stamp.size, "mtime_ns": stamp.mtime_ns, "sha256": stamp.sha256}


def _decode(path: Path, ndim: int, pixels: np.dtype) -> np.ndarray:
    """Read an IDX file and bring its bytes to ``pixels`` (uint8 stays as read)."""
    data = read_idx(path, ndim=ndim)
    return data if pixels == np.uint8 else scale_pixels(data, pixels)


def _decoded(path: Path, ndim: int, pixels: np.dtype, cache: DecodedCache | None) -> np.ndarray:
    """An IDX file decoded into ``pixels``: the cache's verified copy when there is one, else decoded and kept."""
    if cache is None:
        return _decode(path, ndim, pixels)
    try:
        stamp = source_stamp(path)
    except OSError:
        return _decode(path, ndim, pixels)  # read_idx reports what is wrong with the file
    npy, side = decoded_paths(cache.folder, stamp, pixels)
    cache.in_use.add(side.name)
    meta = _read_sidecar(side)
    if isinstance(meta, dict):
        found = _load_copy(npy, meta, stamp, pixels)
        if found is not None:
            with contextlib.suppress(OSError):  # its time of last use: the least recently used go first
                os.utime(side, follow_symlinks=False)
            return found
    array = _decode(path, ndim, pixels)
    if meta == "foreign" or (meta is None and os.path.lexists(npy)):
        _say(
            cache.announce,
            _(
                "{npy}: not a copy chainrule decoded; left it alone and read {path} itself",
                npy=npy,
                path=path,
            ),
        )
    elif not cache.unwritable and _same_file_state(stamp, path):
        _keep_copy(cache, npy, side, stamp, array)
    return array


def _keep_copy(cache: DecodedCache, npy: Path, side: Path, stamp: SourceStamp, array: np.ndarray) -> None:
    """Write a decoded copy and its sidecar, each atomically; a cache that cannot take it costs only speed.

    The sidecar goes in first: a run killed before the .npy is renamed leaves a sidecar whose copy
    fails its check, which the next run replaces, never an unmarked .npy that would block the name.
    """
    tmp: Path | None = None
    try:
        cache.folder.mkdir(parents=True, exist_ok=True)
        _clean_temp(cache.folder)
        if array.nbytes > cache.budget:
            _make_room(cache, array.nbytes, side.name)
            return  # larger than the cap: this copy is not kept, which costs only speed
        fd, name = _new_temp(cache.folder, ".npy")
        tmp = Path(name)
        _check_regular(npy)  # before the sidecar names it: a link or folder there stays as it is
        with os.fdopen(fd, "wb") as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
            size = f.tell()
        os.chmod(tmp, 0o644)
        record = _sidecar(stamp, array, size)
        if record is None:
            return  # no key to seal it with: this copy is not kept, which costs only speed
        sidecar = json.dumps(record, indent=1).encode() + b"\n"
        if not _make_room(cache, size + len(sidecar), side.name):
            return
        _replace_own(side, sidecar)
        _check_regular(npy)
        os.replace(tmp, npy)
        tmp = None
    except OSError as exc:
        cache.unwritable = True
        _say(
            cache.announce,
            _(
                "cannot keep decoded copies of the MNIST files in {folder}: {reason}; each run decodes them again",
                folder=cache.folder,
                reason=exc.strerror or exc,
            ),
        )
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


_TEMP_PREFIX = ".chainrule-decoding-"

# A half-written copy is named ``.chainrule-decoding-PID-HEX.npy`` (or ``.json``) by own_name:
# only a name this account's chainrule made is ever removed as a killed run's.
DECODING_KIND = _TEMP_PREFIX[1:-1]


def _new_temp(folder: Path, suffix: str) -> tuple[int, str]:
    """A new private file in ``folder`` for a copy being written: its descriptor and path."""
    for _attempt in range(100):
        name = os.path.join(folder, own_name("", DECODING_KIND, suffix))
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(folder))


def _check_regular(path: Path) -> None:
    """Raise unless ``path`` is absent or a regular file, which a decoded copy may replace."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise FileExistsError(errno.EEXIST, "not a regular file; chainrule leaves it alone", str(path))


def _replace_own(path: Path, data: bytes) -> None:
    """Write a sidecar atomically, over nothing or over a sidecar of chainrule's only."""
    fd, name = _new_temp(path.parent, ".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(name, 0o644)
        if _read_sidecar(path) == "foreign":  # again, just before: something may have appeared meanwhile
            raise FileExistsError(_("{path} is not chainrule's", path=path))
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _clean_temp(folder: Path) -> None:
    """Remove the half-written copies of chainrule runs that were killed (their process is gone).

    Only files whose name this account's chainrule made (``own_name``) are removed.
    """
    reap(folder, DECODING_KIND, target="", suffixes=(".npy", ".json"), say=False)


def decoded_cache_budget() -> int:
    """The bytes the decoded copies may take: $CHAINRULE_CACHE_MAX (500M, 2G, 0...), else DECODED_MAX_BYTES."""
    text = os.environ.get(ENV_CACHE_MAX, "").strip()
    if not text:
        return DECODED_MAX_BYTES
    found = re.fullmatch(r"(\d{1,15})\s*(?:([KMGT])(?:i?B)?|B)?", text, re.IGNORECASE)
    if not found:
        raise MnistError(
            _(
                "{variable}={value}: not a size in bytes such as 0, 500M or 2G",
                variable=ENV_CACHE_MAX,
                value=repr(text),
            )
        )
    unit = found[2].upper() if found[2] else ""
    return int(found[1]) * 1024 ** ("KMGT".index(unit) + 1 if unit else 0)


@dataclass(frozen=True)
class DecodedEntry:
    """One decoded copy chainrule wrote: its sidecar, its .npy (None if it is gone) and what they say."""

    sidecar: Path
    npy: Path | None
    size: int  # bytes of both files
    last_used_ns: int  # the sidecar's modification time, renewed at each use
    source: str
    pixels: str
    state: Literal["ok", "orphan", "stale", "incomplete"]  # only "ok" can serve a run


def decoded_entries(folder: Path) -> list[DecodedEntry]:
    """The decoded copies in folder that chainrule wrote, least recently used first; nothing else is listed.

    A copy is chainrule's when its sidecar has chainrule's format, carries this account's seal
    of all it says, has the name decoded_paths gives the source and dtype it records, and the
    .npy is a regular NumPy file of the size the sidecar records. A sidecar whose .npy is missing or not that file is listed alone.
    """
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(".json"))
    except OSError:
        return []
    entries = []
    for name in names:
        entry = _decoded_entry(folder / name)
        if entry is not None:
            entries.append(entry)
    entries.sort(key=lambda e: (e.last_used_ns, e.sidecar.name))
    return entries


def _decoded_entry(side: Path) -> DecodedEntry | None:
    """The entry of one sidecar, if chainrule wrote it; else None."""
    meta = _read_sidecar(side)
    if not isinstance(meta, dict):
        return None
    try:
        source, array = meta["source"], meta["array"]
        stamp = SourceStamp(str(source["path"]), int(source["size"]), int(source["mtime_ns"]), "")
        pixels = np.dtype(array["dtype"])
        npy_size = int(array["npy_size"])
        if decoded_paths(side.parent, stamp, pixels)[1] != side:
            return None
        side_info = os.lstat(side)
    except (KeyError, TypeError, ValueError, OSError):
        return None
    npy: Path | None = side.with_suffix(".npy")
    size = side_info.st_size
    if _own_npy(npy, npy_size):
        size += npy_size
    else:
        npy = None
    state: Literal["ok", "orphan", "stale", "incomplete"] = "ok"
    try:
        info = os.stat(stamp.path)
        if meta.get("version") != DECODED_VERSION or (info.st_size, info.st_mtime_ns) != (
            stamp.size,
            stamp.mtime_ns,
        ):
            state = "stale"
    except OSError:
        state = "orphan"
    if npy is None:
        state = "incomplete"
    return DecodedEntry(side, npy, size, side_info.st_mtime_ns, stamp.path, pixels.name, state)


def _own_npy(npy: Path, npy_size: int) -> bool:
    """True if npy is a regular NumPy file of the size its sidecar records."""
    try:
        info = os.lstat(npy)
        if not stat.S_ISREG(info.st_mode) or info.st_size != npy_size:
            return False
        with open(npy, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def remove_entry(entry: DecodedEntry) -> bool:
    """Delete a decoded copy, then its sidecar, each checked again just before; True if both are gone.

    The .npy goes first: a sidecar left alone is known as chainrule's and removed later, while a
    .npy without its sidecar would be a file chainrule cannot tell from a user's.
    """
    again = _decoded_entry(entry.sidecar)
    if again is None or again.npy != entry.npy:
        return False  # changed meanwhile: left as it is
    if entry.npy is not None:
        entry.npy.unlink(missing_ok=True)
    entry.sidecar.unlink(missing_ok=True)
    return True


def _others_writing(folder: Path) -> bool:
    """True if a live chainrule process has a half-written copy in folder (its sidecar may precede its .npy)."""
    pattern = re.compile(rf"{re.escape(_TEMP_PREFIX)}(\d+)-\w+\.(npy|json)")
    try:
        found = [pattern.fullmatch(entry.name) for entry in os.scandir(folder)]
    except OSError:
        return True
    return any(m and int(m[1]) != os.getpid() and pid_alive(int(m[1])) for m in found)


def _make_room(cache: DecodedCache, need: int, replacing: str) -> bool:
    """Remove copies that can serve no run, then the least recently used, until need bytes fit the budget.

    The copies this load uses stay; ``replacing`` names the sidecar the new copy takes the place
    of, if it is there. False if the new copy cannot fit (it is then not kept).
    """
    entries = [e for e in decoded_entries(cache.folder) if e.sidecar.name != replacing]
    busy = _others_writing(cache.folder)
    kept = []
    removed = freed = 0
    for entry in entries:
        useless = entry.state in ("orphan", "stale") or (entry.state == "incomplete" and not busy)
        if useless and entry.sidecar.name not in cache.in_use and remove_entry(entry):
            removed, freed = removed + 1, freed + entry.size
        else:
            kept.append(entry)
    total = sum(e.size for e in kept)
    target = cache.budget - need if need <= cache.budget else cache.budget
    for entry in kept:
        if total <= target:
            break
        if entry.sidecar.name not in cache.in_use and remove_entry(entry):
            total -= entry.size
            removed, freed = removed + 1, freed + entry.size
    if removed:
        from chainrule.console import human_bytes

        _say(
            cache.announce,
            ngettext(
                "removed {n} decoded copy ({size}) from {folder}",
                "removed {n} decoded copies ({size}) from {folder}",
                removed,
            ).format(n=removed, size=human_bytes(freed), folder=cache.folder),
        )
    return need <= cache.budget and total + need <= cache.budget


def clear_decoded(folder: Path) -> tuple[int, int, int]:
    """Remove every decoded copy chainrule wrote in folder, and its killed runs' temporary files.

    Nothing else is touched. Returns how many copies were removed, their bytes, and how many were
    kept because another run is writing into the folder (a sidecar there may precede its .npy).
    """
    try:
        _clean_temp(folder)
    except OSError:
        pass
    busy = _others_writing(folder)
    removed = freed = left = 0
    for entry in decoded_entries(folder):
        if entry.state == "incomplete" and busy:
            left += 1
        elif remove_entry(entry):
            removed += 1
            freed += entry.size
    return removed, freed, left
