"""Generated packages as the command line finds them: what they record, where they may be rewritten.

A package made with ``generate --spec FILE --out DIR`` keeps a copy of its spec and
says so in its marker, so ``verify --package DIR``, ``train --package DIR`` and
``generate --package DIR`` need nothing but the folder.  The generated/ of an
installed chainrule is never rewritten: only a source checkout's is.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import site
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from codegen.i18n import _, message_of

if TYPE_CHECKING:
    from codegen.generate import Recorded
    from symbolic.spec import Spec

# A layers module larger than this is not one chainrule wrote (the shipped one is about 20 KB).
MAX_LAYERS_BYTES = 4 * 2**20
MAX_PYPROJECT_BYTES = 256 * 1024
_SPEC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.toml")


class PackageError(Exception):
    """A package folder that cannot be used as asked; the message is one line."""


def chainrule_version() -> str:
    """The installed chainrule's version, as its metadata gives it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chainrule")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# --- what a package records ----------------------------------------------------------------------


def recorded_spec(folder: Path, hint: str | None = None) -> Path | None:
    """The spec file a package recorded, or None when its marker names none (or it has no marker).

    The marker is data from disk: a spec name that is not a plain file name in the folder,
    or a recorded spec that is missing, is a PackageError.
    """
    from codegen.generate import MARKER, read_marker

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
    """The classes ``folder/layers.py`` defines at its top level, read with ``ast`` (never run)."""
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
    return tuple(n.name for n in tree.body if isinstance(n, ast.ClassDef))


def unspecified_layers(folder: Path, known: set[str]) -> list[str]:
    """The layer classes of a package that no spec or shipped derivation describes."""
    return [name for name in layer_classes(folder) if name not in known]


def require_specs(folder: Path, known: set[str], spec_given: bool, hint: str | None = None) -> None:
    """PackageError when the package holds a layer that none of the specs at hand describes."""
    missing = unspecified_layers(folder, known)
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


# --- importing a package from its folder ---------------------------------------------------------


def import_package(folder: Path) -> str:
    """Import a generated package from any folder under a private name; return the name."""
    name = f"_chainrule_package_{abs(hash(str(folder.resolve())))}"
    if not (folder / "__init__.py").is_file():
        raise ImportError(_("{folder} is not a generated package (no __init__.py)", folder=folder))
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(_("{folder} is not a generated package", folder=folder))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a half-imported package must not be found by the next import
        raise
    return name


def package_module(folder: Path | None, name: str) -> ModuleType:
    """Module ``name`` of the package in ``folder`` (of generated/ when None); any failure is one line."""
    if folder is None:
        return importlib.import_module(f"generated.{name}")
    for needed in ("__init__.py", f"{name}.py"):
        if not (folder / needed).is_file():
            raise PackageError(
                _("{folder} is not a generated package (no {needed})", folder=folder, needed=needed)
            )
    try:
        return importlib.import_module(f"{import_package(folder)}.{name}")
    except Exception as exc:  # noqa: BLE001 - the package's code may fail in any way; say how in one line
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise PackageError(
            _("{folder}: the package does not import: {detail}", folder=folder, detail=detail)
        ) from None


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


def refuse_installed(generated: Path) -> None:
    """PackageError unless ``generated`` belongs to a source checkout (see ``source_checkout``)."""
    if not source_checkout(generated):
        raise PackageError(
            _(
                "{folder} is the generated/ of an installed chainrule, not of a source checkout: refusing to modify it; write a package elsewhere with --out DIR",
                folder=generated.resolve(),
            )
        )


@dataclass(frozen=True)
class GeneratePlan:
    """What ``chainrule generate`` is to do: where, from which spec file, and whether to record it."""

    out: Path
    spec: str | None
    record: bool  # the package keeps its spec (made with --spec, or regenerated from a recorded one)


def plan_generate(
    out: str | None, spec: str | None, package: str | None, default_out: Path, check: bool = False
) -> GeneratePlan:
    """Check the options of ``generate`` against each other and against the folders they name."""
    from codegen.generate import MARKER, read_marker

    if package is not None:
        if out is not None:
            raise PackageError(
                _("--package names the package to regenerate in place; it cannot go with --out")
            )
        if spec is not None:
            raise PackageError(
                _(
                    "--package regenerates from the spec the package records; for another spec use --spec FILE --out DIR"
                )
            )
        folder = Path(package)
        if not folder.is_dir() or read_marker(folder) is None:
            raise PackageError(
                _(
                    "{folder} is not a package chainrule generated (it holds no {marker})",
                    folder=folder,
                    marker=MARKER,
                )
            )
        remake = _("make it again with --spec FILE --out {folder}", folder=folder)
        recorded = recorded_spec(folder, remake)
        if recorded is None:
            from codegen.model import catalog

            require_specs(folder, {s.cls for s in catalog().layers}, spec_given=False, hint=remake)
        target = folder
        plan = GeneratePlan(folder, None if recorded is None else str(recorded), recorded is not None)
    else:
        if spec is not None and out is None:
            raise PackageError(_("--spec writes a new package: name its folder with --out DIR"))
        target = Path(out) if out is not None else default_out
        plan = GeneratePlan(target, spec, spec is not None)
    if not check and target.resolve() == default_out.resolve():
        refuse_installed(default_out)
    return plan


def recorded_from(spec: str | None) -> Recorded:
    """What a package made from the spec file ``spec`` records: its text and chainrule's version."""
    from chainrule.specfile import read_spec_text
    from codegen.generate import Recorded
    from symbolic.spec import SpecError

    if spec is None:
        raise PackageError(_("a package that records its spec needs a spec file"))
    try:
        text = read_spec_text(Path(spec))
    except SpecError as exc:
        raise PackageError(message_of(exc)) from None
    return Recorded(text, chainrule_version())


# --- what verify checks --------------------------------------------------------------------------


def verify_specs(package: str | None, spec: str | None) -> str | None:
    """The spec file ``verify`` reads: the one named with --spec, else the one the package records."""
    if spec is not None or package is None:
        return spec
    path = recorded_spec(Path(package))
    return None if path is None else str(path)


def require_complete(package: str | None, specs: tuple[Spec, ...], given: bool) -> None:
    """PackageError when the package (generated/ when None) holds a layer no derivation at hand describes.

    Such a layer would otherwise go unchecked while verify says every check passes.
    """
    from codegen.generate import DEFAULT_OUT
    from codegen.model import catalog

    folder = Path(package) if package is not None else DEFAULT_OUT
    require_specs(folder, {s.cls for s in catalog(specs).layers}, spec_given=given)
