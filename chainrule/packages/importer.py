"""The one way chainrule imports a generated package from a folder: checked first, every time.

A package folder is data until proved chainrule's: ``check_package`` reads the files its marker
lists, once, through the open folder, and checks their SHA-256 (and this account's seal of the
list); only those bytes are run. Nothing else in the folder is looked at (no __pycache__, no
extension module, no sub-package of the same name): the modules are compiled from the checked
bytes and found by a finder of our own, never by a search of the folder.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule.codegen.i18n import _
from chainrule.packages.marker import DEFAULT_OUT, CheckedPackage, PackageError, check_package

if TYPE_CHECKING:
    from types import ModuleType

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


class _Loader(importlib.abc.Loader):
    """Runs a module from bytes already checked; never reads the folder again, never writes bytecode."""

    def __init__(self, source: bytes, origin: str) -> None:
        self.source, self.origin = source, origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(compile(self.source, self.origin, "exec", dont_inherit=True), module.__dict__)  # noqa: S102

    def get_source(self, fullname: str) -> str:
        return self.source.decode("utf-8", "replace")


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules of the packages imported by ``import_package``, and nothing else under their names."""

    def __init__(self) -> None:
        self.packages: dict[str, CheckedPackage] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        top, _dot, rest = fullname.partition(".")
        package = self.packages.get(top)
        if package is None:
            return None
        if not rest:
            file, is_package = "__init__.py", True
        elif _MODULE.fullmatch(rest) and f"{rest}.py" in package.files and rest != "__init__":
            file, is_package = f"{rest}.py", False
        else:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        origin = str(package.folder / file)
        spec = importlib.util.spec_from_loader(
            fullname, _Loader(package.files[file], origin), origin=origin, is_package=is_package
        )
        if spec is not None:
            spec.has_location = True
        return spec


_FINDER = _Finder()
_IMPORTED: dict[Path, CheckedPackage] = {}


def import_package(
    folder: Path | None, needed: tuple[str, ...], digest: str | None = None, sealed: bool = True
) -> tuple[ModuleType, ...]:
    """Modules ``needed`` of the package in ``folder``: checked (see ``check_package``), then imported
    under a private name. None: the modules of the installed generated/, chainrule's own.

    ``digest``: the package must be exactly this one (a run records the package it was trained
    with). Every failure, the package's own code failing included, is a one-line PackageError;
    nothing of a package that fails a check is run.
    """
    if (
        folder is None
    ):  # chainrule's own generated/: its files as its marker lists them (unsealed, as shipped)
        check_package(DEFAULT_OUT, needed, sealed=False)
        return tuple(importlib.import_module(f"chainrule.generated.{module}") for module in needed)
    checked = check_package(folder, needed, sealed)
    if digest is not None and checked.digest != digest:
        raise PackageError(
            _(
                "{folder} is not the package the run was trained with (its files changed since); train the run again",
                folder=folder,
            )
        )
    key = hashlib.sha256(f"{checked.folder}\0{checked.digest}".encode("utf-8", "surrogateescape"))
    name = f"_chainrule_package_{key.hexdigest()[:16]}"
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    _FINDER.packages[name] = checked
    try:
        importlib.import_module(name)
        for module in needed:
            importlib.import_module(f"{name}.{module}")
    except Exception as exc:  # noqa: BLE001 - the package's code may fail in any way; say how in one line
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]  # a half-imported package must not be found by the next import
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise PackageError(
            _("{folder}: the package does not import: {detail}", folder=folder, detail=detail)
        ) from None
    _IMPORTED[checked.folder] = checked
    return tuple(sys.modules[f"{name}.{module}"] for module in needed)


def imported_digest(folder: Path) -> str:
    """The digest of the package last imported from ``folder`` (what a run trained with it records)."""
    checked = _IMPORTED.get(Path(os.path.realpath(folder)))
    return checked.digest if checked is not None else check_package(folder).digest
