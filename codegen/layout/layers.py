"""The figures of the layers: ReLU, Sigmoid, Affine and Softmax-with-Loss, from their derivations."""

from __future__ import annotations

from dataclasses import replace

import sympy as sp

from chainrule.codegen.layout.drawing import _arrow, _Spec
from chainrule.codegen.layout.geometry import (
    MARGIN,
    TOP,
    Circle,
    Label,
    Layout,
    Placed,
    Point,
    VarLabel,
    _boxes,
    _title_width,
)
from chainrule.codegen.layout.labels import BOOK, Labels, _expr, _number, _product, _symbolic_labels, _title
from chainrule.symbolic import derive, softmax_loss
from chainrule.symbolic.core import Graph, Partial, node


def _from_derivation(name: str, premise: dict[sp.Basic, sp.Basic] | None = None) -> _Spec:
    d = derive(name)
    return _Spec(name, _title(name), d.graph, _symbolic_labels(d, premise), False)


def _layers_simple() -> Layout:
    """Fig. 5-30: the Softmax layer and the Cross Entropy Error layer as two boxes.

    Between them y_k forward and -t_k/y_k backward, the cross-entropy's local
    derivative from ``sympy.diff``; before Softmax, y_k - t_k, the running
    product that the whole graph of Fig. 5-29 sends back to a_k.
    """
    d = derive("softmax_with_loss")
    a, y, t = softmax_loss.a, softmax_loss.y, softmax_loss.t
    full = _symbolic_labels(d, _ONE_HOT)
    loss = next(s for s in d.forward if s.lhs == d.loss).rhs[-1]  # L = -sum_k t_k log y_k
    row, gap = 56.0, 150.0
    data_row = 30.0  # the labels t_k carry nothing back: their arrows closer together
    soft_w, cee_w = 45.0, 80.0  # half widths of the two boxes, room for "Cross Entropy Error"
    top = TOP + 10.0
    rows = [top + k * row for k in range(len(a))]
    soft_x = MARGIN + gap
    soft = Circle(
        "softmax",
        Label("Softmax", r"\mathrm{Softmax}"),
        Point(soft_x, rows[1]),
        0.0,
        None,
        (soft_w, row * 1.5),
    )
    cee_x = soft_x + soft_w + gap + cee_w
    cee_rows = rows + [rows[-1] + row + k * data_row for k in range(len(t))]
    middle = (cee_rows[0] + cee_rows[-1]) / 2
    cee = Circle(
        "cross_entropy_error",
        Label("Cross Entropy Error", r"\mathrm{Cross\ Entropy\ Error}"),
        Point(cee_x, round(middle, 1)),
        0.0,
        None,
        (cee_w, round((cee_rows[-1] - cee_rows[0]) / 2 + row / 2, 1)),
    )
    arrows = []
    for k in range(len(a)):
        into = Point(soft_x - soft_w, rows[k])
        arrows.append(
            _arrow(
                a[k],
                sp.Symbol("softmax"),
                (Point(MARGIN, rows[k]), into),
                (_expr(a[k]), full[(a[k], softmax_loss.e[k])][1]),
                None,
                0,
                0.5,
            )
        )
        back = _expr(sp.diff(loss, y[k]))
        ends = (Point(soft_x + soft_w, rows[k]), Point(cee_x - cee_w, rows[k]))
        arrows.append(_arrow(y[k], sp.Symbol("cross_entropy_error"), ends, (_expr(y[k]), back), None, 0, 0.5))
    for k in range(len(t)):
        ends = (Point(soft_x + soft_w, cee_rows[len(a) + k]), Point(cee_x - cee_w, cee_rows[len(a) + k]))
        arrows.append(
            _arrow(t[k], sp.Symbol("cross_entropy_error"), ends, (_expr(t[k]), Label("", "")), None, 0, 0.5)
        )
    out_at = Point(cee_x + cee_w, round(middle, 1))
    tip = Point(out_at.x + 110.0, out_at.y)
    arrows.append(_arrow(d.loss, None, (out_at, tip), (_expr(d.loss), _number(sp.Integer(1))), None, 0, 0.5))
    title = _title("softmax_with_loss_simple")
    output = VarLabel(d.loss.name, tip, Placed(_expr(d.loss), Point(tip.x + 6, tip.y), "west"))
    inputs = tuple(
        VarLabel(v.name, Point(MARGIN, rows[k]), Placed(_expr(v), Point(MARGIN - 6, rows[k]), "east"))
        for k, v in enumerate(a)
    )
    bottom = max(cee.at.y + cee.box[1], max(b[3] for arrow in arrows for b in _boxes(arrow)))
    return Layout(
        name="softmax_with_loss_simple",
        title=title,
        book=BOOK["softmax_with_loss_simple"][0],
        numbers=False,
        circles=(soft, cee),
        inputs=inputs,
        output=output,
        arrows=tuple(arrows),
        width=round(max(tip.x, _title_width(title)) + MARGIN, 1),
        height=round(bottom + MARGIN, 1),
    )


# The chapter's labels are one-hot, so they sum to one: the premise its Fig. 5-29 simplifies with.
_ONE_HOT: dict[sp.Basic, sp.Basic] = {sp.Add(*softmax_loss.t): sp.Integer(1)}


def _affine() -> _Spec:
    """Fig. 5-27: shapes at the book's example sizes, X of (N, 2) and W of (2, 3)."""
    spec = _from_derivation("affine")
    rows, cols = spec.graph.inputs[1].shape  # W is D x M
    return replace(spec, sizes={rows: 2, cols: 3})


def _softmax_with_loss() -> _Spec:
    """Fig. 5-29 in one row, left to right: nothing goes back along the labels t_k, which are data."""
    spec = _from_derivation("softmax_with_loss", _ONE_HOT)
    labels = dict(spec.labels)
    for (src, dst), (forward, _backward) in spec.labels.items():
        if src in softmax_loss.t:
            labels[(src, dst)] = (forward, Label("", ""))
    return replace(spec, labels=labels, late=softmax_loss.t, gap=80.0, beside=0.75, pad=8.0)


def _sigmoid_simple() -> _Spec:
    """Fig. 5-21/5-22: the whole sigmoid as one node, its backward in its output alone."""
    d = derive("sigmoid")
    x, out = d.graph.inputs[0], d.graph.output
    graph = Graph((x,), (node(out, "sigmoid", (x,), d.forward[0].rhs[0]),), out)
    dout = sp.Symbol("dout", real=True)
    labels: Labels = {
        (x, out): (_expr(x), _product(d.backward[0].expr, dout, out, d.loss)),
        (out, None): (_expr(out), _expr(Partial(d.loss, out))),
    }
    return _Spec("sigmoid_simple", _title("sigmoid_simple"), graph, labels, False)
