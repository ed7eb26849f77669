"""Tests for chainrule.mnist: IDX parsing, sources in order, checked downloads, the shipped sample."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from chainrule import mnist
from chainrule.mnist import MnistError, MnistSource, load_mnist, locate_mnist
from chainrule.mnist.download import DEFAULT_MIRRORS, MNIST_MD5, MNIST_SIZES, mnist_mirrors
from chainrule.mnist.idx import read_idx, read_idx_shape, write_idx
from chainrule.mnist.sources import (
    IDX_FILES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    _dir_files,
    dotted_name,
    mnist_cache_dir,
)

SAMPLE_LINE = "using the MNIST sample shipped with chainrule (4,000 training and 1,000 test digits)"
README = Path(mnist.__file__).resolve().parent / "data" / "README.md"


@dataclass
class FakeMnist:
    """A tiny IDX data set: 7 train and 3 test images of 5x4 pixels."""

    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray


def fake_mnist(seed: int = 0, n_train: int = 7, n_test: int = 3, rows: int = 5, cols: int = 4) -> FakeMnist:
    """Return reproducible random images (including 0 and 255) and labels 0..9."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8)
    x_train[0, 0, 0], x_train[0, 0, 1] = 0, 255
    return FakeMnist(
        x_train,
        np.arange(n_train, dtype=np.uint8) % 10,
        rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        np.array([9, 0, 5][:n_test], dtype=np.uint8),
    )


def write_fake(directory: Path, data: FakeMnist, *, gz: bool = True) -> dict[str, Path]:
    """Write the four IDX files of data into directory and return their paths by base name."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = dict(zip(IDX_FILES, (data.x_train, data.t_train, data.x_test, data.t_test), strict=True))
    paths = {}
    for base, array in arrays.items():
        paths[base] = directory / f"{base}{suffix}"
        write_idx(paths[base], array)
    return paths


def md5_of(path: Path) -> str:
    """Return the hex MD5 of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def idx_header(magic: int, *dims: int) -> bytes:
    """Return a raw IDX header."""
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


def cache_files(cache: Path) -> list[str]:
    """List everything in the cache directory, temp files included."""
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@contextmanager
def http_server(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve directory over real HTTP on 127.0.0.1; yield the base URL and the list of requested paths."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet, but record each request
            requests.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening, so connections are refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str) -> Path:
    """Keep every test off the network and out of the user's cache; return the cache directory."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(cache))
    monkeypatch.setenv("CHAINRULE_OFFLINE", "1")
    monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", dead_url)
    monkeypatch.delenv("CHAINRULE_DATA_DIR", raising=False)
    return cache


@pytest.fixture
def messages() -> list[str]:
    """Collects what load_mnist announces."""
    return []


# ---------------------------------------------------------------- IDX format


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    data = fake_mnist()
    images, labels = tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}"
    write_idx(images, data.x_train)
    write_idx(labels, data.t_train)

    raw_images = gzip.decompress(images.read_bytes()) if suffix else images.read_bytes()
    assert raw_images[:16] == idx_header(0x803, 7, 5, 4)
    assert len(raw_images) == 16 + 7 * 5 * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([images.name, labels.name])  # no temp files

    got = read_idx(images, ndim=3)
    assert got.dtype == np.uint8 and got.shape == (7, 5, 4) and got.flags.writeable
    np.testing.assert_array_equal(got, data.x_train)
    np.testing.assert_array_equal(read_idx(labels, ndim=1), data.t_train)
    assert read_idx_shape(images) == (7, 5, 4)


def test_write_idx_gz_is_reproducible(tmp_path: Path) -> None:
    data = fake_mnist()
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_idx(tmp_path / sub / "x.gz", data.x_train)
    assert (tmp_path / "a" / "x.gz").read_bytes() == (tmp_path / "b" / "x.gz").read_bytes()


def test_write_idx_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros((2, 3, 3), dtype=np.int16))
    with pytest.raises(ValueError, match="1-D .* or 3-D"):
        write_idx(tmp_path / "x", np.zeros((2, 3), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gz", [False, True])
def test_load_from_named_dir(tmp_path: Path, gz: bool, messages: list[str]) -> None:
    data = fake_mnist()
    write_fake(tmp_path / "idx", data, gz=gz)

    source = locate_mnist(tmp_path / "idx", announce=messages.append)
    assert source == MnistSource("dir", tmp_path / "idx", 7, 3)

    (x, t), (xt, tt) = load_mnist(data_dir=tmp_path / "idx", announce=messages.append)
    assert x.shape == (7, 20) and x.dtype == np.float32
    assert xt.shape == (3, 20)
    np.testing.assert_array_equal(x, data.x_train.reshape(7, 20).astype(np.float32) / np.float32(255))
    assert x.min() == 0.0 and x.max() == 1.0
    assert t.dtype == np.int64 and t.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert tt.tolist() == [9, 0, 5]
    assert messages == []  # a named directory is used silently


def test_load_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = fake_mnist()
    write_fake(tmp_path / "idx", data)
    monkeypatch.setenv("CHAINRULE_DATA_DIR", str(tmp_path / "idx"))  # the env var names the directory too

    (x, t), _ = load_mnist(normalize=False, flatten=False, one_hot_label=False)
    assert x.dtype == np.uint8 and x.shape == (7, 1, 5, 4)
    np.testing.assert_array_equal(x[:, 0], data.x_train)

    (x, t), (_, tt) = load_mnist(normalize=True, flatten=False, one_hot_label=True, dtype=np.float64)
    assert x.dtype == np.float64 and x.shape == (7, 1, 5, 4)
    assert t.dtype == np.float64 and t.shape == (7, 10)
    assert t.sum(axis=1).tolist() == [1.0] * 7 and t.argmax(axis=1).tolist() == data.t_train.tolist()
    assert tt.argmax(axis=1).tolist() == [9, 0, 5]

    (x, t), _ = load_mnist(normalize=False, one_hot_label=True)
    assert x.dtype == np.uint8 and x.shape == (7, 20)
    assert t.dtype == np.uint8 and t[3].tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]

    with pytest.raises(ValueError, match="floating dtype"):
        load_mnist(dtype=np.int32)


def test_named_dir_prefers_raw_over_gz(tmp_path: Path) -> None:
    write_fake(tmp_path, fake_mnist(seed=1), gz=False)
    (tmp_path / f"{TRAIN_IMAGES}.gz").write_bytes(b"not gzip at all")
    (x, _), _ = load_mnist(normalize=False, data_dir=tmp_path)
    np.testing.assert_array_equal(x.reshape(7, 5, 4), fake_mnist(seed=1).x_train)


@pytest.mark.parametrize("which", ["all", "some"])
def test_named_dir_accepts_the_dot_named_uncompressed_files(tmp_path: Path, which: str) -> None:
    """``train-images.idx3-ubyte`` and its three siblings, as a popular mirror names them."""
    data = fake_mnist(seed=4)
    paths = write_fake(tmp_path / "idx", data, gz=False)
    renamed = IDX_FILES if which == "all" else (TRAIN_LABELS, TEST_IMAGES)
    for base in renamed:
        paths[base].rename(paths[base].with_name(dotted_name(base)))
    assert sorted(p.name for p in (tmp_path / "idx").iterdir())[:2] == (
        ["t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"]
        if which == "all"
        else ["t10k-images.idx3-ubyte", "t10k-labels-idx1-ubyte"]
    )
    (x, t), (xt, tt) = load_mnist(normalize=False, data_dir=tmp_path / "idx", announce=None)
    np.testing.assert_array_equal(x.reshape(7, 5, 4), data.x_train)
    np.testing.assert_array_equal(xt.reshape(3, 5, 4), data.x_test)
    assert t.tolist() == data.t_train.tolist() and tt.tolist() == [9, 0, 5]


def test_dotted_names_are_the_mirror_names() -> None:
    assert [dotted_name(b) for b in IDX_FILES] == [
        "train-images.idx3-ubyte",
        "train-labels.idx1-ubyte",
        "t10k-images.idx3-ubyte",
        "t10k-labels.idx1-ubyte",
    ]


def test_the_cache_takes_only_its_own_gz_names(tmp_path: Path) -> None:
    """The cache holds what chainrule downloaded: a dot-named file there is not MNIST's download."""
    paths = write_fake(tmp_path, fake_mnist(), gz=False)
    for base, path in paths.items():
        path.rename(path.with_name(dotted_name(base)))
    with pytest.raises(MnistError, match="missing train-images-idx3-ubyte.gz"):
        _dir_files(tmp_path, gz_only=True)


def test_images_of_any_size(tmp_path: Path) -> None:
    write_fake(tmp_path, fake_mnist(n_train=11, n_test=2, rows=3, cols=9))
    (x, _), (xt, _) = load_mnist(data_dir=tmp_path)
    assert x.shape == (11, 27) and xt.shape == (2, 27)


# ---------------------------------------------------------------- corrupt files


def corrupt(directory: Path, base: str, content: bytes, *, gz: bool = False) -> Path:
    """Replace one IDX file of a valid data set with the given bytes (gzipped if gz)."""
    for old in directory.glob(f"{base}*"):
        old.unlink()
    path = directory / (base + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def valid_gz_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    """Return the .gz IDX encoding of array."""
    write_idx(tmp_path / "tmp.gz", array)
    data = (tmp_path / "tmp.gz").read_bytes()
    (tmp_path / "tmp.gz").unlink()
    return data


PIXELS = bytes(range(140))

CORRUPTIONS = {
    "bad magic": (
        TRAIN_IMAGES,
        idx_header(0x804, 7, 5, 4, 1) + PIXELS,
        r"bad magic number 0x00000804 \(expected 0x00000803 for an IDX image file\)",
    ),
    "labels with image magic": (
        TRAIN_LABELS,
        idx_header(0x803, 7, 1, 1) + bytes(7),
        r"bad magic number 0x00000803 \(expected 0x00000801 for an IDX label file\)",
    ),
    "not unsigned byte": (
        TRAIN_IMAGES,
        idx_header(0xD03, 7, 5, 4) + PIXELS,
        r"bad magic number 0x00000d03",
    ),
    "zero dimension": (
        TRAIN_IMAGES,
        idx_header(0x803, 7, 0, 4),
        r"dimensions 7x0x4 include 0; every dimension must be positive",
    ),
    "dims product does not match length": (
        TRAIN_IMAGES,
        idx_header(0x803, 7, 5, 5) + PIXELS,
        r"truncated: header dimensions 7x5x5 need 175 data bytes, file has 140",
    ),
    "truncated data": (
        TRAIN_IMAGES,
        idx_header(0x803, 7, 5, 4) + PIXELS[:-1],
        r"truncated: header dimensions 7x5x4 need 140 data bytes, file has 139",
    ),
    "trailing bytes": (
        TRAIN_IMAGES,
        idx_header(0x803, 7, 5, 4) + PIXELS + b"\0",
        # A raw file's size is known; gzip data is decompressed only one byte past the promise.
        r"too long: header dimensions 7x5x4 need 140 data bytes, (file has 141|the file has more)$",
    ),
    "truncated header": (
        TEST_IMAGES,
        idx_header(0x803, 3, 5),
        r"truncated IDX header \(needs 16 bytes, file has 12\)",
    ),
    "empty file": (TEST_LABELS, b"", r"too short for an IDX header \(0 bytes\)"),
    "count mismatch": (
        TRAIN_LABELS,
        idx_header(0x801, 6) + bytes(6),
        r"7 images but train-labels-idx1-ubyte(\.gz)? has 6 labels",
    ),
    "label out of range": (
        TEST_LABELS,
        idx_header(0x801, 3) + bytes([1, 10, 2]),
        r"label 10 at index 1 is out of range 0\.\.9 \(MNIST-style data sets have 10 classes\)",
    ),
    "test images of another size": (
        TEST_IMAGES,
        idx_header(0x803, 3, 4, 5) + bytes(60),
        r"images are 4x5 but the training images are 5x4",
    ),
}


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_idx_gives_one_line_error(tmp_path: Path, case: str, gz: bool, messages: list[str]) -> None:
    write_fake(tmp_path, fake_mnist(), gz=gz)
    base, content, pattern = CORRUPTIONS[case]
    bad = corrupt(tmp_path, base, content, gz=gz)
    with pytest.raises(MnistError) as err:
        load_mnist(data_dir=tmp_path, announce=messages.append)
    text = str(err.value)
    assert "\n" not in text
    assert re.search(pattern, text), text
    # The message names the file at fault (for a count mismatch, the image file and the label file).
    assert str(bad) in text or bad.name in text
    assert messages == []  # a named directory never falls back to the sample


def test_corrupt_gzip_is_an_error(tmp_path: Path) -> None:
    write_fake(tmp_path, fake_mnist())
    good = valid_gz_bytes(fake_mnist().x_train, tmp_path)
    path = tmp_path / f"{TRAIN_IMAGES}.gz"

    path.write_bytes(good[:-10])
    with pytest.raises(MnistError, match=rf"^{re.escape(str(path))}: truncated gzip stream"):
        load_mnist(data_dir=tmp_path)

    crc_broken = bytearray(good)
    crc_broken[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path.write_bytes(bytes(crc_broken))
    with pytest.raises(MnistError, match=rf"^{re.escape(str(path))}: cannot read: CRC check failed"):
        load_mnist(data_dir=tmp_path)

    path.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(MnistError, match=rf"^{re.escape(str(path))}: cannot read: Not a gzipped file"):
        load_mnist(data_dir=tmp_path)


def test_gzip_data_under_a_raw_name(tmp_path: Path) -> None:
    write_fake(tmp_path, fake_mnist(), gz=False)
    corrupt(tmp_path, TRAIN_IMAGES, valid_gz_bytes(fake_mnist().x_train, tmp_path))
    with pytest.raises(MnistError, match=r"this is gzip data; name the file with \.gz"):
        load_mnist(data_dir=tmp_path)


def test_named_dir_with_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, messages: list[str]
) -> None:
    write_fake(tmp_path, fake_mnist())
    (tmp_path / f"{TEST_LABELS}.gz").unlink()
    with pytest.raises(MnistError) as err:
        load_mnist(data_dir=tmp_path, announce=messages.append)
    assert str(err.value) == (
        f"{tmp_path}: missing t10k-labels-idx1-ubyte[.gz] (needs the four MNIST IDX files, raw or .gz)"
    )

    monkeypatch.setenv("CHAINRULE_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(
        MnistError, match=rf"^{re.escape(str(tmp_path / 'nowhere'))}: MNIST data directory does not exist$"
    ):
        load_mnist(announce=messages.append)
    assert messages == []


# ---------------------------------------------------------------- cache and download


def serve_fake(directory: Path, data: FakeMnist, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write data as .gz files to serve and make the module expect their sizes and MD5s."""
    paths = write_fake(directory, data, gz=True)
    for path in paths.values():
        monkeypatch.setitem(MNIST_MD5, path.name, md5_of(path))
        monkeypatch.setitem(MNIST_SIZES, path.name, path.stat().st_size)


def test_download_then_cache(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str, messages: list[str]
) -> None:
    data = fake_mnist(seed=3)
    serve_fake(tmp_path / "www", data, monkeypatch)
    monkeypatch.delenv("CHAINRULE_OFFLINE")

    with http_server(tmp_path / "www") as (url, requested):
        # The first mirror refuses connections, so every file comes from the second.
        monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", f"{dead_url}, {url}")
        source = locate_mnist(announce=messages.append)
        assert source == MnistSource("download", isolated, 7, 3)
        assert messages == [f"downloaded 4 MNIST files into {isolated}"]
        assert sorted(requested) == sorted(f"/{name}.gz" for name in IDX_FILES)
    assert cache_files(isolated) == sorted(f"{name}.gz" for name in IDX_FILES)

    # Server gone, network off: the cache alone serves, with its MD5s checked.
    monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", url)
    messages.clear()
    assert locate_mnist(announce=messages.append) == MnistSource("cache", isolated, 7, 3)
    (x, t), (xt, tt) = load_mnist(normalize=False, flatten=False, announce=messages.append)
    np.testing.assert_array_equal(x[:, 0], data.x_train)
    np.testing.assert_array_equal(xt[:, 0], data.x_test)
    assert t.tolist() == data.t_train.tolist() and tt.tolist() == [9, 0, 5]
    assert messages == []


@pytest.mark.parametrize("served", ["wrong bytes", "truncated", "not found"])
def test_bad_download_falls_back_and_leaves_nothing(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, served: str, messages: list[str]
) -> None:
    www = tmp_path / "www"
    serve_fake(www, fake_mnist(), monkeypatch)
    if served == "wrong bytes":
        write_fake(www, fake_mnist(seed=99))  # same names, other content: MD5s no longer match
    elif served == "truncated":
        for path in www.iterdir():
            path.write_bytes(path.read_bytes()[:-20])
    else:
        for path in www.iterdir():
            path.unlink()
    monkeypatch.delenv("CHAINRULE_OFFLINE")

    with http_server(www) as (url, _):
        monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", url)
        source = locate_mnist(announce=messages.append, verbose=True)

    assert source.kind == "sample" and (source.n_train, source.n_test) == (4000, 1000)
    assert messages[0] == f"{SAMPLE_LINE}: the download failed"
    assert len(messages) == 2 and "\n" not in messages[1]
    assert messages[1].startswith(f"MNIST download failed ({url}train-images-idx3-ubyte.gz: ")
    expected_reason = "HTTP 404" if served == "not found" else "MD5 mismatch, download discarded"
    assert expected_reason in messages[1]
    assert cache_files(isolated) == []  # no partial, wrong or temporary file remains


def test_partial_download_keeps_only_verified_files(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, messages: list[str]
) -> None:
    www = tmp_path / "www"
    serve_fake(www, fake_mnist(), monkeypatch)
    monkeypatch.setitem(MNIST_MD5, f"{TRAIN_LABELS}.gz", "0" * 32)
    monkeypatch.delenv("CHAINRULE_OFFLINE")
    with http_server(www) as (url, _):
        monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", url)
        assert locate_mnist(announce=messages.append, verbose=True).kind == "sample"
    assert cache_files(isolated) == [f"{TRAIN_IMAGES}.gz"]
    assert md5_of(isolated / f"{TRAIN_IMAGES}.gz") == MNIST_MD5[f"{TRAIN_IMAGES}.gz"]
    assert "train-labels-idx1-ubyte.gz: MD5 mismatch" in messages[-1]


def test_server_down_falls_back_with_one_line(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, dead_url: str, messages: list[str]
) -> None:
    monkeypatch.delenv("CHAINRULE_OFFLINE")
    monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", f"{dead_url} {dead_url}other/")
    (x, _), (xt, _) = load_mnist(announce=messages.append)
    assert x.shape == (4000, 784) and xt.shape == (1000, 784)
    # One short line: no mirror, no URL; --verbose gives the details.
    assert messages == [f"{SAMPLE_LINE}: the download failed (--verbose for details)"]
    load_mnist(announce=messages.append, verbose=True)
    assert messages[1:] == [
        f"{SAMPLE_LINE}: the download failed",
        (
            f"MNIST download failed ({dead_url}train-images-idx3-ubyte.gz: cannot connect; "
            f"{dead_url}other/train-images-idx3-ubyte.gz: cannot connect); "
            "for the full 70,000 set, connect to the internet once or pass --data-dir DIR "
            "(or set CHAINRULE_DATA_DIR) with the four IDX files"
        ),
    ]
    assert cache_files(isolated) == []


def test_offline_never_touches_the_network(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch, messages: list[str]
) -> None:
    serve_fake(tmp_path / "www", fake_mnist(), monkeypatch)
    with http_server(tmp_path / "www") as (url, requested):
        monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", url)
        source = locate_mnist(announce=messages.append)
        assert locate_mnist(announce=messages.append, verbose=True).kind == "sample"
    assert source.kind == "sample" and requested == []
    assert messages == [
        f"{SAMPLE_LINE}: CHAINRULE_OFFLINE is set (--verbose for details)",
        f"{SAMPLE_LINE}: CHAINRULE_OFFLINE is set",
        (
            f"MNIST is not in the cache {isolated} and CHAINRULE_OFFLINE is set; "
            "for the full 70,000 set, connect to the internet once or pass --data-dir DIR "
            "(or set CHAINRULE_DATA_DIR) with the four IDX files"
        ),
    ]


def test_cached_file_with_wrong_md5_is_an_error_and_kept(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, messages: list[str]
) -> None:
    serve_fake(isolated, fake_mnist(), monkeypatch)
    bad = isolated / f"{TEST_IMAGES}.gz"
    bad.write_bytes(bad.read_bytes()[:-1] + b"?")  # the same size: the MD5 tells
    before = {p.name: p.read_bytes() for p in isolated.iterdir()}
    bad_md5 = md5_of(bad)
    with pytest.raises(MnistError) as err:
        locate_mnist(announce=messages.append)
    assert str(err.value) == (
        f"{bad}: MD5 {bad_md5} is not MNIST's {MNIST_MD5[bad.name]}; chainrule did not download "
        f"this file and leaves it alone: move it out of {isolated} or pass --data-dir {isolated}"
    )
    assert messages == []
    assert {p.name: p.read_bytes() for p in isolated.iterdir()} == before


def test_real_md5_table_keeps_a_users_own_files(isolated: Path, messages: list[str]) -> None:
    paths = write_fake(isolated, fake_mnist())
    before = {p.name: p.read_bytes() for p in paths.values()}
    with pytest.raises(MnistError, match=r"[0-9,]+ bytes, not the 9,912,422 bytes of MNIST's"):
        locate_mnist(announce=messages.append)
    assert {p.name: p.read_bytes() for p in isolated.iterdir()} == before


def test_cache_dir_and_mirrors_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert mnist_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("CHAINRULE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mnist_cache_dir() == tmp_path / "xdg" / "chainrule" / "mnist"

    monkeypatch.setenv("CHAINRULE_MNIST_MIRRORS", "http://a/x, http://b/y/  http://c")
    assert mnist_mirrors() == ["http://a/x/", "http://b/y/", "http://c/"]
    monkeypatch.delenv("CHAINRULE_MNIST_MIRRORS")
    assert mnist_mirrors() == list(DEFAULT_MIRRORS)
    assert DEFAULT_MIRRORS[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


# ---------------------------------------------------------------- shipped sample


def test_shipped_sample(messages: list[str]) -> None:
    (x, t), (xt, tt) = load_mnist(normalize=False, announce=messages.append)
    assert len(messages) == 1 and SAMPLE_LINE in messages[0]
    assert x.shape == (4000, 784) and xt.shape == (1000, 784)
    assert x.dtype == np.uint8 and x.min() == 0 and x.max() == 255 and xt.max() == 255
    assert np.bincount(t).tolist() == [400] * 10
    assert np.bincount(tt).tolist() == [100] * 10
    # 5,000 distinct real digits: no image appears twice, within or across the splits.
    assert len(np.unique(np.concatenate([x, xt]), axis=0)) == 5000
    # MNIST digits are white on black and centred: borders dark, mean ink near MNIST's 33/255.
    assert x.reshape(-1, 28, 28)[:, 0, :].max() == 0
    assert 25 < x.mean() < 40

    (xn, tn), _ = load_mnist(flatten=False, one_hot_label=True, announce=messages.append)
    assert xn.shape == (4000, 1, 28, 28) and xn.dtype == np.float32
    assert xn.min() == 0.0 and xn.max() == 1.0
    np.testing.assert_array_equal(tn.argmax(axis=1), t)


def test_sample_sha256_matches_readme() -> None:
    match = re.search(r"mnist_sample\.npz SHA-256[^0-9a-f]*([0-9a-f]{64})", README.read_text())
    assert match, "README.md records the npz SHA-256"
    assert hashlib.sha256(mnist.SAMPLE_PATH.read_bytes()).hexdigest() == match.group(1)


def test_describe() -> None:
    source = MnistSource("cache", Path("/c"), 60000, 10000)
    assert source.describe() == "MNIST from the cache /c (60,000 training, 10,000 test images)"
