"""How wide printed LaTeX sets, estimated from its text, and where a formula too long for a row breaks."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import sympy as sp

from chainrule.codegen.latex import ordered_terms

# How wide a row may be, in the units of ``width`` (about one italic letter at 11 pt, 5.5 pt):
# the standalone page's text is 500 pt wide; a margin is kept for the estimate's errors.
LINE_WIDTH = 80.0
INDENT = r"\qquad {}"
INDENT_WIDTH = 4.0
_SPACES = {",": 0.3, ";": 0.5, ":": 0.4, "!": -0.3, "quad": 2.0, "qquad": 4.0, " ": 0.5}
_BINARY = {"cdot": 2.0, "times": 2.0, "le": 2.2, "ge": 2.2, "to": 2.2, "in": 2.2}
_NAMED = {"mathrm", "mathbf", "text", "operatorname", "mathit", "boldsymbol"}


def _group(tex: str, i: int) -> tuple[str, int]:
    """The braced group (or single token) starting at ``tex[i]``, and the index after it."""
    while i < len(tex) and tex[i] == " ":
        i += 1
    if i >= len(tex):
        return "", i
    if tex[i] != "{":
        if tex[i] == "\\":
            j = i + 1
            while j < len(tex) and tex[j].isalpha():
                j += 1
            return tex[i : max(j, i + 2)], max(j, i + 2)
        return tex[i], i + 1
    depth, j = 0, i
    while j < len(tex):
        depth += {"{": 1, "}": -1}.get(tex[j], 0)
        if depth == 0:
            return tex[i + 1 : j], j + 1
        j += 1
    return tex[i + 1 :], len(tex)


def width(tex: str) -> float:
    """How wide ``tex`` sets in display math, roughly, in italic letters; fractions stack.

    An estimate made from the LaTeX string alone (Markdown has no TeX to measure with):
    enough to decide where a long equation must break.
    """
    total, i = 0.0, 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            j = i + 1
            while j < len(tex) and tex[j].isalpha():
                j += 1
            name = tex[i + 1 : j] if j > i + 1 else tex[i + 1 : i + 2]
            j = max(j, i + 2)
            if name in ("frac", "dfrac", "tfrac"):
                num, j = _group(tex, j)
                den, j = _group(tex, j)
                total += max(width(num), width(den)) + 0.6
            elif name == "begin":
                env, j = _group(tex, j)
                end = tex.find(r"\end{" + env + "}", j)
                body = tex[j:end] if end >= 0 else tex[j:]
                rows = [r.split("&") for r in body.split(r"\\")]
                total += max((sum(width(c) + 2.0 for c in r) for r in rows), default=0.0) + 1.0
                j = end + len(env) + 6 if end >= 0 else len(tex)
            elif name in _NAMED:
                body, j = _group(tex, j)
                letters = body.replace("\\_", "_")
                total += sum(WIDE if is_wide(c) else 1.0 for c in letters) * (
                    0.9 if name == "operatorname" else 1.0
                )
            elif name in ("left", "right", "bigl", "bigr", "Bigl", "Bigr", "big", "Big"):
                delim, j = _group(tex, j)
                total += 0.0 if delim == "." else 0.6
            elif name == "sqrt":
                body, j = _group(tex, j)
                total += width(body) + 1.2
            elif name in _SPACES:
                total += _SPACES[name]
            elif name in _BINARY:
                total += _BINARY[name]
            elif name in ("partial",) or len(name) == 1:
                total += 1.0
            else:  # \alpha, \log, \tanh: a symbol, or a function's name in upright letters
                total += (
                    1.0
                    if len(name) > 3 and name not in ("tanh", "sinh", "cosh", "log", "exp")
                    else len(name) * 0.8
                )
            i = j
        elif ch in "^_":
            body, i = _group(tex, i + 1)
            total += 0.7 * width(body)
        elif ch == "{":
            body, i = _group(tex, i)
            total += width(body)
        elif ch in "+-=<>":
            total += 2.0
            i += 1
        elif ch in " }":
            i += 1
        elif ch in ",;":
            total += 0.5
            i += 1
        else:
            total += WIDE if is_wide(ch) else 1.0
            i += 1
    return total


WIDE = 2.0  # a Japanese character (りんご), in italic letters: a full em


def is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


def rows_of(show: Callable[[sp.Basic], str], expr: sp.Basic, room: float) -> list[str]:
    """``expr`` printed on as many rows as it needs, each at most ``room`` wide where it can be.

    A sum breaks between its terms; a product breaks inside its one long sum, whose
    parentheses then open on the first row and close on the last.
    """
    tex = show(expr)
    if width(tex) <= room:
        return [tex]
    if isinstance(expr, sp.Add | sp.MatAdd):
        pieces = []
        for k, term in enumerate(ordered_terms(expr)):
            if k == 0:
                pieces.append(show(term))
            elif term.could_extract_minus_sign():
                pieces.append("- " + show(-term))
            else:
                pieces.append("+ " + show(term))
        return _pack(pieces, room)
    if isinstance(expr, sp.Mul):
        sums = [f for f in expr.args if isinstance(f, sp.Add) and width(show(f)) > room / 2]
        if len(sums) == 1:
            (inner,) = sums
            rest = show(expr.func(*(f for f in expr.args if f is not inner)))
            sign = ""
            if rest.startswith("- "):
                sign, rest = "- ", rest[2:]
            head = rf"{sign}{'' if rest == '1' else rest + ' '}\Bigl("
            rows = rows_of(show, inner, room - width(head) - 1)
            if width(head) + width(rows[0]) > room:
                # The first term is too long to follow the factor: the factor gets a row of its own.
                rows = [head, *rows_of(show, inner, room - 1)]
            else:
                rows[0] = f"{head} {rows[0]}"
            rows[-1] = rf"{rows[-1]} \Bigr)"
            return rows
    return [tex]


def _pack(pieces: list[str], room: float) -> list[str]:
    """Terms on rows, as many on each as fit in ``room``."""
    rows = [pieces[0]]
    for piece in pieces[1:]:
        if width(rows[-1]) + width(piece) + 1 <= room:
            rows[-1] += " " + piece
        else:
            rows.append(piece)
    return rows
