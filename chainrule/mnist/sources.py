"""Where MNIST is looked for and what each source holds: the four files by name, in a folder or the cache."""

from __future__ import annotations

import errno
import hashlib
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from chainrule.codegen.i18n import N_, _
from chainrule.fs.account import cache_folder
from chainrule.mnist.idx import _IMAGE_NDIM, IDX_MAX_DATA_BYTES, MnistError, read_idx_shape

# The four files of the standard IDX layout, in (train images, train labels, test images, test labels) order.
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
N_CLASSES = 10

ENV_DATA_DIR = "CHAINRULE_DATA_DIR"
ENV_CACHE_DIR = "CHAINRULE_CACHE_DIR"

SourceKind = Literal["dir", "cache", "download", "sample"]
Announce = Callable[[str], object] | None


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


def mnist_cache_dir() -> Path:
    """Return the MNIST cache directory: $CHAINRULE_CACHE_DIR, else the OS user cache + chainrule/mnist."""
    override = os.environ.get(ENV_CACHE_DIR)
    if override:
        return Path(override).expanduser()
    return cache_folder() / "mnist"


@dataclass(frozen=True)
class SourceStamp:
    """Which bytes a decoded copy came from: the IDX file's path, size, modification time and SHA-256."""

    path: str
    size: int
    mtime_ns: int
    sha256: str


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


def _say(announce: Announce, message: str) -> None:
    """Pass a one-line message to announce, unless it is None."""
    if announce is not None:
        announce(message)
