"""Render every generated file; write generated/ atomically or check it is up to date."""

from __future__ import annotations

import ctypes
import difflib
import json
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

import symbolic
from chainrule.files import pid_alive
from codegen import model
from codegen.environment import render
from codegen.i18n import _, message_of
from symbolic.shipped import SHIPPED
from symbolic.spec import Spec, SpecError

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "generated"
LINE_LENGTH = 110

# Every package the generator writes holds this file; only a folder holding it (or an empty one)
# is ever replaced. JSON, so later versions can add keys (e.g. the spec a package was made from).
MARKER = ".chainrule-package"
MARKER_FORMAT = 1
MARKER_MAX_BYTES = 64 * 1024
# A package we are about to replace is read for the diff; past these it is not ours to read whole.
OLD_TREE_MAX_FILES = 1000
OLD_TREE_MAX_BYTES = 64 * 1024 * 1024
STAGING_TAG = "chainrule-staging"


# A package made from a spec file keeps a copy of it under this name, so that it can be
# verified and regenerated with nothing but its folder.
SPEC_FILE = "spec.toml"
SOURCE_REGENERATE = "change symbolic/ or codegen/templates/, then run `chainrule generate`"


class GenerateError(Exception):
    """Generation failed; generated/ was left as it was."""


@dataclass(frozen=True)
class Recorded:
    """What a package made from a spec file records of its making: the spec's text, chainrule's version."""

    spec_text: str
    version: str


def regenerate_command(package: str) -> str:
    """The header's instruction for a package made from a spec: the command that remakes it."""
    return f"change {SPEC_FILE}, then run `chainrule generate --package {shlex.quote(package)}`"


def render_all(
    specs: tuple[Spec, ...] = (), regenerate: str = SOURCE_REGENERATE, package: str | None = None
) -> dict[str, str]:
    """Every generated file, by its path inside the package, before formatting.

    ``regenerate`` is what the headers tell a reader to do instead of editing; ``package``
    names a package made from a spec, whose script then trains that package's own layers.
    """
    cat = model.catalog(specs)
    names = ", ".join(s.derivation for s in cat.layers)
    r = regenerate
    files = {
        "__init__.py": render("__init__.py.jinja", regenerate=r),
        "layers.py": render(
            "layers.py.jinja", layers=cat.models(), kernels=cat.kernels(), derivations=names, regenerate=r
        ),
        "multi_layer_net.py": render("multi_layer_net.py.jinja", activations=cat.activations(), regenerate=r),
        "buy_apple.py": render("shopping.py.jinja", **model.shopping_model("apples"), regenerate=r),
        "buy_apple_orange.py": render(
            "shopping.py.jinja", **model.shopping_model("apples_oranges"), regenerate=r
        ),
        "two_layer_net.py": render(
            "two_layer_net.py.jinja",
            affines=model.two_layer_affines(),
            step=model.two_layer_step(),
            scores=model.two_layer_scores(),
            scores_buffered=model.two_layer_scores_buffered(),
            regenerate=r,
        ),
        "gradient_check.py": render("gradient_check.py.jinja", regenerate=r),
        "train_neuralnet.py": render("train_neuralnet.py.jinja", package=package, regenerate=r),
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
    from chainrule.verify import failing_derivations, first_overflow, overflow_message

    # The shipped specs are derived with the catalog; derive() would build them a second time.
    shipped = {spec.key for spec in SHIPPED}
    chapter = []
    for name in symbolic.NAMES:
        try:
            chapter += [] if name in shipped else [symbolic.derive(name)]
        except ValueError as exc:  # a derivation's own consistency check
            raise GenerateError(_("{name}: {reason}; nothing was written", name=name, reason=exc)) from None
    try:
        cat = model.catalog(specs)
    except SpecError as exc:
        raise GenerateError(message_of(exc)) from None
    proved: set[int] = set()  # a kernel's proofs are often a derivation's identities too: prove once
    for d in {id(d): d for d in (*chapter, *cat.derivations)}.values():
        for identity in d.identities + tuple(p for k in d.kernels for p in k.proofs):
            if id(identity) in proved:
                continue
            proved.add(id(identity))
            if not identity.holds():
                raise GenerateError(
                    _(
                        "{name}: SymPy cannot prove {reason}; nothing was written",
                        name=d.name,
                        reason=repr(identity.reason),
                    )
                )
    files = _render(specs)
    layers = types.ModuleType("_chainrule_unproved_layers")
    try:
        exec(compile(files["layers.py"], "layers.py (rendered)", "exec"), layers.__dict__)  # noqa: S102
        failed = failing_derivations(layers, cat)
    except Exception as exc:  # code that cannot run is a failed check, reported in one line
        raise GenerateError(
            _(
                "the rendered layers do not run: {error}: {reason}; nothing was written",
                error=type(exc).__name__,
                reason=exc,
            )
        ) from None
    overflow = first_overflow(layers, cat) if failed else None
    if overflow is not None:
        raise GenerateError(overflow_message(*overflow))
    if failed:
        raise GenerateError(
            _(
                "{layers}: the rendered layer fails its numeric check; nothing was written",
                layers=", ".join(failed),
            )
        )


def _render(specs: tuple[Spec, ...]) -> dict[str, str]:
    """render_all, with a bad spec or template as a one-line GenerateError."""
    try:
        return render_all(specs)
    except SpecError as exc:
        raise GenerateError(message_of(exc)) from None
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise GenerateError(_("template error: {where}{message}", where=where, message=exc.message)) from None


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
                _(
                    "ruff could not format the generated code: {reason}",
                    reason=first[0] if first else proc.returncode,
                )
            )


def marker_text(fields: Mapping[str, object] | None = None) -> str:
    """The marker's JSON: who made the package and in which marker format, plus any ``fields``."""
    data = {"generator": "chainrule", "version": MARKER_FORMAT, **(fields or {})}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_marker(folder: Path) -> dict[str, object] | None:
    """The marker of a chainrule package in ``folder``, or None if ``folder`` has none that is valid."""
    path = folder / MARKER
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MARKER_MAX_BYTES:
            return None
        raw = os.read(fd, MARKER_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("generator") != "chainrule":
        return None
    return data


def build(
    staging: Path, specs: tuple[Spec, ...] = (), recorded: Recorded | None = None, package: str = ""
) -> None:
    """Render and format every file into ``staging`` (an empty directory).

    With ``recorded``, the package called ``package`` keeps its spec file and says in its
    marker which chainrule made it and where that spec is.
    """
    fields = None if recorded is None else {"chainrule": recorded.version, "spec": SPEC_FILE}
    (staging / MARKER).write_text(marker_text(fields), encoding="utf-8")
    if recorded is not None:
        (staging / SPEC_FILE).write_text(recorded.spec_text, encoding="utf-8")
    try:
        files = (
            render_all(specs) if recorded is None else render_all(specs, regenerate_command(package), package)
        )
    except SpecError as exc:
        raise GenerateError(message_of(exc)) from None
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise GenerateError(_("template error: {where}{message}", where=where, message=exc.message)) from None
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
    """Every file under ``root`` by relative path; links and special files stand as a placeholder, never read."""
    if not root.is_dir() or root.is_symlink():
        return {}
    files: dict[str, bytes] = {}
    total = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in names:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                files[rel] = b"<not a regular file>"
                continue
            total += info.st_size
            if len(files) >= OLD_TREE_MAX_FILES or total > OLD_TREE_MAX_BYTES:
                raise GenerateError(
                    _(
                        "refusing to replace {root}: it holds more than {files} files or {mib} MiB, far more than a generated package",
                        root=root,
                        files=OLD_TREE_MAX_FILES,
                        mib=OLD_TREE_MAX_BYTES // 2**20,
                    )
                )
            files[rel] = path.read_bytes()
    return dict(sorted(files.items()))


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
    recorded: Recorded | None = None,
) -> Result:
    """Prove, then render into a temporary sibling of ``out`` and swap it in (or only compare, with ``check``).

    ``accept(staging)`` may inspect the staged package before it replaces ``out``
    (chainrule verifies new layers there); raising GenerateError keeps ``out`` as it was.
    ``recorded``: the package is made from a spec file and keeps it (see ``build``).
    """
    out = check_out(Path(out))
    prove(specs)
    clean_staging(out)
    staging = _make_staging(out)
    try:
        build(staging, specs, recorded, out.name)
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
    if out.exists() and _swap(staging, out):
        return  # staging now holds the old tree, removed by the caller
    if out.exists():
        aside = _staging_name(out)
        out.rename(aside)
        staging.rename(out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        staging.rename(out)


# ---------------------------------------------------------------- where a package may go


def check_out(out: Path) -> Path:
    """``out`` made absolute, or GenerateError when it is not a place the generator may replace.

    Only the path and the marker file are looked at: a folder that is refused is never read.
    """
    out = Path(os.path.abspath(out))
    if out.name in ("", ".", ".."):
        raise GenerateError(
            _("refusing to write {out}: the root folder is never a generated package", out=out)
        )
    if not out.parent.is_dir():
        raise GenerateError(_("cannot write {out}: {parent} does not exist", out=out, parent=out.parent))
    if out.is_symlink():
        raise GenerateError(
            _("refusing to write {out}: it is a symbolic link; name the folder itself", out=out)
        )
    out = out.parent.resolve() / out.name
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the current folder was deleted: nothing of it can be under out
        cwd = None
    if cwd is not None and (out == cwd or out in cwd.parents):
        raise GenerateError(_("refusing to write {out}: it is the current folder or holds it", out=out))
    if os.path.ismount(out):
        raise GenerateError(_("refusing to write {out}: it is a mount point", out=out))
    if not out.exists():
        return out
    if not out.is_dir():
        raise GenerateError(_("refusing to write {out}: it exists and is not a folder", out=out))
    if read_marker(out) is None and _has_entries(out) and out != DEFAULT_OUT.resolve():
        raise GenerateError(
            _(
                "refusing to write {out}: it is not empty and holds no {marker} (not a package chainrule generated); name a new or empty folder",
                out=out,
                marker=MARKER,
            )
        )
    return out


def _has_entries(folder: Path) -> bool:
    """True if ``folder`` holds anything at all (reads one entry, not the listing)."""
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError as exc:
        raise GenerateError(
            _("cannot read {path}: {reason}", path=folder, reason=exc.strerror or exc)
        ) from None


def _staging_name(out: Path) -> Path:
    """A fresh sibling name that says who made it (this process) and for which package."""
    return out.with_name(f".{out.name}.{STAGING_TAG}-{os.getpid()}-{secrets.token_hex(8)}")


def _make_staging(out: Path) -> Path:
    """Create the staging folder with the usual permissions (mode 0777 less the umask) and mark it."""
    for _attempt in range(100):
        staging = _staging_name(out)
        try:
            staging.mkdir(mode=0o777)
        except FileExistsError:
            continue
        except OSError as exc:
            raise GenerateError(
                _("cannot write {path}: {reason}", path=out, reason=exc.strerror or exc)
            ) from None
        return staging
    raise GenerateError(_("cannot write {out}: no free name for a staging folder beside it", out=out))


def clean_staging(out: Path) -> list[Path]:
    """Remove the staging folders a killed generation of ``out`` left beside it; return them.

    Only folders with the generator's naming pattern, of a process that no longer runs, and
    either holding the marker or empty, are removed.
    """
    pattern = re.compile(rf"\.{re.escape(out.name)}\.{STAGING_TAG}-(\d+)-[0-9a-f]{{16}}")
    removed = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if not found or not entry.is_dir(follow_symlinks=False) or pid_alive(int(found[1])):
            continue
        path = Path(entry.path)
        try:
            if read_marker(path) is not None:
                shutil.rmtree(path)
            elif not any(path.iterdir()):
                path.rmdir()
            else:
                continue
        except OSError:
            continue  # what cannot be removed now is left for a later run
        removed.append(path)
    return removed
