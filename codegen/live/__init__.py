"""The chapter's figures made live: each graph's forward and backward pass printed as JavaScript.

A live figure is the figure's SVG, laid out once with the numbers of its default inputs, plus a
small program that recomputes every number on it from the inputs a reader types. The program is
printed from the derivation, never typed: each node's ``expr`` becomes a line of the forward pass,
each of its vector-Jacobian products (``sympy.diff`` of the node, times the upstream gradient) a
line of the backward pass, in the order :meth:`Graph.backprop` runs them. A matrix (the Affine
layer's X, W, B) is written out at the figure's small sizes, so that each entry is one scalar
expression of the others, printed by SymPy's JavaScript printer.

The same program is evaluated here in exact arithmetic to write the figure's first numbers, so a
page reads right before its script runs, and the script and the page format a number alike
(:func:`shown`).

The package's parts: :mod:`.program` (the lines, their JavaScript, the number format),
:mod:`.figures` (each chapter figure's inputs and layout), :mod:`.page` (what a page's template
and script are given).
"""

from __future__ import annotations

from chainrule.codegen.layout.numbered import UPSTREAM
from chainrule.codegen.live.figures import (
    LiveFigure,
    inputs,
    live_figure,
    live_program_figure,
    upstream_field,
)
from chainrule.codegen.live.page import (
    FigureView,
    block,
    fragment,
    fragment_of,
    messages,
    names_for,
    page,
    page_of,
    runtime,
    spec_js,
    view,
    view_of,
)
from chainrule.codegen.live.program import (
    LABEL,
    SIGNIFICANT,
    Field,
    Program,
    Value,
    evaluate,
    js,
    js_function,
    program,
    shown,
    shown_value,
)

__all__ = [
    "LABEL",
    "SIGNIFICANT",
    "UPSTREAM",
    "Field",
    "FigureView",
    "LiveFigure",
    "Program",
    "Value",
    "block",
    "evaluate",
    "fragment",
    "fragment_of",
    "inputs",
    "js",
    "js_function",
    "live_figure",
    "live_program_figure",
    "messages",
    "names_for",
    "page",
    "page_of",
    "program",
    "runtime",
    "shown",
    "shown_value",
    "spec_js",
    "view",
    "upstream_field",
    "view_of",
]
