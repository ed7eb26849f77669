"""Chain-rule steps written out from a graph, shared by every scalar derivation."""

from __future__ import annotations

import sympy as sp

from symbolic.core import LOSS, Graph, Partial, Step, Var, chain, tex
from symbolic.messages import N_

L = LOSS
dout = sp.Symbol("dout", real=True)


# A node's operation as a reason names it: signs as math, functions (exp, log) by name.
_OP_MATH = {
    "+": "$+$",
    "×": r"$\times$",
    "/": "$/$",
    "^2": r"$(\cdot)^{2}$",
    "**2": r"$(\cdot)^{2}$",
    "×(−1)": r"$\times(-1)$",
    "+1": "$+1$",
}


def op_node(op: str) -> str:
    """The words for a node in a reason: "the $\\times$ node", "the exp node"."""
    return N_("{op} node", op=_OP_MATH.get(op, op))


def local_steps(graph: Graph) -> tuple[Step, ...]:
    """One step per edge: the node's local derivative, as ``sympy.diff`` gives it."""
    steps = []
    for n in graph.nodes:
        for v, local in zip(n.inputs, n.local, strict=True):
            if local is not None:
                steps.append(
                    Step(
                        Partial(n.out, v), (local,), N_("local derivative of the {node}", node=op_node(n.op))
                    )
                )
    return tuple(steps)


def backward_steps(graph: Graph, seed: sp.Basic, loss: sp.Basic = L) -> tuple[Step, ...]:
    """The backward pass as equations, from the output back to the inputs.

    Each edge multiplies the gradient arriving at a node by that node's local
    derivative; a variable that feeds several nodes sums what comes back.
    """
    _, grads, edges = graph.backprop(seed)
    steps = []
    arrivals: dict[Var, int] = {}
    for e in edges:
        arrivals[e.src] = arrivals.get(e.src, 0) + 1
    seen: dict[Var, list[sp.Basic]] = {}
    for n in reversed(graph.nodes):
        for v, local in zip(n.inputs, n.local, strict=True):
            contribution = grads[n.out] * local
            seen.setdefault(v, []).append(contribution)
            steps.append(
                Step(
                    Partial(loss, v) if arrivals[v] == 1 else Branch(loss, v, n.out),
                    (contribution,) if n.out == loss else (chain(loss, n.out, v), contribution),
                    N_("chain rule: upstream gradient times the local derivative"),
                )
            )
            if len(seen[v]) == arrivals[v] > 1:
                steps.append(
                    Step(
                        Partial(loss, v),
                        (sp.Add(*seen[v]),),
                        N_("{v} feeds {n} nodes: the gradients that come back add", v=tex(v), n=arrivals[v]),
                    )
                )
    return tuple(steps)


class Branch(sp.Expr):
    """The part of dL/dv that comes back through one of the nodes v feeds."""

    is_commutative = True


def in_terms_of(expr: sp.Basic, definitions: dict[Var, sp.Basic]) -> sp.Basic:
    """Replace intermediate variables by their definitions until none is left."""
    for _ in range(len(definitions) + 1):
        new = expr.xreplace(definitions)
        if new == expr:
            return new
        expr = new
    return expr


def tidy(expr: sp.Basic) -> sp.Basic:
    """Write ``-y*(y - 1)`` as ``y*(1 - y)``: pull a minus sign into a factor that takes it."""
    if not isinstance(expr, sp.Mul):
        return expr
    coeff, factors = expr.as_coeff_mul()
    if coeff >= 0:
        return expr
    for i, f in enumerate(factors):
        if isinstance(f, sp.Add):
            flipped = list(factors)
            flipped[i] = -f
            return sp.Mul(-coeff, *flipped)
    return expr


def mean_node(count: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.IndexedBase, sp.Symbol]:
    """The mean of ``count`` losses L_i and its local derivative by one of them, from ``sympy.diff``.

    Returns (mean, d mean / d L_i, L, i); the derivative is 1/count, and every
    loss that is a batch mean divides its gradients by it.
    """
    i, j = sp.symbols("i j", integer=True)
    losses = sp.IndexedBase("L")
    mean = sp.Sum(losses[j], (j, 1, count)) / count
    local = sp.piecewise_fold(mean.diff(losses[i]).doit())
    # SymPy answers "1/count where 1 <= i <= count, else 0": i is one of the samples.
    weight = local.args[0][0] if isinstance(local, sp.Piecewise) else local
    return mean, weight, losses, i
