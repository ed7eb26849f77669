"""The chapter's pictures, drawn from their layouts as SVG and as TikZ."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape

from chainrule.codegen.environment import render
from chainrule.codegen.i18n import JAPANESE_FONTS, active, translate
from chainrule.codegen.layout import FIGURES, layout_for, layout_with
from chainrule.codegen.layout.geometry import (
    ASCENT,
    DESCENT,
    MARGIN,
    Arrow,
    Circle,
    Label,
    Layout,
    Placed,
    Point,
)
from chainrule.symbolic.core import Derivation

FORWARD_COLOUR = "#000000"
BACKWARD_COLOUR = "#c0392b"
PT_PER_UNIT = 0.75  # TikZ points per drawing unit: a CSS pixel is 3/4 pt
# The SVG's size on a page, in CSS pixels per drawing unit: its 12-unit labels at a page's 17 px body
# text. The viewBox keeps the drawing units, so that a page may scale the figure to any width.
SVG_SCALE = 17 / 12
TITLE_BASELINE = 24.0  # the SVG's title, in the room the layout leaves above the first row

# Each derivation's figures in the document, in the book's order: section 5.1's shopping graphs,
# the sigmoid's also as one node, Softmax-with-Loss's whole graph (Fig. 5-29) before the simplified one.
DOCUMENT_FIGURES: dict[str, tuple[str, ...]] = {
    "computational_graph": (
        "shopping_forward",
        "shopping_variables",
        "shopping_two",
        "local_computation",
        "apple_derivative",
    ),
    "sigmoid": ("sigmoid", "sigmoid_simple"),
    "softmax_with_loss": ("softmax_with_loss", "softmax_with_loss_simple"),
}


def xml(value: str) -> str:
    """Escape text for XML content and double-quoted attributes (the template's autoescape is off)."""
    return escape(value, {'"': "&quot;"})


def _n(value: float) -> str:
    """A coordinate with at most one decimal, and no trailing .0."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class _Text:
    x: str
    y: str
    text: str
    tex: str
    anchor: str
    markup: str = ""  # the text as SVG content: variables in italic, matrices in bold


# A name in a label: letters, then the subscript digits that belong to it (y₁), or the 1 of 1ᵀ.
_NAME = re.compile(r"[A-Za-z]+[₀-₉]*|1ᵀ")


def svg_markup(text: str, bold: tuple[str, ...] = ()) -> str:
    """A label as SVG content, its letters set as the TikZ labels' math sets them: a variable of one
    letter in italic (x, y₁, ∂L/∂y), a word upright (exp, log, apple_num, りんご), a matrix in bold."""
    out, at = [], 0
    for m in _NAME.finditer(text):
        out.append(xml(text[at : m.start()]))
        name = m.group()
        head, tail = (name[:1], name[1:]) if name == "1ᵀ" or name[1:2] in "₀₁₂₃₄₅₆₇₈₉" else (name, "")
        if head in bold:
            out.append(f'<tspan font-weight="bold">{xml(head)}</tspan>{xml(tail)}')
        elif head.isalpha() and len(head) == 1:
            out.append(f'<tspan font-style="italic">{xml(head)}</tspan>{xml(tail)}')
        else:
            out.append(xml(name))
        at = m.end()
    out.append(xml(text[at:]))
    return "".join(out)


@dataclass(frozen=True)
class _Edge:
    src: str
    dst: str
    points: str
    forward: _Text
    backward: _Text
    shape: _Text | None
    back: str
    back_shape: _Text | None = None


@dataclass(frozen=True)
class _Circle:
    name: str
    x: str
    y: str
    r: str
    op: _Text
    var: _Text | None
    box: tuple[str, str, str, str] | None = None  # left, top, width, height of a layer drawn as a box


@dataclass(frozen=True)
class _Picture:
    """A layout with every number and label already printed, for either template."""

    name: str
    title: str
    caption: str
    title_at: _Text
    numbers: bool
    forward_only: bool
    width: str
    height: str
    shown_width: str
    shown_height: str
    edges: tuple[_Edge, ...]
    circles: tuple[_Circle, ...]
    inputs: tuple[_Text, ...]
    output: _Text


def _text_anchor(anchor: str) -> str:
    """SVG's horizontal alignment for a TikZ anchor."""
    return "start" if "west" in anchor else "end" if "east" in anchor else "middle"


def _baseline(anchor: str) -> float:
    """From a TikZ anchor's height to the baseline SVG places text by."""
    if "north" in anchor:
        return ASCENT
    if "south" in anchor:
        return -DESCENT
    return (ASCENT - DESCENT) / 2


def _tex_prose(text: str) -> str:
    """A caption for LaTeX's text mode: it holds only words, digits and a few marks."""
    return text.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("'", "'")


def _box(c: Circle, tikz: bool) -> tuple[str, str, str, str] | None:
    """A box node's corners: SVG's left, top, width, height; TikZ's two opposite corners (pt)."""
    if c.box is None:
        return None
    w, h = c.box
    if tikz:
        s = PT_PER_UNIT
        return (_n((c.at.x - w) * s), _n(-(c.at.y - h) * s), _n((c.at.x + w) * s), _n(-(c.at.y + h) * s))
    return (_n(c.at.x - w), _n(c.at.y - h), _n(2 * w), _n(2 * h))


def _svg_points(points: tuple[Point, ...]) -> str:
    return " ".join(f"{_n(p.x)},{_n(p.y)}" for p in points)


def _tikz_points(points: tuple[Point, ...]) -> str:
    return " -- ".join(f"({_n(p.x * PT_PER_UNIT)},{_n(-p.y * PT_PER_UNIT)})" for p in points)


def _picture(layout: Layout, tikz: bool) -> _Picture:
    """Print coordinates for SVG (units, y down) or TikZ (points, y up)."""
    points = _tikz_points if tikz else _svg_points

    def text(at: Point, label: Label, anchor: str = "center") -> _Text:
        if tikz:
            return _Text(_n(at.x * PT_PER_UNIT), _n(-at.y * PT_PER_UNIT), label.text, label.tex, anchor)
        return _Text(
            _n(at.x),
            _n(at.y + _baseline(anchor)),
            label.text,
            label.tex,
            _text_anchor(anchor),
            svg_markup(label.text, layout.bold),
        )

    def placed(p: Placed) -> _Text:
        return text(p.at, p.label, p.anchor)

    def edge(a: Arrow) -> _Edge:
        return _Edge(
            src=a.src,
            dst=a.dst or "",
            points=points(a.points),
            forward=placed(a.forward),
            backward=placed(a.backward),
            shape=placed(a.shape) if a.shape else None,
            back=points(a.back_arrow),
            back_shape=placed(a.back_shape) if a.back_shape else None,
        )

    scale = PT_PER_UNIT if tikz else 1.0
    circles = tuple(
        _Circle(
            name=c.name,
            x=_n(c.at.x * scale),
            y=_n((-c.at.y if tikz else c.at.y) * scale),
            r=_n(c.r * scale),
            op=text(c.at, c.op),
            var=placed(c.var) if c.var else None,
            box=_box(c, tikz),
        )
        for c in sorted(layout.circles, key=lambda c: c.name)
    )
    title = translate(layout.title)  # in the reader's language; a spec's own title stays as written
    return _Picture(
        name=layout.name,
        title=title,
        # The SVG's title names the book's figure as the book does; a Japanese title already does.
        caption=" / ".join(f"図{n}" for n in layout.book) + f" ({title})"
        if layout.book and not title.startswith("図")
        else title,
        title_at=text(Point(MARGIN, TITLE_BASELINE - ASCENT), Label(title, _tex_prose(title)), "north west"),
        numbers=layout.numbers,
        forward_only=not any(a.backward.label.text for a in layout.arrows),
        width=_n(layout.width),
        height=_n(layout.height),
        shown_width=_n(layout.width * SVG_SCALE),
        shown_height=_n(layout.height * SVG_SCALE),
        edges=tuple(edge(a) for a in sorted(layout.arrows, key=lambda a: (a.src, a.dst or ""))),
        circles=circles,
        inputs=tuple(placed(v.text) for v in sorted(layout.inputs, key=lambda v: v.name)),
        output=placed(layout.output.text),
    )


def _name(figure: str | Derivation) -> str:
    """A figure's name, also from the derivation it draws (its first figure: the graph itself)."""
    if isinstance(figure, Derivation):
        return DOCUMENT_FIGURES.get(figure.name, (figure.name,))[0]
    if not isinstance(figure, str):
        raise TypeError(f"a figure is named by a string or a Derivation, not {type(figure).__name__}")
    return figure


def svg(name: str | Derivation, values: Mapping[str, object] | None = None) -> str:
    """The figure called ``name`` (or drawing that derivation) as a self-contained SVG document.

    ``values`` redraws a figure with numbers (the shopping graphs, add, mul) with the reader's own
    inputs, ``{"apple": 150}``, computed by the same exact backprop; ValueError names the valid inputs.
    """
    figure = _name(name)
    if values:
        return svg_document(layout_with(figure, values))
    return svg_document(layout_for(figure))


def svg_document(layout: Layout) -> str:
    """A laid-out figure as a self-contained SVG document, its fonts those of the reader's language."""
    picture = _picture(layout, tikz=False)
    return render(
        "graph.svg.jinja",
        p=picture,
        xml=xml,
        forward_colour=FORWARD_COLOUR,
        backward_colour=BACKWARD_COLOUR,
        japanese_fonts=JAPANESE_FONTS if active() == "ja" else "",
    )


def tikz(name: str | Derivation) -> str:
    """The figure called ``name`` (or drawing that derivation) as a ``tikzpicture``; needs only TikZ."""
    picture = _picture(layout_for(_name(name)), tikz=True)
    r, g, b = (int(BACKWARD_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    return render("graph.tikz.jinja", p=picture, backward_rgb=f"rgb,255:red,{r};green,{g};blue,{b}")


# A figure drawn wider than this (pt) would be shrunk below two thirds of its size on the page's
# 480 pt line: the document turns it sideways, along the page's height, on a page of its own.
SIDEWAYS_PT = 640.0


def sideways(name: str) -> bool:
    """Whether the document sets figure ``name`` sideways: its drawing too wide for the line (Fig. 5-29).

    The drawing, not the title: a long title alone is no reason to turn a figure.
    """
    return _drawing_right(layout_for(name)) * PT_PER_UNIT > SIDEWAYS_PT


def _drawing_right(layout: Layout) -> float:
    """The right end of a layout's drawing (arrows, nodes, the output), its title left out."""
    return max(
        [p.x for a in layout.arrows for p in a.points]
        + [c.at.x + (c.box[0] if c.box else c.r) for c in layout.circles]
        + [layout.output.at.x]
    )


def document_figure_names(derivation: str) -> tuple[str, ...]:
    """The names of the figures that go with a derivation in the document, in the book's order."""
    return tuple(n for n in DOCUMENT_FIGURES.get(derivation, (derivation,)) if n in FIGURES)


def document_figures(derivation: str) -> tuple[str, ...]:
    """The TikZ pictures that go with a derivation in the LaTeX document."""
    return tuple(tikz(n) for n in document_figure_names(derivation))
