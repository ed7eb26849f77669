"""How a derivation shows itself: LaTeX, Markdown, its figure, and HTML for Jupyter.

``Derivation.latex()``, ``.markdown()``, ``.figure()`` and its ``_repr_latex_`` and
``_repr_html_`` call these functions. Each one reuses a renderer that already exists:
the document's per-derivation LaTeX and Markdown, the figures' SVG, and the report's
MathML and inline SVG, so a derivation reads the same in a notebook, the document and
the report.
"""

from __future__ import annotations

from dataclasses import replace

from chainrule.symbolic.core import Derivation


def latex(derivation: Derivation) -> str:
    """The derivation's section of the LaTeX document, as a fragment."""
    from chainrule.codegen.document import document

    return document([derivation], "latex", standalone=False)


def markdown(derivation: Derivation) -> str:
    """The derivation's section of the Markdown document."""
    from chainrule.codegen.document import document

    return document([derivation], "markdown")


def figure(derivation: Derivation, **values: object) -> str:
    """The derivation's computational graph as a self-contained SVG document, with the reader's own
    input values when given (``apple=150``); ValueError names the valid inputs."""
    from chainrule.codegen.figures import svg

    return svg(derivation, values)


def html(derivation: Derivation) -> str:
    """The derivation as an HTML fragment: its figures inline, every formula as MathML."""
    from chainrule.codegen import html as page
    from chainrule.codegen.document import LEGEND, section
    from chainrule.codegen.environment import render
    from chainrule.codegen.i18n import _

    figures = tuple(page.inline_svg(f) for f in page.figure_names(derivation.name))
    s = replace(section(derivation), figures=figures)
    return render(
        "derivation.html.jinja",
        s=s,
        **page.filters(),
        legend=[_(line) for line in LEGEND],
    )


def explore(derivation: Derivation, **values: object) -> object:
    """The derivation's live figures as a Jupyter widget, its first inputs ``values`` (``apple=150``);
    ValueError names the valid inputs. Without anywidget, the optional dependency the widget needs,
    the figures drawn with those numbers and a line on how to install it: a notebook run to its end
    is not stopped by an extra it lacks."""
    from chainrule.codegen.figures import document_figure_names
    from chainrule.codegen.i18n import translate
    from chainrule.codegen.layout import UnknownFigure
    from chainrule.codegen.live import inputs

    names = document_figure_names(derivation.name)
    if not names:
        raise UnknownFigure(derivation.name)
    given = inputs(derivation.name, names, values)
    try:
        import anywidget  # noqa: F401  (the optional dependency: checked here, used by codegen.widget)
    except ImportError:
        return StillFigures(names, given)
    from chainrule.codegen.widget import LiveFigures

    return LiveFigures(translate(derivation.title), names, given)


class StillFigures:
    """What ``explore()`` shows without anywidget: the figures with the reader's numbers, not live,
    and how to make them live."""

    def __init__(self, names: tuple[str, ...], values: dict) -> None:
        self.names = names
        self.values = values

    def message(self) -> str:
        from chainrule.codegen.i18n import _

        return _("explore() shows a widget, which needs anywidget: pip install 'chainrule[notebook]'")

    def __repr__(self) -> str:
        return self.message()

    def _repr_html_(self) -> str:
        """The message, then each figure as first drawn with the numbers given (no script)."""
        import html

        from chainrule.codegen.live import view

        pictures = "".join(f"<figure>{view(n, self.values).svg}</figure>" for n in self.names)
        return f"<p>{html.escape(self.message())}</p>{pictures}"
