"""The NumPy printer, tested on random expressions against mpmath.

Expression trees are built from the spec language's own builders (every
whitelisted function, + - * / **, comparisons, constants). The printed NumPy
code, evaluated in float64, must agree with SymPy's stock mpmath translation of
the same tree at 50 digits wherever both are finite and real: within
1e-8 of max(1, |value|). A mis-grouped print (``a/b * b`` for a/b**2) is off by
far more than that; float64 rounding of these small trees is far less.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import sympy as sp
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from chainrule.codegen.numpy_printer import pycode
from chainrule.symbolic.spec import FUNCTIONS

TOLERANCE = 1e-8
x = sp.Symbol("x", real=True)
y = sp.Symbol("y", real=True)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

VARIABLES = st.sampled_from([x, y])
leaves = st.one_of(
    VARIABLES,
    VARIABLES,
    VARIABLES,
    st.integers(-3, 3).map(sp.Integer),
    st.fractions(min_value=-4, max_value=4, max_denominator=7).map(
        lambda f: sp.Rational(f.numerator, f.denominator)
    ),
    st.floats(-4, 4, allow_nan=False).map(lambda v: sp.Float(round(v, 3))),
)
UNARY = sorted(name for name, (_, arity) in FUNCTIONS.items() if arity == 1)
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / b,
    lambda a, b: a**b,
    FUNCTIONS["max"][0],
    FUNCTIONS["min"][0],
]
COMPARE = [sp.Lt, sp.Le, sp.Gt, sp.Ge]


def _built(fn, *args: sp.Basic) -> sp.Basic:
    """SymPy refuses some trees (a comparison with I, a max of complex numbers): those become nan."""
    try:
        return fn(*args)
    except (TypeError, ValueError, ZeroDivisionError):
        return sp.nan


def _grow(children: st.SearchStrategy[sp.Expr]) -> st.SearchStrategy[sp.Expr]:
    unary = st.builds(lambda name, a: _built(FUNCTIONS[name][0], a), st.sampled_from(UNARY), children)
    binary = st.builds(lambda op, a, b: _built(op, a, b), st.sampled_from(BINARY), children, children)
    negate = st.builds(lambda a: -a, children)
    # Integer powers (squares, reciprocals) are where grouping goes wrong: drawn often.
    power = st.builds(lambda a, n: _built(lambda: a ** sp.Integer(n)), children, st.integers(-3, 3))
    scaled = st.builds(
        lambda a, b, n: _built(lambda: a * b ** sp.Integer(n)), children, children, st.integers(-3, 3)
    )
    where = st.builds(
        lambda rel, a, b, c, d: _built(lambda: FUNCTIONS["where"][0](rel(a, b), c, d)),
        st.sampled_from(COMPARE),
        children,
        children,
        children,
        children,
    )
    return st.one_of(unary, binary, power, scaled, negate, where)


# An operation at the top: a bare leaf tests nothing.
expressions = _grow(st.recursive(leaves, _grow, max_leaves=6))
# 0 and 1e-3 <= |v| <= 6: nearer 0, functions such as sin(1/x) turn one rounding of 1/x
# into an O(1) error whatever the printer does.
points = st.one_of(st.just(0.0), st.floats(1e-3, 6), st.floats(-6, -1e-3))
MPMATH = [{"sigmoid": lambda v: 1 / (1 + mpmath.exp(-v))}, "mpmath"]


def _numpy_value(code: str, xv: float, yv: float) -> complex:
    namespace = {
        "np": np,
        "math": math,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "x": np.float64(xv),
        "y": np.float64(yv),
    }
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return complex(eval(code, namespace))  # noqa: S307 - our own printer's output, in a test
        except (ZeroDivisionError, OverflowError, ValueError):
            return complex("nan")


def _mpmath_value(expr: sp.Expr, xv: float, yv: float) -> complex:
    f = sp.lambdify((x, y), expr, modules=MPMATH)
    with mpmath.workdps(50):
        try:
            return complex(f(mpmath.mpf(xv), mpmath.mpf(yv)))
        except (ZeroDivisionError, OverflowError, ValueError, TypeError):
            return complex("nan")


def _margins_clear(expr: sp.Expr, xv: float, yv: float) -> bool:
    """Every comparison is decided by more than rounding, so both sides take the same branch."""
    for rel in expr.atoms(sp.Rel):
        diff = _mpmath_value(rel.lhs - rel.rhs, xv, yv)
        if not (math.isfinite(diff.real) and abs(diff.real) > 1e-6 and diff.imag == 0):
            return False
    return True


def _is_real_finite(v: complex) -> bool:
    return v.imag == 0 and math.isfinite(v.real) and abs(v.real) < 1e300


@SETTINGS
@given(expressions, points, points)
@example(sp.Max(0, x, y), 0.5, -2.0)  # SymPy flattens max(max(x, 0), y): three arguments
@example(sp.Min(0, x, y), 0.5, -2.0)
@example(-1 / x**2, 0.5, 0.0)  # a square in a denominator
def test_printed_numpy_equals_mpmath(expr, xv, yv):
    assume(
        isinstance(expr, sp.Expr) and expr.free_symbols and not expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I)
    )
    code = pycode(expr)
    ours = _numpy_value(code, xv, yv)
    ref = _mpmath_value(expr, xv, yv)
    assume(_is_real_finite(ours) and _is_real_finite(ref) and _margins_clear(expr, xv, yv))
    assert abs(ours.real - ref.real) <= TOLERANCE * max(1.0, abs(ref.real)), (expr, code, xv, yv)


a, b = sp.symbols("a b", real=True)


def test_powers_keep_their_grouping():
    assert pycode(a / b**2) == "a/b**2"
    assert pycode(1 / (1 + x**2)) == "1 / (x**2 + 1)"
    assert pycode(-(x**2)) == "-x**2"
    assert pycode((-x) ** 2) == "x**2"
    assert pycode(sp.Pow(-3, 2, evaluate=False)) == "(-3)**2"
    assert pycode(2 ** (x**2)) == "2**(x**2)"
    assert pycode((1 / x) ** a) == "(1 / x)**a"
    assert pycode(a ** (1 / b)) == "a**(1 / b)"
    assert pycode(x ** sp.Rational(1, 3)) == "x**(1/3)"
    assert pycode(a / (x - 1)) == "a/(x - 1)"
    assert pycode(sp.Max(0, x, y)) == "np.maximum(np.maximum(x, y), 0)"


def test_squares_in_denominators_evaluate_right():
    value = eval(pycode(a / b**2), {"np": np, "a": 3.0, "b": 2.0})  # noqa: S307 - our printer's output
    assert value == 0.75
