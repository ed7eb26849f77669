"""The chapter's pictures: SVG and TikZ drawn from the derivations' graphs, with their numbers."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import sympy as sp

from chainrule import symbolic
from chainrule.cli import UsageError
from chainrule.codegen.document import document
from chainrule.codegen.figures import FIGURES, svg, tikz
from chainrule.codegen.layout import UnknownFigure, layout_for
from chainrule.codegen.layout.geometry import Layout, Point
from chainrule.codegen.layout.labels import BOOK
from chainrule.codegen.text import decimal, text
from chainrule.commands import graph as graph_cmd
from chainrule.symbolic.core import Partial

SVG = "{http://www.w3.org/2000/svg}"
FORWARD_ONLY = ("shopping_forward", "shopping_variables", "shopping_two", "local_computation")


def labels(name: str) -> dict[tuple[str, str], dict[str, str]]:
    """Every arrow's labels in a figure's SVG: (src, dst) -> {"forward": ..., "backward": ...}."""
    root = ET.fromstring(svg(name))
    found: dict[tuple[str, str], dict[str, str]] = {}
    for t in root.iter(f"{SVG}text"):
        if t.get("class") in ("forward", "backward"):
            found.setdefault((t.get("data-src"), t.get("data-dst")), {})[t.get("class")] = "".join(
                t.itertext()
            )
    return found


@pytest.mark.parametrize("name", FIGURES)
def test_svg_is_xml_with_a_title_and_a_label_on_every_arrow(name):
    root = ET.fromstring(svg(name))
    assert root.tag == f"{SVG}svg"
    book = " / ".join(f"図{n}" for n in BOOK[name][0])
    assert root.find(f"{SVG}title").text == f"{book} ({layout_for(name).title})"
    arrows = layout_for(name).arrows
    assert len(root.findall(f".//{SVG}polyline[@class='edge']")) == len(arrows)
    found = labels(name)
    assert sorted(found) == sorted((a.src, a.dst or "") for a in arrows)
    # Figs. 5-1 to 5-4 are forward only; Figs. 5-29 and 5-30 draw nothing back along the labels t_k,
    # which are data; every other arrow has both.
    if name in FORWARD_ONLY:
        data = set(found)
    elif name.startswith("softmax_with_loss"):
        data = {k for k in found if k[0] in ("t1", "t2", "t3")}
    else:
        data = set()
    assert all(
        set(v) == {"forward", "backward"} and all(v.values()) for k, v in found.items() if k not in data
    )
    assert all(set(found[k]) == {"forward"} for k in data)


@pytest.mark.parametrize("name", FIGURES)
def test_svg_is_deterministic_and_self_contained(name):
    first = svg(name)
    layout_for.cache_clear()
    assert svg(name) == first
    assert "http" not in first.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "url(#" in first  # arrowheads are markers defined in the file itself


@pytest.mark.parametrize("name", ["apples", "apples_oranges"])
def test_shopping_numbers_are_the_derivations(name):
    example = symbolic.derive(name).examples[0]
    found = labels(name)
    for e in example.edges:
        drawn = found.pop((e.src.name, e.dst.name))
        assert sp.Rational(drawn["forward"]) == e.forward and sp.Rational(drawn["backward"]) == e.backward
        assert drawn == {"forward": decimal(e.forward), "backward": decimal(e.backward)}
    # What is left is the output arrow: the price forward, the seed 1 backward.
    assert found == {
        ("price", ""): {
            "forward": decimal(example.value(symbolic.derive(name).graph.output)),
            "backward": "1",
        }
    }


def test_apples_oranges_as_in_the_chapter():
    found = labels("apples_oranges")
    assert found[("tax", "price")] == {"forward": "1.1", "backward": "650"}
    assert found[("orange", "orange_price")]["backward"] == "3.3"
    assert found[("apple", "apple_price")] == {"forward": "100", "backward": "2.2"}
    assert found[("orange_price", "all_price")] == {"forward": "450", "backward": "1.1"}
    assert found[("price", "")] == {"forward": "715", "backward": "1"}


def test_apples_as_in_the_chapter():
    found = labels("apples")
    assert found[("apple", "apple_price")] == {"forward": "100", "backward": "2.2"}
    assert found[("apple_num", "apple_price")] == {"forward": "2", "backward": "110"}
    assert found[("tax", "price")] == {"forward": "1.1", "backward": "200"}
    assert found[("price", "")] == {"forward": "220", "backward": "1"}


@pytest.mark.parametrize(
    ("name", "result", "dx", "dy"),
    [("add", "15", "1.3", "1.3"), ("mul", "50", "6.5", "13")],
)
def test_add_and_mul_nodes(name, result, dx, dy):
    found = labels(name)
    assert found == {
        ("x", "z"): {"forward": "10", "backward": dx},
        ("y", "z"): {"forward": "5", "backward": dy},
        ("z", ""): {"forward": result, "backward": "1.3"},
    }


def test_sigmoid_carries_the_books_running_products():
    # Fig. 5-20: right to left, dL/dy, -dL/dy y^2 (twice), -dL/dy y^2 exp(-x), dL/dy y^2 exp(-x).
    sigmoid = labels("sigmoid")
    assert sigmoid[("out", "")] == {"forward": "y", "backward": "∂L/∂y"}
    assert sigmoid[("c", "out")] == {"forward": "1 + exp(−x)", "backward": "−∂L/∂y·y²"}
    assert sigmoid[("b", "c")] == {"forward": "exp(−x)", "backward": "−∂L/∂y·y²"}
    assert sigmoid[("a", "b")] == {"forward": "−x", "backward": "−∂L/∂y·y²·exp(−x)"}
    assert sigmoid[("x", "a")] == {"forward": "x", "backward": "∂L/∂y·y²·exp(−x)"}
    # Fig. 5-22: the same product written in y alone.
    assert labels("sigmoid_simple")[("x", "out")] == {"forward": "x", "backward": "∂L/∂y·y(1 − y)"}


def test_sigmoid_tikz_labels_are_the_running_products():
    picture = tikz("sigmoid")
    assert r"{$\partial L/\partial y \cdot y^{2} \cdot \exp\left(- x\right)$}" in picture
    assert r"{$-\partial L/\partial y \cdot y^{2}$}" in picture
    assert r"{$1 + \exp\left(- x\right)$}" in picture


def test_sigmoid_labels_follow_the_derivation():
    # The products come from the graph: a graph whose last node squares instead of inverting
    # sends back 2y-like factors, not the chapter's y^2.
    from chainrule.codegen.layout.labels import _symbolic_labels
    from chainrule.symbolic.core import Graph, node

    d = symbolic.derive("sigmoid")
    x, out = d.graph.inputs[0], d.graph.output
    a, b, c = (n.out for n in d.graph.nodes[:3])
    changed = Graph((x,), d.graph.nodes[:3] + (node(out, "/", (c,), 2 / c),), out)
    found = _symbolic_labels(dataclasses.replace(d, graph=changed))
    assert found[(x, a)][1].text == "∂L/∂y·y²·exp(−x)/2"
    assert found[(c, out)][1].text == "−∂L/∂y·y²/2"


def test_chain_rule_ends_in_two_x_plus_y():
    # Fig. 5-8: the "**2" node, and dz/dx = 2(x + y) on the arrows back.
    found = labels("chain_rule")
    assert found[("t", "z")] == {"forward": "t", "backward": "2(x + y)"}
    assert found[("x", "t")] == {"forward": "x", "backward": "2(x + y)"}
    assert found[("z", "")] == {"forward": "z", "backward": "1"}
    ops = {
        t.get("data-var"): "".join(t.itertext())
        for t in ET.fromstring(svg("chain_rule")).iter(f"{SVG}text")
        if t.get("class") == "op"
    }
    assert ops == {"t": "+", "z": "**2"}


def test_relu_label_reads_as_the_books_cases():
    assert labels("relu")[("x", "out")]["backward"] == "∂L/∂y (x > 0), 0 (x ≤ 0)"


def test_softmax_with_loss_labels():
    softmax = labels("softmax_with_loss")
    assert softmax[("y1", "l1")]["backward"] == "−t₁/y₁"
    assert softmax[("r", "y2")] == {"forward": "1/S", "backward": "−S·t₂"}
    # With one-hot labels (t1 + t2 + t3 = 1), as the chapter simplifies Fig. 5-29.
    assert softmax[("e3", "S")] == {"forward": "exp(a₃)", "backward": "1/S"}
    assert softmax[("a1", "e1")] == {"forward": "a₁", "backward": "y₁ − t₁"}
    assert softmax[("e2", "y2")]["backward"] == "−t₂/(S·y₂)"
    assert softmax[("s", "L")]["backward"] == "−1"
    assert softmax[("L", "")]["backward"] == "1"


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_names_its_book_figure(name):
    numbers = BOOK[name][0]
    title = ET.fromstring(svg(name)).find(f"{SVG}title").text
    assert all(f"図{n}" in title and n in layout_for(name).title for n in numbers)
    assert layout_for(name).title.startswith("Figure")
    assert f"{layout_for(name).title}" in tikz(name)


def test_affine_shows_every_shape_and_the_matrix_gradients():
    root = ET.fromstring(svg("affine"))
    shapes = {
        t.get("data-src"): "".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "shape"
    }
    # Fig. 5-27's shapes, at the book's sizes: X is (N, 2), W (2, 3), and b NumPy's (3,).
    assert shapes == {"x": "(N, 2)", "W": "(2, 3)", "b": "(3,)", "xW": "(N, 3)", "out": "(N, 3)"}
    found = labels("affine")
    assert found[("x", "xW")] == {"forward": "X", "backward": "∂L/∂Y · Wᵀ"}
    assert found[("W", "xW")] == {"forward": "W", "backward": "Xᵀ · ∂L/∂Y"}
    assert found[("b", "out")]["backward"] == "1ᵀ · ∂L/∂Y"
    assert found[("out", "")] == {"forward": "Y", "backward": "∂L/∂Y"}


def test_labels_are_escaped_for_xml():
    from chainrule.codegen.figures import xml

    assert xml('a < b & "c" > d') == "a &lt; b &amp; &quot;c&quot; &gt; d"
    assert '<tspan font-style="italic">x</tspan> &gt; 0' in svg("relu")


def test_text_printer():
    x, y, c = sp.symbols("x y c", real=True)
    out, a1 = sp.Symbol("out", real=True), sp.Symbol("a1", real=True)
    assert text(-(out**2)) == "−y²"
    assert text(sp.Symbol("dout") * out * (1 - out), out) == "∂L/∂y·y(1 − y)"
    assert text(-1 / c**2) == "−1/c²"
    assert text(sp.exp(-x)) == "exp(−x)"
    assert text(Partial(sp.Symbol("L"), a1)) == "∂L/∂a₁"
    assert text(sp.Rational(11, 5)) == "2.2" and text(sp.Rational(1, 3)) == "1/3"
    assert text(sp.Symbol("apple_num")) == "apple_num"


def crosses(p: Point, q: Point, r: Point, s: Point) -> bool:
    """Whether two segments cross at a point inside both (touching ends do not count)."""

    def side(a: Point, b: Point, c: Point) -> float:
        return (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)

    return side(r, s, p) * side(r, s, q) < 0 and side(p, q, r) * side(p, q, s) < 0


def crossings(layout: Layout) -> int:
    pieces = [(p, q) for a in layout.arrows for p, q in zip(a.points, a.points[1:], strict=False)]
    return sum(crosses(*one, *two) for i, one in enumerate(pieces) for two in pieces[i + 1 :])


@pytest.mark.parametrize("name", FIGURES)
def test_layout_reads_left_to_right(name):
    layout = layout_for(name)
    xs = [c.at.x for c in layout.circles] + [p.x for a in layout.arrows for p in a.points]
    # Fig. 5-29's labels t_k are data: they enter where they are used, as in the book.
    late = {"t1", "t2", "t3"} if name == "softmax_with_loss" else set()
    assert all(v.at.x == min(xs) for v in layout.inputs if v.name not in late)
    tips = [a.points[-1].x for a in layout.arrows if a.dst is None]
    assert max(xs) in tips and layout.output.at.x in tips
    for a in layout.arrows:
        assert all(p.x < q.x for p, q in zip(a.points, a.points[1:], strict=False)), (a.src, a.dst)
    # Arrows start at their source and end at their target circle's edge.
    circles = {c.name: c for c in layout.circles}
    for a in layout.arrows:
        if a.dst is not None and circles[a.dst].box is None:
            c, end = circles[a.dst], a.points[-1]
            assert abs(((end.x - c.at.x) ** 2 + (end.y - c.at.y) ** 2) ** 0.5 - c.r) < 0.2
        elif a.dst is not None:  # a layer drawn as a box: the arrow ends on its left side
            c, end = circles[a.dst], a.points[-1]
            assert end.x == c.at.x - c.box[0] and abs(end.y - c.at.y) <= c.box[1]


@pytest.mark.parametrize("name", [n for n in FIGURES if n != "softmax_with_loss"])
def test_no_two_arrows_cross(name):
    assert crossings(layout_for(name)) == 0


def test_softmax_with_loss_crosses_little():
    # e2's arrow to y2 must pass the S -> 1/S -> y arrows that fan out around it.
    assert crossings(layout_for("softmax_with_loss")) <= 2


def test_softmax_with_loss_in_one_row():
    # Fig. 5-29 as the book draws it: one graph, left to right, each variable once; the labels t_k
    # enter at the multiply nodes that use them, and nothing goes back along them.
    layout = layout_for("softmax_with_loss")
    assert [a.src for a in layout.arrows if a.dst is None] == ["L"]
    assert sorted(c.name for c in layout.circles) == sorted(
        n.out.name for n in symbolic.derive("softmax_with_loss").graph.nodes
    )
    logs = [c for c in layout.circles if c.op.text == "log"]
    exps = [c for c in layout.circles if c.op.text == "exp"]
    assert max(c.at.x for c in exps) < min(c.at.x for c in logs)
    ts = {v.name: v.at for v in layout.inputs if v.name.startswith("t")}
    assert all(at.x >= max(c.at.x for c in logs) for at in ts.values())
    assert all(not a.backward.label.text for a in layout.arrows if a.src in ts)


def test_unknown_figure():
    with pytest.raises(UnknownFigure, match="valid names: shopping_forward, shopping_variables"):
        layout_for("apple")


def test_standalone_document_has_the_figures_and_the_fragment_has_none():
    derivations = [symbolic.derive(n) for n in symbolic.NAMES]
    whole = document(derivations, standalone=True)
    assert r"\usepackage{tikz}" in whole
    # every chapter graph, and the one-node sigmoid; spec'd layers are drawn as one node too
    assert whole.count(r"\begin{tikzpicture}") >= 10
    fragment = document(derivations)
    assert r"\usepackage" not in fragment and "tikzpicture" not in fragment


def _tikz_available() -> bool:
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        return False
    found = subprocess.run(["kpsewhich", "tikz.sty"], capture_output=True, text=True)
    return found.returncode == 0 and bool(found.stdout.strip())


@pytest.mark.slow
@pytest.mark.skipif(not _tikz_available(), reason="pdflatex with TikZ (texlive-pictures) is not installed")
def test_tikz_figures_compile(tmp_path):
    body = "\n\n".join(rf"\noindent{{}}{tikz(name)}\par\bigskip" for name in FIGURES)
    tex = tmp_path / "figures.tex"
    tex.write_text(
        "\\documentclass{article}\n\\usepackage[margin=1cm,landscape]{geometry}\n\\usepackage{tikz}\n"
        f"\\begin{{document}}\n{body}\n\\end{{document}}\n"
    )
    r = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "figures.pdf").read_bytes()[:5] == b"%PDF-"


def test_graph_command_writes_the_svg(tmp_path, capsys):
    target = tmp_path / "apples.svg"
    assert graph_cmd.run(argparse.Namespace(name="apples", output=str(target))) == 0
    assert target.read_text(encoding="utf-8") == svg("apples")
    assert [p.name for p in tmp_path.iterdir()] == ["apples.svg"]
    assert capsys.readouterr().err == f"wrote {target}\n"


def test_graph_command_prints_without_output(capsys):
    assert graph_cmd.run(argparse.Namespace(name="add", output=None)) == 0
    assert capsys.readouterr().out == svg("add")


def test_graph_command_unknown_name():
    with pytest.raises(UsageError) as info:
        graph_cmd.run(argparse.Namespace(name="apple", output=None))
    assert str(info.value) == "unknown figure 'apple'; valid names: " + ", ".join(FIGURES)


def test_graph_command_unwritable_path(tmp_path):
    target = tmp_path / "missing" / "a.svg"
    with pytest.raises(UsageError) as info:
        graph_cmd.run(argparse.Namespace(name="apples", output=str(target)))
    assert str(info.value) == f"cannot write {target}: No such file or directory"
    assert not target.parent.exists()


def test_graph_command_parser():
    parser = argparse.ArgumentParser()
    graph_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["graph", "sigmoid", "-o", "s.svg"])
    assert (args.name, args.output, args.func) == ("sigmoid", "s.svg", graph_cmd.run)


def test_readme_figure_is_current():
    from pathlib import Path

    from chainrule.codegen.figures import svg

    readme_svg = Path(__file__).resolve().parents[2] / "docs" / "apples_oranges.svg"
    assert readme_svg.read_text() == svg("apples_oranges")


def _segments(root: ET.Element) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Every straight piece of every arrow drawn, forward and backward, from the SVG's own points."""
    pieces = []
    for line in root.iter(f"{SVG}polyline"):
        pts = [tuple(float(v) for v in p.split(",")) for p in line.get("points").split()]
        pieces += list(zip(pts, pts[1:], strict=False))
    return pieces


def _text_boxes(root: ET.Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Every label's extent, measured with the SVG's first font (DejaVu Sans, which Matplotlib ships).

    An independent measure: the layout places labels by its own estimate of their width.
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    measure = TextToPath()
    boxes = []
    inherited = {t: g.get("text-anchor") for g in root.iter(f"{SVG}g") for t in g.iter(f"{SVG}text")}
    for t in root.iter(f"{SVG}text"):
        if t.get("class") == "op":  # inside its circle, which no arrow enters
            continue
        size = float(t.get("font-size") or root.get("font-size"))
        weight = t.get("font-weight") or "normal"
        width, _, _ = measure.get_text_width_height_descent(
            "".join(t.itertext()),
            FontProperties(family="DejaVu Sans", size=size, weight=weight),
            ismath=False,
        )
        x, y = float(t.get("x")), float(t.get("y"))
        anchor = t.get("text-anchor") or inherited.get(t) or "start"
        left = x - (0 if anchor == "start" else width if anchor == "end" else width / 2)
        boxes.append(("".join(t.itertext()), (left, y - 0.76 * size, left + width, y + 0.24 * size)))
    return boxes


def _segment_hits_box(p, q, box) -> bool:
    """Whether segment pq passes through the inside of the box (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = p, q
    t0, t1 = 0.0, 1.0
    dx, dy = x1 - x0, y1 - y0
    for step, room in ((-dx, x0 - box[0]), (dx, box[2] - x0), (-dy, y0 - box[1]), (dy, box[3] - y0)):
        if step == 0:
            if room <= 0:
                return False
            continue
        t = room / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1:
            return False
    return True


@pytest.mark.parametrize("name", FIGURES)
def test_no_label_is_crossed_by_an_arrow_or_covers_another(name):
    root = ET.fromstring(svg(name))
    boxes = _text_boxes(root)
    inner = [(label, (b[0] + 0.5, b[1] + 0.5, b[2] - 0.5, b[3] - 0.5)) for label, b in boxes]
    crossed = [label for label, box in inner for p, q in _segments(root) if _segment_hits_box(p, q, box)]
    assert crossed == []
    covered = [
        (one, two)
        for i, (one, a) in enumerate(inner)
        for two, b in inner[i + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]
    assert covered == []
    width = float(root.get("viewBox").split()[2])
    assert all(0 <= b[0] and b[2] <= width for _, b in boxes)


def test_overlap_check_sees_a_crossing():
    # The check itself: a label moved onto an arrow is caught.
    root = ET.fromstring(svg("add"))
    edge = next(root.iter(f"{SVG}polyline"))
    (x0, y0), (x1, y1) = _segments(root)[0]
    label = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "forward")
    label.set("x", str((x0 + x1) / 2))
    label.set("y", str((y0 + y1) / 2 + 4))
    label.set("text-anchor", "middle")
    assert edge is not None
    assert any(_segment_hits_box(p, q, box) for _, box in _text_boxes(root) for p, q in _segments(root))


def test_document_keeps_the_chapter_first_and_the_shipped_layers_in_an_appendix():
    derivations = [symbolic.derive(n) for n in symbolic.NAMES]
    whole = document(derivations, standalone=True)
    assert "symbolic/shipped.py" not in whole
    appendix = whole.index(r"\section*{Appendix: more layers, derived the same way}")
    assert whole.index(r"\section*{Softmax-with-Loss}") < appendix < whole.index(r"\section*{Tanh}")
    assert "A layer chainrule ships, given as a spec; its forward formula is the first line below." in whole
    # Each chapter figure comes with the book's figure number it redraws.
    for label in ("Figure 5-8.", "Figures 5-19/5-20.", "Figures 5-21/5-22.", "Figure 5-29."):
        assert label in whole


def test_simplified_softmax_with_loss_is_the_books_figure_5_30():
    root = ET.fromstring(svg("softmax_with_loss_simple"))
    boxes = {"".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "op"}
    assert boxes == {"Softmax", "Cross Entropy Error"}
    assert len(root.findall(f".//{SVG}rect[@class='node']")) == 2
    found = labels("softmax_with_loss_simple")
    for k in (1, 2, 3):
        sub = "₀₁₂₃"[k]
        assert found[(f"a{k}", "softmax")] == {"forward": f"a{sub}", "backward": f"y{sub} − t{sub}"}
        assert found[(f"y{k}", "cross_entropy_error")] == {
            "forward": f"y{sub}",
            "backward": f"−t{sub}/y{sub}",
        }
        assert found[(f"t{k}", "cross_entropy_error")] == {"forward": f"t{sub}"}
    assert found[("L", "")] == {"forward": "L", "backward": "1"}
    # y_k - t_k is what the whole graph of Fig. 5-29 sends back to a_k.
    assert labels("softmax_with_loss")[("a2", "e2")]["backward"] == "y₂ − t₂"


@pytest.mark.slow
@pytest.mark.skipif(not _tikz_available(), reason="pdflatex with TikZ (texlive-pictures) is not installed")
def test_labels_are_at_least_7pt_on_the_documents_page(tmp_path):
    # Typeset each figure in the standalone document's own preamble and measure it against the
    # line: a wider figure is shrunk to the line, and its labels with it.
    preamble = document([], standalone=True).split(r"\begin{document}")[0]
    body = "\n".join(
        rf"\setbox0=\hbox{{{tikz(name)}}}\typeout{{FIGURE {name} \the\wd0 \space\the\linewidth}}"
        for name in FIGURES
    )
    (tmp_path / "sizes.tex").write_text(preamble + "\\begin{document}\n" + body + "\n\\end{document}\n")
    r = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "sizes.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:]
    log = (tmp_path / "sizes.log").read_text()
    widths = {
        line.split()[1]: [float(v.removesuffix("pt")) for v in line.split()[2:4]]
        for line in log.splitlines()
        if line.startswith("FIGURE ")
    }
    assert set(widths) == set(FIGURES)
    # The labels are \footnotesize (9 pt in an 11 pt document), shapes and names \scriptsize (8 pt).
    for name, (width, line) in widths.items():
        scale = min(1.0, line / width)
        smallest = 8.0 if any(a.shape for a in layout_for(name).arrows) or layout_for(name).numbers else 9.0
        # Fig. 5-29 is one graph of 22 nodes, as wide as the book's: shrunk to the line, it keeps 6 pt.
        least = 6.0 if name == "softmax_with_loss" else 7.0
        assert smallest * scale >= least, (name, width, line, smallest * scale)


def test_a_figure_is_also_reached_from_its_derivation():
    assert svg(symbolic.derive("sigmoid")) == svg("sigmoid")
    assert tikz(symbolic.derive("relu")) == tikz("relu")
    # A layer without a figure of the book is refused by name, never by its whole repr.
    with pytest.raises(UnknownFigure) as info:
        svg(symbolic.derive("tanh"))
    assert str(info.value).startswith("unknown figure 'tanh'; valid names: shopping_forward, shopping")
    with pytest.raises(TypeError, match="not int"):
        svg(3)
