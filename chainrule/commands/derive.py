"""``chainrule derive``: print the chapter's derivations as LaTeX or Markdown."""

from __future__ import annotations

import argparse

from chainrule.commands.options import read_specs
from chainrule.console import output
from chainrule.errors import UsageError
from chainrule.files import same_file
from codegen.i18n import _, message_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``derive`` subcommand."""
    derive = sub.add_parser("derive", help=_("print the chapter's derivations as LaTeX or Markdown"))
    derive.add_argument("names", nargs="*", help=_("derivations to print (default: all)"))
    derive.add_argument("--format", choices=("latex", "markdown"), default="latex")
    derive.add_argument(
        "--standalone",
        action="store_true",
        help=_("a whole document with the figures: LaTeX with its preamble, or Markdown with images inline"),
    )
    derive.add_argument("-o", "--output", metavar="FILE", help=_("write here instead of printing"))
    derive.add_argument("--spec", metavar="FILE", help=_("also derive the layers of this TOML spec file"))
    derive.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print derivations as LaTeX or Markdown."""
    import symbolic
    from codegen.document import document
    from symbolic.spec import SpecError, derive_spec

    if args.spec and args.output and same_file(args.spec, args.output):
        # Writing the document over the spec it derives would lose the user's only copy of it.
        raise UsageError(
            _(
                "refusing to write {path}: it is the spec file being read; name another -o FILE",
                path=args.output,
            )
        )
    specs = {s.key: s for s in read_specs(args.spec)}
    names = args.names or [*symbolic.NAMES, *specs]
    derivations = []
    for name in names:
        try:
            derivations.append(
                derive_spec(specs[name]).derivation if name in specs else symbolic.derive(name)
            )
        except SpecError as exc:
            raise UsageError(message_of(exc)) from None
        except symbolic.UnknownDerivation:
            valid = ", ".join([*symbolic.NAMES, *specs])
            raise UsageError(
                _("unknown derivation {name}; valid names: {valid}", name=repr(name), valid=valid)
            ) from None
    output(document(derivations, args.format, args.standalone), args.output)
    return 0
