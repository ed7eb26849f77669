"""``chainrule verify --accuracy`` measures float64 error in ulps, and the generator picks accurate forms."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1

from chainrule import symbolic
from chainrule.checks.accuracy import EXCEPTIONS, TARGET_ULPS, activation_row, grid
from chainrule.codegen.model import catalog
from chainrule.packages.marker import mark_package
from chainrule.symbolic.exact import reference
from chainrule.symbolic.rewrite import more_accurate
from chainrule.symbolic.spec import sigmoid
from tests.helpers import chainrule

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = (
    "sigmoid (kernel)",
    "softmax (kernel)",
    "log_softmax (kernel)",
    "cross_entropy_error (kernel)",
    "Relu",
    "Sigmoid",
    "Tanh",
    "LeakyReLU",
    "ELU",
    "Softplus",
    "SiLU",
    "GELU",
    "MeanSquaredError",
)
# Each activation's training step (step_forward, step_backward) has a row of its own.
STEPS = tuple(f"{name} (training step)" for name in FUNCTIONS[4:12])


def _accuracy(*args: str) -> subprocess.CompletedProcess[str]:
    return chainrule("verify", "--accuracy", "--points", "25", *args, cwd=ROOT)


def _rows(stdout: str) -> dict[str, list[str]]:
    rows = {}
    for line in stdout.splitlines():
        for name in (*FUNCTIONS, *STEPS):
            if line.startswith(name + " ") and line.split()[-1] in ("pass", "FAIL", "exception"):
                cells = line[len(name) :].split()
                if cells[0] != "(training":  # not a longer name that starts with this one
                    rows[name] = cells
    return rows


def test_cli_prints_a_row_per_function_and_exits_0():
    done = _accuracy()
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(done.stdout)
    assert sorted(rows) == sorted(FUNCTIONS + STEPS)
    for name, cells in rows.items():
        forward = float(cells[0])
        if name.removesuffix(" (training step)") not in EXCEPTIONS:
            assert cells[-1] == "pass" and forward <= TARGET_ULPS, name
    # The chapter's Relu is exact; the kernels have no backward column.
    assert rows["Relu"][0] == "0" and rows["sigmoid (kernel)"][2] == "-"
    assert "105 points" in done.stdout and done.stdout.rstrip().splitlines()[-1].startswith("every function")


def test_cli_fails_on_a_package_whose_elu_lost_its_expm1(tmp_path):
    source = (ROOT / "generated" / "layers.py").read_text()
    inaccurate = source.replace("np.expm1(np.minimum(x, 0))", "(np.exp(np.minimum(x, 0)) - 1)")
    assert inaccurate != source
    package = tmp_path / "inaccurate"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(inaccurate)
    mark_package(package, ["__init__.py", "layers.py"])  # sealed, as if generated so
    done = _accuracy("--package", str(package))
    assert done.returncode == 1
    elu = _rows(done.stdout)["ELU"]
    assert elu[-1] == "FAIL" and float(elu[0]) > 1e6  # exp(x) - 1 keeps no digit of x near 0
    assert _rows(done.stdout)["ELU (training step)"][-1] == "pass"  # its own expm1, untouched
    assert "1 functions miss the target: ELU" in done.stdout


def test_an_inaccurate_elu_measures_many_ulps_near_zero():
    class Elu:
        """ELU as exp(x) - 1: equal on paper, not in float64."""

        def forward(self, x: np.ndarray) -> np.ndarray:
            self.x = x
            return np.where(x > 0, x, np.exp(np.minimum(x, 0)) - 1)

        def backward(self, dout: np.ndarray) -> np.ndarray:
            return np.where(self.x > 0, dout, dout * np.exp(np.minimum(self.x, 0)))

    class Module:
        ELU = Elu

    cat = catalog()
    index = [s.cls for s in cat.layers].index("ELU")
    xs = grid(20)
    row = activation_row(Module, cat.layers[index], cat.derivations[index], xs)
    assert row.forward.ulps > 1e6 and -1e-6 < row.forward.at < 0
    assert row.result == "FAIL"
    from chainrule.generated import layers

    generated = activation_row(layers, cat.layers[index], cat.derivations[index], xs)
    assert generated.forward.ulps <= TARGET_ULPS and generated.backward.ulps <= TARGET_ULPS


def test_the_reference_adds_digits_where_the_formula_cancels():
    # GELU's 1 + tanh(u) at x = -20: 50 digits give 0; the true value is about -1e-270.
    x = sp.Symbol("x", real=True)
    u = sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 10**6) * x**3)
    f = sp.lambdify(x, x / 2 * (1 + sp.tanh(u)), modules="mpmath")
    with mpmath.workdps(50):
        assert f(mpmath.mpf(-20)) == 0
    value = reference(f, -20.0)
    with mpmath.workdps(60):
        expected = -20 / (1 + mpmath.exp(-2 * u.subs(x, -20).evalf(60)))
    assert value != 0 and abs(value - expected) <= abs(expected) * 1e-40


def test_the_generator_keeps_a_rewrite_only_when_proved_and_more_accurate():
    x, alpha = sp.Symbol("x", real=True), sp.Symbol("alpha", real=True)
    choice = more_accurate(alpha * (sp.exp(x) - 1), x, {alpha: 1.0}, what="forward")
    assert choice.expr == alpha * expm1(x)
    assert choice.identity is not None and choice.identity.holds()
    assert choice.before[0] > 1e6 and choice.after[0] <= 1
    # tanh(x) has nothing to rewrite, and sigmoid(x) + 1 no form that measures better.
    assert more_accurate(sp.tanh(x), x, {}).expr == sp.tanh(x)
    assert more_accurate(sigmoid(x) + 1, x, {}).identity is None


def test_shipped_layers_show_their_accurate_forms_as_proved_identities():
    gelu = symbolic.derive("gelu")
    (forward,) = (i for i in gelu.identities if i.reason.startswith("the forward computed"))
    assert forward.lhs.has(sigmoid) and not forward.lhs.has(sp.tanh) and forward.rhs.has(sp.tanh)
    assert forward.holds()
    silu = symbolic.derive("silu").backward[0].expr
    x = sp.Symbol("x", real=True)
    assert silu.has(sigmoid(-x))
    # The chapter's Sigmoid keeps its y(1 - y), whatever that costs far from 0.
    out, dout = sp.Symbol("out", real=True), sp.Symbol("dout", real=True)
    assert symbolic.derive("sigmoid").backward[0].expr == dout * out * (1 - out)


def test_the_grid_spans_both_signs_and_zero():
    # the log-spaced grid from 1e-12 to 700, then the edges of float64
    xs = grid(3)
    assert xs.tolist() == sorted(xs.tolist()) and len(xs) == 7 + 54 and 0.0 in xs.tolist()
    assert (
        sum(math.isclose(abs(v), 700.0) for v in xs) == 2
        and sum(math.isclose(abs(v), 1e-12) for v in xs) == 2
    )
    assert xs[0] == -np.finfo(np.float64).max and xs[-1] == np.finfo(np.float64).max


def test_the_reference_takes_the_slope_at_a_max_kink_as_0_as_the_chapters_relu():
    from types import SimpleNamespace

    from chainrule.symbolic.spec import Spec

    class Clipped:  # max(x, 0) written by hand with the chapter's mask x <= 0
        def forward(self, x):
            self.mask = x <= 0
            return np.maximum(x, 0.0)

        def backward(self, dout):
            return np.where(self.mask, 0.0, dout)

    cat = catalog((Spec("Clipped", "max(x, 0)"),))
    row = activation_row(SimpleNamespace(Clipped=Clipped), cat.layers[-1], cat.derivations[-1], grid(5))
    assert (row.forward.ulps, row.backward.ulps) == (0.0, 0.0)
