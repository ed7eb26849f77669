"""Live figures on a page: the template's views, URL fragments, the script's pieces, whole pages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

from chainrule.codegen.i18n import _, active, translate
from chainrule.codegen.layout import FIGURES, UnknownFigure
from chainrule.codegen.live.figures import (
    LiveFigure,
    live_figure,
)
from chainrule.codegen.live.program import (
    SIGNIFICANT,
    Value,
    _js_string,
    evaluate,
    js,
    js_function,
    shown_value,
)
from chainrule.codegen.text import text

# -- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldView:
    name: str
    label: str
    value: str  # a number's box, as JavaScript writes the number
    rows: tuple[tuple[str, ...], ...] | None  # a matrix's boxes
    choices: tuple[int, ...]
    default: Value


@dataclass(frozen=True)
class FigureView:
    """One live figure as a page holds it: its fields, its inline SVG, its program as a JS object."""

    name: str
    title: str
    fields: tuple[_FieldView, ...]
    svg: str
    spec: str
    fragment: str
    # An input that feeds several nodes: its name as the figure writes it, the identifier of its
    # gradient (the sum of what its arrows carry back, drawn on none of them), and its first value.
    totals: tuple[tuple[str, str, str], ...] = ()


def _totals(f: LiveFigure, values: Mapping[str, Value]) -> tuple[tuple[str, str, str], ...]:
    """The inputs whose gradient is a sum of branches, as the chapter adds them where arrows meet."""
    prog = f.program
    out = []
    for line in prog.reads:
        name = next((n for n, ident in prog.value.items() if ident == line.ident), None)
        branches = [edge for edge in prog.edge if edge[0] == name]
        if name is not None and len(branches) > 1 and name in prog.grad:
            ident = prog.grad[name]
            out.append((text(sp.Symbol(name)), ident, shown_value(values[ident])))
    return tuple(out)


def _boxes(value: Value) -> tuple[tuple[str, ...], ...]:
    """A field's value as its boxes hold it: each number as JavaScript writes it, row by row."""
    rows = value if isinstance(value, tuple) else ((value,),)
    return tuple(tuple(_js_string(float(x)) for x in row) for row in rows)


def _written(value: Value) -> str:
    """A field's value in a URL fragment: a matrix's rows split by ;, their numbers by ,."""
    return ";".join(",".join(row) for row in _boxes(value))


def fragment(name: str, values: Mapping[str, Value] | None = None) -> str:
    """The URL fragment (without #) that opens figure ``name`` with these inputs, the others as first drawn."""
    return fragment_of(live_figure(name), values)


def fragment_of(f: LiveFigure, values: Mapping[str, Value] | None = None) -> str:
    """The URL fragment of a live figure with these inputs: ``apples?apple=150&apple_num=2&tax=1.1``."""
    given = dict(values or {})
    return f.name + "?" + "&".join(f"{x.name}={_written(given.get(x.name, x.default))}" for x in f.fields)


def _json(value: object) -> str:
    """JSON for inside a <script>: nothing in it can end the script."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def spec_js(f: LiveFigure) -> str:
    """The figure for the page's script: its fields, where its numbers go, and its printed program."""
    fields = [
        {"name": x.name, "label": x.label, "default": x.default, "shape": x.shape, "choices": list(x.choices)}
        for x in f.fields
    ]
    body = "\n".join("    " + line for line in js_function(f.program).splitlines())
    return (
        "{\n"
        f"    fields: {_json(fields)},\n"
        f"    bind: {_json(f.bind)},\n"
        f"    ops: {_json(f.ops)},\n"
        f"    rows: {_json(sorted(f.program.rows))},\n"
        f"    exp: {_json(any('Math.exp' in js(line.value) for line in f.program.lines))},\n"
        "    compute: function (input) {\n"
        f"{body}\n"
        "    },\n"
        "  }"
    )


def view(name: str, values: Mapping[str, Value] | None = None) -> FigureView:
    """Figure ``name`` ready for a page's template; ``values`` (checked: :func:`inputs`) fill its boxes
    and draw its first numbers, which the program computes the same way once the script runs."""
    return view_of(live_figure(name, values), values)


def view_of(f: LiveFigure, values: Mapping[str, Value] | None = None) -> FigureView:
    """A live figure ready for a page's template (a spec's layer too), drawn with ``values``."""
    from chainrule.codegen.figures import svg_document
    from chainrule.codegen.html import inline

    name = f.name
    given = dict(values or {})
    fields = []
    for x in f.fields:
        now = given.get(x.name, x.default)
        fields.append(
            _FieldView(
                x.name,
                x.label,
                "" if isinstance(now, tuple) else _boxes(now)[0][0],
                _boxes(now) if isinstance(now, tuple) else None,
                x.choices,
                now,
            )
        )
    picture = inline(svg_document(f.layout), f"live-{name}")
    own = {k: v for k, v in given.items() if k in {x.name for x in f.fields}}
    totals = _totals(f, evaluate(f.program, own))
    return FigureView(
        name, translate(f.title), tuple(fields), picture, spec_js(f), fragment_of(f, own), totals
    )


def messages() -> str:
    """What the page's script says, in the reader's language, as a JavaScript object."""
    return _json(
        {
            "unknown": _("{key} is not an input of this figure; it takes {valid}"),
            "bad": _("{key}={value} is not a number this input takes; it keeps its value"),
            "shape": _(
                "{key}={value} is not {rows} × {cols} numbers (rows split by ; and numbers by ,); it keeps its value"
            ),
            "label": _("{key}={value} is not one of the classes {choices}; it keeps its value"),
            "figure": _("this page has no figure {name}; its figures: {names}"),
            "separator": _(", "),
            "empty": _("type a number in {names}: the figure shows the last numbers it could compute"),
            "overflow": _(
                "a value is beyond floating point (∞ or NaN): the figure computes each node as drawn"
            ),
            "overflow_exp": _(
                "a value is beyond floating point (∞ or NaN): the figure computes each node as drawn, "
                "exp included, where the generated layer uses a form SymPy proved equal that does not overflow"
            ),
        }
    )


def runtime() -> str:
    """The live figures' runtime: plain JavaScript that reads inputs, runs a program, writes numbers."""
    from chainrule.codegen.environment import render

    return render("live.js.jinja", significant=SIGNIFICANT)


def names_for(name: str | None) -> tuple[str, ...]:
    """The live figures a page shows: all of them, one figure, or a derivation's figures."""
    from chainrule.codegen.figures import document_figure_names

    if name is None:
        return FIGURES
    if name in FIGURES:
        return (name,)
    from chainrule.symbolic import NAMES

    if name in NAMES:
        names = document_figure_names(name)
        if names:
            return names
    raise UnknownFigure(name)


def page(name: str | None = None) -> str:
    """``chainrule explore``'s page: the live figures, one self-contained HTML file that loads nothing."""
    names = names_for(name)
    title = _("Backpropagation, live") if len(names) > 1 else live_figure(names[0]).title
    return page_of([view(n) for n in names], translate(title))


def page_of(figures: Sequence[FigureView], title: str) -> str:
    """A page of these live figures under ``title`` (in the reader's language already)."""
    from chainrule.codegen.environment import render
    from chainrule.codegen.html import filters
    from chainrule.codegen.i18n import JAPANESE_FONTS

    return render(
        "explore.html.jinja",
        figures=list(figures),
        title=title,
        heading=_("Backpropagation, live"),
        messages=messages(),
        runtime=runtime(),
        lang=active(),
        japanese_fonts=JAPANESE_FONTS.replace("'", '"') if active() == "ja" else "",
        **filters(),
    )


def block(name: str, values: Mapping[str, Value] | None = None) -> str:
    """Figure ``name``'s inputs and drawing as an HTML fragment with its styles, without the script:
    what a notebook's widget shows, its script given separately (:func:`runtime`, :func:`spec_js`).
    ``values`` (checked: :func:`inputs`) are its first inputs, the others the book's."""
    from chainrule.codegen.environment import render
    from chainrule.codegen.html import filters

    return render("live_block.html.jinja", f=view(name, values), **filters())
