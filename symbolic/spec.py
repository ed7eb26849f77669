"""Your own layer: a forward formula in, a derivation out.

A spec names a layer and gives its forward formula as text, of ``x`` for an
element-wise activation or of ``y, t`` for a loss.  The text is never passed to
``eval`` or ``sympify``: Python's ``ast`` parses it and only whitelisted nodes
(numbers, names, arithmetic, comparisons, conditionals and known functions)
become SymPy expressions.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import sympy as sp
from chainrule.symbolic.activations import out as activation_out
from chainrule.symbolic.activations import safe_sigmoid, sigmoid_local_in_output
from chainrule.symbolic.chain import L, dout, mean_node, op_node, tidy
from chainrule.symbolic.core import (
    Assign,
    Derivation,
    Gradient,
    Graph,
    Identity,
    Partial,
    Step,
    Total,
    literal,
    node,
    tex,
)
from chainrule.symbolic.messages import N_
from chainrule.symbolic.rewrite import Choice, more_accurate, overflow_at


class SpecError(ValueError):
    """A spec that cannot become a layer; the message names where it was written."""


class sigmoid(sp.Function):  # noqa: N801 - the name a spec writes
    """The logistic function, differentiable by SymPy and printed as the safe kernel."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """The derivative SymPy finds for 1/(1 + exp(-x)), written in sigmoid itself."""
        return sigmoid_local_in_output().xreplace({activation_out: sigmoid(self.args[0])})

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        return sp.Rational(1, 2) if arg == 0 else None

    def _eval_rewrite_as_exp(self, arg: sp.Expr, **kwargs: object) -> sp.Expr:
        return 1 / (1 + sp.exp(-arg))


def _where(cond: sp.Basic, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return sp.Piecewise((a, cond), (b, True))


# name -> (SymPy builder, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], int]] = {
    "exp": (sp.exp, 1),
    "log": (sp.log, 1),
    "log1p": (lambda v: sp.log(1 + v), 1),
    "sqrt": (sp.sqrt, 1),
    "tanh": (sp.tanh, 1),
    "sinh": (sp.sinh, 1),
    "cosh": (sp.cosh, 1),
    "sin": (sp.sin, 1),
    "cos": (sp.cos, 1),
    "atan": (sp.atan, 1),
    "abs": (sp.Abs, 1),
    "sigmoid": (sigmoid, 1),
    "max": (sp.Max, 2),
    "min": (sp.Min, 2),
    "where": (_where, 3),
}
# Functions SymPy knows that the generated code could not compute: NumPy has none of them, and the
# package needs nothing else.  Refused with the reason, not as unknown.
NOT_IN_NUMPY = frozenset({"erf", "erfc"})
NAMED_NUMBERS = {"pi": sp.pi, "e": sp.E}
TAKEN = frozenset(
    {"MulLayer", "AddLayer", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "TwoLayerNet", "MultiLayerNet"}
)
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}


# What a spec may ask of SymPy.  Each bound is far above what a layer needs (the shipped
# specs' formulas are at most 62 characters long and 10 nodes deep, their exponents at most 3)
# and far below what makes SymPy or the generated code hang or overflow.
MAX_FORMULA_CHARS = 1000
MAX_DEPTH = 32  # nodes from the top of a formula's syntax tree to its deepest leaf
MAX_EXPONENT = 16  # |n| of a numeric exponent of an expression: x**n (SymPy inverts x**32 in seconds)
MAX_NUMBER_EXPONENT = 64  # |n| of a numeric exponent of a number: 2**n
MAX_NUMBER_BITS = 1100  # numerator and denominator of an exact number: about 330 digits
MAX_NAME_CHARS = 64


@dataclass(frozen=True)
class Spec:
    """One layer to derive: its class name, its forward formula, its constants."""

    name: str
    forward: str
    kind: str = "activation"  # "activation": a formula of x; "loss": of y and t
    constants: tuple[tuple[str, float], ...] = ()
    safe: str | None = None  # the same function in a form that cannot overflow
    init: str = "xavier"  # "he" for ReLU-like activations, "xavier" for sigmoid-like
    where: str = "spec"  # file and line, for messages
    short: str | None = None  # the name on the command line; the class name in lower case if not given

    @property
    def key(self) -> str:
        return self.short or self.name.lower()


@dataclass(frozen=True)
class SpecDerivation:
    """A spec with its derivation and the choices the engine made."""

    spec: Spec
    derivation: Derivation
    cached: str  # "out" when backward needs only the output, else "x"
    constants: tuple[tuple[str, float], ...] = field(default_factory=tuple)


def _fail(spec: Spec, message: str) -> SpecError:
    """A SpecError naming the spec's place and layer; ``message`` is a marked sentence (``N_``)."""
    return SpecError(N_("{where}: {name}: {message}", where=spec.where, name=spec.name, message=message))


def _quote(text: str, limit: int = 60) -> str:
    """``text`` quoted for a one-line message, cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _shorten(text: str, limit: int = 60) -> str:
    """``text`` (already a repr) for a one-line message, cut short when long."""
    return text if len(text) <= limit else text[:limit] + "..."


# Names the code generated for a spec's layer uses itself: its methods' arguments and locals, the
# module's numpy.  codegen passes the full set, read from the rendered package, to check_names.
LAYER_NAMES = frozenset(
    {"self", "forward", "backward", "x", "y", "t", "out", "dout", "loss", "batch_size", "np"}
)


# Names Python itself gives a meaning in every module: a layer class named ValueError or float would
# hide the built-in from the generated module's own code (its label errors raise ValueError).
PYTHON_NAMES = frozenset(dir(builtins)) | frozenset(keyword.softkwlist)


def _taken(reserved: Iterable[str]) -> dict[str, str]:
    """Every name a spec's layer cannot have, with what already holds it."""
    from chainrule.symbolic.shipped import SHIPPED

    from chainrule import symbolic  # here, not at the top: symbolic imports this module

    owners = {name: N_("a module-level name of the generated package") for name in reserved}
    owners.update({name: N_("a derivation of the chapter") for name in symbolic.BUILDERS})
    owners.update({name: N_("a layer of the chapter") for name in TAKEN})
    for spec in SHIPPED:
        owners[spec.name] = owners[spec.key] = _owner(spec)
    return owners


def _source(spec: Spec, kind: str) -> str:
    """Where a layer's formula comes from, in words a reader of the document follows."""
    from chainrule.symbolic.shipped import SHIPPED

    if spec in SHIPPED:
        return (
            N_("A layer chainrule ships, given as a spec")
            if kind == "layer"
            else N_("A loss chainrule ships, given as a spec")
        )
    if kind == "layer":
        return N_("A layer from the spec {where}", where=literal(spec.where))
    return N_("A loss from the spec {where}", where=literal(spec.where))


def _owner(spec: Spec) -> str:
    from chainrule.symbolic.shipped import SHIPPED

    if spec in SHIPPED:
        return N_("the shipped layer {name}", name=spec.name)
    return N_("the layer at {where}", where=spec.where)


def _identifier(raw: object) -> tuple[str, str] | None:
    """``raw`` as Python reads it (NFKC-normalized), and how to show it; None if it cannot be a name."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_NAME_CHARS:
        return None
    name = unicodedata.normalize("NFKC", raw)
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
        return None
    shown = repr(name) if name == raw else N_("{raw} (to Python, {name})", raw=repr(raw), name=repr(name))
    return name, shown


def _not_normal(name: str, raw: str) -> str:
    return N_(
        "{raw} is {name} to Python (NFKC normalization): write it as {name}", raw=repr(raw), name=repr(name)
    )


def _check_value(spec: Spec, const: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(
            spec,
            N_(
                "constant {const} must be a finite number, not {value}",
                const=const,
                value=_quote(value) if isinstance(value, str) else _shorten(repr(value)),
            ),
        )
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not finite:
        raise _fail(
            spec, N_("constant {const} must be a finite number of at most about 1.8e308", const=const)
        )


def check_names(specs: list[Spec], reserved: Iterable[str] = (), members: Iterable[str] = ()) -> None:
    """Layer, short and constant names are identifiers, distinct, and used by nothing else.

    Names are NFKC-normalized first, as Python does, so that a full-width letter cannot
    stand for a name already in use.  ``reserved`` adds the module-level names of the
    generated package and ``members`` the names a layer's generated methods use; codegen
    reads both from the package it renders.
    """
    owners = _taken(reserved)
    members = LAYER_NAMES | set(members)
    for spec in specs:
        name = _identifier(spec.name)
        if name is None:
            raise SpecError(
                N_("{where}: {name} is not a valid class name", where=spec.where, name=_quote(str(spec.name)))
            )
        key = _identifier(spec.key)
        if key is None:
            raise _fail(spec, N_("{key} is not a valid short name", key=_quote(str(spec.key))))
        me = _owner(spec)
        for (normal, shown), what in ((name, "name"), (key, "short name")):
            held = owners.get(normal)
            if normal in members:
                held = N_("a name the layer's own methods use")
            elif what == "name" and normal in PYTHON_NAMES:
                held = N_("a name Python itself defines (a built-in or keyword)")
            if held is not None and held != me:
                if what == "name" and normal == spec.name:
                    label = N_("the name")
                elif what == "name":
                    label = N_("the name {shown}", shown=shown)
                else:
                    label = N_("the short name {shown}", shown=shown)
                raise _fail(spec, N_("{label} is already taken: {held}", label=label, held=held))
            if normal != (spec.name if what == "name" else spec.key):
                raise _fail(spec, _not_normal(normal, spec.name if what == "name" else spec.key))
            owners[normal] = me
        if spec.kind not in ("activation", "loss"):
            raise _fail(
                spec, N_("kind must be 'activation' or 'loss', not {kind}", kind=_quote(str(spec.kind)))
            )
        if spec.init not in ("he", "xavier"):
            raise _fail(spec, N_("init must be 'he' or 'xavier', not {init}", init=_quote(str(spec.init))))
    formula_names = set(FUNCTIONS) | set(NAMED_NUMBERS) | members
    for spec in specs:
        own: set[str] = set()
        for const, value in spec.constants:
            normal = _identifier(const)
            if normal is None or normal[0].startswith("_"):
                raise _fail(spec, N_("{const} cannot name a constant", const=_quote(str(const))))
            if normal[0] in formula_names:
                raise _fail(
                    spec,
                    N_(
                        "{const} cannot name a constant: formulas and the layer's code use it",
                        const=normal[1],
                    ),
                )
            held = owners.get(normal[0])
            if held is not None:
                raise _fail(
                    spec,
                    N_(
                        "{const} cannot name a constant: it is already {held}", const=_quote(const), held=held
                    ),
                )
            if normal[0] != const:
                raise _fail(spec, _not_normal(normal[0], const))
            if const in own:
                raise _fail(spec, N_("constant {const} is given twice", const=const))
            own.add(const)
            _check_value(spec, const, value)


def _size_error(value: sp.Basic) -> str | None:
    """Why an exact number is too large to carry through SymPy and into float64 code, if it is."""
    for r in value.atoms(sp.Rational):
        if max(abs(int(r.p)).bit_length(), int(r.q).bit_length()) > MAX_NUMBER_BITS:
            return N_("a number of more than {bits} bits (about 330 digits)", bits=MAX_NUMBER_BITS)
        try:
            float(abs(int(r.p)) // int(r.q))
        except OverflowError:
            return N_("a number too large for float64 (at most about 1.8e308)")
    return None


def _undefined(value: sp.Basic) -> bool:
    return value.has(sp.zoo, sp.nan, sp.oo, sp.S.NegativeInfinity)


def parse_formula(text: str, variables: dict[str, sp.Symbol], spec: Spec) -> sp.Expr:
    """Build the SymPy expression of ``text`` by walking its syntax tree, nothing else.

    Bounded before SymPy sees it: length, depth, the size of numbers and exponents; and every
    node is checked as it is built, so a condition is never added to a number, nor a division
    by zero carried on.
    """
    if len(text) > MAX_FORMULA_CHARS:
        raise _fail(
            spec,
            N_(
                "the formula is {length} characters long; the limit is {limit}",
                length=format(len(text), ","),
                limit=format(MAX_FORMULA_CHARS, ","),
            ),
        )
    if not text.isprintable():
        raise _fail(spec, N_("a formula is one line of printable text, not {text}", text=_quote(text)))
    if "#" in text:
        raise _fail(spec, N_("a formula cannot hold a comment ('#'): {text}", text=_quote(text)))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise _fail(spec, N_("cannot parse {text}: {reason}", text=_quote(text), reason=exc.msg)) from None
    except (ValueError, RecursionError, MemoryError):
        raise _fail(spec, N_("cannot parse {text}: too complex", text=_quote(text))) from None
    stack = [(tree.body, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(
                spec, N_("{text} is nested more than {limit} levels deep", text=_quote(text), limit=MAX_DEPTH)
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(n))

    def value(n: ast.AST) -> sp.Expr:
        v = build(n)
        if not isinstance(v, sp.Expr):
            raise _fail(
                spec,
                N_(
                    "{part} is a condition, not a value, in {text}",
                    part=_quote(ast.unparse(n)),
                    text=_quote(text),
                ),
            )
        return v

    def condition(n: ast.AST) -> sp.Basic:
        v = build(n)
        if isinstance(v, sp.Expr) or not isinstance(v, sp.logic.boolalg.Boolean):  # a Symbol is both
            raise _fail(
                spec,
                N_(
                    "{part} is a value, not a condition, in {text}",
                    part=_quote(ast.unparse(n)),
                    text=_quote(text),
                ),
            )
        return v

    def power(n: ast.BinOp) -> sp.Expr:
        base, exponent = value(n.left), value(n.right)
        limit = MAX_NUMBER_EXPONENT if isinstance(base, sp.Number) else MAX_EXPONENT
        if isinstance(exponent, sp.Number) and abs(exponent) > limit:
            raise _fail(
                spec,
                N_(
                    "the exponent in {part} is larger than {limit} in size",
                    part=_quote(ast.unparse(n)),
                    limit=limit,
                ),
            )
        return base**exponent

    def make(n: ast.AST) -> sp.Basic:
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool):
            if isinstance(n.value, float) and not math.isfinite(n.value):
                raise _fail(
                    spec,
                    N_(
                        "{part} is not a finite number",
                        part=_quote(ast.get_source_segment(text.strip(), n) or ""),
                    ),
                )
            return sp.Rational(repr(n.value)) if isinstance(n.value, float) else sp.Integer(n.value)
        if isinstance(n, ast.Name):
            if n.id in variables:
                return variables[n.id]
            if n.id in NAMED_NUMBERS:
                return NAMED_NUMBERS[n.id]
            allowed = ", ".join(variables)
            raise _fail(
                spec,
                N_(
                    "unknown symbol {symbol} in {text}; it may use {allowed} (element by element)",
                    symbol=repr(n.id),
                    text=_quote(text),
                    allowed=allowed,
                ),
            )
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow):
            return power(n)
        if isinstance(n, ast.BinOp) and type(n.op) in _BINARY:
            return _BINARY[type(n.op)](value(n.left), value(n.right))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub | ast.UAdd):
            operand = value(n.operand)
            return -operand if isinstance(n.op, ast.USub) else operand
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            if n.func.id in NOT_IN_NUMPY:
                raise _fail(
                    spec,
                    N_(
                        "{function} cannot be used in a spec: NumPy has no {function}, and the generated"
                        " code needs NumPy alone (GELU ships in its tanh form)",
                        function=n.func.id,
                    ),
                )
            if n.func.id not in FUNCTIONS:
                known = ", ".join(sorted(FUNCTIONS))
                raise _fail(
                    spec,
                    N_(
                        "unknown function {function} in {text}; known: {known}",
                        function=repr(n.func.id),
                        text=_quote(text),
                        known=known,
                    ),
                )
            fn, arity = FUNCTIONS[n.func.id]
            if n.keywords or len(n.args) != arity:
                raise _fail(
                    spec,
                    N_("{function}() takes 1 argument", function=n.func.id)
                    if arity == 1
                    else N_("{function}() takes {arity} arguments", function=n.func.id, arity=arity),
                )
            if n.func.id == "where":
                return fn(condition(n.args[0]), *(value(a) for a in n.args[1:]))
            return fn(*(value(a) for a in n.args))
        if isinstance(n, ast.IfExp):
            return _where(condition(n.test), value(n.body), value(n.orelse))
        if isinstance(n, ast.Compare) and len(n.ops) == 1 and type(n.ops[0]) in _COMPARE:
            return _COMPARE[type(n.ops[0])](value(n.left), value(n.comparators[0]))
        raise _fail(spec, N_("{part} is not allowed in a formula", part=_quote(ast.unparse(n))))

    def build(n: ast.AST) -> sp.Basic:
        try:
            v = make(n)
        except SpecError:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError, MemoryError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _fail(
                spec,
                N_(
                    "SymPy cannot build {part}: {reason}",
                    part=_quote(ast.unparse(n)),
                    reason=_quote(reason, 80),
                ),
            ) from None
        if _undefined(v):
            raise _fail(
                spec, N_("{part} is infinite or undefined (a division by zero?)", part=_quote(ast.unparse(n)))
            )
        too_big = _size_error(v)
        if too_big:
            raise _fail(spec, N_("{part} makes {number}", part=_quote(ast.unparse(n)), number=too_big))
        return v

    expr = build(tree.body)
    if not isinstance(expr, sp.Expr):
        raise _fail(spec, N_("{text} is a condition, not a value", text=_quote(text)))
    return expr


def _split_signs(expr: sp.Expr, x: sp.Symbol) -> list[sp.Expr]:
    """``expr`` at x = p, x = -p (p > 0) and x = 0: where piecewise branches are decided."""
    p = sp.Symbol("p", positive=True)
    return [expr.subs(x, p), expr.subs(x, -p), expr.subs(x, 0)]


def prove_equal(a: sp.Expr, b: sp.Expr, x: sp.Symbol) -> bool:
    """SymPy shows a - b is zero, on each sign of x when a branch depends on it."""
    diff = sp.simplify((a - b).rewrite(sp.exp))
    if diff == 0:
        return True
    return all(
        sp.simplify(sp.expand_log((part).rewrite(sp.exp), force=True)) == 0 for part in _split_signs(a - b, x)
    )


def clamp_branches(expr: sp.Expr, x: sp.Symbol) -> sp.Expr:
    """Evaluate each branch of x > c / x < c only where it is chosen: x -> max(x, c) or min(x, c).

    NumPy's ``where`` computes both branches; a branch such as exp(x), meant for
    x <= 0, would overflow for large x although its value is thrown away.  On the
    region where a branch is chosen the clamp is the identity, so values are unchanged.
    """
    if not isinstance(expr, sp.Piecewise) or len(expr.args) != 2:
        return expr
    (a, cond), (b, _) = expr.args
    if not isinstance(cond, sp.Gt | sp.Ge | sp.Lt | sp.Le) or cond.lhs != x or x in cond.rhs.free_symbols:
        return expr
    c = cond.rhs
    above, below = (sp.Max(x, c), sp.Min(x, c))
    if isinstance(cond, sp.Lt | sp.Le):
        above, below = below, above

    def clamp(branch: sp.Expr, to: sp.Expr) -> sp.Expr:
        # Only a branch that can overflow needs it: exp, sinh, cosh grow without bound.
        return branch.subs(x, to) if branch.has(sp.exp, sp.sinh, sp.cosh) else branch

    return sp.Piecewise((clamp(a, above), cond), (clamp(b, below), True))


# Real points of both signs, small to large, where a cached form must agree with the
# derivative (at 30 digits) and stay real and finite (also on the float64-rounded output).
CHECK_POINTS = tuple(sign * v for v in (1e-3, 0.5, 3.0, 20.0, 200.0) for sign in (1, -1))
FLOAT_MAX = 1.7976931348623157e308


def _real(expr: sp.Expr) -> float | None:
    """The value of a closed number expression when it is real and finite in float64, else None."""
    try:
        value = complex(sp.N(expr, 30))
    except (TypeError, ValueError, OverflowError):
        return None
    if value.imag != 0 or not math.isfinite(value.real) or abs(value.real) > FLOAT_MAX:
        return None
    return value.real


def not_real_at(f: sp.Expr, x: sp.Symbol, values: dict[sp.Symbol, float]) -> float | None:
    """A check point where the forward is finite but not real, or None when there is none."""
    for v in CHECK_POINTS:
        point = f.subs(values).subs(x, v)
        try:
            value = complex(sp.N(point, 30))
        except (TypeError, ValueError, OverflowError):
            continue
        if value.imag != 0 and math.isfinite(value.imag) and math.isfinite(value.real):
            return v
    return None


def _output_forms(f: sp.Expr, d: sp.Expr, x: sp.Symbol, out: sp.Symbol) -> Iterator[tuple[sp.Expr, str]]:
    """Ways to write the derivative without x, cheapest first: substitute y, solve for an inner function, invert f."""
    direct = d.subs(f, out)
    if x not in direct.free_symbols:
        yield direct, N_("substitute y for the forward expression")
    if f.has(sp.Piecewise):
        return
    inner = sp.Dummy("u")
    for u in sorted(
        (
            a
            for a in sp.preorder_traversal(f)
            if isinstance(a, sp.Function) and x in a.free_symbols and a != f
        ),
        key=str,
    ):
        outer = f.xreplace({u: inner})
        if x in outer.free_symbols:
            continue
        try:
            solutions = sp.solve(sp.Eq(out, outer), inner)
        except (NotImplementedError, ValueError):
            continue
        for sol in solutions:
            candidate = d.xreplace({u: sol})
            if x not in candidate.free_symbols:
                yield candidate, N_("solve $y = f$ for {u}", u=tex(sp.Eq(u, sol, evaluate=False)))
    if f.count(x) == 1:
        # x appears once: peeling the functions around it inverts f in closed form.
        try:
            inverses = sp.solve(sp.Eq(out, f), x)
        except (NotImplementedError, ValueError):
            inverses = []
        for inv in inverses:
            if inv.has(sp.LambertW, sp.RootOf):
                continue
            candidate = sp.simplify(d.subs(x, inv))
            if x not in candidate.free_symbols:
                yield candidate, N_("solve $y = f(x)$ for {x}", x=tex(sp.Eq(x, inv, evaluate=False)))


def _agrees(
    f: sp.Expr, d: sp.Expr, candidate: sp.Expr, x: sp.Symbol, out: sp.Symbol, values: dict[sp.Symbol, float]
) -> bool:
    """At every real check point where the forward is finite the candidate equals the derivative and is real.

    It must also stay real and finite on the output rounded to float64 (y = 2 tanh(20)
    is 2.0 in float64, where a form with 1/(2 - y) is not finite).
    """
    f, d, candidate = (e.subs(values) for e in (f, d, candidate))
    checked = 0
    for v in CHECK_POINTS:
        y = _real(f.subs(x, v))
        if y is None:
            continue
        exact = _real(d.subs(x, v))
        mine = _real(candidate.subs(out, f.subs(x, v)))
        rounded = _real(candidate.subs(out, sp.Float(y)))
        if exact is None or mine is None or rounded is None:
            return False
        if abs(exact - mine) > 1e-9 * max(1.0, abs(exact)):
            return False
        checked += 1
    return checked > 0


def _in_output(
    f: sp.Expr, d: sp.Expr, x: sp.Symbol, out: sp.Symbol, values: dict[sp.Symbol, float] | None = None
) -> tuple[sp.Expr | None, str]:
    """Write the derivative in the forward output alone, when SymPy can and it is real where f is.

    ``values`` gives the spec's constants their numbers for the check at real points.
    """
    for candidate, how in _output_forms(f, d, x, out):
        if _agrees(f, d, candidate, x, out, values or {}):
            return shortest(candidate), how
    return None, ""


def _kink_convention(d: sp.Expr) -> sp.Expr:
    """Heaviside(u) as 1 where u > 0 and 0 elsewhere: 0 at the kink, as the chapter's ReLU (mask x <= 0)."""
    return d.replace(
        lambda e: isinstance(e, sp.Heaviside),
        lambda e: sp.Piecewise((1, sp.Gt(e.args[0], 0).canonical), (0, True)),
    )


def _kinks_of(expr: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, ...]:
    """The real x where max, min or abs in ``expr`` switch, when SymPy solves for them."""
    points: set[sp.Expr] = set()
    for part in sp.preorder_traversal(expr):
        if isinstance(part, sp.Abs):
            edges = [part.args[0]]
        elif isinstance(part, sp.Max | sp.Min):
            edges = [a - b for a in part.args for b in part.args if a != b]
        else:
            continue
        for g in edges:
            if x in g.free_symbols and g.is_polynomial(x) and sp.degree(g, x) == 1:
                points.update(v for v in sp.solve(g, x) if v.is_real)
    return tuple(sorted(points, key=sp.default_sort_key))


def _agree_at(
    a: sp.Expr, b: sp.Expr, x: sp.Symbol, values: dict[sp.Symbol, float], points: tuple[sp.Expr, ...]
) -> bool:
    """``a`` and ``b`` have the same value, to 25 digits, at each of ``points`` (dout = 1)."""
    probe = {dout: 1, **values}
    for p in points:
        va, vb = (sp.N(e.subs(probe).subs(x, p), 30) for e in (a, b))
        if not (va.is_real and vb.is_real) or abs(va - vb) > 1e-25 * max(1, abs(vb)):
            return False
    return True


def shortest(expr: sp.Expr) -> sp.Expr:
    """The form with fewest operations: as derived, factored, or expanded (in that order on a tie)."""
    forms = [expr, tidy(sp.factor(expr)), sp.expand(expr)]
    return min(forms, key=sp.count_ops)


def derive_activation(spec: Spec) -> SpecDerivation:
    """y = f(x) element-wise: dL/dx = dL/dy f'(x), in y alone when possible."""
    x, out = sp.Symbol("x", real=True), sp.Symbol("out", real=True)
    consts = {name: sp.Symbol(name, real=True) for name, _ in spec.constants}
    f = parse_formula(spec.forward, {"x": x, **consts}, spec)
    extra = f.free_symbols - {x, *consts.values()}
    if extra:
        raise _fail(spec, N_("refers to unknown symbols {names}", names=sorted(s.name for s in extra)))
    if x not in f.free_symbols:
        raise _fail(spec, N_("{forward} does not depend on x", forward=repr(spec.forward)))
    try:
        d = sp.diff(f, x)
    except (ValueError, TypeError) as exc:
        raise _fail(spec, N_("cannot be differentiated: {reason}", reason=exc)) from None
    if d.has(sp.Derivative, sp.Subs) or d.has(sp.zoo, sp.nan):
        raise _fail(
            spec, N_("SymPy cannot differentiate {forward} in closed form", forward=repr(spec.forward))
        )
    values = {consts[name]: value for name, value in spec.constants}
    bad = not_real_at(f, x, values)
    if bad is not None:
        raise _fail(
            spec,
            N_(
                "{forward} is not real at x = {x}; an activation is real for every real x",
                forward=repr(spec.forward),
                x=format(bad, "g"),
            ),
        )
    steps = [Step(Partial(out, x), (d,), N_("local derivative of the {node}", node=op_node(spec.key)))]
    notes = []
    if d.has(sp.Heaviside):
        d = _kink_convention(d)
        steps.append(
            Step(
                Partial(out, x), (d,), N_(r"at a kink the derivative is taken as 0, as ReLU's mask $x \le 0$")
            )
        )
        notes.append(
            N_("Where max or min switch arguments the derivative is 0 there, as the chapter's ReLU.")
        )
    elif d.has(sp.Piecewise, sp.sign):
        notes.append(
            N_(
                r"On a boundary of a condition the derivative is the chosen branch's; $|x|$ has derivative $\operatorname{sign}(x)$, 0 at 0."
            )
        )
    in_y, how = _in_output(f, d, x, out, values)
    graph = Graph((x,), (node(out, spec.key, (x,), f),), out)
    steps.append(Step(Partial(L, x), (Partial(L, out) * Partial(out, x), dout * d), N_("chain rule")))
    identities: list[Identity] = []
    compute_expr = clamp_branches(f, x)
    if spec.safe is not None:
        safe = parse_formula(spec.safe, {"x": x, **consts}, spec)
        if not prove_equal(safe, f, x):
            raise _fail(
                spec,
                N_(
                    "SymPy cannot prove the safe form {safe} equal to {forward}",
                    safe=repr(spec.safe),
                    forward=repr(spec.forward),
                ),
            )
        identities.append(
            Identity(safe, f, N_("the safe form the code computes equals the derived one"), split=x)
        )
        compute_expr = clamp_branches(safe, x)
    if in_y is not None:
        backward = dout * in_y
        cache: tuple[sp.Symbol, ...] = (out,)
        steps.append(Step(Partial(L, x), (backward,), N_("in the output alone: {how}", how=how)))
        cached = "out"
    else:
        plain = sp.piecewise_fold(dout * shortest(d))
        backward = sp.piecewise_fold(dout * clamp_branches(sp.piecewise_fold(shortest(d)), x))
        cache = (x,)
        cached = "x"
        if plain != steps[-1].rhs[-1]:
            steps.append(Step(Partial(L, x), (plain,), N_("the shortest form SymPy finds")))
        if backward != plain:
            steps.append(
                Step(Partial(L, x), (backward,), N_("each branch evaluated only where it is chosen"))
            )
    from_safe = False
    if spec.safe is not None:
        given = {out: f} if cached == "out" else {}
        at = overflow_at(backward, dout * d, x, values, given)
        if at is not None:
            # The derivative of the formula overflows where the true one is finite (Mish's
            # exp(x)/(1 + exp(x)) past x = 709.78): differentiate the safe form instead, proved equal.
            d_safe = sp.diff(safe, x)
            if d_safe.has(sp.Heaviside):
                d_safe = _kink_convention(d_safe)
            alt = sp.piecewise_fold(dout * clamp_branches(sp.piecewise_fold(shortest(d_safe)), x))
            # safe = f is proved, so their derivatives agree wherever both are differentiable; the
            # safe form's own kinks (max, abs) are where the convention chose a value: checked there.
            kinks = _kinks_of(safe, x)
            if _agree_at(alt, dout * d, x, values, kinks) and overflow_at(alt, dout * d, x, values) is None:
                backward, cache, cached, from_safe = alt, (x,), "x", True
                steps.append(
                    Step(
                        Partial(L, x),
                        (backward,),
                        N_(
                            "the derivative of the safe form, equal to it: the formula's overflows"
                            " at x = {x} where the true value is finite",
                            x=format(at, "g"),
                        ),
                    )
                )
    if spec.safe is None and compute_expr != f:
        identities.append(
            Identity(compute_expr, f, N_("the clamped branches equal the derived ones where chosen"), split=x)
        )
    values = {consts[name]: value for name, value in spec.constants}
    forward_choice = more_accurate(compute_expr, x, values, what="forward")
    # A backward taken from the safe form is kept as it is: chosen because it stays finite.
    backward_choice = (
        Choice(backward)
        if from_safe
        else more_accurate(backward, x, values, {out: f} if cached == "out" else {}, "backward")
    )
    compute_expr, backward = forward_choice.expr, backward_choice.expr
    identities += [c.identity for c in (forward_choice, backward_choice) if c.identity is not None]
    if backward_choice.identity is not None:
        steps.append(Step(Partial(L, x), (backward,), N_("the form that measures more accurate")))
    derivation = Derivation(
        name=spec.key,
        title=spec.name,
        summary=N_("{source}; its forward formula is the first line below.", source=_source(spec, "layer")),
        forward=(Step(out, (f,), N_("the spec's forward formula")),),
        graph=graph,
        steps=tuple(steps),
        backward=(Gradient(x, backward),),
        cache=cache,
        upstream=out,
        identities=tuple(identities),
        compute=(Assign(out, compute_expr),),
        kernels=(safe_sigmoid(),) if compute_expr.has(sigmoid) or backward.has(sigmoid) else (),
        notes=(
            N_("The layer caches its output $y$.")
            if cached == "out"
            else N_("The layer caches its input $x$."),
            *notes,
        ),
    )
    return SpecDerivation(spec, derivation, cached, spec.constants)


def derive_loss(spec: Spec) -> SpecDerivation:
    """L = (1/N) sum f(y, t) over the batch: dL/dy = dout f_y(y, t) / N."""
    y, t = sp.Symbol("y", real=True), sp.Symbol("t", real=True)
    n = sp.Symbol("batch_size", integer=True, positive=True)
    consts = {name: sp.Symbol(name, real=True) for name, _ in spec.constants}
    f = parse_formula(spec.forward, {"y": y, "t": t, **consts}, spec)
    extra = f.free_symbols - {y, t, *consts.values()}
    if extra:
        raise _fail(spec, N_("refers to unknown symbols {names}", names=sorted(s.name for s in extra)))
    if y not in f.free_symbols:
        raise _fail(spec, N_("{forward} does not depend on y", forward=repr(spec.forward)))
    d = sp.diff(f, y)
    if d.has(sp.Derivative, sp.Subs):
        raise _fail(
            spec, N_("SymPy cannot differentiate {forward} in closed form", forward=repr(spec.forward))
        )
    loss = sp.Symbol("loss", real=True)
    mean, weight, losses, i = mean_node(n)
    backward = dout * weight * shortest(d)
    derivation = Derivation(
        name=spec.key,
        title=spec.name,
        summary=N_(
            "{source}: the batch mean of its formula, the first line below.", source=_source(spec, "loss")
        ),
        forward=(Step(L, (Total(f) / n,), N_("the batch mean of the spec's formula")),),
        graph=None,
        steps=(
            Step(L, (mean,), N_("the batch loss is the mean of the samples' losses")),
            Step(Partial(L, losses[i]), (weight,), N_("local derivative of the mean node")),
            Step(
                Partial(L, y),
                (weight * d,),
                N_("chain rule: each sample's term depends on its own y only"),
            ),
            Step(Partial(L, y), (backward,), N_("times the upstream gradient")),
        ),
        backward=(Gradient(y, backward),),
        cache=(y, t),
        upstream=L,
        compute=(Assign(loss, Total(f) / n),),
        notes=(N_("Integer labels are turned into one-hot rows first."),),
    )
    return SpecDerivation(spec, derivation, "y", spec.constants)


# Derivations made elsewhere (the command line derives a user's specs in a child process with
# time and memory limits) and handed back; derive_spec returns them instead of deriving again.
_DERIVED: dict[Spec, SpecDerivation] = {}


def remember(sd: SpecDerivation) -> None:
    """Let ``derive_spec(sd.spec)`` return ``sd`` from now on in this process."""
    _DERIVED[sd.spec] = sd


def derive_spec(spec: Spec) -> SpecDerivation:
    """The derivation of one spec."""
    check_names([spec])  # first: a constant that is not a number would make the spec unhashable
    if spec in _DERIVED:
        return _DERIVED[spec]
    return derive_activation(spec) if spec.kind == "activation" else derive_loss(spec)
