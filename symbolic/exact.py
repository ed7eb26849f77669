"""True values at 50 digits or more, and the error of a float64 value against them in ulps.

The one reference of every measurement: the generator choosing the more accurate form
(``symbolic.rewrite``) and ``chainrule verify --accuracy``.  An expression is evaluated by
SymPy's stock mpmath ``lambdify``; where it cancels (GELU's ``1 + tanh(u)`` for large negative
x) the precision is doubled until two evaluations agree, up to 800 digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mpmath
import sympy as sp

DIGITS = 50
MAX_DIGITS = 800  # past this a cancelled value is far below float64's smallest subnormal
TINY = 2.2250738585072014e-308  # the smallest normal float64
FLOAT_MAX = 1.7976931348623157e308  # the largest float64
LARGEST = 700.0  # |x| up to which a backward is measured against its largest value
# Past the measuring grids, to the edges of float64, where formulas overflow: around the points
# where exp overflows (log of the largest float, and twice it for exp(x/2)), where a square and a
# cube do (its square and cube roots); powers of ten up to the largest float; and down to the
# smallest subnormal.  Both signs.  verify and verify --accuracy look here too.
_THRESHOLDS = (math.log(FLOAT_MAX), 2 * math.log(FLOAT_MAX), math.sqrt(FLOAT_MAX), FLOAT_MAX ** (1 / 3))
_EDGE_MAGNITUDES = (
    *(t * f for t in _THRESHOLDS for f in (1 - 2**-20, 1 + 2**-20)),
    710.0,
    *(10.0**e for e in (3, 5, 10, 20, 50, 100, 150, 200, 250, 300)),
    FLOAT_MAX,
    *(10.0**-e for e in (20, 50, 100, 200, 300)),
    TINY,
    5e-324,
)
EDGES = tuple(sorted({*(-m for m in _EDGE_MAGNITUDES), *_EDGE_MAGNITUDES}))
# A formula scales its input by constants (Swish's beta x, GELU's 2u): within a factor 1024 of the
# largest float that product itself overflows, whatever form is printed.  There an inf or NaN is
# not counted as an overflow; a finite value is still compared.
SCALE_MARGIN = 2.0**10


def scalable(x: float) -> bool:
    """Whether ``x`` times a constant up to SCALE_MARGIN is still a float64: an overflow there counts."""
    return abs(x) <= FLOAT_MAX / SCALE_MARGIN


def mpmath_function(expr: sp.Expr, args: Sequence[sp.Symbol]) -> Callable[..., object]:
    """SymPy's stock mpmath lambdify; a spec's sigmoid as its definition 1/(1 + exp(-v))."""
    plain = expr.replace(lambda e: type(e).__name__ == "sigmoid", lambda e: 1 / (1 + sp.exp(-e.args[0])))
    return sp.lambdify(args, plain, modules="mpmath")


def reference(f: Callable[..., object], *args: float) -> mpmath.mpf:
    """f at the exact float64 inputs, with 50 digits, more while the value is 0 or still moving.

    A value that is not real is NaN: nothing a float64 could be compared with.
    """
    digits, previous = DIGITS, None
    while True:
        with mpmath.workdps(digits):
            value = f(*(mpmath.mpf(a) for a in args))
            if isinstance(value, mpmath.mpc):
                value = value.real if value.imag == 0 else mpmath.nan
            settled = previous is not None and abs(value - previous) <= abs(value) * mpmath.mpf(10) ** -30
            if (settled and value != 0) or digits >= MAX_DIGITS:
                return +value
            previous, digits = value, digits * 2


def largest(true: Sequence[object], xs: Sequence[float]) -> float:
    """The largest finite |true| for |x| up to LARGEST (of every point when none is there; else TINY)."""
    magnitudes = [abs(float(t)) for t in true]
    inner = [m for m, x in zip(magnitudes, xs, strict=True) if abs(x) <= LARGEST and m < math.inf]
    return max(inner or [m for m in magnitudes if m < math.inf] or [TINY])


def worst_ulps(
    computed: Sequence[float], true: Sequence[object], xs: Sequence[float], scale: float | None = None
) -> tuple[float, float]:
    """The largest |computed - true| in ulps, and the x where it is (NaN when there is no error).

    In ulps of the true value at each point, both below the normal range no error; with ``scale``,
    of the larger of ``scale`` and |true|.  A true value beyond float64 or not real is set aside;
    an inf or NaN where it is finite is an infinite error, unless x scaled overflows (SCALE_MARGIN).
    """
    worst, at = 0.0, math.nan
    for c, t, x in zip(computed, true, xs, strict=True):
        magnitude = abs(float(t))
        if magnitude == math.inf:
            continue  # beyond float64: nothing to compare with
        if not math.isfinite(c):
            if not scalable(float(x)):
                continue
            return math.inf, float(x)
        miss = abs(mpmath.mpf(float(c)) - t)
        if scale is None and magnitude < TINY and miss < TINY:
            continue  # a subnormal or zero result: set aside, as the target says
        unit = magnitude if scale is None else max(scale, magnitude)
        ulps = float(miss / math.ulp(max(unit, TINY)))
        if ulps > worst:
            worst, at = ulps, float(x)
    return worst, at
