"""The small MNIST sample shipped with chainrule, used when the full set cannot be had."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from chainrule.codegen.i18n import _
from chainrule.mnist.idx import MnistError, _one_line
from chainrule.mnist.sources import ENV_DATA_DIR, MnistSource, _check_labels, _Split

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "mnist_sample.npz"


def _read_sample(path: Path = SAMPLE_PATH) -> tuple[_Split, _Split]:
    """Read the shipped sample npz (no pickles) and check its arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("x_train", "t_train", "x_test", "t_test")}
    except (OSError, KeyError, ValueError, zlib.error, zipfile.BadZipFile) as exc:
        raise MnistError(
            _("{path}: cannot read the MNIST sample: {one_line}", path=path, one_line=_one_line(exc))
        ) from exc
    splits = []
    for x_key, t_key in (("x_train", "t_train"), ("x_test", "t_test")):
        x, t = arrays[x_key], arrays[t_key]
        if (
            x.dtype != np.uint8
            or t.dtype != np.uint8
            or x.ndim != 2
            or x.shape[1] != 784
            or t.shape != x.shape[:1]
        ):
            raise MnistError(
                _(
                    "{path}: {x_key}/{t_key} are {dtype}{shape}/{dtype2}{shape2}, not uint8 (N, 784)/(N,)",
                    path=path,
                    x_key=x_key,
                    t_key=t_key,
                    dtype=x.dtype,
                    shape=x.shape,
                    dtype2=t.dtype,
                    shape2=t.shape,
                )
            )
        _check_labels(t, f"{path}: {t_key}")
        splits.append(_Split(x.reshape(-1, 28, 28), t))
    return splits[0], splits[1]


def _sample_source(path: Path = SAMPLE_PATH) -> MnistSource:
    """Describe the shipped sample."""
    train, test = _read_sample(path)
    return MnistSource("sample", path, len(train.labels), len(test.labels))


def _sample_notice(source: MnistSource, why: str) -> str:
    """The one short line that says the sample is in use and, in a few words, why."""
    return _(
        "using the MNIST sample shipped with chainrule ({train} training and {test} test digits): {why}",
        train=format(source.n_train, ","),
        test=format(source.n_test, ","),
        why=why,
    )


def _sample_details(reason: str) -> str:
    """What ``--verbose`` adds to the notice: the whole reason, and every way to get the full set."""
    return _(
        "{reason}; for the full 70,000 set, connect to the internet once"
        " or pass --data-dir DIR (or set {variable}) with the four IDX files",
        reason=reason,
        variable=ENV_DATA_DIR,
    )
