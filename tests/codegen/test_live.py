"""The live figures' programs: printed from the derivations, and equal to the graph's own backprop."""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from chainrule.codegen.environment import TEMPLATES
from chainrule.codegen.layout import FIGURES
from chainrule.codegen.live import evaluate, fragment, js, js_function, live_figure, page, shown
from chainrule.symbolic import derive
from chainrule.symbolic.core import worked_example

SCALAR = [n for n in FIGURES if n not in ("affine", "softmax_with_loss", "softmax_with_loss_simple")]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (330.00000000000006, "330"),  # 150 x 2 x 1.1 in floating point
        (0.7310585786300049, "0.73106"),
        (220.0, "220"),
        (1.1, "1.1"),
        (-0.2634030862306215, "-0.2634"),
        (1e-7, "1e-7"),
        (1.2345678e-6, "0.0000012346"),
        (123456789.0, "123460000"),
        (1.5e21, "1.5e+21"),
        (12344.5, "12345"),  # a tie: JavaScript's toPrecision takes the larger, not the even one
        (-12344.5, "-12345"),
        (99999.5, "100000"),
        (-0.0, "0"),
        (5e-324, "5e-324"),
        (float("nan"), "NaN"),
        (float("-inf"), "-∞"),
    ],
)
def test_numbers_are_written_as_the_pages_script_writes_them(value, text):
    assert shown(value) == text


def _inputs(name: str, rng: random.Random) -> dict[str, object]:
    """Random inputs with few decimals, as a reader types them; Fraction so SymPy reads them exactly."""
    f = live_figure(name)
    values: dict[str, object] = {}
    for field in f.fields:
        if field.choices:
            values[field.name] = rng.choice(field.choices)
        else:
            values[field.name] = float(Fraction(rng.randint(-300, 300), 100))
    return values


@pytest.mark.parametrize("name", SCALAR)
def test_each_program_computes_what_the_graph_backprop_computes(name):
    """The printed lines against ``Graph.backprop`` (core), the path every worked example takes."""
    f = live_figure(name)
    graph = f.program
    rng = random.Random(name)
    for _ in range(3):
        given = _inputs(name, rng)
        result = evaluate(f.program, given)
        source = {"sigmoid_simple": "sigmoid"}.get(name, name)
        g = _graph(source)
        seed = given.get("dout", 1)
        exact = worked_example(g, {v: sp.nsimplify(given[v.name]) for v in g.inputs}, sp.nsimplify(seed))
        for var, value in exact.forward:
            assert math.isclose(result[graph.value[var.name]], float(value), rel_tol=1e-12, abs_tol=1e-300)
        for var, value in exact.grads:
            if var.name in graph.grad:
                assert math.isclose(result[graph.grad[var.name]], float(value), rel_tol=1e-12, abs_tol=1e-300)
        for edge in exact.edges:
            ident = graph.edge[(edge.src.name, edge.dst.name)]
            assert math.isclose(result[ident], float(edge.backward), rel_tol=1e-12, abs_tol=1e-300)


def _graph(name: str):
    from chainrule.codegen.layout.numbered import _NUMBERS

    return _NUMBERS[name]().graph if name in _NUMBERS else derive(name).graph


def test_the_affine_program_is_the_matrix_calculus_of_the_chapter():
    f = live_figure("affine")
    rng = np.random.default_rng(0)
    x, w, b, dy = (np.round(rng.uniform(-3, 3, s), 2) for s in ((2, 2), (2, 3), (1, 3), (2, 3)))
    as_tuple = lambda a: tuple(tuple(float(v) for v in row) for row in a)  # noqa: E731
    result = evaluate(f.program, {"x": as_tuple(x), "W": as_tuple(w), "b": as_tuple(b), "dout": as_tuple(dy)})
    np.testing.assert_allclose(result["out"], x @ w + b, rtol=1e-13)
    np.testing.assert_allclose(result["dx"], dy @ w.T, rtol=1e-13)
    np.testing.assert_allclose(result["dW"], x.T @ dy, rtol=1e-13)
    np.testing.assert_allclose(result["db"], dy.sum(axis=0, keepdims=True), rtol=1e-13)
    assert f.program.rows == {"b", "db"}  # (3,) rows, as NumPy prints them


@pytest.mark.parametrize("label", [1, 2, 3])
def test_softmax_with_loss_sends_back_y_minus_t(label):
    f = live_figure("softmax_with_loss")
    a = np.array([0.3, 2.9, 4.0])
    result = evaluate(f.program, {"a1": 0.3, "a2": 2.9, "a3": 4.0, "label": label})
    y = np.exp(a) / np.exp(a).sum()
    t = np.eye(3)[label - 1]
    np.testing.assert_allclose([result[f"da{k}"] for k in (1, 2, 3)], y - t, rtol=1e-12)
    assert math.isclose(result["L"], -math.log(y[label - 1]), rel_tol=1e-12)


def test_each_line_is_sympys_javascript_of_the_derivation():
    """No formula is typed: a line of the program is SymPy's JavaScript printer applied to the node."""
    sigmoid = live_figure("sigmoid").program
    nodes = {n.out.name: n for n in derive("sigmoid").graph.nodes}
    assert [(line.ident, js(line.value)) for line in sigmoid.forward] == [
        ("a", "-x"),
        ("b", "Math.exp(a)"),
        ("c", "b + 1"),
        ("out", "1/c"),
    ]
    assert js(nodes["b"].expr) == "Math.exp(a)" and js(nodes["out"].expr) == "1/c"
    # The backward lines are the vector-Jacobian products sympy.diff gave, the upstream named d<out>.
    assert [(line.ident, js(line.value)) for line in sigmoid.backward] == [
        ("dout", "input.dout"),
        ("dc", "-dout/Math.pow(c, 2)"),
        ("db", "dc"),
        ("da", "db*Math.exp(a)"),
        ("dx", "-da"),
    ]
    relu = live_figure("relu").program
    assert js(relu.forward[0].value) == "(x > 0 ? x : 0)"
    assert js(relu.backward[-1].value) == "dout*(x > 0 ? 1 : 0)"


def test_no_formula_is_written_in_the_templates():
    """The runtime and the page's templates compute nothing of their own: Math.* appears only in the
    printed programs, and each program's every Math.* call is SymPy's."""
    for template in ("live.js.jinja", "_live.jinja", "explore.html.jinja", "live_block.html.jinja"):
        source = (TEMPLATES / template).read_text(encoding="utf-8")
        assert re.findall(r"Math\.\w+", source) == [], template
    whole = page()
    printed = "".join(js(line.value) for name in FIGURES for line in live_figure(name).program.lines)
    assert sorted(set(re.findall(r"Math\.\w+", whole))) == sorted(set(re.findall(r"Math\.\w+", printed)))
    assert whole.count("Math.") == sum(
        "".join(js(line.value) for line in live_figure(n).program.lines).count("Math.") for n in FIGURES
    )


def test_fragments_carry_every_input():
    assert fragment("apples", {"apple": 150}) == "apples?apple=150&apple_num=2&tax=1.1"
    assert fragment("mul") == "mul?x=10&y=5&dout=1.3"
    assert fragment("affine", {"b": ((1.0, -2.5, 3.0),)}).split("&")[2] == "b=1,-2.5,3"
    assert fragment("affine").split("&")[0] == "affine?x=1,0.5;-1,2"
    assert fragment("softmax_with_loss") == "softmax_with_loss?a1=0.3&a2=2.9&a3=4&label=3"


def test_first_numbers_are_the_chapters():
    """The figures open on the book's numbers, so a page reads right before its script runs."""
    apples = evaluate(live_figure("apples").program, {})
    assert (apples["price"], apples["dapple"], apples["dapple_num"], apples["dtax"]) == (
        220.0,
        2.2,
        110.0,
        200.0,
    )
    two = evaluate(live_figure("apples_oranges").program, {})
    assert (two["price"], two["dorange"], two["dorange_num"], two["dtax"]) == (715.0, 3.3, 165.0, 650.0)
    mul = evaluate(live_figure("mul").program, {})
    assert (mul["dx"], mul["dy"]) == (6.5, 13.0)  # 図5-13: 1.3 x 5, 1.3 x 10


def _spec(forward: str, kind: str = "activation"):
    from chainrule.symbolic.from_spec import derive_spec
    from chainrule.symbolic.spec import Spec

    return derive_spec(Spec("Mine", forward, kind=kind))


def test_a_spec_layer_is_live_its_program_printed_from_its_formula():
    """A user's layer gets the chapter's treatment: its node chain printed, sigmoid by its definition."""
    from chainrule.codegen.spec_figure import spec_live

    f = spec_live(_spec("x * sigmoid(x)"))
    assert [(line.ident, js(line.value)) for line in f.program.forward] == [
        ("a", "1/(1 + Math.exp(-x))"),
        ("out", "a*x"),
    ]
    x = sp.Symbol("x")
    swish = x / (1 + sp.exp(-x))
    for value, upstream in ((0.5, 1.0), (-2.25, 0.3), (3.0, -1.5)):
        result = evaluate(f.program, {"x": value, "dout": upstream})
        assert math.isclose(result["out"], float(swish.subs(x, sp.nsimplify(value))), rel_tol=1e-12)
        expected = upstream * float(sp.diff(swish, x).subs(x, sp.nsimplify(value)))
        assert math.isclose(result["dx"], expected, rel_tol=1e-12)
    assert f.bind["x>out"] == ("x", "dx_via_out") and f.bind["out>"] == ("out", "dout")


def test_a_loss_spec_has_no_live_figure():
    from chainrule.codegen.spec_figure import NotDrawable, spec_live

    with pytest.raises(NotDrawable, match="is a loss"):
        spec_live(_spec("(y - t)**2", kind="loss"))


def test_at_a_kink_the_derivative_is_the_generated_layers():
    """max and min switch with 0 at the kink, as ReLU's mask x <= 0 and the generated layer: not
    SymPy's Heaviside(0) = 1/2."""
    from chainrule.codegen.spec_figure import spec_live

    f = spec_live(_spec("min(max(x, 0), 6)"))
    dx = {x: evaluate(f.program, {"x": x})["dx"] for x in (-1.0, 0.0, 3.0, 6.0, 7.0)}
    assert dx == {-1.0: 0.0, 0.0: 0.0, 3.0: 1.0, 6.0: 0.0, 7.0: 0.0}
    code = [line.split("//")[0] for line in js_function(f.program).splitlines()]
    assert code[-2] == "const dx = da*(x > 0 ? 1 : 0);  " and not any("Heaviside" in c for c in code)


def test_a_spec_constant_is_a_number_on_the_graph():
    """The README's Swish, beta = 1.5: the constant drawn in its node (×1.5) and computed with."""
    from chainrule.codegen.spec_figure import spec_live
    from chainrule.symbolic.from_spec import derive_spec
    from chainrule.symbolic.spec import Spec

    f = spec_live(derive_spec(Spec("Swish", "x * sigmoid(beta * x)", constants=(("beta", 1.5),))))
    result = evaluate(f.program, {"x": 1.0})
    s = 1 / (1 + math.exp(-1.5))
    assert math.isclose(result["out"], s, rel_tol=1e-12)
    assert math.isclose(result["dx"], s + 1.5 * s * (1 - s), rel_tol=1e-12)


def test_a_value_that_is_no_real_number_is_nan_not_an_error():
    """1/(x - 1) at x = 1: JavaScript computes Infinity; here the exact zoo is NaN, never a TypeError."""
    from chainrule.codegen.spec_figure import spec_live

    f = spec_live(_spec("1/(x - 1)"))
    assert math.isnan(evaluate(f.program, {"x": 1.0})["out"])
    assert evaluate(f.program, {"x": 3.0})["out"] == 0.5
