"""Generated packages that carry their spec: verified, trained, drawn and regenerated from their folder;
and an installed chainrule that never rewrites its own generated/."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import sympy as sp

from chainrule.packages.marker import DEFAULT_OUT, MARKER, chainrule_version, mark_package, source_checkout
from chainrule.symbolic.formula_graph import MAX_NODES, TooLarge, formula_graph
from chainrule.symbolic.from_spec import derive_spec
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import Spec
from tests.helpers import chainrule

ROOT = Path(__file__).resolve().parents[2]
SWISH = """# my activation
[[layer]]
name = "Swish"
forward = "x * sigmoid(beta * x)"
constants = { beta = 1.5 }
init = "he"
"""
HEADER = "# Do NOT modify by hand: change spec.toml, then run `chainrule generate --package mylayers`."


def offline(tmp: Path) -> dict[str, str]:
    return {**os.environ, "CHAINRULE_OFFLINE": "1", "CHAINRULE_CACHE_DIR": str(tmp / "cache")}


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A package made from the Swish spec once; each test works on its own copy."""
    base = tmp_path_factory.mktemp("made")
    (base / "swish.toml").write_text(SWISH)
    r = chainrule("generate", "--spec", "swish.toml", "--out", "mylayers", cwd=base)
    assert r.returncode == 0, r.stderr
    return base / "mylayers"


@pytest.fixture
def package(made, tmp_path) -> Path:
    copy = tmp_path / "pkg" / "mylayers"
    shutil.copytree(made, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


# --- what a package records ------------------------------------------------------------------------


def test_a_spec_package_records_its_spec_version_and_regenerate_command(package):
    assert (package / "spec.toml").read_text() == SWISH
    marker = json.loads((package / MARKER).read_text())
    files = {k: hashlib.sha256(v).hexdigest() for k, v in tree(package).items() if k != MARKER}
    assert marker == {
        "generator": "chainrule",
        "version": 1,
        "chainrule": chainrule_version(),
        "spec": "spec.toml",
        "files": files,  # every file chainrule wrote, spec.toml included, with its SHA-256
        "seal": marker["seal"],  # this account's seal of its modules (tests/runs/test_safety_runs_data.py)
    }
    assert chainrule_version() == "0.1.0"
    headers = {p.name: p.read_text().splitlines()[2] for p in package.glob("*.py")}
    assert len(headers) == 8 and set(headers.values()) == {HEADER}
    # The chapter's own tree keeps its instruction: it is made from symbolic/ and the templates.
    line = (DEFAULT_OUT / "layers.py").read_text().splitlines()[2]
    assert line.endswith("change symbolic/ or codegen/templates/, then run `chainrule generate`.")


def test_spec_package_from_the_command_line_trains_verifies_and_regenerates(package, tmp_path):
    """The whole path with nothing but the package's folder: no spec file given after generate."""
    env = offline(tmp_path)
    run = tmp_path / "run"
    t = chainrule(
        "train",
        "--package",
        str(package),
        "--activation",
        "swish",
        "--iters",
        "120",
        "--out",
        str(run),
        env=env,
    )
    assert t.returncode == 0, t.stderr
    assert "MultiLayerNet(784, [50], 10, activation='swish')" in t.stderr
    # run.json names the package, so the run loads its swish without repeating --package.
    assert json.loads((run / "run.json").read_text())["package"] == str(package.resolve())
    e = chainrule("evaluate", str(run), env=env)
    assert e.returncode == 0, e.stderr
    assert e.stdout.startswith("test accuracy 0.")
    saved = np.load(run / "params.npz", allow_pickle=False)
    # The same run through the package's own Python API gives the very same weights.
    code = f"""
import sys; sys.path.insert(0, {str(package.parent)!r})
import numpy as np
from chainrule.mnist import load_mnist
from mylayers.train_neuralnet import train
from mylayers.layers import Swish
(xt, tt), (xs, ts) = load_mnist(normalize=True, one_hot_label=True, announce=None)
net, _ = train(xt, tt, xs, ts, iters_num=120, hidden_size=[50], activation="swish", on_epoch=lambda *a: None)
assert type(net.layers["Activation1"]) is Swish, net.layers
np.savez({str(tmp_path / "api.npz")!r}, **net.params)
"""
    api = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert api.returncode == 0, api.stderr
    expected = np.load(tmp_path / "api.npz", allow_pickle=False)
    assert sorted(saved.files) == sorted(expected.files) == ["W1", "W2", "b1", "b2"]
    for k in saved.files:
        np.testing.assert_array_equal(saved[k], expected[k])

    # The installed generated/ has no swish: the error says where a spec'd layer trains from.
    bad = chainrule("train", "--activation", "swish", "--out", str(tmp_path / "x"), env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "unknown activation 'swish'" in bad.stderr and "--package DIR" in bad.stderr

    # A generated package is the layers, the networks and the loop, with nothing of chainrule's shell:
    # `chainrule train --package` runs it, the package alone does not.
    assert "chainrule" not in (package / "train_neuralnet.py").read_text().split('"""', 2)[2]

    v = chainrule("verify", "--package", str(package))
    assert v.returncode == 0, v.stderr
    swish = [line.split() for line in v.stdout.splitlines() if line.startswith("Swish ")]
    assert swish[0][:2] == ["Swish", "dx"] and swish[0][-1] == "pass"
    assert v.stdout.rstrip().endswith("all checks pass")

    before = tree(package)
    layers = package / "layers.py"
    layers.write_text(layers.read_text().replace("self.beta = beta", "self.beta = 2 * beta"))
    stale = chainrule("generate", "--package", str(package), "--check")
    assert stale.returncode == 1 and "-        self.beta = 2 * beta" in stale.stdout
    assert f"run 'chainrule generate --package {package}'" in stale.stderr
    # A file changed by hand is never overwritten: generate names it, and keeps it, until it is removed.
    edited = layers.read_bytes()
    g = chainrule("generate", "--package", str(package))
    assert g.returncode == 2 and g.stderr == (
        f"chainrule: error: refusing to replace {package}: {layers} changed since chainrule wrote it;"
        " save your changes elsewhere and remove it first\n"
    )
    assert layers.read_bytes() == edited
    layers.unlink()
    g = chainrule("generate", "--package", str(package))
    assert g.returncode == 0, g.stderr
    assert g.stderr.rstrip().endswith(f"wrote {package}: layers.py")
    assert tree(package) == before


def test_verify_and_regenerate_refuse_a_package_whose_layer_has_no_spec(package, tmp_path):
    before = tree(package)
    (package / "spec.toml").rename(tmp_path / "aside.toml")
    for args in (["verify", "--package", str(package)], ["generate", "--package", str(package)]):
        r = chainrule(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert f"{package}: its {MARKER} records the spec spec.toml, which is missing" in r.stderr
        assert "all checks pass" not in r.stdout
    (tmp_path / "aside.toml").rename(package / "spec.toml")
    marker = json.loads((package / MARKER).read_text())
    fields = {k: v for k, v in marker.items() if k not in ("files", "seal", "spec")}
    mark_package(package, marker["files"], fields)  # sealed, as chainrule marks a package without a spec
    v = chainrule("verify", "--package", str(package))
    assert v.returncode == 2 and v.stdout == ""
    assert v.stderr == (
        f"chainrule: error: {package}: the package records no spec for Swish; name its spec file with --spec FILE\n"
    )
    g = chainrule("generate", "--package", str(package))
    assert g.returncode == 2 and "records no spec for Swish; make it again with --spec FILE --out" in g.stderr
    other = tmp_path / "other.toml"
    other.write_text('[[layer]]\nname = "Cube"\nforward = "x**3"\n')
    w = chainrule("verify", "--package", str(package), "--spec", str(other))
    assert w.returncode == 2 and "the spec given does not describe Swish" in w.stderr
    given = chainrule("verify", "--package", str(package), "--spec", str(package / "spec.toml"))
    assert given.returncode == 0 and given.stdout.rstrip().endswith("all checks pass")
    # Nothing refused was changed.
    assert {k: v for k, v in tree(package).items() if k != MARKER} == {
        k: v for k, v in before.items() if k != MARKER
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--package", "P", "--out", "Q"],
            "--package names the package to regenerate in place; it cannot go with --out",
        ),
        (["--package", "P", "--spec", "S"], "for another spec use --spec FILE --out DIR"),
        (
            ["--package", "plain"],
            "plain is not a package chainrule generated (it holds no .chainrule-package)",
        ),
        (["--package", "missing"], "missing is not a package chainrule generated"),
    ],
)
def test_generate_package_options_are_checked(tmp_path, args, message):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    r = chainrule("generate", *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr
    assert (tmp_path / "plain" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def test_train_refuses_a_package_folder_that_is_not_one_before_loading_data(tmp_path):
    """Without --activation too: one line, and no data message, no run folder made."""
    (tmp_path / "notes.toml").write_text("mine")
    r = chainrule(
        "train", "--package", "notes.toml", "--iters", "1", "--out", "r", cwd=tmp_path, env=offline(tmp_path)
    )
    assert (
        r.returncode == 2
        and r.stderr == "chainrule: error: notes.toml is not a generated package (no __init__.py)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.toml"]


# --- drawing a spec'd layer --------------------------------------------------------------------------

x, out = sp.Symbol("x", real=True), sp.Symbol("out", real=True)


def graph_of(forward: str, constants=()):
    d = derive_spec(Spec("Drawn", forward, constants=constants)).derivation
    return d, formula_graph(d.graph.nodes[0].expr, x, out)


def test_the_sigmoid_written_as_a_spec_gives_the_chapters_node_chain():
    # Fig. 5-19: ×(−1), exp, +1, /, with the chapter's local derivatives.
    _, g = graph_of("1 / (1 + exp(-x))")
    assert [n.op for n in g.nodes] == ["×(−1)", "exp", "+1", "/"]
    a, b, c = (n.out for n in g.nodes[:3])
    assert [n.local for n in g.nodes] == [(-1,), (sp.exp(a),), (1,), (-1 / c**2,)]
    assert [n.inputs for n in g.nodes] == [(x,), (a,), (b,), (c,)] and g.output == out


def test_swish_graph_reuses_x_and_folds_its_constant():
    _, g = graph_of("x * sigmoid(beta * x)", (("beta", 1.5),))
    assert [(n.op, [v.name for v in n.inputs]) for n in g.nodes] == [
        ("×beta", ["x"]),
        ("sigmoid", ["a"]),
        ("×", ["x", "b"]),
    ]


@pytest.mark.parametrize(
    "spec",
    [s for s in SHIPPED if s.kind == "activation"]
    + [
        Spec("A", "x**2 + 3*x - 2"),
        Spec("B", "sqrt(1 + x**2) / (1 + abs(x))"),
        Spec("C", "max(x, 0) + min(x, 0) * 0.25"),
        Spec("D", "where(x > 1, log(x), x - 1)"),
    ],
    ids=lambda s: s.name,
)
def test_the_chain_rule_through_the_drawn_nodes_is_the_derivative(spec):
    d = derive_spec(spec).derivation
    forward = d.graph.nodes[0].expr
    g = formula_graph(forward, x, out)
    _, grads, _ = g.backprop(sp.Integer(1))
    defs = g.definitions()
    through_graph = grads[x].xreplace({v: defs[v] for v in defs}).xreplace({v: defs[v] for v in defs})
    while any(v in through_graph.free_symbols for v in defs):
        through_graph = through_graph.xreplace(defs)
    values = {sp.Symbol(k, real=True): v for k, v in spec.constants}
    for point in (-1.7, -0.3, 0.4, 2.5):
        at = {x: point, **values}
        expected = complex(sp.N(sp.diff(forward, x).subs(at)))
        got = complex(sp.N(through_graph.subs(at)))
        assert abs(got - expected) <= 1e-12 * max(1.0, abs(expected)), (spec.name, point)


def test_a_formula_of_too_many_operations_is_refused():
    forward = sum(sp.exp(k * x) for k in range(1, 30))
    with pytest.raises(TooLarge, match=f"more than {MAX_NODES} operations"):
        formula_graph(forward, x, out)


def test_graph_spec_draws_the_layer_and_refuses_losses_and_unknown_names(tmp_path):
    (tmp_path / "my.toml").write_text(
        SWISH + '\n[[layer]]\nname = "Sq"\nforward = "(y - t)**2"\nkind = "loss"\n'
    )
    r = chainrule("graph", "--spec", "my.toml", "swish", "-o", "swish.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / "swish.svg").read_text()
    assert "<title>Swish: y = x * sigmoid(beta * x)</title>" in svg
    # Each label's text, its letters' styles (italic x, upright names) set by inner spans.
    labels = {
        "".join(t.itertext()) for t in ElementTree.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")
    }
    for text in (
        "×beta",
        "sigmoid",
        "×",
        # the running product below each edge, in the layer's input, as the book's figures write it
        "∂L/∂y·x",
        "∂L/∂y·sigmoid(beta·x)",
        "∂L/∂y·x(1 − sigmoid(beta·x))·sigmoid(beta·x)",
        "∂L/∂y·beta·x(1 − sigmoid(beta·x))·sigmoid(beta·x)",
    ):
        assert text in labels, text
    loss = chainrule("graph", "--spec", "my.toml", "sq", cwd=tmp_path)
    assert (
        loss.returncode == 2
        and loss.stderr == "chainrule: error: sq is a loss; only an activation's graph is drawn\n"
    )
    unknown = chainrule("graph", "--spec", "my.toml", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "my.toml has no layer 'nope'; its layers: swish, sq" in unknown.stderr
    chapter = chainrule("graph", "--spec", "my.toml", "apples", cwd=tmp_path)
    assert chapter.returncode == 0 and "<svg" in chapter.stdout


# --- an installed chainrule ---------------------------------------------------------------------------


def test_verify_of_a_package_whose_recorded_spec_gained_a_layer_says_to_regenerate_in_place(package):
    (package / "spec.toml").write_text(SWISH + '[[layer]]\nname = "Cube"\nforward = "x**3"\n')
    v = chainrule("verify", "--package", str(package))
    assert v.returncode == 2 and v.stderr == (
        f"chainrule: error: {package}/layers.py has no class Cube: its spec has changed;"
        f" regenerate it with 'chainrule generate --package {package}'\n"
    )
    assert chainrule("generate", "--package", str(package)).returncode == 0
    assert chainrule("verify", "--package", str(package)).returncode == 0


@pytest.mark.parametrize(
    "command", [["graph", "--spec", "swish.toml", "swish"], ["derive", "--spec", "swish.toml"]]
)
def test_output_over_the_spec_being_read_is_refused(tmp_path, command):
    """-o naming the spec itself (here through another path) would replace the user's only copy."""
    (tmp_path / "swish.toml").write_text(SWISH)
    r = chainrule(*command, "-o", "./swish.toml", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr == (
        "chainrule: error: refusing to write ./swish.toml: it is the spec file being read; name another -o FILE\n"
    )
    assert (tmp_path / "swish.toml").read_text() == SWISH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swish.toml"]


def test_source_checkout_is_told_from_an_installed_copy(tmp_path):
    assert source_checkout(DEFAULT_OUT)
    pyproject = (ROOT / "pyproject.toml").read_text()
    for where, name, expected in (
        ("src", "chainrule", True),
        ("src2", "other", False),
        ("lib/python3.11/site-packages", "chainrule", False),
    ):
        root = tmp_path / where
        (root / "generated").mkdir(parents=True)
        (root / "pyproject.toml").write_text(pyproject.replace('name = "chainrule"', f'name = "{name}"'))
        assert source_checkout(root / "generated") is expected, where
    (tmp_path / "bare" / "generated").mkdir(parents=True)
    assert not source_checkout(tmp_path / "bare" / "generated")


@pytest.mark.slow
@pytest.mark.install
def test_installed_chainrule_refuses_to_rewrite_generated_in_site_packages(tmp_path):
    """A plain venv (not seeing the editable install), chainrule installed into it as a wheel."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("chainrule", "codegen", "symbolic", "generated"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    pip = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    where = subprocess.run(
        [
            python,
            "-c",
            "import chainrule.generated as g, chainrule; print(g.__path__[0]); print(chainrule.__file__)",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    installed, module = map(Path, where.stdout.split())
    site = tmp_path / "venv" / "lib"
    assert site in installed.parents and site in module.parents and "site-packages" in installed.parts
    # chainrule takes one top-level name: its floors install inside it, beside nothing of another project's.
    packages = module.parent.parent
    ours = sorted(name for name in os.listdir(packages) if "chainrule" in name.lower())
    assert ours == ["chainrule", "chainrule-0.1.0.dist-info"]
    assert installed == packages / "chainrule" / "generated"
    assert not {"symbolic", "codegen", "generated"} & set(os.listdir(packages))
    before, listing = tree(installed), sorted(os.listdir(installed.parent))
    assert before["layers.py"] == (ROOT / "generated" / "layers.py").read_bytes()
    cwd = tmp_path / "work"
    cwd.mkdir()
    r = subprocess.run(
        [tmp_path / "venv" / "bin" / "chainrule", "generate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        f"chainrule: error: {installed} is the generated/ of an installed chainrule, not of a source checkout:"
        " refusing to modify it; write a package elsewhere with --out DIR\n"
    )
    same = subprocess.run(
        [tmp_path / "venv" / "bin" / "chainrule", "generate", "--out", str(installed)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert same.returncode == 2 and "refusing to modify it" in same.stderr
    assert tree(installed) == before
    assert sorted(os.listdir(installed.parent)) == listing  # no staging folder left beside it
    assert os.listdir(cwd) == []
