"""The plain-text printer: one-line Unicode labels for pictures (SVG has no LaTeX)."""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.str import StrPrinter

from chainrule.codegen.latex import DISPLAY, MATRIX_DISPLAY, book_word, decimal
from chainrule.codegen.latex import cases as written_cases

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _plain(tex: str) -> str:
    r"""A display name from codegen.latex without its LaTeX: ``\mathrm{apple\_num}`` -> ``apple_num``."""
    text = re.sub(r"\\math(?:bf|rm)\{([^}]*)\}", r"\1", tex)
    text = text.replace(r"\cdot", "·").replace(r"\_", "_")
    return re.sub(r"\\([A-Za-z]+)", r"\1", text)  # \log y -> log y


# The same names as the LaTeX printer's, so that a picture and the document agree.
TEXT_DISPLAY: dict[str, str] = {name: _plain(tex) for name, tex in DISPLAY.items()}
MATRIX_TEXT_DISPLAY: dict[str, str] = {name: _plain(tex) for name, tex in MATRIX_DISPLAY.items()}


class TextPrinter(StrPrinter):
    """SymPy's str printer, writing what the chapter draws on its arrows, in one line of Unicode."""

    _default_settings = {**StrPrinter._default_settings, "upstream": None, "loss": "L"}

    def doprint(self, expr: sp.Basic) -> str:
        """A typographic minus sign: ``−`` reads as minus where ``-`` reads as a hyphen."""
        return super().doprint(expr).replace("-", "−")

    def _print_Partial(self, expr: sp.Basic) -> str:
        """A partial derivative written inline, ∂L/∂x."""
        return self._partial(self._print(expr.num), self._print(expr.den))

    def _partial(self, num: str, den: str) -> str:
        if re.search(r"[\s·+\-−/*]", den):
            den = f"({den})"
        return f"∂{num}/∂{den}"

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        """``dout`` is the upstream gradient; other names as the chapter writes them, digits as subscripts."""
        if expr.name == "dout" and self._settings["upstream"] is not None:
            return self._partial(self._print(self._settings["loss"]), self._print(self._settings["upstream"]))
        word = book_word(expr.name)
        if word is not None:
            return word
        if expr.name in TEXT_DISPLAY:
            return TEXT_DISPLAY[expr.name]
        match = re.fullmatch(r"([A-Za-z]+)(\d+)", expr.name)
        if match:
            return match.group(1) + match.group(2).translate(_SUBSCRIPT)
        return expr.name

    def _print_MatrixSymbol(self, expr: sp.MatrixSymbol) -> str:
        """Matrices under the chapter's capital names; ``dout`` is the upstream gradient."""
        if expr.name == "dout" and self._settings["upstream"] is not None:
            return self._partial(self._print(self._settings["loss"]), self._print(self._settings["upstream"]))
        return MATRIX_TEXT_DISPLAY.get(expr.name, expr.name)

    def _print_Rational(self, expr: sp.Rational) -> str:
        """Exact values as the chapter prints them: 2.2, not 11/5, when the decimal is finite."""
        return decimal(expr) or f"{expr.p}/{expr.q}"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        """Integer powers as superscripts, y²; anything else as SymPy writes it, with ^ for **."""
        exp = expr.exp
        if isinstance(exp, sp.Integer) and exp > 1:
            base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Pow"], strict=False)
            return base + str(int(exp)).translate(_SUPERSCRIPT)
        return super()._print_Pow(expr, rational).replace("**", "^")

    def _print_Mul(self, expr: sp.Mul) -> str:
        """A product with the chapter's dot, and written side by side before a parenthesis: 2(x + y)."""
        return super()._print_Mul(expr).replace("*(", "(").replace("*", "·")

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """A matrix product with the chapter's spaced dot, X · W."""
        return super()._print_MatMul(expr).replace("*", " · ")

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """A transpose as a superscript T."""
        return self.parenthesize(expr.arg, sp.printing.precedence.PRECEDENCE["Pow"]) + "ᵀ"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        """The column of ones that broadcasts b over the batch; as a row, its transpose."""
        return "1ᵀ" if expr.shape[0] == 1 else "1"

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """Cases on one line, each with its condition as the chapter writes them: {1 (x > 0); 0 (x ≤ 0)}."""
        cases = [
            f"{self._print(value)} ({self._print(cond).replace('<=', '≤').replace('>=', '≥')})"
            for value, cond in written_cases(expr)
        ]
        return "{" + "; ".join(cases) + "}"


def text(expr: sp.Basic, upstream: sp.Basic | None = None, loss: sp.Basic | None = None) -> str:
    """Print ``expr`` as one line of plain Unicode in the chapter's notation.

    ``dout`` prints as the gradient of ``loss`` (L unless given) with respect
    to ``upstream``, as in :func:`codegen.latex.latex`.
    """
    settings = {"upstream": upstream, "loss": loss if loss is not None else sp.Symbol("L")}
    return TextPrinter(settings).doprint(expr)
