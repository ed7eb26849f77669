"""``chainrule generate``: write generated/ from the derivations and templates, or check it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chainrule.commands.options import read_specs
from chainrule.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``generate`` subcommand."""
    generate = sub.add_parser("generate", help="write generated/ from the derivations and templates")
    generate.add_argument("--check", action="store_true", help="only compare; exit 1 with a diff when stale")
    generate.add_argument(
        "--out", metavar="DIR", help="where the generated package goes (default: generated/)"
    )
    generate.add_argument(
        "--spec", metavar="FILE", help="add the layers of this TOML spec file (verified before writing)"
    )
    generate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write generated/ from the templates, or check that it is up to date."""
    from codegen.generate import DEFAULT_OUT, GenerateError, generate

    specs = read_specs(args.spec)
    if specs and not args.out:
        raise UsageError("--spec writes a new package: name its folder with --out DIR")
    out = args.out or DEFAULT_OUT
    accept = None
    if specs:
        from chainrule.verify import verify_package

        def accept(staging: Path) -> None:
            verify_package(staging, specs)

    try:
        result = generate(Path(out), check=args.check, specs=specs, accept=accept)
    except GenerateError as exc:
        raise UsageError(str(exc)) from None
    if args.check:
        if result.changed:
            sys.stdout.write(result.diff)
            print(
                f"chainrule: {result.out} is stale: {', '.join(result.changed)} differ; run 'chainrule generate'",
                file=sys.stderr,
            )
            return 1
        print(f"{result.out} is up to date", file=sys.stderr)
        return 0
    if result.changed:
        print(f"wrote {result.out}: {', '.join(result.changed)}", file=sys.stderr)
    else:
        print(f"{result.out} was already up to date", file=sys.stderr)
    return 0
