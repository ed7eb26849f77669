"""Load MNIST from a named directory, the user cache, a checked download, or the shipped sample."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from chainrule.codegen.i18n import _
from chainrule.mnist.cache import (
    DecodedCache,
    _decoded,
    decoded_cache_budget,
    decoded_cache_dir,
    scale_pixels,
)
from chainrule.mnist.download import ENV_OFFLINE, _cache_missing, _download, _offline, mnist_mirrors
from chainrule.mnist.idx import _IMAGE_NDIM, _LABEL_NDIM, MnistError, _dims_text, read_idx_shape
from chainrule.mnist.sample import SAMPLE_PATH, _read_sample, _sample_details, _sample_notice, _sample_source
from chainrule.mnist.sources import (
    ENV_DATA_DIR,
    N_CLASSES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    Announce,
    MnistSource,
    _check_labels,
    _dir_files,
    _dir_source,
    _say,
    _Split,
    mnist_cache_dir,
)

__all__ = ["SAMPLE_PATH", "MnistError", "MnistSource", "load_mnist", "locate_mnist"]


# What load_mnist may build from the files (pixels, floats, one-hot labels), estimated from the
# headers: full MNIST as float64 with one-hot labels needs 0.5 GB.
LOAD_MAX_BYTES = 2**30


def _to_stderr(message: str) -> None:
    """Where messages about the data go by default: not into the program's output."""
    print(message, file=sys.stderr)


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


def _read_dir(
    directory: Path, *, gz_only: bool, pixels: np.dtype, cache: DecodedCache
) -> tuple[_Split, _Split]:
    """Read and cross-check the train and test splits of a directory of IDX files."""
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
