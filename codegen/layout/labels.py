"""What the figures write: the book's figure numbers and captions, and the labels on their arrows."""

from __future__ import annotations

import sympy as sp

from chainrule.codegen.latex import LatexPrinter, book_word, cases
from chainrule.codegen.layout.geometry import Label
from chainrule.codegen.text import decimal, text
from chainrule.symbolic.chain import tidy
from chainrule.symbolic.core import Derivation, Example, Graph, Partial, Var
from chainrule.symbolic.messages import N_


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
