"""ReLU and Sigmoid: the activation layers, derived node by node."""

from __future__ import annotations

from functools import cache

import sympy as sp

from chainrule.symbolic.chain import L, backward_steps, dout, local_steps, tidy
from chainrule.symbolic.core import (
    Assign,
    Chain,
    Derivation,
    Gradient,
    Graph,
    Identity,
    Kernel,
    Partial,
    Step,
    node,
    tex,
)
from chainrule.symbolic.messages import N_

x = sp.Symbol("x", real=True)
out = sp.Symbol("out", real=True)
mask = sp.Symbol("mask")


def relu() -> Derivation:
    """y = max(0, x); its derivative is 1 for x > 0 and 0 for x <= 0."""
    forward = sp.Piecewise((x, x > 0), (0, True))
    graph = Graph((x,), (node(out, "relu", (x,), forward),), out)
    local = graph.nodes[0].local[0]
    _, grads, _ = graph.backprop(dout)
    # The layer caches mask = (x <= 0), so the backward is written in it.
    in_mask = _mask_first(sp.piecewise_fold(grads[x].xreplace({x > 0: sp.Not(mask)})))
    forward_in_mask = _mask_first(forward.xreplace({x > 0: sp.Not(mask)}))
    at_zero = local.subs(x, 0)
    return Derivation(
        name="relu",
        title=N_("ReLU"),
        summary=N_("ReLU lets the gradient through where the input was positive and stops it elsewhere."),
        forward=(Step(out, (forward,), N_("ReLU")), Step(mask, (x <= 0,), N_("cached by forward"))),
        graph=graph,
        steps=local_steps(graph)
        + backward_steps(graph, dout)
        + (Step(Partial(L, x), (in_mask,), N_("written in the cached mask")),),
        backward=(Gradient(x, in_mask),),
        cache=(mask,),
        compute=(Assign(mask, x <= 0), Assign(out, forward_in_mask)),
        upstream=out,
        notes=(
            N_(
                "At $x = 0$ ReLU has no derivative; SymPy's piecewise derivative takes the"
                " $x \\le 0$ branch there, giving {value}, which is the chapter's convention"
                " (its mask is $x \\le 0$).",
                value=tex(at_zero),
            ),
        ),
    )


def _mask_first(expr: sp.Piecewise) -> sp.Piecewise:
    """Write Piecewise((a, ~mask), (b, True)) as Piecewise((b, mask), (a, True))."""
    (a, cond), (b, _) = expr.args
    if isinstance(cond, sp.Not):
        return sp.Piecewise((b, cond.args[0]), (a, True))
    return expr


@cache
def exp_in_output() -> sp.Expr:
    """exp(-x) in sigmoid's output y alone: SymPy solves y = 1/(1 + exp(-x)) for it (once: solve is slow)."""
    e = sp.Symbol("e", positive=True)
    (exp_in_y,) = sp.solve(sp.Eq(out, 1 / (1 + e)), e)
    return exp_in_y


@cache
def sigmoid_local_in_output() -> sp.Expr:
    """d/dx 1/(1 + exp(-x)) written in its output y: differentiated, then exp(-x) replaced.

    Computed once per process: every spec that uses ``sigmoid`` differentiates through it.
    """
    local = sp.diff(1 / (1 + sp.exp(-x)), x)
    in_y = local.xreplace({sp.exp(-x): exp_in_output()})
    if x in in_y.free_symbols:
        raise ValueError(f"sigmoid's derivative {local} is not a function of its output alone")
    return tidy(sp.factor(in_y))


def safe_sigmoid() -> Kernel:
    """1/(1 + exp(-x)) as exp(min(x, 0)) / (exp(min(x, 0)) + exp(-max(x, 0))): no exponent above 0, no branch."""
    low, high = sp.exp(sp.Min(x, 0)), sp.exp(-sp.Max(x, 0))
    body = low / (low + high)
    derived = 1 / (1 + sp.exp(-x))
    p = sp.Symbol("p", positive=True)
    return Kernel(
        name="sigmoid",
        params=(x,),
        body=body,
        doc=(
            "The logistic function 1/(1 + exp(-x)), as exp(min(x, 0)) / (exp(min(x, 0)) + exp(-max(x, 0))):"
            " neither exponent is above 0, so it never overflows, and every element takes the same path."
        ),
        # Shown in x, as the kernel computes it; proved with x a positive p, then a negative -p.
        proofs=(
            Identity(
                body,
                derived,
                N_(r"for $x \ge 0$, $\min(x, 0) = 0$ and $\max(x, 0) = x$: $\frac{1}{1 + e^{-x}}$"),
                where=((x, p),),
            ),
            Identity(
                body,
                derived,
                N_(
                    r"for $x < 0$, $\min(x, 0) = x$ and $\max(x, 0) = 0$:"
                    r" $\frac{e^{x}}{e^{x} + 1} = \frac{1}{1 + e^{-x}}$"
                ),
                where=((x, -p),),
            ),
        ),
    )


def sigmoid() -> Derivation:
    """y = 1/(1 + exp(-x)) through four nodes, backward in the book's four steps: dout*y*(1-y)."""
    a, b, c = sp.symbols("a b c", real=True)
    graph = Graph(
        (x,),
        (
            node(a, "×(−1)", (x,), -x),
            node(b, "exp", (a,), sp.exp(a)),
            node(c, "+1", (b,), b + 1),
            node(out, "/", (c,), 1 / c),
        ),
        out,
    )
    defs = graph.definitions()  # a = -x, b = exp(-x), c = 1 + exp(-x), y = 1/(1 + exp(-x))
    y_def = defs[out]
    # The book writes the / node's -1/c^2 as -y^2 (c = 1/y), and the exp node's exp(a) as exp(-x).
    over_c = graph.nodes[3].local[0]
    minus_y2 = over_c.xreplace({c: 1 / out})
    exp_a = graph.nodes[1].local[0]
    exp_x = exp_a.xreplace({a: defs[a]})
    # The book's four steps, output first: each node's local derivative, said in the reason, times
    # the upstream gradient; the product is shown before it is worked out.
    steps = backward_steps(
        graph,
        dout,
        shown={out: minus_y2, b: exp_x},
        reasons={
            out: N_(
                r"step 1: the $/$ node's local derivative is $\frac{\partial y}{\partial c} = -\frac{1}{c^2} = -y^2$"
                r" (as $c = 1/y$), so it multiplies the upstream gradient by $-y^2$"
            ),
            c: N_(r"step 2: the $+1$ node's local derivative is $1$: it passes the upstream gradient on"),
            b: N_(
                r"step 3: the exp node's local derivative is its output,"
                r" $\frac{\partial b}{\partial a} = e^{a} = e^{-x}$"
            ),
            a: N_(r"step 4: the $\times(-1)$ node's local derivative is $-1$: it turns the sign"),
        },
    )
    locals_ = [n.local[0] for n in reversed(graph.nodes)]
    if locals_ != [-1 / c**2, 1, sp.exp(a), -1] or minus_y2 != -(out**2) or exp_x != sp.exp(-x):
        raise ValueError("sigmoid: the local derivatives are not those the reasons state")
    book = steps[-1].rhs[-1]  # dout * y^2 * exp(-x), the book's figure 5-20
    # The book's simplification: y = 1/(1 + exp(-x)) and 1 - y = exp(-x)/(1 + exp(-x)).
    squared = Chain(dout, y_def**2, exp_x)
    split = Chain(dout, y_def, exp_x * y_def)
    # Backward needs only y; the same as exp(-x) solved from y = 1/(1 + exp(-x)) gives.
    cached = dout * tidy(sp.factor(book.xreplace({exp_x: exp_in_output()}) / dout))
    chain_ = (book, squared, split, cached)
    for left, right in zip(chain_, chain_[1:], strict=False):
        if not Identity(_product(left), _product(right), "", where=((out, y_def),)).holds():
            raise ValueError(f"sigmoid: {left} is not {right}")
    if not Identity(exp_x * y_def, 1 - y_def, "").holds():
        raise ValueError("sigmoid: exp(-x)/(1 + exp(-x)) is not 1 - y")
    steps += (
        Step(
            Partial(L, x),
            (squared, split, cached),
            N_(
                r"with $y = \frac{1}{1 + e^{-x}}$ and $1 - y = \frac{e^{-x}}{1 + e^{-x}}$: backward needs only $y$"
            ),
        ),
    )
    kernel = safe_sigmoid()
    return Derivation(
        name="sigmoid",
        title=N_("Sigmoid"),
        summary=N_(
            r"Sigmoid's backward needs only its forward output: $\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} y (1 - y)$."
        ),
        forward=(
            Step(out, (y_def,), N_("sigmoid, computed by the four nodes of the graph:")),
            Step(a, (graph.nodes[0].expr,), N_(r"the $\times(-1)$ node; the figure writes $a$ as $-x$")),
            Step(b, (graph.nodes[1].expr, defs[b]), N_(r"the exp node; the figure writes $b$ as $\exp(-x)$")),
            Step(
                c,
                (graph.nodes[2].expr, defs[c]),
                N_(r"the $+1$ node; the figure writes $c$ as $1 + \exp(-x)$"),
            ),
            Step(out, (graph.nodes[3].expr,), N_("the $/$ node gives $y$")),
        ),
        graph=graph,
        steps=steps,
        backward=(Gradient(x, cached),),
        cache=(out,),
        upstream=out,
        compute=(Assign(out, kernel(x)),),
        kernels=(kernel,),
    )


def _product(expr: sp.Basic) -> sp.Basic:
    """A chain written in order, multiplied out, for a proof."""
    return expr.replace(lambda e: isinstance(e, Chain), lambda e: sp.Mul(*e.args))
