"""``chainrule verify`` passes on the generated layers and catches a wrong backward, a misprint, a complex value."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest

from chainrule.checks.gradients import TOL_NUMERIC, TOL_SYMBOLIC, rel_error, run
from chainrule.checks.reference import reference_value
from tests.helpers import chainrule, layers_package

ROOT = Path(__file__).resolve().parents[2]


def test_verify_passes_with_the_chapter_tolerances():
    lines: list[str] = []
    assert run(echo=lines.append) is True
    rows = [
        line.split()
        for line in lines
        if line.startswith(("MulLayer", "AddLayer", "Relu", "Sigmoid", "Affine"))
    ]
    grads = [r for r in rows if len(r) == 6 and r[1].startswith("d")]
    assert len(grads) == 9  # Mul dx dy, Add dx dy, Relu dx, Sigmoid dx, Affine dW db dx
    for _, _, gen_sym, gen_num, sym_num, result in grads:
        assert (
            float(gen_sym) <= TOL_SYMBOLIC and float(gen_num) <= TOL_NUMERIC and float(sym_num) <= TOL_NUMERIC
        )
        assert result == "pass"
    assert lines[-1] == "all checks pass"


def test_verify_catches_a_wrong_backward(tmp_path, monkeypatch):
    source = (ROOT / "generated" / "layers.py").read_text()
    wrong = source.replace("dx = dout * self.out * (1 - self.out)", "dx = dout * self.out")
    assert wrong != source
    lines: list[str] = []
    assert run(layers_package(tmp_path, monkeypatch, "brokenpkg", wrong), echo=lines.append) is False
    sigmoid = next(line for line in lines if line.startswith("Sigmoid ") and " dx " in line)
    assert sigmoid.endswith("FAIL")
    # and its training step, printed from the derivation, no longer agrees with the broken backward
    hygiene = next(line for line in lines if line.startswith("Sigmoid ") and " dx " not in line)
    assert hygiene.split()[-1] == "FAIL"
    assert lines[-1] == "2 checks FAILED"


def test_verify_catches_a_training_step_that_differs(tmp_path, monkeypatch):
    source = (ROOT / "generated" / "layers.py").read_text()
    silu = source.index("class SiLU(")
    wrong = source[:silu] + source[silu:].replace("dx += 1\n", "dx += 1.001\n", 1)
    assert wrong != source
    lines: list[str] = []
    assert run(layers_package(tmp_path, monkeypatch, "steppkg", wrong), echo=lines.append) is False
    header = next(line for line in lines if line.startswith("hygiene "))
    silu_row = next(line for line in lines if line.startswith("SiLU ") and " dx " not in line)
    # the readable backward still agrees with the derivation; only the training step's column fails
    assert header.endswith("training step agrees") and silu_row.split()[-1] == "FAIL"
    assert silu_row.split()[1:-1] == ["pass"] * 6
    assert lines[-1] == "1 checks FAILED"


def test_verify_command_exit_status():
    r = chainrule("verify", cwd=ROOT)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("all checks pass")


def test_gradient_check_on_the_mnist_sample(capsys):
    """The chapter's gradient_check.py on the shipped sample, as ``chainrule gradcheck`` runs it."""
    from chainrule.generated.gradient_check import main
    from chainrule.mnist import SAMPLE_PATH, MnistSource, load_mnist

    sample = MnistSource("sample", SAMPLE_PATH, 4000, 1000)
    (x_train, t_train), _ = load_mnist(one_hot_label=True, dtype=np.float64, source=sample, announce=None)
    main(x_train, t_train)
    values = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert sorted(values) == ["W1", "W2", "b1", "b2"]
    assert all(0 <= float(v) <= 1e-6 for v in values.values()), values


# --- an independent reference: printer bugs, complex and non-finite values, kinks ------------


def _row(lines: list[str], layer: str, grad: str = "dx") -> tuple[float, float, float, str]:
    row = next(line.split() for line in lines if line.startswith(f"{layer} ") and f" {grad} " in line)
    return float(row[-4]), float(row[-3]), float(row[-2]), row[-1]


def test_a_misprinted_power_is_caught_by_the_generated_vs_reference_column(tmp_path, monkeypatch):
    from chainrule.codegen import numpy_printer
    from chainrule.codegen.generate import render_all
    from chainrule.codegen.model import catalog
    from chainrule.symbolic.spec import Spec

    specs = (Spec("Sech", "1/cosh(x)", where="sech.toml:1"),)
    original = numpy_printer.NumpyPrinter._print_Pow

    def misprint(self, expr, rational=False):
        if expr.exp == 2:  # the old bug: a square as a bare product, a/b**2 -> a/b * b
            b = self.parenthesize(expr.base, 60)
            return f"{b} * {b}"
        return original(self, expr, rational)

    monkeypatch.setattr(numpy_printer.NumpyPrinter, "_print_Pow", misprint)
    source = render_all(specs)["layers.py"]
    monkeypatch.setattr(numpy_printer.NumpyPrinter, "_print_Pow", original)
    assert "/ np.cosh(self.x) * np.cosh(self.x)" in source.replace("/np.", "/ np.")
    lines: list[str] = []
    assert (
        run(
            layers_package(tmp_path, monkeypatch, "misprinted", source), echo=lines.append, cat=catalog(specs)
        )
        is False
    )
    gen_sym, gen_num, sym_num, verdict = _row(lines, "Sech")
    assert gen_sym > 0.1 and gen_num > 0.1 and sym_num <= TOL_NUMERIC and verdict == "FAIL"


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")
def test_complex_and_non_finite_gradients_fail(tmp_path, monkeypatch):
    source = (ROOT / "generated" / "layers.py").read_text()
    wrong = source.replace("dx = dout * (1 - self.out**2)", "dx = dout * (1 - self.out**2) + 1e-3j")
    wrong = wrong.replace(
        "dx = dout * self.out * (1 - self.out)",
        "dx = dout * self.out * (1 - self.out) * np.sqrt(self.out - 0.5)",
    )
    assert wrong.count("1e-3j") == 1 and wrong.count("np.sqrt(self.out - 0.5)") == 1
    lines: list[str] = []
    assert run(layers_package(tmp_path, monkeypatch, "complexpkg", wrong), echo=lines.append) is False
    for layer in ("Tanh", "Sigmoid"):
        gen_sym, gen_num, sym_num, verdict = _row(lines, layer)
        assert math.isinf(gen_sym) and math.isinf(gen_num) and sym_num <= TOL_NUMERIC and verdict == "FAIL"
    assert {line.split()[0] for line in lines[:-1] if "FAIL" in line} == {"Tanh", "Sigmoid"}


def test_rel_error_rejects_imaginary_parts_and_non_finite_values():
    assert rel_error(np.array([1.0 + 1e-3j]), np.array([1.0])) == math.inf
    assert rel_error(np.array([np.nan, 1.0]), np.array([1.0, 1.0])) == math.inf
    assert rel_error(np.array([np.inf]), np.array([np.inf])) == math.inf
    assert rel_error(np.array([2.0 + 0j]), np.array([1.0])) == 0.5


def test_relu_mask_convention_is_checked_at_the_kink(tmp_path, monkeypatch):
    source = (ROOT / "generated" / "layers.py").read_text()
    wrong = source.replace("self.mask = x <= 0", "self.mask = x < 0")
    assert wrong != source
    lines: list[str] = []
    assert run(layers_package(tmp_path, monkeypatch, "maskpkg", wrong), echo=lines.append) is False
    gen_sym, gen_num, sym_num, verdict = _row(lines, "Relu")
    # Away from 0 both masks agree with central differences; at x = 0 the derivation says 0.
    assert gen_sym == 1.0 and gen_num <= TOL_NUMERIC and verdict == "FAIL"
    # The training step, printed from the derivation, keeps x <= 0: at 0 it no longer agrees.
    hygiene = next(line for line in lines if line.startswith("Relu ") and " dx " not in line)
    assert hygiene.split()[-1] == "FAIL"
    assert lines[-1] == "2 checks FAILED"


def test_reference_value_of_matrix_gradients_and_labels():
    from chainrule.codegen.model import catalog

    derivations = {d.name: d for d in catalog().derivations}
    rng = np.random.default_rng(1)
    dout, w = rng.normal(size=(2, 3)), rng.normal(size=(6, 3))
    x = rng.normal(size=(2, 6))
    affine = derivations["affine"]
    env = {"dout": dout, "W": w, "x": x, "N": 2}
    assert np.allclose(reference_value(affine.gradient("dx").expr, env), dout @ w.T, rtol=1e-15, atol=0)
    assert np.allclose(reference_value(affine.gradient("dW").expr, env), x.T @ dout, rtol=1e-15, atol=0)
    assert np.allclose(reference_value(affine.gradient("db").expr, env), dout.sum(axis=0), rtol=1e-15, atol=0)
    softmax = derivations["softmax_with_loss"]
    y, labels = rng.uniform(0.1, 0.9, size=(4, 5)), np.array([0, 3, 4, 3])
    (dx,) = softmax.variants[0][1]
    env = {"y": y, "t": labels, "dout": 0.5, "batch_size": 4, "n_classes": 5}
    expected = 0.5 * (y - np.eye(5)[labels]) / 4  # the textbook's (y - t) / N, typed here
    assert np.allclose(reference_value(dx.expr, env), expected, rtol=1e-15, atol=1e-17)


def test_verify_package_names_each_layer_that_fails_a_check(tmp_path, monkeypatch):
    """From the checks themselves: a failed hygiene check in a middle column (its row ends in pass) counts."""

    from chainrule.checks import gradients
    from chainrule.codegen.generate import GenerateError

    grads = [gradients.GradientCheck("Tanh", "dx", 0.0, 0.0, 0.0)]
    hygiene = [
        gradients.HygieneCheck(label, name, ok=(label, name) != ("Sech", "zero in, zero out"))
        for label in ("Tanh", "Sech")
        for name in ("zero in, zero out", "finite at the edges")
    ]
    monkeypatch.setattr(
        gradients, "import_package", lambda *a, **k: (importlib.import_module("chainrule.generated.layers"),)
    )
    monkeypatch.setattr(gradients, "results", lambda *a, **k: (grads, hygiene))
    monkeypatch.setattr(gradients, "first_overflow", lambda *a: None)
    lines: list[str] = []
    with pytest.raises(GenerateError) as failed:
        gradients.verify_package(tmp_path, (), echo=lines.append)
    assert str(failed.value) == "verify failed for Sech: nothing was written"
    assert [line.split() for line in lines if line.startswith("Sech ")] == [["Sech", "FAIL", "pass"]]
