"""The chapter's figures as the book draws them: section 5.1's shopping graphs, the book's words on
the nodes, shapes on the backward values, and a reader's own numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from chainrule import symbolic
from chainrule.codegen.figures import svg

SVG = "{http://www.w3.org/2000/svg}"


def arrows(document: str) -> dict[tuple[str, str], dict[str, str]]:
    """Every arrow's labels in an SVG: (src, dst) -> {"forward": ..., "backward": ...}."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for t in ET.fromstring(document).iter(f"{SVG}text"):
        if t.get("class") in ("forward", "backward"):
            found.setdefault((t.get("data-src"), t.get("data-dst")), {})[t.get("class")] = "".join(
                t.itertext()
            )
    return found


def test_a_readers_own_inputs_redraw_the_figure():
    # Apples at 150 instead of 100: 300 before tax, 330 to pay, by the same exact backprop.
    found = arrows(symbolic.derive("apples").figure(apple=150))
    assert found[("apple", "apple_price")] == {"forward": "150", "backward": "2.2"}
    assert found[("apple_price", "price")]["forward"] == "300"
    assert found[("price", "")] == {"forward": "330", "backward": "1"}
    three = arrows(symbolic.derive("apples").figure(apple=150, apple_num=3, tax=1.08))
    assert three[("price", "")]["forward"] == "486"
    assert three[("apple", "apple_price")]["backward"] == "3.24"
    assert arrows(svg("mul", {"x": 3, "y": 4}))[("z", "")]["forward"] == "12"
    # The add and mul nodes' upstream gradient, 1.3 in the book, is a choice too.
    assert arrows(svg("mul", {"x": 3, "y": 4, "dout": 2}))[("x", "z")] == {"forward": "3", "backward": "8"}
    # Without values, the book's numbers.
    assert symbolic.derive("apples").figure() == svg("apples")


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("apples", {"banana": 1}, "apples takes the inputs apple, apple_num, tax, not 'banana'"),
        (
            "apples",
            {"apple": "150"},
            "apple must be a finite number, not '150'; apples takes the inputs apple, apple_num, tax",
        ),
        ("add", {"x": float("inf")}, "x must be a finite number, not inf; add takes the inputs x, y, dout"),
        ("mul", {"y": True}, "y must be a finite number, not True; mul takes the inputs x, y, dout"),
    ],
)
def test_a_wrong_input_is_named_in_one_line(name, values, message):
    with pytest.raises(ValueError) as info:
        symbolic.derive(name).figure(**values)
    assert str(info.value) == message


def test_a_figure_without_numbers_takes_no_inputs():
    with pytest.raises(ValueError, match="^the figure sigmoid has no input values to choose; figures that"):
        symbolic.derive("sigmoid").figure(x=1)


def _texts(document: str, cls: str) -> list[str]:
    return [
        "".join(t.itertext()) for t in ET.fromstring(document).iter(f"{SVG}text") if t.get("class") == cls
    ]


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("shopping_forward", "220"),
        ("shopping_variables", "220"),
        ("shopping_two", "715"),
        ("local_computation", "4620"),
    ],
)
def test_section_5_1_draws_forward_only(name, result):
    # Figs. 5-1 to 5-4: the answers of the two shopping problems, no backward value, no backward arrow.
    document = svg(name)
    assert _texts(document, "backward") == []
    assert 'class="backward-arrow"' not in document
    assert arrows(document)[("price", "")] == {"forward": result}


def test_section_5_1_figures_are_the_books():
    # Fig. 5-1: the count and the tax in the circles; Fig. 5-2: outside them, as variables.
    assert sorted(_texts(svg("shopping_forward"), "op")) == ["×1.1", "×2"]
    assert sorted(_texts(svg("shopping_forward"), "forward")) == ["100", "200", "220"]
    assert {k[0] for k in arrows(svg("shopping_variables"))} == {
        "apple",
        "apple_num",
        "tax",
        "apple_price",
        "price",
    }
    # Fig. 5-4: the other purchases' 4000 added to the apples' 200, then the tax.
    local = arrows(svg("local_computation"))
    assert local[("other", "all_price")] == {"forward": "4000"}
    assert local[("all_price", "price")] == {"forward": "4200"}
    # Fig. 5-5: backward from the price to the apple, 1 -> 1.1 -> 2.2.
    back = arrows(svg("apple_derivative"))
    assert back[("price", "")] == {"forward": "220", "backward": "1"}
    assert back[("apple_price", "price")] == {"forward": "200", "backward": "1.1"}
    assert back[("apple", "apple_price")] == {"forward": "100", "backward": "2.2"}


def test_section_5_1_figures_go_with_their_derivation():
    from chainrule.codegen.figures import DOCUMENT_FIGURES, FIGURES
    from chainrule.commands.graph import run

    names = (
        "shopping_forward",
        "shopping_variables",
        "shopping_two",
        "local_computation",
        "apple_derivative",
    )
    assert DOCUMENT_FIGURES["computational_graph"] == names
    assert FIGURES[: len(names)] == names
    # Fig. 5-29 before Fig. 5-30, as in the book.
    assert DOCUMENT_FIGURES["softmax_with_loss"] == ("softmax_with_loss", "softmax_with_loss_simple")
    import argparse

    for name in names:
        assert run(argparse.Namespace(name=name, output=None, spec=None)) == 0


def test_affine_backward_values_carry_their_shapes():
    # Figs. 5-25/5-27: dL/dX has the shape of X, (N, 2); dL/dW that of W, (2, 3); dL/dB that of B, (3,).
    root = ET.fromstring(svg("affine"))
    under = {
        t.get("data-src"): "".join(t.itertext())
        for t in root.iter(f"{SVG}text")
        if t.get("class") == "backward-shape"
    }
    assert under == {"x": "(N, 2)", "W": "(2, 3)", "b": "(3,)", "xW": "(N, 3)", "out": "(N, 3)"}
    # Each under its backward value, as the forward shape is above the forward value.
    texts = {(t.get("class"), t.get("data-src")): float(t.get("y")) for t in root.iter(f"{SVG}text")}
    for src in under:
        assert (
            texts[("shape", src)]
            < texts[("forward", src)]
            < texts[("backward", src)]
            < texts[("backward-shape", src)]
        )


def test_softmax_with_loss_is_one_graph_with_no_value_back_along_the_labels():
    # Fig. 5-29: every variable drawn once (y1..y3 are not drawn again as inputs of a second row), and
    # the labels t_k carry a forward value only.
    from chainrule.codegen.figures import layout_for

    document = svg("softmax_with_loss")
    found = arrows(document)
    layout = layout_for("softmax_with_loss")
    drawn = [c.name for c in layout.circles] + [v.name for v in layout.inputs]
    assert len(drawn) == len(set(drawn)) and not {"y1", "y2", "y3"} & {v.name for v in layout.inputs}
    nodes = [t.get("data-var") for t in ET.fromstring(document).iter(f"{SVG}circle")]
    d = symbolic.derive("softmax_with_loss")
    assert len(nodes) == len(set(nodes)) == len(d.graph.nodes)
    edges = {(v.name, n.out.name) for n in d.graph.nodes for v in n.inputs} | {(d.graph.output.name, "")}
    assert set(found) == edges
    for k in (1, 2, 3):
        assert found[(f"t{k}", f"m{k}")] == {"forward": f"t{'₀₁₂₃'[k]}"}
    assert found[("a1", "e1")]["backward"] == "y₁ − t₁"


@pytest.mark.parametrize("name", ["apples", "apples_oranges", "shopping_variables", "shopping_two"])
def test_japanese_figures_name_the_shopping_in_the_books_words(name):
    from chainrule.codegen.figures import tikz
    from chainrule.codegen.i18n import language

    with language("ja"):
        document, picture = svg(name), tikz(name)
    words = " ".join("".join(t.itertext()) for t in ET.fromstring(document).iter(f"{SVG}text"))
    assert "りんご" in words and "消費税" in words and "支払金額" in words
    assert "apple" not in words and "tax" not in words and "price" not in words
    assert (
        r"\mbox{りんご}" in picture
        and "apple" not in picture.replace("\\_", "_").split("\\begin{tikzpicture}")[1]
    )
    # English keeps the code's names, in the same process.
    assert "apple" in svg(name) and "りんご" not in svg(name)


def test_japanese_words_are_upright_and_variables_italic():
    from chainrule.codegen.i18n import language

    with language("ja"):
        document = svg("apples")
    assert "<tspan" not in "".join(t for t in document.split("\n") if "りんご" in t)
    assert '<tspan font-style="italic">x</tspan>' in svg("sigmoid")
    assert "exp(−" in svg("sigmoid")  # the function's name upright, its argument x in italic


def test_tikz_multiplies_with_the_dot_the_svg_has():
    from chainrule.codegen.figures import FIGURES, tikz

    for name in FIGURES:
        dots = sum("".join(t.itertext()).count("·") for t in ET.fromstring(svg(name)).iter(f"{SVG}text"))
        body = tikz(name).split("\n", 3)[3]  # after the comment lines, which name the figure
        assert body.count(r"\cdot") == dots, name
    assert r"{$\partial L/\partial y \cdot y^{2} \cdot \exp\left(- x\right)$}" in tikz("sigmoid")
    assert r"- t_{1} / \left(S \cdot y_{1}\right)" in tikz("softmax_with_loss")


def test_the_svg_shows_its_labels_at_body_size_and_scales():
    root = ET.fromstring(svg("apples"))
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    # 12-unit labels shown at 17 px; the viewBox lets a page draw the figure at any width.
    assert float(root.get("width")) == pytest.approx(width * 17 / 12, abs=0.1)
    assert float(root.get("height")) == pytest.approx(height * 17 / 12, abs=0.1)
    assert root.get("font-size") == "12"


def test_a_readers_count_and_tax_go_into_the_circles_of_fig_5_1():
    document = svg("shopping_forward", {"apple_num": 3, "tax": 1.08})
    assert sorted(_texts(document, "op")) == ["×1.08", "×3"]
    assert arrows(document)[("price", "")] == {"forward": "324"}
    assert arrows(svg("apple_derivative", {"tax": 1.08}))[("apple", "apple_price")]["backward"] == "2.16"


def _name_box(t: ET.Element) -> tuple[float, float, float, float]:
    """A node's name's extent (it is centred): Latin letters measured in DejaVu Sans, the SVG's first font,
    a Japanese character as wide as the font is high."""
    import unicodedata

    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    text, size = "".join(t.itertext()), float(t.get("font-size"))
    wide = [ch for ch in text if unicodedata.east_asian_width(ch) in "WF"]
    latin = "".join(ch for ch in text if ch not in wide)
    width = size * len(wide)
    if latin:
        width += TextToPath().get_text_width_height_descent(
            latin, FontProperties(family="DejaVu Sans", size=size), False
        )[0]
    x, y = float(t.get("x")), float(t.get("y"))
    return (x - width / 2, y - 0.76 * size, x + width / 2, y + 0.24 * size)


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("name", ["apples_oranges", "shopping_two", "local_computation", "apples"])
def test_no_arrowhead_touches_a_nodes_name(name, lang):
    # In Fig. 5-15 the head of the arrow into the + node sat on the "a" of all_price.
    from chainrule.codegen.i18n import language

    with language(lang):
        root = ET.fromstring(svg(name))
    names = [_name_box(t) for t in root.iter(f"{SVG}text") if t.get("class") == "var"]
    assert names
    for line in root.iter(f"{SVG}polyline"):
        if line.get("class") != "edge":
            continue
        (x0, y0), (x1, y1) = [tuple(float(v) for v in p.split(",")) for p in line.get("points").split()[-2:]]
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        # The head: 11 units back from the tip, 4.5 either side of the line; 3 units of room around a name.
        head = [(x1 - ux * b + uy * s, y1 - uy * b - ux * s) for b in (0, 4, 8, 11) for s in (-4.5, 0, 4.5)]
        for left, top, right, bottom in names:
            assert not any(left - 3 < x < right + 3 and top - 3 < y < bottom + 3 for x, y in head), (
                name,
                line.get("data-dst"),
            )
