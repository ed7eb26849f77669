"""Chain-rule steps written out from a graph, shared by every scalar derivation."""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from chainrule.symbolic.core import LOSS, Chain, Graph, Node, Partial, Step, Var, chain, tex
from chainrule.symbolic.messages import N_

L = LOSS
dout = sp.Symbol("dout", real=True)


# A node's operation as a reason names it: signs as math, functions (exp, log) by name.
_OP_MATH = {
    "+": "$+$",
    "×": r"$\times$",
    "/": "$/$",
    # The square node as the chapter's figure 5-7 writes it, and as the figures draw it.
    "^2": r"$\ast\ast 2$",
    "**2": r"$\ast\ast 2$",
    "×(−1)": r"$\times(-1)$",
    "+1": "$+1$",
    "relu": "ReLU",
}


def op_node(op: str) -> str:
    """The words for a node in a reason: "the $\\times$ node", "the exp node"."""
    return N_("{op} node", op=_OP_MATH.get(op, op))


def local_steps(graph: Graph) -> tuple[Step, ...]:
    """One step per node, in backward-pass order (output first): its local derivatives, from ``sympy.diff``.

    A node of several inputs gives them together: (dz/dx, dz/dy) = (1, 1).
    """
    steps = []
    for n in reversed(graph.nodes):
        pairs = [(v, d) for v, d in zip(n.inputs, n.local, strict=True) if d is not None]
        if not pairs:
            continue
        if len(pairs) == 1:
            ((v, d),) = pairs
            steps.append(
                Step(Partial(n.out, v), (d,), N_("local derivative of the {node}", node=op_node(n.op)))
            )
        else:
            lhs = sp.Tuple(*(Partial(n.out, v) for v, _ in pairs))
            reason = N_("local derivatives of the {node}", node=op_node(n.op))
            steps.append(Step(lhs, (sp.Tuple(*(d for _, d in pairs)),), reason))
    return tuple(steps)


def word(v: Var) -> str:
    """A variable as inline math, a name of several letters upright: $\\mathrm{orange\\_price}$."""
    name = v.name
    if len(name) > 1 and name.replace("_", "").isalpha():
        return "$\\mathrm{" + name.replace("_", "\\_") + "}$"
    return tex(v)


def passes(n: Node, v: Var) -> str:
    """What node ``n`` does to the gradient on its way back to ``v``, as the reason for that step says it."""
    node = op_node(n.op)
    if n.op in ("+", "+1"):
        if len(n.inputs) == 1:
            return N_("the {node} passes the upstream gradient on", node=node)
        return N_("the {node} passes the upstream gradient on to {v}", node=node, v=word(v))
    if n.op == "×" and len(n.inputs) == 2:
        (other,) = [u for u in n.inputs if u != v] or [v]
        return N_(
            "the {node} swaps its inputs: {v} gets the upstream gradient times {other}",
            node=node,
            v=word(v),
            other=word(other),
        )
    if n.op == "×(−1)":
        return N_("the {node} turns the sign", node=node)
    if n.op == "exp":
        return N_("the {node} multiplies by its output", node=node)
    if n.op == "relu":
        return N_(r"ReLU passes the upstream gradient where $x > 0$ and stops it where $x \le 0$")
    return N_("the {node} multiplies the upstream gradient by its local derivative", node=node)


def backward_steps(
    graph: Graph,
    seed: sp.Basic,
    loss: sp.Basic = L,
    shown: Mapping[Var, sp.Basic] | None = None,
    reasons: Mapping[Var, str] | None = None,
) -> tuple[Step, ...]:
    """The backward pass as equations, from the output back to the inputs.

    Each edge multiplies the gradient arriving at a node by that node's local
    derivative, and the step shows that product before it is worked out:
    dL/dx = dL/dz dz/dx = dout . 1 = dout.  A variable that feeds several nodes
    sums what comes back.  ``shown`` writes a one-input node's local derivative
    another way (by the node's output: the / node's -1/c^2 as -y^2), ``reasons``
    replaces a node's reason (by its output).
    """
    shown = shown or {}
    reasons = reasons or {}
    arrivals: dict[Var, int] = {}
    for n in graph.nodes:
        for v in n.inputs:
            arrivals[v] = arrivals.get(v, 0) + 1
    grads: dict[Var, sp.Basic] = {graph.output: seed}
    seen: dict[Var, list[sp.Basic]] = {}
    said: set[str] = set()
    branched = False
    steps = []
    for n in reversed(graph.nodes):
        upstream = grads[n.out]
        own = reasons.get(n.out)
        for k, (v, local) in enumerate(zip(n.inputs, n.local, strict=True)):
            local = shown.get(n.out, local) if len(n.inputs) == 1 else local
            product = upstream * local
            contribution = sp.piecewise_fold(product) if product.has(sp.Piecewise) else product
            seen.setdefault(v, []).append(contribution)
            grads[v] = sp.Add(*seen[v])
            written = Chain(upstream, local)
            # A product of two names is already as simple as it gets (tax . apple_num).
            rhs = (written,) if all(f.is_Symbol for f in (upstream, local)) else (written, contribution)
            if n.out != loss:
                rhs = (chain(loss, n.out, v), *rhs)
            lhs = Partial(loss, v) if arrivals[v] == 1 else Branch(loss, v, n.out)
            reason = own or passes(n, v)
            if reason in said:  # a second node of the same kind, one input each (softmax's exp nodes)
                reason = N_("the {node} into {out} does the same", node=op_node(n.op), out=word(n.out))
            said.add(reason)
            if n.out == loss and k == 0:
                reason = N_(
                    "the backward pass starts from {one} at the output; {step}", one=tex(seed), step=reason
                )
            if isinstance(lhs, Branch) and not branched:
                # The notation is new to a reader of the chapter: it is said in words where it first appears.
                branched = True
                whole = rf"\frac{{\partial {sp.latex(loss)}}}{{\partial {sp.latex(v)}}}"
                reason = N_(
                    "{branch} is the part of {whole} that comes back through {out}; {step}",
                    branch=rf"$\left.{whole}\right|_{{\to {sp.latex(n.out)}}}$",
                    whole=f"${whole}$",
                    out=tex(n.out),
                    step=reason,
                )
            steps.append(Step(lhs, rhs, reason))
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
