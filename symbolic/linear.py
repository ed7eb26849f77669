"""Affine: Y = X W + B on a batch, derived as the book does: entries at the figure's sizes, then shapes."""

from __future__ import annotations

import sympy as sp

from chainrule.symbolic.chain import L
from chainrule.symbolic.core import Assign, Derivation, Gradient, Graph, Identity, Partial, Step, node
from chainrule.symbolic.messages import N_

N, D, M = sp.symbols("N D M", integer=True, positive=True)
x = sp.MatrixSymbol("x", N, D)
W = sp.MatrixSymbol("W", D, M)
b = sp.MatrixSymbol("b", 1, M)
xW = sp.MatrixSymbol("xW", N, M)
out = sp.MatrixSymbol("out", N, M)
dout = sp.MatrixSymbol("dout", N, M)
ones = sp.OneMatrix(N, 1)

# The figure's sizes (図5-24, 5-25): one sample X of shape (2,), W of shape (2, 3), B and Y of shape (3,).
SIZE_D, SIZE_M = 2, 3
xs = sp.symbols(f"x1:{SIZE_D + 1}", real=True)
ws = sp.Matrix(SIZE_D, SIZE_M, lambda i, j: sp.Symbol(f"w{i + 1}{j + 1}", real=True))
bs = sp.symbols(f"b1:{SIZE_M + 1}", real=True)
ys = sp.symbols(f"y1:{SIZE_M + 1}", real=True)


class TraceRoute(Identity):
    """The matrix-calculus route to a gradient: SymPy differentiates the trace differential.

    Not the chapter's way (it writes the entries out); kept as a proof that both routes agree.
    """

    in_chapter = False


def _trace_route(graph: Graph, grads: dict) -> tuple[Identity, ...]:
    """dL = tr(G^T dY): the gradient by each input is SymPy's derivative of the trace."""
    trace = sp.Trace(dout.T * graph.definitions()[out])
    names = {x: r"\mathbf{X}", W: r"\mathbf{W}", b: r"\mathbf{B}"}
    first, *others = graph.inputs
    reason = N_(
        r"to first order $\mathrm{d}L = \operatorname{tr}"
        r"\left(\left(\frac{\partial L}{\partial \mathbf{Y}}\right)^{T} \mathrm{d}\mathbf{Y}\right)$,"
        r" and SymPy differentiates the trace by $\mathbf{X}$"
    )
    return (TraceRoute(sp.Derivative(trace, first), grads[first], reason),) + tuple(
        TraceRoute(sp.Derivative(trace, v), grads[v], N_("likewise by {v}", v="$" + names[v] + "$"))
        for v in others
    )


def _entries() -> tuple[sp.Tuple, tuple[sp.Basic, ...], sp.Matrix]:
    """The forward pass and the dot node's backward at the figure's sizes, entry by entry.

    Returns y's entries, dL/dx_i = sum_j dL/dy_j dy_j/dx_i and dL/dw_ij = dL/dy_j dy_j/dw_ij,
    each local derivative from ``sympy.diff``; ValueError if they are not the matrix products.
    """
    X, B = sp.Matrix([xs]), sp.Matrix([bs])
    Y = X * ws + B
    up = sp.Matrix([[Partial(L, v) for v in ys]])
    dx = tuple(sum(up[j] * sp.diff(Y[j], xi) for j in range(SIZE_M)) for xi in xs)
    dW = sp.Matrix(SIZE_D, SIZE_M, lambda i, j: sum(up[k] * sp.diff(Y[k], ws[i, j]) for k in range(SIZE_M)))
    if sp.expand(sp.Matrix([dx]) - up * ws.T) != sp.zeros(1, SIZE_D) or sp.expand(dW - X.T * up) != sp.zeros(
        SIZE_D, SIZE_M
    ):
        raise ValueError("the entries of the Affine gradients are not the matrix products")
    return sp.Tuple(*Y), dx, dW


def affine() -> Derivation:
    """dX = dout W^T, dW = X^T dout, dB = the column sums of dout."""
    graph = Graph(
        (x, W, b),
        (
            node(xW, "dot", (x, W), x * W),
            node(out, "+", (xW, b), xW + ones * b),
        ),
        out,
    )
    _, grads, _ = graph.backprop(dout)
    y_entries, dx, dW = _entries()
    forward = (
        Step(
            out,
            (graph.definitions()[out],),
            N_(
                r"the dot node, then the $+$ node, which adds $\mathbf{B}$ to each of the $N$ rows; the shapes,"
                r" as in the figure: $\mathbf{X}$ $(N, 2)$, $\mathbf{W}$ $(2, 3)$, $\mathbf{B}$ $(3,)$,"
                r" $\mathbf{Y}$ $(N, 3)$"
            ),
            introduces=(xW, N),
        ),
        Step(
            sp.Tuple(*ys),
            (y_entries,),
            N_(
                r"entry by entry for one sample ($N = 1$): $\mathbf{X} = (x_1, x_2)$,"
                r" $\mathbf{W} = (w_{ij})$ with $i = 1, 2$ and $j = 1, 2, 3$, $\mathbf{B} = (b_1, b_2, b_3)$"
            ),
            introduces=(*xs, *ws, *bs),
        ),
    )
    steps = (
        Step(
            sp.Tuple(Partial(L, xW), Partial(L, b)),
            (sp.Tuple(grads[xW], grads[b]),),
            N_(
                r"the $+$ node first: it passes $\frac{\partial L}{\partial \mathbf{Y}}$ on; $\mathbf{B}$ was added"
                r" to each of the $N$ rows, so its gradient sums $\frac{\partial L}{\partial \mathbf{Y}}$"
                r" over the batch (times $\mathbf{1}^{T}$, a row of $N$ ones), shape $(3,)$"
            ),
        ),
        Step(
            Partial(L, x),
            (sp.Tuple(*dx), grads[x]),
            N_(
                r"the dot node, entry by entry at $N = 1$: $\frac{\partial L}{\partial x_i} = \sum_j"
                r" \frac{\partial L}{\partial y_j} \frac{\partial y_j}{\partial x_i}$ and"
                r" $\frac{\partial y_j}{\partial x_i} = w_{ij}$, the entries of a product with $\mathbf{W}^{T}$;"
                r" on a batch it has $\mathbf{X}$'s shape, $(N, 2) = (N, 3) \cdot (3, 2)$"
            ),
        ),
        Step(
            Partial(L, W),
            (dW, grads[W]),
            N_(
                r"likewise $\frac{\partial L}{\partial w_{ij}} = x_i \frac{\partial L}{\partial y_j}$;"
                r" on a batch it has $\mathbf{W}$'s shape, $(2, 3) = (2, N) \cdot (N, 3)$,"
                r" and sums the $N$ samples' products"
            ),
        ),
    )
    return Derivation(
        name="affine",
        title=N_("Affine"),
        summary=N_(
            "The gradient of a matrix product is the upstream gradient times the other factor, transposed."
        ),
        forward=forward,
        graph=graph,
        steps=steps,
        backward=tuple(Gradient(v, grads[v]) for v in graph.inputs),
        cache=(x,),
        upstream=out,
        identities=_trace_route(graph, grads),
        compute=(Assign(out, graph.definitions()[out]),),
        notes=(
            N_(
                r"A 4-D input such as $(N, 1, 28, 28)$ is reshaped to $(N, 784)$ first and"
                r" $\frac{\partial L}{\partial \mathbf{X}}$ back to its shape."
            ),
        ),
    )
