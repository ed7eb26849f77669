"""``chainrule verify`` passes on the generated layers and catches a wrong backward."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chainrule.verify import TOL_NUMERIC, TOL_SYMBOLIC, run

ROOT = Path(__file__).resolve().parent.parent


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
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(wrong)
    monkeypatch.syspath_prepend(str(tmp_path))
    lines: list[str] = []
    assert run("brokenpkg.layers", echo=lines.append) is False
    sigmoid = next(line for line in lines if line.startswith("Sigmoid ") and " dx " in line)
    assert sigmoid.endswith("FAIL")
    assert lines[-1] == "1 checks FAILED"


def test_verify_command_exit_status():
    r = subprocess.run(
        [sys.executable, "-m", "chainrule", "verify"], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0 and r.stdout.rstrip().endswith("all checks pass")


def test_gradient_check_script_on_the_mnist_sample(tmp_path):
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "CHAINRULE_CACHE_DIR": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "generated.gradient_check"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert r.returncode == 0, r.stderr
    values = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert sorted(values) == ["W1", "W2", "b1", "b2"]
    assert all(0 <= float(v) <= 1e-6 for v in values.values()), values
