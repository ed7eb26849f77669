"""A derivation's live figures as a Jupyter widget: ``derive("sigmoid").explore()``.

The widget is an anywidget: its front end is one ES module, ``_esm``, rendered from
``live_widget.js.jinja`` with the very runtime and printed programs of ``chainrule explore``'s page
(:func:`chainrule.codegen.live.runtime`, :func:`~chainrule.codegen.live.spec_js`), so a figure
computes the same numbers in a notebook as on the page. The figures' HTML (their inputs and inline
SVG, the first numbers already drawn) is the ``html`` trait; their inputs are the ``state`` trait,
each figure's URL fragment, which the front end writes on every edit and follows when Python sets it.

anywidget is an optional dependency (``pip install 'chainrule[notebook]'``): this module imports it,
and only :func:`chainrule.codegen.display.explore` imports this module, after checking it is there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anywidget
import traitlets

from chainrule.codegen.environment import render
from chainrule.codegen.i18n import _
from chainrule.codegen.live import Value, block, fragment, live_figure, messages, runtime, spec_js


def esm(names: Sequence[str]) -> str:
    """The widget's ES module for the figures ``names``: the runtime, their programs, and ``render``."""
    figures = [{"name": name, "spec": spec_js(live_figure(name))} for name in names]
    return render("live_widget.js.jinja", runtime=runtime(), figures=figures, messages=messages())


def _own(name: str, values: Mapping[str, Value]) -> dict[str, Value]:
    """The values among ``values`` that are inputs of figure ``name``."""
    fields = {x.name for x in live_figure(name).fields}
    return {k: v for k, v in values.items() if k in fields}


def _python(value: str) -> str:
    """A field's value from its fragment as Python writes it: a matrix's rows (``1,2;3,4``) as nested lists."""
    if "," not in value and ";" not in value:
        return value
    return "[" + ", ".join("[" + ", ".join(row.split(",")) + "]" for row in value.split(";")) + "]"


class LiveFigures(anywidget.AnyWidget):
    """A derivation's live figures, one after another, each recomputed in the browser as its inputs change."""

    _esm = traitlets.Unicode().tag(sync=True)
    html = traitlets.Unicode().tag(sync=True)
    # Each figure's inputs as its URL fragment ("apples?apple=150&apple_num=2&tax=1.1"): the front
    # end writes it on every edit, and applies a state set here.
    state = traitlets.Dict(value_trait=traitlets.Unicode()).tag(sync=True)

    def __init__(self, title: str, names: Sequence[str], values: Mapping[str, Value]) -> None:
        """``title`` is the derivation's, in the reader's language; ``values`` are checked already
        (:func:`chainrule.codegen.live.inputs`)."""
        super().__init__(
            _esm=esm(names),
            html="\n".join(block(name, _own(name, values)) for name in names),
            state={name: fragment(name, _own(name, values)) for name in names},
        )
        self.title = title
        self.names = tuple(names)

    def __repr__(self) -> str:
        """The plain-text view, where no front end draws widgets: whose figures, and their inputs now
        (``apple=150, apple_num=2, tax=1.1``; figures that share their inputs say them once)."""
        inputs: list[str] = []
        for name in self.names:
            pairs = [p.partition("=") for p in self.state.get(name, "").partition("?")[2].split("&") if p]
            said = ", ".join(f"{key}={_python(value)}" for key, _eq, value in pairs)
            if said not in inputs:
                inputs.append(said)
        return _(
            "<live figures, {title}: {inputs}; Jupyter shows them with boxes to change>",
            title=self.title,
            inputs="; ".join(inputs),
        )
