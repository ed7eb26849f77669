"""Run folders: claimed exclusively, marked as chainrule's, and filled with one whole set at a time.

A run folder holds a marker file and, once a run is saved, its outputs (``run.json`` among
them, the settings that load it again). A new
set is written into a hidden sibling folder and exchanged with the run folder in one
step (Linux ``renameat2(RENAME_EXCHANGE)``), so a reader sees the old set or the new
one, never a mix; the old set, now in the sibling, is then removed file by file.

The hidden siblings carry the id of the process that made them (``.NAME.staging-PID-HEX``),
and a claimed folder's marker names it too: what a killed run left is known by its process
being gone, and the next run there removes it (chainrule's own files only) and says so.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chainrule.codegen.i18n import _
from chainrule.fs.atomic import exchange, fsync_dir, umask, write_new
from chainrule.fs.guard import kind_of, read_regular, shown
from chainrule.fs.reaper import own_name, pid_alive, reap, say_removed

MARKER = ".chainrule-run"
MARKER_TEXT = "A training run written by chainrule: 'chainrule train --force' may replace this folder.\n"
OUTPUTS = ("metrics.csv", "accuracy.png", "params.npz", "run.json")
OWN = frozenset((MARKER, *OUTPUTS))  # the only names chainrule writes into a run folder
SIBLINGS = ("staging", "probe", "old")  # the hidden folders a run makes beside its run folder
_CLAIMED_BY = re.compile(r"claimed by process (\d+)\n")


class RunError(Exception):
    """A training run cannot start or cannot save: reported in one line."""


@dataclass
class RunDir:
    """A folder this run has claimed: made by it, found empty, or holding one of chainrule's runs."""

    path: Path
    created: bool = False  # made by this run: removed again if nothing is saved
    replaces: bool = False  # held an earlier run (allowed by --force): kept whole until the new set is in
    saved: bool = False
    made_parents: tuple[Path, ...] = ()  # folders above it made for it, innermost first

    def release(self) -> None:
        """Give the folder back as it was found, when the run saved nothing."""
        if self.saved or self.replaces:
            return
        (self.path / MARKER).unlink(missing_ok=True)
        if self.created:
            for folder in (self.path, *self.made_parents):
                try:
                    folder.rmdir()
                except OSError:
                    return  # something else is in it: not ours to remove

    def install(self, files: dict[str, bytes]) -> list[Path]:
        """Write ``files`` beside the folder, then swap them in as one set; the paths, in order."""
        if set(files) - OWN:
            raise ValueError(f"not a run output: {sorted(set(files) - OWN)}")
        staging = _sibling(self.path, "staging")
        try:
            os.mkdir(staging, 0o700)  # nobody else reads the weights before they have the folder's mode
            for name, data in files.items():
                write_new(staging / name, data, _mode_of(self.path / name))
            write_new(staging / MARKER, _saved_marker(files), _mode_of(self.path / MARKER))
            os.chmod(staging, _folder_mode(self.path))  # the mode of the folder it replaces (mkdir -m 700)
            fsync_dir(staging)
        except BaseException:
            _remove_own(staging)
            raise
        foreign = _foreign(self.path)
        if foreign:
            kept = _sibling(self.path, "outputs")  # not a name the next run removes
            try:
                os.rename(staging, kept)
            except OSError:
                kept = staging
            raise RunError(
                _(
                    "{path} now holds files chainrule did not write ({join}); it was left alone and this run's outputs are in {staging}",
                    path=self.path,
                    join=", ".join(foreign[:3]),
                    staging=kept,
                )
            )
        old = _put_in_place(staging, self.path)
        self.saved = True
        if old is not None and not _remove_own(old):
            raise RunError(
                _(
                    "saved to {path}, but the previous set's folder {old} was not empty",
                    path=self.path,
                    old=old,
                )
            )
        return [self.path / name for name in files]


def fresh_run_dir(root: Path = Path("runs"), now: Callable[[], time.struct_time] = time.localtime) -> RunDir:
    """A new folder under ``root`` named by the time, made with ``os.mkdir``: never one that exists.

    Two runs started in the same second get ``<stamp>`` and ``<stamp>-2``: ``mkdir``
    fails for the second, atomically, and it tries the next suffix.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", now())
    try:
        made = _make_parents(root / stamp)
    except OSError as exc:
        raise RunError(_("cannot write to {path}: {reason}", path=root, reason=exc.strerror or exc)) from None
    reap(root, SIBLINGS, _emptied)
    _release_dead_claims(root)
    for n in range(1, 1000):
        candidate = root / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(
                _("cannot write to {path}: {reason}", path=candidate, reason=exc.strerror or exc)
            ) from None
        write_new(candidate / MARKER, _claim_text())
        run_dir = RunDir(candidate, created=True, made_parents=made)
        _probe_beside(run_dir)
        return run_dir
    raise RunError(
        _("cannot find a fresh folder under {root}: 999 runs started in {stamp}", root=root, stamp=stamp)
    )


def claim_out(out: Path, force: bool = False) -> RunDir:
    """Take ``out`` for this run: a new folder, an empty one, or (with ``force``) one of chainrule's runs.

    A folder with anything else in it is refused, with or without ``force``:
    chainrule replaces only what it made.
    """
    path = Path(os.path.realpath(out)) if out.is_symlink() else out
    real = Path(os.path.realpath(path))
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise RunError(
            _("--out {out} is the current folder or one of its parents; name a run folder inside it", out=out)
        )
    created, made = _mkdir(path, out)
    reap(path.parent, SIBLINGS, _emptied, target=path.name)
    replaces = False
    if not created:
        if not path.is_dir():
            raise RunError(_("cannot write to {path}: it exists and is not a folder", path=out))
        if os.path.ismount(path):
            raise RunError(_("--out {out} is a mount point; name a run folder inside it", out=out))
        names = os.listdir(path)
        foreign = _foreign(path)
        if names == [MARKER] and not foreign and _release_dead_claim(path):
            names = []
        if MARKER in names and not foreign:
            if not force:
                raise RunError(
                    _(
                        "{out} already holds a training run; add --force to replace it, or choose another --out",
                        out=out,
                    )
                )
            if not _saved_here(path):
                raise RunError(
                    _(
                        "{out} holds a run that chainrule did not save on this account, or whose files"
                        " changed since; chainrule replaces only its own runs: move it away or choose another --out",
                        out=out,
                    )
                )
            replaces = True
        elif names:
            raise RunError(
                _(
                    "{out} is not empty and is not a chainrule run folder ({names});"
                    " chainrule replaces only its own runs: choose a new or empty folder",
                    out=out,
                    names=", ".join(foreign[:3]),
                )
            )
    run_dir = RunDir(path, created=created, replaces=replaces, made_parents=made)
    if not replaces:
        try:
            write_new(path / MARKER, _claim_text())
        except FileExistsError:
            raise RunError(_("another run has just claimed {out}; choose another --out", out=out)) from None
        except OSError as exc:
            run_dir.release()
            raise RunError(
                _("cannot write to {path}: {reason}", path=out, reason=exc.strerror or exc)
            ) from None
    _probe_beside(run_dir)
    return run_dir


def _mkdir(path: Path, shown: Path) -> tuple[bool, tuple[Path, ...]]:
    """Make ``path`` and its parents: whether ``path`` is new, and which parents are."""
    made: tuple[Path, ...] = ()
    try:
        made = _make_parents(path)
        os.mkdir(path)
    except FileExistsError:
        if path.parent.is_dir():
            return False, made
        raise RunError(
            _("cannot write to {path}: {reason}", path=shown, reason=os.strerror(errno.ENOTDIR))
        ) from None
    except OSError as exc:
        raise RunError(
            _("cannot write to {path}: {reason}", path=shown, reason=exc.strerror or exc)
        ) from None
    return True, made


def _make_parents(path: Path) -> tuple[Path, ...]:
    """Make the missing folders above ``path``; those made, innermost first."""
    missing = []
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    return tuple(missing)


def _probe_beside(run_dir: RunDir) -> None:
    """The set is staged beside the folder: prove that is possible before any training."""
    probe = _sibling(run_dir.path, "probe")
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as exc:
        run_dir.release()
        raise RunError(
            _(
                "cannot write beside {path} (the outputs are staged there): {value}",
                path=run_dir.path,
                value=exc.strerror or exc,
            )
        ) from None


def _sibling(path: Path, kind: str) -> Path:
    """A hidden name beside ``path`` that no other run picks: ``.NAME.KIND-PID-HEX``, within NAME_MAX.

    Its HEX verifies with this account's key (``own_name``): a folder that only looks like one is never cleaned.
    """
    return path.with_name(own_name(path.name, kind))


def _saved_marker(files: dict[str, bytes]) -> bytes:
    """The marker of a saved run: the sentence, then each output's SHA-256 under this account's seal."""
    from chainrule.packages.marker import package_seal

    record: dict[str, object] = {
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    }
    seal = package_seal(record, create=True)
    if seal is not None:
        record["seal"] = seal
    return (MARKER_TEXT + json.dumps(record, sort_keys=True) + "\n").encode()


def _saved_here(path: Path) -> bool:
    """True when ``path``'s marker is one this account's chainrule sealed, listing exactly the outputs
    there, each unchanged: only then may ``--force`` replace them."""
    from chainrule.packages.marker import marker_sealed

    try:
        text = read_regular(path / MARKER, 64 * 1024, follow=False).decode("utf-8")
        record = json.loads(text.removeprefix(MARKER_TEXT)) if text.startswith(MARKER_TEXT) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(record, dict) or not marker_sealed(record):
        return False
    files = record.get("files")
    if not isinstance(files, dict) or set(files) != set(os.listdir(path)) - {MARKER}:
        return False
    for name, digest in files.items():
        try:
            fd = os.open(path / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return False
                if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                    return False
        except OSError:
            return False
    return True


def _claim_text() -> bytes:
    """The marker of a folder claimed by this process: it names the process until the set is saved."""
    return f"{MARKER_TEXT}claimed by process {os.getpid()}\n".encode()


def _release_dead_claim(path: Path) -> bool:
    """Remove the marker of a run that claimed ``path`` and was stopped before it saved anything.

    True when it was removed (the folder is then empty); False when the claim is of a
    process still running, or of an older chainrule that did not name its process.
    """
    try:
        found = _CLAIMED_BY.search(read_regular(path / MARKER, 4096).decode("utf-8", "replace"))
    except OSError:
        return False
    if found is None or pid_alive(int(found[1])):
        return False
    (path / MARKER).unlink(missing_ok=True)
    say_removed(path / MARKER, int(found[1]))
    return True


def _release_dead_claims(root: Path) -> None:
    """Remove the run folders under ``root`` that hold nothing but the claim of a run killed before it saved."""
    try:
        entries = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for entry in entries:
        try:
            if os.listdir(entry.path) == [MARKER] and _release_dead_claim(Path(entry.path)):
                os.rmdir(entry.path)
        except OSError:
            continue  # what cannot be removed now is left for a later run


def _emptied(sibling: Path) -> list[Path]:
    """A hidden folder (``.NAME.staging-PID-HEX`` ...) a run now gone left, as ``reap`` clears it:
    chainrule's own files in it are removed, then the folder if that empties it; anything else stays."""
    return [sibling] if _remove_own(sibling) else []


def _foreign(path: Path) -> list[str]:
    """What in ``path`` chainrule does not write into a run folder, sorted: other names, and its
    own names that are not regular files (a folder named params.npz is the user's)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return []
    found = []
    for name in sorted(names):
        if name not in OWN:
            found.append(shown(name))
            continue
        try:
            mode = os.lstat(path / name).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            found.append(f"{shown(name)} ({kind_of(mode)})")
    return found


def _mode_of(path: Path) -> int:
    """The permission bits of the regular file ``path`` replaces; 0666 less the umask when there is none."""
    try:
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    except OSError:
        pass
    return 0o666 & ~umask()


def _folder_mode(path: Path) -> int:
    """The permission bits of the folder ``path``; 0777 less the umask when it is gone."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o777 & ~umask()


def _put_in_place(staging: Path, path: Path) -> Path | None:
    """Make ``staging`` be ``path``; the folder that holds what ``path`` held before, if any."""
    if path.is_dir() and not path.is_symlink():
        if exchange(staging, path):
            return staging
        # No exchange here: move the old set aside first. A reader may briefly find no
        # folder at all, but never a folder that mixes two runs.
        aside = _sibling(path, "old")
        os.rename(path, aside)
        os.rename(staging, path)
        fsync_dir(path.parent)
        return aside
    os.rename(staging, path)  # the folder went away during the run: the set simply takes its place
    fsync_dir(path.parent)
    return None


def _remove_own(folder: Path) -> bool:
    """Remove chainrule's files from ``folder``, then the folder if nothing else is in it."""
    for name in OWN:
        try:
            if not stat.S_ISDIR(os.lstat(folder / name).st_mode):
                (folder / name).unlink()
        except OSError:
            continue
    try:
        folder.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
