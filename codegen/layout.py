"""Where the chapter's pictures put things: one layout per graph, computed from its node list.

A layout is pure data, measured in drawing units (one unit is one SVG pixel, y
grows downwards); the SVG and TikZ renderers in :mod:`codegen.figures` only
draw it.  Variables are layered by depth, the longest path from an input:
inputs in the leftmost column, the output arrow ends in the rightmost one.  An
arrow that skips columns bends through one point per column it crosses, so
that every straight piece spans exactly one gap between columns.  Within a
column the order comes from barycenter sweeps (each point ordered by the mean
position of its neighbours) refined by swapping neighbours, which draws every
planar graph of the chapter without a crossing.  Each node then sits at the
mean height of the arrows feeding it, and its labels where they cover no line,
circle or other label, as far as the estimate of their size can tell.

Softmax-with-Loss (Fig. 5-29) is one row, as the book draws it: its labels t_k enter
late, at the nodes that use them, and a little less room between its columns keeps it on a
page.  Its simplified form (Fig. 5-30) is two boxes, placed directly.  Every figure names the
book's figure it redraws, and its labels are what the book writes on that figure: numbers for
the worked examples (forward only in section 5.1's, Figs. 5-1 to 5-4, which a reader may redraw
with inputs of their own), else the running products of the backward pass; a matrix's shape
above its forward value and below its backward one (Figs. 5-25, 5-27).  Variables are named in
the reader's language where the book has a word for them (りんご for apple).
"""

from __future__ import annotations

import math
import numbers
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache

import sympy as sp
from chainrule.codegen.i18n import _, active, translate
from chainrule.codegen.latex import LatexPrinter, book_word, cases
from chainrule.codegen.text import decimal, text
from chainrule.symbolic import graphs as shop
from chainrule.symbolic import softmax_loss
from chainrule.symbolic.chain import tidy
from chainrule.symbolic.core import Derivation, Example, Graph, Partial, Var, node, worked_example
from chainrule.symbolic.messages import N_

from chainrule import symbolic

ROW = 90.0  # vertical distance between neighbours in a column
FORWARD_ROW = 60.0  # the same in a figure with forward values only
SHAPE_ROW = 40.0  # more of it when the arrows also carry a matrix's shape, above and below
CHAR = 7.0  # estimated width of one character of a 12 px label
MIN_GAP = 110.0  # narrowest gap between two columns
PAD = 14.0  # room left and right of an arrow's label
ASCENT = 10.0  # height of a 12 px label above its baseline
DESCENT = 3.0  # and below it
MARGIN = 20.0
TITLE_CHAR = 9.2  # estimated width of one character of the 15 px bold title
WIDE = 1.7  # a Japanese character, in those widths: as wide as the font is high
TOP = 64.0  # room for the title and the labels above the first row
SWEEPS = 8  # rounds of barycenter ordering, down then up


@dataclass(frozen=True)
class Label:
    """One label, printed twice: plain Unicode for SVG, LaTeX math for TikZ."""

    text: str
    tex: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Placed:
    """A label placed on a picture, as TikZ places nodes: ``at`` is the point of its box
    named by ``anchor`` ("north west", "south", "east", "center", ...)."""

    label: Label
    at: Point
    anchor: str


@dataclass(frozen=True)
class Circle:
    """A node: its operation inside the circle; the variable it computes under it, unless the
    arrows already name it (``var`` is None)."""

    name: str
    op: Label
    at: Point
    r: float
    var: Placed | None
    box: tuple[float, float] | None = None  # a whole layer drawn as a box: its half width and height


@dataclass(frozen=True)
class VarLabel:
    """A graph input's name where its arrow starts (``at``), or the output's where its arrow ends."""

    name: str
    at: Point
    text: Placed


@dataclass(frozen=True)
class Arrow:
    """An edge from ``src`` to the node computing ``dst``; ``dst`` is None for the output arrow.

    ``points`` run from the source's boundary to the target's, bending once per
    column crossed.  The labels sit by the piece ``points[label_at:label_at + 2]``:
    the forward value above it, a short backward arrow under it, the backward
    value below that, and a matrix's shape above the forward value and below the
    backward value.
    """

    src: str
    dst: str | None
    points: tuple[Point, ...]
    label_at: int
    forward: Placed
    backward: Placed
    shape: Placed | None
    back_arrow: tuple[Point, Point]
    back_shape: Placed | None = None  # the backward value's shape, the same, under it (Figs. 5-25, 5-27)


@dataclass(frozen=True)
class Layout:
    """One picture of the chapter, ready to draw.

    ``numbers`` says the arrows carry numbers, so the variables are named
    beside them (inputs at the left, the output at the right, each node's
    variable under its circle); otherwise the arrows' labels are the names.
    """

    name: str
    title: str
    book: tuple[str, ...]
    numbers: bool
    circles: tuple[Circle, ...]
    inputs: tuple[VarLabel, ...]
    output: VarLabel
    arrows: tuple[Arrow, ...]
    width: float
    height: float
    bold: tuple[str, ...] = ()  # the letters that name matrices, bold as the LaTeX printer sets them


# --- labels -----------------------------------------------------------------------------------------


class _FigureLatexPrinter(LatexPrinter):
    """The document's LaTeX printer, needing no package beyond what TikZ loads, writing a product
    with the dot the SVG's labels have: y^2 \\cdot \\exp(-x), and 2(x + y) side by side."""

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__(settings)
        self._juxtapose = r" \cdot "

    def _print_Mul(self, expr: sp.Mul) -> str:
        num, den = sp.fraction(expr)
        if isinstance(den, sp.Mul) and not isinstance(expr, sp.MatrixExpr):
            # Inline, a product under the fraction bar needs its parentheses: -t_1/(S \cdot y_1).
            minus = num.could_extract_minus_sign()
            top = self.parenthesize(-num if minus else num, sp.printing.precedence.PRECEDENCE["Mul"])
            return ("- " if minus else "") + rf"{top} / \left({self._print(den)}\right)"
        return super()._print_Mul(expr).replace(r" \cdot \left(", r" \left(")

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        """The book's word for a shopping variable in the reader's language (りんご), as text in the math."""
        word = book_word(expr.name)
        return rf"\mbox{{{word}}}" if word is not None else super()._print_Symbol(expr, style=style)

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """Cases as a core-LaTeX array: amsmath's cases would make every figure need amsmath."""
        rows = [rf"{self._print(value)} & ({self._print(cond)})" for value, cond in cases(expr)]
        return r"\left\{\begin{array}{ll}" + r" \\ ".join(rows) + r"\end{array}\right."

    def _print_Partial(self, expr: sp.Basic) -> str:
        """Inline, dL/dy as the figures' labels write it: a stacked fraction is too small at their size."""
        return self._inline_partial(self._print(expr.num), expr.den)

    def _print_Partial_of(self, var: sp.Basic) -> str:
        """The upstream gradient inline, as :meth:`_print_Partial`."""
        return self._inline_partial(self._print(self._settings["loss"]), var)

    def _inline_partial(self, num: str, den: sp.Basic) -> str:
        shown = self._print(den)
        if not isinstance(den, sp.Symbol | sp.MatrixSymbol) or " " in shown or "\\cdot" in shown:
            shown = rf"\left({shown}\right)"
        return rf"\partial {num}/\partial {shown}"

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """A matrix product with the chapter's dot, which also ends an inline dL/dY before W^T."""
        return r" \cdot ".join(
            self.parenthesize(a, sp.printing.precedence.PRECEDENCE["Mul"]) for a in expr.args
        )

    def _print_exp(self, expr: sp.Basic, exp: str | None = None) -> str:
        """exp(-x), as the chapter writes it on its graphs, not e^{-x}."""
        tex = rf"\exp\left({self._print(expr.args[0])}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


def latex(expr: sp.Basic, upstream: sp.Basic | None = None, loss: sp.Basic | None = None) -> str:
    """:func:`codegen.latex.latex`, for a figure: fractions inline, as on one line of the picture."""
    settings = {
        "upstream": upstream,
        "loss": loss if loss is not None else sp.Symbol("L"),
        "fold_short_frac": True,
    }
    return _FigureLatexPrinter(settings).doprint(expr)


def _number(value: sp.Basic) -> Label:
    """An exact value as the chapter prints it: 2.2, 3.3, 110."""
    return Label(text(value), decimal(value) or latex(value))


def _expr(expr: sp.Basic, upstream: sp.Basic | None = None, loss: sp.Basic | None = None) -> Label:
    """An expression in the chapter's notation; a sum with its positive terms first, as y - t."""
    if not isinstance(expr, sp.Add) or not any(term.could_extract_minus_sign() for term in expr.args):
        return Label(text(expr, upstream, loss), latex(expr, upstream, loss))
    terms = sorted(expr.as_ordered_terms(), key=lambda term: term.could_extract_minus_sign())
    plain, tex = text(terms[0], upstream, loss), latex(terms[0], upstream, loss)
    for term in terms[1:]:
        minus = term.could_extract_minus_sign()
        shown = -term if minus else term
        plain += (" − " if minus else " + ") + text(shown, upstream, loss)
        tex += (" - " if minus else " + ") + latex(shown, upstream, loss)
    return Label(plain, tex)


_OP_TEX = {"×": r"\times ", "−": "-", "**2": r"{\ast}{\ast}2", "exp": r"\exp", "log": r"\log"}
# The chapter's square node reads "**2", as Python writes a square.
_OP_BOOK = {"^2": "**2"}


def _op(op: str) -> Label:
    """A node's operation as the chapter's figures write it; words upright in LaTeX, symbols as math."""
    op = _OP_BOOK.get(op, op)
    if op in _OP_TEX:
        return Label(op, _OP_TEX[op])
    if op.isalpha():
        return Label(op, rf"\mathrm{{{op}}}")
    return Label(op, "".join(_OP_TEX.get(ch, ch) for ch in op).strip())


def _shape(var: Var, sizes: dict[sp.Basic, int]) -> Label | None:
    """A matrix's shape as the chapter's figure writes it, (N, 2); a 1 x M row is NumPy's (3,), which b is.

    ``sizes`` are the figure's example sizes for the dimensions other than the batch's N.
    """
    if not isinstance(var, sp.MatrixSymbol):
        return None
    rows, cols = (sp.sympify(n).xreplace(sizes) for n in var.shape)
    dims = (cols,) if rows == 1 else (rows, cols)
    if len(dims) == 1:
        return Label(f"({text(dims[0])},)", rf"({latex(dims[0])},)")
    return Label(
        "(" + ", ".join(text(n) for n in dims) + ")",
        "(" + ", ".join(latex(n) for n in dims) + ")",
    )


Labels = dict[tuple[Var, Var | None], tuple[Label, Label]]

MAX_INLINE = 3  # operations: a value the chapter writes out on an arrow instead of naming it


def _numeric_labels(example: Example, output: Var, backward: bool = True) -> Labels:
    """A worked example's values: forward above each arrow, backward below (none on a forward-only figure)."""
    none = Label("", "")

    def back(value: sp.Basic) -> Label:
        return _number(value) if backward else none

    labels: Labels = {(e.src, e.dst): (_number(e.forward), back(e.backward)) for e in example.edges}
    labels[(output, None)] = (_number(example.value(output)), back(example.seed))
    return labels


def _unary(graph: Graph) -> dict[Var, sp.Basic]:
    """The variables of one-input nodes, written in the graph's inputs and the variables kept by name.

    The chapter names what a node of several inputs computes (t, S, y_k) and writes
    out what a one-input node makes of it (-x, exp(-x), 1 + exp(-x), 1/S, log y).
    """
    forms: dict[Var, sp.Basic] = {}
    for n in graph.nodes:
        if len(n.inputs) == 1 and n.out != graph.output and n.local[0] is not None:
            forms[n.out] = n.expr.xreplace(forms)
    return forms


def _in_output(graph: Graph, v: Var) -> sp.Basic | None:
    """``v`` written in the graph's output, when the nodes after it determine it alone (c = 1/y)."""
    env: dict[Var, sp.Basic] = {}
    after = False
    for n in graph.nodes:
        if n.out == v:
            after = True
        elif after:
            env[n.out] = n.expr.xreplace(env)
    out = graph.output
    if out not in env or env[out].free_symbols != {v}:
        return None
    return _solve_one(sp.Eq(out, env[out]), v)


def _solve_one(eq: sp.Eq, v: sp.Basic) -> sp.Basic | None:
    """The one solution of ``eq`` for ``v``; None when there are several, none, or SymPy cannot solve it
    (``out = max(0, min(1, a))`` has no inverse: the label keeps the variable's own name)."""
    try:
        solved = sp.solve(eq, v)
    except NotImplementedError:
        return None
    return solved[0] if len(solved) == 1 else None


def _backward_forms(graph: Graph) -> tuple[dict[Var, sp.Basic], dict[Var, sp.Basic], dict[sp.Basic, Var]]:
    """What the backward labels write for each intermediate variable; the same with more written out;
    and the way back from a written-out value to a named variable.

    A one-input node's variable, or one whose value in the inputs is short, is written
    in the graph's inputs or its output, whichever takes fewer operations: the "/"
    node's c as 1/y and exp's a as -x, so that the sigmoid's product reads
    dL/dy y^2 exp(-x) as the chapter's does.  The second map also writes out the
    named variables whose value is short in the others (y_k = exp(a_k)/S), and the
    third reads exp(a_k) back as S y_k: the labels take whichever form is shortest.
    """
    unary = _unary(graph)
    inputs = set(graph.inputs)
    plain: dict[Var, sp.Basic] = {}
    more: dict[Var, sp.Basic] = {}
    back: dict[sp.Basic, Var] = {}
    for n in graph.nodes:
        v = n.out
        if v == graph.output or n.local[0] is None:
            continue
        candidates = [n.expr.xreplace(plain)]
        solved = _in_output(graph, v)
        if solved is not None:
            candidates.append(solved)
        best = min(candidates, key=sp.count_ops)
        inline = n.expr.xreplace(more)
        short = sp.count_ops(inline) <= MAX_INLINE
        if v in unary or (short and inline.free_symbols <= inputs):
            plain[v] = best
            more[v] = best
        elif short:
            more[v] = inline
            heads = [f for f in inline.atoms(sp.Function) if f.free_symbols <= inputs]
            if len(heads) == 1:
                (head,) = heads
                solved_head = _solve_one(sp.Eq(v, inline), head)
                if solved_head is not None:
                    back[head] = solved_head
    return plain, more, back


def _simplest(expr: sp.Basic) -> sp.Basic:
    """A running product simplified by SymPy, branch by branch for a piecewise one."""
    expr = sp.piecewise_fold(expr)
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*((tidy(sp.factor(v)), c) for v, c in expr.args))
    return tidy(sp.factor(expr))


def _product(p: sp.Basic, dout: sp.Symbol, upstream: Var, loss: sp.Basic) -> Label:
    """A running product as the chapter writes it: the upstream gradient first, dL/dy y^2 exp(-x)."""
    if isinstance(p, sp.Piecewise):
        return _cases(p, dout, upstream, loss)
    rest = p / dout
    if dout not in p.free_symbols or dout in rest.free_symbols:
        return _expr(p, upstream, loss)
    sign = rest.could_extract_minus_sign()
    rest = tidy(-rest) if sign else rest
    up = _expr(Partial(loss, upstream))
    head = Label(("−" if sign else "") + up.text, ("-" if sign else "") + up.tex)
    if rest == 1:
        return head
    factor = _expr(rest)
    if rest.is_Add:
        factor = Label(f"({factor.text})", rf"\left({factor.tex}\right)")
    return Label(f"{head.text}·{factor.text}", rf"{head.tex} \cdot {factor.tex}")


def _cases(p: sp.Piecewise, dout: sp.Symbol, upstream: Var, loss: sp.Basic) -> Label:
    """A piecewise product as the chapter writes ReLU's: each value with its condition, (x > 0)."""
    texts, texes = [], []
    before: list[sp.Basic] = []
    for value, cond in p.args:
        if cond == sp.true:
            cond = sp.And(*(sp.Not(c) for c in before))
        before.append(cond)
        v = _product(value, dout, upstream, loss) if value != 0 else _number(sp.Integer(0))
        c = _expr(cond)
        texts.append(f"{v.text} ({c.text.replace('<=', '≤').replace('>=', '≥')})")
        texes.append(rf"{v.tex} \ ({c.tex})")
    return Label(", ".join(texts), r",\ ".join(texes))


def _symbolic_labels(d: Derivation, premise: dict[sp.Basic, sp.Basic] | None = None) -> Labels:
    """Values above the arrows, and below them the running product the chapter writes there.

    The product is what :meth:`Graph.backprop` sends back along the arrow, the
    upstream gradient times the local derivatives on the way, with the
    intermediate variables written as the chapter writes them and simplified by
    SymPy; of two ways to write it, the one with fewer operations.
    """
    graph = d.graph
    matrix = isinstance(graph.output, sp.MatrixSymbol)
    dout: Var
    if matrix:
        dout = sp.MatrixSymbol("dout", *graph.output.shape)
    else:
        dout = sp.Symbol("dout", real=True)
    seed = sp.Integer(1) if graph.output == d.loss else dout
    _, _, edges = graph.backprop(seed)
    forward = _unary(graph)
    plain, more, heads = _backward_forms(graph)
    named = sorted({v for value in heads.values() for v in value.free_symbols} - set(graph.inputs), key=str)
    labels: Labels = {}
    for e in edges:
        if matrix:
            back = _expr(e.backward, graph.output, d.loss)
        else:
            ways = [_simplest(e.backward.xreplace(plain)), _simplest(e.backward.xreplace(more))]
            if heads:
                again = sp.expand(sp.cancel(ways[1].xreplace(heads)))
                ways.append(sp.collect(again, named) if named else again)
            if premise:
                ways += [w.xreplace(premise) for w in ways]
            back = _product(min(ways, key=sp.count_ops), dout, graph.output, d.loss)
        labels[(e.src, e.dst)] = (_expr(e.src.xreplace(forward)), back)
    out = graph.output
    start = _number(sp.Integer(1)) if out == d.loss else _expr(Partial(d.loss, out))
    labels[(out, None)] = (_expr(out), start)
    return labels


# --- the layered drawing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    graph: Graph
    labels: Labels
    numbers: bool
    sizes: dict[sp.Basic, int] = field(default_factory=dict)
    outputs: tuple[Var, ...] = ()  # more than the graph's one output: a part of a larger graph
    late: tuple[Var, ...] = ()  # inputs that enter where they are used, not at the left (the labels t_k)
    gap: float = MIN_GAP  # the narrowest gap between two columns
    beside: float = 1.0  # the share of a label's width a sloping line's gap adds for it
    pad: float = PAD  # room left and right of an arrow's label
    row: float = ROW  # the distance between neighbours in a column


def _depths(graph: Graph, late: tuple[Var, ...] = ()) -> dict[Var, int]:
    """Longest path from an input, in edges; a late input one column before the first node using it."""
    depth: dict[Var, int] = {v: 0 for v in graph.inputs}
    for n in graph.nodes:
        depth[n.out] = 1 + max(depth[v] for v in n.inputs)
    for v in late:
        depth[v] = min(depth[n.out] for n in graph.nodes if v in n.inputs) - 1
    return depth


def _crossings(layers: list[list[str]], edges: list[tuple[str, str]], pos: dict[str, int]) -> int:
    """Pairs of straight pieces between the same two columns whose ends are in opposite orders."""
    by_column: dict[int, list[tuple[int, int]]] = {}
    column = {v: c for c, layer in enumerate(layers) for v in layer}
    for u, v in edges:
        by_column.setdefault(column[u], []).append((pos[u], pos[v]))
    count = 0
    for pieces in by_column.values():
        for i, (a, b) in enumerate(pieces):
            for c, d in pieces[i + 1 :]:
                count += (a - c) * (b - d) < 0
    return count


def _order(layers: list[list[str]], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Barycenter sweeps, down then up; keep the order with the fewest crossings (the first, on ties)."""
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for u, v in edges:
        succs.setdefault(u, []).append(v)
        preds.setdefault(v, []).append(u)

    def positions() -> dict[str, int]:
        return {v: i for layer in layers for i, v in enumerate(layer)}

    def sweep(indices: range, neighbours: dict[str, list[str]]) -> None:
        for c in indices:
            pos = positions()
            layers[c] = sorted(
                layers[c],
                key=lambda v: (
                    sum(pos[u] for u in neighbours[v]) / len(neighbours[v]) if v in neighbours else pos[v],
                    pos[v],
                ),
            )

    def transpose() -> None:
        """Swap neighbours in a column while that removes crossings (the classic refinement)."""
        pos = positions()

        def crossing(u: str, v: str) -> int:
            """Crossings between the pieces at u and those at v, with u above v."""
            return sum(
                pos[p] > pos[q] for side in (preds, succs) for p in side.get(u, ()) for q in side.get(v, ())
            )

        improved = True
        while improved:
            improved = False
            for layer in layers:
                for i in range(len(layer) - 1):
                    u, v = layer[i], layer[i + 1]
                    if crossing(v, u) < crossing(u, v):
                        layer[i], layer[i + 1] = v, u
                        pos[u], pos[v] = i + 1, i
                        improved = True

    best = [list(layer) for layer in layers]
    fewest = _crossings(layers, edges, positions())
    for _sweep in range(SWEEPS):
        sweep(range(1, len(layers)), preds)
        sweep(range(len(layers) - 2, -1, -1), succs)
        transpose()
        count = _crossings(layers, edges, positions())
        if count < fewest:
            best, fewest = [list(layer) for layer in layers], count
    return best


def _pack(desired: list[float], gaps: list[float]) -> list[float]:
    """The positions closest to ``desired`` (least squares) that keep the order, ``gaps[i]`` between
    the i-th and the next.

    Isotonic regression by pooling adjacent violators on desired[i] minus the room above i.
    """
    room = [0.0]
    for g in gaps[: len(desired) - 1]:
        room.append(room[-1] + g)
    blocks: list[list[float]] = []  # [sum, count]
    for i, want in enumerate(desired):
        blocks.append([want - room[i], 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out += [total / count] * int(count)
    return [z + room[i] for i, z in enumerate(out)]


def _rows(
    layers: list[list[str]], edges: list[tuple[str, str]], row: float, late: frozenset[str] = frozenset()
) -> dict[str, float]:
    """Vertical positions: inputs one row apart, then each point at the mean of its predecessors.

    Placing left to right, order kept and a row apart, centres every node on
    the arrows that feed it, as the chapter draws them.  An input that enters
    late (a label t_k) takes half a row beside its neighbour, and the node it
    feeds stays level with its other inputs.
    """
    preds: dict[str, list[str]] = {}
    for u, v in edges:
        preds.setdefault(v, []).append(u)
    y = {v: i * row for i, v in enumerate(layers[0])}
    for layer in layers[1:]:
        want: list[float | None] = []
        for v in layer:
            us = [u for u in preds.get(v, ()) if u not in late] or preds.get(v, [])
            want.append(sum(y[u] for u in us) / len(us) if us else None)
        # A late input sits half a row above its neighbour below it (or below the one above).
        for i in [*reversed(range(len(want))), *range(len(want))]:
            if want[i] is None and i + 1 < len(want) and want[i + 1] is not None:
                want[i] = want[i + 1] - row / 2  # type: ignore[operator]
            elif want[i] is None and i > 0 and want[i - 1] is not None:
                want[i] = want[i - 1] + row / 2  # type: ignore[operator]
        gaps = [row / 2 if a in late or b in late else row for a, b in zip(layer, layer[1:], strict=False)]
        y.update(zip(layer, _pack([w or 0.0 for w in want], gaps), strict=True))
    top = min(y.values())
    return {v: round(TOP + value - top, 1) for v, value in y.items()}


def _radius(op: str) -> float:
    return max(20.0, round(3.6 * len(op) + 8, 1))


def _columns(text: str) -> float:
    """A text's width in Latin characters: a Japanese character is as wide as its font size."""
    return sum(WIDE if unicodedata.east_asian_width(ch) in "WF" else 1.0 for ch in text)


def _width(label: Label) -> float:
    return CHAR * _columns(label.text)


def _title_width(title: str) -> float:
    """The room the title takes, in the reader's language."""
    return MARGIN + TITLE_CHAR * _columns(translate(title))


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _box(placed: Placed) -> Box:
    """The estimated extent of a placed label."""
    w, h = _width(placed.label), ASCENT + DESCENT
    left = placed.at.x - (0 if "west" in placed.anchor else w if "east" in placed.anchor else w / 2)
    top = placed.at.y - (0 if "north" in placed.anchor else h if "south" in placed.anchor else h / 2)
    return (left, top, left + w, top + h)


def _boxes(arrow: Arrow) -> list[Box]:
    """The estimated extent of an arrow's labels (a forward-only figure's arrows have no backward one)."""
    placed = (arrow.forward, arrow.backward, arrow.shape, arrow.back_shape)
    return [_box(p) for p in placed if p is not None and p.label.text]


def _below(at: Point, r: float) -> Point:
    """Where a node's variable is named: under its circle."""
    return Point(at.x, round(at.y + r + 3, 1))


def _var_label(label: Label, at: Point, r: float, lines: list[tuple[Point, Point]]) -> Placed:
    """A node's variable under its circle, or above it, or beside it: the first place no arrow crosses,
    with room for the arrowheads, which stand out beside the line they end; else a little further
    off, clear of the arrowheads; else the place the fewest arrows cross."""

    def near(gap: float) -> tuple[Placed, ...]:
        return (
            Placed(label, Point(at.x, round(at.y + r + gap, 1)), "north"),
            Placed(label, Point(at.x, round(at.y - r - gap, 1)), "south"),
        )

    places = (
        *near(3),
        Placed(label, Point(round(at.x - r * 0.7, 1), round(at.y + r * 0.7 + 2, 1)), "north east"),
        Placed(label, Point(round(at.x - r * 0.7, 1), round(at.y - r * 0.7 - 2, 1)), "south east"),
        *near(10),
    )

    def hits(placed: Placed, room: float) -> int:
        left, top, right, bottom = _box(placed)
        return sum(_crosses(p, q, (left - room, top - room, right + room, bottom + room)) for p, q in lines)

    return min(places, key=lambda placed: (hits(placed, 0.0), hits(placed, 5.0) > 0))


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crosses(p: Point, q: Point, box: Box) -> bool:
    """Whether the segment pq passes through the box (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = q.x - p.x, q.y - p.y
    for step, room in ((-dx, p.x - box[0]), (dx, box[2] - p.x), (-dy, p.y - box[1]), (dy, box[3] - p.y)):
        if step == 0:
            if room < 0:
                return False
            continue
        t = room / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def _clip(a: Point, b: Point, r: float) -> Point:
    """The point at distance ``r`` from ``a`` toward ``b``: where a line leaves a circle."""
    dx, dy = b.x - a.x, b.y - a.y
    length = (dx * dx + dy * dy) ** 0.5
    return Point(round(a.x + dx * r / length, 1), round(a.y + dy * r / length, 1))


def _build(spec: _Spec) -> Layout:
    graph = spec.graph
    depth = _depths(graph, spec.late)
    outs = spec.outputs or (graph.output,)
    last = max(depth[o] for o in outs) + 1
    OUT = "→"  # the end of the output arrow
    ends = {o: OUT + ("" if o == graph.output else o.name) for o in outs}
    ops = {n.out: n.op for n in graph.nodes}

    layers: list[list[str]] = [[] for _ in range(last + 1)]
    for v in graph.inputs:
        layers[depth[v]].append(v.name)
    for n in graph.nodes:
        layers[depth[n.out]].append(n.out.name)
    layers[last] += list(ends.values())

    # Every arrow as a chain of points, one per column; the bends are named after the arrow.
    chains: list[tuple[Var, Var | None, list[str]]] = []
    for n in graph.nodes:
        for v in n.inputs:
            bends = [f"{v.name}>{n.out.name}@{c}" for c in range(depth[v] + 1, depth[n.out])]
            for c, b in zip(range(depth[v] + 1, depth[n.out]), bends, strict=True):
                layers[c].append(b)
            chains.append((v, n.out, [v.name, *bends, n.out.name]))
    for o in outs:
        bends = [f"{o.name}>@{c}" for c in range(depth[o] + 1, last)]
        for c, b in zip(range(depth[o] + 1, last), bends, strict=True):
            layers[c].append(b)
        chains.append((o, None, [o.name, *bends, ends[o]]))
    edges = [(a, b) for _, _, ids in chains for a, b in zip(ids, ids[1:], strict=False)]

    layers = _order(layers, edges)
    shapes = any(isinstance(v, sp.MatrixSymbol) for v in graph.inputs)
    y = _rows(
        layers, edges, spec.row + SHAPE_ROW if shapes else spec.row, frozenset(v.name for v in spec.late)
    )
    column = {v: c for c, layer in enumerate(layers) for v in layer}
    radius = {v.name: _radius(op) for v, op in ops.items()}

    # Which piece of each chain carries the labels: the flattest, the first one on ties (near
    # the source, where the backward arrow ends).
    label_piece: dict[tuple[Var, Var | None], int] = {}
    for src, dst, ids in chains:
        slopes = [abs(y[b] - y[a]) for a, b in zip(ids, ids[1:], strict=False)]
        label_piece[(src, dst)] = min(range(len(slopes)), key=lambda i: (slopes[i], i))

    # Each gap between columns is as wide as the widest label on it needs.
    gaps = [spec.gap] * last
    for src, dst, ids in chains:
        i = label_piece[(src, dst)]
        a, b = ids[i], ids[i + 1]
        fwd, bwd = spec.labels[(src, dst)]
        shape = _shape(src, spec.sizes)
        widest = max(_width(fwd), _width(bwd), _width(shape) if shape else 0.0)
        # Where three lines or more fan out, their labels stand side by side: the most room.
        fan = sum(ids[0] == a for *_, ids in chains) > 2
        need = widest + 2 * (PAD if fan else spec.pad) + radius.get(a, 0.0) + radius.get(b, 0.0)
        if abs(y[b] - y[a]) >= 0.15 * spec.gap:
            # beside a sloping line, the labels stand to its left and to its right
            need += widest * (1.0 if fan else spec.beside)
        gaps[column[a]] = max(gaps[column[a]], need)
    left = MARGIN + (max(_width(_expr(v)) for v in graph.inputs) + 8 if spec.numbers else 0.0)
    xs = [left]
    for g in gaps:
        xs.append(round(xs[-1] + g, 1))
    at = {v: Point(xs[column[v]], y[v]) for v in column}

    # Labels sit where arrows are furthest apart: nearer the start of a piece whose end
    # several arrows meet at, nearer the end of one whose start several arrows leave; where
    # that would cover a line, a circle or another label, at the first place along the
    # piece that covers nothing (or the least).
    fan_in = {v: sum(1 for _, b in edges if b == v) for v in column}
    fan_out = {v: sum(1 for a, _ in edges if a == v) for v in column}
    drawn = []
    for src, dst, ids in chains:
        pts = [at[v] for v in ids]
        pts[0] = _clip(pts[0], pts[1], radius.get(ids[0], 0.0))
        pts[-1] = _clip(pts[-1], pts[-2], radius.get(ids[-1], 0.0))
        drawn.append((src, dst, ids, tuple(pts)))
    lines = [(p, q) for *_, pts in drawn for p, q in zip(pts, pts[1:], strict=False)]

    # With numbers on the arrows, the variables are named beside them: inputs at the left,
    # the output at the tip of its arrow, every other node's variable under its circle.
    named = spec.numbers
    circles = tuple(
        Circle(
            name=n.out.name,
            op=_op(n.op),
            at=at[n.out.name],
            r=radius[n.out.name],
            var=_var_label(_expr(n.out), at[n.out.name], radius[n.out.name], lines)
            if named and n.out not in outs
            else None,
        )
        for n in graph.nodes
    )
    inputs = tuple(
        VarLabel(v.name, at[v.name], Placed(_expr(v), Point(at[v.name].x - 6, at[v.name].y), "east"))
        for v in graph.inputs
    )
    tip = at[OUT]
    output = VarLabel(graph.output.name, tip, Placed(_expr(graph.output), Point(tip.x + 6, tip.y), "west"))
    taken = [(c.at.x - c.r, c.at.y - c.r, c.at.x + c.r, c.at.y + c.r) for c in circles]
    shown = [c.var for c in circles if c.var] + ([v.text for v in inputs] + [output.text] if named else [])
    taken += [_box(placed) for placed in shown]
    arrows = []
    for src, dst, ids, pts in drawn:
        i = label_piece[(src, dst)]
        preferred = 0.5 + 0.1 * ((fan_out[ids[i]] > 1) - (fan_in[ids[i + 1]] > 1))
        best: tuple[int, Arrow] | None = None
        for along in dict.fromkeys((preferred, 0.5, 0.35, 0.65, 0.25, 0.75)):
            arrow = _arrow(src, dst, pts, spec.labels[(src, dst)], _shape(src, spec.sizes), i, along)
            boxes = _boxes(arrow)
            hits = sum(_overlaps(box, other) for box in boxes for other in taken) + sum(
                _crosses(p, q, box) for box in boxes for p, q in lines
            )
            if best is None or hits < best[0]:
                best = (hits, arrow)
            if hits == 0:
                break
        assert best is not None
        arrows.append(best[1])
        taken += _boxes(best[1])
        if best[1].backward.label.text:
            lines.append(best[1].back_arrow)

    bounds = [box for a in arrows for box in _boxes(a)] + taken
    right = max(max(box[2] for box in bounds), output.at.x, _title_width(spec.title))
    bottom = max(max(box[3] for box in bounds), max(p.y for p in at.values()))
    return Layout(
        name=spec.name,
        title=spec.title,
        book=BOOK[spec.name][0] if spec.name in BOOK else (),
        numbers=spec.numbers,
        circles=circles,
        inputs=inputs,
        output=output,
        arrows=tuple(arrows),
        width=round(right + MARGIN, 1),
        height=round(bottom + MARGIN, 1),
        bold=_bold(graph),
    )


def _bold(graph: Graph) -> tuple[str, ...]:
    """The letters the labels write matrices with (X, W, b, Y), and the 1 of the row of ones, 1ᵀ."""
    names = {
        text(v) for v in (*graph.inputs, *(n.out for n in graph.nodes)) if isinstance(v, sp.MatrixSymbol)
    }
    letters = sorted({ch for name in names for ch in name if ch.isalpha()})
    return (*letters, "1") if letters else ()


def _arrow(
    src: Var,
    dst: Var | None,
    points: tuple[Point, ...],
    labels: tuple[Label, Label],
    shape: Label | None,
    piece: int,
    along: float,
) -> Arrow:
    """Place the labels by one piece, ``along`` its length from its start.

    On a flat piece the labels are centred above and below it; on a sloping
    one they stand beside it, each growing away from the line.
    """
    a, b = points[piece], points[piece + 1]
    dx, dy = b.x - a.x, b.y - a.y
    length = (dx * dx + dy * dy) ** 0.5
    nx, ny = -dy / length, dx / length  # the normal pointing down
    mid = Point(a.x + along * dx, a.y + along * dy)
    flat = abs(dy) < 0.15 * dx

    def p(x: float, y: float) -> Point:
        return Point(round(x, 1), round(y, 1))

    def place(label: Label, side: int, gap: float) -> Placed:
        """``side`` -1 above the piece, +1 below; ``gap`` from the line to the label."""
        x, y = mid.x + side * gap * nx, mid.y + side * gap * ny
        vertical = "north" if side > 0 else "south"
        if flat:
            lift = abs(dy / dx) * _width(label) / 2  # so that the line clears the label's ends
            return Placed(label, p(x, y + side * lift), vertical)
        grows_right = (side * nx) > 0
        return Placed(label, p(x, y), f"{vertical} {'west' if grows_right else 'east'}")

    off = 6.0
    back = (
        p(mid.x + 0.15 * dx + off * nx, mid.y + 0.15 * dy + off * ny),
        p(mid.x - 0.15 * dx + off * nx, mid.y - 0.15 * dy + off * ny),
    )
    forward = place(labels[0], -1, 4.0)
    backward = place(labels[1], 1, off + 6.0)  # clear of the backward arrow, tall ∂ included
    return Arrow(
        src=src.name,
        dst=dst.name if dst is not None else None,
        points=points,
        label_at=piece,
        forward=forward,
        backward=backward,
        shape=Placed(shape, p(forward.at.x, forward.at.y - ASCENT - DESCENT - 2), forward.anchor)
        if shape
        else None,
        back_arrow=back,
        back_shape=Placed(shape, p(backward.at.x, backward.at.y + ASCENT + DESCENT + 2), backward.anchor)
        if shape and labels[1].text
        else None,
    )


# --- the figures ------------------------------------------------------------------------------------


# The book's figures that ours redraw (numbers as printed in the chapter), and their captions.
BOOK: dict[str, tuple[tuple[str, ...], str]] = {
    "shopping_forward": (("5-1",), N_("Problem 1 solved on a computational graph")),
    "shopping_variables": (
        ("5-2",),
        N_("Problem 1 with the number of apples and the tax as variables outside the circles"),
    ),
    "shopping_two": (("5-3",), N_("Problem 2 solved on a computational graph")),
    "local_computation": (("5-4",), N_("Two apples and many other purchases")),
    "apple_derivative": (("5-5",), N_("Derivatives passed back by backpropagation")),
    "add": (("5-11",), N_("Backward of the add node, a worked example")),
    "mul": (("5-13",), N_("Backward of the multiply node, a worked example")),
    "chain_rule": (("5-8",), N_("The chain rule on the graph, read backward")),
    "apples": (("5-14",), N_("Backward of buying apples")),
    "apples_oranges": (("5-15",), N_("Backward of buying apples and oranges")),
    "relu": (("5-18",), N_("The ReLU layer's computational graph")),
    "sigmoid": (("5-19", "5-20"), N_("The Sigmoid layer's computational graph")),
    "sigmoid_simple": (("5-21", "5-22"), N_("The Sigmoid layer as one node: backward from its output y")),
    "affine": (("5-27",), N_("The batch Affine layer's computational graph, with each variable's shape")),
    "softmax_with_loss": (("5-29",), N_("The Softmax-with-Loss layer's computational graph")),
    "softmax_with_loss_simple": (("5-30",), N_("The Softmax-with-Loss layer, simplified")),
}


def figure_label(name: str) -> str:
    """Which of the book's figures ``name`` redraws: "Figure 5-8", "Figures 5-19/5-20"."""
    numbers = BOOK[name][0]
    if len(numbers) > 1:
        return N_("Figures {numbers}", numbers="/".join(numbers))
    return N_("Figure {number}", number=numbers[0])


def _title(name: str) -> str:
    """The figure's caption, the book's figure number first; translated where it is drawn."""
    return N_("{label}. {caption}", label=figure_label(name), caption=BOOK[name][1])


def _from_derivation(name: str, premise: dict[sp.Basic, sp.Basic] | None = None) -> _Spec:
    d = symbolic.derive(name)
    return _Spec(name, _title(name), d.graph, _symbolic_labels(d, premise), False)


# --- figures with numbers, which a reader may choose ------------------------------------------------


@dataclass(frozen=True)
class _Numbers:
    """A figure whose arrows carry numbers: the whole computation, the book's inputs, what is drawn."""

    graph: Graph  # every number of the problem an input of it
    values: dict[Var, sp.Basic]  # the book's numbers
    seed: sp.Basic = sp.Integer(1)
    inside: tuple[Var, ...] = ()  # inputs written in their node's circle, "×2", not drawn as arrows
    backward: bool = True  # False for the book's forward-only figures, 5-1 to 5-4


def _drawn(numbers: _Numbers, values: Mapping[Var, sp.Basic]) -> Graph:
    """The graph as drawn: a node with an input written inside its circle (×2) keeps its other inputs."""
    nodes = []
    for n in numbers.graph.nodes:
        inside = [v for v in n.inputs if v in numbers.inside]
        if not inside:
            nodes.append(n)
            continue
        rest = tuple(v for v in n.inputs if v not in numbers.inside)
        op = n.op + "".join(text(values[v]) for v in inside)
        nodes.append(node(n.out, op, rest, n.expr.xreplace({v: values[v] for v in inside})))
    kept = tuple(v for v in numbers.graph.inputs if v not in numbers.inside)
    return Graph(kept, tuple(nodes), numbers.graph.output)


def _example_numbers(name: str) -> _Numbers:
    """A derivation's own worked example: its graph, inputs and seed."""
    d = symbolic.derive(name)
    example = d.examples[0]
    return _Numbers(d.graph, dict(example.inputs), example.seed)


# Fig. 5-4's other purchases, 4000 in all, where symbolic.graphs does not name them.
OTHER = getattr(shop, "other", sp.Symbol("other", real=True))


def _book_values(graph: Graph, values: dict[Var, sp.Basic]) -> dict[Var, sp.Basic]:
    """The numbers of section 5.1 for ``graph``: those of the computational_graph derivation's worked
    example with these inputs (or more), else ``values`` (the same numbers, from the book)."""
    if "computational_graph" in symbolic.NAMES:
        wanted = {v.name for v in graph.inputs}
        examples = [
            {v.name: value for v, value in e.inputs} for e in symbolic.derive("computational_graph").examples
        ]
        for given in sorted((g for g in examples if wanted <= set(g)), key=len):
            return {v: sp.sympify(given[v.name]) for v in graph.inputs}
    return values


def _shopping(name: str, **how: object) -> _Numbers:
    """A figure of section 5.1 on the graph of one of the shopping problems."""
    graph = symbolic.derive(name).graph
    values = _book_values(graph, dict(symbolic.derive(name).examples[0].inputs))
    return _Numbers(graph, values, **how)  # type: ignore[arg-type]


def _local_computation() -> _Numbers:
    """Fig. 5-4: two apples, then the other purchases' 4000 added, then the tax."""
    apple, apple_num, tax = shop.apple, shop.apple_num, shop.tax
    graph = Graph(
        (apple, apple_num, OTHER, tax),
        (
            node(shop.apple_price, "×", (apple, apple_num), apple * apple_num),
            node(shop.all_price, "+", (shop.apple_price, OTHER), shop.apple_price + OTHER),
            node(shop.price, "×", (shop.all_price, tax), shop.all_price * tax),
        ),
        shop.price,
    )
    graph = getattr(shop, "local_computation_graph", lambda: graph)()
    values = {
        apple: sp.Integer(100),
        apple_num: sp.Integer(2),
        OTHER: sp.Integer(4000),
        tax: sp.Rational(11, 10),
    }
    return _Numbers(graph, _book_values(graph, values), inside=(apple_num, tax), backward=False)


_CONSTANTS = (shop.apple_num, shop.tax)
_NUMBERS: dict[str, Callable[[], _Numbers]] = {
    "shopping_forward": lambda: _shopping("apples", inside=_CONSTANTS, backward=False),
    "shopping_variables": lambda: _shopping("apples", backward=False),
    "shopping_two": lambda: _shopping("apples_oranges", backward=False),
    "local_computation": _local_computation,
    "apple_derivative": lambda: _shopping("apples", inside=_CONSTANTS),
    "add": lambda: _example_numbers("add"),
    "mul": lambda: _example_numbers("mul"),
    "apples": lambda: _example_numbers("apples"),
    "apples_oranges": lambda: _example_numbers("apples_oranges"),
}


# The upstream gradient a reader may choose too, where the figure's is not 1 (the add and mul nodes' 1.3).
UPSTREAM = "dout"


def _choices(numbers_: _Numbers) -> dict[str, Var | None]:
    """The inputs of a figure by name, and ``dout`` (None) where its upstream gradient is a choice."""
    chosen: dict[str, Var | None] = {v.name: v for v in numbers_.graph.inputs}
    if numbers_.seed != 1:
        chosen[UPSTREAM] = None
    return chosen


def inputs_of(name: str) -> tuple[str, ...]:
    """The inputs a reader may choose for the figure ``name`` (empty for a figure without numbers)."""
    return tuple(_choices(_NUMBERS[name]())) if name in _NUMBERS else ()


def _exact(value: object) -> sp.Basic | None:
    """A finite real number as an exact rational (0.1 is 1/10, as the reader means it); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | sp.Number):
        return None
    if isinstance(value, numbers.Rational):
        return sp.Rational(Fraction(value.numerator, value.denominator))
    number = float(value)  # written as Python writes it, 0.1 and not the binary fraction nearest to it
    return sp.Rational(repr(number)) if math.isfinite(number) else None


def _numbers_spec(name: str, given: Mapping[str, object] | None = None) -> _Spec:
    """The figure ``name`` with the book's numbers, or with the inputs ``given`` by name (ValueError
    names the valid inputs when one is not one of them or not a number)."""
    numbers_ = _NUMBERS[name]()
    by_name = _choices(numbers_)
    valid = ", ".join(by_name)
    values = dict(numbers_.values)
    seed = numbers_.seed
    for key, value in (given or {}).items():
        if key not in by_name:
            raise ValueError(
                _("{name} takes the inputs {valid}, not {key}", name=name, valid=valid, key=repr(key))
            )
        exact = _exact(value)
        if exact is None:
            raise ValueError(
                _(
                    "{key} must be a finite number, not {value}; {name} takes the inputs {valid}",
                    key=key,
                    value=repr(value)[:40],
                    name=name,
                    valid=valid,
                )
            )
        var = by_name[key]
        if var is None:
            seed = exact
        else:
            values[var] = exact
    drawn = _drawn(numbers_, values)
    example = worked_example(drawn, {v: values[v] for v in drawn.inputs}, seed)
    labels = _numeric_labels(example, drawn.output, numbers_.backward)
    # Without backward values under them, the arrows stand closer together.
    return _Spec(name, _title(name), drawn, labels, True, row=ROW if numbers_.backward else FORWARD_ROW)


def _layers_simple() -> Layout:
    """Fig. 5-30: the Softmax layer and the Cross Entropy Error layer as two boxes.

    Between them y_k forward and -t_k/y_k backward, the cross-entropy's local
    derivative from ``sympy.diff``; before Softmax, y_k - t_k, the running
    product that the whole graph of Fig. 5-29 sends back to a_k.
    """
    d = symbolic.derive("softmax_with_loss")
    a, y, t = softmax_loss.a, softmax_loss.y, softmax_loss.t
    full = _symbolic_labels(d, _ONE_HOT)
    loss = next(s for s in d.forward if s.lhs == d.loss).rhs[-1]  # L = -sum_k t_k log y_k
    row, gap = 56.0, 150.0
    data_row = 30.0  # the labels t_k carry nothing back: their arrows closer together
    soft_w, cee_w = 45.0, 80.0  # half widths of the two boxes, room for "Cross Entropy Error"
    top = TOP + 10.0
    rows = [top + k * row for k in range(len(a))]
    soft_x = MARGIN + gap
    soft = Circle(
        "softmax",
        Label("Softmax", r"\mathrm{Softmax}"),
        Point(soft_x, rows[1]),
        0.0,
        None,
        (soft_w, row * 1.5),
    )
    cee_x = soft_x + soft_w + gap + cee_w
    cee_rows = rows + [rows[-1] + row + k * data_row for k in range(len(t))]
    middle = (cee_rows[0] + cee_rows[-1]) / 2
    cee = Circle(
        "cross_entropy_error",
        Label("Cross Entropy Error", r"\mathrm{Cross\ Entropy\ Error}"),
        Point(cee_x, round(middle, 1)),
        0.0,
        None,
        (cee_w, round((cee_rows[-1] - cee_rows[0]) / 2 + row / 2, 1)),
    )
    arrows = []
    for k in range(len(a)):
        into = Point(soft_x - soft_w, rows[k])
        arrows.append(
            _arrow(
                a[k],
                sp.Symbol("softmax"),
                (Point(MARGIN, rows[k]), into),
                (_expr(a[k]), full[(a[k], softmax_loss.e[k])][1]),
                None,
                0,
                0.5,
            )
        )
        back = _expr(sp.diff(loss, y[k]))
        ends = (Point(soft_x + soft_w, rows[k]), Point(cee_x - cee_w, rows[k]))
        arrows.append(_arrow(y[k], sp.Symbol("cross_entropy_error"), ends, (_expr(y[k]), back), None, 0, 0.5))
    for k in range(len(t)):
        ends = (Point(soft_x + soft_w, cee_rows[len(a) + k]), Point(cee_x - cee_w, cee_rows[len(a) + k]))
        arrows.append(
            _arrow(t[k], sp.Symbol("cross_entropy_error"), ends, (_expr(t[k]), Label("", "")), None, 0, 0.5)
        )
    out_at = Point(cee_x + cee_w, round(middle, 1))
    tip = Point(out_at.x + 110.0, out_at.y)
    arrows.append(_arrow(d.loss, None, (out_at, tip), (_expr(d.loss), _number(sp.Integer(1))), None, 0, 0.5))
    title = _title("softmax_with_loss_simple")
    output = VarLabel(d.loss.name, tip, Placed(_expr(d.loss), Point(tip.x + 6, tip.y), "west"))
    inputs = tuple(
        VarLabel(v.name, Point(MARGIN, rows[k]), Placed(_expr(v), Point(MARGIN - 6, rows[k]), "east"))
        for k, v in enumerate(a)
    )
    bottom = max(cee.at.y + cee.box[1], max(b[3] for arrow in arrows for b in _boxes(arrow)))
    return Layout(
        name="softmax_with_loss_simple",
        title=title,
        book=BOOK["softmax_with_loss_simple"][0],
        numbers=False,
        circles=(soft, cee),
        inputs=inputs,
        output=output,
        arrows=tuple(arrows),
        width=round(max(tip.x, _title_width(title)) + MARGIN, 1),
        height=round(bottom + MARGIN, 1),
    )


# The chapter's labels are one-hot, so they sum to one: the premise its Fig. 5-29 simplifies with.
_ONE_HOT: dict[sp.Basic, sp.Basic] = {sp.Add(*softmax_loss.t): sp.Integer(1)}


def _affine() -> _Spec:
    """Fig. 5-27: shapes at the book's example sizes, X of (N, 2) and W of (2, 3)."""
    spec = _from_derivation("affine")
    rows, cols = spec.graph.inputs[1].shape  # W is D x M
    return replace(spec, sizes={rows: 2, cols: 3})


def _softmax_with_loss() -> _Spec:
    """Fig. 5-29 in one row, left to right: nothing goes back along the labels t_k, which are data."""
    spec = _from_derivation("softmax_with_loss", _ONE_HOT)
    labels = dict(spec.labels)
    for (src, dst), (forward, _backward) in spec.labels.items():
        if src in softmax_loss.t:
            labels[(src, dst)] = (forward, Label("", ""))
    return replace(spec, labels=labels, late=softmax_loss.t, gap=80.0, beside=0.75, pad=8.0)


def _sigmoid_simple() -> _Spec:
    """Fig. 5-21/5-22: the whole sigmoid as one node, its backward in its output alone."""
    d = symbolic.derive("sigmoid")
    x, out = d.graph.inputs[0], d.graph.output
    graph = Graph((x,), (node(out, "sigmoid", (x,), d.forward[0].rhs[0]),), out)
    dout = sp.Symbol("dout", real=True)
    labels: Labels = {
        (x, out): (_expr(x), _product(d.backward[0].expr, dout, out, d.loss)),
        (out, None): (_expr(out), _expr(Partial(d.loss, out))),
    }
    return _Spec("sigmoid_simple", _title("sigmoid_simple"), graph, labels, False)


_SPECS: dict[str, Callable[[], _Spec]] = {
    **{name: (lambda name=name: _numbers_spec(name)) for name in _NUMBERS},
    "chain_rule": lambda: _from_derivation("chain_rule"),
    "relu": lambda: _from_derivation("relu"),
    "sigmoid": lambda: _from_derivation("sigmoid"),
    "sigmoid_simple": _sigmoid_simple,
    "affine": _affine,
    "softmax_with_loss": _softmax_with_loss,
}
# Pictures drawn by hand from their derivation, not laid out as a graph of nodes.
_LAYOUTS: dict[str, Callable[[], Layout]] = {"softmax_with_loss_simple": _layers_simple}
# In the chapter's order: section 5.1's figures first, each derivation's in the book's order.
FIGURES: tuple[str, ...] = (
    "shopping_forward",
    "shopping_variables",
    "shopping_two",
    "local_computation",
    "apple_derivative",
    "chain_rule",
    "add",
    "mul",
    "apples",
    "apples_oranges",
    "relu",
    "sigmoid",
    "sigmoid_simple",
    "affine",
    "softmax_with_loss",
    "softmax_with_loss_simple",
)
assert set(FIGURES) == {*_SPECS, *_LAYOUTS}


class UnknownFigure(KeyError):
    """A name that is not one of the figures."""

    def __str__(self) -> str:
        return f"unknown figure {self.args[0]!r}; valid names: {', '.join(FIGURES)}"


@cache
def _layout(name: str, lang: str) -> Layout:
    """The layout of the figure called ``name`` in the language ``lang``, computed once per process."""
    if name in _LAYOUTS:
        return _LAYOUTS[name]()
    try:
        spec = _SPECS[name]
    except KeyError:
        raise UnknownFigure(name) from None
    return _build(spec())


def layout_for(name: str) -> Layout:
    """The layout of the figure called ``name``, in the reader's language (its labels are the book's words)."""
    return _layout(name, active())


layout_for.cache_clear = _layout.cache_clear  # type: ignore[attr-defined]


def layout_with(name: str, values: Mapping[str, object]) -> Layout:
    """The figure ``name`` redrawn with the reader's own input values, by the same exact backprop.

    ValueError, in one line naming the valid inputs, for a figure without numbers, an unknown input
    or a value that is not a finite number.
    """
    if name not in FIGURES:
        raise UnknownFigure(name)
    if name not in _NUMBERS:
        raise ValueError(
            _(
                "the figure {name} has no input values to choose; figures that take them: {names}",
                name=name,
                names=", ".join(n for n in FIGURES if n in _NUMBERS),
            )
        )
    return _build(_numbers_spec(name, values))
