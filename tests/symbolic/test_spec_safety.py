"""A spec can ask for anything: each bad one ends in one line naming its file and line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainrule.cli import main
from chainrule.codegen.document import document
from chainrule.codegen.generate import package_names
from chainrule.packages import bounded
from chainrule.packages.specfile import MAX_LAYERS, MAX_SPEC_BYTES, read_specs
from chainrule.symbolic.from_spec import derive_spec
from chainrule.symbolic.spec import Spec, SpecError
from tests.helpers import chainrule


def layer(forward: str, name: str = "Bad", extra: str = "") -> str:
    return f"# a user's layer\n[[layer]]\nname = {name!r}\nforward = {forward!r}\n{extra}"


def refused(tmp_path: Path, capsys, text: str, line: int = 2) -> str:
    """Run generate --spec on ``text``: exit 2, one line naming the file and line, no folder made."""
    spec = tmp_path / "s.toml"
    spec.write_text(text, encoding="utf-8")
    out = tmp_path / "pkg"
    capsys.readouterr()
    assert main(["generate", "--spec", str(spec), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"chainrule: error: {spec}:{line}: "), lines[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        ("x**(10**9)", "the exponent in 'x ** 10 ** 9' is larger than 16 in size"),
        ("x**17", "the exponent in 'x ** 17' is larger than 16 in size"),
        ("exp(x)**-20", "the exponent in 'exp(x) ** (-20)' is larger than 16 in size"),
        ("x*9**9**9", "the exponent in '9 ** 9 ** 9' is larger than 64 in size"),
        ("x*10**10**10", "the exponent in '10 ** 10 ** 10' is larger than 64 in size"),
        ("x*2**100000", "the exponent in '2 ** 100000' is larger than 64 in size"),
        ("x" + "**x" * 49, "is nested more than 32 levels deep"),
        ("(x>0)+1", "'x > 0' is a condition, not a value, in '(x>0)+1'"),
        ("exp(x>0)", "'x > 0' is a condition, not a value, in 'exp(x>0)'"),
        ("max(x>0,1)", "'x > 0' is a condition, not a value, in 'max(x>0,1)'"),
        ("x if x else 0", "'x' is a value, not a condition"),
        ("1e400*x", "'1e400' is not a finite number"),
        ("-" * 5000 + "x", "the formula is 5,001 characters long; the limit is 1,000"),
        ("x+" * 20000 + "x", "the formula is 40,001 characters long; the limit is 1,000"),
        ("exp(" * 150 + "x" + ")" * 150, "is nested more than 32 levels deep"),
        ("-" * 900 + "x", "is nested more than 32 levels deep"),
        ("x/0", "'x / 0' is infinite or undefined (a division by zero?)"),
        ("log(0)*x", "'log(0)' is infinite or undefined"),
        ("x*" + "9" * 400, "makes a number of more than 1100 bits (about 330 digits)"),
        ("x*10**62*10**62*10**62*10**62*10**62", "makes a number too large for float64"),
        ("x # note", "a formula cannot hold a comment ('#')"),
    ],
)
def test_formulas_past_the_limits(tmp_path, capsys, forward, message):
    assert message in refused(tmp_path, capsys, layer(forward))


def test_safe_form_and_losses_are_checked_the_same_way(tmp_path, capsys):
    assert "'x > 0' is a condition, not a value, in '(x>0)+1'" in refused(
        tmp_path, capsys, layer("x", extra='safe = "(x>0)+1"\n')
    )
    loss = 'kind = "loss"\n'
    assert "'y > t' is a condition, not a value" in refused(tmp_path, capsys, layer("exp(y>t)", extra=loss))
    assert "'y / 0' is infinite or undefined" in refused(tmp_path, capsys, layer("y/0", extra=loss))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9" * 400, "constant c must be a finite number of at most about 1.8e308"),
        ("1e400", "constant c must be a finite number"),
    ],
)
def test_constants_out_of_float64(tmp_path, capsys, value, message):
    assert message in refused(tmp_path, capsys, layer("c * x", extra=f"constants = {{ c = {value} }}\n"))


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("'__import__(\"os\")'", "'__import__(\"os\")'"),  # a string, quoted once
        ("[1, 2]", "[1, 2]"),
        ("true", "True"),
        ("'" + "a" * 100 + "'", "'" + "a" * 60 + "'..."),
    ],
)
def test_a_constant_that_is_no_number_is_shown_as_written(tmp_path, capsys, value, shown):
    message = refused(tmp_path, capsys, layer("c * x", extra=f"constants = {{ c = {value} }}\n"))
    assert message.endswith(f"constant c must be a finite number, not {shown}")


def test_a_constant_too_long_to_read_names_its_line(tmp_path, capsys):
    text = layer("c * x", extra=f"constants = {{ c = {'9' * 5000} }}\n")
    assert refused(tmp_path, capsys, text, line=5).endswith("a number too long to read")


@pytest.mark.parametrize("const", ["forward", "backward", "batch_size", "dout", "np", "sigmoid", "one_hot"])
def test_constants_that_the_layer_code_uses(tmp_path, capsys, const):
    text = layer(f"{const} * x", extra=f"constants = {{ {const} = 1.0 }}\n")
    assert f"'{const}' cannot name a constant" in refused(tmp_path, capsys, text)


def test_dunder_and_underscore_constants(tmp_path, capsys):
    for const in ("__class__", "_tmp0"):
        text = layer("x", extra=f'constants = {{ "{const}" = 1.0 }}\n')
        assert f"'{const}' cannot name a constant" in refused(tmp_path, capsys, text)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("np", "np: the name is already taken"),
        ("one_hot", "one_hot: the name is already taken"),
        (
            "log_softmax",
            "log_softmax: the name is already taken: a module-level name of the generated package",
        ),
        ("softmax", "softmax: the name is already taken"),
        ("cross_entropy_error", "cross_entropy_error: the name is already taken"),
        ("sigmoid", "sigmoid: the name is already taken"),
        ("init_scale", "init_scale: the name is already taken"),
        ("ACTIVATIONS", "ACTIVATIONS: the name is already taken"),
        ("forward", "forward: the name is already taken: a name the layer's own methods use"),
    ],
)
def test_layer_names_that_the_package_uses(tmp_path, capsys, name, message):
    assert message in refused(tmp_path, capsys, layer("x", name=name))


def test_dunder_layer_name(tmp_path, capsys):
    assert "'__class__' is not a valid class name" in refused(tmp_path, capsys, layer("x", name="__class__"))


def test_short_name_of_a_chapter_layer(tmp_path, capsys):
    text = layer("x", name="MyRelu", extra='short = "relu"\n')
    assert "MyRelu: the short name 'relu' is already taken: a derivation of the chapter" in refused(
        tmp_path, capsys, text
    )
    spec = tmp_path / "s.toml"
    assert main(["derive", "--spec", str(spec), "relu"]) == 2
    assert capsys.readouterr().out == ""


def test_short_names_and_constants_do_not_collide_across_layers(tmp_path, capsys):
    text = layer("x", name="One", extra='short = "Two"\n') + layer("x", name="Two")
    assert "Two: the name is already taken: the layer at" in refused(tmp_path, capsys, text, line=7)
    text = layer("x", name="One") + layer("one * x", name="Two", extra="constants = { one = 2.0 }\n")
    assert "'one' cannot name a constant: it is already the layer at" in refused(
        tmp_path, capsys, text, line=6
    )


def test_full_width_letters_are_the_names_python_reads(tmp_path, capsys):
    # NFKC: Python reads the full-width T as T, so this class would replace the shipped Tanh.
    assert "the name 'Ｔanh' (to Python, 'Tanh') is already taken: the shipped layer Tanh" in refused(
        tmp_path, capsys, layer("x", name="Ｔanh")
    )
    text = layer("x", name="Ｓwish")
    assert "'Ｓwish' is 'Swish' to Python (NFKC normalization): write it as 'Swish'" in refused(
        tmp_path, capsys, text
    )
    text = layer("x", extra='constants = { "ｘ" = 1.5 }\n')
    assert "'ｘ' (to Python, 'x') cannot name a constant" in refused(tmp_path, capsys, text)


def test_spec_file_size_and_layer_count(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(layer("x") + "#" * MAX_SPEC_BYTES)
    assert main(["derive", "--spec", str(spec)]) == 2
    assert (
        capsys.readouterr().err
        == f"chainrule: error: {spec}: larger than 64 KiB, the limit for a spec file\n"
    )
    spec.write_text("".join(layer("x", name=f"L{i}") for i in range(MAX_LAYERS + 1)))
    with pytest.raises(
        SpecError, match=f"{MAX_LAYERS + 1} layers; the limit for a spec file is {MAX_LAYERS}"
    ):
        read_specs(spec)


def test_spec_must_be_a_regular_file(tmp_path, capsys):
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, Path("/dev/zero")):
        assert main(["derive", "--spec", str(path)]) == 2
        assert (
            capsys.readouterr().err
            == f"chainrule: error: {path}: not a regular file; a spec is a TOML file\n"
        )


def test_dev_zero_is_refused_without_reading_it():
    r = chainrule("derive", "--spec", "/dev/zero")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "chainrule: error: /dev/zero: not a regular file; a spec is a TOML file\n"


# --- the derivation's time and memory --------------------------------------------------------


@pytest.mark.parametrize("forward", ["exp(exp(exp(exp(x))))", "exp(" * 30 + "x" + ")" * 30])
def test_a_derivation_past_the_time_limit(tmp_path, capsys, monkeypatch, forward):
    monkeypatch.setattr(bounded, "SPEC_SECONDS", 1.0)  # the same path as the 5 s limit, sooner
    message = refused(tmp_path, capsys, layer(forward))
    assert message.endswith("Bad: the derivation took longer than 1 s (the limit); try a simpler formula")


def test_the_time_limit_names_the_slow_layer_not_the_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bounded, "SPEC_SECONDS", 1.0)
    text = layer("x", name="Fine") + layer("exp(exp(exp(exp(x))))", name="Slow")
    assert ": Slow: the derivation took longer than 1 s" in refused(tmp_path, capsys, text, line=6)


def test_a_derivation_past_the_memory_limit(monkeypatch):
    def greedy(spec):
        return bytearray(4 * bounded.MEMORY_BYTES)

    monkeypatch.setattr(bounded, "derive_spec", greedy)  # the forked child allocates past its limit
    with pytest.raises(SpecError) as err:
        bounded.derive_bounded([Spec("Big", "x", where="big.toml:2")])
    assert str(err.value) == "big.toml:2: Big: the derivation needs more than 512 MiB (the limit)"


def test_a_crashing_derivation_is_one_line(monkeypatch):
    def crash(spec):
        raise KeyError("deep inside SymPy")

    monkeypatch.setattr(bounded, "derive_spec", crash)
    with pytest.raises(SpecError) as err:
        bounded.derive_bounded([Spec("Odd", "x", where="odd.toml:2")])
    assert str(err.value) == "odd.toml:2: Odd: SymPy cannot derive it (KeyError: 'deep inside SymPy')"


def test_bounded_derivations_equal_in_process_ones_and_are_reused():
    spec = Spec("Swish", "x * sigmoid(beta * x)", constants=(("beta", 1.5),), where="w.toml:2")
    (sd,) = bounded.derive_bounded([spec])
    assert (
        sd.cached == "x"
        and sd.derivation.backward == derive_spec(Spec(**{**vars(spec), "where": "w"})).derivation.backward
    )
    assert derive_spec(spec) is sd  # the catalog and derive reuse the child's result


# --- names read from the generated package; documents escape what users write ----------------


def test_package_names_are_read_from_the_rendered_package():
    module, members = package_names()
    assert {"np", "one_hot", "log_softmax", "softmax", "cross_entropy_error", "sigmoid", "Tanh"} <= module
    assert {"ACTIVATIONS", "init_scale", "MultiLayerNet", "TwoLayerNet"} <= module
    assert {"forward", "backward", "x", "out", "dout", "batch_size", "self"} <= members
    assert "alpha" not in members  # LeakyReLU's constant is the layer's own choice, not reserved


def test_a_name_with_an_underscore_is_escaped_in_latex_and_markdown():
    sd = derive_spec(Spec("A_B", "x * x * x", where="my_layers.toml:2"))
    tex = document([sd.derivation], "latex")
    assert tex.startswith(r"\section*{A\_B}")
    assert r"A layer from the spec my\_layers.toml:2; its forward formula" in tex
    md = document([sd.derivation], "markdown")
    assert md.startswith("## A\\_B\n")
    assert "A layer from the spec my\\_layers.toml:2; its forward formula" in md
    # A dollar in the spec's path is a dollar, not the start of math.
    dollar = derive_spec(Spec("C", "x * x * x", where="my$dir/l.toml:2")).derivation
    assert r"the spec my\$dir/l.toml:2;" in document([dollar], "latex")
    assert r"the spec my\$dir/l.toml:2;" in document([dollar], "markdown")


def test_report_template_escapes_section_names():
    import html

    from chainrule.codegen.document import section
    from chainrule.codegen.environment import render
    from chainrule.codegen.html import prose_html
    from chainrule.commands.report import VerifyTables

    sd = derive_spec(Spec("Q", "x * x", where="<script>.toml:2"))
    page = render(
        "report.html.jinja",
        sections=[section(sd.derivation)],
        verify=VerifyTables("", (), (), (), "all checks pass"),
        training=None,
        no_run="none",
        math=lambda tex, display=False: "<math></math>",
        boxed=lambda tex: "<math></math>",
        text=html.escape,
        prose=prose_html,
        lang="en",
        japanese_fonts="",
        live={sd.derivation.name: ()},  # a spec's layer has no live figure in the report
        live_messages="{}",
        live_runtime="",
    )
    assert "<script>" not in page and "&lt;script&gt;.toml:2" in page


def test_derive_to_a_file_writes_nothing_for_a_bad_spec(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(layer("exp(x>0)"))
    target = tmp_path / "d.tex"
    assert main(["derive", "--spec", str(spec), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"chainrule: error: {spec}:2: Bad: 'x > 0' is a condition, not a value, in 'exp(x>0)'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_names_have_a_length_limit(tmp_path, capsys):
    long = "L" * 65
    assert f"{long[:60]!r}... is not a valid class name" in refused(tmp_path, capsys, layer("x", name=long))
    text = layer("x", name="Fine", extra=f'short = "{"s" * 65}"\n')
    assert "is not a valid short name" in refused(tmp_path, capsys, text)


def test_a_constant_given_twice_through_the_api():
    with pytest.raises(SpecError, match="A: constant k is given twice"):
        derive_spec(Spec("A", "k * x", constants=(("k", 1.0), ("k", 2.0)), where="api"))
