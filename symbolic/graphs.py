"""The chapter's first graphs: the shopping trips forward, the chain rule, the add and mul nodes, backward."""

from __future__ import annotations

import sympy as sp

from chainrule.symbolic.chain import backward_steps, dout, in_terms_of, local_steps, op_node, word
from chainrule.symbolic.core import (
    Assign,
    Chain,
    Derivation,
    Example,
    Gradient,
    Graph,
    Identity,
    Partial,
    Step,
    chain,
    node,
    worked_example,
)
from chainrule.symbolic.messages import N_

x, y, z, t = sp.symbols("x y z t", real=True)


def _gradients(graph: Graph, seed: sp.Basic) -> tuple[Gradient, ...]:
    """Backward results for every input, written in the inputs and ``seed``."""
    _, grads, _ = graph.backprop(seed)
    defs = graph.definitions()
    return tuple(Gradient(v, in_terms_of(grads[v], defs)) for v in graph.inputs)


def _forward(graph: Graph) -> tuple[Step, ...]:
    """Each node's output, in the order the graph computes them."""
    return tuple(
        Step(n.out, (n.expr,), N_("the {node} gives {out}", node=op_node(n.op), out=word(n.out)))
        for n in graph.nodes
    )


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
    """z = t^2 through t = x + y: dz/dx = dz/dt * dt/dx = 2t * 1 = 2(x + y), as the book's figures 5-7 and 5-8."""
    graph = Graph((x, y), (node(t, "+", (x, y), x + y), node(z, "^2", (t,), t**2)), z)
    dz_dt, dt_dx = graph.nodes[1].local[0], graph.nodes[0].local[0]
    product = dz_dt * dt_dx
    _, grads, _ = graph.backprop(sp.Integer(1))
    if product != grads[x]:
        raise ValueError(f"the chain rule's product {product} is not the backward pass's {grads[x]}")
    in_xy = sp.factor(in_terms_of(product, graph.definitions()))
    steps = local_steps(graph) + (
        Step(
            Partial(z, x),
            (chain(z, t, x), Chain(dz_dt, dt_dx), in_xy),
            N_("chain rule through $t$: the product of the local derivatives, then $t = x + y$"),
        ),
    )
    composed = sp.diff((x + y) ** 2, x)
    return Derivation(
        name="chain_rule",
        title=N_("The chain rule"),
        summary=N_("The derivative of a composition is the product of the local derivatives."),
        forward=_forward(graph),
        graph=graph,
        steps=steps,
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


apple, apple_num, orange, orange_num, tax, other = sp.symbols(
    "apple apple_num orange orange_num tax other", real=True
)
apple_price, orange_price, all_price, price = sp.symbols(
    "apple_price orange_price all_price price", real=True
)
_MUL = "×"


def _shopping(name: str, title: str, graph: Graph, values: dict) -> Derivation:
    seed = sp.Integer(1)
    example = worked_example(graph, values, seed)
    backward = _gradients(graph, seed)
    # The numbers put in place but not multiplied, so that the page shows 2 × 1.1 before 2.2.
    shown = _shown(example)
    numeric = Step(
        sp.Tuple(*(Partial(price, g.wrt) for g in backward)),
        (
            sp.Tuple(*(g.expr.xreplace(shown) for g in backward)),
            sp.Tuple(*(example.grad(g.wrt) for g in backward)),
        ),
        N_("the values on the backward arrows"),
    )
    return Derivation(
        name=name,
        title=title,
        summary=N_("Forward left to right, then backward right to left multiplying local derivatives."),
        forward=_forward(graph),
        graph=graph,
        steps=backward_steps(graph, seed, loss=price) + (numeric,),
        backward=backward,
        upstream=price,
        loss=price,
        examples=(example,),
    )


def _shown(example: Example) -> dict[sp.Basic, sp.Basic]:
    """The inputs' numbers, put in place but not multiplied out."""
    return {v: sp.UnevaluatedExpr(value) for v, value in example.inputs}


def apples_graph() -> Graph:
    """Problem 1 of the book's 5.1.1 (figures 5-1, 5-2, 5-5): apples times their number, times the tax."""
    return Graph(
        (apple, apple_num, tax),
        (
            node(apple_price, _MUL, (apple, apple_num), apple * apple_num),
            node(price, _MUL, (apple_price, tax), apple_price * tax),
        ),
        price,
    )


def apples_oranges_graph() -> Graph:
    """Problem 2 of the book's 5.1.1 (figure 5-3): apples and oranges, added, times the tax."""
    return Graph(
        (apple, apple_num, orange, orange_num, tax),
        (
            node(apple_price, _MUL, (apple, apple_num), apple * apple_num),
            node(orange_price, _MUL, (orange, orange_num), orange * orange_num),
            node(all_price, "+", (apple_price, orange_price), apple_price + orange_price),
            node(price, _MUL, (all_price, tax), all_price * tax),
        ),
        price,
    )


def local_computation_graph() -> Graph:
    """The book's figure 5-4: the apples' 200 yen added to the other purchases, 4000 yen, times the tax."""
    return Graph(
        (apple, apple_num, other, tax),
        (
            node(apple_price, _MUL, (apple, apple_num), apple * apple_num),
            node(all_price, "+", (apple_price, other), apple_price + other),
            node(price, _MUL, (all_price, tax), all_price * tax),
        ),
        price,
    )


APPLES = {apple: 100, apple_num: 2, tax: sp.Rational(11, 10)}
APPLES_ORANGES = {**APPLES, orange: 150, orange_num: 3}
LOCAL_COMPUTATION = {**APPLES, other: 4000}


def computational_graph() -> Derivation:
    """The book's 5.1: the two shopping problems forward (220 and 715 yen), then d price / d apple = 2.2."""
    one = worked_example(apples_graph(), APPLES)
    two = worked_example(apples_oranges_graph(), APPLES_ORANGES)
    local = worked_example(local_computation_graph(), LOCAL_COMPUTATION)
    reasons = {
        (1, apple_price): N_(r"problem 1: 2 apples at 100 yen each, multiplied at the $\times$ node"),
        (1, price): N_("with the consumption tax, the payment is 220 yen"),
        (2, orange_price): N_("problem 2: 3 oranges at 150 yen each as well"),
        (2, all_price): N_("the $+$ node adds the apples' and the oranges' prices"),
        (2, price): N_("with the tax, the payment is 715 yen"),
    }
    forward = []
    for problem, example, graph in ((1, one, apples_graph()), (2, two, apples_oranges_graph())):
        for n in graph.nodes:
            if (problem, n.out) in reasons:
                numbers = n.expr.xreplace({v: sp.UnevaluatedExpr(example.value(v)) for v in n.inputs})
                forward.append(
                    Step(n.out, (n.expr, numbers, example.value(n.out)), reasons[(problem, n.out)])
                )
    # The backward arrows of figure 5-5: 1 from the output, times the tax, times the number of apples.
    arrows = (one.seed, one.grad(apple_price) / one.seed, one.grad(apple) / one.grad(apple_price))
    derivative = Step(
        Partial(price, apple),
        (Chain(*arrows), one.grad(apple)),
        N_(
            "backward, right to left, each node multiplies by its local derivative (figure 5-5):"
            " a rise in the apple's price raises the payment 2.2 times as much"
        ),
    )
    if sp.Mul(*arrows) != one.grad(apple):
        raise ValueError(f"figure 5-5's arrows {arrows} do not multiply to {one.grad(apple)}")
    return Derivation(
        name="computational_graph",
        title=N_("Computational graphs"),
        summary=N_(
            "A computational graph computes forward, left to right, one node at a time;"
            " backward, it passes derivatives from right to left."
        ),
        forward=tuple(forward),
        graph=apples_oranges_graph(),
        steps=(derivative,),
        backward=(),
        loss=price,
        examples=(one, two, local),
    )


def apples() -> Derivation:
    """Two apples at 100 with 10% tax: price 220, dApple 2.2, dApple_num 110, dTax 200."""
    return _shopping("apples", N_("Buying apples"), apples_graph(), APPLES)


def apples_oranges() -> Derivation:
    """Two apples at 100 and three oranges at 150 with 10% tax: price 715."""
    return _shopping(
        "apples_oranges", N_("Buying apples and oranges"), apples_oranges_graph(), APPLES_ORANGES
    )
