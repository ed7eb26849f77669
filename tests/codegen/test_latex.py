"""Exact LaTeX strings, in the style of SymPy's own printer tests."""

from __future__ import annotations

import re

import sympy as sp

from chainrule import symbolic
from chainrule.codegen.document import document, prose, section
from chainrule.codegen.latex import latex
from chainrule.codegen.measure import LINE_WIDTH, width
from chainrule.symbolic.core import Chain, Partial

x, y, z = sp.symbols("x y z", real=True)


def test_partial_prints_as_a_fraction():
    assert latex(Partial(z, x)) == r"\frac{\partial z}{\partial x}"


def test_chain_keeps_its_order():
    assert latex(Chain(Partial(z, y), Partial(y, x))) == (
        r"\frac{\partial z}{\partial y} \, \frac{\partial y}{\partial x}"
    )


def test_dout_is_the_upstream_gradient():
    dout = sp.Symbol("dout", real=True)
    assert latex(dout * y, upstream=z) == r"\frac{\partial L}{\partial z} y"


def test_boxed_results_of_the_chapter():
    assert section(symbolic.derive("sigmoid")).results == (
        r"\frac{\partial L}{\partial x} = \frac{\partial L}{\partial y} y \left(1 - y\right)",
    )
    assert section(symbolic.derive("affine")).results == (
        r"\frac{\partial L}{\partial \mathbf{X}} = \frac{\partial L}{\partial \mathbf{Y}} \cdot \mathbf{W}^{T}",
        r"\frac{\partial L}{\partial \mathbf{W}} = \mathbf{X}^{T} \cdot \frac{\partial L}{\partial \mathbf{Y}}",
        r"\frac{\partial L}{\partial \mathbf{B}} = \mathbf{1}^{T} \cdot \frac{\partial L}{\partial \mathbf{Y}}",
    )
    assert section(symbolic.derive("chain_rule")).results[0] == (
        r"\frac{\partial z}{\partial x} = 2 \left(x + y\right)"
    )


def test_worked_values_print_as_the_chapter_does():
    rows = section(symbolic.derive("apples")).example
    assert rows[0] == (r"\mathrm{apple}", "100", "2.2")
    assert rows[-1] == (r"\mathrm{price}", "220", "1")


def test_document_formats():
    d = [symbolic.derive("mul")]
    fragment = document(d, "latex")
    assert fragment.startswith(r"\section*{Multiply node}")
    assert r"\documentclass" not in fragment
    assert r"\boxed{\frac{\partial L}{\partial x} = \frac{\partial L}{\partial z} y}" in fragment
    whole = document(d, "latex", standalone=True)
    assert whole.startswith(r"\documentclass") and whole.rstrip().endswith(r"\end{document}")
    md = document(d, "markdown")
    assert md.startswith("## Multiply node")
    # Display math as GitHub's math blocks; the local derivatives side by side, with one reason.
    local = (
        "> each node's local derivative, from sympy.diff\n\n```math\n\\begin{aligned}\n\\left( \\frac{\\partial z}"
        "{\\partial x}, \\  \\frac{\\partial z}{\\partial y}\\right) &= \\left( y, \\  x\\right)\n\\end{aligned}\n```\n"
    )
    assert local in md


apple, apple_num, orange_num, tax = sp.symbols("apple apple_num orange_num tax", real=True)
dout, out, t = sp.symbols("dout out t", real=True)


def test_names_of_several_letters_are_multiplied_with_a_dot():
    assert latex(apple * apple_num) == r"\mathrm{apple} \cdot \mathrm{apple\_num}"
    assert latex(orange_num * tax) == r"\mathrm{orange\_num} \cdot \mathrm{tax}"
    assert latex(apple * x) == r"\mathrm{apple} \cdot x"
    # One-letter names stay side by side, as the chapter writes them.
    assert latex(x * y) == "x y"
    assert latex(2 * x * (x + y)) == r"2 x \left(x + y\right)"
    # A name the printer does not know is one upright word, not d·o·u·t in italics.
    assert latex(dout * out * (1 - out)) == r"\mathrm{dout} \cdot y \left(1 - y\right)"


def test_numbers_print_as_the_chapter_writes_them():
    assert latex(sp.Rational(11, 10)) == "1.1"
    assert latex(sp.Rational(8943, 200000) * x**3) == r"0.044715 x^{3}"
    assert latex(-sp.Rational(1, 2) * x) == r"- 0.5 x"
    assert latex(x / 3) == r"\frac{x}{3}"
    # Numbers put in place but not multiplied show the multiplication.
    two, tax_value = sp.UnevaluatedExpr(2), sp.UnevaluatedExpr(sp.Rational(11, 10))
    assert latex(two * tax_value) == r"2 \times 1.1"


def test_a_sum_starts_with_its_positive_term():
    assert latex(y - t) == "y - t"
    assert latex(-t - x + y) == "y - t - x"


def test_the_upstream_gradient_goes_in_front_of_a_fraction():
    c = sp.Symbol("c", real=True)
    assert latex(-dout / c**2, upstream=out) == r"- \frac{\partial L}{\partial y} \frac{1}{c^{2}}"


def test_the_last_layers_gradient_is_the_books():
    assert section(symbolic.derive("softmax_with_loss")).results == (
        r"\frac{\partial L}{\partial \mathbf{X}} = \frac{\mathbf{Y} - \mathbf{T}}{N}",
    )
    gelu = document([symbolic.derive("gelu")])
    assert "0.044715 x^{3}" in gelu and "8943" not in gelu


def test_shopping_results_and_the_multiplication_behind_each_value():
    s = section(symbolic.derive("apples"))
    assert s.results == (
        r"\frac{\partial \mathrm{price}}{\partial \mathrm{apple}} = \mathrm{apple\_num} \cdot \mathrm{tax}",
        r"\frac{\partial \mathrm{price}}{\partial \mathrm{apple\_num}} = \mathrm{apple} \cdot \mathrm{tax}",
        r"\frac{\partial \mathrm{price}}{\partial \mathrm{tax}} = \mathrm{apple} \cdot \mathrm{apple\_num}",
    )
    (values,) = [e.rows for e in s.backward if e.reason == "the values on the backward arrows"]
    assert values[0][1] == r"= \left( 2 \times 1.1, \  100 \times 1.1, \  100 \times 2\right)"
    assert values[1] == ("", r"= \left( 2.2, \  110, \  200\right)")
    both = section(symbolic.derive("apples_oranges"))
    assert both.results[-1] == (
        r"\frac{\partial \mathrm{price}}{\partial \mathrm{tax}}"
        r" = \mathrm{apple} \cdot \mathrm{apple\_num} + \mathrm{orange} \cdot \mathrm{orange\_num}"
    )
    (tax_rows,) = [e.rows for e in both.backward if e.reason == "the values on the backward arrows"]
    assert r"100 \times 2 + 150 \times 3\right)" in tax_rows[1][1] and r"165, \  650\right)" in tax_rows[2][1]


def test_worked_values_header_names_the_gradient():
    assert section(symbolic.derive("apples")).gradient_header == r"\partial \mathrm{price} / \partial v"
    assert r"backward $\partial L / \partial v$" in document([symbolic.derive("mul")])


def test_prose_separates_words_and_inline_math():
    assert prose(r"for $x \ge 0$, $|x| = x$") == (
        (False, "for "),
        (True, r"x \ge 0"),
        (False, ", "),
        (True, "|x| = x"),
    )
    assert prose(r"costs \$5 at $x$") == ((False, "costs $5 at "), (True, "x"))


def test_reasons_write_their_math_as_math():
    """No reason, summary or note spells math in ASCII outside its dollar signs."""
    ascii_math = re.compile(r"\^|\*\*|<=|>=|\||\bexp\(|\bsum_|\blog\(|\blog [a-z]_|\b[a-z]_[a-z0-9]\b|\bdL/")
    for name in symbolic.NAMES:
        d = symbolic.derive(name)
        texts = [d.summary, *d.notes, *(s.reason for s in (*d.forward, *d.steps, *d.identities))]
        for text in texts:
            words = "".join(t for is_math, t in prose(text) if not is_math)
            assert not ascii_math.search(words), (name, text)
    tex = document([symbolic.derive("sigmoid")])
    assert r"(as $c = 1/y$)" in tex and "textasciicircum" not in tex
    tex = document([symbolic.derive("sigmoid")], appendix=True)
    assert r"for $x \ge 0$, $\min(x, 0) = 0$" in tex and "textasciicircum" not in tex


def test_long_equations_break_to_fit_the_line():
    for name in ("affine", "softmax_with_loss", "gelu", "elu"):
        s = section(symbolic.derive(name))
        for eq in (*s.forward, *s.local, *s.backward, *s.identities, *s.proofs):
            for left, right in eq.rows:
                assert width(left) + width(right) <= LINE_WIDTH, (name, left, right)
    entries, product = section(symbolic.derive("affine")).backward[1].rows
    assert entries[1].startswith(r"= \left( \frac{\partial L}{\partial y_{1}} w_{11}")
    assert product == ("", r"= \frac{\partial L}{\partial \mathbf{Y}} \cdot \mathbf{W}^{T}")


def test_chapter_sections_name_the_books_section():
    assert section(symbolic.derive("sigmoid")).book == "5.5.2"
    assert section(symbolic.derive("tanh")).book == ""
    assert "\\section*{Affine}\n\\textit{Book §5.6.1, §5.6.2.}\n" in document([symbolic.derive("affine")])
    assert "## ReLU\n\n*Book §5.5.1.*\n" in document([symbolic.derive("relu")], "markdown")


def test_matrices_are_multiplied_with_the_chapters_dot():
    (forward,) = section(symbolic.derive("affine")).forward[0].rows
    assert forward == (r"\mathbf{Y}", r"= \mathbf{X} \cdot \mathbf{W} + \mathbf{B}")
