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
"""

from __future__ import annotations

import json
import keyword
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

import sympy as sp
from sympy.printing.jscode import JavascriptCodePrinter

from chainrule.codegen.i18n import _, active, translate
from chainrule.codegen.layout import FIGURES, UnknownFigure
from chainrule.codegen.layout.drawing import _build, _Spec
from chainrule.codegen.layout.geometry import Label, Layout
from chainrule.codegen.layout.labels import _title
from chainrule.codegen.layout.layers import _layers_simple
from chainrule.codegen.layout.numbered import _NUMBERS, UPSTREAM, _drawn
from chainrule.codegen.text import text
from chainrule.symbolic import derive, softmax_loss
from chainrule.symbolic.core import Graph, Node, Partial, Var

SIGNIFICANT = 5  # digits a live figure shows of a number; the page's script rounds the same way
LABEL = "label"  # Softmax-with-Loss's input: the correct class, from which the one-hot t_k follow

# JavaScript's reserved words that are also names a graph might use for a variable.
_JS_RESERVED = frozenset(
    "break case catch class const continue debugger default delete do else export extends false finally "
    "for function if import in instanceof let new null return super switch this throw true try typeof "
    "var void while with yield await enum implements interface package private protected public static "
    "arguments eval input".split()
)


# -- numbers, as the page shows them -------------------------------------------------------------


def shown(value: float) -> str:
    """A number as a live figure shows it: rounded to :data:`SIGNIFICANT` digits, then written as
    JavaScript writes a number (``330``, ``0.73106``, ``1e-7``), so the page and this agree exactly.

    JavaScript's ``toPrecision`` rounds the exact binary value, a tie away from zero; ``String``
    writes the shortest decimal that reads back to the same double.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    exact = Decimal(value)
    places = SIGNIFICANT - 1 - exact.adjusted()
    rounded = float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
    if math.isinf(rounded):  # the largest doubles round past the last one: JavaScript reads Infinity
        return "Infinity" if rounded > 0 else "-Infinity"
    return _js_string(rounded)


def _js_string(value: float) -> str:
    """ECMAScript's Number::toString for a finite double."""
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _js_string(-value)
    _sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    s = "".join(map(str, digits))
    k, n = len(s), exponent + len(s)  # the value is 0.s times 10**n
    if k <= n <= 21:
        return s + "0" * (n - k)
    if 0 < n <= 21:
        return s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + s
    e = n - 1
    return (s[0] + ("." + s[1:] if k > 1 else "")) + ("e+" if e >= 0 else "e-") + str(abs(e))


Value = float | tuple[tuple[float, ...], ...]


def shown_value(value: Value, row: bool = False) -> str:
    """A number, or a matrix as nested rows; ``row``: a 1 x M matrix written as NumPy's (M,) row."""
    if isinstance(value, tuple):
        rows = ["[" + ", ".join(shown(x) for x in r) + "]" for r in value]
        return rows[0] if row else "[" + ", ".join(rows) + "]"
    return shown(value)


# -- the program: the graph's passes as lines of scalar expressions ------------------------------


@dataclass(frozen=True)
class Field:
    """One input a reader may change: a number, a small matrix, or a choice among classes."""

    name: str  # its key in the URL fragment and in the program's input
    label: str  # what the page writes beside it, in the reader's language
    default: Value
    choices: tuple[int, ...] = ()  # the classes of a label input

    @property
    def shape(self) -> tuple[int, int] | None:
        return (len(self.default), len(self.default[0])) if isinstance(self.default, tuple) else None


@dataclass(frozen=True)
class Line:
    """``const ident = value;``: a scalar expression, or a matrix of them."""

    ident: str
    value: sp.Basic
    comment: str = ""


@dataclass(frozen=True)
class Program:
    """A graph's forward and backward pass as lines, with the identifier of each quantity."""

    fields: tuple[Field, ...]
    reads: tuple[Line, ...]  # the inputs, from the reader's fields
    forward: tuple[Line, ...]
    backward: tuple[Line, ...]
    value: dict[str, str]  # a variable's name: the identifier of its forward value
    grad: dict[str, str]  # a variable's name: the identifier of its gradient
    edge: dict[tuple[str, str], str]  # (src, dst): what the backward pass sends along that arrow
    rows: frozenset[str] = frozenset()  # identifiers of 1 x M matrices, written as NumPy's (M,) rows

    @property
    def lines(self) -> tuple[Line, ...]:
        return self.reads + self.forward + self.backward


def _ident(name: str, taken: set[str]) -> str:
    """A JavaScript identifier for a variable: its own name where it is one."""
    ident = name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else "v" + str(len(taken))
    if ident in _JS_RESERVED or keyword.iskeyword(ident):
        ident += "_"
    while ident in taken:
        ident += "_"
    taken.add(ident)
    return ident


def _explicit(ident: str, shape: tuple[int, int]) -> sp.ImmutableMatrix:
    """A matrix written out as the entries of the JavaScript array ``ident``: ``W[0][1]``."""
    return sp.ImmutableMatrix(*shape, lambda i, j: sp.Symbol(f"{ident}[{i}][{j}]"))


def _shape(var: Var, sizes: Mapping[sp.Basic, int]) -> tuple[int, int] | None:
    if not isinstance(var, sp.MatrixSymbol):
        return None
    rows, cols = (int(sp.sympify(n).xreplace(dict(sizes))) for n in var.shape)
    return rows, cols


def program(
    graph: Graph,
    fields: Sequence[Field],
    seed: sp.Basic | None,
    sizes: Mapping[sp.Basic, int] | None = None,
    derived: Mapping[Var, sp.Basic] | None = None,
) -> Program:
    """Print ``graph``'s passes as lines: forward in node order, backward in reverse, as backprop runs.

    ``fields`` name the inputs a reader types, ``seed`` is the output's gradient (None: the field
    ``dout``), ``sizes`` the figure's sizes for a matrix's dimensions, and ``derived`` the inputs
    computed from a field (Softmax-with-Loss's one-hot t_k from its label).
    """
    sizes = dict(sizes or {})
    derived = dict(derived or {})
    taken: set[str] = set()
    env: dict[sp.Basic, sp.Basic] = {}  # a graph variable (sizes put in): its symbol or explicit matrix
    value: dict[str, str] = {}
    rows: set[str] = set()
    field_names = {f.name for f in fields}

    def bind(var: Var, ident: str) -> sp.Basic:
        shape = _shape(var, sizes)
        symbol = sp.Symbol(ident) if shape is None else _explicit(ident, shape)
        if shape is not None and shape[0] == 1:
            rows.add(ident)
        env[var.xreplace(sizes) if shape else var] = symbol
        return symbol

    def put(expr: sp.Basic, extra: Mapping[sp.Basic, sp.Basic] | None = None) -> sp.Basic:
        """An expression of the graph in the program's symbols; a matrix one written out entry by entry."""
        mapping = {**env, **(extra or {})}
        if isinstance(expr, sp.MatrixExpr):
            return sp.ImmutableMatrix(expr.xreplace(sizes).xreplace(mapping).doit().as_explicit())
        return expr.xreplace(mapping)

    reads: list[Line] = []
    for var in graph.inputs:
        ident = _ident(var.name, taken)
        value[var.name] = ident
        bind(var, ident)
        if var in derived:
            reads.append(Line(ident, derived[var], "one-hot: 1 for the label's class, else 0"))
        elif var.name in field_names:
            reads.append(Line(ident, sp.Symbol(f"input.{var.name}")))
        else:
            raise ValueError(f"no field for the input {var.name}")

    forward: list[Line] = []
    for n in graph.nodes:
        ident = _ident(n.out.name, taken)
        value[n.out.name] = ident
        expr = put(n.expr)
        forward.append(Line(ident, expr, f"the {n.op} node"))
        bind(n.out, ident)

    backward: list[Line] = []
    grad: dict[str, str] = {}
    edge: dict[tuple[str, str], str] = {}
    out = graph.output
    dout_ident = _ident("d" + out.name, taken)
    grad[out.name] = dout_ident
    out_shape = _shape(out, sizes)
    seed_value = sp.Symbol(f"input.{UPSTREAM}") if seed is None else seed
    backward.append(Line(dout_ident, seed_value, "the upstream gradient the figure starts from"))
    if out_shape is not None and out_shape[0] == 1:
        rows.add(dout_ident)
    grads: dict[Var, sp.Basic] = {
        out: _explicit(dout_ident, out_shape) if out_shape else sp.Symbol(dout_ident)
    }
    consumers = {
        v: sum(v in n.inputs for n in graph.nodes) for v in graph.inputs + tuple(n.out for n in graph.nodes)
    }
    pending: dict[Var, list[sp.Basic]] = {}
    for n in reversed(graph.nodes):
        upstream = grads[n.out]
        for v, vjp in zip(n.inputs, n.vjp, strict=True):
            if v in derived:
                continue  # data, not a parameter: nothing goes back along it (the labels t_k)
            upstream_key = (
                n.upstream.xreplace(sizes) if isinstance(n.upstream, sp.MatrixSymbol) else n.upstream
            )
            contribution = put(vjp, {upstream_key: upstream})
            shape = _shape(v, sizes)
            if consumers[v] == 1:
                ident = _ident("d" + v.name, taken)
                grad[v.name] = ident
            else:
                ident = _ident(f"d{v.name}_via_{n.out.name}", taken)
            edge[(v.name, n.out.name)] = ident
            if shape is not None and shape[0] == 1:
                rows.add(ident)
            backward.append(Line(ident, contribution, _local_comment(n, v)))
            symbol = _explicit(ident, shape) if shape else sp.Symbol(ident)
            pending.setdefault(v, []).append(symbol)
            if len(pending[v]) == consumers[v]:
                if consumers[v] > 1:
                    total = _ident("d" + v.name, taken)
                    grad[v.name] = total
                    summed = pending[v][0]
                    for s in pending[v][1:]:
                        summed = summed + s
                    backward.append(Line(total, summed, "the gradients of its branches, summed"))
                    if shape is not None and shape[0] == 1:
                        rows.add(total)
                    grads[v] = _explicit(total, shape) if shape else sp.Symbol(total)
                else:
                    grads[v] = symbol
    return Program(
        tuple(fields), tuple(reads), tuple(forward), tuple(backward), value, grad, edge, frozenset(rows)
    )


def _local_comment(n: Node, v: Var) -> str:
    """What a backward line computes, as a comment: d(out) times the local derivative sympy.diff gave."""
    i = n.inputs.index(v)
    if n.local[i] is None:  # a matrix node: its vector-Jacobian product, from the trace differential
        vjp = n.vjp[i].xreplace({n.upstream: sp.Symbol("d" + n.out.name)})
        return f"back along {v.name} → {n.out.name}: " + text(vjp)
    local = " ".join(sp.sstr(n.local[i]).split())
    partial = f"∂{n.out.name}/∂{v.name}"
    return f"back along {v.name} → {n.out.name}: d{n.out.name} × {partial}, where {partial} = {local}"


# -- printing as JavaScript ----------------------------------------------------------------------


class _JsPrinter(JavascriptCodePrinter):
    """SymPy's JavaScript printer, with the program's names as they are and cases inline."""

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return expr.name

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        *cases, (last, cond) = expr.args
        if cond != sp.true:
            raise ValueError("a case without an otherwise cannot be printed")
        out = self._print(last)
        for value, cond in reversed(cases):
            out = f"({self._print(cond)} ? {self._print(value)} : {out})"
        return out

    def _print_Equality(self, expr: sp.Equality) -> str:
        return f"{self._print(expr.lhs)} === {self._print(expr.rhs)}"

    def _print_Function(self, expr: sp.Function) -> str:
        """A function JavaScript's Math lacks, written by its own definition (a spec's sigmoid, in exp)."""
        if expr.func.__name__ not in self.known_functions:
            written = expr.rewrite(sp.exp)
            if written != expr:
                return self._print(written)
        return super()._print_Function(expr)


def js(value: sp.Basic) -> str:
    """A scalar expression, or a matrix of them as nested arrays, as JavaScript."""
    printer = _JsPrinter()
    if isinstance(value, sp.MatrixBase):
        return (
            "["
            + ", ".join("[" + ", ".join(printer.doprint(x) for x in row) + "]" for row in value.tolist())
            + "]"
        )
    return printer.doprint(value)


def js_function(prog: Program) -> str:
    """The program as the body of ``function (input) { ... }``: one ``const`` per line, then a return."""
    lines = ["// forward: each node's expression, as the derivation has it"]
    for line in prog.reads + prog.forward:
        lines.append(_js_line(line))
    lines.append("// backward: the upstream gradient times each node's local derivative (sympy.diff)")
    for line in prog.backward:
        lines.append(_js_line(line))
    idents = [line.ident for line in prog.lines]
    lines.append("return {" + ", ".join(idents) + "};")
    return "\n".join(lines)


def _js_line(line: Line) -> str:
    comment = f"  // {line.comment}" if line.comment else ""
    return f"const {line.ident} = {js(line.value)};{comment}"


def evaluate(prog: Program, inputs: Mapping[str, Value]) -> dict[str, Value]:
    """Run the program here, exactly (SymPy), then rounded to floats: the figure's first numbers."""
    env: dict[sp.Basic, sp.Basic] = {}
    out: dict[str, Value] = {}
    for f in prog.fields:
        given = inputs.get(f.name, f.default)
        if isinstance(given, tuple):
            for i, row in enumerate(given):
                for j, x in enumerate(row):
                    env[sp.Symbol(f"input.{f.name}[{i}][{j}]")] = sp.nsimplify(x)
        env[sp.Symbol(f"input.{f.name}")] = (
            sp.nsimplify(given)
            if not isinstance(given, tuple)
            else sp.ImmutableMatrix(given).applyfunc(sp.nsimplify)
        )
    for line in prog.lines:
        v = line.value
        if isinstance(v, sp.Symbol) and v in env:
            result = env[v]
        else:
            result = v.xreplace(env)
            if isinstance(result, sp.MatrixBase):
                result = result.applyfunc(sp.simplify)
        if isinstance(result, sp.MatrixBase):
            for i in range(result.rows):
                for j in range(result.cols):
                    env[sp.Symbol(f"{line.ident}[{i}][{j}]")] = result[i, j]
            out[line.ident] = tuple(tuple(float(x) for x in row) for row in result.tolist())
        else:
            env[sp.Symbol(line.ident)] = result
            out[line.ident] = float(result)
    return out


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


def _upstream_field(d_loss: sp.Basic, output: Var, default: Value) -> Field:
    return Field(UPSTREAM, text(Partial(d_loss, output)), default)


def _numbers_figure(name: str, given: Mapping[str, Value]) -> LiveFigure:
    """A figure of section 5.1 or a worked example: the book's numbers are the first inputs."""
    numbers_ = _NUMBERS[name]()
    graph = numbers_.graph
    fields = [Field(v.name, text(v), _number(numbers_.values[v])) for v in graph.inputs]
    seed = None if numbers_.seed != 1 else sp.Integer(1)
    if seed is None:
        fields.append(_upstream_field(sp.Symbol("L"), graph.output, _number(numbers_.seed)))
    prog = program(graph, fields, seed)
    values = evaluate(prog, given)
    own = {v: sp.nsimplify(given[v.name]) for v in graph.inputs if v.name in given}
    drawn = _drawn(numbers_, {**numbers_.values, **own})  # a number inside a node's circle is an input too
    labels, bind = _labels_and_bind(drawn, prog, numbers_.backward, values)
    from chainrule.codegen.layout.geometry import FORWARD_ROW, ROW

    spec = _Spec(name, _title(name), drawn, labels, True, row=ROW if numbers_.backward else FORWARD_ROW)
    ops = {}
    for n in graph.nodes:
        inside = [v for v in n.inputs if v in numbers_.inside]
        if inside:
            ops[n.out.name] = (n.op, prog.value[inside[0].name])
    return LiveFigure(name, spec.title, _build(spec), prog, bind, ops)


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
    from chainrule.codegen.layout import _SPECS

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
        fields.append(_upstream_field(d.loss, graph.output, defaults[UPSTREAM]))
    if name == "affine":
        sizes = {**sizes, graph.inputs[0].shape[0]: len(defaults["x"])}
    return program(graph, fields, seed, sizes, derived), sizes


def _layer_figure(name: str, given: Mapping[str, Value]) -> LiveFigure:
    """ReLU, Sigmoid, Affine, Softmax-with-Loss and the chain rule's graph, with numbers on the arrows."""
    from chainrule.codegen.layout import _SPECS

    base = _SPECS[name]()
    prog, sizes = _layer_program(name)
    values = evaluate(prog, given)
    data = frozenset(v.name for v in base.graph.inputs if v in softmax_loss.t)
    labels, bind = _labels_and_bind(base.graph, prog, True, values, data)
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
    from chainrule.codegen.layout import _SPECS

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
        back = None if src.startswith("t") else prog.grad[src]
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
        taken = _taken(fields[key], value)
        if taken is None:
            raise ValueError(
                _(
                    "{key} must be a finite number, not {value}; {name} takes the inputs {valid}",
                    key=key,
                    value=repr(value)[:40],
                    name=owner,
                    valid=valid,
                )
            )
        checked[key] = taken
    return checked


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | sp.Number):
        return None
    number = float(value)
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


# -- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldView:
    name: str
    label: str
    value: str  # a number's box, as JavaScript writes the number
    rows: tuple[tuple[str, ...], ...] | None  # a matrix's boxes
    choices: tuple[int, ...]
    default: Value


@dataclass(frozen=True)
class FigureView:
    """One live figure as a page holds it: its fields, its inline SVG, its program as a JS object."""

    name: str
    title: str
    fields: tuple[_FieldView, ...]
    svg: str
    spec: str
    fragment: str


def _written(value: Value) -> str:
    """A field's value in a URL fragment: a number as JavaScript writes it, a matrix's rows split by ;."""
    if isinstance(value, tuple):
        return ";".join(",".join(_js_string(float(x)) for x in row) for row in value)
    return _js_string(float(value))


def fragment(name: str, values: Mapping[str, Value] | None = None) -> str:
    """The URL fragment (without #) that opens figure ``name`` with these inputs, the others as first drawn."""
    return fragment_of(live_figure(name), values)


def fragment_of(f: LiveFigure, values: Mapping[str, Value] | None = None) -> str:
    """The URL fragment of a live figure with these inputs: ``apples?apple=150&apple_num=2&tax=1.1``."""
    given = dict(values or {})
    return f.name + "?" + "&".join(f"{x.name}={_written(given.get(x.name, x.default))}" for x in f.fields)


def _json(value: object) -> str:
    """JSON for inside a <script>: nothing in it can end the script."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def spec_js(f: LiveFigure) -> str:
    """The figure for the page's script: its fields, where its numbers go, and its printed program."""
    fields = [
        {"name": x.name, "label": x.label, "default": x.default, "shape": x.shape, "choices": list(x.choices)}
        for x in f.fields
    ]
    body = "\n".join("    " + line for line in js_function(f.program).splitlines())
    return (
        "{\n"
        f"    fields: {_json(fields)},\n"
        f"    bind: {_json(f.bind)},\n"
        f"    ops: {_json(f.ops)},\n"
        f"    rows: {_json(sorted(f.program.rows))},\n"
        "    compute: function (input) {\n"
        f"{body}\n"
        "    },\n"
        "  }"
    )


def view(name: str, values: Mapping[str, Value] | None = None) -> FigureView:
    """Figure ``name`` ready for a page's template; ``values`` (checked: :func:`inputs`) fill its boxes
    and draw its first numbers, which the program computes the same way once the script runs."""
    return view_of(live_figure(name, values), values)


def view_of(f: LiveFigure, values: Mapping[str, Value] | None = None) -> FigureView:
    """A live figure ready for a page's template (a spec's layer too), drawn with ``values``."""
    from chainrule.codegen.figures import svg_document
    from chainrule.codegen.html import inline

    name = f.name
    given = dict(values or {})
    fields = []
    for x in f.fields:
        now = given.get(x.name, x.default)
        fields.append(
            _FieldView(
                x.name,
                x.label,
                "" if isinstance(now, tuple) else _js_string(float(now)),
                tuple(tuple(_js_string(float(v)) for v in row) for row in now)
                if isinstance(now, tuple)
                else None,
                x.choices,
                now,
            )
        )
    picture = inline(svg_document(f.layout), f"live-{name}")
    own = {k: v for k, v in given.items() if k in {x.name for x in f.fields}}
    return FigureView(name, translate(f.title), tuple(fields), picture, spec_js(f), fragment_of(f, own))


def messages() -> str:
    """What the page's script says, in the reader's language, as a JavaScript object."""
    return _json(
        {
            "unknown": _("{key} is not an input of this figure; it takes {valid}"),
            "bad": _("{key}={value} is not a number this input takes; it keeps its value"),
            "empty": _("type a number in {names}: the figure shows the last numbers it could compute"),
            "overflow": _(
                "a value is not a finite number: exp overflows in floating point, as the graph computes it as drawn"
            ),
        }
    )


def runtime() -> str:
    """The live figures' runtime: plain JavaScript that reads inputs, runs a program, writes numbers."""
    from chainrule.codegen.environment import render

    return render("live.js.jinja", significant=SIGNIFICANT)


def names_for(name: str | None) -> tuple[str, ...]:
    """The live figures a page shows: all of them, one figure, or a derivation's figures."""
    from chainrule.codegen.figures import document_figure_names

    if name is None:
        return FIGURES
    if name in FIGURES:
        return (name,)
    from chainrule.symbolic import NAMES

    if name in NAMES:
        names = document_figure_names(name)
        if names:
            return names
    raise UnknownFigure(name)


def page(name: str | None = None) -> str:
    """``chainrule explore``'s page: the live figures, one self-contained HTML file that loads nothing."""
    names = names_for(name)
    title = _("Backpropagation, live") if len(names) > 1 else live_figure(names[0]).title
    return page_of([view(n) for n in names], translate(title))


def page_of(figures: Sequence[FigureView], title: str) -> str:
    """A page of these live figures under ``title`` (in the reader's language already)."""
    from chainrule.codegen.environment import render
    from chainrule.codegen.html import filters
    from chainrule.codegen.i18n import JAPANESE_FONTS

    return render(
        "explore.html.jinja",
        figures=list(figures),
        title=title,
        messages=messages(),
        runtime=runtime(),
        lang=active(),
        japanese_fonts=JAPANESE_FONTS.replace("'", '"') if active() == "ja" else "",
        **filters(),
    )


def block(name: str, values: Mapping[str, Value] | None = None) -> str:
    """Figure ``name``'s inputs and drawing as an HTML fragment with its styles, without the script:
    what a notebook's widget shows, its script given separately (:func:`runtime`, :func:`spec_js`).
    ``values`` (checked: :func:`inputs`) are its first inputs, the others the book's."""
    from chainrule.codegen.environment import render
    from chainrule.codegen.html import filters

    return render("live_block.html.jinja", f=view(name, values), **filters())
