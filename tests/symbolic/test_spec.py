"""Your own layer: specs parsed safely, derived, generated, verified, trained; bad specs refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from chainrule import symbolic
from chainrule.packages.specfile import read_specs
from chainrule.symbolic.core import prove
from chainrule.symbolic.from_spec import derive_spec
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import Spec, SpecError, parse_formula
from tests.helpers import chainrule

x = sp.Symbol("x", real=True)
out = sp.Symbol("out", real=True)
dout = sp.Symbol("dout", real=True)


def shipped(name: str):
    return derive_spec(next(s for s in SHIPPED if s.name == name))


# --- what the engine derives -----------------------------------------------------------------


def test_tanh_and_softplus_are_written_in_their_output():
    tanh = shipped("Tanh")
    assert tanh.cached == "out"
    assert (tanh.derivation.backward[0].expr - dout * (1 - out**2)).equals(0)
    softplus = shipped("Softplus")
    assert softplus.cached == "out"
    # The code computes -expm1(-y), which is 1 - exp(-y) without its cancellation for small y.
    assert (softplus.derivation.backward[0].expr.rewrite(sp.exp) - dout * (1 - sp.exp(-out))).equals(0)


def test_spec_sigmoid_derivative_comes_from_differentiating_its_exp_form():
    from chainrule.symbolic import activations
    from chainrule.symbolic.spec import sigmoid

    assert (activations.sigmoid_local_in_output() - out * (1 - out)).expand() == 0
    s = sigmoid(x)
    assert (sp.diff(s, x) - s * (1 - s)).expand() == 0
    exp_form = 1 / (1 + sp.exp(-x))
    assert sp.simplify(sp.diff(s, x).rewrite(sp.exp) - sp.diff(exp_form, x)) == 0


def test_spec_sigmoid_derivative_follows_the_derivation(monkeypatch):
    from chainrule.symbolic import spec as spec_module

    monkeypatch.setattr(spec_module, "sigmoid_local_in_output", lambda: 2 * out)
    s = spec_module.sigmoid(x)
    assert sp.diff(s, x) == 2 * s


def test_spec_loss_divides_by_the_mean_nodes_local_derivative(monkeypatch):
    from chainrule.symbolic import from_spec

    y, t = sp.Symbol("y", real=True), sp.Symbol("t", real=True)
    n = sp.Symbol("batch_size", integer=True, positive=True)
    mse = shipped("MeanSquaredError").derivation.backward[0].expr
    assert (mse - dout * (y - t) / n).expand() == 0
    real = from_spec.mean_node
    monkeypatch.setattr(from_spec, "mean_node", lambda count: (*real(count)[:1], 3 / count, *real(count)[2:]))
    tripled = shipped("MeanSquaredError").derivation.backward[0].expr
    assert (tripled - 3 * dout * (y - t) / n).expand() == 0


def test_layers_whose_derivative_needs_the_input_cache_it():
    for name in ("LeakyReLU", "ELU", "SiLU", "GELU"):
        assert shipped(name).cached == "x", name
    leaky = shipped("LeakyReLU").derivation.backward[0].expr
    alpha = sp.Symbol("alpha", real=True)
    assert leaky.subs({x: 2, dout: 3}) == 3 and leaky.subs({x: -2, dout: 3}) == 3 * alpha


def test_safe_forms_are_proved_equal_and_exp_branches_are_clamped():
    softplus = shipped("Softplus").derivation
    identity, *more_accurate = softplus.identities
    assert prove(identity.lhs, identity.rhs, split=x)
    assert [i.reason.split(":")[0] for i in more_accurate] == [
        "the forward computed",
        "the backward computed",
    ]
    elu = shipped("ELU").derivation
    computed = elu.compute[0].expr.rewrite(sp.exp)  # expm1(u) as exp(u) - 1, for an exact comparison
    assert computed.has(sp.Min(x, 0))  # exp only ever sees min(x, 0)
    for v in (-3, -0.5, 0, 0.5, 3):
        assert (
            sp.N(
                computed.subs({x: v, sp.Symbol("alpha", real=True): 1})
                - elu.forward[0].rhs[0].subs({x: v, sp.Symbol("alpha", real=True): 1})
            )
            == 0
        )


def test_gelu_matches_central_differences():
    from chainrule.generated.layers import GELU

    layer = GELU()
    v = np.linspace(-4, 4, 41)
    layer.forward(v)
    grad = layer.backward(np.ones_like(v))
    h = 1e-6
    numeric = (GELU().forward(v + h) - GELU().forward(v - h)) / (2 * h)
    assert np.max(np.abs(grad - numeric)) < 1e-7


def test_shipped_layers_are_numerically_safe():
    import warnings

    from chainrule.generated import layers

    extreme = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in (layers.Tanh, layers.LeakyReLU, layers.ELU, layers.Softplus, layers.SiLU, layers.GELU):
            layer = cls()
            y = layer.forward(extreme)
            dx = layer.backward(np.ones_like(extreme))
            assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), cls.__name__
    assert layers.Softplus().forward(np.array([1000.0]))[0] == 1000.0


def test_every_shipped_layer_has_its_derivation_document():
    from chainrule.codegen.document import document

    for spec in SHIPPED:
        text = document([symbolic.derive(spec.key)], "latex")
        assert text.startswith(rf"\section*{{{spec.name}}}") and r"\boxed{" in text


# --- parsing without eval ----------------------------------------------------------------------


def test_formula_is_built_from_the_syntax_tree():
    spec = Spec("T", "x")
    assert parse_formula("x if x > 0 else 0.5 * x", {"x": x}, spec) == sp.Piecewise(
        (x, x > 0), (sp.Rational(1, 2) * x, True)
    )
    assert parse_formula("max(x, 0) + log1p(exp(-abs(x)))", {"x": x}, spec) == sp.Max(x, 0) + sp.log(
        1 + sp.exp(-sp.Abs(x))
    )


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("x + z", "unknown symbol 'z' in 'x + z'; it may use x (element by element)"),
        ("floor(x)", "unknown function 'floor'"),
        ("x.__class__", "'x.__class__' is not allowed in a formula"),
        (
            "__import__('os').system('true')",
            "\"__import__('os').system('true')\" is not allowed in a formula",
        ),
        ("__import__('os')", "unknown function '__import__'"),
        ("lambda: x", "'lambda: x' is not allowed in a formula"),
        ("x +", "cannot parse 'x +'"),
        ("x > 0", "'x > 0' is a condition, not a value"),
        ("3.0", "'3.0' does not depend on x"),
        ("exp(x, 2)", "exp() takes 1 argument"),
        ("sum(x)", "unknown function 'sum'"),
        ("[x, x]", "'[x, x]' is not allowed in a formula"),
    ],
)
def test_bad_formulas_are_refused_with_their_reason(forward, message):
    with pytest.raises(SpecError) as err:
        derive_spec(Spec("Bad", forward, where="my.toml:3"))
    assert str(err.value).startswith("my.toml:3: Bad: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Spec("class", "x"), "'class' is not a valid class name"),
        (Spec("Relu", "x"), "Relu: the name is already taken"),
        (Spec("Two Words", "x"), "'Two Words' is not a valid class name"),
        (Spec("A", "alpha * x", constants=(("lambda", 1.0),)), "'lambda' cannot name a constant"),
        (Spec("A", "x", constants=(("x", 1.0),)), "'x' cannot name a constant"),
        (Spec("A", "k * x", constants=(("k", "big"),)), "constant k must be a finite number"),
        (Spec("A", "x", kind="metric"), "kind must be 'activation' or 'loss'"),
        (Spec("A", "x", safe="x + 1"), "cannot prove the safe form 'x + 1' equal to 'x'"),
        (Spec("L", "t * 2", kind="loss"), "'t * 2' does not depend on y"),
    ],
)
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(SpecError, match=None) as err:
        derive_spec(spec)
    assert message in str(err.value)


# --- spec files and the command line -----------------------------------------------------------

SWISH = """# my activation
[[layer]]
name = "Swish"
forward = "x * sigmoid(beta * x)"
constants = { beta = 1.5 }
init = "he"
"""


def offline(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CHAINRULE_OFFLINE": "1", "CHAINRULE_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.slow
def test_spec_file_to_a_verified_package_that_trains(tmp_path):
    spec = tmp_path / "my_layers.toml"
    spec.write_text(SWISH)
    package = tmp_path / "pkg" / "mylayers"
    package.parent.mkdir()
    r = chainrule("generate", "--spec", str(spec), "--out", str(package))
    assert r.returncode == 0, r.stderr
    assert "Swish                      dx" in r.stderr and "all checks pass" in r.stderr
    code = f"""
import sys; sys.path.insert(0, {str(package.parent)!r})
import numpy as np
from chainrule.mnist import load_mnist
from mylayers.layers import Swish
from mylayers.train_neuralnet import train
assert Swish().beta == 1.5
(xt, tt), (xs, ts) = load_mnist(one_hot_label=True, announce=None)
net, h = train(xt, tt, xs, ts, iters_num=300, hidden_size=[50], activation="swish", on_epoch=lambda *a: None)
print(h.test_acc_list[0], h.test_acc_list[-1])
"""
    trained = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=offline(tmp_path)
    )
    assert trained.returncode == 0, trained.stderr
    first, last = map(float, trained.stdout.split())
    assert first < 0.3 and last > 0.8
    v = chainrule("verify", "--spec", str(spec), "--package", str(package))
    assert v.returncode == 0 and v.stdout.rstrip().endswith("all checks pass")
    d = chainrule("derive", "--spec", str(spec), "swish", "--format", "markdown")
    assert d.returncode == 0 and d.stdout.startswith("## Swish")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[layer]]\nname = 'Bad'\nforward = 'x + q'\n", "my.toml:1: Bad: unknown symbol 'q'"),
        ("[[layer]]\nname = 'if'\nforward = 'x'\n", "my.toml:1: 'if' is not a valid class name"),
        ("[[layer]]\nname = 'Tanh'\nforward = 'x'\n", "my.toml:1: Tanh: the name is already taken"),
        ("[[layer]]\nname = 'A'\nforwrd = 'x'\n", "my.toml:1: unknown key 'forwrd'"),
        ("[[layer]]\nname = 'A'\n", "my.toml:1: every layer needs a forward (a string)"),
        ("[layer\n", "my.toml: invalid TOML"),
        ("title = 'x'\n", "my.toml: unknown top-level key 'title'"),
        (
            "\n\n[[layer]]\nname = 'A'\nforward = 'x'\n[[layer]]\nname = 'A'\nforward = 'x'\n",
            "my.toml:6: A: the name is already taken",
        ),
    ],
)
def test_bad_spec_files_write_nothing(tmp_path, text, message):
    spec = tmp_path / "my.toml"
    spec.write_text(text)
    package = tmp_path / "out"
    r = chainrule("generate", "--spec", "my.toml", "--out", str(package), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"chainrule: error: {message}")
    assert not package.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.toml"]


def test_spec_needs_an_out_folder_and_a_readable_file(tmp_path):
    r = chainrule("generate", "--spec", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "cannot read" in r.stderr and "No such file" in r.stderr
    spec = tmp_path / "s.toml"
    spec.write_text(SWISH)
    r = chainrule("generate", "--spec", str(spec))
    assert r.returncode == 2 and "--out DIR" in r.stderr


def test_read_specs_gives_lines_and_constants(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SWISH)
    (spec,) = read_specs(path)
    assert spec.name == "Swish" and spec.constants == (("beta", 1.5),) and spec.init == "he"
    assert spec.where == f"{path}:2"


# --- MultiLayerNet with every activation ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "activation", ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "softplus", "silu", "gelu"]
)
def test_multilayernet_learns_the_sample_with_each_activation(activation):
    from chainrule import mnist
    from chainrule.generated.train_neuralnet import train

    source = mnist.MnistSource("sample", mnist.SAMPLE_PATH, 4000, 1000)
    (xt, tt), (xs, ts) = mnist.load_mnist(one_hot_label=True, announce=None, source=source)
    net, history = train(
        xt, tt, xs, ts, iters_num=1200, hidden_size=[100], activation=activation, on_epoch=lambda *a: None
    )
    assert history.test_acc_list[-1] >= 0.85, history.test_acc_list[-1]


def test_multilayernet_initialisation_follows_the_activation():
    from chainrule.generated.multi_layer_net import MultiLayerNet

    relu = MultiLayerNet(400, [300, 200], 10, activation="relu", seed=0)
    tanh = MultiLayerNet(400, [300, 200], 10, activation="tanh", seed=0)
    assert np.std(relu.params["W1"]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.std(tanh.params["W1"]) == pytest.approx(np.sqrt(1 / 400), rel=0.02)
    assert np.std(tanh.params["W2"]) == pytest.approx(np.sqrt(1 / 300), rel=0.03)
    assert list(relu.layers) == ["Affine1", "Activation1", "Affine2", "Activation2", "Affine3"]
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        MultiLayerNet(4, [3], 2, activation="nope")


def test_train_command_with_hidden_layers_and_an_activation(tmp_path):
    r = chainrule(
        "train", "--hidden", "60", "40", "--activation", "tanh", "--iters", "200", "--out", str(tmp_path / "r"),
        env=offline(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "MultiLayerNet(784, [60, 40], 10, activation='tanh')" in r.stderr
    with np.load(tmp_path / "r" / "params.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    bad = chainrule("train", "--activation", "swishy", "--out", str(tmp_path / "x"), env=offline(tmp_path))
    assert bad.returncode == 2 and "unknown activation 'swishy'" in bad.stderr


# --- real-valued or refused; kinks; forms that need the printer's powers -----------------------

ACTIVATIONS = {
    "Softsign": "x/(1+abs(x))",
    "TwoTanh": "2*tanh(x)",
    "HalfTanh": "tanh(x)/2",
    "MaxZero": "max(x, 0)",
    "MinOne": "min(x, 1)",
    "Mish": "x*tanh(log(1+exp(x)))",
    "Bent": "where(x > 1, 2*x - 1, x)",
    "Clip": "x if x < 2 else 2",
}
# Mish's derivative exp(x)/(1 + exp(x)) is NaN past x = 709.78: a Mish is generated with a safe form
# (Sech, whose sinh/cosh^2 is NaN there too, is refused: tests/checks/test_truth.py).
SAFE = {"Mish": "x * tanh(max(x, 0) + log(1 + exp(-abs(x))))"}


@pytest.mark.slow
def test_softsign_sech_scaled_tanh_max_min_mish_and_branches_generate_and_verify(tmp_path):
    spec = tmp_path / "acts.toml"
    spec.write_text(
        "".join(
            f'[[layer]]\nname = "{n}"\nforward = "{f}"\n'
            + (f'safe = "{SAFE[n]}"\n' if n in SAFE else "")
            + "\n"
            for n, f in ACTIVATIONS.items()
        )
    )
    package = tmp_path / "acts"
    r = chainrule("generate", "--spec", str(spec), "--out", str(package))
    assert r.returncode == 0, r.stderr
    source = (package / "layers.py").read_text()
    assert "Heaviside" not in source and "np.where(self.x < 1, dout, 0)" in source
    v = chainrule("verify", "--spec", str(spec), "--package", str(package))
    assert v.returncode == 0, v.stdout
    rows = {line.split()[0]: line.split() for line in v.stdout.splitlines() if line.split()[1:2] == ["dx"]}
    for name in ACTIVATIONS:
        _, _, gen_sym, gen_num, sym_num, verdict = rows[name]
        assert float(gen_sym) <= 1e-12 and float(gen_num) <= 1e-6 and float(sym_num) <= 1e-6, rows[name]
        assert verdict == "pass"
    assert v.stdout.rstrip().endswith("all checks pass")


def test_a_forward_that_is_not_real_is_refused_and_nothing_written(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('# comment\n[[layer]]\nname = "Bad"\nforward = "log(-1)*x"\n')
    r = chainrule("generate", "--spec", "bad.toml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        "chainrule: error: bad.toml:2: Bad: 'log(-1)*x' is not real at x = 0.001; "
        "an activation is real for every real x"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_cached_output_forms_are_real_at_both_signs_and_large_inputs():
    two = derive_spec(Spec("TwoTanh", "2*tanh(x)"))
    assert two.cached == "out"
    assert (two.derivation.backward[0].expr - dout * (2 - out**2 / 2)).equals(0)  # 2 (1 - tanh^2)
    half = derive_spec(Spec("HalfTanh", "tanh(x)/2"))
    assert half.cached == "out"
    assert (half.derivation.backward[0].expr - dout * (sp.Rational(1, 2) - 2 * out**2)).equals(0)
    for d in (two, half):
        assert not d.derivation.backward[0].expr.has(sp.log, sp.I)
    # sech(x) is even: the output cannot tell the derivative's sign, so x is cached.
    assert derive_spec(Spec("Sech", "1/cosh(x)")).cached == "x"


def test_max_and_min_take_zero_derivative_at_their_kink_and_say_so():
    relu = derive_spec(Spec("MaxZero", "max(x, 0)")).derivation
    grad = relu.backward[0].expr
    values = {s.name: s for s in grad.free_symbols}
    cached = values.get("out", values.get("x"))
    assert grad.subs({cached: 0, dout: 3}) == 0 and grad.subs({cached: 2, dout: 3}) == 3
    assert any("kink" in step.reason for step in relu.steps)
    low = derive_spec(Spec("MinOne", "min(x, 1)")).derivation.backward[0].expr
    assert (
        low.subs({x: 1, dout: 3}) == 0 and low.subs({x: 0.5, dout: 3}) == 3 and low.subs({x: 2, dout: 3}) == 0
    )
