"""The layered drawing of a graph: columns by depth, the order within them, where nodes and labels go."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from chainrule.codegen.layout.geometry import (
    ASCENT,
    DESCENT,
    MARGIN,
    MIN_GAP,
    PAD,
    ROW,
    SHAPE_ROW,
    SWEEPS,
    TOP,
    Arrow,
    Circle,
    Label,
    Layout,
    Placed,
    Point,
    VarLabel,
    _box,
    _boxes,
    _clip,
    _crosses,
    _overlaps,
    _title_width,
    _width,
)
from chainrule.codegen.layout.labels import BOOK, Labels, _expr, _op, _shape
from chainrule.codegen.text import text
from chainrule.symbolic.core import Graph, Var


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    graph: Graph
    labels: Labels
    numbers: bool
    sizes: dict[sp.Basic, int] = field(default_factory=dict)
    outputs: tuple[Var, ...] = ()  # more than the graph's one output: a part of a larger graph
    late: tuple[Var, ...] = ()  # inputs that enter where they are used, not at the left (the labels t_k)
    gap: float = MIN_GAP  # the narrowest gap between two columns
    beside: float = 1.0  # the share of a label's width a sloping line's gap adds for it
    pad: float = PAD  # room left and right of an arrow's label
    row: float = ROW  # the distance between neighbours in a column


def _depths(graph: Graph, late: tuple[Var, ...] = ()) -> dict[Var, int]:
    """Longest path from an input, in edges; a late input one column before the first node using it."""
    depth: dict[Var, int] = {v: 0 for v in graph.inputs}
    for n in graph.nodes:
        depth[n.out] = 1 + max(depth[v] for v in n.inputs)
    for v in late:
        depth[v] = min(depth[n.out] for n in graph.nodes if v in n.inputs) - 1
    return depth


def _crossings(layers: list[list[str]], edges: list[tuple[str, str]], pos: dict[str, int]) -> int:
    """Pairs of straight pieces between the same two columns whose ends are in opposite orders."""
    by_column: dict[int, list[tuple[int, int]]] = {}
    column = {v: c for c, layer in enumerate(layers) for v in layer}
    for u, v in edges:
        by_column.setdefault(column[u], []).append((pos[u], pos[v]))
    count = 0
    for pieces in by_column.values():
        for i, (a, b) in enumerate(pieces):
            for c, d in pieces[i + 1 :]:
                count += (a - c) * (b - d) < 0
    return count


def _order(layers: list[list[str]], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Barycenter sweeps, down then up; keep the order with the fewest crossings (the first, on ties)."""
    preds: dict[str, list[str]] = {}
    succs: dict[str, list[str]] = {}
    for u, v in edges:
        succs.setdefault(u, []).append(v)
        preds.setdefault(v, []).append(u)

    def positions() -> dict[str, int]:
        return {v: i for layer in layers for i, v in enumerate(layer)}

    def sweep(indices: range, neighbours: dict[str, list[str]]) -> None:
        for c in indices:
            pos = positions()
            layers[c] = sorted(
                layers[c],
                key=lambda v: (
                    sum(pos[u] for u in neighbours[v]) / len(neighbours[v]) if v in neighbours else pos[v],
                    pos[v],
                ),
            )

    def transpose() -> None:
        """Swap neighbours in a column while that removes crossings (the classic refinement)."""
        pos = positions()

        def crossing(u: str, v: str) -> int:
            """Crossings between the pieces at u and those at v, with u above v."""
            return sum(
                pos[p] > pos[q] for side in (preds, succs) for p in side.get(u, ()) for q in side.get(v, ())
            )

        improved = True
        while improved:
            improved = False
            for layer in layers:
                for i in range(len(layer) - 1):
                    u, v = layer[i], layer[i + 1]
                    if crossing(v, u) < crossing(u, v):
                        layer[i], layer[i + 1] = v, u
                        pos[u], pos[v] = i + 1, i
                        improved = True

    best = [list(layer) for layer in layers]
    fewest = _crossings(layers, edges, positions())
    for _sweep in range(SWEEPS):
        sweep(range(1, len(layers)), preds)
        sweep(range(len(layers) - 2, -1, -1), succs)
        transpose()
        count = _crossings(layers, edges, positions())
        if count < fewest:
            best, fewest = [list(layer) for layer in layers], count
    return best


def _pack(desired: list[float], gaps: list[float]) -> list[float]:
    """The positions closest to ``desired`` (least squares) that keep the order, ``gaps[i]`` between
    the i-th and the next.

    Isotonic regression by pooling adjacent violators on desired[i] minus the room above i.
    """
    room = [0.0]
    for g in gaps[: len(desired) - 1]:
        room.append(room[-1] + g)
    blocks: list[list[float]] = []  # [sum, count]
    for i, want in enumerate(desired):
        blocks.append([want - room[i], 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out += [total / count] * int(count)
    return [z + room[i] for i, z in enumerate(out)]


def _rows(
    layers: list[list[str]], edges: list[tuple[str, str]], row: float, late: frozenset[str] = frozenset()
) -> dict[str, float]:
    """Vertical positions: inputs one row apart, then each point at the mean of its predecessors.

    Placing left to right, order kept and a row apart, centres every node on
    the arrows that feed it, as the chapter draws them.  An input that enters
    late (a label t_k) takes half a row beside its neighbour, and the node it
    feeds stays level with its other inputs.
    """
    preds: dict[str, list[str]] = {}
    for u, v in edges:
        preds.setdefault(v, []).append(u)
    y = {v: i * row for i, v in enumerate(layers[0])}
    for layer in layers[1:]:
        want: list[float | None] = []
        for v in layer:
            us = [u for u in preds.get(v, ()) if u not in late] or preds.get(v, [])
            want.append(sum(y[u] for u in us) / len(us) if us else None)
        # A late input sits half a row above its neighbour below it (or below the one above).
        for i in [*reversed(range(len(want))), *range(len(want))]:
            if want[i] is None and i + 1 < len(want) and want[i + 1] is not None:
                want[i] = want[i + 1] - row / 2  # type: ignore[operator]
            elif want[i] is None and i > 0 and want[i - 1] is not None:
                want[i] = want[i - 1] + row / 2  # type: ignore[operator]
        gaps = [row / 2 if a in late or b in late else row for a, b in zip(layer, layer[1:], strict=False)]
        y.update(zip(layer, _pack([w or 0.0 for w in want], gaps), strict=True))
    top = min(y.values())
    return {v: round(TOP + value - top, 1) for v, value in y.items()}


def _radius(op: str) -> float:
    return max(20.0, round(3.6 * len(op) + 8, 1))


def _var_label(label: Label, at: Point, r: float, lines: list[tuple[Point, Point]]) -> Placed:
    """A node's variable under its circle, or above it, or beside it: the first place no arrow crosses,
    with room for the arrowheads, which stand out beside the line they end; else a little further
    off, clear of the arrowheads; else the place the fewest arrows cross."""

    def near(gap: float) -> tuple[Placed, ...]:
        return (
            Placed(label, Point(at.x, round(at.y + r + gap, 1)), "north"),
            Placed(label, Point(at.x, round(at.y - r - gap, 1)), "south"),
        )

    places = (
        *near(3),
        Placed(label, Point(round(at.x - r * 0.7, 1), round(at.y + r * 0.7 + 2, 1)), "north east"),
        Placed(label, Point(round(at.x - r * 0.7, 1), round(at.y - r * 0.7 - 2, 1)), "south east"),
        *near(10),
    )

    def hits(placed: Placed, room: float) -> int:
        left, top, right, bottom = _box(placed)
        return sum(_crosses(p, q, (left - room, top - room, right + room, bottom + room)) for p, q in lines)

    return min(places, key=lambda placed: (hits(placed, 0.0), hits(placed, 5.0) > 0))


def _build(spec: _Spec) -> Layout:
    graph = spec.graph
    depth = _depths(graph, spec.late)
    outs = spec.outputs or (graph.output,)
    last = max(depth[o] for o in outs) + 1
    OUT = "→"  # the end of the output arrow
    ends = {o: OUT + ("" if o == graph.output else o.name) for o in outs}
    ops = {n.out: n.op for n in graph.nodes}

    layers: list[list[str]] = [[] for _ in range(last + 1)]
    for v in graph.inputs:
        layers[depth[v]].append(v.name)
    for n in graph.nodes:
        layers[depth[n.out]].append(n.out.name)
    layers[last] += list(ends.values())

    # Every arrow as a chain of points, one per column; the bends are named after the arrow.
    chains: list[tuple[Var, Var | None, list[str]]] = []
    for n in graph.nodes:
        for v in n.inputs:
            bends = [f"{v.name}>{n.out.name}@{c}" for c in range(depth[v] + 1, depth[n.out])]
            for c, b in zip(range(depth[v] + 1, depth[n.out]), bends, strict=True):
                layers[c].append(b)
            chains.append((v, n.out, [v.name, *bends, n.out.name]))
    for o in outs:
        bends = [f"{o.name}>@{c}" for c in range(depth[o] + 1, last)]
        for c, b in zip(range(depth[o] + 1, last), bends, strict=True):
            layers[c].append(b)
        chains.append((o, None, [o.name, *bends, ends[o]]))
    edges = [(a, b) for _, _, ids in chains for a, b in zip(ids, ids[1:], strict=False)]

    layers = _order(layers, edges)
    shapes = any(isinstance(v, sp.MatrixSymbol) for v in graph.inputs)
    y = _rows(
        layers, edges, spec.row + SHAPE_ROW if shapes else spec.row, frozenset(v.name for v in spec.late)
    )
    column = {v: c for c, layer in enumerate(layers) for v in layer}
    radius = {v.name: _radius(op) for v, op in ops.items()}

    # Which piece of each chain carries the labels: the flattest, the first one on ties (near
    # the source, where the backward arrow ends).
    label_piece: dict[tuple[Var, Var | None], int] = {}
    for src, dst, ids in chains:
        slopes = [abs(y[b] - y[a]) for a, b in zip(ids, ids[1:], strict=False)]
        label_piece[(src, dst)] = min(range(len(slopes)), key=lambda i: (slopes[i], i))

    # Each gap between columns is as wide as the widest label on it needs.
    gaps = [spec.gap] * last
    for src, dst, ids in chains:
        i = label_piece[(src, dst)]
        a, b = ids[i], ids[i + 1]
        fwd, bwd = spec.labels[(src, dst)]
        shape = _shape(src, spec.sizes)
        widest = max(_width(fwd), _width(bwd), _width(shape) if shape else 0.0)
        # Where three lines or more fan out, their labels stand side by side: the most room.
        fan = sum(ids[0] == a for *_, ids in chains) > 2
        need = widest + 2 * (PAD if fan else spec.pad) + radius.get(a, 0.0) + radius.get(b, 0.0)
        if abs(y[b] - y[a]) >= 0.15 * spec.gap:
            # beside a sloping line, the labels stand to its left and to its right
            need += widest * (1.0 if fan else spec.beside)
        gaps[column[a]] = max(gaps[column[a]], need)
    left = MARGIN + (max(_width(_expr(v)) for v in graph.inputs) + 8 if spec.numbers else 0.0)
    xs = [left]
    for g in gaps:
        xs.append(round(xs[-1] + g, 1))
    at = {v: Point(xs[column[v]], y[v]) for v in column}

    # Labels sit where arrows are furthest apart: nearer the start of a piece whose end
    # several arrows meet at, nearer the end of one whose start several arrows leave; where
    # that would cover a line, a circle or another label, at the first place along the
    # piece that covers nothing (or the least).
    fan_in = {v: sum(1 for _, b in edges if b == v) for v in column}
    fan_out = {v: sum(1 for a, _ in edges if a == v) for v in column}
    drawn = []
    for src, dst, ids in chains:
        pts = [at[v] for v in ids]
        pts[0] = _clip(pts[0], pts[1], radius.get(ids[0], 0.0))
        pts[-1] = _clip(pts[-1], pts[-2], radius.get(ids[-1], 0.0))
        drawn.append((src, dst, ids, tuple(pts)))
    lines = [(p, q) for *_, pts in drawn for p, q in zip(pts, pts[1:], strict=False)]

    # With numbers on the arrows, the variables are named beside them: inputs at the left,
    # the output at the tip of its arrow, every other node's variable under its circle.
    named = spec.numbers
    circles = tuple(
        Circle(
            name=n.out.name,
            op=_op(n.op),
            at=at[n.out.name],
            r=radius[n.out.name],
            var=_var_label(_expr(n.out), at[n.out.name], radius[n.out.name], lines)
            if named and n.out not in outs
            else None,
        )
        for n in graph.nodes
    )
    inputs = tuple(
        VarLabel(v.name, at[v.name], Placed(_expr(v), Point(at[v.name].x - 6, at[v.name].y), "east"))
        for v in graph.inputs
    )
    tip = at[OUT]
    output = VarLabel(graph.output.name, tip, Placed(_expr(graph.output), Point(tip.x + 6, tip.y), "west"))
    taken = [(c.at.x - c.r, c.at.y - c.r, c.at.x + c.r, c.at.y + c.r) for c in circles]
    shown = [c.var for c in circles if c.var] + ([v.text for v in inputs] + [output.text] if named else [])
    taken += [_box(placed) for placed in shown]
    arrows = []
    for src, dst, ids, pts in drawn:
        i = label_piece[(src, dst)]
        preferred = 0.5 + 0.1 * ((fan_out[ids[i]] > 1) - (fan_in[ids[i + 1]] > 1))
        best: tuple[int, Arrow] | None = None
        for along in dict.fromkeys((preferred, 0.5, 0.35, 0.65, 0.25, 0.75)):
            arrow = _arrow(src, dst, pts, spec.labels[(src, dst)], _shape(src, spec.sizes), i, along)
            boxes = _boxes(arrow)
            hits = sum(_overlaps(box, other) for box in boxes for other in taken) + sum(
                _crosses(p, q, box) for box in boxes for p, q in lines
            )
            if best is None or hits < best[0]:
                best = (hits, arrow)
            if hits == 0:
                break
        assert best is not None
        arrows.append(best[1])
        taken += _boxes(best[1])
        if best[1].backward.label.text:
            lines.append(best[1].back_arrow)

    bounds = [box for a in arrows for box in _boxes(a)] + taken
    right = max(max(box[2] for box in bounds), output.at.x, _title_width(spec.title))
    bottom = max(max(box[3] for box in bounds), max(p.y for p in at.values()))
    return Layout(
        name=spec.name,
        title=spec.title,
        book=BOOK[spec.name][0] if spec.name in BOOK else (),
        numbers=spec.numbers,
        circles=circles,
        inputs=inputs,
        output=output,
        arrows=tuple(arrows),
        width=round(right + MARGIN, 1),
        height=round(bottom + MARGIN, 1),
        bold=_bold(graph),
    )


def _bold(graph: Graph) -> tuple[str, ...]:
    """The letters the labels write matrices with (X, W, b, Y), and the 1 of the row of ones, 1ᵀ."""
    names = {
        text(v) for v in (*graph.inputs, *(n.out for n in graph.nodes)) if isinstance(v, sp.MatrixSymbol)
    }
    letters = sorted({ch for name in names for ch in name if ch.isalpha()})
    return (*letters, "1") if letters else ()


def _arrow(
    src: Var,
    dst: Var | None,
    points: tuple[Point, ...],
    labels: tuple[Label, Label],
    shape: Label | None,
    piece: int,
    along: float,
) -> Arrow:
    """Place the labels by one piece, ``along`` its length from its start.

    On a flat piece the labels are centred above and below it; on a sloping
    one they stand beside it, each growing away from the line.
    """
    a, b = points[piece], points[piece + 1]
    dx, dy = b.x - a.x, b.y - a.y
    length = (dx * dx + dy * dy) ** 0.5
    nx, ny = -dy / length, dx / length  # the normal pointing down
    mid = Point(a.x + along * dx, a.y + along * dy)
    flat = abs(dy) < 0.15 * dx

    def p(x: float, y: float) -> Point:
        return Point(round(x, 1), round(y, 1))

    def place(label: Label, side: int, gap: float) -> Placed:
        """``side`` -1 above the piece, +1 below; ``gap`` from the line to the label."""
        x, y = mid.x + side * gap * nx, mid.y + side * gap * ny
        vertical = "north" if side > 0 else "south"
        if flat:
            lift = abs(dy / dx) * _width(label) / 2  # so that the line clears the label's ends
            return Placed(label, p(x, y + side * lift), vertical)
        grows_right = (side * nx) > 0
        return Placed(label, p(x, y), f"{vertical} {'west' if grows_right else 'east'}")

    off = 6.0
    back = (
        p(mid.x + 0.15 * dx + off * nx, mid.y + 0.15 * dy + off * ny),
        p(mid.x - 0.15 * dx + off * nx, mid.y - 0.15 * dy + off * ny),
    )
    forward = place(labels[0], -1, 4.0)
    backward = place(labels[1], 1, off + 6.0)  # clear of the backward arrow, tall ∂ included
    return Arrow(
        src=src.name,
        dst=dst.name if dst is not None else None,
        points=points,
        label_at=piece,
        forward=forward,
        backward=backward,
        shape=Placed(shape, p(forward.at.x, forward.at.y - ASCENT - DESCENT - 2), forward.anchor)
        if shape
        else None,
        back_arrow=back,
        back_shape=Placed(shape, p(backward.at.x, backward.at.y + ASCENT + DESCENT + 2), backward.anchor)
        if shape and labels[1].text
        else None,
    )
