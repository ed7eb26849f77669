"""Reading layer specs from a TOML file, with errors that name the file and line."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

from chainrule.codegen.i18n import _
from chainrule.symbolic.spec import Spec, SpecError

KEYS = {"name", "forward", "kind", "constants", "safe", "init", "short"}
MAX_SPEC_BYTES = 64 * 1024  # a spec file of many layers is a few kilobytes
MAX_LAYERS = 32


def _layer_lines(text: str) -> list[int]:
    """The line number of each ``[[layer]]`` header, in order."""
    return [i for i, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*layer\s*\]\]", line)]


def _read_text(path: Path, shown: str) -> str:
    """The file's text, read only if it is a regular file and no larger than MAX_SPEC_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the open
    except OSError as exc:
        raise SpecError(_("cannot read {shown}: {reason}", shown=shown, reason=exc.strerror or exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpecError(_("{shown}: not a regular file; a spec is a TOML file", shown=shown))
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError(
                _("cannot read {shown}: {reason}", shown=shown, reason=exc.strerror or exc)
            ) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            _(
                "{shown}: larger than {limit} KiB, the limit for a spec file",
                shown=shown,
                limit=MAX_SPEC_BYTES // 1024,
            )
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(_("{shown}: not a UTF-8 text file", shown=shown)) from None


def read_spec_text(path: Path) -> str:
    """A spec file's text, within the same limits as ``read_specs`` (for a package to keep a copy)."""
    shown = str(path) if str(path).isprintable() else repr(str(path))
    return _read_text(path, shown)


def read_specs(path: str | Path) -> tuple[Spec, ...]:
    """Every ``[[layer]]`` table of a spec file, checked for shape (the formulas are checked when derived)."""
    path = Path(path)
    shown = str(path) if str(path).isprintable() else repr(str(path))  # messages stay on one line
    text = _read_text(path, shown)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(_("{shown}: invalid TOML: {reason}", shown=shown, reason=exc)) from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise SpecError(
            _("{shown}: nested too deeply to read; a spec is a few flat tables", shown=shown)
        ) from None
    except ValueError:  # an integer longer than Python converts (4,300 digits)
        line = next((i for i, t in enumerate(text.splitlines(), 1) if re.search(r"\d{4301}", t)), None)
        raise SpecError(
            _("{where}: a number too long to read", where=f"{shown}:{line}" if line else shown)
        ) from None
    tables = data.get("layer")
    extra = set(data) - {"layer"}
    if extra:
        raise SpecError(
            _(
                "{shown}: unknown top-level key {key}; write each layer as [[layer]]",
                shown=shown,
                key=repr(sorted(extra)[0]),
            )
        )
    if not isinstance(tables, list) or not tables:
        raise SpecError(
            _(
                "{shown}: no [[layer]] tables; each layer is a [[layer]] table with a name and a forward",
                shown=shown,
            )
        )
    if len(tables) > MAX_LAYERS:
        raise SpecError(
            _(
                "{shown}: {count} layers; the limit for a spec file is {limit}",
                shown=shown,
                count=len(tables),
                limit=MAX_LAYERS,
            )
        )
    lines = _layer_lines(text)
    specs = []
    for i, table in enumerate(tables):
        where = f"{shown}:{lines[i]}" if i < len(lines) else shown
        specs.append(_spec(table, where))
    return tuple(specs)


def _spec(table: dict, where: str) -> Spec:
    unknown = set(table) - KEYS
    if unknown:
        raise SpecError(
            _(
                "{where}: unknown key {key}; known keys: {known}",
                where=where,
                key=repr(sorted(unknown)[0]),
                known=", ".join(sorted(KEYS)),
            )
        )
    for key in ("name", "forward"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise SpecError(_("{where}: every layer needs a {key} (a string)", where=where, key=key))
    for key in ("kind", "safe", "init", "short"):
        if key in table and not isinstance(table[key], str):
            raise SpecError(_("{where}: {key} must be a string", where=where, key=key))
    constants = table.get("constants", {})
    if not isinstance(constants, dict):
        raise SpecError(
            _("{where}: constants must be a table, e.g. constants = {{ alpha = 0.01 }}", where=where)
        )
    return Spec(
        name=table["name"],
        forward=table["forward"],
        kind=table.get("kind", "activation"),
        constants=tuple(sorted(constants.items())),
        safe=table.get("safe"),
        init=table.get("init", "xavier"),
        where=where,
        short=table.get("short"),
    )
