"""Render every generated file; write generated/ atomically or check it is up to date."""

from __future__ import annotations

import ctypes
import difflib
import os
import shutil
import subprocess
import tempfile
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

import symbolic
from codegen import model
from codegen.environment import render
from symbolic.shipped import SHIPPED
from symbolic.spec import Spec, SpecError

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "generated"
LINE_LENGTH = 110


class GenerateError(Exception):
    """Generation failed; generated/ was left as it was."""


def render_all(specs: tuple[Spec, ...] = ()) -> dict[str, str]:
    """Every generated file, by its path inside the package, before formatting."""
    cat = model.catalog(specs)
    names = ", ".join(s.derivation for s in cat.layers)
    files = {
        "__init__.py": render("__init__.py.jinja"),
        "layers.py": render("layers.py.jinja", layers=cat.models(), kernels=cat.kernels(), derivations=names),
        "multi_layer_net.py": render("multi_layer_net.py.jinja", activations=cat.activations()),
        "buy_apple.py": render("shopping.py.jinja", **model.shopping_model("apples")),
        "buy_apple_orange.py": render("shopping.py.jinja", **model.shopping_model("apples_oranges")),
        "two_layer_net.py": render(
            "two_layer_net.py.jinja",
            affines=model.two_layer_affines(),
            step=model.two_layer_step(),
            scores=model.two_layer_scores(),
        ),
        "gradient_check.py": render("gradient_check.py.jinja"),
        "train_neuralnet.py": render("train_neuralnet.py.jinja"),
    }
    return dict(sorted(files.items()))


def prove(specs: tuple[Spec, ...] = ()) -> None:
    """Every proof of every derivation, then every rendered layer checked numerically.

    Runs before anything is written: each Identity (safe forms, kernels, matrix
    forms) must be proved by SymPy, and the layers module, run from its rendered
    text, must pass the same comparisons as ``chainrule verify`` (generated vs
    SymPy vs central differences, and the hygiene checks).  GenerateError names
    the first derivation that fails.
    """
    # The layer check is verify's own, so generate and verify cannot disagree.
    from chainrule.verify import failing_derivations

    # The shipped specs are derived with the catalog; derive() would build them a second time.
    shipped = {spec.key for spec in SHIPPED}
    chapter = []
    for name in symbolic.NAMES:
        try:
            chapter += [] if name in shipped else [symbolic.derive(name)]
        except ValueError as exc:  # a derivation's own consistency check
            raise GenerateError(f"{name}: {exc}; nothing was written") from None
    try:
        cat = model.catalog(specs)
    except SpecError as exc:
        raise GenerateError(str(exc)) from None
    proved: set[int] = set()  # a kernel's proofs are often a derivation's identities too: prove once
    for d in {id(d): d for d in (*chapter, *cat.derivations)}.values():
        for identity in d.identities + tuple(p for k in d.kernels for p in k.proofs):
            if id(identity) in proved:
                continue
            proved.add(id(identity))
            if not identity.holds():
                raise GenerateError(f"{d.name}: SymPy cannot prove {identity.reason!r}; nothing was written")
    files = _render(specs)
    layers = types.ModuleType("_chainrule_unproved_layers")
    try:
        exec(compile(files["layers.py"], "layers.py (rendered)", "exec"), layers.__dict__)  # noqa: S102
        failed = failing_derivations(layers, cat)
    except Exception as exc:  # code that cannot run is a failed check, reported in one line
        raise GenerateError(
            f"the rendered layers do not run: {type(exc).__name__}: {exc}; nothing was written"
        ) from None
    if failed:
        raise GenerateError(
            f"{', '.join(failed)}: the rendered layer fails its numeric check; nothing was written"
        )


def _render(specs: tuple[Spec, ...]) -> dict[str, str]:
    """render_all, with a bad spec or template as a one-line GenerateError."""
    try:
        return render_all(specs)
    except SpecError as exc:
        raise GenerateError(str(exc)) from None
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise GenerateError(f"template error: {where}{exc.message}") from None


def _ruff() -> str:
    from ruff.__main__ import find_ruff_bin

    return os.fsdecode(find_ruff_bin())


def format_tree(root: Path) -> None:
    """Sort imports, then format, with the pinned ruff and no user configuration, so output never varies."""
    common = ["--isolated", "--line-length", str(LINE_LENGTH), "--quiet", str(root)]
    for cmd in ([_ruff(), "check", "--select", "I", "--fix", *common], [_ruff(), "format", *common]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            first = (proc.stderr or proc.stdout).strip().splitlines()
            raise GenerateError(
                f"ruff could not format the generated code: {first[0] if first else proc.returncode}"
            )


def build(staging: Path, specs: tuple[Spec, ...] = ()) -> None:
    """Render and format every file into ``staging`` (an empty directory)."""
    try:
        files = render_all(specs)
    except SpecError as exc:
        raise GenerateError(str(exc)) from None
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise GenerateError(f"template error: {where}{exc.message}") from None
    for rel, text in files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    format_tree(staging)


def _swap(a: Path, b: Path) -> bool:
    """Exchange two paths in one step (Linux renameat2); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@dataclass(frozen=True)
class Result:
    """What a generation did or would do."""

    out: Path
    changed: tuple[str, ...]
    diff: str


def generate(
    out: Path = DEFAULT_OUT,
    check: bool = False,
    specs: tuple[Spec, ...] = (),
    accept: Callable[[Path], None] | None = None,
) -> Result:
    """Prove, then render into a temporary sibling of ``out`` and swap it in (or only compare, with ``check``).

    ``accept(staging)`` may inspect the staged package before it replaces ``out``
    (chainrule verifies new layers there); raising GenerateError keeps ``out`` as it was.
    """
    prove(specs)
    out = Path(out).resolve()
    parent = out.parent
    if not parent.is_dir():
        raise GenerateError(f"cannot write {out}: {parent} does not exist")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as exc:
        raise GenerateError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        build(staging, specs)
        if accept is not None:
            accept(staging)
        old, new = _tree(out), _tree(staging)
        changed = tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))
        diff = "".join(
            line
            for k in changed
            for line in difflib.unified_diff(
                old.get(k, b"").decode("utf-8", "replace").splitlines(keepends=True),
                new.get(k, b"").decode("utf-8", "replace").splitlines(keepends=True),
                fromfile=f"{out.name}/{k}",
                tofile=f"{out.name}/{k} (fresh)",
            )
        )
        if not check and changed:
            _install(staging, out)
        return Result(out, changed, diff)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(staging: Path, out: Path) -> None:
    """Put the staged tree where ``out`` is, never leaving a half-written one."""
    for p in staging.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    if out.exists() and _swap(staging, out):
        return  # staging now holds the old tree, removed by the caller
    if out.exists():
        aside = out.with_name(f".{out.name}.old")
        shutil.rmtree(aside, ignore_errors=True)
        out.rename(aside)
        staging.rename(out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        staging.rename(out)
