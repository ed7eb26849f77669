"""What a figure's layout is made of (labels, circles, arrows), its sizes, and the room a label takes."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from chainrule.codegen.i18n import translate

ROW = 90.0  # vertical distance between neighbours in a column
FORWARD_ROW = 60.0  # the same in a figure with forward values only
SHAPE_ROW = 40.0  # more of it when the arrows also carry a matrix's shape, above and below
CHAR = 7.0  # estimated width of one character of a 12 px label
MIN_GAP = 110.0  # narrowest gap between two columns
PAD = 14.0  # room left and right of an arrow's label
ASCENT = 10.0  # height of a 12 px label above its baseline
DESCENT = 3.0  # and below it
MARGIN = 20.0
TITLE_CHAR = 9.2  # estimated width of one character of the 15 px bold title
WIDE = 1.7  # a Japanese character, in those widths: as wide as the font is high
TOP = 64.0  # room for the title and the labels above the first row
SWEEPS = 8  # rounds of barycenter ordering, down then up


@dataclass(frozen=True)
class Label:
    """One label, printed twice: plain Unicode for SVG, LaTeX math for TikZ."""

    text: str
    tex: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Placed:
    """A label placed on a picture, as TikZ places nodes: ``at`` is the point of its box
    named by ``anchor`` ("north west", "south", "east", "center", ...)."""

    label: Label
    at: Point
    anchor: str


@dataclass(frozen=True)
class Circle:
    """A node: its operation inside the circle; the variable it computes under it, unless the
    arrows already name it (``var`` is None)."""

    name: str
    op: Label
    at: Point
    r: float
    var: Placed | None
    box: tuple[float, float] | None = None  # a whole layer drawn as a box: its half width and height


@dataclass(frozen=True)
class VarLabel:
    """A graph input's name where its arrow starts (``at``), or the output's where its arrow ends."""

    name: str
    at: Point
    text: Placed


@dataclass(frozen=True)
class Arrow:
    """An edge from ``src`` to the node computing ``dst``; ``dst`` is None for the output arrow.

    ``points`` run from the source's boundary to the target's, bending once per
    column crossed.  The labels sit by the piece ``points[label_at:label_at + 2]``:
    the forward value above it, a short backward arrow under it, the backward
    value below that, and a matrix's shape above the forward value and below the
    backward value.
    """

    src: str
    dst: str | None
    points: tuple[Point, ...]
    label_at: int
    forward: Placed
    backward: Placed
    shape: Placed | None
    back_arrow: tuple[Point, Point]
    back_shape: Placed | None = None  # the backward value's shape, the same, under it (Figs. 5-25, 5-27)


@dataclass(frozen=True)
class Layout:
    """One picture of the chapter, ready to draw.

    ``numbers`` says the arrows carry numbers, so the variables are named
    beside them (inputs at the left, the output at the right, each node's
    variable under its circle); otherwise the arrows' labels are the names.
    """

    name: str
    title: str
    book: tuple[str, ...]
    numbers: bool
    circles: tuple[Circle, ...]
    inputs: tuple[VarLabel, ...]
    output: VarLabel
    arrows: tuple[Arrow, ...]
    width: float
    height: float
    bold: tuple[str, ...] = ()  # the letters that name matrices, bold as the LaTeX printer sets them


def _columns(text: str) -> float:
    """A text's width in Latin characters: a Japanese character is as wide as its font size."""
    return sum(WIDE if unicodedata.east_asian_width(ch) in "WF" else 1.0 for ch in text)


def _width(label: Label) -> float:
    return CHAR * _columns(label.text)


def _title_width(title: str) -> float:
    """The room the title takes, in the reader's language."""
    return MARGIN + TITLE_CHAR * _columns(translate(title))


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _box(placed: Placed) -> Box:
    """The estimated extent of a placed label."""
    w, h = _width(placed.label), ASCENT + DESCENT
    left = placed.at.x - (0 if "west" in placed.anchor else w if "east" in placed.anchor else w / 2)
    top = placed.at.y - (0 if "north" in placed.anchor else h if "south" in placed.anchor else h / 2)
    return (left, top, left + w, top + h)


def _boxes(arrow: Arrow) -> list[Box]:
    """The estimated extent of an arrow's labels (a forward-only figure's arrows have no backward one)."""
    placed = (arrow.forward, arrow.backward, arrow.shape, arrow.back_shape)
    return [_box(p) for p in placed if p is not None and p.label.text]


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crosses(p: Point, q: Point, box: Box) -> bool:
    """Whether the segment pq passes through the box (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = q.x - p.x, q.y - p.y
    for step, room in ((-dx, p.x - box[0]), (dx, box[2] - p.x), (-dy, p.y - box[1]), (dy, box[3] - p.y)):
        if step == 0:
            if room < 0:
                return False
            continue
        t = room / step
        if step < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def _clip(a: Point, b: Point, r: float) -> Point:
    """The point at distance ``r`` from ``a`` toward ``b``: where a line leaves a circle."""
    dx, dy = b.x - a.x, b.y - a.y
    length = (dx * dx + dy * dy) ** 0.5
    return Point(round(a.x + dx * r / length, 1), round(a.y + dy * r / length, 1))
