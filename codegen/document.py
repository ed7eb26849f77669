"""Derivations as documents: LaTeX (a fragment or a whole document) and Markdown."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy as sp

from codegen.environment import render
from codegen.figures import document_figures
from codegen.latex import latex
from codegen.text import decimal
from symbolic.core import Derivation, Identity, Step


@dataclass(frozen=True)
class Row:
    """One printed line of an aligned block: ``lhs = rhs``, then the reason."""

    lhs: str
    rhs: str
    reason: str


@dataclass(frozen=True)
class Section:
    """A derivation made of printed strings, ready for a template."""

    name: str
    title: str
    summary: str
    forward: tuple[Row, ...]
    local: tuple[Row, ...]
    backward: tuple[Row, ...]
    identities: tuple[Row, ...]
    results: tuple[str, ...]
    example: tuple[tuple[str, str, str], ...]
    notes: tuple[str, ...]
    figures: tuple[str, ...] = ()  # TikZ pictures of the graph, in the standalone document
    appendix: bool = False  # a layer beyond the chapter's: shipped as a spec, or a user's


def _rows(show: Callable[[sp.Basic], str], steps: Iterable[Step | Identity]) -> tuple[Row, ...]:
    """Aligned rows: an equation's first line carries its reason, further right sides follow."""
    rows = []
    for s in steps:
        rhs = s.rhs if isinstance(s, Step) else (s.rhs,)
        printed = [show(r) for r in rhs]
        rows.append(Row(show(s.lhs), printed[0], s.reason))
        rows += [Row("", r, "") for r in printed[1:]]
    return tuple(rows)


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

    results = tuple(f"{latex(sp.Symbol('dout'), g.wrt, d.loss)} = {show(g.expr)}" for g in d.backward)
    example: tuple[tuple[str, str, str], ...] = ()
    if d.examples:
        grads = dict(d.examples[0].grads)
        example = tuple(
            (show(v), show(value), show(grads[v]) if v in grads else "") for v, value in d.examples[0].forward
        )
    return Section(
        name=d.name,
        title=d.title,
        summary=d.summary,
        forward=_rows(show, d.forward),
        local=_rows(show, (s for s in d.steps if _is_local(s))),
        backward=_rows(show, (s for s in d.steps if not _is_local(s))),
        identities=_rows(show, d.identities),
        results=results,
        example=example,
        notes=d.notes,
        figures=document_figures(d.name) if figures else (),
        appendix=not in_chapter(d),
    )


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
    return "".join(table.get(ch, ch) for ch in " ".join(text.split()))


# Markdown's inline syntax: emphasis, code, links, HTML, tables, math and strike-through.
_MARKDOWN = {ch: "\\" + ch for ch in "\\`*_[]<>&|$~"}


def _md_text(text: str) -> str:
    """Escape plain prose for Markdown: it reads as typed, on one line, whatever a name or formula holds."""
    return "".join(_MARKDOWN.get(ch, ch) for ch in " ".join(text.split()))


def document(derivations: list[Derivation], fmt: str = "latex", standalone: bool = False) -> str:
    """Render derivations as a LaTeX fragment, a whole LaTeX document, or Markdown.

    Every name and sentence is escaped for the format (a layer may be called ``A_B`` and its
    formula hold ``*``); formulas are printed by the LaTeX printer from SymPy expressions.
    """
    sections = [section(d, figures=standalone and fmt == "latex") for d in derivations]
    # The chapter first, then an appendix of the other layers, each part in the order given.
    sections.sort(key=lambda s: s.appendix)
    if fmt == "markdown":
        return render("derivations.md.jinja", sections=sections, text=_md_text)
    return render("derivations.tex.jinja", sections=sections, standalone=standalone, text=_tex_text)
