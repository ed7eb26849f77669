"""Reading layer specs from a TOML file, with errors that name the file and line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from symbolic.spec import Spec, SpecError

KEYS = {"name", "forward", "kind", "constants", "safe", "init", "short"}


def _layer_lines(text: str) -> list[int]:
    """The line number of each ``[[layer]]`` header, in order."""
    return [i for i, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*layer\s*\]\]", line)]


def read_specs(path: str | Path) -> tuple[Spec, ...]:
    """Every ``[[layer]]`` table of a spec file, checked for shape (the formulas are checked when derived)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    tables = data.get("layer")
    extra = set(data) - {"layer"}
    if extra:
        raise SpecError(f"{path}: unknown top-level key {sorted(extra)[0]!r}; write each layer as [[layer]]")
    if not isinstance(tables, list) or not tables:
        raise SpecError(
            f"{path}: no [[layer]] tables; each layer is a [[layer]] table with a name and a forward"
        )
    lines = _layer_lines(text)
    specs = []
    for i, table in enumerate(tables):
        where = f"{path}:{lines[i]}" if i < len(lines) else str(path)
        specs.append(_spec(table, where))
    return tuple(specs)


def _spec(table: dict, where: str) -> Spec:
    unknown = set(table) - KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key {sorted(unknown)[0]!r}; known keys: {', '.join(sorted(KEYS))}")
    for key in ("name", "forward"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise SpecError(f"{where}: every layer needs a {key} (a string)")
    for key in ("kind", "safe", "init", "short"):
        if key in table and not isinstance(table[key], str):
            raise SpecError(f"{where}: {key} must be a string")
    constants = table.get("constants", {})
    if not isinstance(constants, dict):
        raise SpecError(f"{where}: constants must be a table, e.g. constants = {{ alpha = 0.01 }}")
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
