"""The training step's buffer form: each activation's step_forward and step_backward, and MultiLayerNet.train_step.

They must compute what the readable forward and backward compute, keep the input's float
type, allocate nothing once they have run, and take no data-dependent branch (np.where).
"""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from chainrule.checks.gradients import run
from chainrule.codegen.buffered import Where, clamp_branches, open_sigmoid, step_lines
from chainrule.codegen.model import catalog
from chainrule.codegen.numpy_printer import pycode
from chainrule.generated import layers
from chainrule.generated.multi_layer_net import ACTIVATIONS, MultiLayerNet
from chainrule.packages.importer import import_package
from chainrule.packages.specfile import read_specs
from chainrule.symbolic.spec import sigmoid
from tests.helpers import chainrule, layers_package

NAMES = [cls.__name__ for cls, _ in ACTIVATIONS.values()]
LAYERS_PY = Path(layers.__file__).read_text()


def step_source(name: str) -> str:
    """The text of one generated class's step_forward and step_backward."""
    body = LAYERS_PY[LAYERS_PY.index(f"class {name}(") :]
    body = body[: body.index("\nclass ", 1)] if "\nclass " in body[1:] else body
    return body[body.index("def step_forward") :]


def inputs(dtype, shape=(13, 17), seed=0):
    rng = np.random.default_rng(seed)
    # from -20 to 20: both signs, the saturated ends of sigmoid and tanh, and exactly 0
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    x[0, :3] = (0.0, -20.0, 20.0)
    return x, rng.standard_normal(shape).astype(dtype)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 2e-6)])
@pytest.mark.parametrize("name", NAMES)
def test_step_methods_compute_what_forward_and_backward_compute(name, dtype, tol):
    x, dout = inputs(dtype)
    readable, step = getattr(layers, name)(), getattr(layers, name)()
    out, dx = readable.forward(x), readable.backward(dout)
    s_out = step.step_forward(x).copy()
    s_dx = step.step_backward(dout)
    assert (s_out.dtype, s_dx.dtype) == (np.dtype(dtype), np.dtype(dtype))
    assert relative(s_out, out) <= tol, name
    assert relative(s_dx, dx) <= tol, name
    assert not np.shares_memory(s_dx, dout) and not np.shares_memory(step.step_forward(x), x)


@pytest.mark.parametrize("name", NAMES)
def test_a_step_allocates_nothing_once_it_has_run(name):
    x, dout = inputs(np.float32, shape=(100, 1000))
    layer = getattr(layers, name)()
    first = (layer.step_forward(x), layer.step_backward(dout))
    tracemalloc.start()
    try:
        again = (layer.step_forward(x), layer.step_backward(dout))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The same kept arrays come back, and nothing of the batch's size was allocated: at most
    # NumPy's own casting buffer (8,192 elements), where a mask multiplies a float array.
    assert again[0] is first[0] and again[1] is first[1]
    assert peak <= 8192 * 8 + 1024 < x.nbytes // 4, (name, peak)


@pytest.mark.parametrize("name", NAMES)
def test_no_step_takes_a_branch_per_element(name):
    # np.where branches on each element, which random signs make the processor mispredict.
    source = step_source(name)
    assert "np.where" not in source and "sigmoid(" not in source


@pytest.mark.parametrize("name, exps", [("SiLU", 2), ("GELU", 2), ("Sigmoid", 2)])
def test_a_sigmoid_and_its_mirror_share_their_exponentials(name, exps):
    # SiLU's backward reads sigmoid(x) and sigmoid(-x); both come from the same two exponentials,
    # which step_forward computes once and keeps for step_backward.
    assert step_source(name).count("np.exp(") == exps


def test_open_sigmoid_writes_the_mirror_in_the_same_exponentials():
    u = sp.Symbol("u", real=True)
    low, high = sp.exp(sp.Min(u, 0)), sp.exp(-sp.Max(u, 0))
    assert open_sigmoid(sigmoid(u)) == low / (low + high)
    assert open_sigmoid(sigmoid(-u)) == high / (low + high)
    assert open_sigmoid(sigmoid(u) + sigmoid(-u)).atoms(sp.exp) == {low, high}


def test_a_select_is_two_masked_products_and_a_cube_two_products():
    x, dout = sp.symbols("x dout", real=True)
    lines = step_lines(
        [("out", sp.Piecewise((x, x > 0), (sp.Rational(1, 100) * x, True))), ("y", x**3)],
        {},
        ["x"],
        "x",
    )
    text = "\n".join(lines)
    assert "np.where" not in text and "np.power" not in text
    # the second mask is the first's negation: at NaN, as np.where, the second value is taken
    assert "np.greater(x, 0, out=_c0)" in text and "np.logical_not(_c0, out=_c1)" in text
    assert "y = np.multiply(x, x, out=self._keep('y', x))" in text and "y *= x" in text


def test_decimals_print_as_published():
    x = sp.Symbol("x")
    assert pycode(sp.Rational(8943, 200000) * x) == "0.044715*x"
    assert pycode(sp.Rational(-3, 4) * x) == "-0.75*x"
    assert pycode(sp.Rational(1, 3) * x) == "(1/3)*x"  # no decimal ends: a division, rounded the same
    assert float(eval(pycode(sp.Rational(8943, 200000)))) == 8943 / 200000
    assert "0.044715" in LAYERS_PY and "8943" not in LAYERS_PY


@pytest.mark.parametrize("labels", ["integers", "rows"])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_train_step_is_gradient_then_update(activation, dtype, tol, labels):
    rng = np.random.default_rng(5)
    x = rng.random((20, 30))
    t = rng.integers(0, 4, 20)
    if labels == "rows":
        t = np.eye(4, dtype=dtype)[t]
    # Two hidden layers of one size: each layer's kept arrays must be its own.
    by_gradient = MultiLayerNet(30, [16, 16, 16], 4, activation=activation, dtype=dtype, seed=2)
    by_step = MultiLayerNet(30, [16, 16, 16], 4, activation=activation, dtype=dtype, seed=2)
    for _ in range(3):
        grads = by_gradient.gradient(x, t)
        for key, g in grads.items():
            by_gradient.params[key] -= 0.5 * g
        loss = by_step.train_step(x, t, 0.5)
        assert loss == pytest.approx(by_gradient.last_loss, rel=tol)
    for key, p in by_step.params.items():
        assert p.dtype == dtype
        assert relative(p, by_gradient.params[key]) <= tol, key
        # the Affine layers hold the same arrays the step updated in place
        assert p is by_step.layers[f"Affine{key[1:]}"].__dict__[key[0]]


def test_a_users_activation_gets_step_methods_that_agree(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[[layer]]\nname = "Bent"\nforward = "x if x > 0 else 0.1 * tanh(x)"\n\n'
        '[[layer]]\nname = "Swish2"\nforward = "x * sigmoid(beta * x)"\nconstants = { beta = 1.5 }\n\n'
        '[[layer]]\nname = "Wave"\nforward = "sin(x) + x / (1 + abs(x))"\n'
    )
    done = chainrule("generate", "--spec", spec, "--out", tmp_path / "pkg")
    assert done.returncode == 0, done.stderr
    package_layers, package_net = import_package(tmp_path / "pkg", ("layers", "multi_layer_net"))
    source = (tmp_path / "pkg" / "layers.py").read_text()
    for name in ("Bent", "Swish2", "Wave"):
        assert re.search(rf"class {name}\(StepBuffers\):", source)
        for dtype, tol in ((np.float64, 1e-14), (np.float32, 2e-6)):
            x, dout = inputs(dtype, seed=3)
            cls = getattr(package_layers, name)
            readable, step = cls(), cls()
            assert relative(step.step_forward(x), readable.forward(x)) <= tol, name
            assert relative(step.step_backward(dout), readable.backward(dout)) <= tol, name
    x, t = np.random.default_rng(0).random((8, 6)), np.arange(8) % 3
    by_step, by_gradient = (
        package_net.MultiLayerNet(6, [5, 5], 3, activation="swish2", seed=0) for _ in range(2)
    )
    for _ in range(3):
        by_step.train_step(x, t, 0.5)
        for key, g in by_gradient.gradient(x, t).items():
            by_gradient.params[key] -= 0.5 * g
    assert all(relative(by_step.params[k], by_gradient.params[k]) <= 1e-12 for k in by_step.params)


def test_a_branch_never_sees_the_other_side_so_an_unchosen_inf_is_no_nan(tmp_path):
    # x if x < 1 else 2 - 1/x is finite everywhere. Written as x * c + (2 - 1/x) * ~c, its step
    # gave 0 + (-inf) * 0 = NaN at x = 0, and one blank image (a row of zeros, with the biases
    # still 0) turned every parameter of a MultiLayerNet to NaN. Each branch now reads only its
    # own side of 1 (min(x, 1), max(x, 1)), so the step gives forward's 0 and backward's dout.
    spec = tmp_path / "spec.toml"
    spec.write_text('[[layer]]\nname = "Bend"\nforward = "x if x < 1 else 2 - 1/x"\n')
    done = chainrule("generate", "--spec", spec, "--out", tmp_path / "pkg")
    assert done.returncode == 0, done.stderr
    package_layers, package_net = import_package(tmp_path / "pkg", ("layers", "multi_layer_net"))
    source = (tmp_path / "pkg" / "layers.py").read_text()
    assert "np.minimum(x, 1, " in source and "np.maximum(x, 1, " in source
    x = np.array([0.0, -0.0, 1.0, 3.0, -1e308, 1e308, -5.0])
    step, readable = package_layers.Bend(), package_layers.Bend()
    with np.errstate(divide="ignore", over="ignore"):  # forward's np.where computes 2 - 1/x at 0 too
        assert np.array_equal(step.step_forward(x), readable.forward(x))
        assert np.array_equal(step.step_backward(np.ones_like(x)), readable.backward(np.ones_like(x)))
    net = package_net.MultiLayerNet(6, [5, 5], 3, activation="bend", seed=0)
    blank = np.zeros((4, 6))
    for _ in range(3):
        assert np.isfinite(net.train_step(blank, np.arange(4) % 3, 0.1))
    assert all(np.all(np.isfinite(p)) for p in net.params.values())


def test_verify_refuses_a_step_that_turns_an_unchosen_inf_into_nan(tmp_path, monkeypatch):
    # The same layer with its clamps taken out of the printed step: verify's training-step
    # check runs at 0, the kinks and the edges as well as on random inputs, and catches it.
    spec = tmp_path / "spec.toml"
    spec.write_text('[[layer]]\nname = "Bend"\nforward = "x if x < 1 else 2 - 1/x"\n')
    assert chainrule("generate", "--spec", spec, "--out", tmp_path / "pkg").returncode == 0
    source = (tmp_path / "pkg" / "layers.py").read_text()
    unclamped = source.replace("np.maximum(x, 1, ", "np.maximum(x, -np.inf, ").replace(
        "np.minimum(x, 1, ", "np.minimum(x, np.inf, "
    )
    assert unclamped != source
    lines: list[str] = []
    module = layers_package(tmp_path, monkeypatch, "brokenbend", unclamped)
    assert run(module, cat=catalog(read_specs(spec)), echo=lines.append) is False
    row = next(line for line in lines if line.startswith("Bend ") and " dx " not in line)
    assert row.split()[-1] == "FAIL"


@pytest.mark.parametrize("name", NAMES)
def test_an_output_fed_back_into_its_own_layer_is_read_before_it_is_overwritten(name):
    x, dout = inputs(np.float64, seed=7)
    readable, step = getattr(layers, name)(), getattr(layers, name)()
    with np.errstate(all="ignore"):
        twice = readable.forward(readable.forward(x))
        back_twice = readable.backward(readable.backward(dout))
        assert relative(step.step_forward(step.step_forward(x)), twice) <= 1e-14
        assert relative(step.step_backward(step.step_backward(dout)), back_twice) <= 1e-14


@pytest.mark.parametrize("name", NAMES)
def test_a_step_takes_what_forward_takes_integers_and_lists(name):
    readable, step = getattr(layers, name)(), getattr(layers, name)()
    ints = np.arange(-3, 4).reshape(1, 7)
    out = step.step_forward(ints)
    assert out.dtype == np.float64 and relative(out, np.asarray(readable.forward(ints), float)) <= 1e-15
    assert relative(step.step_forward([[0.5, -1.0]]), readable.forward(np.array([[0.5, -1.0]]))) <= 1e-15
    assert step.step_backward([[1.0, 2.0]]).dtype == np.float64


def test_label_rows_of_another_float_type_train_in_the_networks():
    rng = np.random.default_rng(4)
    x, t = rng.random((10, 12)), np.eye(3)[rng.integers(0, 3, 10)]  # float64 rows, a float32 network
    net = MultiLayerNet(12, [6], 3, activation="tanh", dtype=np.float32, seed=0)
    reference = MultiLayerNet(12, [6], 3, activation="tanh", dtype=np.float32, seed=0)
    loss = net.train_step(x.tolist(), t, 0.5)
    grads = reference.gradient(x, t)
    assert np.asarray(loss).dtype == np.float32 and loss == pytest.approx(reference.last_loss, rel=1e-6)
    for key, p in net.params.items():
        assert p.dtype == np.float32
        assert relative(p, reference.params[key] - np.float32(0.5) * grads[key]) <= 1e-6


def test_label_lists_train_as_gradient_takes_them():
    # gradient takes labels as a list; train_step read t.ndim and raised AttributeError.
    from chainrule.generated.two_layer_net import TwoLayerNet

    rng = np.random.default_rng(5)
    x, t = rng.random((6, 12)), rng.integers(0, 3, 6)
    for make in (lambda: MultiLayerNet(12, [5, 4], 3, seed=0), lambda: TwoLayerNet(12, 5, 3, seed=0)):
        for labels in (t.tolist(), np.eye(3)[t].tolist()):  # integer labels, label rows
            by_list, by_array = make(), make()
            assert by_list.train_step(x, labels, 0.5) == by_array.train_step(x, np.asarray(labels), 0.5)
            assert all(np.array_equal(by_list.params[k], by_array.params[k]) for k in by_list.params)


def test_each_branch_is_clamped_to_its_side_unless_it_is_not_finite_there():
    x, alpha = sp.Symbol("x", real=True), sp.Symbol("alpha")
    # LeakyReLU: both branches 0 at 0, so the select is a sum of the two clamped branches
    leaky = clamp_branches(sp.Piecewise((x, x > 0), (alpha * x, True)))
    assert leaky == sp.Max(x, 0) + alpha * sp.Min(x, 0)
    # 2 - 1/x is finite at the kink 1: each branch reads its own side of it
    bend = clamp_branches(sp.Piecewise((x, x < 1), (2 - 1 / x, True)))
    assert bend == sp.Piecewise((sp.Min(x, 1), x < 1), (2 - 1 / sp.Max(x, 1), True), evaluate=False)
    # x log x is NaN at its kink 0 (0 times -inf): no clamp makes it finite there, so np.where
    xlogx = clamp_branches(sp.Piecewise((x * sp.log(x), x > 0), (0, True)))
    assert isinstance(xlogx, Where) and pycode(xlogx) == "np.where(x > 0, x*np.log(x), 0)"
    # a condition that is not a variable against a number: np.where as well
    assert isinstance(clamp_branches(sp.Piecewise((1 / x, sp.Abs(x) > 1), (x, True))), Where)


@pytest.mark.parametrize(
    "formula, name", [("x*log(x) if x > 0 else 0", "Xlogx"), ("1/x if abs(x) > 1 else x", "Flip")]
)
def test_a_spec_whose_branch_is_singular_at_its_kink_still_generates_and_agrees(tmp_path, formula, name):
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[[layer]]\nname = "{name}"\nforward = "{formula}"\n')
    done = chainrule("generate", "--spec", spec, "--out", tmp_path / "pkg")
    assert done.returncode == 0, done.stderr
    (package_layers,) = import_package(tmp_path / "pkg", ("layers",))
    x = np.array([-3.0, -1.0, -0.5, 0.0, 1e-300, 0.5, 1.0, 2.0, 1e300])
    step, readable = getattr(package_layers, name)(), getattr(package_layers, name)()
    with np.errstate(all="ignore"):
        want = (readable.forward(x), readable.backward(np.ones_like(x)))
        got = (step.step_forward(x).copy(), step.step_backward(np.ones_like(x)))
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(np.isfinite(g), np.isfinite(w))
        assert relative(g[np.isfinite(w)], w[np.isfinite(w)]) <= 1e-15


def test_a_clamped_select_that_sympy_cannot_prove_stays_np_where(monkeypatch):
    import chainrule.codegen.buffered as buffered

    x = sp.Symbol("x", real=True)
    select = sp.Piecewise((x, x < 1), (2 - 1 / x, True))
    proofs = []
    monkeypatch.setattr(buffered, "prove", lambda a, b, split: proofs.append((a, b)) or False)
    assert isinstance(clamp_branches(select), Where) and len(proofs) == 1
    # the proof was asked on both sides of the kink: x written as 1 + y
    ((rewritten, original),) = proofs
    assert x not in original.free_symbols and len(original.free_symbols) == 1
