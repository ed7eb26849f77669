"""run.json, the settings a run folder records, and loading a saved run back into a network.

``chainrule train`` writes run.json beside params.npz; ``evaluate`` and ``predict`` read
both back. Neither file is trusted: run.json is size-capped and every field is checked
(type, range, known names) before anything is built from it, and params.npz is read
without pickle, size-capped from run.json's sizes, and must hold exactly the arrays, the
shapes and the finite floats that network needs.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chainrule.codegen.i18n import _, message_of

if TYPE_CHECKING:
    import numpy as np

    from chainrule.mnist import MnistSource

RUN_JSON = "run.json"
METRICS_COLUMNS = ("epoch", "iteration", "loss", "train_acc", "test_acc")  # metrics.csv's header
PARAMS = "params.npz"
FORMAT = 1  # run.json's layout; a later layout gets a new number
RUN_JSON_MAX_BYTES = 64 * 1024
MAX_UNITS = 1_000_000  # units in one layer: a matrix of 784 x 1e6 float64 is 6 GB, refused below anyway
MAX_INPUTS = 2**24
PARAMS_MAX_BYTES = 2**30  # float64 weights chainrule reads back; train's memory limit keeps runs far below
MAX_PATH = 4096
SEED_MAX = 2**32 - 1
MAX_ITERS = 1_000_000  # 100 times the chapter's run; the loss curve keeps one number per iteration
MAX_HIDDEN_LAYERS = 100
NETWORKS = ("TwoLayerNet", "MultiLayerNet")
DATA_KINDS = ("dir", "cache", "download", "sample")
CLASSES = 10
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class RunFileError(Exception):
    """A run folder, its run.json or its params.npz cannot be used: one line that says why."""


@dataclass(frozen=True)
class DataInfo:
    """Where a run's data came from, as ``locate_mnist`` found it."""

    kind: str
    path: str
    n_train: int
    n_test: int

    @classmethod
    def of(cls, source: MnistSource) -> DataInfo:
        """The record of a data source."""
        return cls(source.kind, str(Path(source.path).resolve()), source.n_train, source.n_test)


@dataclass(frozen=True)
class FinalScores:
    """The saved weights scored once more when training ends: what ``evaluate`` of the run gives again."""

    iterations: int  # steps whose weights were saved
    train_acc: float
    test_acc: float
    loss: float | None  # mean loss over the training set; None if it is not a finite number
    seconds: float  # wall time of the run, from the first step to this scoring

    def accuracy(self, which: str) -> str:
        """An accuracy as every line prints it: four decimals."""
        return format(self.train_acc if which == "train" else self.test_acc, ".4f")


@dataclass(frozen=True)
class RunInfo:
    """What run.json holds: enough to build the run's network and find its data again."""

    network: str  # TwoLayerNet or MultiLayerNet
    input_size: int
    hidden: tuple[int, ...]
    output_size: int
    activation: str | None  # None for the chapter's TwoLayerNet (ReLU, fixed)
    package: str | None  # the generated package whose layers it used; None: the installed one
    seed: int
    iters: int
    batch_size: int
    lr: float
    data: DataInfo | None
    chainrule: str  # the version that trained it
    final: FinalScores | None = None  # None in runs saved by an older chainrule
    package_sha256: str | None = None  # the digest of the package's files it trained with (packages.py)

    def sizes(self) -> list[int]:
        """Units per layer, input to output."""
        return [self.input_size, *self.hidden, self.output_size]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of every parameter: ``W1``, ``b1``, ... as the networks name them."""
        sizes = self.sizes()
        shapes: dict[str, tuple[int, ...]] = {}
        for idx in range(1, len(sizes)):
            shapes[f"W{idx}"] = (sizes[idx - 1], sizes[idx])
            shapes[f"b{idx}"] = (sizes[idx],)
        return shapes

    def describe(self) -> str:
        """The network, as a learner would write it."""
        if self.network == "TwoLayerNet":
            return f"TwoLayerNet({self.input_size}, {self.hidden[0]}, {self.output_size})"
        return (
            f"MultiLayerNet({self.input_size}, {list(self.hidden)}, {self.output_size},"
            f" activation={self.activation!r})"
        )

    def to_json(self) -> str:
        """run.json's text: sorted keys, so the same run writes the same bytes."""
        record = {"format": FORMAT, **asdict(self), "hidden": list(self.hidden)}
        return json.dumps(record, indent=2, sort_keys=True) + "\n"


# --- reading run.json, checking every field ------------------------------------------------------


def _field(record: dict[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise RunFileError(_("{where}: no {key} field", where=where, key=repr(key)))
    return record[key]


def _int(record: dict[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = _field(record, key, where)
    if type(value) is not int or not low <= value <= high:
        raise RunFileError(
            _(
                "{where}: {key} is {shown}, not a whole number from {low} to {high}",
                where=where,
                key=repr(key),
                shown=_shown(value),
                low=format(low, ","),
                high=format(high, ","),
            )
        )
    return value


def _text(record: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = _field(record, key, where)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_PATH or "\0" in value:
        raise RunFileError(
            _(
                "{where}: {key} is {shown}, not a text of 1 to {max_path} characters",
                where=where,
                key=repr(key),
                shown=_shown(value),
                max_path=MAX_PATH,
            )
        )
    return value


def _shown(value: object) -> str:
    """A field's value in an error message: short, on one line."""
    text = " ".join(json.dumps(value, default=str).split())
    return text if len(text) <= 40 else text[:37] + "..."


def parse_run_json(data: bytes, where: str) -> RunInfo:
    """The RunInfo in run.json's bytes; RunFileError (one line) for anything chainrule would not write."""
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFileError(_("{where} is not UTF-8 text", where=where)) from None
    except (ValueError, RecursionError) as exc:
        raise RunFileError(
            _("{where} is not valid JSON: {value}", where=where, value=" ".join(str(exc).split())[:200])
        ) from None
    if not isinstance(record, dict):
        raise RunFileError(
            _("{where} holds {name}, not a JSON object", where=where, name=type(record).__name__)
        )
    if record.get("format") != FORMAT:
        raise RunFileError(
            _(
                "{where}: format {shown} is not {format}, the one this chainrule reads",
                where=where,
                shown=_shown(record.get("format")),
                format=FORMAT,
            )
        )
    network = _field(record, "network", where)
    if network not in NETWORKS:
        raise RunFileError(
            _(
                "{where}: 'network' is {shown}, not one of {join}",
                where=where,
                shown=_shown(network),
                join=", ".join(NETWORKS),
            )
        )
    hidden = _field(record, "hidden", where)
    if not isinstance(hidden, list) or not 1 <= len(hidden) <= MAX_HIDDEN_LAYERS:
        raise RunFileError(
            _(
                "{where}: 'hidden' is {shown}, not a list of 1 to {max_hidden_layers} sizes",
                where=where,
                shown=_shown(hidden),
                max_hidden_layers=MAX_HIDDEN_LAYERS,
            )
        )
    for units in hidden:
        if type(units) is not int or not 1 <= units <= MAX_UNITS:
            raise RunFileError(
                _(
                    "{where}: 'hidden' holds {shown}, not a whole number from 1 to {max_units}",
                    where=where,
                    shown=_shown(units),
                    max_units=format(MAX_UNITS, ","),
                )
            )
    activation = _field(record, "activation", where)
    if network == "TwoLayerNet":
        if activation is not None or len(hidden) != 1:
            raise RunFileError(
                _("{where}: a TwoLayerNet has one hidden layer and a null 'activation'", where=where)
            )
    elif not isinstance(activation, str) or not _NAME.fullmatch(activation):
        raise RunFileError(
            _(
                "{where}: 'activation' is {shown}, not an activation's name",
                where=where,
                shown=_shown(activation),
            )
        )
    package = _text(record, "package", where, optional=True)
    if package is not None and not os.path.isabs(package):
        raise RunFileError(
            _("{where}: 'package' is {shown}, not an absolute path", where=where, shown=_shown(package))
        )
    digest = record.get("package_sha256")
    if (package is None and digest is not None) or (
        package is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest))
    ):
        raise RunFileError(
            _(
                "{where}: 'package_sha256' is {shown}, not the SHA-256 of the package it names",
                where=where,
                shown=_shown(digest),
            )
        )
    lr = _field(record, "lr", where)
    if type(lr) not in (int, float) or not (math.isfinite(lr) and lr > 0):
        raise RunFileError(
            _("{where}: 'lr' is {shown}, not a positive number", where=where, shown=_shown(lr))
        )
    info = RunInfo(
        network=network,
        input_size=_int(record, "input_size", where, 1, MAX_INPUTS),
        hidden=tuple(hidden),
        output_size=_int(record, "output_size", where, CLASSES, CLASSES),
        activation=activation,
        package=package,
        seed=_int(record, "seed", where, 0, SEED_MAX),
        iters=_int(record, "iters", where, 1, MAX_ITERS),
        batch_size=_int(record, "batch_size", where, 1, 2**31),
        lr=float(lr),
        data=_data(_field(record, "data", where), where),
        chainrule=_text(record, "chainrule", where) or "",
        final=_final(record.get("final"), where),
        package_sha256=digest,
    )
    if params_bytes(info) > PARAMS_MAX_BYTES:
        raise RunFileError(
            _(
                "{where}: its network has {value} parameters, more than chainrule loads ({value2})",
                where=where,
                value=format(params_bytes(info) // 8, ","),
                value2=format(PARAMS_MAX_BYTES // 8, ","),
            )
        )
    return info


def _data(value: object, where: str) -> DataInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RunFileError(
            _("{where}: 'data' is {shown}, not an object or null", where=where, shown=_shown(value))
        )
    kind = _field(value, "kind", where)
    if kind not in DATA_KINDS:
        raise RunFileError(
            _(
                "{where}: data 'kind' is {shown}, not one of {join}",
                where=where,
                shown=_shown(kind),
                join=", ".join(DATA_KINDS),
            )
        )
    return DataInfo(
        kind=kind,
        path=_text(value, "path", where) or "",
        n_train=_int(value, "n_train", where, 1, 2**28),
        n_test=_int(value, "n_test", where, 1, 2**28),
    )


def _final(value: object, where: str) -> FinalScores | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RunFileError(
            _("{where}: 'final' is {shown}, not an object or null", where=where, shown=_shown(value))
        )
    numbers = {}
    for key, low, high in (
        ("train_acc", 0.0, 1.0),
        ("test_acc", 0.0, 1.0),
        ("loss", 0.0, math.inf),
        ("seconds", 0.0, math.inf),
    ):
        number = _field(value, key, where)
        if number is None and key == "loss":
            numbers[key] = None
            continue
        if type(number) not in (int, float) or not (math.isfinite(number) and low <= number <= high):
            raise RunFileError(
                _(
                    "{where}: final {key} is {shown}, not a number from {low} to {high}",
                    where=where,
                    key=repr(key),
                    shown=_shown(number),
                    low=low,
                    high=high,
                )
            )
        numbers[key] = float(number)
    return FinalScores(iterations=_int(value, "iterations", where, 0, MAX_ITERS), **numbers)


def params_bytes(info: RunInfo) -> int:
    """Bytes of the run's parameters in float64, the widest type they are saved in."""
    return 8 * sum(math.prod(shape) for shape in info.shapes().values())


# --- loading a run folder ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedRun:
    """A run folder read back: its settings, and its network holding the trained weights."""

    folder: Path
    info: RunInfo
    network: Any


def _read(path: Path, limit: int) -> bytes:
    """A run file's bytes; a missing, unreadable, oversized or irregular file is a RunFileError."""
    from chainrule.fs.guard import UnsafeSource, read_regular

    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        raise RunFileError(
            _("{path} is missing: the run folder is not whole; train it again", path=path)
        ) from None
    except UnsafeSource as exc:
        raise RunFileError(_("refusing to read {path}: {reason}", path=path, reason=exc.strerror)) from None
    except OSError as exc:
        raise RunFileError(_("cannot read {path}: {reason}", path=path, reason=exc.strerror or exc)) from None


def read_run_info(folder: Path) -> RunInfo:
    """The checked run.json of a run folder chainrule wrote."""
    from chainrule.runs.folder import MARKER

    if not folder.exists():
        raise RunFileError(_("{folder} does not exist", folder=folder))
    if not folder.is_dir():
        raise RunFileError(
            _("{folder} is not a folder; name a run folder written by 'chainrule train'", folder=folder)
        )
    if not os.path.lexists(folder / MARKER):
        raise RunFileError(
            _("{folder} is not a chainrule run folder (it has no {marker})", folder=folder, marker=MARKER)
        )
    path = folder / RUN_JSON
    if not os.path.lexists(path):
        raise RunFileError(
            _(
                "{path} is missing: the run was saved by an older chainrule, or is not whole; train it again",
                path=path,
            )
        )
    return parse_run_json(_read(path, RUN_JSON_MAX_BYTES), str(path))


def read_params(path: Path, info: RunInfo) -> dict[str, np.ndarray]:
    """The weights in params.npz, each checked against the shapes run.json's network needs."""
    import zipfile

    import numpy as np

    limit = params_bytes(info) + 64 * 1024  # the arrays in float64, plus the archive's headers
    data = _read(path, limit)
    shapes = info.shapes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            # Sizes as the archive declares them, before anything is decompressed.
            if sum(member.file_size for member in archive.infolist()) > limit:
                raise RunFileError(_("{path}: its arrays unpack to more than its network needs", path=path))
            # Each array's header, before its data: a shape or type the network does not take is
            # refused here, never allocated (a header may claim any size).
            for member in archive.infolist():
                name = member.filename.removesuffix(".npy")
                if name in shapes:
                    with archive.open(member) as f:
                        shape, dtype = _npy_header(f)
                    _check_array(path, info, name, shape, dtype)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = set(npz.files)
            if names != set(shapes):
                extra, missing = sorted(names - set(shapes)), sorted(set(shapes) - names)
                detail = "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"unexpected {', '.join(extra[:5])}" if extra else "",
                    )
                    if part
                )
                raise RunFileError(
                    _(
                        "{path} does not hold the arrays of {describe}: {detail}",
                        path=path,
                        describe=info.describe(),
                        detail=detail,
                    )
                )
            params = {name: npz[name] for name in sorted(shapes)}
    except RunFileError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise RunFileError(
            _(
                "{path} is not a readable weights file: {value}",
                path=path,
                value=" ".join(str(exc).split())[:200],
            )
        ) from None
    for name, array in params.items():
        _check_array(path, info, name, array.shape, array.dtype)
        if not np.isfinite(array).all():
            raise RunFileError(_("{path}: {name} holds numbers that are not finite", path=path, name=name))
    if len({a.dtype for a in params.values()}) != 1:
        raise RunFileError(_("{path}: its arrays mix float32 and float64", path=path))
    return params


def _npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and type a .npy stream's header declares; ValueError for a header numpy would not read."""
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    version = npy.read_magic(f)
    if version not in readers:
        raise ValueError(_("its .npy format {version} is not one chainrule reads", version=version))
    shape, _fortran, dtype = readers[version](f)
    return shape, dtype


def _check_array(path: Path, info: RunInfo, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """RunFileError unless an array of params.npz has the shape run.json's network needs, in float32 or float64."""
    import numpy as np

    if shape != info.shapes()[name]:
        raise RunFileError(
            _(
                "{path}: {name} has shape {shape}, but {describe} needs {value}",
                path=path,
                name=name,
                shape=shape,
                describe=info.describe(),
                value=info.shapes()[name],
            )
        )
    if dtype not in (np.float32, np.float64):
        raise RunFileError(
            _("{path}: {name} is {dtype}, not float32 or float64", path=path, name=name, dtype=dtype)
        )


def _package_folder(info: RunInfo) -> Path | None:
    """The folder of the run's package (None: the installed one), refused unless it is the very folder named.

    A run's package is code: it is imported only when it is the very folder named (no link on
    the way), chainrule generated it, and its files are those the run was trained with.
    """
    if info.package is None:
        return None
    if not os.path.isabs(info.package) or os.path.normpath(info.package) != info.package:
        raise RunFileError(
            _(
                "refusing to load the run's package {folder}: its path is not one plain absolute path; train the run again",
                folder=info.package,
            )
        )
    if os.path.realpath(info.package) != info.package:
        raise RunFileError(
            _(
                "refusing to load the run's package {folder}: the path goes through a symbolic link; train the run again",
                folder=info.package,
            )
        )
    return Path(info.package)


def build_network(info: RunInfo, params: dict[str, np.ndarray]) -> Any:
    """The run's network, holding ``params``."""
    from chainrule.packages.importer import import_package
    from chainrule.packages.marker import PackageError

    try:
        two, multi = import_package(
            _package_folder(info), ("two_layer_net", "multi_layer_net"), digest=info.package_sha256
        )
    except PackageError as exc:
        raise RunFileError(
            _("the run's package cannot be loaded: {reason}", reason=message_of(exc))
        ) from None
    dtype = next(iter(params.values())).dtype
    if info.network == "TwoLayerNet":
        network = two.TwoLayerNet(info.input_size, info.hidden[0], info.output_size, dtype=dtype, seed=0)
    else:
        if info.activation not in multi.ACTIVATIONS:
            where = info.package or "the installed generated package"
            raise RunFileError(
                _(
                    "the run's activation {activation} is not in {where}; it has {join}",
                    activation=repr(info.activation),
                    where=where,
                    join=", ".join(multi.ACTIVATIONS),
                )
            )
        network = multi.MultiLayerNet(
            info.input_size, list(info.hidden), info.output_size, info.activation, dtype=dtype, seed=0
        )
    for name, array in params.items():
        network.params[name][...] = array  # in place: the layers hold these same arrays
    return network


def load_run(folder: str | os.PathLike[str]) -> LoadedRun:
    """Read a run folder back: run.json checked, params.npz checked, the network built."""
    path = Path(folder)
    info = read_run_info(path)
    params = read_params(path / PARAMS, info)
    return LoadedRun(path, info, build_network(info, params))


def scores(network: Any, x: np.ndarray, chunk: int = 10_000) -> np.ndarray:
    """The network's scores for ``x``, ``chunk`` rows at a time, as its ``accuracy`` computes them."""
    import numpy as np

    forward = getattr(network, "scores", None) or network.predict
    parts = [forward(x[start : start + chunk]) for start in range(0, x.shape[0], chunk)]
    return np.concatenate(parts) if parts else np.empty((0, CLASSES))
