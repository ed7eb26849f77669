"""The checked download of MNIST into the user cache (pooch), and the downloaded files found there."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chainrule.codegen.i18n import _, ngettext
from chainrule.fs.reaper import own_name, reap
from chainrule.mnist.idx import MnistError, _one_line
from chainrule.mnist.sources import Announce, _say, mnist_cache_dir

# MD5s of the original gzip files; module-level so tests can substitute their own small files.
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# Their sizes, checked before an MD5 is computed: a file of another size is not MNIST's, however large.
MNIST_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
ENV_MIRRORS = "CHAINRULE_MNIST_MIRRORS"
ENV_OFFLINE = "CHAINRULE_OFFLINE"

# Connect fails fast on an offline machine; the read timeout allows for a slow mirror.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0

# Downloads go into a private folder inside the cache, ``.chainrule-download-PID-HEX``: named
# (chainrule.fs.reaper.own_name) so a later run knows it as this account's chainrule's, and no other.
DOWNLOAD_KIND = "chainrule-download"

# What pooch names its temporary files (tempfile's "tmp" and 8 characters) in that folder.
_POOCH_TEMP = re.compile(r"tmp[a-z0-9_]{8}")


def mnist_mirrors() -> list[str]:
    """Return the download base URLs: $CHAINRULE_MNIST_MIRRORS (space/comma separated), else the defaults."""
    text = os.environ.get(ENV_MIRRORS, "")
    urls = [u for u in re.split(r"[\s,]+", text) if u] or list(DEFAULT_MIRRORS)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _offline() -> bool:
    """Return True when $CHAINRULE_OFFLINE asks not to touch the network."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def _md5(path: Path) -> str:
    """Return the hex MD5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_missing(cache: Path, announce: Announce) -> list[str]:
    """Return the cache files that are absent; a file there with a wrong MD5 is an error, never deleted.

    chainrule only ever puts a file into the cache after checking its MD5 (see _download), so a
    file with another MD5 is the user's, and it is theirs to remove.
    """
    missing = []
    for name, md5 in MNIST_MD5.items():
        path = cache / name
        if not os.path.lexists(path):
            missing.append(name)
            continue
        if path.is_symlink() or not path.is_file():
            raise MnistError(
                _(
                    "{path}: not a regular file; chainrule leaves it alone: move it out of the cache",
                    path=path,
                )
            )
        size = path.stat().st_size
        if size != MNIST_SIZES[name]:
            raise MnistError(
                _(
                    "{path}: {size} bytes, not the {expected} bytes of MNIST's {name}; chainrule did not download this file and leaves it alone: move it out of {cache} or pass --data-dir {cache}",
                    path=path,
                    size=format(size, ","),
                    expected=format(MNIST_SIZES[name], ","),
                    name=name,
                    cache=cache,
                )
            )
        actual = _md5(path)
        if actual != md5:
            raise MnistError(
                _(
                    "{path}: MD5 {actual} is not MNIST's {md5}; chainrule did not download this file and leaves it alone: move it out of {cache} or pass --data-dir {cache}",
                    path=path,
                    actual=actual,
                    md5=md5,
                    cache=cache,
                )
            )
    return missing


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's info messages for the duration; announce() tells the user what happens."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _failure_text(exc: BaseException) -> str:
    """Summarize a download failure in a few words."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "cannot connect"
    if isinstance(exc, ValueError) and "hash" in str(exc):
        return "MD5 mismatch, download discarded"
    return _one_line(f"{type(exc).__name__}: {exc}")[:200]


def _download(names: Sequence[str], cache: Path, mirrors: Sequence[str], announce: Announce) -> None:
    """Fetch each named file into cache with pooch, trying mirrors in order; raise MnistError if one cannot be had.

    Each file is downloaded into a private folder in the cache, checked against its MD5 there,
    and only then linked to its name in the cache, never over a file already there.
    """
    with warnings.catch_warnings():
        # pooch imports tqdm.auto, which warns in a Jupyter kernel without ipywidgets; no bar is drawn there.
        warnings.filterwarnings("ignore", message="IProgress not found")
        import pooch

    progressbar = sys.stderr.isatty() and _has_tqdm()
    downloader = pooch.HTTPDownloader(
        timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), progressbar=progressbar, chunk_size=1 << 16
    )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MnistError(
            _("{cache}: cannot create the MNIST cache: {value}", cache=cache, value=exc.strerror or exc)
        ) from None
    _clean_downloads(cache)
    private = cache / own_name("", DOWNLOAD_KIND)
    try:
        private.mkdir()
        with _quiet_pooch():
            for name in names:
                failures = []
                for base in mirrors:
                    try:
                        # pooch streams into a temp file, checks the MD5, then renames it; all inside
                        # our private folder, so a failure never reaches the cache itself.
                        fetched = pooch.retrieve(
                            url=base + name,
                            known_hash=f"md5:{MNIST_MD5[name]}",
                            fname=name,
                            path=private,
                            downloader=downloader,
                        )
                        break
                    except Exception as exc:  # noqa: BLE001 - any failure means: try the next mirror
                        failures.append(f"{base}{name}: {_failure_text(exc)}")
                else:
                    # The first file that no mirror can give ends the attempt; the rest would fail the same way.
                    raise MnistError(_("MNIST download failed ({join})", join="; ".join(failures)))
                _place(Path(fetched), cache / name)
    finally:
        _empty_download_folder(private)
    # One line per outcome: this on success, the sample notice on failure.
    _say(
        announce,
        ngettext(
            "downloaded {n} MNIST file into {cache}", "downloaded {n} MNIST files into {cache}", len(names)
        ).format(n=len(names), cache=cache),
    )


def _place(fetched: Path, target: Path) -> None:
    """Give a verified download its name in the cache without replacing anything already there."""
    try:
        os.link(fetched, target)  # fails if target exists: a file there is never overwritten
    except OSError as exc:
        if isinstance(exc, FileExistsError) or os.path.lexists(target):
            raise MnistError(
                _("{target}: appeared while chainrule was downloading it; left it alone", target=target)
            ) from None
        os.rename(fetched, target)  # a file system without hard links


def _empty_download_folder(folder: Path) -> list[Path]:
    """Remove what chainrule and pooch write into a private download folder, then the folder if that empties it.

    Only regular files named as MNIST's files or as pooch's temporaries go; anything else
    stays (and so does the folder).  What was removed: the folder alone when it went, else the files.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name not in MNIST_MD5 and not _POOCH_TEMP.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    try:
        folder.rmdir()
    except OSError:
        return removed
    return [folder]


def _clean_downloads(cache: Path) -> None:
    """Empty the private download folders of chainrule runs that were killed (their process is gone), and say so.

    Only folders whose name this account's chainrule made (``own_name``) are touched, and in
    them only the files it writes there (``_empty_download_folder``).
    """
    reap(cache, DOWNLOAD_KIND, _empty_download_folder)


def _has_tqdm() -> bool:
    """Return True if tqdm is importable, so pooch can draw a progress bar."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def cached_downloads() -> list[tuple[Path, int]]:
    """The MNIST files in the cache folder, with their sizes (whoever put them there)."""
    found = []
    for name in MNIST_MD5:
        path = mnist_cache_dir() / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((path, info.st_size))
    return found
