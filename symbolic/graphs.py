"""The chapter's first graphs: the add and mul nodes, the chain rule, the shopping trips."""

from __future__ import annotations

import sympy as sp

from symbolic.chain import L, backward_steps, dout, in_terms_of, local_steps, op_node
from symbolic.core import (
    Assign,
    Derivation,
    Gradient,
    Graph,
    Identity,
    Partial,
    Step,
    chain,
    node,
    worked_example,
)
from symbolic.messages import N_

x, y, z, t = sp.symbols("x y z t", real=True)


def _gradients(graph: Graph, seed: sp.Basic) -> tuple[Gradient, ...]:
    """Backward results for every input, written in the inputs and ``seed``."""
    _, grads, _ = graph.backprop(seed)
    defs = graph.definitions()
    return tuple(Gradient(v, in_terms_of(grads[v], defs)) for v in graph.inputs)


def _forward(graph: Graph) -> tuple[Step, ...]:
    return tuple(Step(n.out, (n.expr,), op_node(n.op)) for n in graph.nodes)


def add_node() -> Derivation:
    """z = x + y passes the upstream gradient through unchanged."""
    graph = Graph((x, y), (node(z, "+", (x, y), x + y),), z)
    return Derivation(
        name="add",
        title=N_("Add node"),
        summary=N_("An add node passes the upstream gradient on to both inputs unchanged."),
        forward=_forward(graph),
        graph=graph,
        steps=local_steps(graph) + backward_steps(graph, dout),
        backward=_gradients(graph, dout),
        upstream=z,
        examples=(worked_example(graph, {x: 10, y: 5}, sp.Rational(13, 10)),),
        notes=(N_("The add layer needs to cache nothing."),),
        compute=(Assign(z, graph.nodes[0].expr),),
    )


def mul_node() -> Derivation:
    """z = x * y sends each input the upstream gradient times the other input."""
    graph = Graph((x, y), (node(z, "×", (x, y), x * y),), z)
    return Derivation(
        name="mul",
        title=N_("Multiply node"),
        summary=N_("A multiply node sends each input the upstream gradient times the other input."),
        forward=_forward(graph),
        graph=graph,
        steps=local_steps(graph) + backward_steps(graph, dout),
        backward=_gradients(graph, dout),
        cache=(x, y),
        upstream=z,
        examples=(worked_example(graph, {x: 10, y: 5}, sp.Rational(13, 10)),),
        notes=(N_("The multiply layer caches both inputs: each one's gradient needs the other."),),
        compute=(Assign(z, graph.nodes[0].expr),),
    )


def chain_rule() -> Derivation:
    """z = (x + y)^2 through t = x + y: dz/dx = dz/dt * dt/dx = 2(x + y)."""
    graph = Graph((x, y), (node(t, "+", (x, y), x + y), node(z, "^2", (t,), t**2)), z)
    _, grads, _ = graph.backprop(sp.Integer(1))
    dz_dx = grads[x]
    in_xy = sp.factor(in_terms_of(dz_dx, graph.definitions()))
    steps = local_steps(graph) + (
        Step(
            Partial(z, x),
            (chain(z, t, x), dz_dx, in_xy),
            N_("chain rule through $t$, then $t = x + y$"),
        ),
    )
    composed = sp.diff((x + y) ** 2, x)
    return Derivation(
        name="chain_rule",
        title=N_("The chain rule"),
        summary=N_("The derivative of a composition is the product of the local derivatives."),
        forward=_forward(graph),
        graph=graph,
        steps=steps
        + (
            Step(
                Partial(z, x), (sp.factor(composed),), N_("the same by differentiating $(x + y)^2$ directly")
            ),
        ),
        backward=(Gradient(x, in_xy), Gradient(y, sp.factor(in_terms_of(grads[y], graph.definitions())))),
        upstream=z,
        loss=z,
        identities=(
            Identity(
                in_xy,
                composed,
                N_("the chain rule through $t$ gives the derivative of $(x + y)^2$ taken directly"),
            ),
        ),
    )


apple, apple_num, orange, orange_num, tax = sp.symbols("apple apple_num orange orange_num tax", real=True)
apple_price, orange_price, all_price, price = sp.symbols(
    "apple_price orange_price all_price price", real=True
)
_MUL = "×"


def _shopping(name: str, title: str, graph: Graph, values: dict) -> Derivation:
    seed = sp.Integer(1)
    example = worked_example(graph, values, seed)
    backward = _gradients(graph, seed)
    # The numbers put in place but not multiplied, so that the page shows 2 × 1.1 before 2.2.
    shown = {v: sp.UnevaluatedExpr(value) for v, value in example.inputs}
    numeric = [
        Step(
            Partial(price, g.wrt),
            (g.expr.xreplace(shown), example.grad(g.wrt)),
            N_("value on the backward arrow"),
        )
        for g in backward
    ]
    total = in_terms_of(price, graph.definitions())
    return Derivation(
        name=name,
        title=title,
        summary=N_("Forward left to right, then backward right to left multiplying local derivatives."),
        forward=_forward(graph)
        + (Step(price, (total.xreplace(shown), example.value(price)), N_("forward value")),),
        graph=graph,
        steps=backward_steps(graph, seed, loss=price) + tuple(numeric),
        backward=backward,
        upstream=price,
        loss=price,
        examples=(example,),
    )


def apples() -> Derivation:
    """Two apples at 100 with 10% tax: price 220, dApple 2.2, dApple_num 110, dTax 200."""
    graph = Graph(
        (apple, apple_num, tax),
        (
            node(apple_price, _MUL, (apple, apple_num), apple * apple_num),
            node(price, _MUL, (apple_price, tax), apple_price * tax),
        ),
        price,
    )
    values = {apple: 100, apple_num: 2, tax: sp.Rational(11, 10)}
    return _shopping("apples", N_("Buying apples"), graph, values)


def apples_oranges() -> Derivation:
    """Two apples at 100 and three oranges at 150 with 10% tax: price 715."""
    graph = Graph(
        (apple, apple_num, orange, orange_num, tax),
        (
            node(apple_price, _MUL, (apple, apple_num), apple * apple_num),
            node(orange_price, _MUL, (orange, orange_num), orange * orange_num),
            node(all_price, "+", (apple_price, orange_price), apple_price + orange_price),
            node(price, _MUL, (all_price, tax), all_price * tax),
        ),
        price,
    )
    values = {apple: 100, apple_num: 2, orange: 150, orange_num: 3, tax: sp.Rational(11, 10)}
    return _shopping("apples_oranges", N_("Buying apples and oranges"), graph, values)


__all__ = ["L", "add_node", "mul_node", "chain_rule", "apples", "apples_oranges"]
