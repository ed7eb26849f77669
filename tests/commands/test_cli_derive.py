"""``chainrule derive``: formats, names, errors, and a PDF from the standalone document."""

from __future__ import annotations

import shutil

import pytest

from chainrule.cli import main
from tests.helpers import chainrule, compile_tex


def test_derive_prints_every_derivation(capsys):
    assert main(["derive"]) == 0
    out = capsys.readouterr().out
    for title in ("Add node", "Multiply node", "The chain rule", "Buying apples", "ReLU",
                  "Sigmoid", "Affine", "Softmax-with-Loss"):  # fmt: skip
        assert rf"\section*{{{title}}}" in out
    assert out.count(r"\boxed{") >= 15


def test_derive_selected_names_in_order(capsys):
    assert main(["derive", "sigmoid", "affine"]) == 0
    out = capsys.readouterr().out
    assert out.index(r"\section*{Sigmoid}") < out.index(r"\section*{Affine}")
    assert r"\section*{ReLU}" not in out


def test_markdown(capsys):
    assert main(["derive", "relu", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## ReLU") and "```math\n\\boxed{" in out


def test_standalone_markdown_has_its_figures_inline(capsys):
    assert main(["derive", "sigmoid", "--format", "markdown", "--standalone"]) == 0
    out = capsys.readouterr().out
    # Each figure's alternative text is its caption, the book's figure number first.
    assert out.count('<img alt="Figures 5-') == 2
    assert (
        '<img alt="Figures 5-19/5-20. The Sigmoid layer\'s computational graph" src="data:image/svg+xml;base64,'
        in out
    )


def test_unknown_name_is_one_line_and_exit_2():
    r = chainrule("derive", "sigmod")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "chainrule: error: unknown derivation 'sigmod'; valid names: computational_graph, chain_rule, add, mul,"
        " apples, apples_oranges, relu, sigmoid, affine, softmax_with_loss, tanh, leaky_relu, elu,"
        " softplus, silu, gelu, mean_squared_error"
    ]


def test_bad_option_is_one_line_and_exit_2():
    r = chainrule("derive", "--format", "html")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "invalid choice: 'html'" in r.stderr


def test_unwritable_output_is_one_line_and_exit_2(tmp_path):
    target = tmp_path / "missing" / "d.tex"
    r = chainrule("derive", "add", "-o", str(target))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"chainrule: error: cannot write {target}: No such file or directory"
    assert not target.parent.exists()


def test_output_file_is_written_whole(tmp_path, capsys):
    target = tmp_path / "d.md"
    assert main(["derive", "add", "--format", "markdown", "-o", str(target)]) == 0
    assert target.read_text().startswith("## Add node")
    assert [p.name for p in tmp_path.iterdir()] == ["d.md"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_standalone_document_compiles_with_pdflatex(tmp_path):
    tex = tmp_path / "derivations.tex"
    assert chainrule("derive", "--standalone", "-o", str(tex)).returncode == 0
    # Nothing runs off the page: TeX reports every line it could not fit as an overfull box.
    log = compile_tex("pdflatex", tex)
    assert "Output written on derivations.pdf" in log


def test_the_program_exits_with_everything_written(tmp_path, capsys):
    # `python -m chainrule` ends without the interpreter's teardown: its output and exit status
    # must be main()'s, whole, through a pipe, with and without -o.
    assert main(["derive", "--format", "markdown"]) == 0
    expected = capsys.readouterr().out
    r = chainrule("derive", "--format", "markdown")
    assert (r.returncode, r.stdout, r.stderr) == (0, expected, "")
    assert len(r.stdout) > 20_000
    out = tmp_path / "d.md"
    r = chainrule("derive", "--format", "markdown", "-o", str(out))
    assert (r.returncode, r.stderr) == (0, f"wrote {out}\n")
    assert out.read_text() == expected
    r = chainrule("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: chainrule") and r.stdout.endswith("\n")
    r = chainrule("derive", "--format", "pdf")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
