"""The derivations' expressions evaluated with mpmath at 50 digits on NumPy arrays: verify's reference.

Entry by entry on arrays of mpmath numbers, matrices (``dout @ W.T``, sums over rows, picks by
label) with NumPy's object-dtype ``@`` and reductions: never through the printer that wrote the code.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import mpmath
import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from chainrule.symbolic.core import Pick, RowMax, RowSum, Tiny, Total
from chainrule.symbolic.exact import DIGITS, TINY
from chainrule.symbolic.softmax_loss import OneHot

_ELEMENTWISE: dict[type, Callable[..., object]] = {
    sp.exp: mpmath.exp,
    sp.log: mpmath.log,
    sp.tanh: mpmath.tanh,
    sp.sinh: mpmath.sinh,
    sp.cosh: mpmath.cosh,
    sp.sin: mpmath.sin,
    sp.cos: mpmath.cos,
    sp.atan: mpmath.atan,
    sp.erf: mpmath.erf,
    sp.Abs: abs,
    sp.sign: mpmath.sign,
    expm1: mpmath.expm1,
    log1p: mpmath.log1p,
}
# The few functions SymPy does not know, by their definitions: independent of the
# kernels in the generated module that is being checked.
_DEFINED: dict[str, Callable[..., object]] = {
    "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
}


def reference_value(expr: sp.Basic, env: dict[str, object]) -> np.ndarray:
    """``expr`` evaluated with mpmath at 50 digits on the values in ``env``, as float64 or complex128."""
    with mpmath.workdps(DIGITS):
        exact = {k: _exact(v) for k, v in env.items()}
        value = np.asarray(_evaluate(expr, exact, env))
        complex_value = np.frompyfunc(complex, 1, 1)(value).astype(np.complex128) if value.size else value
    if np.all(np.imag(complex_value) == 0):
        return np.real(complex_value).astype(np.float64)
    return complex_value


def _exact(value: object) -> object:
    """Float64 values as exact mpmath numbers; boolean masks stay masks."""
    array = np.asarray(value)
    if array.dtype == bool:
        return array
    return np.frompyfunc(mpmath.mpf, 1, 1)(array.astype(np.float64))


def _apply(fn: Callable[..., object], *args: object) -> object:
    """``fn`` entry by entry; an entry where mpmath has no value (1/0, log 0) is NaN, not an error:
    a piecewise formula's branches are evaluated everywhere and kept only where chosen."""

    def entry(*values: object) -> object:
        try:
            return fn(*values)
        except (ZeroDivisionError, ValueError):
            return mpmath.mpf("nan")

    return np.frompyfunc(entry, len(args), 1)(*args)


def _evaluate(expr: sp.Basic, env: dict[str, object], raw: dict[str, object]) -> object:
    """One node of the tree; the children first."""

    def ev(e: sp.Basic) -> object:
        return _evaluate(e, env, raw)

    def size(e: sp.Basic) -> int:
        return int(sp.sympify(e).xreplace({s: sp.Integer(int(raw[s.name])) for s in e.free_symbols}))

    if isinstance(expr, sp.Symbol | sp.MatrixSymbol):
        return env[expr.name]
    if expr is sp.true or expr is sp.false:
        return bool(expr)
    if expr.is_Number or isinstance(expr, sp.NumberSymbol):
        return mpmath.mpf(sp.Float(expr, DIGITS + 5)._mpf_)
    if expr == sp.I:
        return mpmath.mpc(0, 1)
    if isinstance(expr, sp.Add | sp.MatAdd):
        return functools.reduce(operator.add, (ev(a) for a in expr.args))
    if isinstance(expr, sp.MatMul):  # before Mul: a MatMul is a Mul
        scalars = [ev(a) for a in expr.args if not a.is_Matrix]
        matrices = [ev(a) for a in expr.args if a.is_Matrix]
        product = functools.reduce(operator.matmul, matrices)
        return functools.reduce(operator.mul, scalars, product)
    if isinstance(expr, sp.Mul):
        return functools.reduce(operator.mul, (ev(a) for a in expr.args))
    if isinstance(expr, sp.Pow):
        return _apply(operator.pow, ev(expr.base), ev(expr.exp))
    if isinstance(expr, sp.Transpose):
        return np.asarray(ev(expr.arg)).T
    if isinstance(expr, sp.OneMatrix):
        return np.full((size(expr.shape[0]), size(expr.shape[1])), mpmath.mpf(1), dtype=object)
    if isinstance(expr, sp.Piecewise):
        conds = [np.asarray(ev(c), dtype=bool) for _, c in expr.args]
        values = [ev(v) for v, _ in expr.args]
        shape = np.broadcast_shapes(*(np.shape(v) for v in values + conds))
        out = np.empty(shape, dtype=object)
        chosen = np.zeros(shape, dtype=bool)
        for value, cond in zip(values, conds, strict=True):
            take = np.broadcast_to(cond, shape) & ~chosen
            out[take] = np.broadcast_to(np.asarray(value, dtype=object), shape)[take]
            chosen |= take
        return out if shape else out[()]
    if isinstance(expr, sp.Rel):
        compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[expr.rel_op]
        return np.asarray(_apply(compare, ev(expr.lhs), ev(expr.rhs)), dtype=bool)
    if isinstance(expr, sp.Not):
        return ~np.asarray(ev(expr.args[0]), dtype=bool)
    if isinstance(expr, sp.And | sp.Or):
        combine = np.logical_and if isinstance(expr, sp.And) else np.logical_or
        return functools.reduce(combine, (np.asarray(ev(a), dtype=bool) for a in expr.args))
    if isinstance(expr, sp.Max | sp.Min):
        pick = max if isinstance(expr, sp.Max) else min
        return functools.reduce(lambda a, b: _apply(pick, a, b), (ev(a) for a in expr.args))
    if isinstance(expr, sp.Heaviside):
        at_zero = ev(expr.args[1]) if len(expr.args) > 1 else mpmath.mpf(0.5)
        return _apply(
            lambda v, h: mpmath.mpf(1) if v > 0 else (mpmath.mpf(0) if v < 0 else h),
            ev(expr.args[0]),
            at_zero,
        )
    if type(expr) in _ELEMENTWISE:
        return _apply(_ELEMENTWISE[type(expr)], ev(expr.args[0]))
    if isinstance(expr, RowMax | RowSum):
        rows = np.asarray(ev(expr.args[0]), dtype=object)
        reduce = np.max if isinstance(expr, RowMax) else np.sum
        return reduce(rows, axis=-1, keepdims=True)
    if isinstance(expr, Total):
        return np.sum(np.asarray(ev(expr.args[0]), dtype=object))
    if isinstance(expr, Pick):
        rows = np.asarray(ev(expr.args[0]), dtype=object)
        labels = np.asarray(raw[expr.args[1].name]).astype(int)
        return rows[np.arange(labels.shape[0]), labels]
    if isinstance(expr, Tiny):
        return mpmath.mpf(TINY)
    if isinstance(expr, OneHot):
        labels = np.asarray(raw[expr.labels.name]).astype(int)
        eye = np.full((size(expr.shape[1]),) * 2, mpmath.mpf(0), dtype=object)
        np.fill_diagonal(eye, mpmath.mpf(1))
        return eye[labels]
    if isinstance(expr, sp.Function) and expr.func.__name__ in _DEFINED:
        return _apply(_DEFINED[expr.func.__name__], *(ev(a) for a in expr.args))
    raise NotImplementedError(f"no reference meaning for {type(expr).__name__} in {expr}")
