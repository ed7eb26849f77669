"""The Markdown document renders as CommonMark with GitHub's math blocks: display math in ```math fences, reasons below."""

from __future__ import annotations

import base64

import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

from chainrule import symbolic
from chainrule.codegen.document import document, section
from tests.helpers import CHAPTER


def parse(text: str) -> list:
    """Block tokens as GitHub's and Jupyter's renderers read them: CommonMark, tables, $ and $$ math."""
    return MarkdownIt("commonmark").enable("table").use(dollarmath_plugin).parse(text)


def _inline_source(token) -> str:
    """An inline token's words and math, written back as prose with $-math."""
    return "".join(f"${c.content}$" if c.type == "math_inline" else c.content for c in token.children)


@pytest.mark.parametrize("name", CHAPTER)
def test_display_math_is_githubs_math_blocks_each_reason_quoted_once_above_its_block(name):
    d = symbolic.derive(name)
    s = section(d)
    tokens = parse(document([d], "markdown"))
    blocks = [i for i, t in enumerate(tokens) if t.type == "fence" and t.info == "math"]
    assert blocks and not [t for t in tokens if t.type == "math_block"]
    sources = "\n".join(tokens[i].content for i in blocks)
    for eq in (*s.forward, *s.local, *s.backward, *s.identities):
        for left, right in eq.rows:
            assert left in sources and right.removeprefix("= ") in sources
    # A block's reason comes before it as a quote, with its math as math; each reason is said once.
    quoted = [
        _inline_source(tokens[i - 3])
        for i in blocks
        if [t.type for t in tokens[i - 5 : i - 3]] == ["blockquote_open", "paragraph_open"]
    ]
    reasons = [eq.reason for eq in (*s.forward, *((s.dout,) if s.dout else ()), *s.backward, *s.identities)]
    reasons += ["each node's local derivative, from sympy.diff"] if s.local else []
    assert sorted(quoted) == sorted(" ".join(r.split()) for r in reasons if r)
    assert len(set(quoted)) == len(quoted)
    # No paragraph holds an equation that should have been a block.
    for t in tokens:
        if t.type == "inline":
            assert "\\begin{aligned}" not in t.content and "&=" not in t.content and "$$" not in t.content
    boxed = [t for t in tokens if t.type == "fence" and t.content.startswith("\\boxed{")]
    assert len(boxed) == len(d.backward)


def test_worked_values_render_as_a_table():
    d = symbolic.derive("apples")
    tokens = parse(document([d], "markdown"))
    start = next(i for i, t in enumerate(tokens) if t.type == "table_open")
    end = next(i for i, t in enumerate(tokens) if t.type == "table_close")
    cells = [_inline_source(t) for t in tokens[start:end] if t.type == "inline"]
    header = cells[:3]
    assert header == ["variable $v$", "forward $v$", r"backward $\partial \mathrm{price} / \partial v$"]
    assert cells[3:6] == [r"$\mathrm{apple}$", "$100$", "$2.2$"]
    assert len(cells) == 3 * (1 + len(d.examples[0].forward))


def test_reason_with_inline_math_renders_as_math():
    tokens = parse(document([symbolic.derive("sigmoid")], "markdown", appendix=True))
    inline_math = [
        c.content for t in tokens if t.type == "inline" for c in t.children if c.type == "math_inline"
    ]
    assert (
        r"\frac{\partial y}{\partial c} = -\frac{1}{c^2} = -y^2" in inline_math and "c = 1/y" in inline_math
    )


def test_figures_inline_or_linked():
    d = symbolic.derive("sigmoid")
    tokens = parse(document([d], "markdown", standalone=True))
    html = [t.content for t in tokens if t.type == "html_block"]
    assert len(html) == 2
    src = html[0].split('src="data:image/svg+xml;base64,')[1].split('"')[0]
    assert base64.b64decode(src).decode().lstrip().startswith("<?xml")
    linked = parse(document([d], "markdown", figure_links="figures/{name}.svg"))
    images = [c for t in linked if t.type == "inline" for c in t.children if c.type == "image"]
    assert [i.attrs["src"] for i in images] == ["figures/sigmoid.svg", "figures/sigmoid_simple.svg"]
    # Without either, the Markdown holds no figure.
    plain = parse(document([d], "markdown"))
    assert not [t for t in plain if t.type == "html_block"]


def test_section_results_are_what_the_markdown_boxes():
    d = symbolic.derive("gelu")
    tokens = parse(document([d], "markdown"))
    boxed = [t.content.strip() for t in tokens if t.type == "fence" and t.content.startswith("\\boxed{")]
    assert boxed == [f"\\boxed{{{r}}}" for r in section(d).results]
    assert boxed[0].startswith("\\boxed{\\begin{aligned}")
