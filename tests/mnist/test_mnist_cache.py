"""Decoded copies of IDX files in the cache: bit-identical, invalidated by a changed source, and only ever chainrule's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule.fs.reaper import own_name
from chainrule.mnist import cache as mnist_cache
from chainrule.mnist import load_mnist
from chainrule.mnist.cache import _TEMP_PREFIX, DECODED_DIR, DECODING_KIND, decoded_paths
from chainrule.mnist.idx import write_idx
from chainrule.mnist.sources import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, source_stamp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of the test's own, offline; return the folder the decoded copies go to."""
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CHAINRULE_OFFLINE", "1")
    monkeypatch.delenv("CHAINRULE_DATA_DIR", raising=False)
    return tmp_path / "cache" / DECODED_DIR


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the IDX files read_idx decodes (a cache hit decodes none)."""
    seen: list[str] = []
    real = mnist_cache.read_idx

    def counting(path, *, ndim=None):
        seen.append(Path(path).name)
        return real(path, ndim=ndim)

    monkeypatch.setattr(mnist_cache, "read_idx", counting)
    return seen


def write_set(folder: Path, seed: int = 0, n_train: int = 6, gz: bool = True) -> dict[str, np.ndarray]:
    """Four small IDX files of random bytes (0 and 255 included); return the arrays by base name."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_train, 4, 3), dtype=np.uint8)
    images[0, 0, :2] = (0, 255)
    arrays = {
        TRAIN_IMAGES: images,
        TRAIN_LABELS: (np.arange(n_train) % 10).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (2, 4, 3), dtype=np.uint8),
        TEST_LABELS: np.array([7, 1], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        write_idx(folder / (base + (".gz" if gz else "")), array)
    return arrays


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def load(data: Path, **options):
    """load_mnist on a named folder, collecting what it announces."""
    said: list[str] = []
    result = load_mnist(data_dir=data, announce=said.append, **options)
    return result, said


def assert_identical(a, b) -> None:
    """Two load_mnist results with the same dtypes, shapes and bytes."""
    for x, y in zip((a[0][0], a[0][1], a[1][0], a[1][1]), (b[0][0], b[0][1], b[1][0], b[1][1]), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


OPTIONS = [
    {"one_hot_label": True},  # the training run: float32 pixels
    {"normalize": False},  # the bytes
    {"dtype": np.float64, "flatten": False},  # the gradient check's dtype, scaled from the cached bytes
]


@pytest.mark.parametrize("options", OPTIONS, ids=["float32", "uint8", "float64"])
def test_a_cache_hit_is_bit_identical_to_a_fresh_decode(
    tmp_path: Path, cache: Path, decodes: list[str], monkeypatch: pytest.MonkeyPatch, options: dict
) -> None:
    arrays = write_set(tmp_path / "data")
    before = snapshot(tmp_path / "data")

    first, said = load(tmp_path / "data", **options)
    assert said == [] and len(decodes) == 4
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 8 and all(n.endswith((".npy", ".json")) for n in kept)
    pixels = "float32" if options.get("one_hot_label") else "uint8"
    assert sum("images" in n and n.endswith(f"-{pixels}.npy") for n in kept) == 2

    decodes.clear()
    second, said = load(tmp_path / "data", **options)
    assert said == [] and decodes == []  # no IDX file was read again
    assert_identical(first, second)

    # ...and identical to a decode that never saw a cache.
    monkeypatch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path / "other-cache"))
    fresh, _ = load(tmp_path / "data", **options)
    assert_identical(second, fresh)
    x = second[0][0].reshape(6, 4, 3)
    if x.dtype == np.uint8:
        np.testing.assert_array_equal(x, arrays[TRAIN_IMAGES])
    else:
        np.testing.assert_array_equal(x, arrays[TRAIN_IMAGES] / x.dtype.type(255))
    assert snapshot(tmp_path / "data") == before  # nothing is ever written into the user's folder


def test_arrays_from_the_cache_are_writable_and_writing_never_reaches_it(tmp_path: Path) -> None:
    write_set(tmp_path / "data")
    load(tmp_path / "data")
    (x, _), _ = load(tmp_path / "data")[0]
    original = float(x[0, 1])
    assert original == 1.0
    x[0, 1] = 0.5
    (again, _), _ = load(tmp_path / "data")[0]
    assert float(again[0, 1]) == original


def test_a_sidecar_marks_the_copy_and_names_its_source(tmp_path: Path, cache: Path) -> None:
    write_set(tmp_path / "data")
    load(tmp_path / "data")
    source = tmp_path / "data" / f"{TRAIN_IMAGES}.gz"
    npy, side = decoded_paths(cache, source_stamp(source), np.dtype(np.float32))
    meta = json.loads(side.read_text())
    assert meta["format"] == "chainrule-decoded-idx" and meta["version"] == 1
    info = source.stat()
    assert meta["source"]["path"] == str(source.resolve())
    assert (meta["source"]["size"], meta["source"]["mtime_ns"]) == (info.st_size, info.st_mtime_ns)
    assert meta["array"]["shape"] == [6, 4, 3] and meta["array"]["npy_size"] == npy.stat().st_size
    assert np.load(npy, allow_pickle=False).dtype == np.float32


def _touch(path: Path) -> None:
    """Change only the modification time."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def _same_size_other_bytes(path: Path) -> None:
    """Other pixels of the same size, with the old modification time put back (as cp -p would)."""
    info = path.stat()
    write_idx(path, np.full((6, 4, 3), 7, dtype=np.uint8))
    assert path.stat().st_size == info.st_size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _more_images(path: Path) -> None:
    """More images (and labels to match): another size."""
    write_idx(path, np.full((9, 4, 3), 9, dtype=np.uint8))
    write_idx(path.parent / f"{TRAIN_LABELS}", np.zeros(9, dtype=np.uint8))


@pytest.mark.parametrize(
    "change", [_touch, _same_size_other_bytes, _more_images], ids=["mtime", "content", "size"]
)
def test_a_changed_source_invalidates_its_copy(
    tmp_path: Path, cache: Path, decodes: list[str], change
) -> None:
    write_set(tmp_path / "data", gz=False)
    load(tmp_path / "data")
    load(tmp_path / "data", normalize=False)
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 12  # float32 and uint8 copies of the images, uint8 of the labels, each with a sidecar
    change(tmp_path / "data" / TRAIN_IMAGES)
    decodes.clear()

    (x, t), _ = load(tmp_path / "data", normalize=False)[0]
    assert TRAIN_IMAGES in decodes
    expected = mnist_cache.read_idx(tmp_path / "data" / TRAIN_IMAGES)
    np.testing.assert_array_equal(x.reshape(expected.shape), expected)

    (x32, _), _ = load(tmp_path / "data")[0]
    np.testing.assert_array_equal(x32, expected.reshape(len(expected), -1) / np.float32(255))
    # The changed file's copy was replaced in place: the same names, nothing left behind.
    assert sorted(p.name for p in cache.iterdir()) == kept
    decodes.clear()
    load(tmp_path / "data")
    assert decodes == []  # and the new copy serves the next run


def test_a_corrupt_copy_of_chainrules_is_detected_and_decoded_again(
    tmp_path: Path, cache: Path, decodes: list[str]
) -> None:
    write_set(tmp_path / "data")
    good, _ = load(tmp_path / "data")
    source = tmp_path / "data" / f"{TRAIN_IMAGES}.gz"
    npy, _ = decoded_paths(cache, source_stamp(source), np.dtype(np.float32))
    intact = npy.read_bytes()

    for damage in (
        intact[:-4] + bytes(b ^ 0xFF for b in intact[-4:]),  # a flipped pixel, same size
        intact[: len(intact) // 2],  # truncated
        b"\x93NUMPY garbage" + intact[14:],  # a broken header
    ):
        npy.write_bytes(damage)
        decodes.clear()
        again, said = load(tmp_path / "data")
        assert said == [] and decodes == [f"{TRAIN_IMAGES}.gz"]
        assert_identical(good, again)
        assert npy.read_bytes() == intact  # replaced by a good copy


def test_files_chainrule_did_not_write_are_left_alone(
    tmp_path: Path, cache: Path, decodes: list[str]
) -> None:
    write_set(tmp_path / "data")
    good, _ = load(tmp_path / "data")
    source = tmp_path / "data" / f"{TRAIN_IMAGES}.gz"
    npy, side = decoded_paths(cache, source_stamp(source), np.dtype(np.float32))

    # A user's .npy where a copy would go, with no sidecar of chainrule's: never replaced.
    side.unlink()
    npy.write_bytes(b"the user's own file")
    (cache / "notes.npy").write_bytes(b"also the user's")
    before = snapshot(cache)
    for _ in range(2):
        decodes.clear()
        again, said = load(tmp_path / "data")
        assert_identical(good, again)
        assert decodes == [f"{TRAIN_IMAGES}.gz"]
        assert said == [f"{npy}: not a copy chainrule decoded; left it alone and read {source} itself"]
        assert snapshot(cache) == before

    # A sidecar in another format is not chainrule's either: both files stay as they are.
    npy.unlink()
    side.write_text('{"format": "something else"}')
    before = snapshot(cache)
    again, said = load(tmp_path / "data")
    assert_identical(good, again)
    assert len(said) == 1 and snapshot(cache) == before


def test_a_cache_that_cannot_take_a_copy_costs_only_speed(tmp_path: Path, cache: Path) -> None:
    write_set(tmp_path / "data")
    cache.parent.mkdir()
    cache.write_bytes(b"a file where the folder would go")
    first, said = load(tmp_path / "data")
    second, _ = load(tmp_path / "data", one_hot_label=False)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    assert said == [
        f"cannot keep decoded copies of the MNIST files in {cache}: File exists; each run decodes them again"
    ]
    assert cache.read_bytes() == b"a file where the folder would go"


def test_a_killed_runs_temporary_files_are_cleaned_only_if_chainrules(tmp_path: Path, cache: Path) -> None:
    cache.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = cache / own_name("", DECODING_KIND, ".npy", pid=dead.pid)
    stale.write_bytes(b"half a copy")
    users = cache / f"{_TEMP_PREFIX}notes.txt"
    users.write_bytes(b"a user's file with a similar name")
    lookalike = cache / f"{_TEMP_PREFIX}{dead.pid}-abc123.npy"  # not a name chainrule made
    lookalike.write_bytes(b"a user's file named like a copy")
    write_set(tmp_path / "data")
    load(tmp_path / "data")
    assert not stale.exists() and users.read_bytes() == b"a user's file with a similar name"
    assert lookalike.read_bytes() == b"a user's file named like a copy"
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_float32_pixels_equal_float64_pixels_rounded(tmp_path: Path) -> None:
    every_byte = np.arange(256, dtype=np.uint8).reshape(16, 4, 4)
    folder = tmp_path / "data"
    folder.mkdir()
    write_idx(folder / TRAIN_IMAGES, every_byte)
    write_idx(folder / TRAIN_LABELS, np.arange(16, dtype=np.uint8) % 10)
    write_idx(folder / TEST_IMAGES, every_byte[:1])
    write_idx(folder / TEST_LABELS, np.zeros(1, dtype=np.uint8))
    for _ in range(2):  # decoded, then from the cache
        (x32, _), _ = load_mnist(data_dir=folder, dtype=np.float32, announce=None)
        (x64, _), _ = load_mnist(data_dir=folder, dtype=np.float64, announce=None)
        assert x32.dtype == np.float32 and x64.dtype == np.float64
        assert x32.tobytes() == x64.astype(np.float32).tobytes()
        assert x64.ravel().tolist() == [i / 255 for i in range(256)]


def _modules_after(code: str) -> str:
    """The NumPy, SymPy and Matplotlib modules a fresh interpreter holds after running code."""
    probe = (
        f"import sys\n{code}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'sympy', 'matplotlib'}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_building_the_command_line_imports_no_numpy_sympy_or_matplotlib() -> None:
    assert _modules_after("from chainrule.cli import build_parser; build_parser()") == "[]"


@pytest.mark.parametrize("command", [[], ["train"], ["derive"], ["report"], ["graph"]])
def test_help_imports_no_numpy_sympy_or_matplotlib(command: list[str]) -> None:
    code = (
        "import contextlib, io\nfrom chainrule.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        main({[*command, '--help']!r})\n    except SystemExit:\n        pass"
    )
    assert _modules_after(code) == "[]"


def test_the_old_import_paths_still_work() -> None:
    from chainrule import cli, errors

    assert cli.UsageError is errors.UsageError
    assert cli.main(["train", "--iters", "0"]) == 2
