"""A generated package's marker: the files chainrule wrote with their SHA-256, under this account's seal.

Every package the generator writes holds the marker. Only a folder holding it is ever replaced
(and the generated/ of an installed chainrule never: ``source_checkout``), and only the modules
it lists, with the bytes it lists, are ever imported (``check_package`` reads and checks them;
``chainrule.packages.importer`` runs them).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import site
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule import codegen
from chainrule.codegen.i18n import _

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# Every package the generator writes holds this file; only a folder holding it (or an empty one)
# is ever replaced. JSON, so later versions can add keys (e.g. the spec a package was made from).
# Its "files" maps each file chainrule wrote to its SHA-256: only those bytes are ever imported.
# The package chainrule ships, beside codegen/: the source checkout's generated/, or the installed one.
DEFAULT_OUT = Path(codegen.__file__).resolve().parent.parent / "generated"
MARKER = ".chainrule-package"
MARKER_FORMAT = 1
MARKER_MAX_BYTES = 64 * 1024
# A layers module larger than this is not one chainrule wrote (the shipped one is about 20 KB).
MAX_LAYERS_BYTES = 4 * 2**20
# What this account's key seals in a package's marker (see package_seal).
_SEAL_PURPOSE = "chainrule marker"
MAX_PACKAGE_FILES = 100
MAX_PACKAGE_BYTES = 16 * 2**20
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_PYPROJECT_BYTES = 256 * 1024
_SPEC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.toml")


class PackageError(Exception):
    """A package folder that cannot be used as asked; the message is one line."""


@dataclass(frozen=True)
class Recorded:
    """What a package made from a spec file records of its making: the spec's text, chainrule's version."""

    spec_text: str
    version: str


def chainrule_version() -> str:
    """The installed chainrule's version, as its metadata gives it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chainrule")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# --- the marker -----------------------------------------------------------------------------------


def _record(fields: Mapping[str, object] | None = None) -> dict[str, object]:
    """A marker's record: who made the package and in which marker format, plus any ``fields``."""
    return {"generator": "chainrule", "version": MARKER_FORMAT, **(fields or {})}


def marker_text(fields: Mapping[str, object] | None = None) -> str:
    """The marker's JSON: who made the package and in which marker format, plus any ``fields``."""
    return json.dumps(_record(fields), indent=2, sort_keys=True) + "\n"


def read_marker(folder: Path, dir_fd: int | None = None) -> dict[str, object] | None:
    """The marker of a chainrule package in ``folder``, or None if ``folder`` has none that is valid.

    With ``dir_fd`` (the package folder, open), the marker is read from there and ``folder``
    only names it.
    """
    from chainrule.fs.guard import read_regular

    try:
        raw = read_regular(
            MARKER if dir_fd is not None else folder / MARKER, MARKER_MAX_BYTES, follow=False, dir_fd=dir_fd
        )
    except OSError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("generator") != "chainrule":
        return None
    return data


def content_digest(files: Mapping[str, bytes]) -> str:
    """One SHA-256 of a package: every file's name and bytes, in sorted order, each length-prefixed."""
    h = hashlib.sha256()
    for rel in sorted(files):
        name = rel.encode("utf-8")
        data = files[rel]
        h.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def package_seal(record: Mapping[str, object], create: bool = False) -> str | None:
    """The seal of a marker's record with this account's key: only chainrule, here, writes it.

    It covers the whole record but its seal (every file listed with its SHA-256, the spec it
    names, ...), see ``chainrule.fs.account.record_seal``: a file added to the list, or any other
    change, breaks it. None when this account has no key (and ``create`` is false, or none can be made).
    """
    from chainrule.fs.account import record_seal

    return record_seal(record, _SEAL_PURPOSE, create)


def marker_sealed(marker: Mapping[str, object]) -> bool:
    """True when ``marker`` (a record ``read_marker`` gave) carries this account's seal of all it says."""
    from chainrule.fs.account import record_sealed

    return record_sealed(marker, _SEAL_PURPOSE)


def _modules(listed: Mapping[object, object]) -> dict[str, object]:
    """The modules among the files a marker lists: code, which imports read.

    Anything else it lists (the spec.toml a package keeps) is data, the user's to edit.
    """
    return {
        k: v
        for k, v in listed.items()
        if isinstance(k, str) and _FILE_NAME.fullmatch(k) and k.endswith(".py")
    }


def mark_package(
    folder: Path, names: Iterable[str], fields: Mapping[str, object] | None = None, seal: bool = True
) -> None:
    """Write the marker of a package chainrule just wrote into ``folder``.

    It lists each of ``names`` with its SHA-256 and, with ``seal``, carries this account's seal
    of the whole record (see ``package_seal``): only then does chainrule import the package's
    modules, or replace the files it lists.
    """
    files = {name: (folder / name).read_bytes() for name in sorted(names)}
    record = _record(fields)
    record["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    if seal:
        sealed = package_seal(record, create=True)
        if sealed is not None:
            record["seal"] = sealed
    (folder / MARKER).write_text(marker_text(record), encoding="utf-8")


# --- what a package records ----------------------------------------------------------------------


def recorded_spec(folder: Path, hint: str | None = None) -> Path | None:
    """The spec file a package recorded, or None when its marker names none (or it has no marker).

    The marker is data from disk: a spec name that is not a plain file name in the folder,
    or a recorded spec that is missing, is a PackageError.
    """
    marker = read_marker(folder)
    if marker is None or "spec" not in marker:
        return None
    name = marker["spec"]
    if not isinstance(name, str) or not _SPEC_NAME.fullmatch(name):
        raise PackageError(
            _(
                "{folder}: its {marker} names a spec that is not a file name in the package",
                folder=folder,
                marker=MARKER,
            )
        )
    path = folder / name
    if not path.is_file():
        raise PackageError(
            _(
                "{folder}: its {marker} records the spec {name}, which is missing; {hint}",
                folder=folder,
                marker=MARKER,
                name=name,
                hint=hint or _("name the spec file with --spec FILE"),
            )
        )
    return path


def layer_classes(folder: Path) -> tuple[str, ...]:
    """The classes ``folder/layers.py`` defines at its top level, read with ``ast`` (never run),
    but for the activations' base class ``StepBuffers``, which is no layer."""
    path = folder / "layers.py"
    try:
        with open(path, "rb") as f:
            source = f.read(MAX_LAYERS_BYTES + 1)
    except OSError as exc:
        raise PackageError(
            _(
                "{folder} is not a generated package: cannot read layers.py: {reason}",
                folder=folder,
                reason=exc.strerror,
            )
        ) from None
    if len(source) > MAX_LAYERS_BYTES:
        raise PackageError(
            _(
                "{path}: larger than {limit} MiB; not a generated layers module",
                path=path,
                limit=MAX_LAYERS_BYTES // 2**20,
            )
        )
    try:
        tree = ast.parse(source, str(path))
    except (SyntaxError, ValueError) as exc:
        raise PackageError(_("{path}: not valid Python: {reason}", path=path, reason=exc)) from None
    return tuple(n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name != "StepBuffers")


def require_specs(folder: Path, known: set[str], spec_given: bool, hint: str | None = None) -> None:
    """PackageError when the package holds a layer that none of the specs at hand describes."""
    missing = [name for name in layer_classes(folder) if name not in known]  # no spec at hand describes them
    if not missing:
        return
    names = ", ".join(missing)
    if spec_given:
        raise PackageError(
            _(
                "{folder}: the spec given does not describe {names}; name the spec the package was made from",
                folder=folder,
                names=names,
            )
        )
    raise PackageError(
        _(
            "{folder}: the package records no spec for {names}; {hint}",
            folder=folder,
            names=names,
            hint=hint or _("name its spec file with --spec FILE"),
        )
    )


@dataclass(frozen=True)
class CheckedPackage:
    """A package folder whose files matched its marker: the bytes read, and their one digest."""

    folder: Path  # resolved
    digest: str
    files: Mapping[str, bytes]


def check_package(folder: Path, needed: Iterable[str] = (), sealed: bool = True) -> CheckedPackage:
    """Read and check a generated package's files; PackageError (one line) for anything else.

    Its marker must list its files with their SHA-256 and (``sealed``) hold the seal this
    account's chainrule gave that whole list when it generated them (a marker written by anyone
    else, or changed since, has no valid seal); then each module must have the bytes listed.
    ``needed``: modules (by name) the package must hold besides ``__init__``.
    """
    from chainrule.fs.guard import read_regular

    missing = _("{folder} is not a generated package (no __init__.py)", folder=folder)
    real = Path(os.path.realpath(folder))
    try:
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise PackageError(missing) from None
    try:
        marker = read_marker(real, dir_fd=fd)
        if marker is None:
            raise PackageError(
                _(
                    "{folder} is not a package chainrule generated (it holds no {marker})",
                    folder=folder,
                    marker=MARKER,
                )
            )
        recorded = marker.get("files")
        listed = _modules(recorded) if isinstance(recorded, dict) else {}
        if not 0 < len(listed) <= MAX_PACKAGE_FILES or not all(
            isinstance(v, str) and _SHA256.fullmatch(v) for v in listed.values()
        ):
            raise PackageError(
                _(
                    "{folder}: its {marker} lists no files with their SHA-256 (an older chainrule made it); generate it again",
                    folder=folder,
                    marker=MARKER,
                )
            )
        if sealed and not marker_sealed(marker):
            raise PackageError(
                _(
                    "{folder}: its {marker} does not carry this account's seal (the package was made elsewhere, or by hand); generate it again",
                    folder=folder,
                    marker=MARKER,
                )
            )
        for file in (f"{name}.py" for name in ("__init__", *needed)):
            if file not in listed:
                raise PackageError(
                    _("{folder} is not a generated package (no {needed})", folder=folder, needed=file)
                )
        files: dict[str, bytes] = {}
        total = 0
        for name in sorted(listed):
            try:
                data = read_regular(name, MAX_LAYERS_BYTES, follow=False, dir_fd=fd)
            except OSError as exc:
                raise PackageError(
                    _("{folder}: cannot read {name}: {reason}", folder=folder, name=name, reason=exc.strerror)
                ) from None
            total += len(data)
            if total > MAX_PACKAGE_BYTES or hashlib.sha256(data).hexdigest() != listed[name]:
                raise PackageError(
                    _(
                        "{folder}: {name} is not the file chainrule generated (its bytes changed since); generate the package again",
                        folder=folder,
                        name=name,
                    )
                )
            files[name] = data
    finally:
        os.close(fd)
    return CheckedPackage(real, content_digest(files), files)


# --- where generate may write --------------------------------------------------------------------


def _site_folders() -> list[Path]:
    """Every folder an installer puts packages in, for this interpreter."""
    found = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    found |= set(getattr(site, "getsitepackages", list)())
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user:
        found.add(user)
    return [Path(p).resolve() for p in found]


def source_checkout(generated: Path) -> bool:
    """True when ``generated`` is the generated/ of a chainrule source tree that may be rewritten.

    That is: chainrule's own pyproject.toml beside it, no site-packages folder around it
    (where a normal install puts it), and a folder this user may write.
    """
    generated = generated.resolve()
    root = generated.parent
    if any(part in ("site-packages", "dist-packages") for part in generated.parts):
        return False
    if any(folder == generated or folder in generated.parents for folder in _site_folders()):
        return False
    try:
        with open(root / "pyproject.toml", "rb") as f:
            data = tomllib.loads(f.read(MAX_PYPROJECT_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    project = data.get("project")
    if not isinstance(project, dict) or project.get("name") != "chainrule":
        return False
    writable = generated if generated.exists() else root
    return os.access(writable, os.W_OK)
