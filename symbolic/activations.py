"""ReLU and Sigmoid: the activation layers, derived node by node."""

from __future__ import annotations

from functools import cache

import sympy as sp

from symbolic.chain import L, backward_steps, dout, in_terms_of, local_steps, tidy
from symbolic.core import Assign, Derivation, Gradient, Graph, Identity, Kernel, Partial, Step, node, tex
from symbolic.messages import N_

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
    """1/(1 + exp(-x)) computed from exp(-|x|), which never overflows."""
    small = sp.exp(-sp.Abs(x))
    body = sp.Piecewise((1 / (1 + small), x >= 0), (small / (1 + small), True))
    derived = 1 / (1 + sp.exp(-x))
    p = sp.Symbol("p", positive=True)
    return Kernel(
        name="sigmoid",
        params=(x,),
        body=body,
        doc="The logistic function 1/(1 + exp(-x)), from exp(-|x|) so that it never overflows.",
        proofs=(
            Identity(body.args[0][0].subs(x, p), derived.subs(x, p), N_(r"for $x \ge 0$, $|x| = x$")),
            Identity(
                body.args[1][0].subs(x, -p),
                derived.subs(x, -p),
                N_(
                    r"for $x < 0$, $\frac{e^{-|x|}}{1 + e^{-|x|}} = \frac{e^{x}}{1 + e^{x}} = \frac{1}{1 + e^{-x}}$"
                ),
            ),
        ),
    )


def sigmoid() -> Derivation:
    """y = 1/(1 + exp(-x)) through four nodes; backward needs only y: dout*y*(1-y)."""
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
    _, grads, _ = graph.backprop(dout)
    defs = graph.definitions()
    raw = grads[x]  # dout * exp(a) / c**2, in the nodes' own variables
    in_x = in_terms_of(raw, defs)
    # The chapter's form: the "/" node's -1/c^2 is -y^2 (c = 1/y), the rest stays in x.
    chapter = in_terms_of(raw.xreplace({c: 1 / out}), {a: -x})
    # exp(-x) from y = 1/(1 + exp(-x)), so that nothing of x is left.
    exp_in_y = exp_in_output()
    cached = dout * tidy(sp.factor(chapter.xreplace({sp.exp(-x): exp_in_y}) / dout))
    y_def = 1 / (1 + sp.exp(-x))
    steps = (
        local_steps(graph)
        + backward_steps(graph, dout)
        + (
            Step(Partial(L, x), (raw, in_x), N_(r"substitute $a = -x$, $b = e^{-x}$, $c = 1 + e^{-x}$")),
            Step(Partial(L, x), (chapter,), N_(r"the $/$ node's $-1/c^2$ is $-y^2$, since $c = 1/y$")),
            Step(sp.exp(-x), (exp_in_y,), N_(r"solve $y = \frac{1}{1 + e^{-x}}$ for $e^{-x}$")),
            Step(Partial(L, x), (cached,), N_("so backward needs only the forward output $y$")),
        )
    )
    kernel = safe_sigmoid()
    return Derivation(
        name="sigmoid",
        title=N_("Sigmoid"),
        summary=N_(
            r"Sigmoid's backward needs only its forward output: $\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} y (1 - y)$."
        ),
        forward=(Step(out, (y_def,), N_("sigmoid")),),
        graph=graph,
        steps=steps,
        backward=(Gradient(x, cached),),
        cache=(out,),
        upstream=out,
        identities=(
            Identity(
                out**2 * sp.exp(-x),
                cached / dout,
                N_("the chapter's two forms of the local gradient agree"),
                where=((out, y_def),),
            ),
        )
        + kernel.proofs,
        compute=(Assign(out, kernel(x)),),
        kernels=(kernel,),
    )
