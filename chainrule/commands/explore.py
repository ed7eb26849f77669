"""``chainrule explore [NAME] -o page.html``: the chapter's graphs as live figures, one offline page."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from chainrule.codegen.i18n import _

if TYPE_CHECKING:
    from chainrule.codegen.live import LiveFigure


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``explore`` subcommand on the CLI's subparsers."""
    explore = sub.add_parser(
        "explore",
        help=_("write the chapter's graphs as a page whose numbers you change: every value recomputed"),
        description=_(
            "Write one self-contained HTML page (it loads nothing) of the chapter's computational graphs "
            "with inputs to change; every forward and backward value is recomputed by JavaScript printed "
            "from the derivations. Open it as page.html#apples?apple=150 to start from your own numbers."
        ),
    )
    # No choices=: listing the figures would import SymPy for every command; run() checks the name.
    explore.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        help=_("one figure (apples, sigmoid, ...) or a derivation's figures; all of them when left out"),
    )
    explore.add_argument(
        "-o", "--output", metavar="FILE", help=_("write the page here instead of printing it")
    )
    explore.add_argument("--spec", metavar="FILE", help=_("explore NAME, a layer of this TOML spec file"))
    explore.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the page to ``args.output`` atomically, or print it."""
    from chainrule.codegen.layout import FIGURES, UnknownFigure
    from chainrule.codegen.live import page
    from chainrule.console import output
    from chainrule.errors import UsageError

    if getattr(args, "spec", None):
        from chainrule.commands.graph import _refuse_spec_as_output

        _refuse_spec_as_output(args.spec, args.output)
        output(_spec_page(args.spec, args.name), args.output)
        return 0
    try:
        text = page(args.name)
    except UnknownFigure:
        from chainrule.symbolic import NAMES

        with_figures = [n for n in NAMES if n not in FIGURES and _has_figures(n)]
        raise UsageError(
            _(
                "unknown figure {name}; valid names: {names}",
                name=repr(args.name),
                names=", ".join((*FIGURES, *with_figures)),
            )
        ) from None
    output(text, args.output)
    return 0


def _has_figures(derivation: str) -> bool:
    from chainrule.codegen.figures import document_figure_names

    return bool(document_figure_names(derivation))


def _spec_page(path: str, name: str | None) -> str:
    """The page of the layer ``name`` of a spec file, live as the chapter's figures are."""
    from chainrule.codegen.live import page, page_of, view_of
    from chainrule.codegen.spec_figure import NotDrawable, spec_live
    from chainrule.commands.options import read_specs, spec_layer
    from chainrule.errors import UsageError
    from chainrule.symbolic.from_spec import derive_spec

    if name is None:  # every layer of the file that has a graph to draw (a loss has none)
        figures = []
        for spec in read_specs(path):
            try:
                figures.append(spec_live(derive_spec(spec)))
            except NotDrawable:
                continue
        if not figures:
            raise UsageError(_("{path} has no activation layer to explore", path=path))
        return page_of([view_of(f) for f in figures], path)
    return spec_layer(path, name, lambda sd: _one(spec_live(sd)), page)


def _one(figure: LiveFigure) -> str:
    """A page of one live figure, under its own title."""
    from chainrule.codegen.live import page_of, view_of

    return page_of([view_of(figure)], figure.title)
