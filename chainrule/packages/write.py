"""Prove, then write a rendered package atomically beside the old one, or check it is up to date."""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import stat
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from chainrule import symbolic
from chainrule.checks.gradients import failing_derivations, first_overflow, overflow_message
from chainrule.codegen.generate import SPEC_FILE, GenerateError, catalog, package_files, rendered
from chainrule.codegen.i18n import _, message_of
from chainrule.fs.atomic import exchange, fsync_dir
from chainrule.fs.guard import read_regular, shown
from chainrule.fs.reaper import own_name, reap
from chainrule.packages.marker import (
    DEFAULT_OUT,
    MARKER,
    Recorded,
    mark_package,
    marker_sealed,
    read_marker,
    source_checkout,
)
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import Spec, SpecError

# A package we are about to replace is read for the diff; past these it is not ours to read whole.
OLD_TREE_MAX_FILES = 1000
OLD_TREE_MAX_BYTES = 64 * 1024 * 1024
STAGING_TAG = "chainrule-staging"
# Python's own byte-code caches, made when the package is imported: the only files inside a
# package that chainrule replaces without having written them.
PYCACHE = "__pycache__"


def prove(specs: tuple[Spec, ...] = ()) -> None:
    """Every proof of every derivation, then every rendered layer checked numerically.

    Runs before anything is written: each Identity (safe forms, kernels, matrix
    forms) must be proved by SymPy, and the layers module, run from its rendered
    text, must pass the same comparisons as ``chainrule verify`` (generated vs
    SymPy vs central differences, and the hygiene checks).  GenerateError names
    the first derivation that fails.
    """
    # The shipped specs are derived with the catalog; derive() would build them a second time.
    shipped = {spec.key for spec in SHIPPED}
    chapter = []
    for name in symbolic.NAMES:
        try:
            chapter += [] if name in shipped else [symbolic.derive(name)]
        except ValueError as exc:  # a derivation's own consistency check
            raise GenerateError(_("{name}: {reason}; nothing was written", name=name, reason=exc)) from None
    try:
        cat = catalog(specs)
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
    files = rendered(specs)
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


def build(
    staging: Path,
    specs: tuple[Spec, ...] = (),
    recorded: Recorded | None = None,
    package: str = "",
    seal: bool = True,
) -> None:
    """Write every file of the package, rendered and formatted, into ``staging`` (an empty directory).

    With ``recorded``, the package called ``package`` keeps its spec file and says in its
    marker which chainrule made it and where that spec is.  ``seal``: the marker carries this
    account's seal, without which no chainrule command imports the package or replaces its files.
    """
    fields: dict[str, object] = {} if recorded is None else {"chainrule": recorded.version, "spec": SPEC_FILE}
    files = package_files(specs, None if recorded is None else package)
    # First a sealed marker that names the files about to be written, so that a staging folder
    # left by a killed generation is known as chainrule's, with what it may hold; the full one
    # is written last.
    writing = sorted({*files, *([SPEC_FILE] if recorded is not None else [])})
    mark_package(staging, [], {**fields, "writing": writing})
    if recorded is not None:
        (staging / SPEC_FILE).write_text(recorded.spec_text, encoding="utf-8")
    for rel, text in files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    # Last, once every file is final: the marker lists what chainrule wrote, each with its SHA-256,
    # so that a later generation replaces these files and nothing else, and (``seal``) seals the
    # modules among them: the only code chainrule will import from the package.
    mark_package(staging, [rel for rel in _tree(staging) if rel != MARKER], fields, seal=seal)


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
                raise _too_large(root)
            files[rel] = path.read_bytes()
    return dict(sorted(files.items()))


def _too_large(root: Path | str) -> GenerateError:
    return GenerateError(
        _(
            "refusing to replace {root}: it holds more than {files} files or {mib} MiB, far more than a generated package",
            root=root,
            files=OLD_TREE_MAX_FILES,
            mib=OLD_TREE_MAX_BYTES // 2**20,
        )
    )


@dataclass(frozen=True)
class Result:
    """What a generation did or would do."""

    out: Path
    changed: tuple[str, ...]
    diff: str
    kept: Path | None = None  # where files that appeared in the old tree at the last moment were kept


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
    A package is replaced only while it holds nothing but what chainrule wrote into it
    (``check_ours``): checked first, again once the new package is ready, and on the old
    tree once it is swapped out (then swapped back if anything else appeared).
    """
    out = check_out(Path(out))
    kept = None
    # The recorded spec is the user's to edit: changed, it is no loss when it is the spec being generated from.
    spec_file = {} if recorded is None else {SPEC_FILE: recorded.spec_text.encode("utf-8")}
    if not check:
        check_ours(out, spec_file)
    prove(specs)
    clean_staging(out)
    staging = _make_staging(out)
    handed = False  # once _install has it, staging may hold the old tree: only _install removes it
    try:
        # generated/ is committed: the same bytes everywhere, so no account's seal (it is imported as chainrule)
        build(staging, specs, recorded, out.name, seal=out != DEFAULT_OUT.resolve())
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
            check_ours(out, new)  # again: generating took seconds, and the folder is the user's to use
            handed = True
            kept = _install(staging, out, new)
        return Result(out, changed, diff, kept)
    finally:
        if not handed:
            shutil.rmtree(staging, ignore_errors=True)  # only ever our own new tree


def _install(staging: Path, out: Path, new: Mapping[str, bytes] | None = None) -> Path | None:
    """Put the staged tree where ``out`` is, never leaving a half-written one; ``staging`` is gone after.

    Returns the folder that keeps what appeared in the old tree after its last check, if anything did.

    A folder that is replaced keeps its permissions (a package in a ``mkdir -m 700`` folder stays
    private). The old tree, once moved out of the way, is checked once more and put back when
    something that is not chainrule's appeared in it; otherwise only chainrule's files are removed
    from it, one by one, so that nothing chainrule did not write is ever deleted.
    """
    old: Path | None = None  # where the old tree is while it is out of the way
    try:
        try:
            info = os.lstat(out)
        except FileNotFoundError:
            os.rename(staging, out)  # over nothing (or over an empty folder made meanwhile)
            fsync_dir(out.parent)
            return None
        os.chmod(staging, stat.S_IMODE(info.st_mode))
        if exchange(staging, out):
            old = staging
        else:  # no exchange on this system: the old tree goes aside first, then the new one in
            old = _staging_name(out)
            os.rename(out, old)
        try:
            listed = check_ours(old, new or {}, shown_as=out)
        except GenerateError:
            if old == staging:
                exchange(staging, out)  # the user's tree goes back where it was, untouched
            else:
                os.rename(old, out)
            old = None
            raise
        if old != staging:
            os.rename(staging, out)
        fsync_dir(out.parent)
    except OSError as exc:
        if old is not None and old != staging and not out.exists():
            os.rename(old, out)  # the new tree could not be moved in: the old one goes back
            old = None
        raise GenerateError(
            _("cannot write {path}: {reason}", path=shown(out), reason=exc.strerror or exc)
        ) from None
    finally:
        if old is None:
            shutil.rmtree(staging, ignore_errors=True)  # holds only the new tree, never put in place
    return _remove_ours(old, listed)


# What a package holds when its marker lists no files (a package made before markers did).
STANDARD_FILES = frozenset(
    (
        "__init__.py",
        "layers.py",
        "multi_layer_net.py",
        "buy_apple.py",
        "buy_apple_orange.py",
        "two_layer_net.py",
        "gradient_check.py",
        "train_neuralnet.py",
        SPEC_FILE,
    )
)


def _listed(folder: Path, unsealed_ok: bool = False) -> dict[str, str | None] | None:
    """What chainrule wrote into ``folder`` as its marker lists it: each file with its SHA-256 (None: any bytes).

    Only a marker that carries this account's seal of all it lists is trusted (see
    ``chainrule.packages.package_seal``); None for any other, or for none. ``unsealed_ok``: the
    generated/ of the source checkout, committed without a seal, whose history is in version
    control; there a marker that lists no files, or none at all, stands for the standard ones.
    The files a sealed marker names as being written (a generation killed half way) may hold any
    bytes.
    """
    marker = read_marker(folder)
    if not unsealed_ok and (marker is None or not marker_sealed(marker)):
        return None
    files = None if marker is None else marker.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return dict.fromkeys(STANDARD_FILES) if unsealed_ok else None
    listed: dict[str, str | None] = dict(files)
    writing = marker.get("writing")
    if isinstance(writing, list):
        listed.update((name, None) for name in writing if isinstance(name, str) and name not in listed)
    return listed


def _is_bytecode(rel: str, info: os.stat_result) -> bool:
    parts = rel.split("/")
    return (
        len(parts) >= 2 and parts[-2] == PYCACHE and parts[-1].endswith(".pyc") and stat.S_ISREG(info.st_mode)
    )


def foreign_entry(
    folder: Path,
    same: Mapping[str, bytes] | None = None,
    changes_allowed: bool = False,
    unsealed_ok: bool = False,
) -> tuple[str, str] | None:
    """The first thing in ``folder`` that chainrule did not write, as (relative path, why), or None.

    ``why`` is "foreign" (not listed in the marker), "changed" (listed, but its bytes differ from
    the SHA-256 the marker records, or it is no longer a regular file), "mount" (on another file
    system: never entered), "large" (more entries than any package has: not read further),
    "unsealed" (its marker does not carry this account's seal, so what it lists is not trusted;
    see ``_listed``) or "unmarked" (no marker at all, in a folder that is not empty).
    A changed file whose bytes are ``same[path]`` (what the new package writes there) loses
    nothing and counts as chainrule's. Byte-code caches (``__pycache__/*.pyc``) count as chainrule's. With
    ``changes_allowed`` a changed file counts as chainrule's (generated/ of a source checkout,
    whose history is in version control). Links are never followed.
    """
    return _foreign(folder, same, changes_allowed, unsealed_ok)[0]


def _foreign(
    folder: Path,
    same: Mapping[str, bytes] | None = None,
    changes_allowed: bool = False,
    unsealed_ok: bool = False,
) -> tuple[tuple[str, str] | None, dict[str, str | None]]:
    """``foreign_entry``, and the files the marker lists (empty when it lists none that are trusted)."""
    try:
        top = os.lstat(folder)
    except FileNotFoundError:
        return None, {}
    if not stat.S_ISDIR(top.st_mode):
        return ("", "foreign"), {}
    recorded = _listed(folder, unsealed_ok)
    if recorded is None:
        if not _has_entries(folder):
            return None, {}  # an empty folder: nothing to lose
        return ("", "unmarked" if read_marker(folder) is None else "unsealed"), {}
    known = {MARKER, *recorded}
    folders = {rel.rsplit("/", 1)[0] for rel in known if "/" in rel}
    folders |= {"/".join(f.split("/")[:i]) for f in list(folders) for i in range(1, f.count("/") + 1)}
    pending, seen = [""], 0
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(folder / rel_dir if rel_dir else folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return (rel_dir or ".", "foreign"), recorded
        for entry in entries:
            seen += 1
            if seen > OLD_TREE_MAX_FILES:
                return ("", "large"), recorded
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            info = entry.stat(follow_symlinks=False)
            if info.st_dev != top.st_dev:
                return (rel, "mount"), recorded
            if stat.S_ISDIR(info.st_mode):
                if entry.name == PYCACHE or rel in folders:
                    pending.append(rel)
                    continue
                return (rel, "foreign"), recorded
            if _is_bytecode(rel, info):
                continue
            if rel not in known:
                return (rel, "foreign"), recorded
            if not stat.S_ISREG(info.st_mode):
                return (rel, "changed"), recorded  # a link or a special file where chainrule wrote a file
            if rel == MARKER or changes_allowed or recorded[rel] is None:
                continue
            try:
                data = read_regular(entry.path, OLD_TREE_MAX_BYTES)
            except OSError:  # UnsafeSource too: it became something else, or grew past any package's size
                return (rel, "changed"), recorded
            if hashlib.sha256(data).hexdigest() != recorded[rel] and (same or {}).get(rel) != data:
                return (rel, "changed"), recorded
    return None, recorded


def check_ours(
    folder: Path, same: Mapping[str, bytes] | None = None, shown_as: Path | None = None
) -> dict[str, str | None]:
    """GenerateError naming the first thing in the package ``folder`` that chainrule did not write.

    Nothing is changed either way; returns the files its marker lists (see ``_listed``), the only
    ones chainrule may remove. ``shown_as`` is the package's own path when ``folder`` is its old
    tree moved aside. A marker without this account's seal is not trusted, but in generated/ of
    the source checkout, which may also hold changed files (see ``foreign_entry``), never files
    of another name.
    """
    out = shown_as or folder
    source = out == DEFAULT_OUT.resolve()
    found, listed = _foreign(
        folder, same, changes_allowed=source, unsealed_ok=source and source_checkout(out)
    )
    if found is None:
        return listed
    rel, why = found
    path = shown(out / rel) if rel else shown(out)
    if why == "large":
        raise _too_large(shown(out))
    if why == "unsealed":
        message = _(
            "refusing to replace {out}: its {marker} was not sealed by chainrule on this account, so the files it lists may not be chainrule's; move the folder away or delete it yourself",
            out=shown(out),
            marker=MARKER,
        )
    elif why == "unmarked":
        message = _(
            "refusing to write {out}: it is not empty and holds no {marker} (not a package chainrule generated); name a new or empty folder",
            out=shown(out),
            marker=MARKER,
        )
    elif why == "mount":
        message = _("refusing to replace {out}: {path} is on another file system", out=shown(out), path=path)
    elif why == "changed":
        message = _(
            "refusing to replace {out}: {path} changed since chainrule wrote it; save your changes elsewhere and remove it first",
            out=shown(out),
            path=path,
        )
    else:
        message = _(
            "refusing to replace {out}: chainrule did not write {path}; move it out of the package first",
            out=shown(out),
            path=path,
        )
    raise GenerateError(message)


def _same_device(path: str, device: int) -> bool:
    """``path`` is a folder itself (not a link) on the file system ``device``."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_dev == device


def _remove_ours(old: Path, listed: Mapping[str, object] | None = None) -> Path | None:
    """Remove what chainrule wrote from the swapped-out tree ``old``: listed files, byte code, then empty folders.

    ``listed``: the files its marker listed when it was last checked (by default, what its marker
    lists now, if it carries this account's seal; nothing is removed otherwise). Anything else
    that appeared in it since it was checked stays, in ``old``, which is returned (None once it
    is gone).
    """
    if listed is None:
        listed = _listed(old)
        if listed is None:
            return old
    known = {MARKER, *listed}
    folders = []
    device = os.lstat(old).st_dev
    for folder, dirs, names in os.walk(old, topdown=True):
        # never into a link or onto another file system
        dirs[:] = [d for d in dirs if _same_device(os.path.join(folder, d), device)]
        rel_dir = Path(folder).relative_to(old).as_posix()
        folders.append(folder)
        for name in names:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = os.path.join(folder, name)
            if rel == MARKER:
                continue  # last: a folder left half removed is still known as chainrule's
            try:
                info = os.lstat(path)
                if rel in known or _is_bytecode(rel, info):
                    os.unlink(path)
            except OSError:
                continue
    try:
        if stat.S_ISREG(os.lstat(old / MARKER).st_mode):
            os.unlink(old / MARKER)
    except OSError:
        pass
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            continue  # not empty: something not chainrule's, kept
    return old if os.path.lexists(old) else None


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
    """A fresh sibling name that says who made it (this process) and for which package (see ``own_name``)."""
    return out.with_name(own_name(out.name, STAGING_TAG))


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

    Only folders whose name this account's chainrule made for ``out`` (``own_name``), of a
    process that no longer runs, and either empty or holding a marker with this account's seal
    and nothing chainrule did not write, are removed (file by file, as ``_remove_ours``). Beside
    generated/ of the source checkout an unsealed marker is trusted, as in generated/ itself.
    """
    unsealed_ok = out == DEFAULT_OUT.resolve() and source_checkout(out)

    def empty(path: Path) -> list[Path]:
        try:
            found, listed = _foreign(path, unsealed_ok=unsealed_ok)
            if found is not None:
                return []  # not only chainrule's, or not provably: left as it is
            if listed or (path / MARKER).exists():
                _remove_ours(path, listed)
            else:
                path.rmdir()
        except GenerateError:
            return []  # what cannot be removed now is left for a later run (so is an OSError: reap)
        return [] if path.exists() else [path]

    return reap(out.parent, STAGING_TAG, empty, target=out.name)
