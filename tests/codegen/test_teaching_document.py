"""The documents teach in the book's order: sections and figures as the chapter numbers them, no line
that says nothing, the appendix only when asked for, and each reason said once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chainrule import symbolic
from chainrule.cli import main
from chainrule.codegen import display, i18n
from chainrule.codegen.document import document, in_chapter, section
from chainrule.codegen.figures import DOCUMENT_FIGURES

LANGS = ("en", "ja")


def _chapter() -> list[symbolic.Derivation]:
    return [d for d in map(symbolic.derive, symbolic.NAMES) if in_chapter(d)]


def _numbers(text: str) -> list[tuple[int, ...]]:
    return [tuple(int(p) for p in n.split(".")) for n in re.findall(r"\d+\.\d+(?:\.\d+)?", text)]


# A section's reference to the book, in either language and format: "Book \S5.3.1", "Book §5.3.3, §5.4.1",
# "本書 5.5.2 節", up to the end of its line or markup.
_REFERENCE = re.compile(r"(?:Book\s*(?:\\S|§)|本書\s*)([^\n}*<]*)")
# A figure's number as its caption gives it: "Figure 5-11.", "Figures 5-19/5-20.", "図5-19 / 図5-20", "図5-29".
_FIGURE = re.compile(r"(?:Figures?\s|図)(\d-\d+(?:\s*/\s*図?\d-\d+)*)")


def _sections(text: str) -> list[tuple[int, ...]]:
    return [n for m in _REFERENCE.finditer(text) for n in _numbers(m.group(1))]


def _figures(pictures: list[str]) -> list[tuple[int, int]]:
    found = []
    for picture in pictures:
        for m in _FIGURE.finditer(picture):
            # "5-19/5-20" is one figure of the book's two: placed where its first is.
            found.append(tuple(int(p) for p in m.group(1).split("/")[0].split("-")))
    return found


def _in_order(found: list, what: str) -> None:
    assert found, f"no {what} found"
    for a, b in zip(found, found[1:], strict=False):
        assert a <= b, f"{what}: {a} before {b} in {found}"


def _artefacts(lang: str) -> dict[str, tuple[str, list[str]]]:
    """Each document of the chapter, as (its text, its figures' own text: TikZ pictures, alt texts, SVGs)."""
    chapter = _chapter()
    with i18n.language(lang):
        tex = document(chapter, "latex", standalone=True)
        md = document(chapter, "markdown", figure_links="{name}.svg")
        # The HTML fragments, one per derivation, in the order the document sets them.
        titles = {section(d).title: d for d in chapter}
        placed = sorted(titles, key=lambda t: tex.index("\\section*{" + t + "}"))
        html = "\n".join(display.html(titles[t]) for t in placed)
    return {
        "latex": (tex, re.findall(r"\\begin\{tikzpicture\}.*?\\end\{tikzpicture\}", tex, re.S)),
        "markdown": (md, re.findall(r"!\[([^\]]*)\]", md) + re.findall(r'<img alt="([^"]*)"', md)),
        "html": (html, re.findall(r"<svg.*?</svg>", html, re.S)),
    }


@pytest.mark.parametrize("lang", LANGS)
def test_sections_and_figures_come_in_the_chapters_order(lang):
    for fmt, (text, pictures) in _artefacts(lang).items():
        _in_order(_sections(text), f"{lang} {fmt} book sections")
        _in_order(_figures(pictures), f"{lang} {fmt} figures")
    # Every figure the documents draw is numbered, in the order DOCUMENT_FIGURES gives.
    tex, pictures = _artefacts(lang)["latex"]
    drawn = [n for d in _chapter() for n in DOCUMENT_FIGURES.get(d.name, (d.name,))]
    assert len(pictures) == len(
        [n for n in drawn if n in __import__("chainrule.codegen.figures").codegen.figures.FIGURES]
    )


def test_the_appendix_reference_reads_as_the_book_does():
    softmax = symbolic.derive("softmax_with_loss")
    assert section(softmax).reference == "Book §5.6.3, appendix A."
    with i18n.language("ja"):
        assert section(softmax).reference == "本書 5.6.3 節・付録A"
        assert section(symbolic.derive("sigmoid")).reference == "本書 5.5.2 節"
        tex = document([softmax], "latex")
    assert "appendix" not in tex.split("\\section*")[1].splitlines()[1]


# --- no displayed line that says nothing --------------------------------------------------------


def _group(text: str, i: int) -> int:
    """The index after the braced group that opens at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    return len(text)


def _drop(text: str, command: str) -> str:
    """``text`` without ``\\command{...}`` and its argument (reasons set beside or between the rows)."""
    while (i := text.find(command + "{")) >= 0:
        text = text[:i] + text[_group(text, i + len(command)) :]
    return text


def _split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside braces and environments."""
    parts, depth, env, at, i = [], 0, 0, 0, 0
    while i < len(text):
        if text.startswith("\\begin{", i):
            env += 1
        elif text.startswith("\\end{", i):
            env -= 1
        ch = text[i]
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0 and env == 0 and text.startswith(sep, i):
            if sep != "=" or text[i - 1 : i] not in ("<", ">", "\\"):
                parts.append(text[at:i])
                at = i + len(sep)
                i += len(sep)
                continue
        i += 1
    parts.append(text[at:])
    return parts


def _plain(tex: str) -> str:
    for space in (r"\qquad {}", r"\qquad", r"\quad", "{}"):
        tex = tex.replace(space, "")
    return "".join(tex.split())


def _equations(body: str) -> list[list[str]]:
    """The equations a display shows, each as its sides: ``a &= b \\\\ &= c`` -> [[a, b, c]]."""
    body = _drop(_drop(body, "\\tag*"), "\\intertext")
    body = re.sub(
        r"\\(?:begin|end)\{(?:aligned|alignedat|alignat\*|align\*|gather\*)\}(?:\{\d+\})?", "", body
    )
    equations: list[list[str]] = []
    for row in _split(body, "\\\\"):
        cells = _split(row, "&")
        for k in range(0, len(cells), 2):
            left = _plain(cells[k])
            right = cells[k + 1] if k + 1 < len(cells) else ""
            sides = [_plain(s) for s in _split(right, "=")]
            if left:
                equations.append([left, *[s for s in sides[1:]]] if not sides[0] else [left + sides[0]])
            elif len(sides) > 1 and not sides[0] and equations:
                equations[-1] += sides[1:]
            elif equations:  # a long side continued on the next row
                equations[-1][-1] += _plain(right)
    return equations


def _displays(text: str, fmt: str) -> list[str]:
    if fmt == "latex":
        found = re.findall(r"\\begin\{(align\*|alignat\*|gather\*)\}(.*?)\\end\{\1\}", text, re.S)
        return [body for _env, body in found] + re.findall(r"\\\[(.*?)\\\]", text, re.S)
    return re.findall(r"```math\n(.*?)```", text, re.S) + re.findall(r"\$\$(.*?)\$\$", text, re.S)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", ["latex", "markdown"])
def test_no_displayed_line_says_nothing(lang, fmt):
    seen = 0
    for d in _chapter():
        with i18n.language(lang):
            text = document([d], fmt)
        for body in _displays(text, fmt):
            for sides in _equations(body.replace("\\boxed{", "{")):
                seen += 1
                for a, b in zip(sides, sides[1:], strict=False):
                    assert a != b, f"{d.name}: a displayed line says {a} = {b}"
    assert seen > 50


def test_identities_that_say_nothing_and_kernel_proofs_wait_for_the_appendix():
    affine, softmax, sigmoid = (
        section(symbolic.derive(n)) for n in ("affine", "softmax_with_loss", "sigmoid")
    )
    # The trace route, which the chapter does not take: proved, shown only in the appendix.
    assert not affine.identities and len(affine.proofs) == 3
    assert not softmax.identities
    # The sigmoid's equalities are its steps; its stable forms are the kernel's proofs, shown in x.
    assert not sigmoid.identities
    assert [eq.rows[0][0] for eq in sigmoid.proofs][0] == (
        r"\frac{e^{\min\left(0, x\right)}}{e^{\min\left(0, x\right)} + e^{- \max\left(0, x\right)}}"
    )
    chapter = document(_chapter(), standalone=True)
    assert "Proofs and numerics" not in chapter and "e^{- \\max\\left(0, x\\right)}" not in chapter
    whole = document(_chapter(), standalone=True, appendix=True)
    proofs = whole[whole.index("\\section*{Proofs and numerics}") :]
    assert proofs.splitlines()[1] == "\\textit{Not in the chapter.}"
    assert "e^{- \\max\\left(0, x\\right)}" in proofs and "\\subsection*{Affine}" in proofs


# --- the appendix, only when asked for -----------------------------------------------------------


def test_derive_prints_the_chapter_and_the_appendix_only_when_asked(capsys):
    assert main(["derive"]) == 0
    chapter = capsys.readouterr().out
    assert "Tanh" not in chapter and "Appendix" not in chapter and "Proofs and numerics" not in chapter
    assert chapter.count("\\section*{") == len(_chapter())
    assert "Not in the chapter" not in chapter
    assert main(["derive", "--appendix"]) == 0
    whole = capsys.readouterr().out
    tanh = whole[whole.index("\\section*{Tanh}") :]
    assert tanh.splitlines()[1] == "\\textit{Not in the chapter.}"
    assert whole.index("\\section*{Softmax-with-Loss}") < whole.index("\\section*{Appendix: more layers")
    assert whole.index("\\section*{Tanh}") < whole.index("\\section*{Proofs and numerics}")
    # Named, a shipped layer still prints, marked.
    assert main(["derive", "tanh"]) == 0
    assert capsys.readouterr().out.startswith("\\section*{Tanh}\n\\textit{Not in the chapter.}\n")


def test_a_users_spec_layers_print_marked(tmp_path, capsys):
    spec = tmp_path / "cube.toml"
    spec.write_text('[[layer]]\nname = "Cube"\nforward = "x**3"\n')
    assert main(["derive", "--spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "\\section*{Cube}\n\\textit{Not in the chapter.}" in out and "Tanh" not in out
    assert out.index("\\section*{Softmax-with-Loss}") < out.index("\\section*{Cube}")


def test_markdown_appendix_has_its_heading_and_japanese_its_mark(capsys):
    assert main(["derive", "--format", "markdown", "--appendix", "--lang", "ja"]) == 0
    out = capsys.readouterr().out
    assert "\n## 付録：同じ方法で導出するほかのレイヤ\n" in out
    assert "\n### Tanh\n\n*本章にはない内容です。*" in out
    assert "\n## 証明と数値計算\n\n*本章にはない内容です。*" in out


# --- layout: few displays, each reason once, dout and a legend -------------------------------------


CHAIN_RULE = "chain rule: upstream gradient times the local derivative"


def test_each_reason_is_said_once_in_a_section_and_local_derivatives_share_one_display():
    tex = document(_chapter(), standalone=True)
    parts = tex.split("\\section*{")[1:]
    assert tex.count(CHAIN_RULE) <= len(parts)
    assert "\\begin{quote}" not in tex
    for part in parts:
        local = part.split("\\subsection*{Local derivatives}")
        if len(local) > 1:
            between = local[1].split("\\subsection*{")[0]
            assert between.count("\\begin{alignat*}") == 1
            assert between.count("each node's local derivative, from sympy.diff") == 1


def test_dout_is_defined_once_per_layer_where_the_backward_part_opens():
    for d in _chapter():
        tex = document([d])
        has_dout = d.upstream is not None and d.upstream != d.loss
        assert tex.count("\\mathrm{dout} &= ") == (1 if has_dout else 0), d.name
        if has_dout:
            # a backward quantity: the first line of the backward part, before any step uses it
            backward = tex.index("\\subsection*{Backward}")
            assert backward < tex.index("\\mathrm{dout} &= ") < tex.index("\\frac{\\partial L}", backward + 1)
    relu = document([symbolic.derive("relu")])
    assert "\\mathrm{dout} &= \\frac{\\partial L}{\\partial y}" in relu


@pytest.mark.parametrize("lang", LANGS)
def test_a_legend_opens_each_document(lang):
    with i18n.language(lang):
        tex = document(_chapter(), standalone=True)
        md = document(_chapter(), "markdown")
        html = display.html(symbolic.derive("sigmoid"))
    legend = {
        "en": ("forward values are black, above each arrow", "name for the upstream gradient"),
        "ja": ("順伝播の値を矢印の上に黒で", "コードでの名前"),
    }[lang]
    for text in (tex, md, html):
        for words in legend:
            assert text.count(words) == 1
    first = tex.index("\\section*{")
    assert tex.index(legend[0]) < first and md.index(legend[0]) < md.index("\n## ")


def test_markdown_display_math_is_githubs_math_blocks():
    md = document([symbolic.derive("sigmoid")], "markdown")
    assert "$$" not in md and md.count("```math\n") >= 4
    assert "```math\n\\boxed{" in md


@pytest.mark.slow
def test_the_standalone_document_compiles(tmp_path):
    from tests.helpers import compile_tex

    tex = tmp_path / "d.tex"
    assert main(["derive", "--standalone", "--appendix", "-o", str(tex)]) == 0
    log = compile_tex("pdflatex", tex)
    assert "Overfull" not in log
    assert Path(tmp_path / "d.pdf").exists()
