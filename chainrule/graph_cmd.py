"""``chainrule graph NAME -o FILE.svg``: draw one of the chapter's computational graphs."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``graph`` subcommand on the CLI's subparsers."""
    graph = sub.add_parser("graph", help="draw one of the chapter's computational graphs as SVG")
    # No choices=: listing the figures would import SymPy for every command; run() checks the name.
    graph.add_argument(
        "name", metavar="NAME", help="the figure, e.g. apples (an unknown name lists them all)"
    )
    graph.add_argument("-o", "--output", metavar="FILE", help="write the SVG here instead of printing it")
    graph.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the figure's SVG to ``args.output`` atomically, or print it."""
    from chainrule.console import write_stdout
    from chainrule.errors import UsageError
    from chainrule.files import atomic_write_text
    from codegen.figures import FIGURES, UnknownFigure, svg

    if args.name not in FIGURES:
        raise UsageError(str(UnknownFigure(args.name)))
    text = svg(args.name)
    if args.output is None:
        write_stdout(text)
        return 0
    try:
        atomic_write_text(args.output, text)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote {args.output}", file=sys.stderr)
    return 0
