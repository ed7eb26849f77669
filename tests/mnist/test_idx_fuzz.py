"""Any IDX header and body, raw or gzip, ends in an array or a one-line MnistError, reading only what it promised."""

from __future__ import annotations

import gzip
import itertools
import math
import struct
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.mnist import LOAD_MAX_BYTES, MnistError, load_mnist, load_size
from chainrule.mnist import idx as mnist_idx
from chainrule.mnist.idx import IDX_MAX_DATA_BYTES, IDX_MAX_DIMS, read_idx
from chainrule.mnist.sources import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
)
_counter = itertools.count()


@dataclass(frozen=True)
class IdxCase:
    """One file as written: its header fields, its body and how it is stored."""

    magic: bytes
    dims: tuple[int, ...]
    body: bytes
    storage: str  # raw, gz, gz-truncated, gz-flipped
    header_cut: int  # how many bytes of the dimension list are kept (the rest is lost)

    def header(self) -> bytes:
        dim_bytes = b"".join(struct.pack(">I", d) for d in self.dims)
        return self.magic + dim_bytes[: self.header_cut]

    def write(self, path: Path) -> Path:
        data = self.header() + self.body
        if self.storage == "raw":
            path.write_bytes(data)
            return path
        path = path.with_name(path.name + ".gz")
        packed = gzip.compress(data, mtime=0)
        if self.storage == "gz-truncated":
            packed = packed[: max(1, len(packed) // 2)]
        elif self.storage == "gz-flipped":
            i = len(packed) - 6
            packed = packed[:i] + bytes([packed[i] ^ 0x55]) + packed[i + 1 :]
        path.write_bytes(packed)
        return path


# Mostly small dimensions, so bodies can match; sometimes huge ones, up to the format's 2**32 - 1.
small = st.integers(1, 6)
dimension = st.one_of(
    small, small, small, st.integers(0, 6), st.integers(1, 2**16), st.integers(0, 2**32 - 1)
)


@st.composite
def idx_cases(draw: st.DrawFn) -> IdxCase:
    ndim = draw(
        st.one_of(st.sampled_from([1, 3]), st.sampled_from([1, 3]), st.integers(0, 12), st.integers(13, 255))
    )
    type_byte = draw(st.sampled_from([0x08, 0x08, 0x08, 0x09, 0x0D]))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        magic = draw(st.binary(min_size=0, max_size=4))  # anything, short headers included
    elif kind == 1:
        magic = b"\x1f\x8b\x08\x00"  # gzip data under a raw name
    else:
        magic = bytes((0, 0, type_byte, ndim))
    dims = tuple(draw(st.lists(dimension, min_size=min(ndim, 12), max_size=min(ndim, 12))))
    promised = math.prod(dims) if dims else 0
    relation = draw(st.sampled_from(["exact", "exact", "short", "one more", "trailing", "any"]))
    length = {
        "exact": promised,
        "short": max(promised - 1, 0),
        "one more": promised + 1,
        "trailing": promised + 100,  # reading must stop one byte past the promise
        "any": draw(st.integers(0, 64)),
    }[relation]
    length = min(length, 4096)  # the body itself stays small; only headers may lie
    body = draw(st.binary(min_size=length, max_size=length)) if length <= 64 else bytes(range(256)) * 16
    body = body[:length]
    cut = draw(st.one_of(st.just(4 * len(dims)), st.integers(0, 4 * len(dims))))
    storage = draw(st.sampled_from(["raw", "gz", "gz-truncated", "gz-flipped"]))
    return IdxCase(magic, dims, body, storage, cut)


class Counting:
    """A file wrapper that counts the (decompressed) bytes handed to the reader."""

    def __init__(self, f):
        self.f = f
        self.total = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def read(self, n=-1):
        data = self.f.read(n)
        self.total += len(data)
        return data

    def readinto(self, buf):
        n = self.f.readinto(buf)
        self.total += n or 0
        return n


def guarded_empty(real):
    """np.empty that fails the test if asked for more than one IDX file may hold."""

    def empty(shape, *args, **kwargs):
        size = math.prod(shape) if isinstance(shape, tuple) else int(shape)
        assert size <= IDX_MAX_DATA_BYTES, f"allocation of {size:,} bytes"
        return real(shape, *args, **kwargs)

    return empty


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("idx-fuzz")


@FUZZ
@given(case=idx_cases(), ndim=st.sampled_from([None, 1, 3]))
def test_any_idx_file_reads_or_fails_in_one_line(folder: Path, case: IdxCase, ndim: int | None) -> None:
    path = case.write(folder / f"f{next(_counter)}")
    opened: list[Counting] = []
    real_open = mnist_idx._open_binary

    def counting_open(p: Path) -> Counting:
        opened.append(Counting(real_open(p)))
        return opened[-1]

    with (
        mock.patch.object(mnist_idx.np, "empty", guarded_empty(np.empty)),
        mock.patch.object(mnist_idx, "_open_binary", counting_open),
    ):
        try:
            array = read_idx(path, ndim=ndim)
        except MnistError as exc:
            text = str(exc)
            assert "\n" not in text and text.startswith(f"{path}: "), text
            array = None
    data = case.header() + case.body
    nd = data[3] if len(data) >= 4 else 0
    claimed = struct.unpack(f">{nd}I", data[4 : 4 + 4 * nd]) if len(data) >= 4 + 4 * nd else None
    if array is not None:
        # Success only for a whole, honest unsigned-byte file: the header's shape and exactly its bytes.
        assert case.storage in ("raw", "gz") and data[:3] == b"\0\0\x08" and claimed is not None
        assert array.shape == claimed and array.tobytes() == data[4 + 4 * nd :]
    if opened:
        # Never more decompressed than the header, the data it promises, and one byte to find the end.
        if nd > IDX_MAX_DIMS or claimed is None:
            assert opened[0].total <= 4 + 4 * min(nd, IDX_MAX_DIMS)
        else:
            assert opened[0].total <= 4 + 4 * nd + math.prod(claimed) + 1
    path.unlink()


@FUZZ
@given(
    n=dimension,
    rows=dimension,
    cols=dimension,
    labels=dimension,
    gz=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    one_hot=st.booleans(),
)
def test_any_claimed_data_set_loads_or_fails_in_one_line(
    folder: Path, n: int, rows: int, cols: int, labels: int, gz: bool, dtype, one_hot: bool
) -> None:
    d = folder / f"set{next(_counter)}"
    d.mkdir()
    suffix = ".gz" if gz else ""
    body = bytes(min(n * rows * cols, 2048))
    files = {
        TRAIN_IMAGES: struct.pack(">IIII", 0x803, n, rows, cols) + body,
        TRAIN_LABELS: struct.pack(">II", 0x801, labels) + bytes(min(labels, 2048)),
        TEST_IMAGES: struct.pack(">IIII", 0x803, 1, 2, 2) + bytes(4),
        TEST_LABELS: struct.pack(">II", 0x801, 1) + bytes(1),
    }
    for base, data in files.items():
        (d / f"{base}{suffix}").write_bytes(gzip.compress(data, mtime=0) if gz else data)
    with mock.patch.object(mnist_idx.np, "empty", guarded_empty(np.empty)):
        try:
            (x, t), _ = load_mnist(data_dir=d, one_hot_label=one_hot, dtype=dtype, announce=None)
        except MnistError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(f"{d}/"), str(exc)
        else:
            assert (rows, cols) == (2, 2) and x.shape == (n, 4) and labels == n
            assert load_size(n + 1, 4, True, one_hot, np.dtype(dtype)) <= LOAD_MAX_BYTES
            assert len(t) == n
