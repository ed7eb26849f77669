"""Forms that compute the same function more accurately in floating point.

Mathematically equal forms differ in float64: ``exp(x) - 1`` loses every digit
near 0 where ``expm1(x)`` keeps them, ``log(1 + v)`` returns 0 for a tiny v where
``log1p(v)`` returns v, ``1 + tanh(u)`` cancels for u < -20 where
``2 sigmoid(2u)`` does not, and ``1 - sigmoid(u)`` loses digits for large u where
``sigmoid(-u)`` keeps them.  A rule rewrites an expression; the rewritten form is
kept only when SymPy proves it equal to the derived one and it *measures* more
accurate: its worst float64 error, against mpmath at 50 digits or more over a
grid of both signs, is smaller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.codegen.rewriting import ReplaceOptim, expm1_opt, optimize

from chainrule.symbolic.core import Identity, prove
from chainrule.symbolic.exact import EDGES, largest, mpmath_function, reference, scalable, worst_ulps
from chainrule.symbolic.messages import N_
from chainrule.symbolic.spec import sigmoid

# |x| from 1e-12 to 700 in 40 steps, both signs, and 0: where the rules matter.
_MAGNITUDES = tuple(10 ** (-12 + i * (math.log10(700) + 12) / 39) for i in range(40))
GRID = tuple(sorted({*(-m for m in _MAGNITUDES), 0.0, *_MAGNITUDES}))


def _is_log_of_one_plus(e: sp.Basic) -> bool:
    return isinstance(e, sp.log) and e.args[0].is_Add and sp.S.One in e.args[0].args


# SymPy's own log1p_opt expands logarithms first, which turns log(1 + exp(-|x|))
# into -|x| + log1p(exp(|x|)), an overflow; this rule only renames log(1 + v).
LOG1P = ReplaceOptim(_is_log_of_one_plus, lambda e: log1p(e.args[0] - 1))


def _tanh_in(term: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(c, u) when ``term`` is c * tanh(u) with tanh(u) a single factor."""
    for factor in sp.Mul.make_args(term):
        if isinstance(factor, sp.tanh):
            return term / factor, factor.args[0]
    return None


def _plus_tanh(e: sp.Add) -> sp.Expr:
    """c + c tanh(u) -> 2c sigmoid(2u): no cancellation where tanh(u) is near -1."""
    terms = list(e.args)
    for term in terms:
        found = _tanh_in(term)
        if found is not None and found[0] in terms:
            c, u = found
            rest = [t for t in terms if t not in (term, c)]
            return sp.Add(*rest, 2 * c * sigmoid(2 * u))
    return e


def _has_plus_tanh(e: sp.Basic) -> bool:
    return e.is_Add and any((f := _tanh_in(t)) is not None and f[0] in e.args for t in e.args)


def _one_minus_tanh_squared(e: sp.Add) -> sp.Expr:
    """1 - tanh(u)^2 -> 4 sigmoid(2u) sigmoid(-2u): no cancellation where |tanh(u)| is near 1."""
    (square,) = (t for t in e.args if t != 1)
    u = (-square).base.args[0]
    return 4 * sigmoid(2 * u) * sigmoid(-2 * u)


def _is_one_minus_tanh_squared(e: sp.Basic) -> bool:
    if not (e.is_Add and len(e.args) == 2 and sp.S.One in e.args):
        return False
    (other,) = (t for t in e.args if t != 1)
    square = -other
    return square.is_Pow and square.exp == 2 and isinstance(square.base, sp.tanh)


def _sigmoid_in(term: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(c, u) when ``term`` is -c * sigmoid(u) with sigmoid(u) a single factor."""
    for factor in sp.Mul.make_args(term):
        if isinstance(factor, sigmoid):
            return -term / factor, factor.args[0]
    return None


def _has_minus_sigmoid(e: sp.Basic) -> bool:
    return e.is_Add and any((f := _sigmoid_in(t)) is not None and f[0] in e.args for t in e.args)


def _minus_sigmoid(e: sp.Add) -> sp.Expr:
    """c - c sigmoid(u) -> c sigmoid(-u): no cancellation where sigmoid(u) is near 1."""
    for term in e.args:
        found = _sigmoid_in(term)
        if found is not None and found[0] in e.args:
            c, u = found
            rest = [t for t in e.args if t not in (term, c)]
            return sp.Add(*rest, c * sigmoid(-u))
    return e


MINUS_SIGMOID = ReplaceOptim(_has_minus_sigmoid, _minus_sigmoid)
PLUS_TANH = ReplaceOptim(_has_plus_tanh, _plus_tanh)
ONE_MINUS_TANH_SQUARED = ReplaceOptim(_is_one_minus_tanh_squared, _one_minus_tanh_squared)
RULES = (expm1_opt, LOG1P, PLUS_TANH, ONE_MINUS_TANH_SQUARED, MINUS_SIGMOID)


def definitions(*exprs: sp.Basic) -> tuple[tuple[sp.Basic, sp.Basic], ...]:
    """expm1, log1p, tanh and sigmoid calls as their definitions in exp and log, for a proof."""
    calls = set().union(*(e.atoms(expm1, log1p, sp.tanh, sigmoid) for e in exprs))
    return tuple(
        sorted(
            ((c, c.rewrite(sp.log if isinstance(c, log1p) else sp.exp)) for c in calls),
            key=sp.default_sort_key,
        )
    )


def _float_function(expr: sp.Expr, args: Sequence[sp.Symbol]) -> Callable[..., list[float]]:
    """The expression in float64 (Python's floats, C doubles), point by point over columns of inputs.

    A value that overflows is infinite and one outside a function's domain is NaN, as they are
    in the generated NumPy code.
    """

    def safe_sigmoid(v: float) -> float:  # the generated kernel's arithmetic
        low, high = math.exp(min(v, 0.0)), math.exp(-max(v, 0.0))
        return low / (low + high)

    f = sp.lambdify(args, expr, modules=[{"sigmoid": safe_sigmoid}, "math"])

    def point(*row: float) -> float:
        try:
            return float(f(*row))
        except (OverflowError, ZeroDivisionError):
            return math.inf
        except ValueError:
            return math.nan

    return lambda *columns: [point(*row) for row in zip(*columns, strict=True)]


def errors(
    forms: Sequence[sp.Expr],
    derived: sp.Expr,
    x: sp.Symbol,
    values: Mapping[sp.Symbol, float],
    given: Mapping[sp.Symbol, sp.Expr],
) -> list[tuple[float, float]]:
    """Worst errors in ulps of each form computed in float64 against ``derived`` in mpmath, over GRID.

    ``given`` are symbols the forms read that are functions of x (a cached output
    y = f(x)): each is passed to the float form correctly rounded, as the layer holds it.
    The 50-digit values are computed once for all the forms.
    """
    consts = {k: sp.Float(v, 60) for k, v in values.items()}
    true_f = mpmath_function(derived.subs(consts).subs(given), (x,))
    true = [reference(true_f, v) for v in GRID]
    given_f = [mpmath_function(g.subs(consts), (x,)) for g in given.values()]
    columns = [list(GRID)] + [[float(reference(g, v)) for v in GRID] for g in given_f]
    out = []
    for form in forms:
        values = _float_function(form.subs(consts), (x, *given))(*columns)
        out.append(
            (worst_ulps(values, true, GRID)[0], worst_ulps(values, true, GRID, largest(true, GRID))[0])
        )
    return out


def overflow_at(
    form: sp.Expr,
    derived: sp.Expr,
    x: sp.Symbol,
    values: Mapping[sp.Symbol, float],
    given: Mapping[sp.Symbol, sp.Expr] | None = None,
) -> float | None:
    """The first x of EDGES where ``form`` in float64 is inf or NaN while ``derived`` is finite; else None.

    ``given`` as for ``errors``: values the form reads that the layer holds rounded to float64.
    """
    given = given or {}
    probe = {sp.Symbol("dout", real=True): 1.0}
    consts = {k: sp.Float(v, 60) for k, v in values.items()}
    true_f = mpmath_function(derived.subs(probe).subs(consts).subs(given), (x,))
    given_f = [mpmath_function(g.subs(consts), (x,)) for g in given.values()]
    columns = [list(EDGES)] + [[float(reference(g, v)) for v in EDGES] for g in given_f]
    computed = _float_function(form.subs(probe).subs(consts), (x, *given))(*columns)
    for v, c in zip(EDGES, computed, strict=True):
        if not math.isfinite(float(c)) and scalable(v) and abs(float(reference(true_f, v))) < math.inf:
            return v
    return None


@dataclass(frozen=True)
class Choice:
    """The form the code computes, and the proof and measurement behind it."""

    expr: sp.Expr
    identity: Identity | None = None
    before: tuple[float, float] = (0.0, 0.0)  # worst error of the derived form: relative, absolute ulps
    after: tuple[float, float] = (0.0, 0.0)  # and of the rewritten one


def more_accurate(
    expr: sp.Expr,
    x: sp.Symbol,
    values: Mapping[sp.Symbol, float],
    given: Mapping[sp.Symbol, sp.Expr] | None = None,
    what: str = "form",
) -> Choice:
    """``expr`` rewritten by RULES when SymPy proves it equal and it measures more accurate."""
    candidate = optimize(expr, RULES)
    if candidate == expr or not prove(candidate, expr, definitions(candidate, expr)):
        return Choice(expr)
    probe = {sp.Symbol("dout", real=True): 1.0}
    before, after = errors(
        (expr.subs(probe), candidate.subs(probe)), expr.subs(probe), x, values, given or {}
    )
    # Measured as the targets are: a forward against its true value at each point, a
    # backward against the largest derivative (its relative error near a root of f' is noise).
    metric = 0 if what == "forward" else 1
    if not after[metric] < before[metric]:
        return Choice(expr, None, before, after)
    template = {
        "forward": N_(
            "the forward computed: the same function, worst float64 error {after} of the true value at"
            " each point instead of {before}, on $|x|$ from $10^{{-12}}$ to 700"
        ),
        "backward": N_(
            "the backward computed: the same function, worst float64 error {after} of the largest"
            " derivative instead of {before}, on $|x|$ from $10^{{-12}}$ to 700"
        ),
    }
    reason = N_(template[what].msgid, after=_ulps(after[metric]), before=_ulps(before[metric]))
    return Choice(
        candidate, Identity(candidate, expr, reason, where=definitions(candidate, expr)), before, after
    )


def _ulps(value: float) -> str:
    return f"{value:.3g} ulp" if value < 1e6 else f"{value:.1e} ulp"
