"""The figures whose arrows carry numbers (section 5.1 and the worked examples), which a reader may choose."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from chainrule.codegen.i18n import _
from chainrule.codegen.layout.drawing import _Spec
from chainrule.codegen.layout.geometry import FORWARD_ROW, ROW
from chainrule.codegen.layout.labels import _numeric_labels, _title
from chainrule.codegen.text import text
from chainrule.symbolic import NAMES, derive
from chainrule.symbolic import graphs as shop
from chainrule.symbolic.core import Graph, Var, node, worked_example


@dataclass(frozen=True)
class _Numbers:
    """A figure whose arrows carry numbers: the whole computation, the book's inputs, what is drawn."""

    graph: Graph  # every number of the problem an input of it
    values: dict[Var, sp.Basic]  # the book's numbers
    seed: sp.Basic = sp.Integer(1)
    inside: tuple[Var, ...] = ()  # inputs written in their node's circle, "×2", not drawn as arrows
    backward: bool = True  # False for the book's forward-only figures, 5-1 to 5-4


def _drawn(numbers: _Numbers, values: Mapping[Var, sp.Basic]) -> Graph:
    """The graph as drawn: a node with an input written inside its circle (×2) keeps its other inputs."""
    nodes = []
    for n in numbers.graph.nodes:
        inside = [v for v in n.inputs if v in numbers.inside]
        if not inside:
            nodes.append(n)
            continue
        rest = tuple(v for v in n.inputs if v not in numbers.inside)
        op = n.op + "".join(text(values[v]) for v in inside)
        nodes.append(node(n.out, op, rest, n.expr.xreplace({v: values[v] for v in inside})))
    kept = tuple(v for v in numbers.graph.inputs if v not in numbers.inside)
    return Graph(kept, tuple(nodes), numbers.graph.output)


def _example_numbers(name: str) -> _Numbers:
    """A derivation's own worked example: its graph, inputs and seed."""
    d = derive(name)
    example = d.examples[0]
    return _Numbers(d.graph, dict(example.inputs), example.seed)


# Fig. 5-4's other purchases, 4000 in all, where symbolic.graphs does not name them.
OTHER = getattr(shop, "other", sp.Symbol("other", real=True))


def _book_values(graph: Graph, values: dict[Var, sp.Basic]) -> dict[Var, sp.Basic]:
    """The numbers of section 5.1 for ``graph``: those of the computational_graph derivation's worked
    example with these inputs (or more), else ``values`` (the same numbers, from the book)."""
    if "computational_graph" in NAMES:
        wanted = {v.name for v in graph.inputs}
        examples = [{v.name: value for v, value in e.inputs} for e in derive("computational_graph").examples]
        for given in sorted((g for g in examples if wanted <= set(g)), key=len):
            return {v: sp.sympify(given[v.name]) for v in graph.inputs}
    return values


def _shopping(name: str, **how: object) -> _Numbers:
    """A figure of section 5.1 on the graph of one of the shopping problems."""
    graph = derive(name).graph
    values = _book_values(graph, dict(derive(name).examples[0].inputs))
    return _Numbers(graph, values, **how)  # type: ignore[arg-type]


def _local_computation() -> _Numbers:
    """Fig. 5-4: two apples, then the other purchases' 4000 added, then the tax."""
    apple, apple_num, tax = shop.apple, shop.apple_num, shop.tax
    graph = Graph(
        (apple, apple_num, OTHER, tax),
        (
            node(shop.apple_price, "×", (apple, apple_num), apple * apple_num),
            node(shop.all_price, "+", (shop.apple_price, OTHER), shop.apple_price + OTHER),
            node(shop.price, "×", (shop.all_price, tax), shop.all_price * tax),
        ),
        shop.price,
    )
    graph = getattr(shop, "local_computation_graph", lambda: graph)()
    values = {
        apple: sp.Integer(100),
        apple_num: sp.Integer(2),
        OTHER: sp.Integer(4000),
        tax: sp.Rational(11, 10),
    }
    return _Numbers(graph, _book_values(graph, values), inside=(apple_num, tax), backward=False)


_CONSTANTS = (shop.apple_num, shop.tax)
_NUMBERS: dict[str, Callable[[], _Numbers]] = {
    "shopping_forward": lambda: _shopping("apples", inside=_CONSTANTS, backward=False),
    "shopping_variables": lambda: _shopping("apples", backward=False),
    "shopping_two": lambda: _shopping("apples_oranges", backward=False),
    "local_computation": _local_computation,
    "apple_derivative": lambda: _shopping("apples", inside=_CONSTANTS),
    "add": lambda: _example_numbers("add"),
    "mul": lambda: _example_numbers("mul"),
    "apples": lambda: _example_numbers("apples"),
    "apples_oranges": lambda: _example_numbers("apples_oranges"),
}

# The upstream gradient a reader may choose too, where the figure's is not 1 (the add and mul nodes' 1.3).
UPSTREAM = "dout"


def _choices(numbers_: _Numbers) -> dict[str, Var | None]:
    """The inputs of a figure by name, and ``dout`` (None) where its upstream gradient is a choice."""
    chosen: dict[str, Var | None] = {v.name: v for v in numbers_.graph.inputs}
    if numbers_.seed != 1:
        chosen[UPSTREAM] = None
    return chosen


def _exact(value: object) -> sp.Basic | None:
    """A finite real number as an exact rational (0.1 is 1/10, as the reader means it); None otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | sp.Number):
        return None
    if isinstance(value, numbers.Rational):
        return sp.Rational(Fraction(value.numerator, value.denominator))
    number = float(value)  # written as Python writes it, 0.1 and not the binary fraction nearest to it
    return sp.Rational(repr(number)) if math.isfinite(number) else None


def _numbers_spec(name: str, given: Mapping[str, object] | None = None) -> _Spec:
    """The figure ``name`` with the book's numbers, or with the inputs ``given`` by name (ValueError
    names the valid inputs when one is not one of them or not a number)."""
    numbers_ = _NUMBERS[name]()
    by_name = _choices(numbers_)
    valid = ", ".join(by_name)
    values = dict(numbers_.values)
    seed = numbers_.seed
    for key, value in (given or {}).items():
        if key not in by_name:
            raise ValueError(
                _("{name} takes the inputs {valid}, not {key}", name=name, valid=valid, key=repr(key))
            )
        exact = _exact(value)
        if exact is None:
            raise ValueError(
                _(
                    "{key} must be a finite number, not {value}; {name} takes the inputs {valid}",
                    key=key,
                    value=repr(value)[:40],
                    name=name,
                    valid=valid,
                )
            )
        var = by_name[key]
        if var is None:
            seed = exact
        else:
            values[var] = exact
    drawn = _drawn(numbers_, values)
    example = worked_example(drawn, {v: values[v] for v in drawn.inputs}, seed)
    labels = _numeric_labels(example, drawn.output, numbers_.backward)
    # Without backward values under them, the arrows stand closer together.
    return _Spec(name, _title(name), drawn, labels, True, row=ROW if numbers_.backward else FORWARD_ROW)
