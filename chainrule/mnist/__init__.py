"""Load MNIST from a named directory, the user cache, a checked download, or the shipped sample."""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import logging
import math
import os
import re
import stat
import struct
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from numpy.typing import DTypeLike

from chainrule.codegen.i18n import N_, _, ngettext
from chainrule.fs.account import record_seal, record_sealed
from chainrule.fs.reaper import leftover_owner, own_name, pid_alive, say_removed

# The four files of the standard IDX layout, in (train images, train labels, test images, test labels) order.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# MD5s of the original gzip files; module-level so tests can substitute their own small files.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# Their sizes, checked before an MD5 is computed: a file of another size is not MNIST's, however large.
MNIST_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

ENV_DATA_DIR = "CHAINRULE_DATA_DIR"
ENV_CACHE_DIR = "CHAINRULE_CACHE_DIR"
ENV_MIRRORS = "CHAINRULE_MNIST_MIRRORS"
ENV_OFFLINE = "CHAINRULE_OFFLINE"

# Connect fails fast on an offline machine; the read timeout allows for a slow mirror.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "mnist_sample.npz"
N_CLASSES = 10

_IDX_UBYTE = 0x08
# Bounds on what a header may ask for, checked before any allocation. MNIST's largest file holds
# 47 MB of pixels; 256 MiB leaves room for larger MNIST-style sets (EMNIST-balanced is 88 MB).
IDX_MAX_DATA_BYTES = 2**28
IDX_MAX_DIMS = 8
# What load_mnist may build from the files (pixels, floats, one-hot labels), estimated from the
# headers: full MNIST as float64 with one-hot labels needs 0.5 GB.
LOAD_MAX_BYTES = 2**30
# Downloads go into a private folder inside the cache, ``.chainrule-download-PID-HEX``: named
# (chainrule.fs.files.own_name) so a later run knows it as this account's chainrule's, and no other.
DOWNLOAD_KIND = "chainrule-download"
# What pooch names its temporary files (tempfile's "tmp" and 8 characters) in that folder.
_POOCH_TEMP = re.compile(r"tmp[a-z0-9_]{8}")
# Decoded copies of IDX files live in this folder of the cache, each .npy with a JSON sidecar that
# says which source it was decoded from, sealed with this account's key: only that seal marks it as chainrule's.
DECODED_DIR = "decoded"
DECODED_FORMAT = "chainrule-decoded-idx"
# What a sidecar's seal is for (see chainrule.fs.files.record_seal): a marker's seal never passes as one.
_SIDECAR_SEAL = "chainrule decoded copy"
DECODED_VERSION = 1
# A sidecar is a few hundred bytes; anything much larger was not written by chainrule.
SIDECAR_MAX_BYTES = 2**16
# The most the decoded copies may take together (full MNIST as bytes and float32 is 0.24 GB);
# the least recently used go first. $CHAINRULE_CACHE_MAX sets it: 0 keeps none.
ENV_CACHE_MAX = "CHAINRULE_CACHE_MAX"
DECODED_MAX_BYTES = 2**30
_IMAGE_NDIM = 3
_LABEL_NDIM = 1

SourceKind = Literal["dir", "cache", "download", "sample"]
Announce = Callable[[str], object] | None


class MnistError(Exception):
    """A one-line problem with MNIST data: which file, and what is wrong with it."""


@dataclass(frozen=True)
class MnistSource:
    """Where load_mnist takes its data from: a directory of IDX files or the sample npz."""

    kind: SourceKind
    path: Path
    n_train: int
    n_test: int

    def describe(self) -> str:
        """Return a one-line human description of this source."""
        sentence = {
            "dir": N_("MNIST from the directory {path} ({train} training, {test} test images)"),
            "cache": N_("MNIST from the cache {path} ({train} training, {test} test images)"),
            "download": N_(
                "MNIST from a fresh download in the cache {path} ({train} training, {test} test images)"
            ),
            "sample": N_(
                "MNIST from the sample shipped with chainrule, {path} ({train} training, {test} test images)"
            ),
        }[self.kind]
        return _(sentence, path=self.path, train=format(self.n_train, ","), test=format(self.n_test, ","))


@dataclass(frozen=True)
class _Split:
    """One split: images (N, rows, cols) as uint8 or already scaled to [0, 1], and uint8 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray


# ---------------------------------------------------------------- IDX format


def _one_line(text: object) -> str:
    """Collapse any whitespace (newlines included) so error messages stay on one line."""
    return " ".join(str(text).split())


def _open_binary(path: Path) -> BinaryIO:
    """Open an IDX file, decompressing on the fly when its name ends with .gz."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        # A FIFO or device would block or never end; IDX data is always a plain file.
        raise MnistError(_("{path}: not a regular file", path=path))
    if path.name.endswith(".gz"):
        return _GzipReader(path)  # type: ignore[return-value]
    return open(path, "rb")


# Compressed bytes a .gz file may take beyond twice the data it has given so far: its header's
# name and comment, deflate's block overhead, and the padding looked at after the last member.
# Deflate never needs more than about 1.13 compressed bytes per data byte (fixed Huffman codes).
GZIP_SLACK = 2**20
_GZIP_CHUNK = 2**16
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_ENDED = "Compressed file ended before the end-of-stream marker was reached"


class _GzipReader:
    """A gzip file's data, decompressed only as far as it is read, its compressed bytes read only as far as needed.

    Each member's CRC and length are checked at its end, as the gzip module does. After a
    member, another member is read on; zero bytes are padding (gzip's FAQ 8) and end the data
    without being read further than the bytes at hand (at most one read of 64 KiB), so a file
    padded with gigabytes of zeros costs no more than one without; any other byte is an error.
    The compressed bytes read never exceed twice the data given plus GZIP_SLACK.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._pending = b""  # compressed bytes read and not yet used
        self._taken = 0  # compressed bytes read from the file
        self._given = 0  # data bytes handed out
        self._member: zlib._Decompress | None = None
        self._members = 0
        self._crc = 0
        self._size = 0
        self._ended = False

    def __enter__(self) -> _GzipReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _fill(self) -> bool:
        """Read one more chunk of compressed bytes, within the budget; False at the end of the file."""
        if self._taken > 2 * self._given + GZIP_SLACK:
            raise MnistError(
                _(
                    "{path}: the gzip stream goes on for {taken} compressed bytes after {given} data bytes;"
                    " chainrule reads at most twice the data plus {slack}",
                    path=self.path,
                    taken=format(self._taken, ","),
                    given=format(self._given, ","),
                    slack=format(GZIP_SLACK, ","),
                )
            )
        chunk = self._file.read(_GZIP_CHUNK)
        self._taken += len(chunk)
        self._pending += chunk
        return bool(chunk)

    def _take(self, n: int) -> bytes:
        """The next n compressed bytes; the file ending first is a truncated stream."""
        while len(self._pending) < n:
            if not self._fill():
                raise EOFError(_GZIP_ENDED)
        taken, self._pending = self._pending[:n], self._pending[n:]
        return taken

    def _take_string(self) -> None:
        """Skip a zero-terminated header field (the file name or the comment)."""
        while (end := self._pending.find(b"\0")) < 0:
            if not self._fill():
                raise EOFError(_GZIP_ENDED)
        self._pending = self._pending[end + 1 :]

    def _start_member(self) -> bool:
        """Read the next member's header; False when the data has ended (end of file or zero padding)."""
        if not self._pending:
            self._fill()
        if self._members:
            rest = self._pending.lstrip(b"\0")
            if not rest:
                return False  # nothing more, or zero padding: not read past the bytes at hand
            if not rest.startswith(_GZIP_MAGIC[: len(rest)]):
                raise MnistError(
                    _(
                        "{path}: bytes after the end of the gzip data that are neither zero padding nor another gzip member",
                        path=self.path,
                    )
                )
            self._pending = rest
        elif not self._pending:
            return False  # an empty file
        while len(self._pending) < 2 and self._fill():
            pass
        magic = self._pending[:2]
        if magic != _GZIP_MAGIC:
            raise gzip.BadGzipFile(f"Not a gzipped file ({magic!r})")
        method, flags = struct.unpack("<BB6x", self._take(10)[2:])
        if method != 8:
            raise gzip.BadGzipFile("Unknown compression method")
        if flags & 4:  # FEXTRA
            self._take(struct.unpack("<H", self._take(2))[0])
        if flags & 8:  # FNAME
            self._take_string()
        if flags & 16:  # FCOMMENT
            self._take_string()
        if flags & 2:  # FHCRC
            self._take(2)
        self._member = zlib.decompressobj(-zlib.MAX_WBITS)
        self._members += 1
        self._crc = self._size = 0
        return True

    def _end_member(self) -> None:
        """Check the member's CRC and length against its trailer."""
        crc, size = struct.unpack("<II", self._take(8))
        if crc != self._crc:
            raise gzip.BadGzipFile(f"CRC check failed {hex(crc)} != {hex(self._crc)}")
        if size != self._size & 0xFFFFFFFF:
            raise gzip.BadGzipFile("Incorrect length of data produced")
        self._member = None

    def _more(self, n: int) -> bytes:
        """Up to n more data bytes, at least one unless the data has ended."""
        while not self._ended:
            if self._member is None and not self._start_member():
                self._ended = True
                break
            member = self._member
            assert member is not None
            data = member.decompress(self._pending, n)
            self._pending = member.unused_data if member.eof else member.unconsumed_tail
            self._crc = zlib.crc32(data, self._crc)
            self._size += len(data)
            self._given += len(data)
            if member.eof:
                self._end_member()
            if data:
                return data
            if not member.eof and not self._fill():
                raise EOFError(_GZIP_ENDED)
        return b""

    def read(self, n: int = -1) -> bytes:
        """n data bytes, fewer only at the end; all the rest for n < 0."""
        parts = []
        got = 0
        while n < 0 or got < n:
            data = self._more(_GZIP_CHUNK if n < 0 else n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def readinto(self, buf: memoryview) -> int:
        """Fill buf as far as the data goes; return the number of bytes put in."""
        view = memoryview(buf).cast("B")
        filled = 0
        while filled < len(view):
            data = self._more(len(view) - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
        return filled


def _read_fully(f: BinaryIO, buf: memoryview) -> int:
    """Fill buf from f until full or end of file; return the number of bytes read."""
    filled = 0
    while filled < len(buf):
        n = f.readinto(buf[filled:])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled


def _read_header(f: BinaryIO, path: Path, ndim: int | None) -> tuple[int, ...]:
    """Read and check an IDX header; return its dimensions."""
    magic_bytes = f.read(4)
    if len(magic_bytes) < 4:
        raise MnistError(_("{path}: too short for an IDX header ({n} bytes)", path=path, n=len(magic_bytes)))
    magic = int.from_bytes(magic_bytes, "big")
    if magic_bytes[:2] == b"\x1f\x8b" and not path.name.endswith(".gz"):
        raise MnistError(
            _(
                "{path}: bad magic number 0x{magic} (this is gzip data; name the file with .gz)",
                path=path,
                magic=format(magic, "08x"),
            )
        )
    kind = {_IMAGE_NDIM: _("an IDX image file"), _LABEL_NDIM: _("an IDX label file")}.get(
        ndim or -1, _("an IDX file")
    )
    if ndim is not None and magic != (_IDX_UBYTE << 8 | ndim):
        raise MnistError(
            _(
                "{path}: bad magic number 0x{magic} (expected 0x{value} for {kind})",
                path=path,
                magic=format(magic, "08x"),
                value=format(_IDX_UBYTE << 8 | ndim, "08x"),
                kind=kind,
            )
        )
    if magic_bytes[:2] != b"\0\0" or magic_bytes[2] != _IDX_UBYTE or magic_bytes[3] == 0:
        raise MnistError(
            _(
                "{path}: bad magic number 0x{magic} (expected 0x000008NN, an unsigned-byte IDX file)",
                path=path,
                magic=format(magic, "08x"),
            )
        )
    nd = magic_bytes[3]
    if nd > IDX_MAX_DIMS:
        raise MnistError(
            _(
                "{path}: header has {nd} dimensions; chainrule reads at most {idx_max_dims}",
                path=path,
                nd=nd,
                idx_max_dims=IDX_MAX_DIMS,
            )
        )
    dim_bytes = f.read(4 * nd)
    if len(dim_bytes) < 4 * nd:
        raise MnistError(
            _(
                "{path}: truncated IDX header (needs {value} bytes, file has {value2})",
                path=path,
                value=4 + 4 * nd,
                value2=4 + len(dim_bytes),
            )
        )
    dims = struct.unpack(f">{nd}I", dim_bytes)
    if 0 in dims:
        raise MnistError(
            _(
                "{path}: dimensions {dims_text} include 0; every dimension must be positive",
                path=path,
                dims_text=_dims_text(dims),
            )
        )
    if math.prod(dims) > IDX_MAX_DATA_BYTES:
        raise MnistError(
            _(
                "{path}: header dimensions {dims_text} describe {prod} bytes, more than the {idx_max_data_bytes} chainrule reads from one IDX file",
                path=path,
                dims_text=_dims_text(dims),
                prod=format(math.prod(dims), ","),
                idx_max_data_bytes=format(IDX_MAX_DATA_BYTES, ","),
            )
        )
    return dims


def _dims_text(dims: Sequence[int]) -> str:
    """Format dimensions as 60000x28x28."""
    return "x".join(str(d) for d in dims)


def read_idx_shape(path: str | os.PathLike[str], *, ndim: int | None = None) -> tuple[int, ...]:
    """Return the dimensions recorded in an IDX file's header without reading its data."""
    path = Path(path)
    try:
        with _open_binary(path) as f:
            return _read_header(f, path, ndim)
    except (OSError, EOFError, zlib.error) as exc:
        raise MnistError(_("{path}: cannot read: {reason}", path=path, reason=_one_line(exc))) from exc


def read_idx(path: str | os.PathLike[str], *, ndim: int | None = None) -> np.ndarray:
    """Read an unsigned-byte IDX file (raw or .gz) into a writable uint8 array, checking its structure."""
    path = Path(path)
    try:
        with _open_binary(path) as f:
            dims = _read_header(f, path, ndim)
            header_len = 4 + 4 * len(dims)
            expected = math.prod(dims)
            if not path.name.endswith(".gz"):
                # A raw file's size is known up front, so a lying header never triggers a big allocation.
                actual = path.stat().st_size - header_len
                if actual != expected:
                    raise MnistError(_length_message(path, dims, expected, actual))
            try:
                data = np.empty(expected, dtype=np.uint8)
            except (MemoryError, ValueError) as exc:
                raise MnistError(
                    _(
                        "{path}: header dimensions {dims_text} are too large to load",
                        path=path,
                        dims_text=_dims_text(dims),
                    )
                ) from exc
            got = _read_fully(f, memoryview(data))
            if got < expected:
                raise MnistError(_length_message(path, dims, expected, got))
            # One byte past the data finds trailing bytes and makes gzip verify its CRC and length;
            # no more is decompressed than the header promised, plus that byte.
            if f.read(1):
                raise MnistError(
                    _(
                        "{path}: too long: header dimensions {dims_text} need {expected} data bytes, the file has more",
                        path=path,
                        dims_text=_dims_text(dims),
                        expected=format(expected, ","),
                    )
                )
    except MnistError:
        raise
    except EOFError as exc:
        raise MnistError(
            _("{path}: truncated gzip stream: {one_line}", path=path, one_line=_one_line(exc))
        ) from exc
    except (OSError, zlib.error) as exc:
        raise MnistError(_("{path}: cannot read: {reason}", path=path, reason=_one_line(exc))) from exc
    return data.reshape(dims)


def _length_message(path: Path, dims: Sequence[int], expected: int, actual: int) -> str:
    """Describe a data length that disagrees with the header's dimensions."""
    values = {
        "path": path,
        "dims_text": _dims_text(dims),
        "expected": format(expected, ","),
        "actual": format(actual, ","),
    }
    if actual < expected:
        return _(
            "{path}: truncated: header dimensions {dims_text} need {expected} data bytes, file has {actual}",
            **values,
        )
    return _(
        "{path}: too long: header dimensions {dims_text} need {expected} data bytes, file has {actual}",
        **values,
    )


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array (1-D labels or 3-D images) as an IDX file, gzipped if the name ends with .gz, atomically."""
    a = np.ascontiguousarray(array)
    if a.dtype != np.uint8:
        raise ValueError(f"write_idx needs a uint8 array, got {a.dtype}")
    if a.ndim not in (_LABEL_NDIM, _IMAGE_NDIM):
        raise ValueError(f"write_idx needs a 1-D (labels) or 3-D (images) array, got {a.ndim}-D")
    if any(d >= 2**32 for d in a.shape):
        raise ValueError(f"write_idx: dimension too large for IDX in shape {a.shape}")
    path = Path(path)
    header = bytes((0, 0, _IDX_UBYTE, a.ndim)) + struct.pack(f">{a.ndim}I", *a.shape)
    # Same-directory temp file + os.replace: readers never see a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            if path.name.endswith(".gz"):
                # mtime=0 and the final name keep the output identical from run to run.
                with gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw, mtime=0) as gz:
                    gz.write(header)
                    gz.write(a.data)
            else:
                raw.write(header)
                raw.write(a.data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- directories of IDX files


def dotted_name(base: str) -> str:
    """``train-images.idx3-ubyte``: the name a popular mirror gives the uncompressed files."""
    head, _sep, tail = base.rpartition("-idx")
    return f"{head}.idx{tail}"


def _find_idx_files(directory: Path, *, gz_only: bool = False) -> tuple[dict[str, Path], list[str]]:
    """Map each IDX base name to its file in directory; also list the missing ones.

    Raw is preferred over .gz, and the standard name over the dotted one. The cache holds
    only the .gz files chainrule downloaded (``gz_only``).
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    for base in IDX_FILES:
        candidates = [f"{base}.gz"] if gz_only else [base, f"{base}.gz", dotted_name(base)]
        for name in candidates:
            if (directory / name).is_file():
                found[base] = directory / name
                break
        else:
            missing.append(candidates[-1] if gz_only else f"{base}[.gz]")
    return found, missing


def _dir_files(directory: Path, *, gz_only: bool = False) -> dict[str, Path]:
    """Return the four IDX files in directory, or raise naming the directory and what is missing."""
    if not directory.exists():
        raise MnistError(_("{path}: MNIST data directory does not exist", path=directory))
    if not directory.is_dir():
        raise MnistError(_("{path}: MNIST data directory is not a directory", path=directory))
    found, missing = _find_idx_files(directory, gz_only=gz_only)
    if missing:
        raise MnistError(
            _(
                "{directory}: missing {join} (needs the four MNIST IDX files, raw or .gz)",
                directory=directory,
                join=", ".join(missing),
            )
        )
    return found


def _dir_source(directory: Path, kind: SourceKind, *, gz_only: bool = False) -> MnistSource:
    """Describe a directory of IDX files from their headers alone."""
    files = _dir_files(directory, gz_only=gz_only)
    n_train = read_idx_shape(files[TRAIN_IMAGES], ndim=_IMAGE_NDIM)[0]
    n_test = read_idx_shape(files[TEST_IMAGES], ndim=_IMAGE_NDIM)[0]
    return MnistSource(kind, directory, n_train, n_test)


def image_pixels(source: MnistSource) -> int:
    """Pixels per image of a source, from its training images' header alone."""
    if source.kind == "sample":
        return 28 * 28
    files = _dir_files(source.path, gz_only=source.kind != "dir")
    return math.prod(read_idx_shape(files[TRAIN_IMAGES], ndim=_IMAGE_NDIM)[1:])


def peek_image_pixels(data_dir: str | os.PathLike[str] | None = None) -> int | None:
    """Pixels per image of the folder ``data_dir`` (or $CHAINRULE_DATA_DIR) names, from one header.

    None when no folder is named (the cache, a download and the sample are MNIST's 28x28) or
    when it cannot be read; locate_mnist then says what is wrong. Nothing is announced or fetched.
    """
    named = data_dir if data_dir is not None else (os.environ.get(ENV_DATA_DIR) or None)
    if named is None:
        return None
    try:
        return image_pixels(MnistSource("dir", Path(named).expanduser(), 0, 0))
    except (MnistError, OSError):
        return None


def scale_pixels(images: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """Bytes 0..255 as ``dtype`` values in [0, 1], divided in ``dtype`` itself: one pass, no float64 detour.

    Each quotient of two exact values is correctly rounded, so float32 here equals float64 rounded to float32.
    """
    dtype = np.dtype(dtype)
    return np.divide(images, dtype.type(255), dtype=dtype)


def _pixels_dtype(normalize: bool, dtype: DTypeLike) -> np.dtype:
    """What the images are decoded into: raw bytes, or scaled floats of the training dtype."""
    return np.dtype(dtype) if normalize else np.dtype(np.uint8)


def _read_split(images_path: Path, labels_path: Path, pixels: np.dtype, cache: DecodedCache | None) -> _Split:
    """Read one split's image and label files and check that they belong together."""
    images = _decoded(images_path, _IMAGE_NDIM, pixels, cache)
    labels = _decoded(labels_path, _LABEL_NDIM, np.dtype(np.uint8), cache)
    if len(images) != len(labels):
        raise MnistError(
            _(
                "{images_path}: {len} images but {name} has {len2} labels",
                images_path=images_path,
                len=format(len(images), ","),
                name=labels_path.name,
                len2=format(len(labels), ","),
            )
        )
    _check_labels(labels, labels_path)
    return _Split(images, labels)


def _check_labels(labels: np.ndarray, where: object) -> None:
    """Raise unless every label is a digit class 0..9."""
    if labels.size and labels.max() >= N_CLASSES:
        i = int(np.argmax(labels >= N_CLASSES))
        raise MnistError(
            _(
                "{where}: label {value} at index {i} is out of range 0..{value2} (MNIST-style data sets have {n_classes} classes)",
                where=where,
                value=labels[i],
                i=i,
                value2=N_CLASSES - 1,
                n_classes=N_CLASSES,
            )
        )


def _read_dir(
    directory: Path,
    *,
    gz_only: bool = False,
    pixels: np.dtype | None = None,
    cache: DecodedCache | None = None,
) -> tuple[_Split, _Split]:
    """Read and cross-check the train and test splits of a directory of IDX files."""
    pixels = np.dtype(np.uint8) if pixels is None else pixels
    files = _dir_files(directory, gz_only=gz_only)
    train = _read_split(files[TRAIN_IMAGES], files[TRAIN_LABELS], pixels, cache)
    test = _read_split(files[TEST_IMAGES], files[TEST_LABELS], pixels, cache)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise MnistError(
            _(
                "{value}: images are {dims_text} but the training images are {dims_text2}",
                value=files[TEST_IMAGES],
                dims_text=_dims_text(test.images.shape[1:]),
                dims_text2=_dims_text(train.images.shape[1:]),
            )
        )
    return train, test


# ---------------------------------------------------------------- decoded copies in the cache


@dataclass(frozen=True)
class SourceStamp:
    """Which bytes a decoded copy came from: the IDX file's path, size, modification time and SHA-256."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass
class DecodedCache:
    """Where decoded copies go, and who hears about a copy that cannot be kept (once per load)."""

    folder: Path
    announce: Announce = None
    unwritable: bool = False  # set by the first copy that cannot be written; the rest are not tried
    budget: int = DECODED_MAX_BYTES  # bytes all copies may take together
    in_use: set[str] = field(default_factory=set)  # sidecars this load reads or writes: never evicted by it


def source_stamp(path: Path) -> SourceStamp:
    """Stamp an IDX file: the hash catches a changed file whose size and time were kept (cp -p, tar)."""
    digest = hashlib.sha256()
    # Without blocking: a FIFO is refused here, not waited on; read_idx then says what is wrong.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > _STAMP_MAX_BYTES:
            # Larger than any file read_idx accepts: not worth hashing, read_idx refuses it.
            raise OSError(errno.EFBIG, "too large to keep a decoded copy of", str(path))
        os.set_blocking(fd, True)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return SourceStamp(str(path.resolve()), info.st_size, info.st_mtime_ns, digest.hexdigest())


# The largest raw IDX file read_idx accepts, with room for a header and gzip's few bytes of overhead.
_STAMP_MAX_BYTES = IDX_MAX_DATA_BYTES + 2**20


def _same_file_state(stamp: SourceStamp, path: Path) -> bool:
    """True if the file still has the size and time it had when stamped (it did not change while decoding)."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return (info.st_size, info.st_mtime_ns) == (stamp.size, stamp.mtime_ns)


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

    The seal (this account's, see ``chainrule.fs.files.record_seal``) is what makes the copy
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
    for entry in os.scandir(folder):
        pid = leftover_owner(entry.name, DECODING_KIND, "", ".npy") or leftover_owner(
            entry.name, DECODING_KIND, "", ".json"
        )
        if pid is not None and entry.is_file(follow_symlinks=False) and not pid_alive(pid):
            Path(entry.path).unlink(missing_ok=True)


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
        from chainrule.runs.training import human_bytes

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


def cached_downloads() -> list[tuple[Path, int]]:
    """The MNIST files in the cache folder, with their sizes (whoever put them there)."""
    found = []
    for name in MNIST_MD5:
        path = mnist_cache_dir() / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((path, info.st_size))
    return found


def decoded_cache_dir() -> Path:
    """Where decoded copies go: a folder of their own inside the MNIST cache, never in a user's data folder."""
    return mnist_cache_dir() / DECODED_DIR


# ---------------------------------------------------------------- cache and download


def mnist_cache_dir() -> Path:
    """Return the MNIST cache directory: $CHAINRULE_CACHE_DIR, else the OS user cache + chainrule/mnist."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser()
    import pooch

    return Path(pooch.os_cache("chainrule")).expanduser() / "mnist"


def mnist_mirrors() -> list[str]:
    """Return the download base URLs: $CHAINRULE_MNIST_MIRRORS (space/comma separated), else the defaults."""
    text = os.environ.get(ENV_MIRRORS, "")
    urls = [u for u in re.split(r"[\s,]+", text) if u] or list(DEFAULT_MIRRORS)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _offline() -> bool:
    """Return True when $CHAINRULE_OFFLINE asks not to touch the network."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def _md5(path: Path) -> str:
    """Return the hex MD5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_missing(cache: Path, announce: Announce) -> list[str]:
    """Return the cache files that are absent; a file there with a wrong MD5 is an error, never deleted.

    chainrule only ever puts a file into the cache after checking its MD5 (see _download), so a
    file with another MD5 is the user's, and it is theirs to remove.
    """
    missing = []
    for name, md5 in MNIST_MD5.items():
        path = cache / name
        if not os.path.lexists(path):
            missing.append(name)
            continue
        if path.is_symlink() or not path.is_file():
            raise MnistError(
                _(
                    "{path}: not a regular file; chainrule leaves it alone: move it out of the cache",
                    path=path,
                )
            )
        size = path.stat().st_size
        if size != MNIST_SIZES[name]:
            raise MnistError(
                _(
                    "{path}: {size} bytes, not the {expected} bytes of MNIST's {name}; chainrule did not download this file and leaves it alone: move it out of {cache} or pass --data-dir {cache}",
                    path=path,
                    size=format(size, ","),
                    expected=format(MNIST_SIZES[name], ","),
                    name=name,
                    cache=cache,
                )
            )
        actual = _md5(path)
        if actual != md5:
            raise MnistError(
                _(
                    "{path}: MD5 {actual} is not MNIST's {md5}; chainrule did not download this file and leaves it alone: move it out of {cache} or pass --data-dir {cache}",
                    path=path,
                    actual=actual,
                    md5=md5,
                    cache=cache,
                )
            )
    return missing


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's info messages for the duration; announce() tells the user what happens."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _failure_text(exc: BaseException) -> str:
    """Summarize a download failure in a few words."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "cannot connect"
    if isinstance(exc, ValueError) and "hash" in str(exc):
        return "MD5 mismatch, download discarded"
    return _one_line(f"{type(exc).__name__}: {exc}")[:200]


def _download(names: Sequence[str], cache: Path, mirrors: Sequence[str], announce: Announce) -> None:
    """Fetch each named file into cache with pooch, trying mirrors in order; raise MnistError if one cannot be had.

    Each file is downloaded into a private folder in the cache, checked against its MD5 there,
    and only then linked to its name in the cache, never over a file already there.
    """
    with warnings.catch_warnings():
        # pooch imports tqdm.auto, which warns in a Jupyter kernel without ipywidgets; no bar is drawn there.
        warnings.filterwarnings("ignore", message="IProgress not found")
        import pooch

    progressbar = sys.stderr.isatty() and _has_tqdm()
    downloader = pooch.HTTPDownloader(
        timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), progressbar=progressbar, chunk_size=1 << 16
    )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistError(
            _("{cache}: cannot create the MNIST cache: {value}", cache=cache, value=exc.strerror or exc)
        ) from None
    _clean_downloads(cache)
    private = cache / own_name("", DOWNLOAD_KIND)
    try:
        private.mkdir()
        with _quiet_pooch():
            for name in names:
                failures = []
                for base in mirrors:
                    try:
                        # pooch streams into a temp file, checks the MD5, then renames it; all inside
                        # our private folder, so a failure never reaches the cache itself.
                        fetched = pooch.retrieve(
                            url=base + name,
                            known_hash=f"md5:{MNIST_MD5[name]}",
                            fname=name,
                            path=private,
                            downloader=downloader,
                        )
                        break
                    except Exception as exc:  # noqa: BLE001 - any failure means: try the next mirror
                        failures.append(f"{base}{name}: {_failure_text(exc)}")
                else:
                    # The first file that no mirror can give ends the attempt; the rest would fail the same way.
                    raise MnistError(_("MNIST download failed ({join})", join="; ".join(failures)))
                _place(Path(fetched), cache / name)
    finally:
        _empty_download_folder(private)
    # One line per outcome: this on success, the sample notice on failure.
    _say(
        announce,
        ngettext(
            "downloaded {n} MNIST file into {cache}", "downloaded {n} MNIST files into {cache}", len(names)
        ).format(n=len(names), cache=cache),
    )


def _place(fetched: Path, target: Path) -> None:
    """Give a verified download its name in the cache without replacing anything already there."""
    try:
        os.link(fetched, target)  # fails if target exists: a file there is never overwritten
    except FileExistsError:
        raise MnistError(
            _("{target}: appeared while chainrule was downloading it; left it alone", target=target)
        ) from None
    except OSError:
        if os.path.lexists(target):
            raise MnistError(
                _("{target}: appeared while chainrule was downloading it; left it alone", target=target)
            ) from None
        os.rename(fetched, target)  # a file system without hard links


def _empty_download_folder(folder: Path) -> list[Path]:
    """Remove what chainrule and pooch write into a private download folder, then the folder if that empties it.

    Only regular files named as MNIST's files or as pooch's temporaries go; anything else
    stays (and so does the folder).  What was removed: the folder alone when it went, else the files.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name not in MNIST_MD5 and not _POOCH_TEMP.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    try:
        folder.rmdir()
    except OSError:
        return removed
    return [folder]


def _clean_downloads(cache: Path) -> None:
    """Empty the private download folders of chainrule runs that were killed (their process is gone), and say so.

    Only folders whose name this account's chainrule made (``own_name``) are touched, and in
    them only the files it writes there (``_empty_download_folder``).
    """
    try:
        entries = list(os.scandir(cache))
    except OSError:
        return
    for entry in entries:
        pid = leftover_owner(entry.name, DOWNLOAD_KIND)
        if pid is None or not entry.is_dir(follow_symlinks=False) or pid_alive(pid):
            continue
        for path in _empty_download_folder(Path(entry.path)):
            say_removed(path, pid)


def _has_tqdm() -> bool:
    """Return True if tqdm is importable, so pooch can draw a progress bar."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def _to_stderr(message: str) -> None:
    """Where messages about the data go by default: not into the program's output."""
    print(message, file=sys.stderr)


def _say(announce: Announce, message: str) -> None:
    """Pass a one-line message to announce, unless it is None."""
    if announce is not None:
        announce(message)


# ---------------------------------------------------------------- shipped sample


def _read_sample(path: Path = SAMPLE_PATH) -> tuple[_Split, _Split]:
    """Read the shipped sample npz (no pickles) and check its arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("x_train", "t_train", "x_test", "t_test")}
    except (OSError, KeyError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
        raise MnistError(
            _("{path}: cannot read the MNIST sample: {one_line}", path=path, one_line=_one_line(exc))
        ) from exc
    splits = []
    for x_key, t_key in (("x_train", "t_train"), ("x_test", "t_test")):
        x, t = arrays[x_key], arrays[t_key]
        if (
            x.dtype != np.uint8
            or t.dtype != np.uint8
            or x.ndim != 2
            or x.shape[1] != 784
            or t.shape != x.shape[:1]
        ):
            raise MnistError(
                _(
                    "{path}: {x_key}/{t_key} are {dtype}{shape}/{dtype2}{shape2}, not uint8 (N, 784)/(N,)",
                    path=path,
                    x_key=x_key,
                    t_key=t_key,
                    dtype=x.dtype,
                    shape=x.shape,
                    dtype2=t.dtype,
                    shape2=t.shape,
                )
            )
        _check_labels(t, f"{path}: {t_key}")
        splits.append(_Split(x.reshape(-1, 28, 28), t))
    return splits[0], splits[1]


def _sample_source(path: Path = SAMPLE_PATH) -> MnistSource:
    """Describe the shipped sample."""
    train, test = _read_sample(path)
    return MnistSource("sample", path, len(train.labels), len(test.labels))


def _sample_notice(source: MnistSource, why: str) -> str:
    """The one short line that says the sample is in use and, in a few words, why."""
    return _(
        "using the MNIST sample shipped with chainrule ({train} training and {test} test digits): {why}",
        train=format(source.n_train, ","),
        test=format(source.n_test, ","),
        why=why,
    )


def _sample_details(reason: str) -> str:
    """What ``--verbose`` adds to the notice: the whole reason, and every way to get the full set."""
    return _(
        "{reason}; for the full 70,000 set, connect to the internet once"
        " or pass --data-dir DIR (or set {variable}) with the four IDX files",
        reason=reason,
        variable=ENV_DATA_DIR,
    )


# ---------------------------------------------------------------- public entry points


def locate_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, announce: Announce = _to_stderr, verbose: bool = False
) -> MnistSource:
    """Find MNIST: the named directory, else the cache, else a download, else the shipped sample.

    Falling back to the sample is announced in one short line; ``verbose`` adds a second
    with the details (the cache, the mirrors tried and how each failed).
    """
    named = data_dir if data_dir is not None else (os.environ.get(ENV_DATA_DIR) or None)
    if named is not None:
        # A directory the user names is used as it is; a problem there is an error, never a silent fallback.
        return _dir_source(Path(named).expanduser(), "dir")

    cache = mnist_cache_dir()
    missing = _cache_missing(cache, announce)
    if not missing:
        return _dir_source(cache, "cache", gz_only=True)

    if _offline():
        why = _("{variable} is set", variable=ENV_OFFLINE)
        reason = _(
            "MNIST is not in the cache {cache} and {variable} is set", cache=cache, variable=ENV_OFFLINE
        )
    else:
        try:
            _download(missing, cache, mnist_mirrors(), announce)
            return _dir_source(cache, "download", gz_only=True)
        except MnistError as exc:
            why = _("the download failed")
            reason = str(exc)

    source = _sample_source()
    _say(announce, _sample_notice(source, why if verbose else _("{why} (--verbose for details)", why=why)))
    if verbose:
        _say(announce, _sample_details(reason))
    return source


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    dtype: DTypeLike = np.float32,
    announce: Announce = _to_stderr,
    source: MnistSource | None = None,
    verbose: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return (x_train, t_train), (x_test, t_test) with the options of "Deep Learning from Scratch" ch. 3."""
    if source is not None and data_dir is not None:
        raise ValueError("pass either data_dir or source, not both")
    if normalize and not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"normalize=True needs a floating dtype, got {np.dtype(dtype)}")
    if source is None:
        source = locate_mnist(data_dir, announce=announce, verbose=verbose)
    pixels = _pixels_dtype(normalize, dtype)
    if source.kind == "sample":
        train, test = (_Split(_scaled(s.images, pixels), s.labels) for s in _read_sample(source.path))
    else:
        _check_load_size(source, normalize, one_hot_label, np.dtype(dtype))
        train, test = _read_dir(
            source.path,
            gz_only=source.kind != "dir",
            pixels=_cached_pixels(pixels),
            cache=DecodedCache(decoded_cache_dir(), announce, budget=decoded_cache_budget()),
        )
        train, test = (_Split(_scaled(s.images, pixels), s.labels) for s in (train, test))
    return (
        _prepare(train, flatten, one_hot_label, np.dtype(dtype)),
        _prepare(test, flatten, one_hot_label, np.dtype(dtype)),
    )


# The representations kept in the cache: the bytes, and the training dtype's scaled pixels. Another
# dtype (float64 for the gradient check) is scaled from the cached bytes, so the cache stays small.
CACHED_PIXELS = (np.dtype(np.uint8), np.dtype(np.float32))


def _cached_pixels(pixels: np.dtype) -> np.dtype:
    """The representation to take from the cache for ``pixels``."""
    return pixels if pixels in CACHED_PIXELS else np.dtype(np.uint8)


def _scaled(images: np.ndarray, pixels: np.dtype) -> np.ndarray:
    """Images in ``pixels``: as they are if they already are, else scaled from their bytes."""
    return images if images.dtype == pixels else scale_pixels(images, pixels)


def load_size(n: int, pixels: int, normalize: bool, one_hot: bool, dtype: np.dtype) -> int:
    """Bytes load_mnist holds for ``n`` images of ``pixels`` pixels: the file data and the arrays made from it."""
    per_image = pixels + 1  # the uint8 pixels and label as read
    per_image += pixels * dtype.itemsize if normalize else 0
    per_image += N_CLASSES * (dtype.itemsize if normalize else 1) if one_hot else 8
    return n * per_image


def _check_load_size(source: MnistSource, normalize: bool, one_hot: bool, dtype: np.dtype) -> None:
    """Refuse, from the headers alone, a data set whose arrays would not fit in LOAD_MAX_BYTES."""
    files = _dir_files(source.path, gz_only=source.kind != "dir")
    total = 0
    for base in (TRAIN_IMAGES, TEST_IMAGES):
        dims = read_idx_shape(files[base], ndim=_IMAGE_NDIM)
        total += load_size(dims[0], math.prod(dims[1:]), normalize, one_hot, dtype)
    if total > LOAD_MAX_BYTES:
        raise MnistError(
            _(
                "{value}: the headers describe data that needs about {value2} GiB as {dtype} arrays, more than chainrule's limit of {value3} GiB",
                value=files[TRAIN_IMAGES],
                value2=format(total / 2**30, ".1f"),
                dtype=dtype,
                value3=format(LOAD_MAX_BYTES / 2**30, ".1f"),
            )
        )


def _prepare(split: _Split, flatten: bool, one_hot: bool, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Shape and encode one split as the chapter's load_mnist does; the pixels are already in their dtype."""
    n, rows, cols = split.images.shape
    # Reshapes of the contiguous array are views: no pixel is copied here.
    x = split.images.reshape(n, rows * cols) if flatten else split.images.reshape(n, 1, rows, cols)
    if one_hot:
        t = np.zeros((n, N_CLASSES), dtype=dtype if x.dtype != np.uint8 else np.uint8)
        t[np.arange(n), split.labels] = 1
    else:
        t = split.labels.astype(np.int64)
    return x, t
