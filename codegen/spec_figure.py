"""A spec's layer as a picture: its formula's node chain laid out and drawn like the chapter's graphs.

The node chain comes from ``symbolic.formula_graph`` (one node per operation, local
derivatives by SymPy); the layout and the SVG are the chapter figures' own machinery,
with the labels the chapter's symbolic figures carry: each variable above its arrow,
upstream × local derivative below it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from chainrule.codegen.figures import svg_document
from chainrule.codegen.layout.drawing import _build, _Spec
from chainrule.codegen.layout.geometry import Layout
from chainrule.codegen.layout.labels import _symbolic_labels
from chainrule.codegen.text import text
from chainrule.symbolic.core import Graph
from chainrule.symbolic.formula_graph import formula_graph
from chainrule.symbolic.from_spec import SpecDerivation

if TYPE_CHECKING:
    from chainrule.codegen.live import LiveFigure


class NotDrawable(ValueError):
    """A spec whose layer has no graph to draw (a loss), or too large a one."""


def _chain(sd: SpecDerivation, numbers: bool = False) -> tuple[Graph, str]:
    """A spec'd activation's formula as a chain of simple nodes, and the figure's title; with
    ``numbers``, its constants as their numbers (a live figure computes with them)."""
    d = sd.derivation
    if d.graph is None:
        raise NotDrawable(f"{d.name} is a loss; only an activation's graph is drawn")
    x, out = d.graph.inputs[0], d.graph.output
    expr = d.graph.nodes[0].expr
    if numbers:  # the spec's constants (beta = 1.5) as numbers on the graph, as the book writes ×(−1)
        constants = dict(sd.spec.constants)
        expr = expr.xreplace(
            {s: sp.nsimplify(constants[s.name]) for s in expr.free_symbols if s.name in constants}
        )
    try:
        graph = formula_graph(expr, x, out)
    except ValueError as exc:
        raise NotDrawable(f"{d.name}: its formula cannot be drawn: {exc}") from None
    formula = " ".join(sd.spec.forward.split())
    return graph, f"{sd.spec.name}: y = {formula if len(formula) <= 60 else formula[:59] + '…'}"


def spec_layout(sd: SpecDerivation) -> Layout:
    """The layout of a spec'd activation's graph: ``y = f(x)`` as a chain of simple nodes."""
    graph, title = _chain(sd)
    chained = dataclasses.replace(sd.derivation, graph=graph)
    return _build(_Spec(sd.derivation.name, title, graph, _symbolic_labels(chained), False))


def spec_live(sd: SpecDerivation) -> LiveFigure:
    """A spec'd activation's graph as a live figure: x and the upstream gradient to change, every
    node's value and backward value computed by its program, printed as the chapter's are."""
    from chainrule.codegen.live import Field, js, live_program_figure, upstream_field

    graph, title = _chain(sd, numbers=True)
    x, out = graph.inputs[0], graph.output
    fields = (Field(x.name, text(x), 1.0), upstream_field(sd.derivation.loss, out, 1.0))
    try:
        figure = live_program_figure(sd.derivation.name, title, graph, fields)
        for line in figure.program.lines:
            js(line.value)
    except PrintMethodNotImplementedError as exc:
        raise NotDrawable(
            f"{sd.derivation.name}: SymPy's JavaScript printer has no {exc.args[0].split(': ')[-1].split()[0]}"
        ) from None
    return figure


def spec_svg(sd: SpecDerivation) -> str:
    """A spec'd activation's graph as a self-contained SVG document."""
    return svg_document(spec_layout(sd))
