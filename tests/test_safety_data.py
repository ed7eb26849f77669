"""MNIST data within bounds: gzip padding, big images, the MNIST cache's sizes and the decoded cache's cap."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule import mnist
from chainrule.mnist import MnistError, read_idx, write_idx

ROOT = Path(__file__).resolve().parent.parent


def chainrule(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command line, offline, with a cache of the test's own; 60 s is only a safety net."""
    base = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CHAINRULE_OFFLINE": "1",
        "CHAINRULE_CACHE_DIR": str(tmp_path / "cache"),
    }
    base.pop("CHAINRULE_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "chainrule", *args],
        cwd=tmp_path,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """The single error line of a refused command; fails on a traceback or a second line."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("chainrule: error: "), r.stderr
    return lines[0].removeprefix("chainrule: error: ")


def write_set(folder: Path, n: int = 4, rows: int = 5, cols: int = 4, gz: bool = True) -> dict[str, Path]:
    """Four IDX files of n training and 2 test images of rows x cols pixels; their paths by base name."""
    rng = np.random.default_rng(0)
    arrays = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (n, rows, cols), dtype=np.uint8),
        mnist.TRAIN_LABELS: (np.arange(n) % 10).astype(np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (2, rows, cols), dtype=np.uint8),
        mnist.TEST_LABELS: np.array([3, 8], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for base, array in arrays.items():
        paths[base] = folder / (base + (".gz" if gz else ""))
        write_idx(paths[base], array)
    return paths


# ---------------------------------------------------------------- 7: gzip padding is read no further than needed


def test_a_4_gib_zero_tail_after_the_gzip_data_is_not_read(tmp_path: Path) -> None:
    paths = write_set(tmp_path / "data")
    labels = paths[mnist.TEST_LABELS]
    size = labels.stat().st_size
    os.truncate(labels, size + 4 * 2**30)  # `truncate -s +4G`: a sparse tail of zeros
    r = chainrule(tmp_path, "gradcheck", "--data-dir", str(tmp_path / "data"))
    assert r.returncode == 0, r.stderr
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["W1", "b1", "W2", "b2"]
    assert labels.stat().st_size == size + 4 * 2**30  # the user's file as it was
    assert read_idx(labels, ndim=1).tolist() == [3, 8]


def test_zero_padding_is_accepted_and_other_trailing_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    write_idx(path, np.arange(10, dtype=np.uint8))
    packed = path.read_bytes()
    path.write_bytes(packed + bytes(100 * 2**10))
    assert read_idx(path, ndim=1).tolist() == list(range(10))
    path.write_bytes(packed + b"\0\0garbage")
    with pytest.raises(MnistError) as err:
        read_idx(path, ndim=1)
    assert str(err.value) == (
        f"{path}: bytes after the end of the gzip data that are neither zero padding nor another gzip member"
    )


def test_gzip_members_are_read_on_and_still_held_to_the_promise(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    header = b"\0\0\x08\x01" + (5).to_bytes(4, "big")
    path.write_bytes(gzip.compress(header + bytes(2)) + b"\0\0" + gzip.compress(bytes([1, 2, 3])))
    assert read_idx(path, ndim=1).tolist() == [0, 0, 1, 2, 3]
    path.write_bytes(gzip.compress(header + bytes(5)) + gzip.compress(b"\1"))
    with pytest.raises(
        MnistError, match=r"too long: header dimensions 5 need 5 data bytes, the file has more$"
    ):
        read_idx(path, ndim=1)


def test_a_gzip_stream_much_longer_than_its_data_is_refused_early(tmp_path: Path) -> None:
    # Empty stored deflate blocks: compressed bytes that give no data, as many as one likes.
    header = b"\0\0\x08\x01" + (4).to_bytes(4, "big")
    empty_block = b"\x00\x00\x00\xff\xff"  # BFINAL=0, stored, LEN=0, NLEN=0xffff
    gz = gzip.compress(header + bytes(4), mtime=0)
    body = bytes([0x00, 12, 0, 0xF3, 0xFF]) + header + bytes(4)  # one stored block with the 12 bytes
    path = tmp_path / "labels.gz"
    path.write_bytes(gz[:10] + empty_block * 10 + body + b"\x03\x00" + gz[-8:])
    assert read_idx(path, ndim=1).tolist() == [0, 0, 0, 0]  # a few: a valid stream
    path.write_bytes(gz[:10] + empty_block * 500_000 + body + b"\x03\x00" + gz[-8:])
    with pytest.raises(MnistError) as err:
        read_idx(path, ndim=1)
    assert str(err.value).startswith(f"{path}: the gzip stream goes on for ")
    assert str(err.value).endswith(
        " compressed bytes after 0 data bytes; chainrule reads at most twice the data plus 1,048,576"
    )
