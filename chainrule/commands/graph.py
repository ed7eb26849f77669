"""``chainrule graph NAME -o FILE.svg``: draw one of the chapter's computational graphs."""

from __future__ import annotations

import argparse

from chainrule.codegen.i18n import _


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``graph`` subcommand on the CLI's subparsers."""
    graph = sub.add_parser("graph", help=_("draw one of the chapter's computational graphs as SVG"))
    # No choices=: listing the figures would import SymPy for every command; run() checks the name.
    graph.add_argument(
        "name", metavar="NAME", help=_("the figure, e.g. apples (an unknown name lists them all)")
    )
    graph.add_argument("-o", "--output", metavar="FILE", help=_("write the SVG here instead of printing it"))
    graph.add_argument("--spec", metavar="FILE", help=_("draw NAME, a layer of this TOML spec file"))
    graph.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the figure's SVG to ``args.output`` atomically, or print it."""
    from chainrule.codegen.figures import FIGURES, svg
    from chainrule.console import output
    from chainrule.errors import UsageError

    if getattr(args, "spec", None):
        _refuse_spec_as_output(args.spec, args.output)
        text = _spec_svg(args.spec, args.name)
    elif args.name not in FIGURES:
        raise UsageError(
            _("unknown figure {name}; valid names: {names}", name=repr(args.name), names=", ".join(FIGURES))
        )
    else:
        text = svg(args.name)
    output(text, args.output)
    return 0


def _refuse_spec_as_output(spec: str, output: str | None) -> None:
    """Writing the SVG over the spec it is drawn from would lose the user's only copy of it."""
    from chainrule.errors import UsageError
    from chainrule.fs.guard import same_file

    if output is not None and same_file(spec, output):
        raise UsageError(
            _("refusing to write {path}: it is the spec file being read; name another -o FILE", path=output)
        )


def _spec_svg(path: str, name: str) -> str:
    """The graph of the layer ``name`` of a spec file, or a chapter figure of that name."""
    from chainrule.codegen.figures import svg
    from chainrule.codegen.spec_figure import spec_svg
    from chainrule.commands.options import spec_layer

    return spec_layer(path, name, spec_svg, svg)
