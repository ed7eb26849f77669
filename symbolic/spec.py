"""Your own layer, as written: a spec, and its formula parsed into a SymPy expression.

A spec names a layer and gives its forward formula as text, of ``x`` for an
element-wise activation or of ``y, t`` for a loss.  The text is never passed to
``eval`` or ``sympify``: Python's ``ast`` parses it and only whitelisted nodes
(numbers, names, arithmetic, comparisons, conditionals and known functions)
become SymPy expressions.  ``symbolic.from_spec`` derives the layer.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from chainrule.symbolic.activations import out as activation_out
from chainrule.symbolic.activations import sigmoid_local_in_output
from chainrule.symbolic.messages import N_


class SpecError(ValueError):
    """A spec that cannot become a layer; the message names where it was written."""


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


def fail(spec: Spec, message: str) -> SpecError:
    """A SpecError naming the spec's place and layer; ``message`` is a marked sentence (``N_``)."""
    return SpecError(N_("{where}: {name}: {message}", where=spec.where, name=spec.name, message=message))


def quote(text: str, limit: int = 60) -> str:
    """``text`` quoted for a one-line message, cut short when long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def shorten(text: str, limit: int = 60) -> str:
    """``text`` (already a repr) for a one-line message, cut short when long."""
    return text if len(text) <= limit else text[:limit] + "..."


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
        raise fail(
            spec,
            N_(
                "the formula is {length} characters long; the limit is {limit}",
                length=format(len(text), ","),
                limit=format(MAX_FORMULA_CHARS, ","),
            ),
        )
    if not text.isprintable():
        raise fail(spec, N_("a formula is one line of printable text, not {text}", text=quote(text)))
    if "#" in text:
        raise fail(spec, N_("a formula cannot hold a comment ('#'): {text}", text=quote(text)))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise fail(spec, N_("cannot parse {text}: {reason}", text=quote(text), reason=exc.msg)) from None
    except (ValueError, RecursionError, MemoryError):
        raise fail(spec, N_("cannot parse {text}: too complex", text=quote(text))) from None
    stack = [(tree.body, 1)]
    while stack:
        n, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise fail(
                spec, N_("{text} is nested more than {limit} levels deep", text=quote(text), limit=MAX_DEPTH)
            )
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(n))

    def value(n: ast.AST) -> sp.Expr:
        v = build(n)
        if not isinstance(v, sp.Expr):
            raise fail(
                spec,
                N_(
                    "{part} is a condition, not a value, in {text}",
                    part=quote(ast.unparse(n)),
                    text=quote(text),
                ),
            )
        return v

    def condition(n: ast.AST) -> sp.Basic:
        v = build(n)
        if isinstance(v, sp.Expr) or not isinstance(v, sp.logic.boolalg.Boolean):  # a Symbol is both
            raise fail(
                spec,
                N_(
                    "{part} is a value, not a condition, in {text}",
                    part=quote(ast.unparse(n)),
                    text=quote(text),
                ),
            )
        return v

    def power(n: ast.BinOp) -> sp.Expr:
        base, exponent = value(n.left), value(n.right)
        limit = MAX_NUMBER_EXPONENT if isinstance(base, sp.Number) else MAX_EXPONENT
        if isinstance(exponent, sp.Number) and abs(exponent) > limit:
            raise fail(
                spec,
                N_(
                    "the exponent in {part} is larger than {limit} in size",
                    part=quote(ast.unparse(n)),
                    limit=limit,
                ),
            )
        return base**exponent

    def make(n: ast.AST) -> sp.Basic:
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool):
            if isinstance(n.value, float) and not math.isfinite(n.value):
                raise fail(
                    spec,
                    N_(
                        "{part} is not a finite number",
                        part=quote(ast.get_source_segment(text.strip(), n) or ""),
                    ),
                )
            return sp.Rational(repr(n.value)) if isinstance(n.value, float) else sp.Integer(n.value)
        if isinstance(n, ast.Name):
            if n.id in variables:
                return variables[n.id]
            if n.id in NAMED_NUMBERS:
                return NAMED_NUMBERS[n.id]
            allowed = ", ".join(variables)
            raise fail(
                spec,
                N_(
                    "unknown symbol {symbol} in {text}; it may use {allowed} (element by element)",
                    symbol=repr(n.id),
                    text=quote(text),
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
                raise fail(
                    spec,
                    N_(
                        "{function} cannot be used in a spec: NumPy has no {function}, and the generated"
                        " code needs NumPy alone (GELU ships in its tanh form)",
                        function=n.func.id,
                    ),
                )
            if n.func.id not in FUNCTIONS:
                known = ", ".join(sorted(FUNCTIONS))
                raise fail(
                    spec,
                    N_(
                        "unknown function {function} in {text}; known: {known}",
                        function=repr(n.func.id),
                        text=quote(text),
                        known=known,
                    ),
                )
            fn, arity = FUNCTIONS[n.func.id]
            if n.keywords or len(n.args) != arity:
                raise fail(
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
        raise fail(spec, N_("{part} is not allowed in a formula", part=quote(ast.unparse(n))))

    def build(n: ast.AST) -> sp.Basic:
        try:
            v = make(n)
        except SpecError:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError, MemoryError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise fail(
                spec,
                N_(
                    "SymPy cannot build {part}: {reason}",
                    part=quote(ast.unparse(n)),
                    reason=quote(reason, 80),
                ),
            ) from None
        if _undefined(v):
            raise fail(
                spec, N_("{part} is infinite or undefined (a division by zero?)", part=quote(ast.unparse(n)))
            )
        too_big = _size_error(v)
        if too_big:
            raise fail(spec, N_("{part} makes {number}", part=quote(ast.unparse(n)), number=too_big))
        return v

    expr = build(tree.body)
    if not isinstance(expr, sp.Expr):
        raise fail(spec, N_("{text} is a condition, not a value", text=quote(text)))
    return expr
