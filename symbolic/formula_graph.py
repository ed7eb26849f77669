"""A spec's forward formula as a computational graph: one node per operation of its SymPy tree.

The chapter draws the sigmoid as a chain of simple nodes (×(−1), exp, +1, /), each with
its local derivative; this does the same for any activation a spec defines.  Each
operation on something that depends on ``x`` becomes a node; the parts that do not
(numbers, the spec's constants) are folded into the node's label, as the chapter's +1
and ×(−1).  Equal subexpressions are one node, so ``x`` may feed several.  The local
derivatives come from ``symbolic.core.node`` (``sympy.diff``), never from here.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from chainrule.symbolic.core import Graph, Node, node

# A figure of more nodes than this is no longer readable (the chapter's largest has 13).
MAX_NODES = 40
# Names the picture must not reuse for an intermediate value.
_RESERVED = {"x", "out", "y", "t", "L", "dout", "dx"}
_FUNCTION_NAMES: dict[type, str] = {sp.Abs: "abs"}


def constant_text(c: sp.Basic) -> str:
    """A constant as a node's label shows it: 0.044715 for an exact decimal, else SymPy's short form."""
    if isinstance(c, sp.Rational) and not isinstance(c, sp.Integer):
        q = int(c.q)
        for prime in (2, 5):
            while q % prime == 0:
                q //= prime
        if q == 1:
            return str(float(c))  # a finite decimal with few digits: the float prints it exactly
    text = sp.sstr(c)
    return text if len(text) <= 12 else f"{float(c):.6g}"


class TooLarge(ValueError):
    """The formula has more operations than a picture can show."""


@dataclass
class _Builder:
    x: sp.Symbol
    out: sp.Symbol
    taken: set[str]
    nodes: list[Node] = field(default_factory=list)
    made: dict[sp.Basic, sp.Symbol] = field(default_factory=dict)

    def fresh(self) -> sp.Symbol:
        """The next free letter a, b, c, ... (then a1, b1, ...), as the chapter names intermediate values."""
        for suffix in ("", *map(str, range(1, 100))):
            for letter in string.ascii_lowercase:
                name = letter + suffix
                if name not in self.taken:
                    self.taken.add(name)
                    return sp.Symbol(name, real=True)
        raise TooLarge("no free names left")

    def add(self, op: str, inputs: list[sp.Symbol], expr: sp.Basic, key: sp.Basic | None) -> sp.Symbol:
        """A node computing ``expr`` of ``inputs``; ``key`` is the subexpression it stands for."""
        if key is not None and key in self.made:
            return self.made[key]
        if len(self.nodes) >= MAX_NODES:
            raise TooLarge(f"more than {MAX_NODES} operations")
        var = self.fresh()
        self.nodes.append(node(var, op, tuple(dict.fromkeys(inputs)), expr))
        if key is not None:
            self.made[key] = var
        return var

    def depends(self, e: sp.Basic) -> bool:
        return self.x in e.free_symbols

    def build(self, e: sp.Basic) -> sp.Symbol:
        """The variable holding the value of ``e`` (which depends on x)."""
        if e == self.x:
            return self.x
        if e in self.made:
            return self.made[e]
        handler = _HANDLERS.get(type(e)) or next(
            (h for cls, h in _HANDLERS.items() if isinstance(e, cls)), None
        )
        if handler is None:
            if isinstance(e, sp.Function) and len(e.args) == 1:
                v = self.build(e.args[0])
                name = _FUNCTION_NAMES.get(type(e), type(e).__name__)
                return self.add(name, [v], e.func(v), e)
            raise ValueError(f"no node for {type(e).__name__}")
        return handler(self, e)


def _fold(b: _Builder, e: sp.Basic, args: list[sp.Basic], identity: sp.Basic, sign: str) -> sp.Symbol:
    """Add or Mul: the terms with x combined two at a time, then the constant part as one more node."""
    combine = sp.Add if sign == "+" else sp.Mul
    variable = [a for a in args if b.depends(a)]
    constant = combine(*[a for a in args if not b.depends(a)])
    parts: list[sp.Basic] = []
    current: sp.Symbol | None = None
    for a in variable:
        v = b.build(a)
        parts.append(a)
        if current is None:
            current = v
            continue
        current = b.add("+" if sign == "+" else "×", [current, v], combine(current, v), combine(*parts))
    assert current is not None  # e depends on x, so one of its arguments does
    if constant == identity:
        return current
    if sign == "+":
        negative = constant.could_extract_minus_sign()
        op = ("−" if negative else "+") + constant_text(-constant if negative else constant)
    else:
        op = "×(−1)" if constant == -1 else "×" + constant_text(constant)
    return b.add(op, [current], combine(constant, current), e)


def _add(b: _Builder, e: sp.Add) -> sp.Symbol:
    return _fold(b, e, list(e.args), sp.Integer(0), "+")


def _mul(b: _Builder, e: sp.Mul) -> sp.Symbol:
    return _fold(b, e, list(e.args), sp.Integer(1), "×")


def _pow(b: _Builder, e: sp.Pow) -> sp.Symbol:
    base, exp = e.args
    if b.depends(base) and b.depends(exp):
        u, v = b.build(base), b.build(exp)
        return b.add("^", [u, v], u**v, e)
    if b.depends(exp):  # c ** f(x)
        v = b.build(exp)
        return b.add(constant_text(base) + "^", [v], base**v, e)
    u = b.build(base)
    if exp == -1:
        op = "/"  # the chapter's name for the node that computes 1/c
    elif exp == sp.Rational(1, 2):
        op = "sqrt"
    elif exp.is_Integer and exp > 0:
        op = f"^{exp}"
    else:
        op = f"^({constant_text(exp)})"
    return b.add(op, [u], u**exp, e)


def _extreme(b: _Builder, e: sp.Max | sp.Min) -> sp.Symbol:
    name = "max" if isinstance(e, sp.Max) else "min"
    variable = [b.build(a) for a in e.args if b.depends(a)]
    constant = [a for a in e.args if not b.depends(a)]
    op = name if not constant else f"{name} {', '.join(constant_text(c) for c in constant)}"
    return b.add(op, variable, e.func(*variable, *constant), e)


def _piecewise(b: _Builder, e: sp.Piecewise) -> sp.Symbol:
    """One node choosing between branches; what the conditions test is written in its label."""
    mapping: dict[sp.Basic, sp.Symbol] = {}
    inputs: list[sp.Symbol] = []
    for value, _ in e.args:
        if b.depends(value):
            v = b.build(value)
            mapping[value] = v
            inputs.append(v)
    branches = tuple((value.xreplace(mapping), cond) for value, cond in e.args)
    first = next(c for _, c in e.args if c != sp.true)
    return b.add(f"if {sp.sstr(first)}", inputs, sp.Piecewise(*branches), e)


_HANDLERS: dict[type, Callable[[_Builder, sp.Basic], sp.Symbol]] = {
    sp.Add: _add,
    sp.Mul: _mul,
    sp.Pow: _pow,
    sp.Max: _extreme,
    sp.Min: _extreme,
    sp.Piecewise: _piecewise,
}


def formula_graph(forward: sp.Expr, x: sp.Symbol, out: sp.Symbol) -> Graph:
    """``out = forward(x)`` as a graph of one node per operation; the last node computes ``out``.

    TooLarge when the formula has more than MAX_NODES operations; ValueError for an
    operation no node stands for.
    """
    if x not in forward.free_symbols:
        raise ValueError("the formula does not depend on x")
    taken = _RESERVED | {s.name for s in forward.free_symbols}
    b = _Builder(x, out, set(taken))
    last = b.build(forward)
    if last == x:  # the identity: one node that passes x on
        return Graph((x,), (node(out, "=", (x,), x),), out)
    final = b.nodes[-1]
    assert final.out == last, "the formula's own node is built last"
    renamed = final.expr
    b.nodes[-1] = node(out, final.op, final.inputs, renamed)
    return Graph((x,), tuple(b.nodes), out)
