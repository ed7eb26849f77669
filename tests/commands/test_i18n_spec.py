"""Spec files, packages and generate in Japanese: every error the custom-layer path gives is one line in the reader's language."""

from __future__ import annotations

import subprocess

from hypothesis import HealthCheck, given, settings

from chainrule.cli import main
from chainrule.codegen import i18n
from chainrule.symbolic.spec import Spec, SpecError, parse_formula
from tests.helpers import chainrule
from tests.symbolic.test_spec_fuzz import grammar


def ja(*argv: str) -> subprocess.CompletedProcess[str]:
    return chainrule(*argv, "--lang", "ja")


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.splitlines()
    return line


def test_a_formula_error_from_the_bounded_worker_in_japanese(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('[[layer]]\nname = "Bad"\nforward = "x + foo(x)"\n')
    line = one_line(ja("derive", "--spec", str(spec)))
    assert line == (
        f"chainrule: エラー: {spec}:1：Bad：'x + foo(x)' の関数 'foo' は使えません。使える関数："
        "abs, atan, cos, cosh, exp, log, log1p, max, min, sigmoid, sin, sinh, sqrt, tanh, where"
    )


def test_an_activation_that_is_not_real_in_japanese(tmp_path):
    spec = tmp_path / "sqrt.toml"
    spec.write_text('[[layer]]\nname = "Root"\nforward = "sqrt(x)"\n')
    assert one_line(ja("derive", "--spec", str(spec))) == (
        f"chainrule: エラー: {spec}:1：Root：'sqrt(x)' は x = -0.001 で実数になりません。"
        "活性化関数はすべての実数 x で実数でなければなりません"
    )


def test_spec_file_errors_in_japanese(tmp_path):
    spec = tmp_path / "keys.toml"
    spec.write_text('[[layer]]\nname = "K"\nforward = "x"\ncolour = 1\n')
    assert one_line(ja("derive", "--spec", str(spec))) == (
        f"chainrule: エラー: {spec}:1：キー 'colour' は使えません。使えるキー：constants, forward, init, kind, name, safe, short"
    )
    spec.write_text('[[layer]]\nname = "Tanh"\nforward = "tanh(x)"\n')
    assert one_line(ja("graph", "Tanh", "--spec", str(spec))) == (
        f"chainrule: エラー: {spec}:1：Tanh：その名前はすでに使われています：同梱のレイヤ Tanh"
    )
    assert one_line(ja("derive", "--spec", str(tmp_path / "none.toml"))) == (
        f"chainrule: エラー: {tmp_path / 'none.toml'} を読めません：No such file or directory"
    )


def test_package_and_generate_errors_in_japanese(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine\n")
    assert one_line(ja("verify", "--package", str(plain))) == (
        f"chainrule: エラー: {plain} は chainrule が生成したパッケージではありません（.chainrule-package がない）"
    )
    spec = tmp_path / "ok.toml"
    spec.write_text('[[layer]]\nname = "Cube"\nforward = "x**3"\n')
    assert one_line(ja("generate", "--spec", str(spec), "--out", str(plain))) == (
        f"chainrule: エラー: {plain} には書き出しません：空でなく .chainrule-package もありません"
        "（chainrule が生成したパッケージではない）。新しいフォルダか空のフォルダを指定してください"
    )
    assert (plain / "notes.txt").read_text() == "mine\n"


def test_the_same_errors_stay_english_without_lang(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('[[layer]]\nname = "Bad"\nforward = "x + foo(x)"\n')
    assert main(["derive", "--spec", str(spec)]) == 2
    assert capsys.readouterr().err.startswith(
        f"chainrule: error: {spec}:1: Bad: unknown function 'foo' in 'x + foo(x)'; known: abs, "
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=grammar(6))
def test_any_formula_error_reads_in_japanese_in_one_line(text):
    import sympy as sp

    spec = Spec(name="Fuzz", forward=text, where="fuzz.toml:2", constants=(("alpha", 0.5),))
    try:
        parse_formula(text, {"x": sp.Symbol("x", real=True), "alpha": sp.Symbol("alpha", real=True)}, spec)
    except SpecError as exc:
        with i18n.language("ja"):
            line = i18n.translate(i18n.message_of(exc))
        english = str(exc)
        assert line.startswith("fuzz.toml:2：Fuzz：") and "\n" not in line
        assert line != english and english.startswith("fuzz.toml:2: Fuzz: ")


def test_a_spec_nested_thousands_deep_is_one_line(tmp_path):
    spec = tmp_path / "deep.toml"
    spec.write_text("a = " + "[" * 5000 + "]" * 5000)
    assert one_line(ja("derive", "--spec", str(spec))) == (
        f"chainrule: エラー: {spec}：入れ子が深すぎて読めません。仕様ファイルは平らな表をいくつか並べたものです"
    )


def test_graph_names_in_japanese(tmp_path):
    spec = tmp_path / "ok.toml"
    spec.write_text('[[layer]]\nname = "Cube"\nforward = "x**3"\n')
    assert (
        one_line(ja("graph", "x", "--spec", str(spec)))
        == f"chainrule: エラー: {spec} にレイヤ 'x' がありません。あるレイヤ：cube"
    )
    assert one_line(ja("graph", "nope")).startswith(
        "chainrule: エラー: 図 'nope' はありません。使える名前：shopping_forward, shopping_variables, shopping_two"
    )
