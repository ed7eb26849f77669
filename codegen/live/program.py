"""A graph's forward and backward pass as lines of scalar expressions, printed as JavaScript.

Also :func:`shown`, a number as the page writes it, and :func:`evaluate`, the same lines run here
in exact arithmetic for the numbers a page is first drawn with.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import sympy as sp
from sympy.printing.jscode import JavascriptCodePrinter

from chainrule.codegen.layout.numbered import UPSTREAM
from chainrule.codegen.text import text
from chainrule.symbolic.core import Graph, Node, Var
from chainrule.symbolic.from_spec import kink_convention

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
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    exact = Decimal(value)
    places = SIGNIFICANT - 1 - exact.adjusted()
    rounded = float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
    if math.isinf(rounded):  # the largest doubles round past the last one: JavaScript reads Infinity
        return "∞" if rounded > 0 else "-∞"
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

    def named(ident: str, shape: tuple[int, int] | None) -> sp.Basic:
        """The program's symbol for ``ident``: a scalar, or a matrix written out (a 1 x M one a row)."""
        if shape is not None and shape[0] == 1:
            rows.add(ident)
        return sp.Symbol(ident) if shape is None else _explicit(ident, shape)

    def bind(var: Var, ident: str) -> None:
        shape = _shape(var, sizes)
        env[var.xreplace(sizes) if shape else var] = named(ident, shape)

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
    seed_value = sp.Symbol(f"input.{UPSTREAM}") if seed is None else seed
    backward.append(Line(dout_ident, seed_value, "the upstream gradient the figure starts from"))
    grads: dict[Var, sp.Basic] = {out: named(dout_ident, _shape(out, sizes))}
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
            # At a kink (max, min, abs) the derivative is the generated layer's: 0, as ReLU's mask x <= 0.
            contribution = kink_convention(put(vjp, {upstream_key: upstream}))
            shape = _shape(v, sizes)
            if consumers[v] == 1:
                ident = _ident("d" + v.name, taken)
                grad[v.name] = ident
            else:
                ident = _ident(f"d{v.name}_via_{n.out.name}", taken)
            edge[(v.name, n.out.name)] = ident
            backward.append(Line(ident, contribution, _local_comment(n, v)))
            symbol = named(ident, shape)
            pending.setdefault(v, []).append(symbol)
            if len(pending[v]) == consumers[v]:
                if consumers[v] > 1:
                    total = _ident("d" + v.name, taken)
                    grad[v.name] = total
                    summed = sum(pending[v][1:], pending[v][0])
                    backward.append(Line(total, summed, "the gradients of its branches, summed"))
                    symbol = named(total, shape)
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
            out[line.ident] = tuple(tuple(_double(x) for x in row) for row in result.tolist())
        else:
            env[sp.Symbol(line.ident)] = result
            out[line.ident] = _double(result)
    return out


def _double(value: sp.Basic) -> float:
    """An exact value as the double JavaScript would hold: NaN where it is no real number (1/0, sqrt(-1))."""
    try:
        return float(value)
    except TypeError:
        return math.nan
