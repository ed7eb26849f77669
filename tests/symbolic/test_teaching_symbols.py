"""The chapter's derivations teach in the book's order and introduce every symbol before they use it."""

from __future__ import annotations

import pytest
import sympy as sp

from chainrule import symbolic
from chainrule.codegen.document import document, section
from chainrule.codegen.latex import latex
from chainrule.symbolic import activations, graphs
from chainrule.symbolic.core import Chain
from chainrule.symbolic.shipped import SHIPPED

CHAPTER = [n for n in symbolic.NAMES if n not in {s.key for s in SHIPPED}]
DOUT = sp.Symbol("dout", real=True)


def _name(s: sp.Basic) -> str:
    """A symbol as the page names it: a MatrixSymbol by its name, an Indexed by its base."""
    if isinstance(s, sp.Indexed):
        return str(s.base.label)
    if isinstance(s, sp.IndexedBase):
        return str(s.label)
    return str(getattr(s, "name", s))


def _used(expr: sp.Basic) -> set[str]:
    """The names of every free symbol a displayed expression shows, inside Partial, Chain and Branch too.

    A matrix is shown by its name (its shape is not on the page: bold 1 is OneMatrix(N, 1)); an
    Indexed by its base and its indices; a sum's index is bound.
    """
    if isinstance(expr, sp.MatrixBase):  # a matrix written out: its entries
        return set().union(*(_used(a) for a in expr))
    if isinstance(expr, sp.Indexed):
        return {_name(expr)} | set().union(*(_used(i) for i in expr.indices))
    if isinstance(expr, sp.MatrixSymbol | sp.Symbol | sp.IndexedBase):
        return {_name(expr)}
    if isinstance(expr, sp.OneMatrix | sp.ZeroMatrix | sp.Identity):
        return set()
    if isinstance(expr, sp.Sum | sp.Product):
        bound = {_name(lim[0]) for lim in expr.limits}
        limits = set().union(*(_used(b) for lim in expr.limits for b in lim[1:]))
        return (_used(expr.function) - bound) | limits
    return set().union(*(_used(a) for a in expr.args)) if expr.args else set()


_INTRODUCIBLE = (sp.Symbol, sp.MatrixSymbol, sp.Indexed)


def _defined(lhs: sp.Basic) -> tuple[sp.Basic, ...] | None:
    """What a forward step's left side introduces: a symbol, or each symbol of a tuple; None if it is no variable."""
    parts = lhs.args if isinstance(lhs, sp.Tuple) else (lhs,)
    return parts if all(isinstance(p, _INTRODUCIBLE) for p in parts) else None


def _undefined(d: symbolic.Derivation) -> list[str]:
    """Each symbol shown before it is introduced, with the step that shows it."""
    known = {_name(d.loss)}
    if d.graph is not None:
        known |= {_name(v) for v in d.graph.inputs}
    if d.upstream is not None:
        known.add("dout")  # the document says dout = dL/dy before the backward pass
    problems = []

    def check(where: str, exprs: tuple[sp.Basic, ...]) -> None:
        for e in exprs:
            for name in sorted(_used(e) - known):
                problems.append(f"{d.name}: {name} in {where}: {e}")

    for i, s in enumerate(d.forward):
        known |= {_name(v) for v in getattr(s, "introduces", ())}
        defined = _defined(s.lhs)
        first = s.rhs[0] if s.rhs else None
        if (
            defined
            and isinstance(s.lhs, sp.Tuple)
            and isinstance(first, sp.Tuple)
            and len(first) == len(defined)
        ):
            # A tuple of definitions reads left to right: each one may use those before it.
            for v, r in zip(defined, first.args, strict=True):
                check(f"forward step {i + 1}", (r,))
                known.add(_name(v))
            check(f"forward step {i + 1}", s.rhs[1:])
            continue
        check(f"forward step {i + 1}", (*s.rhs, *((s.lhs,) if defined is None else ())))
        known |= {_name(v) for v in defined or ()}
    for i, s in enumerate(d.steps):
        known |= {_name(v) for v in getattr(s, "introduces", ())}
        check(f"step {i + 1} ({s.reason[:40]!r})", (s.lhs, *s.rhs))
    for g in d.backward:
        check(f"result d{_name(g.wrt)}", (g.expr,))
        known.add(_name(g.wrt))
    return problems


@pytest.mark.parametrize("name", CHAPTER)
def test_every_displayed_symbol_is_introduced_before_it_is_used(name):
    assert _undefined(symbolic.derive(name)) == []


def test_the_symbol_walk_finds_a_symbol_used_too_early():
    """The check itself: sigmoid's c, shown before the forward step that defines it, is caught."""
    d = symbolic.derive("sigmoid")
    early = d.__class__(**{**d.__dict__, "forward": d.forward[:1]})
    problems = _undefined(early)
    assert any(p.startswith("sigmoid: c in step 1") for p in problems), problems


def test_a_tuple_left_side_introduces_each_of_its_symbols_after_its_right_side():
    from chainrule.symbolic.core import Derivation, Graph, Step

    a1, a2, e1, e2, s_ = sp.symbols("a1 a2 e1 e2 S", real=True)
    graph = Graph((a1, a2), (), a1)
    tuple_step = Step(sp.Tuple(e1, e2), (sp.Tuple(sp.exp(a1), sp.exp(a2)),), "")
    good = Derivation("t", "", "", (tuple_step, Step(s_, (e1 + e2,), "")), graph, (), ())
    assert _undefined(good) == []
    early = Derivation("t", "", "", (Step(sp.Tuple(e1, e2), (sp.Tuple(e2, a1),), ""),), graph, (), ())
    assert [p.split(" in ")[0] for p in _undefined(early)] == ["t: e2"]
    k = sp.Symbol("k", integer=True)
    by_reason = Step(s_, (sp.Indexed(sp.IndexedBase("a"), k),), "", introduces=(k,))
    assert (
        _undefined(Derivation("t", "", "", (by_reason,), Graph((sp.IndexedBase("a"),), (), a1), (), ())) == []
    )


def test_the_chapter_comes_in_the_books_order():
    assert symbolic.NAMES[: len(CHAPTER)] == (
        "computational_graph", "chain_rule", "add", "mul", "apples", "apples_oranges",
        "relu", "sigmoid", "affine", "softmax_with_loss",
    )  # fmt: skip
    assert list(symbolic.BUILDERS) == list(symbolic.NAMES)


def test_computational_graph_is_the_two_shopping_problems_forward():
    d = symbolic.derive("computational_graph")
    shown = [(latex(s.lhs), latex(s.rhs[-1])) for s in d.forward]
    assert shown == [
        (r"\mathrm{apple\_price}", "200"),
        (r"\mathrm{price}", "220"),
        (r"\mathrm{orange\_price}", "450"),
        (r"\mathrm{all\_price}", "650"),
        (r"\mathrm{price}", "715"),
    ]
    # each forward step shows the node's formula, then its numbers before they are worked out
    assert latex(d.forward[1].rhs[1]) == r"200 \times 1.1"
    # 5.1.3 and figure 5-5: backward, 1 times the tax times the number of apples
    (step,) = d.steps
    assert latex(step.lhs) == r"\frac{\partial \mathrm{price}}{\partial \mathrm{apple}}"
    assert [latex(r) for r in step.rhs] == [r"1 \cdot 1.1 \cdot 2", "2.2"]
    assert d.backward == ()
    # the figures' graphs, with their worked numbers: 5-1/5-2/5-5, 5-3 and 5-4
    one, two, local = d.examples
    assert one.value(graphs.price) == 220 and one.grad(graphs.apple) == sp.Rational(11, 5)
    assert two.value(graphs.price) == 715
    assert local.value(graphs.all_price) == 4200 and local.value(graphs.price) == 4620
    assert [n.out for n in graphs.local_computation_graph().nodes] == [
        graphs.apple_price,
        graphs.all_price,
        graphs.price,
    ]


def test_a_forward_only_section_has_no_empty_result_or_table():
    text = document([symbolic.derive("computational_graph")], "latex")
    assert "Forward" in text and "Result" not in text and "Worked values" not in text
    assert section(symbolic.derive("computational_graph")).example == ()


def test_backward_steps_show_the_product_before_it_is_worked_out():
    def rows(name: str) -> list[str]:
        d = symbolic.derive(name)
        return [" = ".join(latex(r, d.upstream, d.loss) for r in (s.lhs, *s.rhs)) for s in d.steps]

    dz = r"\frac{\partial L}{\partial z}"
    assert (
        rf"\frac{{\partial L}}{{\partial x}} = {dz} \, \frac{{\partial z}}{{\partial x}} = {dz} \cdot 1 = {dz}"
        in rows("add")
    )
    tax = r"\frac{\partial \mathrm{price}}{\partial \mathrm{apple\_price}} = 1 \cdot \mathrm{tax} = \mathrm{tax}"
    assert tax in rows("apples")
    chain = rows("chain_rule")[-1]
    assert chain.endswith(r"= 2 t \cdot 1 = 2 \left(x + y\right)")


def test_reasons_name_the_node_and_are_not_repeated():
    for name in ("add", "mul", "apples", "apples_oranges", "relu", "sigmoid"):
        reasons = [s.reason for s in symbolic.derive(name).steps if s.reason]
        assert "chain rule: upstream gradient times the local derivative" not in reasons
        assert len(reasons) == len(set(reasons)), name
    sigmoid = [s.reason for s in symbolic.derive("sigmoid").steps]
    assert "step 2: the $+1$ node's local derivative is $1$: it passes the upstream gradient on" in sigmoid
    assert "the $+$ node passes the upstream gradient on to $x$" in [
        s.reason for s in symbolic.derive("add").steps
    ]
    assert (
        r"the $\times$ node swaps its inputs: $\mathrm{orange}$ gets the upstream gradient times $\mathrm{orange\_num}$"
        in [s.reason for s in symbolic.derive("apples_oranges").steps]
    )


def test_sigmoid_the_books_way():
    d = symbolic.derive("sigmoid")
    a, b, c = sp.symbols("a b c", real=True)
    out, x = activations.out, activations.x
    # the nodes forward first, each introducing its variable
    assert [s.lhs for s in d.forward] == [out, a, b, c, out]
    assert d.forward[2].rhs[-1] == sp.exp(-x) and d.forward[3].rhs[-1] == 1 + sp.exp(-x)
    # the book's four steps, output first: c, b, a, x; each shows its product before working it out
    assert [s.lhs.den for s in d.steps[:4]] == [c, b, a, x]
    assert d.steps[0].rhs[1:] == (Chain(DOUT, -(out**2)), -DOUT * out**2)
    assert [s.reason[:7] for s in d.steps[:4]] == ["step 1:", "step 2:", "step 3:", "step 4:"]
    # the book's dL/dy y^2 exp(-x) (figure 5-20) at the end of the nodes
    assert d.steps[3].rhs[-1] == DOUT * out**2 * sp.exp(-x)
    # then the book's simplification, down to dL/dy y (1 - y)
    last = d.steps[-1]
    assert [latex(r, out) for r in last.rhs] == [
        r"\frac{\partial L}{\partial y} \cdot \frac{1}{\left(1 + e^{- x}\right)^{2}} \cdot e^{- x}",
        r"\frac{\partial L}{\partial y} \cdot \frac{1}{1 + e^{- x}} \cdot \frac{e^{- x}}{1 + e^{- x}}",
        r"\frac{\partial L}{\partial y} y \left(1 - y\right)",
    ]
    # no identity whose sides print alike; the kernel's proofs stay with the kernel
    for i in d.identities:
        assert latex(i.lhs) != latex(i.rhs)
    assert all(p.holds() for k in d.kernels for p in k.proofs)


def test_relu_caches_the_mask_and_passes_dout_where_x_is_positive():
    d = symbolic.derive("relu")
    x, mask = activations.x, activations.mask
    assert d.cache == (mask,)
    assert d.forward[1].rhs == (x <= 0,)
    passed = [s for s in d.steps if s.lhs == symbolic.core.Partial(symbolic.core.LOSS, x)][0].rhs[-1]
    assert passed.subs(x, 2) == DOUT and passed.subs(x, -2) == 0 and passed.subs(x, 0) == 0


def test_every_step_field_defaults_and_introduces_comes_last():
    from dataclasses import fields

    from chainrule.symbolic.core import Step

    assert [f.name for f in fields(Step)][-1] == "introduces"
    assert Step(graphs.z, (graphs.x,), "").introduces == ()
