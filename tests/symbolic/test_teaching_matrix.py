"""Affine and Softmax-with-Loss teach as the book does: entries at the figure's sizes, shapes, simplified steps."""

from __future__ import annotations

import re

import sympy as sp

from chainrule import symbolic
from chainrule.codegen.latex import latex
from chainrule.symbolic import linear, softmax_loss
from chainrule.symbolic.core import Derivation, Partial, Step

CHAPTER = ("affine", "softmax_with_loss")


def _shown(d: Derivation) -> list[Step]:
    """The steps the chapter displays: forward, then the derivation's steps."""
    return [*d.forward, *d.steps]


def _printed(d: Derivation, step: Step) -> list[str]:
    return [latex(e, d.upstream, d.loss) for e in (step.lhs, *step.rhs)]


def _groups(tex: str, i: int) -> tuple[str, int]:
    """The braced group that starts at ``tex[i]`` (an opening brace) and the index after it."""
    depth = 0
    for j in range(i, len(tex)):
        depth += {"{": 1, "}": -1}.get(tex[j], 0)
        if depth == 0:
            return tex[i + 1 : j], j + 1
    return tex[i + 1 :], len(tex)


def _nested_fraction(tex: str) -> bool:
    """A \\frac whose numerator or denominator holds another \\frac."""
    for m in re.finditer(r"\\frac", tex):
        num, after = _groups(tex, m.end())
        den, _ = _groups(tex, after)
        if r"\frac" in num or r"\frac" in den:
            return True
    return False


def test_affine_writes_the_entries_out_at_the_figures_sizes_then_the_products():
    d = symbolic.derive("affine")
    shown = "\n".join(t for s in _shown(d) for t in _printed(d, s))
    # y_j = x_1 w_1j + x_2 w_2j + b_j for j = 1, 2, 3 (D = 2, M = 3), and the entries of dL/dX, dL/dW.
    for j in (1, 2, 3):
        assert f"b_{{{j}}} + w_{{1{j}}} x_{{1}} + w_{{2{j}}} x_{{2}}" in shown
    assert "w_{31}" not in shown and "x_{3}" not in shown
    assert r"\frac{\partial L}{\partial y_{3}} w_{23}" in shown  # dL/dx_2 = sum_j dL/dy_j w_2j
    assert r"\frac{\partial L}{\partial y_{3}} x_{2}" in shown  # dL/dw_23 = x_2 dL/dy_3
    dY = r"\frac{\partial L}{\partial \mathbf{Y}}"
    lines = shown.split("\n")
    assert rf"{dY} \cdot \mathbf{{W}}^{{T}}" in lines and rf"\mathbf{{X}}^{{T}} \cdot {dY}" in lines
    assert "Trace" not in str([(s.lhs, s.rhs) for s in _shown(d)]) and r"\operatorname{tr}" not in shown
    # The shapes are the book's: (N, 2), (2, 3), (3,); the same matrix macro in displays and reasons.
    reasons = " ".join(s.reason for s in _shown(d))
    for shape in ("(N, 2)", "(2, 3)", "(3,)", "(N, 3)", r"(N, 2) = (N, 3) \cdot (3, 2)"):
        assert shape in reasons
    assert r"\times M" not in reasons and r"\mathbf{B}" in reasons and r"\mathbf{B}" in shown


def test_affine_backward_starts_at_the_plus_node():
    d = symbolic.derive("affine")
    A = linear
    lhs = [s.lhs for s in d.steps]
    plus = next(i for i, e in enumerate(lhs) if Partial(A.L, A.xW) in sp.preorder_traversal(e))
    dot = next(i for i, e in enumerate(lhs) if e == Partial(A.L, A.x))
    assert plus < dot
    (shown,) = [t for t in _printed(d, d.steps[plus]) if r"\mathbf{1}^{T}" in t]
    assert r"\frac{\partial L}{\partial \mathbf{Y}}" in shown  # dL/dB sums dL/dY over the batch


def test_the_transpose_of_a_partial_is_set_in_parentheses():
    A = linear
    assert latex(A.dout.T * A.x, A.out) == (
        r"\left(\frac{\partial L}{\partial \mathbf{Y}}\right)^{T} \cdot \mathbf{X}"
    )
    assert latex(A.W.T) == r"\mathbf{W}^{T}"


def test_softmax_with_loss_shows_no_double_minus_and_no_fraction_in_a_fraction():
    d = symbolic.derive("softmax_with_loss")
    for step in _shown(d):
        for tex in _printed(d, step):
            assert not re.search(r"-\s*-|-\s*\\left\(\s*-", tex), tex
            assert not _nested_fraction(tex), tex


def test_softmax_with_loss_follows_the_appendixs_steps():
    d = symbolic.derive("softmax_with_loss")
    S = softmax_loss
    rhs = {s.lhs: s.rhs for s in d.steps}
    # -t_1/y_1 from Cross Entropy Error, -t_1 S at the x node, 1/S at the / node, y_1 - t_1 at the end.
    cee = next(r for lhs, r in rhs.items() if isinstance(lhs, sp.Tuple) and lhs[0] == Partial(S.L, S.y[0]))
    assert cee[-1][0] == -S.t[0] / S.y[0]
    to_r = next(
        r for lhs, r in rhs.items() if isinstance(lhs, sp.Tuple) and type(lhs[0]).__name__ == "Branch"
    )
    assert to_r[-1][0] == -S.t[0] * S.S
    assert rhs[Partial(S.L, S.S)][-1] == 1 / S.S
    assert rhs[Partial(S.L, S.e[0])][-1] == 1 / S.S - S.t[0] / S.e[0]
    assert rhs[Partial(S.L, S.a[0])][-1] == S.y[0] - S.t[0]
    # The local derivatives are one display; every node of the figure is introduced by the forward steps.
    assert sum(s.reason.startswith("local derivative") for s in d.steps) == 1
    forward = set().union(*(s.lhs.free_symbols | set(s.introduces) for s in d.forward))
    assert {*S.e, S.S, S.r, *S.y, *S.lg, *S.m, S.s, S.L} <= forward


def test_softmax_with_loss_batch_steps_are_short():
    d = symbolic.derive("softmax_with_loss")
    printed = [_printed(d, s) for s in d.steps]
    assert any(r"\frac{\mathbf{Y} - \mathbf{T}}{N}" in t for p in printed for t in p)
    assert len(d.steps) <= 10
    # A displayed step whose sides print alike teaches nothing.
    for p in printed:
        assert len(set(p)) == len(p), p
