"""The LaTeX printer: SymPy's, taught the chapter's notation."""

from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter as _SymPyLatexPrinter

# Python names of the derivations' symbols -> how the chapter writes them.
DISPLAY: dict[str, str] = {
    "out": "y",
    "mask": r"\mathrm{mask}",
    "batch_size": "N",
    "n_classes": "C",
    "apple": r"\mathrm{apple}",
    "apple_num": r"\mathrm{apple\_num}",
    "apple_price": r"\mathrm{apple\_price}",
    "orange": r"\mathrm{orange}",
    "orange_num": r"\mathrm{orange\_num}",
    "orange_price": r"\mathrm{orange\_price}",
    "all_price": r"\mathrm{all\_price}",
    "price": r"\mathrm{price}",
    "tax": r"\mathrm{tax}",
    "dL": r"\mathrm{d}L",
    "log_y": r"\log y",
    "labels": "t",
    "loss": "L",
}
# Matrices are bold capitals, as in the chapter's Affine section.
MATRIX_DISPLAY: dict[str, str] = {
    "x": r"\mathbf{X}",
    "W": r"\mathbf{W}",
    "b": r"\mathbf{b}",
    "xW": r"\mathbf{X}\cdot\mathbf{W}",
    "out": r"\mathbf{Y}",
    "dY": r"\mathrm{d}\mathbf{Y}",
    "y": r"\mathbf{Y}",
    "t": r"\mathbf{T}",
}


class LatexPrinter(_SymPyLatexPrinter):
    """SymPy's LaTeX printer with partials, ordered chains and the chapter's names."""

    _default_settings = {**_SymPyLatexPrinter._default_settings, "upstream": None, "loss": "L"}

    def _print_Partial(self, expr: sp.Basic) -> str:
        """A partial derivative as a fraction, which SymPy has no node for."""
        return rf"\frac{{\partial {self._print(expr.num)}}}{{\partial {self._print(expr.den)}}}"

    def _print_Chain(self, expr: sp.Basic) -> str:
        """The chain rule's factors in the order they are multiplied, not sorted."""
        return r" \, ".join(self._print(f) for f in expr.args)

    def _print_Branch(self, expr: sp.Basic) -> str:
        """The share of a gradient that comes back through one node."""
        loss, var, via = (self._print(a) for a in expr.args)
        return rf"\left.\frac{{\partial {loss}}}{{\partial {var}}}\right|_{{\to {via}}}"

    def _print_expm1(self, expr: sp.Basic) -> str:
        """``expm1``, named as the code calls it; SymPy would print expm with a subscript 1."""
        return rf"\operatorname{{expm1}}{{\left({self._print(expr.args[0])} \right)}}"

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        """``dout`` is the upstream gradient; other names as the chapter writes them."""
        if expr.name == "dout" and self._settings["upstream"] is not None:
            return self._print_Partial_of(self._settings["upstream"])
        if expr.name in DISPLAY:
            return DISPLAY[expr.name]
        return super()._print_Symbol(expr, style=style)

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """Matrices in bold; ``dout`` is the upstream gradient of the output matrix."""
        if expr.name == "dout" and self._settings["upstream"] is not None:
            return self._print_Partial_of(self._settings["upstream"])
        if expr.name in MATRIX_DISPLAY:
            return MATRIX_DISPLAY[expr.name]
        return super()._print_MatrixSymbol(expr)

    def _print_Partial_of(self, var: sp.Basic) -> str:
        loss = self._print(self._settings["loss"])
        return rf"\frac{{\partial {loss}}}{{\partial {self._print(var)}}}"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """The column of ones that broadcasts b over the batch; as a row, its transpose."""
        return r"\mathbf{1}^{T}" if expr.shape[0] == 1 else r"\mathbf{1}"

    def _print_OneHot(self, expr: sp.Basic) -> str:
        """Integer labels turned into one-hot rows."""
        return rf"\operatorname{{onehot}}\left({self._print(expr.labels)}\right)"

    def _print_RowMax(self, expr: sp.Basic) -> str:
        """The largest entry of each row."""
        return rf"\max_{{j}} {self.parenthesize(expr.args[0], 1000)}_{{j}}"

    def _print_RowSum(self, expr: sp.Basic) -> str:
        """The sum over each row."""
        return rf"\sum_{{j}} {self.parenthesize(expr.args[0], 1000)}_{{j}}"

    def _print_Total(self, expr: sp.Basic) -> str:
        """The sum over every sample of the batch."""
        return rf"\sum_{{i}} {self.parenthesize(expr.args[0], 1000)}_{{i}}"

    def _print_Pick(self, expr: sp.Basic) -> str:
        """Each sample's entry at its label."""
        y, t = (self._print(a) for a in expr.args)
        return rf"{y}_{{i, {t}_{{i}}}}"

    def _print_Tiny(self, expr: sp.Basic) -> str:
        """The smallest normal number of the float type."""
        return r"\varepsilon_{\min}"


def latex(expr: sp.Basic, upstream: sp.Basic | None = None, loss: sp.Basic | None = None) -> str:
    """Print ``expr`` in the chapter's notation.

    ``dout`` prints as the gradient of ``loss`` (L unless given) with respect
    to ``upstream``, the variable it flows back into.
    """
    settings = {"upstream": upstream, "loss": loss if loss is not None else sp.Symbol("L")}
    return LatexPrinter(settings).doprint(expr)
