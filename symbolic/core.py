"""The data a derivation is made of, and the one backward pass that fills it in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import sympy as sp

Var = sp.Symbol | sp.MatrixSymbol
LOSS = sp.Symbol("L", real=True)


class Partial(sp.Expr):
    """Unevaluated partial derivative of one variable by another, printed as a fraction."""

    is_commutative = True

    def __new__(cls, num: sp.Basic, den: sp.Basic) -> Partial:
        return sp.Expr.__new__(cls, num, den)

    @property
    def num(self) -> sp.Basic:
        return self.args[0]

    @property
    def den(self) -> sp.Basic:
        return self.args[1]


class Chain(sp.Expr):
    """A product kept in the order written: the chain rule reads left to right."""

    is_commutative = True


def chain(loss: sp.Basic, *path: Var) -> sp.Basic:
    """dL/d(path[-1]) as the product of partials along ``path``, output first."""
    factors = [Partial(loss, path[0])] if path[0] != loss else []
    factors += [Partial(a, b) for a, b in zip(path, path[1:], strict=False)]
    return factors[0] if len(factors) == 1 else Chain(*factors)


@dataclass(frozen=True)
class Node:
    """One operation of a computational graph: ``out = expr(inputs)``."""

    out: Var
    op: str
    inputs: tuple[Var, ...]
    expr: sp.Basic
    upstream: Var
    local: tuple[sp.Basic | None, ...]
    vjp: tuple[sp.Basic, ...]


def node(out: Var, op: str, inputs: Sequence[Var], expr: sp.Basic) -> Node:
    """Build a node; its local derivatives come from ``sympy.diff``.

    For a scalar node the local derivative is d(out)/d(input) and the backward
    contribution is upstream times it.  For a matrix node there is no scalar
    local derivative; the contribution is the derivative of the trace
    differential tr(G^T dY), which is SymPy's matrix calculus.
    """
    inputs = tuple(inputs)
    if isinstance(out, sp.MatrixSymbol):
        g = sp.MatrixSymbol("G_" + out.name, *out.shape)
        pairing = sp.Trace(g.T * expr)
        vjp = tuple(sp.diff(pairing, v) for v in inputs)
        return Node(out, op, inputs, expr, g, tuple(None for _ in inputs), vjp)
    g = sp.Symbol("g_" + out.name, real=True)
    local = tuple(sp.diff(expr, v) for v in inputs)
    return Node(out, op, inputs, expr, g, local, tuple(g * d for d in local))


@dataclass(frozen=True)
class Edge:
    """An arrow of the graph: ``src`` feeding ``dst``, with both passes' values."""

    src: Var
    dst: Var
    forward: sp.Basic
    backward: sp.Basic


@dataclass(frozen=True)
class Graph:
    """A computational graph: inputs, nodes in forward order, one output."""

    inputs: tuple[Var, ...]
    nodes: tuple[Node, ...]
    output: Var

    def definitions(self) -> dict[Var, sp.Basic]:
        """Each node's output in terms of the graph's inputs."""
        env: dict[Var, sp.Basic] = {}
        for n in self.nodes:
            env[n.out] = n.expr.xreplace(env) if env else n.expr
        return env

    def backprop(
        self, seed: sp.Basic, values: Mapping[Var, sp.Basic] | None = None
    ) -> tuple[dict[Var, sp.Basic], dict[Var, sp.Basic], tuple[Edge, ...]]:
        """Run forward, then backward in reverse node order, summing over branches.

        Returns the forward value of every variable, the gradient of the output
        with respect to every variable, and every edge with both values.  With
        ``values`` the inputs are numbers (exact rationals) and so is everything.
        """
        fwd: dict[Var, sp.Basic] = dict(values or {})
        for n in self.nodes:
            fwd[n.out] = _evaluate(n.expr, fwd) if values is not None else n.out
        grads: dict[Var, sp.Basic] = {self.output: seed}
        edges: list[Edge] = []
        for n in reversed(self.nodes):
            g = grads[n.out]
            for v, vjp in zip(n.inputs, n.vjp, strict=True):
                contrib = vjp.xreplace({n.upstream: g})
                if values is not None:
                    contrib = _evaluate(contrib, fwd)
                edges.append(Edge(v, n.out, fwd.get(v, v), contrib))
                grads[v] = grads[v] + contrib if v in grads else contrib
        return fwd, grads, tuple(reversed(edges))


def _evaluate(expr: sp.Basic, values: Mapping[Var, sp.Basic]) -> sp.Basic:
    """Substitute numbers for symbols; SymPy evaluates the result exactly."""
    return expr.xreplace(dict(values)) if values else expr


def tex(expr: sp.Basic) -> str:
    """``expr`` as inline math for a reason, in SymPy's LaTeX with the output ``out`` written y."""
    names = {s: "y" for s in expr.free_symbols if getattr(s, "name", "") == "out"}
    return "$" + sp.latex(expr, symbol_names=names) + "$"


def literal(text: str) -> str:
    """A user's text for a reason or summary: its dollar signs are dollars, not math."""
    return text.replace("$", r"\$")


@dataclass(frozen=True)
class Step:
    """One equation of a derivation, with the reason it holds.

    Reasons, summaries and notes are prose with inline math between dollar signs
    (``"the / node's $-1/c^2$ is $-y^2$"``), so every printer can typeset the math;
    a literal dollar is written ``\\$``.  ``introduces`` are the symbols the reason introduces
    (a count, an index): a step may use them as if a forward step had defined them.
    """

    lhs: sp.Basic
    rhs: tuple[sp.Basic, ...]
    reason: str
    introduces: tuple[sp.Basic, ...] = ()


@dataclass(frozen=True)
class Identity:
    """A proved equality, e.g. a numerically safe form equal to the derived one."""

    lhs: sp.Basic
    rhs: sp.Basic
    reason: str
    where: tuple[tuple[Var, sp.Basic], ...] = ()
    split: sp.Symbol | None = None  # a real variable whose sign picks branches (Piecewise, Abs, Max)
    # False for a route the chapter does not take (kept as a proof that both agree): the documents
    # show such an identity in the appendix's proofs, never in the chapter.
    in_chapter: ClassVar[bool] = True

    def holds(self) -> bool:
        """True when SymPy proves lhs - rhs is zero after substituting ``where`` (see ``prove``)."""
        return _was_proved(self) or prove(self.lhs, self.rhs, self.where, self.split)


# Identities proved in another process and handed back: chainrule/packages/bounded.py proves those of a
# user's specs in a child with time and memory limits, so that no proof runs unbounded here.
_PROVED: set[Identity] = set()


def proved(identity: Identity) -> None:
    """Let ``identity.holds()`` return True from now on in this process: it was proved elsewhere."""
    try:
        _PROVED.add(identity)
    except TypeError:  # a matrix identity (unhashable): proved again when asked; none comes from a spec
        pass


def _was_proved(identity: Identity) -> bool:
    try:
        return identity in _PROVED
    except TypeError:
        return False


def prove(
    a: sp.Basic, b: sp.Basic, where: Sequence[tuple[Var, sp.Basic]] = (), split: sp.Symbol | None = None
) -> bool:
    """SymPy shows a - b is zero after substituting ``where``: the one proof of every identity.

    A derivative of a trace by a matrix is taken first.  With ``split`` the proof is made for the
    variable positive, negative and zero: on each the branches (Piecewise, Abs, Max) are decided,
    so SymPy can simplify them away (faster than it gives up on the undecided ones).
    """
    if isinstance(a, sp.Derivative):
        a = sp.diff(a.expr, *a.variables)
    diff = (a - b).subs(dict(where))
    if isinstance(diff, sp.MatrixBase):
        return diff.applyfunc(sp.simplify).is_zero_matrix
    if isinstance(diff, sp.MatrixExpr):
        return diff.doit().is_ZeroMatrix is True
    if split is None:
        return _is_zero(diff)
    p = sp.Dummy("p", positive=True)
    return all(_is_zero(diff.subs(split, v), logs=True) for v in (p, -p, sp.Integer(0)))


def _is_zero(expr: sp.Expr, logs: bool = False) -> bool:
    """SymPy shows ``expr`` is zero: expanded (fast), simplified, in exp (and with ``logs``, logs split)."""
    if sp.expand(expr) == 0 or sp.simplify(expr) == 0:
        return True
    plain = expr.rewrite(sp.exp)
    return sp.simplify(plain) == 0 or logs and sp.simplify(sp.expand_log(plain, force=True)) == 0


@dataclass(frozen=True)
class Gradient:
    """A backward result: the gradient with respect to ``wrt``, in terms of the cache."""

    wrt: Var
    expr: sp.Basic

    @property
    def name(self) -> str:
        return "d" + self.wrt.name


@dataclass(frozen=True)
class Example:
    """The chapter's worked numbers for one graph, computed exactly."""

    inputs: tuple[tuple[Var, sp.Basic], ...]
    seed: sp.Basic
    forward: tuple[tuple[Var, sp.Basic], ...]
    grads: tuple[tuple[Var, sp.Basic], ...]
    edges: tuple[Edge, ...]

    def value(self, var: Var) -> sp.Basic:
        return dict(self.forward)[var]

    def grad(self, var: Var) -> sp.Basic:
        return dict(self.grads)[var]


def worked_example(graph: Graph, inputs: Mapping[Var, object], seed: object = 1) -> Example:
    """Evaluate a graph forward and backward in exact arithmetic."""
    exact = {k: sp.nsimplify(v) for k, v in inputs.items()}
    fwd, grads, edges = graph.backprop(sp.nsimplify(seed), exact)
    order = list(graph.inputs) + [n.out for n in graph.nodes]
    return Example(
        inputs=tuple((k, exact[k]) for k in graph.inputs),
        seed=sp.nsimplify(seed),
        forward=tuple((v, fwd[v]) for v in order),
        grads=tuple((v, grads[v]) for v in order if v in grads),
        edges=edges,
    )


@dataclass(frozen=True)
class Assign:
    """One line of a layer's forward pass: ``target = expr``, in the layer's variables."""

    target: Var
    expr: sp.Basic


@dataclass(frozen=True)
class Kernel:
    """A numerically safe function the layers call, with its proof of equality.

    ``body`` computes the same values as the derived form wherever both are
    finite; ``proofs`` are the identities SymPy checked to say so.
    """

    name: str
    params: tuple[sp.Symbol, ...]
    body: sp.Basic
    doc: str
    proofs: tuple[Identity, ...] = ()
    # For a kernel of scores and labels: ``body`` takes label rows (distributions, one-hot rows),
    # ``labels_body`` integer class indices, one per row.
    labels_body: sp.Basic | None = None

    def __call__(self, *args: sp.Basic) -> sp.Basic:
        return sp.Function(self.name)(*args)


class RowMax(sp.Function):
    """The maximum of each row of a batch, kept as a column so it broadcasts."""


class RowSum(sp.Function):
    """The sum of each row of a batch, kept as a column so it broadcasts."""


class Total(sp.Function):
    """The sum of every entry of an array."""


class Pick(sp.Function):
    """Row i's entry in column t_i: the probability of each sample's label."""


class Tiny(sp.Function):
    """The smallest positive normal number of an array's float type."""


@dataclass(frozen=True)
class Derivation:
    """Everything the chapter says about one layer or graph, derived by SymPy."""

    name: str
    title: str
    summary: str
    forward: tuple[Step, ...]
    graph: Graph | None
    steps: tuple[Step, ...]
    backward: tuple[Gradient, ...]
    cache: tuple[Var, ...] = ()
    upstream: Var | None = None
    loss: sp.Basic = LOSS
    examples: tuple[Example, ...] = ()
    identities: tuple[Identity, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    compute: tuple[Assign, ...] = ()
    kernels: tuple[Kernel, ...] = ()
    variants: tuple[tuple[str, tuple[Gradient, ...]], ...] = ()
    # Forward lines that replace those of ``compute`` with the same targets, one set per variant.
    compute_variants: tuple[tuple[str, tuple[Assign, ...]], ...] = ()

    def gradient(self, name: str) -> Gradient:
        """The backward result called ``name`` (``dx``, ``dW``, ...)."""
        for g in self.backward:
            if g.name == name:
                return g
        raise KeyError(name)

    # How a derivation shows itself: in Jupyter, and as LaTeX, Markdown or SVG text. The printers
    # live downstream (codegen, and chainrule's MathML), so these methods import chainrule.codegen.display
    # when called, never when symbolic is imported. This is the one place where the data flow
    # bends back: the derivation stays pure data, and symbolic/ loads no printer of its own.

    def latex(self) -> str:
        """This derivation as a LaTeX fragment (amsmath): forward, local derivatives, chain rule, result."""
        return _display().latex(self)

    def markdown(self) -> str:
        """This derivation as Markdown with $-math, as GitHub and Jupyter render it."""
        return _display().markdown(self)

    def figure(self, **values: object) -> str:
        """The computational graph of this derivation as an SVG document (UnknownFigure if none is drawn).

        With values, a figure with numbers is redrawn with the reader's inputs, ``apple=150``, by the
        same exact backprop; an unknown input or a value that is no number is a ValueError naming the
        valid inputs.
        """
        return _display().figure(self, **values)

    def explore(self, **values: object) -> Any:
        """This derivation's figures made live, as a Jupyter widget: change an input and every forward
        and backward value is computed again, in the browser, by the JavaScript printed from this
        derivation (the same as ``chainrule explore``'s page).

        ``values`` are the first inputs (``apple=150``); an unknown input or a value that is no number
        is a ValueError naming the valid inputs, as for :meth:`figure`. It needs anywidget
        (``pip install 'chainrule[notebook]'``): without it, an ImportError says so.
        """
        return _display().explore(self, **values)

    def _repr_latex_(self) -> str:
        """Jupyter's LaTeX view (nbconvert puts it in a PDF as it is)."""
        return self.latex()

    def _repr_html_(self) -> str:
        """Jupyter's HTML view: the math as MathML and the figures as inline SVG."""
        return _display().html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text view: the name and title, not the whole dataclass."""
        printer.text(f"<Derivation {self.name}: {self.title}>")


def _display() -> ModuleType:
    """chainrule.codegen.display, imported on first use (see Derivation.latex)."""
    from chainrule.codegen import display

    return display
