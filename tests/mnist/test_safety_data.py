"""MNIST data within bounds: gzip padding, big images, the MNIST cache's sizes and the decoded cache's cap."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from chainrule import mnist
from chainrule.mnist import MnistError
from chainrule.mnist.cache import (
    DECODED_DIR,
    DECODED_FORMAT,
    DECODED_VERSION,
    ENV_CACHE_MAX,
    DecodedCache,
    _array_crc,
    _decoded,
    _read_sidecar,
    decoded_entries,
)
from chainrule.mnist.idx import read_idx, write_idx
from chainrule.mnist.sources import IDX_FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from tests.helpers import chainrule, error_line, offline_env


def write_set(folder: Path, n: int = 4, rows: int = 5, cols: int = 4, gz: bool = True) -> dict[str, Path]:
    """Four IDX files of n training and 2 test images of rows x cols pixels; their paths by base name."""
    rng = np.random.default_rng(0)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n, rows, cols), dtype=np.uint8),
        TRAIN_LABELS: (np.arange(n) % 10).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (2, rows, cols), dtype=np.uint8),
        TEST_LABELS: np.array([3, 8], dtype=np.uint8),
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
    labels = paths[TEST_LABELS]
    size = labels.stat().st_size
    os.truncate(labels, size + 4 * 2**30)  # `truncate -s +4G`: a sparse tail of zeros
    r = chainrule("gradcheck", "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=offline_env(tmp_path))
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
    r = chainrule(
        "train",
        "--hidden",
        "1000",
        "--data-dir",
        str(big_images),
        "--out",
        "run",
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    line = error_line(r)
    assert line.startswith(
        "--hidden 1000 needs about 24.3 GiB of memory (estimated) for images of 1,048,576 pixels,"
        " more than the limit of "
    )
    assert line.endswith("(the smaller of 4.0 GiB and half the physical memory)")
    assert sorted(os.listdir(tmp_path)) == []  # refused before any folder, cache or data
    # The same folder named by the environment is measured the same way.
    r = chainrule(
        "train",
        "--hidden",
        "1000",
        cwd=tmp_path,
        env=offline_env(tmp_path, {"CHAINRULE_DATA_DIR": str(big_images)}),
    )
    assert error_line(r) == line


def test_the_estimate_grows_with_the_pixels_and_mnist_keeps_its_own() -> None:
    from chainrule.runs.settings import INPUTS, Settings, check_settings, memory_estimate

    mnist_size = memory_estimate(Settings())
    assert memory_estimate(Settings(), INPUTS) == mnist_size
    big = memory_estimate(Settings(), 1024 * 1024)
    # W1 of 1,048,576 x 50 float32 four times over and its float64 draw, the batch's pixels twice.
    assert big - mnist_size == (16 + 8) * (1024 * 1024 - 784) * 50 + 4 * 100 * 2 * (1024 * 1024 - 784)
    check_settings(Settings(), limit=big, inputs=1024 * 1024)
    from chainrule.runs.folder import RunError

    with pytest.raises(RunError, match=r"^--batch-size 100 needs about .* for images of 1,048,576 pixels, "):
        check_settings(Settings(), limit=big - 1, inputs=1024 * 1024)


def test_gradcheck_refuses_images_that_make_too_many_central_differences(
    tmp_path: Path, big_images: Path
) -> None:
    r = chainrule("gradcheck", "--data-dir", str(big_images), cwd=tmp_path, env=offline_env(tmp_path))
    assert error_line(r) == (
        f"{big_images}: images of 1,048,576 pixels give the gradient check's network 52,429,360 parameters,"
        " one central difference each: more than --max-params 1048576"
    )
    r = chainrule(
        "gradcheck",
        "--data-dir",
        str(big_images),
        "--max-params",
        "99999999",
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert "--max-params: '99999999' is not a whole number from 1 to 16777216" in error_line(r)
    # A smaller limit refuses even MNIST-sized images, and says so before loading them.
    r = chainrule("gradcheck", "--max-params", "1000", cwd=tmp_path, env=offline_env(tmp_path))
    notice, error = r.stderr.strip().splitlines()
    assert r.returncode == 2 and notice.startswith("using the MNIST sample shipped with chainrule")
    assert error == (
        f"chainrule: error: {mnist.SAMPLE_PATH}: images of 784 pixels give the gradient check's network"
        " 39,760 parameters, one central difference each: more than --max-params 1000"
    )


# ---------------------------------------------------------------- 10: the cache's MNIST files and decoded copies


def test_a_huge_file_in_the_cache_is_refused_by_its_size_before_any_hashing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    huge = cache / f"{TRAIN_IMAGES}.gz"
    with open(huge, "wb") as f:
        f.truncate(100 * 10**9)  # 100 GB, sparse
    r = chainrule("gradcheck", cwd=tmp_path, env=offline_env(tmp_path))
    assert error_line(r) == (
        f"{huge}: 100,000,000,000 bytes, not the 9,912,422 bytes of MNIST's train-images-idx3-ubyte.gz;"
        f" chainrule did not download this file and leaves it alone: move it out of {cache}"
        f" or pass --data-dir {cache}"
    )
    assert huge.stat().st_size == 100 * 10**9 and sorted(os.listdir(cache)) == [huge.name]


def decoded_files(cache: Path) -> list[str]:
    """The names of the files in the decoded cache."""
    folder = cache / DECODED_DIR
    return sorted(os.listdir(folder)) if folder.exists() else []


def sources(cache: Path) -> set[str]:
    """The source folders of the decoded copies chainrule lists."""
    return {Path(e.source).parent.name for e in decoded_entries(cache / DECODED_DIR)}


def age(cache: Path, folder: str, seconds: int) -> None:
    """Make the copies decoded from folder last used at a fixed time, ``seconds`` after 2001-09-09."""
    for entry in decoded_entries(cache / DECODED_DIR):
        if Path(entry.source).parent.name == folder:
            os.utime(entry.sidecar, (10**9 + seconds, 10**9 + seconds))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CHAINRULE_OFFLINE", "1")
    monkeypatch.delenv("CHAINRULE_DATA_DIR", raising=False)
    monkeypatch.delenv(ENV_CACHE_MAX, raising=False)
    return tmp_path / "cache"


def test_the_decoded_cache_is_capped_least_recently_used_first(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in "ABC":
        write_set(tmp_path / name, n=100, rows=28, cols=28)
    # One set's float32 copies: 100 and 2 images of 784 pixels, the labels, two sidecars each.
    mnist.load_mnist(data_dir=tmp_path / "A", announce=None)
    one_set = sum(e.size for e in decoded_entries(cache / DECODED_DIR))
    assert 320_000 < one_set < 340_000
    monkeypatch.setenv(ENV_CACHE_MAX, str(2 * one_set + 100))  # room for two sets
    age(cache, "A", 0)
    mnist.load_mnist(data_dir=tmp_path / "B", announce=None)
    age(cache, "B", 10)
    mnist.load_mnist(data_dir=tmp_path / "A", announce=None)  # from the cache: A is now the latest used
    assert sources(cache) == {"A", "B"}
    mnist.load_mnist(data_dir=tmp_path / "C", announce=None)
    assert sources(cache) == {"A", "C"}  # B, the least recently used, made room
    assert len(decoded_files(cache)) == 16
    monkeypatch.setenv(ENV_CACHE_MAX, "0")
    mnist.load_mnist(data_dir=tmp_path / "B", announce=None)  # a cap of 0 keeps nothing
    assert decoded_files(cache) == []
    monkeypatch.setenv(ENV_CACHE_MAX, "12 parsecs")
    with pytest.raises(
        MnistError, match=r"^CHAINRULE_CACHE_MAX='12 parsecs': not a size in bytes such as 0, 500M or 2G$"
    ):
        mnist.load_mnist(data_dir=tmp_path / "B", announce=None)


def test_copies_of_deleted_or_changed_sources_are_removed(tmp_path: Path, cache: Path) -> None:
    write_set(tmp_path / "gone")
    write_set(tmp_path / "changed")
    write_set(tmp_path / "kept")
    for name in ("gone", "changed"):
        mnist.load_mnist(data_dir=tmp_path / name, announce=None)
    assert sources(cache) == {"gone", "changed"}
    for path in (tmp_path / "gone").iterdir():
        path.unlink()
    (tmp_path / "gone").rmdir()
    write_idx(tmp_path / "changed" / f"{TEST_LABELS}.gz", np.array([1, 1], dtype=np.uint8))
    states = {(Path(e.source).parent.name, e.state) for e in decoded_entries(cache / DECODED_DIR)}
    assert states == {("gone", "orphan"), ("changed", "ok"), ("changed", "stale")}
    mnist.load_mnist(data_dir=tmp_path / "kept", announce=None)  # a copy written: the useless ones go
    assert sources(cache) == {"changed", "kept"}
    assert {e.state for e in decoded_entries(cache / DECODED_DIR)} == {"ok"}


def test_the_cache_command_lists_and_clears_only_chainrules_copies(tmp_path: Path) -> None:
    # The cache pointed at a folder of the user's own, which holds a decoded/ folder of theirs too.
    users = tmp_path / "users"
    (users / DECODED_DIR).mkdir(parents=True)
    own = {
        "notes.json": b'{"format": "mine"}',
        "weights.npy": b"\x93NUMPY user's array",
        "fake-0123456789abcdef-uint8.json": b'{"format": "chainrule-decoded-idx", "version": 1}',
        "fake-0123456789abcdef-uint8.npy": b"\x93NUMPY not chainrule's",
    }
    for name, data in own.items():
        (users / DECODED_DIR / name).write_bytes(data)
    write_set(users / "mnist")
    env = {"CHAINRULE_CACHE_DIR": str(users)}
    before = {p: p.read_bytes() for p in users.rglob("*") if p.is_file()}

    r = chainrule(
        "gradcheck", "--data-dir", str(users / "mnist"), cwd=tmp_path, env=offline_env(tmp_path, env)
    )
    assert r.returncode == 0, r.stderr
    r = chainrule("cache", cwd=tmp_path, env=offline_env(tmp_path, env))
    assert r.returncode == 0 and r.stderr == ""
    head, *rows, total = r.stdout.splitlines()
    assert head == (
        f"{users / DECODED_DIR}: decoded copies of MNIST files, at most 1.0 GiB together"
        " (set CHAINRULE_CACHE_MAX to change it)"
    )
    assert sorted(row.split()[-1] for row in rows) == sorted(
        str(users / "mnist" / f"{base}.gz") for base in IDX_FILES
    )
    assert [row.split()[3] for row in rows].count("float64") == 0  # float64 is scaled from the bytes
    assert total.startswith("4 copies, ") and total.endswith(" in all")

    r = chainrule("cache", "--clear", cwd=tmp_path, env=offline_env(tmp_path, env))
    assert r.returncode == 0 and r.stdout.startswith("removed 4 decoded copies (") and r.stderr == ""
    assert {p: p.read_bytes() for p in users.rglob("*") if p.is_file()} == before
    r = chainrule(
        "cache", "--lang", "ja", cwd=tmp_path, env=offline_env(tmp_path, {**env, "CHAINRULE_CACHE_MAX": "2G"})
    )
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "コピー 0 個、合計 0 B"
    r = chainrule("cache", cwd=tmp_path, env=offline_env(tmp_path, {**env, "CHAINRULE_CACHE_MAX": "-1"}))
    assert error_line(r) == "CHAINRULE_CACHE_MAX='-1': not a size in bytes such as 0, 500M or 2G"


# -- a decoded copy chainrule did not seal


def _forged_copy(decoded: Path) -> dict[Path, bytes]:
    """A user's .npy with a sidecar that says all a chainrule sidecar says, but unsealed; its files' bytes."""
    import hashlib
    import json

    source = "/nonexistent/train-images-idx3-ubyte"
    stem = f"train-images-idx3-ubyte-{hashlib.sha256(source.encode()).hexdigest()[:16]}-uint8"
    decoded.mkdir(parents=True, exist_ok=True)
    npy, side = decoded / f"{stem}.npy", decoded / f"{stem}.json"
    np.save(npy, np.arange(10, dtype=np.uint8))
    meta = {
        "format": DECODED_FORMAT,
        "version": DECODED_VERSION,
        "source": {"path": source, "size": 1, "mtime_ns": 1, "sha256": "0" * 64},
        "array": {"dtype": "|u1", "shape": [10], "npy_size": npy.stat().st_size, "crc32": 0},
    }
    side.write_text(json.dumps(meta))
    return {npy: npy.read_bytes(), side: side.read_bytes()}


def test_forged_sidecar_leaves_the_users_npy_alone(tmp_path: Path) -> None:
    users = tmp_path / "mydata"
    forged = _forged_copy(users / DECODED_DIR)
    write_set(tmp_path / "idx", n=30, gz=False)
    env = {"CHAINRULE_CACHE_DIR": str(users)}

    r = chainrule(
        "train",
        "--data-dir",
        "idx",
        "--iters",
        "2",
        "--batch-size",
        "10",
        "--quiet",
        "--out",
        "r",
        cwd=tmp_path,
        env=offline_env(tmp_path, env),
    )
    assert r.returncode == 0, r.stderr
    assert {p: p.read_bytes() for p in forged} == forged
    assert "removed" not in r.stderr

    r = chainrule("cache", cwd=tmp_path, env=offline_env(tmp_path, env))
    assert r.returncode == 0 and r.stderr == ""
    rows = r.stdout.splitlines()[1:-1]
    assert sorted(row.split()[-1] for row in rows) == sorted(str(tmp_path / "idx" / b) for b in IDX_FILES)
    assert "/nonexistent" not in r.stdout and r.stdout.splitlines()[-1].startswith("4 copies, ")

    r = chainrule("cache", "--clear", cwd=tmp_path, env=offline_env(tmp_path, env))
    assert r.returncode == 0 and r.stdout.startswith("removed 4 decoded copies (") and r.stderr == ""
    assert {p: p.read_bytes() for p in forged} == forged
    assert sorted(p.name for p in (users / DECODED_DIR).iterdir()) == sorted(p.name for p in forged)


def test_forged_sidecar_is_not_loaded(tmp_path: Path) -> None:
    """A copy sealed by chainrule, its sidecar then edited, is no longer chainrule's: read from the source."""
    import json

    folder = tmp_path / "cache" / DECODED_DIR
    paths = write_set(tmp_path / "idx", gz=False)
    cache = DecodedCache(folder, None)
    first = _decoded(paths[TRAIN_LABELS], 1, np.dtype(np.uint8), cache)
    (side,) = folder.glob("train-labels-*.json")
    npy = side.with_suffix(".npy")
    meta = json.loads(side.read_text())
    assert _read_sidecar(side) == meta and isinstance(meta["seal"], str)
    np.save(npy, np.full_like(first, 7))  # the user's array, a sidecar that now describes it
    meta["array"]["crc32"] = _array_crc(np.load(npy))
    side.write_text(json.dumps(meta))
    said: list[str] = []
    again = _decoded(paths[TRAIN_LABELS], 1, np.dtype(np.uint8), DecodedCache(folder, said.append))
    assert np.array_equal(again, first) and np.load(npy).tolist() == [7] * len(first)
    assert said == [
        f"{npy}: not a copy chainrule decoded; left it alone and read {paths[TRAIN_LABELS]} itself"
    ]
    assert decoded_entries(folder) == []


def test_sealed_copy_of_a_gone_source_is_still_evicted(tmp_path: Path) -> None:
    users = tmp_path / "mydata"
    write_set(tmp_path / "idx", n=30, gz=False)
    env = {"CHAINRULE_CACHE_DIR": str(users)}
    r = chainrule(
        "train",
        "--data-dir",
        "idx",
        "--iters",
        "2",
        "--batch-size",
        "10",
        "--quiet",
        "--out",
        "r",
        cwd=tmp_path,
        env=offline_env(tmp_path, env),
    )
    assert r.returncode == 0, r.stderr
    old = sorted(p.name for p in (users / DECODED_DIR).iterdir())
    assert len(old) == 8
    (tmp_path / "idx").rename(tmp_path / "idx2")

    r = chainrule(
        "train",
        "--data-dir",
        "idx2",
        "--iters",
        "2",
        "--batch-size",
        "10",
        "--quiet",
        "--out",
        "r2",
        cwd=tmp_path,
        env=offline_env(tmp_path, env),
    )
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if line.startswith("removed")]
    assert len(said) == 1 and said[0].startswith("removed 4 decoded copies (")
    assert said[0].endswith(f") from {users / DECODED_DIR}")
    now = sorted(p.name for p in (users / DECODED_DIR).iterdir())
    assert len(now) == 8 and not set(now) & set(old)
