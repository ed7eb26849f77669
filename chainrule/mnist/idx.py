"""Read and write IDX files, MNIST's format: unsigned bytes after a header of dimensions, raw or gzipped."""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from chainrule.codegen.i18n import _
from chainrule.fs.atomic import atomic_write_bytes

_IDX_UBYTE = 0x08

# Bounds on what a header may ask for, checked before any allocation. MNIST's largest file holds
# 47 MB of pixels; 256 MiB leaves room for larger MNIST-style sets (EMNIST-balanced is 88 MB).
IDX_MAX_DATA_BYTES = 2**28
IDX_MAX_DIMS = 8
_IMAGE_NDIM = 3
_LABEL_NDIM = 1


class MnistError(Exception):
    """A one-line problem with MNIST data: which file, and what is wrong with it."""


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
    data = bytes((0, 0, _IDX_UBYTE, a.ndim)) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    if path.name.endswith(".gz"):
        # mtime=0 and the final name keep the output identical from run to run.
        buf = io.BytesIO()
        with gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(data)
        data = buf.getvalue()
    atomic_write_bytes(path, data)
