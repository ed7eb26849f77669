"""The chapter's figures as live figures: each one's inputs, program, layout and where its numbers go."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache

import sympy as sp

from chainrule.codegen.i18n import _, active
from chainrule.codegen.layout import _SPECS, FIGURES, UnknownFigure
from chainrule.codegen.layout.drawing import _build, _Spec
from chainrule.codegen.layout.geometry import FORWARD_ROW, ROW, Label, Layout
from chainrule.codegen.layout.labels import _title
from chainrule.codegen.layout.layers import _layers_simple
from chainrule.codegen.layout.numbered import _NUMBERS, UPSTREAM, _drawn
from chainrule.codegen.live.program import (
    LABEL,
    Field,
    Program,
    Value,
    evaluate,
    program,
    shown_value,
)
from chainrule.codegen.text import text
from chainrule.symbolic import derive, softmax_loss
from chainrule.symbolic.core import Graph, Partial, Var

# -- the figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveFigure:
    """A figure whose numbers a reader changes: its layout, its program, and which number goes where."""

    name: str
    title: str
    layout: Layout
    program: Program
    # "src>dst" of each arrow ("src>" for the output's): the identifiers of its forward value and of
    # what goes back along it (None: nothing is drawn there).
    bind: dict[str, tuple[str, str | None]]
    # A node with a number written in its circle (×2): its operation, and that number's identifier.
    ops: dict[str, tuple[str, str]]

    @property
    def fields(self) -> tuple[Field, ...]:
        return self.program.fields


def _number(value: sp.Basic) -> float:
    return float(sp.nsimplify(value))


def _label(prog: Program, values: Mapping[str, Value], ident: str | None) -> Label:
    if ident is None:
        return Label("", "")
    written = shown_value(values[ident], row=ident in prog.rows)
    return Label(written, written)


def _arrows(graph: Graph) -> list[tuple[str, str]]:
    """Every arrow of a graph as (src, dst), the output's as (output, "")."""
    return [(v.name, n.out.name) for n in graph.nodes for v in n.inputs] + [(graph.output.name, "")]


def _labels_and_bind(
    drawn: Graph,
    prog: Program,
    backward: bool,
    values: Mapping[str, Value],
    data: frozenset[str] = frozenset(),
) -> tuple[dict, dict[str, tuple[str, str | None]]]:
    """Each drawn arrow's first labels and what the script writes there: forward above, backward below."""
    labels = {}
    bind: dict[str, tuple[str, str | None]] = {}
    names = {v.name: v for v in drawn.inputs} | {n.out.name: n.out for n in drawn.nodes}
    for src, dst in _arrows(drawn):
        forward = prog.value[src]
        if not backward or src in data:
            back = None
        elif dst:
            back = prog.edge[(src, dst)]
        else:
            back = prog.grad[src]
        bind[f"{src}>{dst}"] = (forward, back)
        labels[(names[src], names[dst] if dst else None)] = (
            _label(prog, values, forward),
            _label(prog, values, back),
        )
    return labels, bind


def upstream_field(d_loss: sp.Basic, output: Var, default: Value) -> Field:
    """The upstream gradient a reader may choose, named as the book names it."""
    return Field(
        UPSTREAM, _("{partial} (the upstream gradient)", partial=text(Partial(d_loss, output))), default
    )


def _numbers_figure(name: str, given: Mapping[str, Value]) -> LiveFigure:
    """A figure of section 5.1 or a worked example: the book's numbers are the first inputs."""
    numbers_ = _NUMBERS[name]()
    graph = numbers_.graph
    fields = [Field(v.name, text(v), _number(numbers_.values[v])) for v in graph.inputs]
    seed = None if numbers_.seed != 1 else sp.Integer(1)
    if seed is None:
        fields.append(upstream_field(sp.Symbol("L"), graph.output, _number(numbers_.seed)))
    prog = program(graph, fields, seed)
    values = evaluate(prog, given)
    own = {v: sp.nsimplify(given[v.name]) for v in graph.inputs if v.name in given}
    drawn = _drawn(numbers_, {**numbers_.values, **own})  # a number inside a node's circle is an input too
    labels, bind = _labels_and_bind(drawn, prog, numbers_.backward, values)
    spec = _Spec(name, _title(name), drawn, labels, True, row=ROW if numbers_.backward else FORWARD_ROW)
    ops = {}
    for n in graph.nodes:
        inside = [v for v in n.inputs if v in numbers_.inside]
        if inside:
            ops[n.out.name] = (n.op, prog.value[inside[0].name])
    return LiveFigure(name, spec.title, _build(spec), prog, bind, ops)


# Softmax-with-Loss's labels t_k: data, read from the label the reader picks; nothing goes back along them.
_LABELS = frozenset(v.name for v in softmax_loss.t)

# The first inputs of the layers' figures, where the book gives no numbers of its own: Fig. 5-29's
# scores are those of the book's softmax example (a = 0.3, 2.9, 4.0); the Affine layer's upstream
# gradient is the book's dY of section 5.6.2, whose column sums dB = (5, 7, 9).
_LAYER_DEFAULTS: dict[str, dict[str, Value]] = {
    "chain_rule": {"x": 1.0, "y": 2.0},
    "relu": {"x": 1.5, UPSTREAM: 1.0},
    "sigmoid": {"x": 1.0, UPSTREAM: 1.0},
    "affine": {
        "x": ((1.0, 0.5), (-1.0, 2.0)),
        "W": ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6)),
        "b": ((0.1, 0.2, 0.3),),
        UPSTREAM: ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0)),
    },
    "softmax_with_loss": {"a1": 0.3, "a2": 2.9, "a3": 4.0, LABEL: 3},
}


def _layer_program(name: str) -> tuple[Program, Mapping[sp.Basic, int]]:
    """A layer's graph as a program, with the inputs of :data:`_LAYER_DEFAULTS`."""
    d = derive(name)
    graph = d.graph
    defaults = _LAYER_DEFAULTS[name]
    sizes = _SPECS[name]().sizes if name in _SPECS else {}
    derived: dict[Var, sp.Basic] = {}
    fields: list[Field] = []
    for v in graph.inputs:
        if v in softmax_loss.t:
            k = softmax_loss.t.index(v) + 1
            derived[v] = sp.Piecewise((1, sp.Eq(sp.Symbol(f"input.{LABEL}"), k)), (0, True))
        else:
            fields.append(Field(v.name, text(v), defaults[v.name]))
    if derived:
        fields.append(
            Field(LABEL, _("label (the correct class)"), defaults[LABEL], tuple(range(1, len(derived) + 1)))
        )
    seed = sp.Integer(1) if graph.output == d.loss else None
    if seed is None:
        fields.append(upstream_field(d.loss, graph.output, defaults[UPSTREAM]))
    if name == "affine":
        sizes = {**sizes, graph.inputs[0].shape[0]: len(defaults["x"])}
    return program(graph, fields, seed, sizes, derived), sizes


def _layer_figure(name: str, given: Mapping[str, Value]) -> LiveFigure:
    """ReLU, Sigmoid, Affine, Softmax-with-Loss and the chain rule's graph, with numbers on the arrows."""
    base = _SPECS[name]()
    prog, sizes = _layer_program(name)
    values = evaluate(prog, given)
    labels, bind = _labels_and_bind(base.graph, prog, True, values, _LABELS)
    spec = replace(base, labels=labels, numbers=True, sizes={**base.sizes, **sizes})
    return LiveFigure(name, spec.title, _build(spec), prog, bind, {})


def live_program_figure(name: str, title: str, graph: Graph, fields: Sequence[Field]) -> LiveFigure:
    """Any graph of scalar nodes as a live figure, its upstream gradient the field ``dout``: a spec's layer."""
    prog = program(graph, fields, None)
    values = evaluate(prog, {})
    labels, bind = _labels_and_bind(graph, prog, True, values)
    return LiveFigure(name, title, _build(_Spec(name, title, graph, labels, True)), prog, bind, {})


def _sigmoid_simple(given: Mapping[str, Value]) -> LiveFigure:
    """Fig. 5-21/5-22 computed by the whole graph of Fig. 5-19: the one node's dx is its x's gradient."""
    base = _SPECS["sigmoid_simple"]()
    prog, _sizes = _layer_program("sigmoid")
    values = evaluate(prog, given)
    bind = {"x>out": (prog.value["x"], prog.grad["x"]), "out>": (prog.value["out"], prog.grad["out"])}
    x, out = base.graph.inputs[0], base.graph.output
    labels = {
        (x, out): (_label(prog, values, bind["x>out"][0]), _label(prog, values, bind["x>out"][1])),
        (out, None): (_label(prog, values, bind["out>"][0]), _label(prog, values, bind["out>"][1])),
    }
    spec = replace(base, labels=labels, numbers=True)
    return LiveFigure("sigmoid_simple", spec.title, _build(spec), prog, bind, {})


def _softmax_simple(given: Mapping[str, Value]) -> LiveFigure:
    """Fig. 5-30's two boxes, computed by the whole graph of Fig. 5-29: y_k - t_k arrives at a_k."""
    prog, _sizes = _layer_program("softmax_with_loss")
    values = evaluate(prog, given)
    layout = _layers_simple()
    bind: dict[str, tuple[str, str | None]] = {}
    arrows = []
    for arrow in layout.arrows:
        src = arrow.src
        back = None if src in _LABELS else prog.grad[src]  # the labels t_k are data
        key = f"{src}>{arrow.dst or ''}"
        bind[key] = (prog.value[src], back)
        arrows.append(
            replace(
                arrow,
                forward=replace(arrow.forward, label=_label(prog, values, bind[key][0])),
                backward=replace(arrow.backward, label=_label(prog, values, back)),
            )
        )
    shown_layout = replace(layout, arrows=tuple(arrows), numbers=True)
    return LiveFigure("softmax_with_loss_simple", layout.title, shown_layout, prog, bind, {})


# Each builder draws its figure's first numbers from the inputs given (the others as the book has them).
_BUILDERS: dict[str, Callable[[Mapping[str, Value]], LiveFigure]] = {
    **{name: (lambda given, name=name: _numbers_figure(name, given)) for name in _NUMBERS},
    **{
        name: (lambda given, name=name: _layer_figure(name, given))
        for name in ("chain_rule", "relu", "sigmoid", "affine", "softmax_with_loss")
    },
    "sigmoid_simple": _sigmoid_simple,
    "softmax_with_loss_simple": _softmax_simple,
}
assert set(_BUILDERS) == set(FIGURES)


@cache
def _live(name: str, lang: str, given: tuple[tuple[str, Value], ...]) -> LiveFigure:
    return _BUILDERS[name](dict(given))


def live_figure(name: str, values: Mapping[str, Value] | None = None) -> LiveFigure:
    """The live figure called ``name``, in the reader's language (UnknownFigure for another name).

    ``values`` (checked already: :func:`inputs`) draw its first numbers; its fields and its program
    stay those of the book's numbers, so every figure of one name shares one printed program.
    """
    if name not in _BUILDERS:
        raise UnknownFigure(name)
    own = {x.name for x in _live(name, active(), ()).fields}
    return _live(name, active(), tuple(sorted((k, v) for k, v in (values or {}).items() if k in own)))


def inputs(owner: str, names: Sequence[str], values: Mapping[str, object]) -> dict[str, Value]:
    """A reader's inputs for the figures ``names`` of ``owner``, each as its field takes it: a finite
    number, a matrix of the field's shape, a label among the classes. ValueError names the valid ones,
    as ``Derivation.figure`` does, so a typo is told at once rather than drawn as the book's number."""
    fields: dict[str, Field] = {}
    for name in names:
        for x in live_figure(name).fields:
            fields.setdefault(x.name, x)
    valid = ", ".join(fields)
    checked: dict[str, Value] = {}
    for key, value in values.items():
        if key not in fields:
            raise ValueError(
                _("{name} takes the inputs {valid}, not {key}", name=owner, valid=valid, key=repr(key))
            )
        field = fields[key]
        taken = _taken(field, value)
        if taken is None:
            if field.choices:
                wanted = _("one of {classes}", classes=", ".join(str(k) for k in field.choices))
            elif field.shape is not None:
                rows, cols = field.shape
                wanted = (
                    _("a row of {cols} finite numbers", cols=cols)
                    if rows == 1
                    else _("a {rows} × {cols} matrix of finite numbers", rows=rows, cols=cols)
                )
            else:
                wanted = _("a finite number")
            raise ValueError(
                _(
                    "{key} must be {wanted}, not {value}; {name} takes the inputs {valid}",
                    key=key,
                    wanted=wanted,
                    value=_cut(repr(value)),
                    name=owner,
                    valid=valid,
                )
            )
        checked[key] = taken
    return checked


def _cut(text: str, limit: int = 40) -> str:
    """A value's repr for a one-line message, cut short with … when long, on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | sp.Number):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any double: 10**400
        return None
    return number if math.isfinite(number) else None


def _taken(field: Field, value: object) -> Value | None:
    """``value`` as ``field`` takes it, or None: a label is one of its classes, a matrix has its shape
    (a 1 x M one may be given as its row, as NumPy holds a bias)."""
    if field.choices:
        number = _finite(value)
        return int(number) if number is not None and number in field.choices else None
    if field.shape is None:
        return _finite(value)
    rows = getattr(value, "tolist", lambda: value)()
    if (
        field.shape[0] == 1
        and isinstance(rows, list | tuple)
        and rows
        and not isinstance(rows[0], list | tuple)
    ):
        rows = [rows]
    try:
        matrix = tuple(tuple(_finite(x) for x in row) for row in rows)
    except TypeError:
        return None
    shape = (len(matrix), len(matrix[0]) if matrix else 0)
    if shape != field.shape or any(len(r) != shape[1] or None in r for r in matrix):
        return None
    return matrix  # type: ignore[return-value]
