"""The derivations in Japanese: every sentence translated, the book's terms, and a LuaLaTeX document that compiles."""

from __future__ import annotations

import os

import pytest

from chainrule import symbolic
from chainrule.codegen import i18n
from chainrule.codegen.document import document
from chainrule.symbolic.shipped import SHIPPED
from tests.helpers import chainrule, chainrule_process, compile_tex


def _sentences(d: symbolic.Derivation) -> list[str]:
    return [
        d.summary,
        *d.notes,
        *(s.reason for s in d.forward),
        *(s.reason for s in d.steps),
        *(s.reason for s in d.identities),
    ]


@pytest.mark.parametrize("name", symbolic.NAMES)
def test_every_sentence_of_a_shipped_derivation_is_marked_and_translated(name):
    """A sentence typed without N_() is invisible to extraction; this walks what the derivations really hold."""
    d = symbolic.derive(name)
    names = {s.name for s in SHIPPED}
    titles = [] if d.title in names else [d.title]  # a spec'd layer's title is its class name
    for text in [*titles, *_sentences(d)]:
        assert hasattr(text, "msgid"), f"{name}: not marked for translation: {text!r}"
        assert text.msgid in i18n.catalog("ja"), f"{name}: no Japanese for {text.msgid!r}"


def test_derive_sigmoid_in_japanese_explains_each_step_in_the_books_terms():
    done = chainrule("derive", "sigmoid", "--lang", "ja")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert r"\subsection*{順伝播}" in out and r"\subsection*{逆伝播}" in out
    assert "ステップ3：「exp」ノードの局所的な微分は自身の出力" in out
    assert "「$/$」ノードの局所的な微分は" in out and "上流から伝わってきた微分に $-y^2$ を乗算します" in out
    assert "逆伝播は $y$ だけで計算できます" in out
    assert r"\textit{本書 5.5.2 節}" in out
    # No English sentence is left, and the math is the English document's math.
    for english in ("local derivative of", "chain rule:", "Forward", "Backward", "Book"):
        assert english not in out

    def math(text: str) -> list[str]:  # the rows of the displays, without the reasons set beside them
        return [line.split(r" \tag*{")[0] for line in text.splitlines() if line.startswith(r"\frac")]

    english_math = math(chainrule("derive", "sigmoid").stdout)
    assert english_math and english_math == math(out)


def test_the_language_comes_from_chainrule_lang_and_english_stays_the_default():
    ja = chainrule_process(
        "derive", "add", "--format", "markdown", env={**os.environ, "CHAINRULE_LANG": "ja"}
    ).stdout
    assert ja.startswith("## 加算ノード\n")
    assert (
        "**逆伝播**" in ja
        and "加算ノードの逆伝播は、上流から伝わってきた微分をそのまま両方の入力へ流します。" in ja
    )
    en = chainrule_process(
        "derive",
        "add",
        "--format",
        "markdown",
        env={**os.environ, "CHAINRULE_LANG": "en", "LANG": "ja_JP.UTF-8"},
    ).stdout
    assert en.startswith("## Add node\n")
    by_locale = chainrule_process(
        "derive",
        "add",
        "--format",
        "markdown",
        env={**os.environ, "CHAINRULE_LANG": "", "LC_ALL": "ja_JP.UTF-8"},
    ).stdout
    assert by_locale == ja


def test_a_spec_layer_in_japanese_keeps_the_users_words():
    d = symbolic.derive("tanh")
    with i18n.language("ja"):
        text = document([d], "markdown")
    assert text.startswith("## Tanh\n")  # the layer's own name
    assert "chainrule に同梱の、仕様ファイルで与えたレイヤ。順伝播の式は下の最初の行です。" in text
    assert "各ノードの局所的な微分です（sympy.diff による）" in text


@pytest.mark.slow
def test_japanese_standalone_document_compiles_with_lualatex(tmp_path):
    tex = tmp_path / "d.tex"
    done = chainrule("derive", "--standalone", "--lang", "ja", "-o", str(tex))
    assert done.returncode == 0, done.stderr
    source = tex.read_text(encoding="utf-8")
    assert r"\documentclass[11pt,fleqn]{ltjsarticle}" in source and "lualatex" in source.splitlines()[0]
    assert r"\title{誤差逆伝播法の導出}" in source
    log = compile_tex("lualatex", tex)
    assert "Missing character" not in log  # every Japanese glyph found in a font


def test_a_japanese_figure_is_captioned_with_the_books_figure_number_and_title():
    from xml.etree import ElementTree

    done = chainrule("graph", "apples_oranges", "--lang", "ja")
    assert done.returncode == 0, done.stderr
    root = ElementTree.fromstring(done.stdout.encode())
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.find("s:title", ns).text == "図5-15 りんごとみかんの買い物の逆伝播の例"
    drawn = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "title"]
    assert drawn == ["図5-15 りんごとみかんの買い物の逆伝播の例"]
    assert "IPAexGothic" in root.get("font-family") and "DejaVu Sans" in root.get("font-family")
    # English stays as it was.
    english = ElementTree.fromstring(chainrule("graph", "apples_oranges").stdout.encode())
    assert english.find("s:title", ns).text == "図5-15 (Figure 5-15. Backward of buying apples and oranges)"
    assert english.get("font-family") == "DejaVu Sans, Verdana, Arial, sans-serif"


def test_a_japanese_tikz_figure_names_the_book_figure_in_the_document():
    with i18n.language("ja"):
        from chainrule.codegen.figures import tikz

        picture = tikz("sigmoid")
    assert "図5-19/5-20 Sigmoidレイヤの計算グラフ" in picture
