"""Derivations as documents: LaTeX (a fragment or a whole document) and Markdown."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import sympy as sp

from chainrule.codegen.environment import render
from chainrule.codegen.figures import document_figure_names, document_figures, sideways
from chainrule.codegen.i18n import N_, _, active, book_sections, translate
from chainrule.codegen.latex import decimal, in_book_words, latex
from chainrule.codegen.measure import INDENT, INDENT_WIDTH, LINE_WIDTH, WIDE, is_wide, rows_of, width
from chainrule.symbolic.core import Derivation, Identity, Partial, Step


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
    sideways: tuple[bool, ...] = ()  # for each figure: set along the page's height, too wide for the line
    book: str = ""  # the book's sections this derivation follows ("5.5.2"), if it is the chapter's
    appendix: bool = False  # a layer beyond the chapter's: shipped as a spec, or a user's
    dout: Equation | None = None  # dout = dL/dy, the upstream gradient as the code names it
    proofs: tuple[
        Equation, ...
    ] = ()  # identities proved but not shown in the chapter (kernel proofs, checks)
    reference: str = (
        ""  # the book's sections in the reader's language ("Book §5.5.2"), or "not in the chapter"
    )


# Where each of the chapter's derivations is in the book (ゼロから作るDeep Learning, chapter 5).
# In the chapter's order: the documents set their sections in this order.
BOOK_SECTIONS: dict[str, str] = {
    "computational_graph": "5.1",
    "chain_rule": "5.2",
    "add": "5.3.1",
    "mul": "5.3.2",
    "apples": "5.3.3, 5.4.1",
    "apples_oranges": "5.4.2",
    "relu": "5.5.1",
    "sigmoid": "5.5.2",
    "affine": "5.6.1, 5.6.2",
    "softmax_with_loss": "5.6.3, appendix A",
}


def _equation(
    show: Callable[[sp.Basic], str], lhs: sp.Basic, rhs: Iterable[sp.Basic], reason: str
) -> Equation:
    """One step: ``lhs = rhs`` on one row per right side, or broken as the page needs."""
    left = show(lhs)
    rights = [show(r) for r in rhs]
    if width(left) + 2 + max(width(r) for r in rights) <= LINE_WIDTH:
        rows = [(left, "= " + rights[0])] + [("", "= " + r) for r in rights[1:]]
        return Equation(tuple(rows), reason)
    first, *more = rows_of(show, lhs, LINE_WIDTH)
    rows = [("", first)] + [("", rf"\quad {m}") for m in more]
    for r in rhs:
        first, *more = rows_of(show, r, LINE_WIDTH - INDENT_WIDTH - 4)  # a margin for the displays' indent
        rows.append(("", f"{INDENT}= {first}"))
        rows += [("", rf"{INDENT}\quad {m}") for m in more]
    return Equation(tuple(rows), reason)


def _equations(
    show: Callable[[sp.Basic], str], steps: Iterable[Step | Identity], proofs: bool = False
) -> tuple[Equation, ...]:
    """Each step printed, its reason in the reader's language.

    A right side that prints as the side before it says nothing and is left out; a step left
    with no right side at all is not shown.  ``proofs`` (the appendix's) are shown whole.
    """
    printed = []
    for s in steps:
        rhs = s.rhs if isinstance(s, Step) else (s.rhs,)
        sides, kept = [_same(show(s.lhs))], []
        for r in rhs:
            if proofs or _same(show(r)) != sides[-1]:
                kept.append(r)
                sides.append(_same(show(r)))
        if kept:
            printed.append(_equation(show, s.lhs, kept, in_book_words(translate(s.reason))))
    return tuple(printed)


def _same(tex: str) -> str:
    """A printed side as compared with another: its spacing ignored."""
    return "".join(tex.split())


def _once(equations: Iterable[Equation], seen: set[str]) -> tuple[Equation, ...]:
    """The equations with each reason said once: a reason already given in the section is not repeated."""
    out = []
    for eq in equations:
        if eq.reason in seen:
            eq = replace(eq, reason="")
        seen.add(eq.reason)
        out.append(eq)
    return tuple(out)


def _teaches(identity: Identity, show: Callable[[sp.Basic], str], proofs: list[Identity]) -> bool:
    """Whether the chapter shows ``identity``: its two sides print differently, it is the chapter's
    route and no kernel's proof."""
    if not identity.in_chapter or any(identity is p or _equal(identity, p) for p in proofs):
        return False
    return _same(show(identity.lhs)) != _same(show(identity.rhs))


def _equal(a: Identity, b: Identity) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # matrices compared entry by entry
        return False


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
    """Print every expression of a derivation once, in the chapter's notation; ``figures`` adds its graph.

    The chapter shows only the identities that teach (two sides printed differently, no kernel's
    numerical proof): the others are in ``proofs``, for the appendix.  Each reason is said once
    in a section.
    """

    def show(expr: sp.Basic) -> str:
        if isinstance(expr, sp.Rational):
            return _number(expr)
        return latex(expr, d.upstream, d.loss, words=True)

    results = tuple(_boxed(_equation(show, Partial(d.loss, g.wrt), (g.expr,), "")) for g in d.backward)
    example: tuple[tuple[str, str, str], ...] = ()
    if d.examples and d.backward:  # a forward-only section (5.1) shows its numbers in its steps
        grads = dict(d.examples[0].grads)
        example = tuple(
            (show(v), show(value), show(grads[v]) if v in grads else "") for v, value in d.examples[0].forward
        )
    kernel_proofs = [p for k in d.kernels for p in k.proofs]
    shown = [i for i in d.identities if _teaches(i, show, kernel_proofs)]
    hidden = [i for i in d.identities if not any(i is s for s in shown)]
    hidden += [p for p in kernel_proofs if not any(p is h or _equal(p, h) for h in hidden)]
    seen: set[str] = {""}
    forward = _once(_equations(show, d.forward), seen)
    local = _once(_equations(show, (s for s in d.steps if _is_local(s))), set())
    backward = _once(_equations(show, (s for s in d.steps if not _is_local(s))), seen)
    dout = None
    if d.upstream is not None and d.upstream != d.loss:
        dout = Equation(((r"\mathrm{dout}", "= " + show(Partial(d.loss, d.upstream))),), _(DOUT))
    return Section(
        name=d.name,
        title=translate(d.title),
        summary=translate(d.summary),
        forward=forward,
        local=local,
        backward=backward,
        identities=_equations(show, shown),
        results=results,
        example=example,
        notes=tuple(translate(n) for n in d.notes),
        gradient_header=rf"\partial {show(d.loss)} / \partial v",
        figures=document_figures(d.name) if figures else (),
        sideways=tuple(sideways(n) for n in document_figure_names(d.name)) if figures else (),
        book=book_sections(BOOK_SECTIONS.get(d.name, "")),
        appendix=not in_chapter(d),
        dout=dout,
        proofs=_equations(show, hidden, proofs=True),
        reference=reference(d),
    )


DOUT = N_("the upstream gradient; the code calls it dout")
NOT_IN_CHAPTER = N_("Not in the chapter.")


def reference(d: Derivation) -> str:
    """Where the book derives ``d``, in the reader's language ("Book §5.6.3, appendix A"), else
    that the chapter does not ("Not in the chapter.")."""
    book = BOOK_SECTIONS.get(d.name, "") if in_chapter(d) else ""
    if not book:
        return _(NOT_IN_CHAPTER)
    parts = []
    for part in book.split(", "):
        if part.startswith("appendix "):
            parts.append(_("appendix {letter}", letter=part.removeprefix("appendix ")))
        else:
            parts.append(_("§{number}", number=part))
    where = parts[0]
    for part in parts[1:]:
        where = _("{first}, {then}", first=where, then=part)
    return _("Book {where}.", where=where)


def order(derivations: Iterable[Derivation]) -> list[Derivation]:
    """The chapter's derivations in the chapter's order, then the others (the appendix) as given."""
    from chainrule.symbolic import NAMES

    chapter = list(BOOK_SECTIONS)
    names = list(NAMES)

    def key(d: Derivation) -> tuple[int, int, int]:
        if not in_chapter(d):
            return (1, 0, 0)
        return (0, chapter.index(d.name) if d.name in chapter else len(chapter), names.index(d.name))

    return sorted(derivations, key=key)


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
    from chainrule.symbolic import BUILDERS
    from chainrule.symbolic.shipped import SHIPPED

    return d.name in BUILDERS and d.name not in {s.key for s in SHIPPED}


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
    """A figure's alternative text, for a reader who cannot see it: its caption, the book's figure number first."""
    from chainrule.codegen.layout import layout_for

    return translate(layout_for(name).title)


def _html_attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _md_figures(name: str, links: str | None) -> tuple[str, ...]:
    """A derivation's figures for Markdown: images linked at ``links`` (``{name}`` is the figure's
    name), or inline as ``data:`` URIs so that the file stands alone (Jupyter, VS Code, browsers)."""
    from chainrule.codegen.figures import DOCUMENT_FIGURES, FIGURES, svg

    names = [n for n in DOCUMENT_FIGURES.get(name, (name,)) if n in FIGURES]
    if links is not None:
        return tuple(f"![{_md_text(_alt(n))}]({links.format(name=n)})" for n in names)
    return tuple(
        f'<img alt="{_html_attribute(_alt(n))}" src="data:image/svg+xml;base64,{base64.b64encode(svg(n).encode()).decode()}">'
        for n in names
    )


# --- the page: steps gathered into displays, reasons beside them where they fit ----------------------

LOCAL_REASON = N_("each node's local derivative, from sympy.diff")
_MATH_INDENT = 1.0  # the displays' indent from the margin (0.5 em), in the units of ``width``
_GAP = 4.0  # between two equations on one row (a \qquad)
_TAG_GAP = 3.0  # at least this between an equation and the reason beside it


@dataclass(frozen=True)
class Block:
    """Rows of one display that go together (a step, or packed local derivatives), and their reason.

    Each row is its (left, right) cells, one pair per equation on the row; ``beside`` when the
    reason fits at the end of the block's last row, else it is set on a line of its own before.
    """

    rows: tuple[tuple[tuple[str, str], ...], ...]
    reason: str = ""
    beside: bool = False


@dataclass(frozen=True)
class Display:
    """One display of a section: blocks aligned in ``columns`` pairs of columns."""

    columns: int
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Page:
    """A section as the LaTeX and Markdown templates set it."""

    s: Section
    forward: tuple[Display, ...]
    local: tuple[Display, ...]
    backward: tuple[Display, ...]
    identities: tuple[Display, ...]
    results: tuple[tuple[str, ...], ...]  # the boxed results, as many on a row as fit
    table: tuple[tuple[tuple[str, str, str], ...], ...] = ()  # the worked values, in columns that fit


def text_width(text: str) -> float:
    """How wide a reason sets in small type, in the units of ``width``: its words and its math."""
    total = 0.0
    for is_math, piece in prose(" ".join(text.split())):
        if is_math:
            total += 0.9 * width(piece)
        else:
            total += sum(WIDE if is_wide(ch) else 0.85 for ch in piece)
    return total


def _joined(eq: Equation) -> Equation:
    """A step whose right sides fit on one row, on one row: ``lhs = a = b``, as the chapter writes a chain."""
    if len(eq.rows) < 2 or any(left or not right.startswith("= ") for left, right in eq.rows[1:]):
        return eq
    left, first = eq.rows[0]
    row = " ".join([first, *(right for _l, right in eq.rows[1:])])
    if not left or width(left) + width(row) + _MATH_INDENT > LINE_WIDTH:
        return eq
    return replace(eq, rows=((left, row),))


def _display(equations: Iterable[Equation], reasons: bool = True) -> tuple[Display, ...]:
    """Steps one under another, aligned at the = sign, in as few displays as the line allows; each
    reason beside its step where it fits, else on a line of its own before it.

    Steps share a display while the widest left side and each right side fit on the line together;
    a step broken over rows (its left side on a row of its own) is a display of its own.
    """
    groups: list[list[Equation]] = []
    for eq in (_joined(eq) for eq in equations):
        broken = not eq.rows[0][0]
        if groups and not broken and eq.rows[0][0] and groups[-1][0].rows[0][0]:
            left = max(width(lft) for e in (*groups[-1], eq) for lft, _r in e.rows)
            right = max(width(r) for e in (*groups[-1], eq) for _l, r in e.rows)
            if _MATH_INDENT + left + right <= LINE_WIDTH:
                groups[-1].append(eq)
                continue
        groups.append([eq])
    return tuple(_aligned(g, reasons) for g in groups)


def _aligned(equations: list[Equation], reasons: bool) -> Display:
    left = max((width(lft) for eq in equations for lft, _r in eq.rows), default=0.0)
    blocks = []
    for eq in equations:
        reason = eq.reason if reasons else ""
        # Beside the step only when it fits beside each of its rows: a step broken over rows is as
        # wide as the line, and amsmath would set the reason below it, through the next.
        widest = max(width(right) for _l, right in eq.rows)
        beside = bool(reason) and (_MATH_INDENT + left + widest + _TAG_GAP + text_width(reason) <= LINE_WIDTH)
        blocks.append(Block(tuple((row,) for row in eq.rows), reason, beside))
    return Display(1, tuple(blocks))


def _packed(equations: tuple[Equation, ...], reason: str) -> tuple[Display, ...]:
    """Equations of one row each, as many on a row as fit, in one display with one reason."""
    single = [eq.rows[0] for eq in equations if len(eq.rows) == 1]
    if len(single) < len(equations) or not equations:
        return _display(replace(eq, reason=reason if k == 0 else "") for k, eq in enumerate(equations))
    for k in range(min(6, len(single)), 0, -1):
        rows = [tuple(single[i : i + k]) for i in range(0, len(single), k)]
        columns = [
            max(width(r[j][0]) for r in rows if len(r) > j) + max(width(r[j][1]) for r in rows if len(r) > j)
            for j in range(k)
        ]
        extent = _MATH_INDENT + sum(columns) + _GAP * (k - 1)
        if extent <= LINE_WIDTH or k == 1:
            # Beside only a single column: LaTeX spreads the columns of a wider row out to the margin.
            beside = k == 1 and len(rows) == 1 and extent + _TAG_GAP + text_width(reason) <= LINE_WIDTH
            return (Display(k, (Block(tuple(rows), reason, beside),)),)
    raise AssertionError("unreachable")


def _result_rows(results: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """The boxed results, as many side by side as fit on the line."""
    rows: list[list[str]] = []
    for r in results:
        if rows and "aligned" not in r and "aligned" not in rows[-1][-1]:
            if (
                _MATH_INDENT + sum(width(x) + 1.5 for x in rows[-1]) + _GAP * len(rows[-1]) + width(r)
                <= LINE_WIDTH
            ):
                rows[-1].append(r)
                continue
        rows.append([r])
    return tuple(tuple(r) for r in rows)


def _table(s: Section) -> tuple[tuple[tuple[str, str, str], ...], ...]:
    """The worked values as columns, one per variable, as many side by side as fit on the line."""
    head = max(text_width(_("backward")) + width(s.gradient_header), text_width(_("variable")))
    chunks: list[list[tuple[str, str, str]]] = []
    room = 0.0
    for column in s.example:
        need = max(width(c) for c in column) * 0.7 + 2.4  # in small type, upright names
        if not chunks or room + need > LINE_WIDTH:
            chunks.append([])
            room = head + 2
        chunks[-1].append(column)
        room += need
    return tuple(tuple(c) for c in chunks)


def page(d: Derivation, s: Section) -> Page:
    """A section laid out for the page: few displays, each reason once and beside its step."""
    # dout is a backward quantity: it opens the backward pass, which it enters from the right.
    return Page(
        s=s,
        forward=_display(s.forward),
        local=_packed(s.local, _(LOCAL_REASON)),
        backward=_display((*((s.dout,) if s.dout else ()), *s.backward)),
        identities=_display(s.identities),
        results=_result_rows(s.results),
        table=_table(s),
    )


PROOFS_TITLE = N_("Proofs and numerics")
# Said once, at the top of a document: how to read the figures, and what the code's dout is.
LEGEND = (
    N_("In the figures, forward values are black, above each arrow; backward values are red, below it."),
    N_(
        "dout is the code's name for the upstream gradient $\\partial L/\\partial y$ that comes back to a layer's output $y$."
    ),
)


def md_chunks(displays: tuple[Display, ...]) -> list[tuple[str, str]]:
    """Displays as Markdown's math blocks: (the block's aligned rows, its reason); a block with a
    reason starts a new math block, one without joins the one before in its display."""
    out = []
    for d in displays:
        env = "aligned" if d.columns == 1 else "alignedat"
        arg = "" if d.columns == 1 else f"{{{d.columns}}}"
        chunks: list[tuple[list[str], str]] = []
        for b in d.blocks:
            rows = [r" &\qquad ".join(f"{left} &{right}" for left, right in row) for row in b.rows]
            if b.reason or not chunks:
                chunks.append((rows, b.reason))
            else:
                chunks[-1][0].extend(rows)
        out += [
            (f"\\begin{{{env}}}{arg}\n" + " \\\\\n".join(rows) + f"\n\\end{{{env}}}", reason)
            for rows, reason in chunks
        ]
    return out


def document(
    derivations: list[Derivation],
    fmt: str = "latex",
    standalone: bool = False,
    figure_links: str | None = None,
    appendix: bool = False,
) -> str:
    """Render derivations as a LaTeX fragment, a whole LaTeX document, or Markdown.

    Every name and sentence is escaped for the format (a layer may be called ``A_B`` and its
    formula hold ``*``); formulas are printed by the LaTeX printer from SymPy expressions, and
    the inline math of reasons and notes is set as math.  A whole document has the figures:
    TikZ in LaTeX; in Markdown images inline, or linked at ``figure_links`` (``"{name}.svg"``).

    The chapter's derivations come first, in the chapter's order; the others (shipped or a
    user's layers) after them, marked as not in the chapter.  ``appendix`` adds the proofs and
    numerics the chapter leaves out (kernels' proofs, entry-by-entry checks).
    """
    derivations = order(derivations)
    if fmt == "markdown":
        sections = [
            replace(section(d), figures=_md_figures(d.name, figure_links))
            if standalone or figure_links is not None
            else section(d)
            for d in derivations
        ]
    else:
        sections = [section(d, figures=standalone) for d in derivations]
    pages = [page(d, s) for d, s in zip(derivations, sections, strict=True)]
    proofs = [(s, _display(s.proofs)) for s in sections if s.proofs] if appendix else []
    common = {
        "pages": pages,
        "proofs": proofs,
        "proofs_title": _(PROOFS_TITLE),
        "not_in_chapter": _(NOT_IN_CHAPTER),
        # Once, at the top of a whole document: not above one derivation shown on its own.
        "legend": [_(line) for line in LEGEND] if standalone or len(pages) > 1 else [],
        "lang": active(),
    }
    if fmt == "markdown":
        return render("derivations.md.jinja", text=_md_text, prose=_md_prose, chunks=md_chunks, **common)
    return render("derivations.tex.jinja", standalone=standalone, text=_tex_text, prose=_tex_prose, **common)
