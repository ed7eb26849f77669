"""Derivations as documents: LaTeX (a fragment or a whole document) and Markdown."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import sympy as sp

from codegen.environment import render
from codegen.figures import document_figures
from codegen.i18n import _, active, book_sections, translate
from codegen.latex import decimal, latex, ordered_terms
from symbolic.core import Derivation, Identity, Partial, Step


@dataclass(frozen=True)
class Equation:
    """One step as printed: the rows of an aligned display, then the reason it holds.

    Each row is (left, right) around the alignment point: ``("y", "= x^{2}")``, then
    ``("", "= 2 x")`` for a further right side.  An equation too wide for the page is
    set with everything left of the point empty: the left side on its own row, each
    right side after it, and a sum too long for one row split between its terms.
    """

    rows: tuple[tuple[str, str], ...]
    reason: str


@dataclass(frozen=True)
class Section:
    """A derivation made of printed strings, ready for a template."""

    name: str
    title: str
    summary: str
    forward: tuple[Equation, ...]
    local: tuple[Equation, ...]
    backward: tuple[Equation, ...]
    identities: tuple[Equation, ...]
    results: tuple[str, ...]  # what goes in each box: "lhs = rhs", or an aligned block when too wide
    example: tuple[tuple[str, str, str], ...]
    notes: tuple[str, ...]
    gradient_header: str = ""  # the worked values' backward column, d(loss)/dv, as inline math
    figures: tuple[str, ...] = ()  # TikZ pictures of the graph, in the standalone document
    book: str = ""  # the book's sections this derivation follows ("5.5.2"), if it is the chapter's
    appendix: bool = False  # a layer beyond the chapter's: shipped as a spec, or a user's


# Where each of the chapter's derivations is in the book (ゼロから作るDeep Learning, chapter 5).
BOOK_SECTIONS: dict[str, str] = {
    "add": "5.3.1",
    "mul": "5.3.2",
    "chain_rule": "5.2",
    "apples": "5.3.3, 5.4.1",
    "apples_oranges": "5.4.2",
    "relu": "5.5.1",
    "sigmoid": "5.5.2",
    "affine": "5.6.1, 5.6.2",
    "softmax_with_loss": "5.6.3, appendix A",
}

# How wide a row may be, in the units of ``width`` (about one italic letter at 11 pt, 5.5 pt):
# the standalone page's text is 500 pt wide; a margin is kept for the estimate's errors.
LINE_WIDTH = 80.0
_INDENT = r"\qquad {}"
_INDENT_WIDTH = 4.0
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
                total += len(body.replace("\\_", "_")) * (0.9 if name == "operatorname" else 1.0)
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
            total += 1.0
            i += 1
    return total


def _shown(show: Callable[[sp.Basic], str], expr: sp.Basic, room: float) -> list[str]:
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
            rows = _shown(show, inner, room - width(head) - 1)
            if width(head) + width(rows[0]) > room:
                # The first term is too long to follow the factor: the factor gets a row of its own.
                rows = [head, *_shown(show, inner, room - 1)]
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


def _equation(
    show: Callable[[sp.Basic], str], lhs: sp.Basic, rhs: Iterable[sp.Basic], reason: str
) -> Equation:
    """One step: ``lhs = rhs`` on one row per right side, or broken as the page needs."""
    left = show(lhs)
    rights = [show(r) for r in rhs]
    if width(left) + 2 + max(width(r) for r in rights) <= LINE_WIDTH:
        rows = [(left, "= " + rights[0])] + [("", "= " + r) for r in rights[1:]]
        return Equation(tuple(rows), reason)
    first, *more = _shown(show, lhs, LINE_WIDTH)
    rows = [("", first)] + [("", rf"\quad {m}") for m in more]
    for r in rhs:
        first, *more = _shown(show, r, LINE_WIDTH - _INDENT_WIDTH - 2)
        rows.append(("", f"{_INDENT}= {first}"))
        rows += [("", rf"{_INDENT}\quad {m}") for m in more]
    return Equation(tuple(rows), reason)


def _equations(show: Callable[[sp.Basic], str], steps: Iterable[Step | Identity]) -> tuple[Equation, ...]:
    """Each step printed, its reason in the reader's language."""
    return tuple(
        _equation(show, s.lhs, s.rhs if isinstance(s, Step) else (s.rhs,), translate(s.reason)) for s in steps
    )


def _boxed(eq: Equation) -> str:
    """What goes in a result's box: the equation on one line, or its rows in an aligned block."""
    if len(eq.rows) == 1:
        left, right = eq.rows[0]
        return f"{left} {right}"
    rows = r" \\ ".join(f"{left} &{right}" for left, right in eq.rows)
    return rf"\begin{{aligned}} {rows} \end{{aligned}}"


def _is_local(step: Step) -> bool:
    return step.reason.startswith("local derivative")


def _number(value: sp.Basic) -> str:
    """Exact values as the chapter prints them: 2.2, not 11/5, when the decimal is finite."""
    return decimal(value) or latex(value)


def section(d: Derivation, figures: bool = False) -> Section:
    """Print every expression of a derivation once, in the chapter's notation; ``figures`` adds its graph."""

    def show(expr: sp.Basic) -> str:
        if isinstance(expr, sp.Rational):
            return _number(expr)
        return latex(expr, d.upstream, d.loss)

    results = tuple(_boxed(_equation(show, Partial(d.loss, g.wrt), (g.expr,), "")) for g in d.backward)
    example: tuple[tuple[str, str, str], ...] = ()
    if d.examples:
        grads = dict(d.examples[0].grads)
        example = tuple(
            (show(v), show(value), show(grads[v]) if v in grads else "") for v, value in d.examples[0].forward
        )
    return Section(
        name=d.name,
        title=translate(d.title),
        summary=translate(d.summary),
        forward=_equations(show, d.forward),
        local=_equations(show, (s for s in d.steps if _is_local(s))),
        backward=_equations(show, (s for s in d.steps if not _is_local(s))),
        identities=_equations(show, d.identities),
        results=results,
        example=example,
        notes=tuple(translate(n) for n in d.notes),
        gradient_header=rf"\partial {show(d.loss)} / \partial v",
        figures=document_figures(d.name) if figures else (),
        book=book_sections(BOOK_SECTIONS.get(d.name, "")),
        appendix=not in_chapter(d),
    )


# Inline math in prose: between two dollar signs that are not escaped.
_MATH = re.compile(r"(?<!\\)\$(.+?)(?<!\\)\$")


def prose(text: str) -> tuple[tuple[bool, str], ...]:
    """A reason, summary or note as (is math, text) pieces: its inline math and the words between.

    The words have their escaped dollars as dollars; the math is LaTeX, as written.
    """
    pieces: list[tuple[bool, str]] = []
    at = 0
    for m in _MATH.finditer(text):
        if m.start() > at:
            pieces.append((False, text[at : m.start()].replace("\\$", "$")))
        pieces.append((True, m.group(1)))
        at = m.end()
    if at < len(text):
        pieces.append((False, text[at:].replace("\\$", "$")))
    return tuple(pieces)


def in_chapter(d: Derivation) -> bool:
    """Whether the chapter itself derives ``d`` (the layers made from specs come after it)."""
    import symbolic
    from symbolic.shipped import SHIPPED

    return d.name in symbolic.BUILDERS and d.name not in {s.key for s in SHIPPED}


def _tex_text(text: str) -> str:
    """Escape plain prose for LaTeX text mode."""
    table = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "×": r"$\times$",
        "−": "-",
        "^": r"\textasciicircum{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
    }
    return "".join(table.get(ch, ch) for ch in text)


def _tex_prose(text: str) -> str:
    """Prose for LaTeX: the words escaped, the inline math set as math."""
    return "".join(f"${t}$" if is_math else _tex_text(t) for is_math, t in prose(" ".join(text.split())))


# Markdown's inline syntax: emphasis, code, links, HTML, tables, math and strike-through.
_MARKDOWN = {ch: "\\" + ch for ch in "\\`*_[]<>&|$~"}


def _md_text(text: str) -> str:
    """Escape plain prose for Markdown: it reads as typed, on one line, whatever a name or formula holds."""
    return "".join(_MARKDOWN.get(ch, ch) for ch in " ".join(text.split()))


def _md_prose(text: str) -> str:
    """Prose for Markdown: the words escaped, the inline math between dollar signs as $-math renderers read it."""
    return "".join(
        f"${t.strip()}$" if is_math else "".join(_MARKDOWN.get(ch, ch) for ch in t)
        for is_math, t in prose(" ".join(text.split()))
    )


def _alt(name: str) -> str:
    """A figure's alternative text, for a reader who cannot see it."""
    return _("computational graph: {name}", name=name)


def _md_figures(name: str, links: str | None) -> tuple[str, ...]:
    """A derivation's figures for Markdown: images linked at ``links`` (``{name}`` is the figure's
    name), or inline as ``data:`` URIs so that the file stands alone (Jupyter, VS Code, browsers)."""
    from codegen.figures import DOCUMENT_FIGURES, FIGURES, svg

    names = [n for n in DOCUMENT_FIGURES.get(name, (name,)) if n in FIGURES]
    if links is not None:
        return tuple(f"![{_md_text(_alt(n))}]({links.format(name=n)})" for n in names)
    return tuple(
        f'<img alt="{_alt(n)}" src="data:image/svg+xml;base64,{base64.b64encode(svg(n).encode()).decode()}">'
        for n in names
    )


def document(
    derivations: list[Derivation],
    fmt: str = "latex",
    standalone: bool = False,
    figure_links: str | None = None,
) -> str:
    """Render derivations as a LaTeX fragment, a whole LaTeX document, or Markdown.

    Every name and sentence is escaped for the format (a layer may be called ``A_B`` and its
    formula hold ``*``); formulas are printed by the LaTeX printer from SymPy expressions, and
    the inline math of reasons and notes is set as math.  A whole document has the figures:
    TikZ in LaTeX; in Markdown images inline, or linked at ``figure_links`` (``"{name}.svg"``).
    """
    if fmt == "markdown":
        sections = [
            replace(section(d), figures=_md_figures(d.name, figure_links))
            if standalone or figure_links is not None
            else section(d)
            for d in derivations
        ]
        sections.sort(key=lambda s: s.appendix)
        return render(
            "derivations.md.jinja", sections=sections, text=_md_text, prose=_md_prose, lang=active()
        )
    sections = [section(d, figures=standalone) for d in derivations]
    # The chapter first, then an appendix of the other layers, each part in the order given.
    sections.sort(key=lambda s: s.appendix)
    return render(
        "derivations.tex.jinja",
        sections=sections,
        standalone=standalone,
        text=_tex_text,
        prose=_tex_prose,
        lang=active(),
    )
