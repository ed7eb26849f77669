"""``chainrule derive``: print the chapter's derivations as LaTeX or Markdown."""

from __future__ import annotations

import argparse

from chainrule.codegen.i18n import _, message_of
from chainrule.commands.options import read_specs
from chainrule.console import output
from chainrule.errors import UsageError
from chainrule.fs.guard import same_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``derive`` subcommand."""
    derive = sub.add_parser("derive", help=_("print the chapter's derivations as LaTeX or Markdown"))
    derive.add_argument(
        "names", nargs="*", help=_("derivations to print (default: the chapter's, in the chapter's order)")
    )
    derive.add_argument("--format", choices=("latex", "markdown"), default="latex")
    derive.add_argument(
        "--standalone",
        action="store_true",
        help=_("a whole document with the figures: LaTeX with its preamble, or Markdown with images inline"),
    )
    derive.add_argument("-o", "--output", metavar="FILE", help=_("write here instead of printing"))
    derive.add_argument("--spec", metavar="FILE", help=_("also derive the layers of this TOML spec file"))
    derive.add_argument(
        "--appendix",
        action="store_true",
        help=_(
            "add what is not in the chapter: the layers chainrule ships and the proofs and numerics"
            " the chapter leaves out"
        ),
    )
    derive.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print derivations as LaTeX or Markdown."""
    from chainrule import symbolic
    from chainrule.codegen.document import document, in_chapter
    from chainrule.symbolic.from_spec import derive_spec
    from chainrule.symbolic.spec import SpecError

    if args.spec and args.output and same_file(args.spec, args.output):
        # Writing the document over the spec it derives would lose the user's only copy of it.
        raise UsageError(
            _(
                "refusing to write {path}: it is the spec file being read; name another -o FILE",
                path=args.output,
            )
        )
    specs = {s.key: s for s in read_specs(args.spec)}
    if args.names:
        names = args.names
    else:
        # The chapter; the shipped layers only with --appendix; a user's spec layers, asked for, always.
        names = [n for n in symbolic.NAMES if args.appendix or in_chapter(symbolic.derive(n))]
        names += [k for k in specs if k not in names]
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
    output(document(derivations, args.format, args.standalone, appendix=args.appendix), args.output)
    return 0
