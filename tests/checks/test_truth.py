"""Results that must be true, whatever labels, shapes and values a learner gives."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule import symbolic
from chainrule.checks import accuracy
from chainrule.checks.gradients import cases, results
from chainrule.cli import main
from chainrule.codegen.model import catalog
from chainrule.generated import layers as layers_module
from chainrule.generated.layers import SoftmaxWithLoss, cross_entropy_error
from chainrule.generated.two_layer_net import TwoLayerNet
from chainrule.symbolic.core import Pick
from chainrule.symbolic.exact import EDGES


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cross_entropy(a: np.ndarray, t: np.ndarray) -> float:
    """-sum t log y / N, written out here as the tests' own expectation."""
    return float(-np.sum(t * np.log(_softmax(a))) / a.shape[0])


# -- soft labels, one class -----------------------------------------------------------


def test_soft_labels_give_the_cross_entropy_and_its_gradient():
    a, t = np.array([[1.0, 2.0, 3.0]]), np.array([[0.5, 0.5, 0.0]])
    layer = SoftmaxWithLoss()
    loss = layer.forward(a, t)
    assert loss == pytest.approx(1.9076059644443806, rel=1e-12)
    assert loss == pytest.approx(_cross_entropy(a, t), rel=1e-12)
    np.testing.assert_allclose(layer.backward(), _softmax(a) - t, rtol=1e-12)


def test_soft_labels_loss_and_backward_are_one_derivation():
    """The backward is the gradient of the forward: central differences of the loss agree."""
    rng = np.random.default_rng(5)
    a, t = rng.normal(size=(4, 6)), rng.dirichlet(np.ones(6), size=4)
    layer = SoftmaxWithLoss()
    layer.forward(a, t)
    grad = layer.backward()
    h = 1e-6
    numeric = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (SoftmaxWithLoss().forward(up, t) - SoftmaxWithLoss().forward(down, t)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)


def test_one_hot_and_integer_labels_give_the_same_loss_and_gradient():
    rng = np.random.default_rng(1)
    a, labels = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    one, two = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert one.forward(a, labels) == pytest.approx(two.forward(a, np.eye(4)[labels]), rel=1e-14)
    assert one.forward(a, labels) == pytest.approx(_cross_entropy(a, np.eye(4)[labels]), rel=1e-12)
    np.testing.assert_allclose(one.backward(), two.backward(), rtol=1e-14)


def test_one_class_integer_labels_keep_the_scores_shape():
    layer = SoftmaxWithLoss()
    assert layer.forward(np.array([[1.0], [2.0]]), np.array([0, 0])) == 0.0
    dx = layer.backward()
    assert dx.shape == (2, 1)
    np.testing.assert_array_equal(dx, np.zeros((2, 1)))


def test_label_kind_is_decided_by_dtype_and_ndim():
    a = np.array([[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]])
    # integer rows of the scores' shape are one-hot rows, not indices
    layer = SoftmaxWithLoss()
    assert layer.forward(a, np.array([[0, 0, 1], [1, 0, 0]])) == pytest.approx(
        _cross_entropy(a, np.array([[0, 0, 1], [1, 0, 0]])), rel=1e-12
    )
    # float labels with one dimension fewer are not class indices
    with pytest.raises(ValueError, match="integer class indices"):
        SoftmaxWithLoss().forward(a, np.array([2.0, 0.0]))
    with pytest.raises(ValueError, match="not a class"):
        SoftmaxWithLoss().forward(a, np.array([3, 0]))
    with pytest.raises(ValueError, match="do not match"):
        SoftmaxWithLoss().forward(a, np.eye(4)[:2])


def test_the_derivation_proves_the_pick_equal_to_the_one_hot_sum():
    d = symbolic.derive("softmax_with_loss")
    (name, (line,)), *_ = d.compute_variants
    assert name == "integer labels" and line.target == d.compute[-1].target
    # The pick is checked against the one-hot sum while the derivation is built (softmax_loss._label_loss).
    assert line.expr.has(Pick) and not d.compute[-1].expr.has(Pick)


def test_train_step_loss_is_the_cross_entropy_for_soft_labels():
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(6, 8)), rng.dirichlet(np.ones(4), size=6)
    a, b = (
        TwoLayerNet(8, 5, 4, weight_init_std=0.3, seed=4),
        TwoLayerNet(8, 5, 4, weight_init_std=0.3, seed=4),
    )
    grads = a.gradient(x, t)
    loss = b.train_step(x, t, 0.1)
    assert loss == pytest.approx(a.last_loss, rel=1e-12)
    assert loss == pytest.approx(_cross_entropy(a.predict(x), t), rel=1e-12)
    for key in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(b.params[key], a.params[key] - 0.1 * grads[key], rtol=1e-10, atol=1e-14)
    numeric = TwoLayerNet(8, 5, 4, weight_init_std=0.3, seed=4).numerical_gradient(x, t)
    for key in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(grads[key], numeric[key], atol=1e-7)


def test_verify_checks_soft_labels():
    labels = [c.label for c in cases(np.random.default_rng(0))]
    assert "SoftmaxWithLoss (soft)" in labels
    grads, hygiene = results()
    assert all(g.ok for g in grads if g.case == "SoftmaxWithLoss (soft)")


# -- one sample, as the chapter writes it ---------------------------------------------


def test_one_sample_with_a_one_hot_row():
    x, t = np.array([1.0, 1.5, 2.0]), np.array([0, 0, 1])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    assert loss == pytest.approx(-np.log(_softmax(x)[2]), rel=1e-12)
    dx = layer.backward()
    assert dx.shape == (3,)
    np.testing.assert_allclose(dx, _softmax(x) - t, rtol=1e-12)


def test_one_sample_with_an_integer_label():
    x = np.array([1.0, 1.5, 2.0])
    layer = SoftmaxWithLoss()
    assert layer.forward(x, 2) == pytest.approx(-np.log(_softmax(x)[2]), rel=1e-12)
    np.testing.assert_allclose(layer.backward(), _softmax(x) - [0, 0, 1], rtol=1e-12)
    assert SoftmaxWithLoss().forward(x, np.int64(0)) == pytest.approx(-np.log(_softmax(x)[0]), rel=1e-12)


def test_cross_entropy_error_of_the_chapter():
    """The book's example: y with 0.6 at the label, 1-D, gives 0.5108; the same as a batch of one."""
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    t = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert cross_entropy_error(y, t) == pytest.approx(0.510825623765990, rel=1e-12)
    assert cross_entropy_error(y, 2) == pytest.approx(0.510825623765990, rel=1e-12)
    assert cross_entropy_error(y[None], np.array([2])) == pytest.approx(0.510825623765990, rel=1e-12)
    wrong = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])
    assert cross_entropy_error(wrong, t) == pytest.approx(2.302585092994046, rel=1e-12)


def test_scores_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="one sample"):
        SoftmaxWithLoss().forward(np.float64(1.0), 0)
    with pytest.raises(ValueError, match="one sample"):
        SoftmaxWithLoss().forward(np.zeros((2, 2, 3)), np.zeros((2, 2), dtype=int))


# -- specs that broke the printer, the figure, the generated module ------------------


def _spec(tmp_path: Path, name: str, forward: str) -> Path:
    spec = tmp_path / "s.toml"
    spec.write_text(
        f"# a user's layer\n[[layer]]\nname = {name!r}\nforward = {forward!r}\n", encoding="utf-8"
    )
    return spec


def _refused(tmp_path: Path, capsys, name: str, forward: str) -> str:
    """generate --spec: exit 2, one line naming the file and the layer's line, nothing written."""
    spec, out = _spec(tmp_path, name, forward), tmp_path / "pkg"
    capsys.readouterr()
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(f"chainrule: error: {spec}:2: ") and "Traceback" not in captured.err
    assert not out.exists()
    return line


def test_a_power_of_expm1_prints_in_every_form(tmp_path, capsys, monkeypatch):
    """(exp(x)-1)**2 is written with expm1; its square once broke the LaTeX printer."""
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, "ExpSq", "(exp(x)-1)**2")
    assert main(["derive", "--spec", str(spec), "expsq", "-o", str(tmp_path / "d.tex")]) == 0
    assert r"\operatorname{expm1}^{2}" in (tmp_path / "d.tex").read_text(encoding="utf-8")
    assert main(["derive", "--spec", str(spec), "expsq", "--format", "markdown"]) == 0
    assert main(["graph", "--spec", str(spec), "expsq", "-o", str(tmp_path / "g.svg")]) == 0
    assert main(["generate", "--spec", str(spec), "--out", str(tmp_path / "expsq_pkg")]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        layers = importlib.import_module("expsq_pkg.layers")
    finally:
        sys.path.remove(str(tmp_path))
    x = np.array([[-2.0, 0.5, 3.0]])
    layer = layers.ExpSq()
    np.testing.assert_allclose(layer.forward(x), np.expm1(x) ** 2, rtol=1e-14)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), 2 * np.expm1(x) * np.exp(x), rtol=1e-14)
    assert "Traceback" not in capsys.readouterr().err


def test_graph_of_a_formula_sympy_cannot_invert(tmp_path, capsys):
    spec = _spec(tmp_path, "HardSigmoid", "max(0, min(1, 0.2*x + 0.5))")
    out = tmp_path / "g.svg"
    assert main(["graph", "--spec", str(spec), "hardsigmoid", "-o", str(out)]) == 0
    assert "<svg" in out.read_text(encoding="utf-8")
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ValueError", "float", "len", "Exception", "print", "match"])
def test_python_builtin_names_are_refused_as_layer_names(tmp_path, capsys, name):
    line = _refused(tmp_path, capsys, name, "2 * x")
    assert line.endswith(
        f"{name}: the name is already taken: a name Python itself defines (a built-in or keyword)"
    )


@pytest.mark.parametrize("forward", ["erf(x)", "x * (1 + erf(x / sqrt(2))) / 2", "erfc(x)"])
def test_erf_is_refused_with_its_reason(tmp_path, capsys, forward):
    line = _refused(tmp_path, capsys, "Erfy", forward)
    assert "cannot be used in a spec: NumPy has no erf" in line


# -- the grids reach the edges of float64; an overflow is a failure with its way out ----

MISH = "x * tanh(log(1 + exp(x)))"
MISH_SAFE = "x * tanh(max(x, 0) + log(1 + exp(-abs(x))))"


def test_the_grids_reach_the_edges_of_float64():
    xs = accuracy.grid(10)
    assert xs.max() == np.finfo(np.float64).max and xs.min() == -np.finfo(np.float64).max
    assert 5e-324 in xs and any(709.7 < v < 709.8 for v in xs) and any(1.3e154 < v < 1.4e154 for v in xs)
    assert max(abs(v) for v in EDGES) == np.finfo(np.float64).max


def test_a_mish_without_safe_is_refused_with_the_way_out(tmp_path, capsys):
    spec, out = _spec(tmp_path, "Mish", MISH), tmp_path / "pkg"
    capsys.readouterr()
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "chainrule: error: verify failed for Mish: inf or NaN at x = 709.782 where the true value is finite;"
        ' give it a form that cannot overflow with safe = "..."; nothing was written'
    )
    assert not out.exists()


def test_a_mish_with_safe_stays_finite_to_the_largest_float(tmp_path, capsys):
    spec = tmp_path / "mish.toml"
    spec.write_text(f'[[layer]]\nname = "Mish"\nforward = "{MISH}"\nsafe = "{MISH_SAFE}"\n', encoding="utf-8")
    assert main(["generate", "--spec", str(spec), "--out", str(tmp_path / "mish_pkg")]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        layers = importlib.import_module("mish_pkg.layers")
    finally:
        sys.path.remove(str(tmp_path))
    x = np.array(EDGES)
    layer = layers.Mish()
    with np.errstate(all="ignore"):
        out, dx = layer.forward(x.copy()), layer.backward(np.ones_like(x))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    big = x > 50
    np.testing.assert_array_equal(out[big], x[big])
    np.testing.assert_array_equal(dx[big], np.ones(big.sum()))
    assert main(["verify", "--package", str(tmp_path / "mish_pkg")]) == 0


def test_accuracy_reports_an_overflow_as_a_failure_with_a_hint():
    row = accuracy.Row("Mish", accuracy.Worst(1.0, 0.5), accuracy.Worst(math.inf, 709.79))
    assert row.result == "FAIL" and row.overflow == 709.79
    lines = accuracy.table([row], 1)
    assert any("Mish gives inf or NaN at x = 709.79 where the true value is finite" in line for line in lines)


def test_the_shipped_layers_stay_finite_at_the_edges():
    """Every shipped activation but the known one (GELU, explained in verify --accuracy) stays finite."""
    grads, hygiene = results()
    edges = {h.case: h.ok for h in hygiene if h.name == "finite at the edges"}
    assert {"Tanh", "ELU", "Softplus", "SiLU", "Sigmoid", "Relu"} <= set(edges) and all(edges.values())
    rows = accuracy.measure(layers_module, catalog(), accuracy.grid(40))
    assert [r.name for r in rows if r.overflow is not None] == [
        "GELU",
        "GELU (training step)",
        "MeanSquaredError",
    ]
    assert all(r.result != "FAIL" for r in rows)


def test_a_sech_whose_derivative_overflows_is_refused(tmp_path, capsys):
    spec, out = _spec(tmp_path, "Sech", "1/cosh(x)"), tmp_path / "pkg"
    capsys.readouterr()
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert (
        line.startswith("chainrule: error: verify failed for Sech: inf or NaN at x = ")
        and 'safe = "..."' in line
    )
    assert not out.exists()
