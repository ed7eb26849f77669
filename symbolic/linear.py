"""Affine: Y = X W + b on a batch, derived with SymPy's matrix calculus."""

from __future__ import annotations

import sympy as sp

from symbolic.chain import L, op_node
from symbolic.core import Assign, Derivation, Gradient, Graph, Identity, Partial, Step, chain, node
from symbolic.messages import N_

N, D, M = sp.symbols("N D M", integer=True, positive=True)
x = sp.MatrixSymbol("x", N, D)
W = sp.MatrixSymbol("W", D, M)
b = sp.MatrixSymbol("b", 1, M)
xW = sp.MatrixSymbol("xW", N, M)
out = sp.MatrixSymbol("out", N, M)
dout = sp.MatrixSymbol("dout", N, M)
ones = sp.OneMatrix(N, 1)


def _elementwise(n: int = 2, d: int = 3, m: int = 2) -> tuple[Identity, ...]:
    """At a concrete size, differentiate entry by entry and compare with the matrix forms."""
    X = sp.Matrix(n, d, lambda i, j: sp.Symbol(f"x_{i + 1}{j + 1}"))
    Wm = sp.Matrix(d, m, lambda i, j: sp.Symbol(f"w_{i + 1}{j + 1}"))
    bm = sp.Matrix(1, m, lambda i, j: sp.Symbol(f"b_{j + 1}"))
    G = sp.Matrix(n, m, lambda i, j: sp.Symbol(f"g_{i + 1}{j + 1}"))
    Y = X * Wm + sp.ones(n, 1) * bm
    # The loss seen from Y is linear to first order: dL = sum_ij g_ij dY_ij.
    loss = sum(G[i, j] * Y[i, j] for i in range(n) for j in range(m))
    by = lambda A: A.applyfunc(lambda v: sp.diff(loss, v))  # noqa: E731
    size = {"n": n, "d": d, "m": m}
    return (
        Identity(
            by(X),
            G * Wm.T,
            N_(
                "entry by entry at $N = {n}$, $D = {d}$, $M = {m}$: "
                r"$\frac{{\partial L}}{{\partial X}} = \frac{{\partial L}}{{\partial Y}} W^T$",
                **size,
            ),
        ),
        Identity(
            by(Wm),
            X.T * G,
            N_(
                "entry by entry at $N = {n}$, $D = {d}$, $M = {m}$: "
                r"$\frac{{\partial L}}{{\partial W}} = X^T \frac{{\partial L}}{{\partial Y}}$",
                **size,
            ),
        ),
        Identity(
            by(bm),
            sp.ones(1, n) * G,
            N_(
                "entry by entry at $N = {n}$, $D = {d}$, $M = {m}$: "
                r"$\frac{{\partial L}}{{\partial b}}$ sums $\frac{{\partial L}}{{\partial Y}}$ over the batch",
                **size,
            ),
        ),
    )


def affine() -> Derivation:
    """dX = dout W^T, dW = X^T dout, db = column sums of dout."""
    graph = Graph(
        (x, W, b),
        (
            node(xW, "dot", (x, W), x * W),
            node(out, "+", (xW, b), xW + ones * b),
        ),
        out,
    )
    _, grads, _ = graph.backprop(dout)
    trace = sp.Trace(dout.T * (x * W + ones * b))
    steps = [
        Step(
            sp.Symbol("dL"),
            (sp.Trace(dout.T * sp.MatrixSymbol("dY", N, M)),),
            N_(r"to first order the loss changes by the upstream gradient paired with $\mathrm{d}Y$"),
        )
    ]
    for v in graph.inputs:
        steps.append(
            Step(
                Partial(L, v),
                (sp.Derivative(trace, v), grads[v]),
                N_("SymPy's matrix derivative of the trace differential"),
            )
        )
    steps.append(
        Step(Partial(L, xW), (chain(L, out, xW), grads[xW]), N_("the + node passes the gradient on"))
    )
    return Derivation(
        name="affine",
        title=N_("Affine"),
        summary=N_(
            "The gradient of a matrix product is the upstream gradient times the other factor, transposed."
        ),
        forward=tuple(Step(n.out, (n.expr,), op_node(n.op)) for n in graph.nodes),
        graph=graph,
        steps=tuple(steps),
        backward=tuple(Gradient(v, grads[v]) for v in graph.inputs),
        cache=(x,),
        upstream=out,
        identities=_elementwise(),
        compute=(Assign(out, graph.definitions()[out]),),
        notes=(
            N_(
                r"Shapes: $X$ is $N \times D$, $W$ is $D \times M$, $b$ is $1 \times M$ and is added to every row (the batch)."
            ),
            N_(
                r"A 4-D input such as $(N, 1, 28, 28)$ is reshaped to $(N, D)$ first and $\frac{\partial L}{\partial X}$ back to its shape."
            ),
        ),
    )
