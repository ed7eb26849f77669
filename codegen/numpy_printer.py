"""The NumPy printer: SymPy's, taught the layers' conventions."""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.numpy import NumPyPrinter as _SymPyNumPyPrinter
from sympy.printing.precedence import PRECEDENCE


class NumpyPrinter(_SymPyNumPyPrinter):
    """Prints derived expressions as the NumPy a learner would write by hand.

    Settings: ``names`` maps a symbol's name to the code that stands for it
    (``self.mask`` for a cached value, ``self.y.shape[0]`` for a size).
    """

    _default_settings = {**_SymPyNumPyPrinter._default_settings, "names": {}}

    def _module_format(self, fqn: str, register: bool = True) -> str:
        """``np.exp``, not ``numpy.exp``: the generated files import numpy as np."""
        return "np." + fqn.split(".", 1)[1] if fqn.startswith("numpy.") else fqn

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        """A cached value is read from the layer; other names stay as they are."""
        return self._settings["names"].get(expr.name, super()._print_Symbol(expr))

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """Matrices are arrays named like the symbol, or read from the layer when cached."""
        return self._settings["names"].get(expr.name, expr.name)

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """``W.T``: NumPy's transpose is a view, no copy."""
        arg = self._print(expr.arg)
        return f"{arg}.T" if isinstance(expr.arg, sp.MatrixSymbol) else f"({arg}).T"

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """Matrix products as ``@``; scalars as ``*``; a row of ones times G as a column sum."""
        scalars = [a for a in expr.args if not a.is_Matrix]
        matrices = [a for a in expr.args if a.is_Matrix]
        if len(matrices) == 2 and isinstance(matrices[0], sp.OneMatrix) and matrices[0].shape[0] == 1:
            product = f"np.sum({self._print(matrices[1])}, axis=0)"
        elif len(matrices) == 2 and isinstance(matrices[0], sp.OneMatrix) and matrices[0].shape[1] == 1:
            product = self._print(matrices[1])  # a column of ones times a row: broadcasting does it
        elif len(matrices) == 1:
            product = self._print(matrices[0])
        else:
            product = " @ ".join(self.parenthesize(m, 60) for m in matrices)
        if not scalars:
            return product
        coeff = sp.Mul(*scalars)
        if coeff == -1:
            return f"-{self._wrap(matrices, product)}"
        return f"{self._print(coeff)} * {self._wrap(matrices, product)}"

    def _wrap(self, matrices: list[sp.Basic], text: str) -> str:
        single = len(matrices) == 1 and not isinstance(matrices[0], sp.MatAdd)
        return text if single or text.startswith("np.sum(") else f"({text})"

    def _print_MatAdd(self, expr: sp.MatAdd) -> str:
        """``x @ W + b`` and ``y - t``: products first, subtracted terms last."""
        terms = []
        ordered = sorted(
            expr.args,
            key=lambda a: (a.could_extract_minus_sign(), not isinstance(a, sp.MatMul), a.has(sp.OneMatrix)),
        )
        for arg in ordered:
            text = self._print(arg)
            terms.append(("- " + text[1:]) if text.startswith("-") else ("+ " + text))
        joined = " ".join(terms)
        return joined[2:] if joined.startswith("+ ") else "-" + joined[2:]

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """Only reached on its own: a column of ones broadcasts as the scalar 1."""
        return "1"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """Two branches as ``np.where(cond, a, b)``, which keeps the array's shape and dtype."""
        relu_of = relu_argument(expr)
        if relu_of is not None:
            # ReLU's piecewise is max(v, 0): one pass instead of a comparison and a select.
            return f"np.maximum({self._print(relu_of)}, 0)"
        (value, cond), *rest = expr.args
        if not rest:
            return self._print(value)
        other = sp.Piecewise(*rest) if rest[0][1] is not sp.true else rest[0][0]
        return f"np.where({self._print(cond)}, {self._print(value)}, {self._print(other)})"

    def _print_Where(self, expr: sp.Basic) -> str:
        """A select the training step keeps as np.where (``codegen.buffered.Where``)."""
        cond, a, b = (self._print(arg) for arg in expr.args)
        return f"np.where({cond}, {a}, {b})"

    def _print_Relational(self, expr: sp.Basic) -> str:
        """``x <= 0``: NumPy's operators work on arrays and read like the formula."""
        return f"{self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)}"

    def _print_Abs(self, expr: sp.Abs) -> str:
        """``np.abs``, which works on arrays, not Python's ``abs``."""
        return f"np.abs({self._print(expr.args[0])})"

    def _print_Not(self, expr: sp.Not) -> str:
        """``~mask`` for a boolean array."""
        return f"~{self.parenthesize(expr.args[0], 1000)}"

    def _print_Rational(self, expr: sp.Rational) -> str:
        """A fraction that ends as a decimal prints as that decimal: ``0.044715``, not ``8943/200000``.

        Both are the same float (Python rounds each correctly to the nearest double); other
        fractions stay a division, ``1/3``, rounded the same way.
        """
        decimal = _terminating_decimal(expr)
        return decimal if decimal is not None else super()._print_Rational(expr)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        """``1 / x`` and ``x**2``: exact, where SymPy's would print ``x**(-1.0)`` and ``x**2.0``.

        A square stays a power (NumPy computes it as ``x * x``): written as a product it
        would lose its grouping under a division, ``a / x * x``.
        """
        base, exp = expr.args
        if exp == sp.S.Half and expr.is_number:  # a Python float: NumPy keeps an array's float32 beside it
            return f"math.sqrt({self._print(base)})"
        if exp == -1:
            return f"1 / {self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}"
        if exp == 2:
            return f"{self.parenthesize(base, PRECEDENCE['Pow'], strict=True)}**2"
        if exp == 3:  # NumPy's float32 power of 3 is a general powf, some 200 times slower than two products
            factor = self.parenthesize(base, PRECEDENCE["Pow"], strict=True)
            return f"({factor} * {factor} * {factor})"
        return super()._print_Pow(expr, rational=rational)

    def parenthesize(self, item: sp.Basic, level: int, strict: bool = False) -> str:
        """``1 / x`` binds like a product, not like the power it is, wherever it is nested; a
        positive decimal like ``0.044715`` is one number and needs no parentheses."""
        if isinstance(item, sp.Rational) and item.p > 0 and _terminating_decimal(item) is not None:
            return self._print(item)
        if (
            isinstance(item, sp.Pow)
            and item.exp == -1
            and (level > PRECEDENCE["Mul"] or strict and level == PRECEDENCE["Mul"])
        ):
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict=strict)

    def _print_RowMax(self, expr: sp.Basic) -> str:
        """Each row's maximum as a column, so it broadcasts back over the row."""
        return f"np.max({self._print(expr.args[0])}, axis=-1, keepdims=True)"

    def _print_RowSum(self, expr: sp.Basic) -> str:
        """Each row's sum as a column, so it broadcasts back over the row."""
        return f"np.sum({self._print(expr.args[0])}, axis=-1, keepdims=True)"

    def _print_Total(self, expr: sp.Basic) -> str:
        """The sum of every entry."""
        return f"np.sum({self._print(expr.args[0])})"

    def _print_Pick(self, expr: sp.Basic) -> str:
        """Each row's entry at its label: fancy indexing, no one-hot matrix built."""
        y, t = (self._print(a) for a in expr.args)
        return f"{y}[np.arange({t}.shape[0]), {t}]"

    def _print_Tiny(self, expr: sp.Basic) -> str:
        """The smallest normal number of the array's float type."""
        return f"np.finfo({self._print(expr.args[0])}.dtype).tiny"

    def _print_OneHot(self, expr: sp.Basic) -> str:
        """Integer labels as one-hot rows of the probabilities' width and dtype."""
        return f"one_hot({self._print(expr.labels)}, {self._print(expr.shape[1])})"

    def _print_Max(self, expr: sp.Max) -> str:
        """Element-wise maximum, the variables first: ``np.maximum(x, 0)``; nested for more than two."""
        return self._fold("np.maximum", expr.args)

    def _print_Min(self, expr: sp.Min) -> str:
        """Element-wise minimum, the variables first: ``np.minimum(x, 0)``; nested for more than two."""
        return self._fold("np.minimum", expr.args)

    def _fold(self, fn: str, args: tuple[sp.Basic, ...]) -> str:
        """NumPy's maximum and minimum take two arrays: ``max(x, y, 0)`` is ``np.maximum(np.maximum(x, y), 0)``."""
        first, *rest = (self._print(a) for a in sorted(args, key=lambda v: bool(v.is_number)))
        for text in rest:
            first = f"{fn}({first}, {text})"
        return first

    def _as_ordered_terms(self, expr: sp.Basic, order: str | None = None) -> list[sp.Basic]:
        """Subtracted terms last, so ``y - t`` reads as written, not ``-t + y``."""
        terms = super()._as_ordered_terms(expr, order=order)
        return sorted(terms, key=lambda term: term.could_extract_minus_sign())

    def _print_Function(self, expr: sp.Function) -> str:
        """A kernel of the generated module, called by name."""
        return f"{expr.func.__name__}({', '.join(self._print(a) for a in expr.args)})"


def _terminating_decimal(value: sp.Rational) -> str | None:
    """``value`` written exactly as a decimal, or None when its denominator has a prime other than 2 and 5."""
    q = value.q
    if q == 1:
        return None
    twos = fives = 0
    while q % 2 == 0:
        q, twos = q // 2, twos + 1
    while q % 5 == 0:
        q, fives = q // 5, fives + 1
    if q != 1:
        return None
    places = max(twos, fives)
    digits = str(abs(value.p) * 10**places // value.q).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0")
    return f"-{text}" if value.p < 0 else text


def relu_argument(expr: sp.Piecewise) -> sp.Basic | None:
    """v when ``expr`` is (0 if v <= 0 else v) or (v if v > 0 else 0), else None."""
    if len(expr.args) != 2 or expr.args[1][1] is not sp.true:
        return None
    (first, cond), (second, _) = expr.args
    if isinstance(cond, sp.Le) and cond.rhs == 0 and first == 0 and second == cond.lhs:
        return second
    if isinstance(cond, sp.Gt) and cond.rhs == 0 and second == 0 and first == cond.lhs:
        return first
    return None


def pycode(expr: sp.Basic, names: dict[str, str] | None = None) -> str:
    """One expression as NumPy code."""
    return NumpyPrinter({"names": names or {}}).doprint(expr)


def cse_lines(
    exprs: list[sp.Basic], names: dict[str, str] | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """Common subexpressions pulled out as ``_tmp0``, ``_tmp1``, ... in a fixed order."""
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_tmp"), optimizations=None, order="canonical")
    printer = NumpyPrinter({"names": names or {}})
    return [(s.name, printer.doprint(e)) for s, e in temps], [printer.doprint(e) for e in reduced]


def _reads(name: str, code: str) -> bool:
    """Whether the line ``code`` reads the variable ``name``."""
    return re.search(rf"(?<![\w.]){re.escape(name)}\b", code) is not None


def _dim(code: str, axis: int) -> str:
    """The code for one dimension of a printed matrix: ``x.shape[0]``; ``h1.T`` is h1 transposed."""
    if code.endswith(".T") and code[:-2].isidentifier():
        return f"{code[:-2]}.shape[{1 - axis}]"
    return f"{code}.shape[{axis}]"


def _product(expr: sp.Basic) -> tuple[sp.Basic, sp.Basic] | None:
    """The two factors of a plain matrix product A B (no scalar, no row of ones), else None."""
    if not isinstance(expr, sp.MatMul) or len(expr.args) != 2:
        return None
    a, b = expr.args
    if not (a.is_Matrix and b.is_Matrix) or isinstance(a, sp.OneMatrix) or isinstance(b, sp.OneMatrix):
        return None
    return a, b


def buffer_statement(
    target: str,
    expr: sp.Basic,
    names: dict[str, str],
    later: list[str],
    prefix: str = "",
    key: str | None = None,
) -> str:
    """``target = expr`` written so that it allocates no new array where it need not.

    A training step runs thousands of times on arrays of the same shapes.  Written
    plainly, every step allocates its products afresh and frees them; arrays of this
    size go back to the operating system and are faulted in again, which costs more
    than the arithmetic once BLAS runs threads on the other CPUs.  So:

    - a matrix product goes into an array the network keeps (``self._out(name, shape)``),
      and the terms added to it are added in place: ``a1 = np.matmul(x, W1, out=...)``,
      ``a1 += b1``;
    - an element-wise step whose input no later line reads writes over that input:
      ReLU's ``np.maximum(a1, 0, out=a1)``;
    - ``Piecewise((0, mask), (v, True))`` (a gradient stopped where the mask is set) is
      ``v * ~mask``, equal to ``np.where(mask, 0, v)`` wherever v is finite, without the
      data-dependent branch that np.where takes on each element and mispredicts on
      the random signs of a hidden layer.

    Anything else is printed as the plain assignment.  ``later`` is the code of every line
    after this one, to know which values are still read; ``prefix`` keeps the kept arrays of
    one method apart from another's; ``key``, the code of the kept array's key, replaces the
    name when the line runs in a loop over layers (``("a", idx)``).
    """
    printer = NumpyPrinter({"names": names})
    dead = lambda code: code.isidentifier() and not any(_reads(code, line) for line in later)  # noqa: E731
    terms = list(expr.args) if isinstance(expr, sp.MatAdd) else [expr]
    product = next((t for t in terms if _product(t) is not None), None)
    if product is not None:
        a, b = (printer.doprint(m) for m in _product(product))
        shape = f"({_dim(a, 0)}, {_dim(b, 1)})"
        kept = key or repr(prefix + target)
        lines = [f"{target} = np.matmul({a}, {b}, out=self._out({kept}, {shape}))"]
        for term in terms:
            if term is product:
                continue
            text = printer.doprint(term)
            lines.append(f"{target} -= {text[1:]}" if text.startswith("-") else f"{target} += {text}")
        return "\n".join(lines)
    if isinstance(expr, sp.Piecewise):
        relu_of = relu_argument(expr)
        if relu_of is not None:
            v = printer.doprint(relu_of)
            return f"{target} = np.maximum({v}, 0, out={v})" if dead(v) else f"{target} = np.maximum({v}, 0)"
        if len(expr.args) == 2 and expr.args[0][0] == 0 and expr.args[1][1] is sp.true:
            cond, v = printer.doprint(expr.args[0][1]), printer.doprint(expr.args[1][0])
            stop = f"~{cond}" if cond.isidentifier() else f"~({cond})"
            if dead(v):
                return f"{target} = np.multiply({v}, {stop}, out={v})"
            return f"{target} = {v} * {stop}"
    return f"{target} = {printer.doprint(expr)}"
