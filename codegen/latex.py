"""The LaTeX printer: SymPy's, taught the chapter's notation."""

from __future__ import annotations

import re
from decimal import Decimal

import sympy as sp
from sympy.printing.latex import LatexPrinter as _SymPyLatexPrinter
from sympy.printing.precedence import PRECEDENCE, precedence_traditional

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
    "b": r"\mathbf{B}",
    "xW": r"\mathbf{X}\cdot\mathbf{W}",
    "out": r"\mathbf{Y}",
    "dY": r"\mathrm{d}\mathbf{Y}",
    "y": r"\mathbf{Y}",
    "t": r"\mathbf{T}",
}

# The shopping problems' variables in the book's words, for a reader of that language; English keeps
# the code's names (apple, apple_num, ...), which the chapter's code uses too.
BOOK_WORDS: dict[str, dict[str, str]] = {
    "ja": {
        "apple": "りんご",
        "apple_num": "りんごの個数",
        "apple_price": "りんごの金額",
        "orange": "みかん",
        "orange_num": "みかんの個数",
        "orange_price": "みかんの金額",
        "all_price": "合計金額",
        "other": "それ以外の買い物",
        "tax": "消費税",
        "price": "支払金額",
    },
}


def book_word(name: str, lang: str | None = None) -> str | None:
    """The book's word for the variable called ``name`` in ``lang`` (the reader's language when not
    given): りんご for apple in Japanese; None where the code's name is what the reader sees."""
    if lang is None:
        from chainrule.codegen.i18n import active

        lang = active()
    return BOOK_WORDS.get(lang, {}).get(name)


def in_book_words(tex: str) -> str:
    """Prose's inline math with the shopping variables in the reader's words, as the displays and
    the figures name them: ``\\mathrm{apple}`` is ``\\text{りんご}`` in Japanese, unchanged in English."""
    from chainrule.codegen.i18n import active

    for name, word in BOOK_WORDS.get(active(), {}).items():
        if name in DISPLAY:
            tex = tex.replace(DISPLAY[name], rf"\text{{{word}}}")
    return tex


# Stands for the product sign while SymPy prints a product, so that the sign can be chosen
# from the two factors it sits between.
_FACTOR_SEP = "\x00"
# A name of more than one letter, as DISPLAY writes it (\mathrm{apple\_num}) or the reader's word
# (\text{りんご}), maybe raised to a power.
_WORD_END = re.compile(r"\\(?:mathrm|text)\{(?:[^{}]|\\_){2,}\}(?:\^\{[^{}]*\})?$")
_WORD_START = re.compile(r"^\\(?:mathrm|text)\{(?:[^{}]|\\_){2,}\}")


def decimal(value: sp.Basic) -> str | None:
    """An exact rational whose decimal expansion is finite, as that decimal (11/5 -> 2.2); else None."""
    if not isinstance(value, sp.Rational):
        return None
    if isinstance(value, sp.Integer):
        return str(int(value))
    q = int(value.q)
    while q % 2 == 0:
        q //= 2
    while q % 5 == 0:
        q //= 5
    if q != 1:
        return None
    return str(Decimal(int(value.p)) / Decimal(int(value.q)))


def _is_matrix(expr: sp.Basic) -> bool:
    return isinstance(expr, sp.MatrixExpr) or getattr(expr, "is_Matrix", False)


class LatexPrinter(_SymPyLatexPrinter):
    """SymPy's LaTeX printer with partials, ordered chains and the chapter's names."""

    _default_settings = {
        **_SymPyLatexPrinter._default_settings,
        "upstream": None,
        "loss": "L",
        # The documents name the shopping variables in the reader's words (りんご), as the figures do;
        # the generated code's docstrings keep the code's names in every language.
        "book_words": False,
        "decimals": True,
        # Matrices written out between parentheses, as the chapter writes W = (w_11 w_12 ...).
        "mat_delim": "(",
    }

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__(settings)
        self._juxtapose = self._settings["mul_symbol_latex"]
        # Numbers multiplied as the chapter writes them: 2 \times 1.1.
        self._settings["mul_symbol_latex_numbers"] = r" \times "

    def _print_Mul(self, expr: sp.Mul) -> str:
        """Names of several letters are multiplied with a dot (apple \\cdot apple_num), not run together."""
        coeff, rest = expr.as_coeff_Mul()
        if self._settings["decimals"] and not coeff.is_Integer and decimal(coeff) and rest != 1:
            # 0.044715 x^3 as the formula was written, where SymPy would print 8943 x^3 / 200000.
            sign = "- " if coeff < 0 else ""
            body = self.parenthesize(rest, PRECEDENCE["Mul"], strict=True)
            sep = r" \cdot " if body[:1].isdigit() else " "
            return f"{sign}{decimal(abs(coeff))}{sep}{body}"
        partials = [f for f in expr.args if type(f).__name__ == "Partial"]
        if partials and len(partials) < len(expr.args):
            # An upstream gradient written out entry by entry stands in front: dL/dy_1 w_11.
            rest = sp.Mul(*(f for f in expr.args if f not in partials))
            sign = ""
            if rest.could_extract_minus_sign():
                sign, rest = "- ", -rest
            factors = [self._print(f) for f in partials]
            if rest != 1:
                factors.append(self.parenthesize(rest, PRECEDENCE["Mul"], strict=True))
            return sign + " ".join(factors)
        douts = [f for f in expr.args if getattr(f, "name", None) == "dout"]
        if douts and self._settings["upstream"] is not None and sp.fraction(expr)[1] != 1:
            # The upstream gradient in front, as the chapter writes -dL/dy y^2, not stacked in a fraction.
            rest = expr / douts[0]
            sign = ""
            if rest.could_extract_minus_sign():
                sign, rest = "- ", -rest
            return f"{sign}{self._print(douts[0])} {self.parenthesize(rest, PRECEDENCE['Mul'], strict=True)}"
        saved = self._settings["mul_symbol_latex"]
        self._settings["mul_symbol_latex"] = _FACTOR_SEP
        try:
            tex = super()._print_Mul(expr)
        finally:
            self._settings["mul_symbol_latex"] = saved
        parts = tex.split(_FACTOR_SEP)
        out = parts[0]
        for right in parts[1:]:
            words = _WORD_END.search(out.rstrip()) or _WORD_START.match(right.lstrip())
            out += r" \cdot " if words else self._juxtapose
            out += right
        return out

    def _print_Rational(self, expr: sp.Rational) -> str:
        """Numbers as the chapter writes them: 1.1 and 0.044715, not 11/10 and 8943/200000."""
        text = decimal(expr) if self._settings["decimals"] else None
        if text is None or expr.is_Integer:
            return super()._print_Rational(expr)
        return "- " + text[1:] if text.startswith("-") else text

    def _as_ordered_terms(self, expr: sp.Basic, order: str | None = None) -> list[sp.Basic]:
        """A sum starts with a positive term when it has one: y - t, not -t + y."""
        terms = list(super()._as_ordered_terms(expr, order=order))
        if terms and terms[0].could_extract_minus_sign():
            first = next((i for i, t in enumerate(terms) if not t.could_extract_minus_sign()), None)
            if first is not None:
                terms.insert(0, terms.pop(first))
        return terms

    def _print_MatMul(self, expr: sp.MatMul) -> str:
        """A scalar divisor goes under the whole product, as the chapter writes (Y - T)/N.

        A row added to every row of a batch (a column of ones times the row) is the row itself,
        as NumPy broadcasts it and the chapter writes X \\cdot W + B.
        """
        ones, *rest = expr.args
        if isinstance(ones, sp.OneMatrix) and ones.shape[1] == 1 and len(rest) == 1 and rest[0].shape[0] == 1:
            return self._print(rest[0])
        scalars = [a for a in expr.args if not _is_matrix(a)]
        matrices = [a for a in expr.args if _is_matrix(a)]
        num, den = sp.fraction(sp.Mul(*scalars))
        if not scalars or den == 1 or not matrices:
            return self._matrix_product(expr)
        top = matrices[0] if len(matrices) == 1 else sp.MatMul(*matrices)
        if num != 1:
            top = sp.MatMul(num, *matrices)
        return rf"\frac{{{self._print(top)}}}{{{self._print(den)}}}"

    def _matrix_product(self, expr: sp.MatMul) -> str:
        """Matrices multiplied with the chapter's dot, X \\cdot W; a scalar factor stands in front."""
        args = list(expr.args)
        sign = ""
        if expr.could_extract_minus_sign():
            sign = "- "
            args = args[1:] if args[0] == -1 else [-args[0], *args[1:]]
        level = precedence_traditional(expr)
        scalars = [self._print(a) for a in args if not _is_matrix(a)]
        matrices = [self.parenthesize(a, level, False) for a in args if _is_matrix(a)]
        return sign + " ".join([*scalars, r" \cdot ".join(matrices)])

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:
        """Cases as the chapter writes ReLU's (5.5.1): each value with its condition in parentheses.

        The last case's condition is written out too, (x \\le 0), never "otherwise".
        """
        rows = [rf"{self._print(value)} & ({self._print(cond)})" for value, cond in cases(expr)]
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def _print_Partial(self, expr: sp.Basic) -> str:
        """A partial derivative as a fraction, which SymPy has no node for; a product below in parentheses."""
        den = self._print(expr.den)
        if r"\cdot" in den:
            den = rf"\left({den}\right)"
        return rf"\frac{{\partial {self._print(expr.num)}}}{{\partial {den}}}"

    def _print_Chain(self, expr: sp.Basic) -> str:
        """The chain rule's factors in the order they are multiplied, not sorted.

        Partials stand side by side; a value (dout, 2t, 1) is set off with a dot: 2 t \\cdot 1; a
        sum or a negative factor after the first is put in parentheses: -S (t_1 + t_2) \\cdot (-1/S^2).
        """
        out = ""
        for k, f in enumerate(expr.args):
            tex = (
                self._print(f)
                if type(f).__name__ == "Partial"
                else self.parenthesize(f, PRECEDENCE["Mul"], strict=True)
            )
            if k and f.could_extract_minus_sign() and not tex.startswith(r"\left("):
                tex = rf"\left({tex}\right)"
            if k:
                partials = {type(g).__name__ for g in expr.args[k - 1 : k + 1]} <= {"Partial", "Branch"}
                out += r" \, " if partials else r" \cdot "
            out += tex
        return out

    def _print_Transpose(self, expr: sp.Transpose) -> str:
        """One transpose mark, ^{T}; a matrix printed as a fraction or product is transposed in parentheses,
        so that the mark cannot read as a power."""
        base = self._print(expr.arg)
        if not isinstance(expr.arg, sp.MatrixSymbol) or base.startswith(r"\frac") or r"\cdot" in base:
            base = rf"\left({base}\right)"
        return rf"{base}^{{T}}"

    def _print_Branch(self, expr: sp.Basic) -> str:
        """The share of a gradient that comes back through one node."""
        loss, var, via = (self._print(a) for a in expr.args)
        return rf"\left.\frac{{\partial {loss}}}{{\partial {var}}}\right|_{{\to {via}}}"

    def _print_expm1(self, expr: sp.Basic, exp: str | None = None) -> str:
        """``expm1``, named as the code calls it; SymPy would print expm with a subscript 1.

        ``exp`` is a power SymPy passes for ``expm1(x)**2``: written on the name, as SymPy's own functions.
        """
        power = f"^{{{exp}}}" if exp else ""
        return rf"\operatorname{{expm1}}{power}{{\left({self._print(expr.args[0])} \right)}}"

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        """``dout`` is the upstream gradient; other names as the chapter writes them."""
        if expr.name == "dout" and self._settings["upstream"] is not None:
            return self._print_Partial_of(self._settings["upstream"])
        word = book_word(expr.name) if self._settings["book_words"] else None
        if word is not None:
            return rf"\text{{{word}}}"
        if expr.name in DISPLAY:
            return DISPLAY[expr.name]
        tex = super()._print_Symbol(expr, style=style)
        if tex == expr.name and len(tex) > 1 and tex.isalpha():
            # A name SymPy would set as a product of italic letters (dout): upright, as one word.
            return rf"\mathrm{{{tex}}}"
        return tex

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

    def _print_RowMax(self, expr: sp.Basic, exp: str | None = None) -> str:
        """The largest entry of each row."""
        return _raised(rf"\max_{{j}} {self.parenthesize(expr.args[0], 1000)}_{{j}}", exp)

    def _print_RowSum(self, expr: sp.Basic, exp: str | None = None) -> str:
        """The sum over each row."""
        return _raised(rf"\sum_{{j}} {self.parenthesize(expr.args[0], 1000)}_{{j}}", exp)

    def _print_Total(self, expr: sp.Basic, exp: str | None = None) -> str:
        """The sum over every sample of the batch."""
        return _raised(rf"\sum_{{i}} {self.parenthesize(expr.args[0], 1000)}_{{i}}", exp)

    def _print_Pick(self, expr: sp.Basic, exp: str | None = None) -> str:
        """Each sample's entry at its label."""
        y, t = (self._print(a) for a in expr.args)
        return _raised(rf"{y}_{{i, {t}_{{i}}}}", exp)

    def _print_Tiny(self, expr: sp.Basic, exp: str | None = None) -> str:
        """The smallest normal number of the float type."""
        return _raised(r"\varepsilon_{\min}", exp)


def cases(expr: sp.Piecewise) -> list[tuple[sp.Basic, sp.Basic]]:
    """The (value, condition) pairs of a piecewise expression, with SymPy's catch-all ``True`` written
    out as what it means: where no earlier condition holds (x > 0 before it gives x \\le 0)."""
    out: list[tuple[sp.Basic, sp.Basic]] = []
    for value, cond in expr.args:
        if cond == sp.true and out:
            cond = _complement([c for _, c in out])
        out.append((value, cond))
    return out


def _complement(conditions: list[sp.Basic]) -> sp.Basic:
    """Where none of ``conditions`` holds, as simply as SymPy writes it: x > 0 gives x \\le 0."""
    rest = sp.simplify_logic(sp.And(*(sp.Not(c) for c in conditions)))
    symbols = rest.free_symbols
    if len(symbols) == 1 and all(isinstance(c, sp.Rel) for c in rest.atoms(sp.Rel)) and rest.atoms(sp.Rel):
        (x,) = symbols
        try:
            where = rest.as_set()
        except (NotImplementedError, TypeError, ValueError):
            return rest
        if isinstance(where, sp.Interval) and where.start.is_finite and where.end.is_finite:
            # One interval: -1 <= x <= 1, as a chain.
            low = sp.Lt if where.left_open else sp.Le
            high = sp.Lt if where.right_open else sp.Le
            return _Chain(low(where.start, x), high(x, where.end))
        if isinstance(where, sp.Interval | sp.Union):
            return where.as_relational(x)
    return rest


class _Chain(sp.Basic):
    """Two comparisons that share their middle term, printed as one chain: a \\le x < b."""

    def _latex(self, printer: _SymPyLatexPrinter) -> str:
        first, second = self.args
        return f"{printer._print(first)} {printer._print(second).split(' ', 1)[1]}"

    def _sympystr(self, printer: object) -> str:
        first, second = self.args
        return f"{printer._print(first)} {printer._print(second).split(' ', 1)[1]}"


def _raised(tex: str, exp: str | None) -> str:
    """A function's LaTeX raised to the power SymPy passes as ``exp`` (for ``f(x)**2``), if any."""
    return rf"\left({tex}\right)^{{{exp}}}" if exp else tex


def ordered_terms(expr: sp.Basic) -> list[sp.Basic]:
    """The terms of a sum in the order the printer writes them."""
    return LatexPrinter()._as_ordered_terms(expr)


def latex(
    expr: sp.Basic, upstream: sp.Basic | None = None, loss: sp.Basic | None = None, words: bool = False
) -> str:
    """Print ``expr`` in the chapter's notation; ``words``: the shopping variables in the reader's words.

    ``dout`` prints as the gradient of ``loss`` (L unless given) with respect
    to ``upstream``, the variable it flows back into; when that is the loss
    itself, the gradient is 1 and is left out.
    """
    loss = loss if loss is not None else sp.Symbol("L")
    if upstream is not None and upstream == loss:
        # The last layer's upstream gradient is dL/dL = 1: the chapter writes (Y - T)/N.
        expr = expr.xreplace(
            {s: sp.Integer(1) for s in expr.free_symbols if getattr(s, "name", "") == "dout"}
        )
    return LatexPrinter({"upstream": upstream, "loss": loss, "book_words": words}).doprint(expr)
