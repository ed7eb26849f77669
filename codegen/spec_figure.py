"""A spec's layer as a picture: its formula's node chain laid out and drawn like the chapter's graphs.

The node chain comes from ``symbolic.formula_graph`` (one node per operation, local
derivatives by SymPy); the layout and the SVG are the chapter figures' own machinery,
with the labels the chapter's symbolic figures carry: each variable above its arrow,
upstream × local derivative below it.
"""

from __future__ import annotations

import dataclasses

from chainrule.codegen.figures import svg_document
from chainrule.codegen.layout.drawing import _build, _Spec
from chainrule.codegen.layout.geometry import Layout
from chainrule.codegen.layout.labels import _symbolic_labels
from chainrule.symbolic.formula_graph import formula_graph
from chainrule.symbolic.from_spec import SpecDerivation


class NotDrawable(ValueError):
    """A spec whose layer has no graph to draw (a loss), or too large a one."""


def spec_layout(sd: SpecDerivation) -> Layout:
    """The layout of a spec'd activation's graph: ``y = f(x)`` as a chain of simple nodes."""
    d = sd.derivation
    if d.graph is None:
        raise NotDrawable(f"{d.name} is a loss; only an activation's graph is drawn")
    x, out = d.graph.inputs[0], d.graph.output
    try:
        graph = formula_graph(d.graph.nodes[0].expr, x, out)
    except ValueError as exc:
        raise NotDrawable(f"{d.name}: its formula cannot be drawn: {exc}") from None
    chained = dataclasses.replace(d, graph=graph)
    formula = " ".join(sd.spec.forward.split())
    title = f"{sd.spec.name}: y = {formula if len(formula) <= 60 else formula[:59] + '…'}"
    return _build(_Spec(d.name, title, graph, _symbolic_labels(chained), False))


def spec_svg(sd: SpecDerivation) -> str:
    """A spec'd activation's graph as a self-contained SVG document."""
    return svg_document(spec_layout(sd))
