"""A derivation shows itself: LaTeX, Markdown, its figure as SVG, and HTML in Jupyter."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from IPython.core.formatters import DisplayFormatter

from chainrule import symbolic
from chainrule.codegen.document import document
from chainrule.codegen.figures import FIGURES, svg
from chainrule.codegen.html import figure_names
from chainrule.codegen.layout import UnknownFigure

SVG_NS = "{http://www.w3.org/2000/svg}"


def squeeze(tex: str) -> str:
    """LaTeX without spacing commands, \\left/\\right and blanks: the notation, not the layout."""
    tex = re.sub(r"\\(?:left|right)\b|\\[,;:! ]|\\cdot\b", "", tex)
    return re.sub(r"\s+", "", tex)


# The book's sigmoid gradient, typed from the chapter as an independent expectation:
# dL/dx = dL/dy y(1 - y), written with partial derivatives.
BOOK_SIGMOID = r"\frac{\partialL}{\partialy}y(1-y)"


def test_sigmoid_latex_is_the_books_y_times_one_minus_y():
    d = symbolic.derive("sigmoid")
    tex = d._repr_latex_()
    boxed = re.findall(r"\\boxed\{(.*)\}", tex)
    assert len(boxed) == 1
    assert squeeze(boxed[0]) == r"\frac{\partialL}{\partialx}=" + BOOK_SIGMOID
    # in the book's names: no out; dout only where it is defined as the code's name for dL/dy
    definition = r"\mathrm{dout} &= \frac{\partial L}{\partial y}"
    assert tex.count(definition) == 1 and "the code calls it dout" in tex
    assert "dout" not in tex.replace(definition, "").replace("the code calls it dout", "")
    assert r"\mathrm{out}" not in tex


@pytest.mark.parametrize("name", symbolic.NAMES)
def test_latex_and_markdown_are_the_documents_section(name):
    d = symbolic.derive(name)
    assert d.latex() == d._repr_latex_() == document([d], "latex", standalone=False)
    assert d.markdown() == document([d], "markdown")
    assert d.title in d.markdown()
    assert r"\documentclass" not in d.latex()


def test_markdown_carries_the_books_sigmoid_gradient():
    assert BOOK_SIGMOID in squeeze(symbolic.derive("sigmoid").markdown())


@pytest.mark.parametrize("name", [n for n in symbolic.NAMES if n in FIGURES])
def test_figure_is_the_derivations_svg(name):
    d = symbolic.derive(name)
    text = d.figure()
    assert text == svg(name) == svg(d)
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == SVG_NS + "svg"
    assert root.find(SVG_NS + "title").text


def test_a_derivation_without_a_figure_says_so_by_name():
    with pytest.raises(UnknownFigure) as caught:
        symbolic.derive("tanh").figure()
    message = str(caught.value)
    assert message.startswith("unknown figure 'tanh'; valid names: shopping_forward, shopping_variables")
    assert "\n" not in message


def test_a_wrong_type_is_named_never_shown():
    d = symbolic.derive("sigmoid")
    with pytest.raises(TypeError) as caught:
        svg(3.5)
    assert str(caught.value) == "a figure is named by a string or a Derivation, not float"
    with pytest.raises(TypeError) as caught:
        symbolic.derive(d)
    assert str(caught.value) == "a derivation is named by a string, not Derivation"
    assert len(repr(d)) > 1000  # what the messages above would have held


class _Html(HTMLParser):
    """Checks that elements close in order; collects the text inside each boxed result."""

    VOID = {"br", "img", "hr", "meta"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.boxed: list[str] = []
        self._box_depth: int | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if tag == "menclose" and ("notation", "box") in attrs:
            self._box_depth = len(self.stack)
            self.boxed.append("")

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack[-3:], tag)
        if self._box_depth == len(self.stack):
            self._box_depth = None
        self.stack.pop()

    def handle_data(self, data):
        if self._box_depth is not None:
            self.boxed[-1] += "".join(data.split())


def _parsed(text: str) -> _Html:
    tree = _Html()
    tree.feed(text)
    tree.close()
    assert tree.stack == []
    return tree


def test_html_is_mathml_and_the_figures():
    d = symbolic.derive("sigmoid")
    page = d._repr_html_()
    tree = _parsed(page)
    assert f"<h3>{html.escape(d.title)} <small>Book §5.5.2.</small></h3>" in page
    # both of the sigmoid's figures, inline; every formula MathML, no LaTeX left over
    assert tree.tags.count("svg") == len(figure_names("sigmoid")) == 2
    titles = re.findall(r"<svg .*?<title>(.*?)</title>", page, flags=re.S)
    own = [re.search(r"<title>(.*?)</title>", svg(n), flags=re.S).group(1) for n in figure_names("sigmoid")]
    assert titles == own and len(set(own)) == 2
    assert "<?xml" not in page
    assert re.findall(r"\\[A-Za-z]+", page) == []
    assert "<merror" not in page
    rows = len(re.findall(r'<tr><td class="lhs">', page))
    assert rows >= len(d.steps) and tree.tags.count("math") > rows  # a right side on every row, more on most
    # the boxed result reads dL/dx = dL/dy y(1 − y) (whichever way the product is spaced)
    assert [re.sub("[⋅·\u2009]", "", b) for b in tree.boxed] == ["∂L∂x=∂L∂yy(1−y)"]


@pytest.mark.parametrize("name", symbolic.NAMES)
def test_every_derivation_displays(name):
    d = symbolic.derive(name)
    tree = _parsed(d._repr_html_())
    assert len(tree.boxed) == len(d.backward)
    assert d.backward or name == "computational_graph"  # 5.1 is forward only: no result to box
    assert tree.tags.count("svg") == len(figure_names(name)) >= (name in FIGURES) + (name == "sigmoid")


def test_jupyter_sees_html_latex_and_a_short_name():
    data, _ = DisplayFormatter().format(symbolic.derive("sigmoid"))
    assert data["text/plain"] == "<Derivation sigmoid: Sigmoid>"
    assert data["text/latex"] == symbolic.derive("sigmoid").latex()
    assert data["text/html"].startswith('<div class="chainrule-derivation" data-derivation="sigmoid">')


def test_symbolic_loads_no_printer_until_asked():
    code = (
        "import sys\n"
        "from chainrule import symbolic\n"
        "d = symbolic.derive('sigmoid')\n"
        "floors = lambda: sorted({'.'.join(m.split('.')[:2]) for m in sys.modules} & {'chainrule.codegen', 'chainrule.commands', 'latex2mathml'})\n"
        "print(floors())\n"
        "d.latex()\n"
        "print(floors())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "['chainrule.codegen']"]
