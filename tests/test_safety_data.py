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


# ---------------------------------------------------------------- 8: the pixels per image count in every estimate


@pytest.fixture(scope="module")
def big_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four training and two test images of 1024x1024 pixels, as raw IDX files."""
    folder = tmp_path_factory.mktemp("big")
    write_set(folder, n=4, rows=1024, cols=1024, gz=False)
    return folder


def test_train_counts_the_pixels_per_image_in_its_memory_estimate(tmp_path: Path, big_images: Path) -> None:
    r = chainrule(tmp_path, "train", "--hidden", "1000", "--data-dir", str(big_images), "--out", "run")
    line = one_line_error(r)
    assert line.startswith(
        "--hidden 1000 needs about 24.3 GiB of memory (estimated) for images of 1,048,576 pixels,"
        " more than the limit of "
    )
    assert line.endswith("(the smaller of 4.0 GiB and half the physical memory)")
    assert sorted(os.listdir(tmp_path)) == []  # refused before any folder, cache or data
    # The same folder named by the environment is measured the same way.
    r = chainrule(tmp_path, "train", "--hidden", "1000", env={"CHAINRULE_DATA_DIR": str(big_images)})
    assert one_line_error(r) == line


def test_the_estimate_grows_with_the_pixels_and_mnist_keeps_its_own() -> None:
    from chainrule.train import INPUTS, Settings, check_settings, memory_estimate

    mnist_size = memory_estimate(Settings())
    assert memory_estimate(Settings(), INPUTS) == mnist_size
    big = memory_estimate(Settings(), 1024 * 1024)
    # W1 of 1,048,576 x 50 float32 four times over and its float64 draw, the batch's pixels twice.
    assert big - mnist_size == (16 + 8) * (1024 * 1024 - 784) * 50 + 4 * 100 * 2 * (1024 * 1024 - 784)
    check_settings(Settings(), limit=big, inputs=1024 * 1024)
    from chainrule.rundir import RunError

    with pytest.raises(RunError, match=r"^--batch-size 100 needs about .* for images of 1,048,576 pixels, "):
        check_settings(Settings(), limit=big - 1, inputs=1024 * 1024)


def test_gradcheck_refuses_images_that_make_too_many_central_differences(
    tmp_path: Path, big_images: Path
) -> None:
    r = chainrule(tmp_path, "gradcheck", "--data-dir", str(big_images))
    assert one_line_error(r) == (
        f"{big_images}: images of 1,048,576 pixels give the gradient check's network 52,429,360 parameters,"
        " one central difference each: more than --max-params 1048576"
    )
    r = chainrule(tmp_path, "gradcheck", "--data-dir", str(big_images), "--max-params", "99999999")
    assert "--max-params: '99999999' is not a whole number from 1 to 16777216" in one_line_error(r)
    # A smaller limit refuses even MNIST-sized images, and says so before loading them.
    r = chainrule(tmp_path, "gradcheck", "--max-params", "1000")
    notice, error = r.stderr.strip().splitlines()
    assert r.returncode == 2 and notice.startswith("using the MNIST sample shipped with chainrule")
    assert error == (
        f"chainrule: error: {mnist.SAMPLE_PATH}: images of 784 pixels give the gradient check's network"
        " 39,760 parameters, one central difference each: more than --max-params 1000"
    )
