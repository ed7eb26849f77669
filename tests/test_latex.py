"""Exact LaTeX strings, in the style of SymPy's own printer tests."""

from __future__ import annotations

import sympy as sp

import symbolic
from codegen.document import document, section
from codegen.latex import latex
from symbolic.core import Chain, Partial

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
        r"\frac{\partial L}{\partial \mathbf{X}} = \frac{\partial L}{\partial \mathbf{Y}} \mathbf{W}^{T}",
        r"\frac{\partial L}{\partial \mathbf{W}} = \mathbf{X}^{T} \frac{\partial L}{\partial \mathbf{Y}}",
        r"\frac{\partial L}{\partial \mathbf{b}} = \mathbf{1}^{T} \frac{\partial L}{\partial \mathbf{Y}}",
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
    assert r"- $\frac{\partial z}{\partial x} = y$ (local derivative of the × node)" in md
