"""``chainrule generate``: write generated/ from the derivations and templates, or check it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule.codegen.i18n import _, message_of
from chainrule.commands.options import read_specs
from chainrule.errors import UsageError
from chainrule.fs.guard import shown
from chainrule.packages.marker import (
    MARKER,
    PackageError,
    read_marker,
    recorded_spec,
    require_specs,
    source_checkout,
)

if TYPE_CHECKING:
    from chainrule.packages.marker import Recorded


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``generate`` subcommand."""
    generate = sub.add_parser("generate", help=_("write generated/ from the derivations and templates"))
    generate.add_argument(
        "--check", action="store_true", help=_("only compare; exit 1 with a diff when stale")
    )
    generate.add_argument(
        "--out", metavar="DIR", help=_("where the generated package goes (default: generated/)")
    )
    generate.add_argument(
        "--spec", metavar="FILE", help=_("add the layers of this TOML spec file (verified before writing)")
    )
    generate.add_argument(
        "--package", metavar="DIR", help=_("regenerate this package in place from the spec it records")
    )
    generate.set_defaults(func=run)


def recorded_from(spec: str | None) -> Recorded:
    """What a package made from the spec file ``spec`` records: its text and chainrule's version."""
    from chainrule.packages.marker import PackageError, Recorded, chainrule_version
    from chainrule.packages.specfile import read_spec_text
    from chainrule.symbolic.spec import SpecError

    if spec is None:
        raise PackageError(_("a package that records its spec needs a spec file"))
    try:
        text = read_spec_text(Path(spec))
    except SpecError as exc:
        raise PackageError(message_of(exc)) from None
    return Recorded(text, chainrule_version())


def run(args: argparse.Namespace) -> int:
    """Write generated/ from the templates, or check that it is up to date."""
    from chainrule.codegen.generate import GenerateError
    from chainrule.packages.marker import DEFAULT_OUT, PackageError
    from chainrule.packages.write import generate

    try:
        plan = plan_generate(args.out, args.spec, args.package, DEFAULT_OUT, args.check)
        specs = read_specs(plan.spec, prove=True)  # every SymPy proof within the limits, in a child
        recorded = recorded_from(plan.spec) if plan.record else None
    except PackageError as exc:
        raise UsageError(message_of(exc)) from None
    out = plan.out
    accept = None
    if specs:
        from chainrule.checks.gradients import verify_package

        def accept(staging: Path) -> None:
            verify_package(staging, specs)

    try:
        result = generate(Path(out), check=args.check, specs=specs, accept=accept, recorded=recorded)
    except GenerateError as exc:
        raise UsageError(message_of(exc)) from None
    if args.check:
        if result.changed:
            sys.stdout.write(result.diff)
            print(
                _(
                    "chainrule: {out} is stale: {files} differ; run '{command}'",
                    out=shown(result.out),
                    files=", ".join(result.changed),
                    command=_regenerate(args),
                ),
                file=sys.stderr,
            )
            return 1
        print(_("{out} is up to date", out=shown(result.out)), file=sys.stderr)
        return 0
    if result.kept is not None:
        print(
            _(
                "note: files that appeared in {out} while it was replaced are kept in {path}",
                out=shown(result.out),
                path=shown(result.kept),
            ),
            file=sys.stderr,
        )
    if result.changed:
        print(
            _("wrote {out}: {files}", out=shown(result.out), files=", ".join(result.changed)), file=sys.stderr
        )
    else:
        print(_("{out} was already up to date", out=shown(result.out)), file=sys.stderr)
    return 0


def _regenerate(args: argparse.Namespace) -> str:
    """The command that brings the package ``generate --check`` looked at up to date."""
    from chainrule.codegen.environment import shell_quote as q

    if args.package:
        return f"chainrule generate --package {q(args.package)}"
    if args.spec:
        return f"chainrule generate --spec {q(args.spec)} --out {q(args.out)}"
    return "chainrule generate" + (f" --out {q(args.out)}" if args.out else "")


def refuse_installed(generated: Path) -> None:
    """PackageError unless ``generated`` belongs to a source checkout (see ``source_checkout``)."""
    if not source_checkout(generated):
        raise PackageError(
            _(
                "{folder} is the generated/ of an installed chainrule, not of a source checkout: refusing to modify it; write a package elsewhere with --out DIR",
                folder=generated.resolve(),
            )
        )


@dataclass(frozen=True)
class GeneratePlan:
    """What ``chainrule generate`` is to do: where, from which spec file, and whether to record it."""

    out: Path
    spec: str | None
    record: bool  # the package keeps its spec (made with --spec, or regenerated from a recorded one)


def plan_generate(
    out: str | None, spec: str | None, package: str | None, default_out: Path, check: bool = False
) -> GeneratePlan:
    """Check the options of ``generate`` against each other and against the folders they name."""
    if package is not None:
        if out is not None:
            raise PackageError(
                _("--package names the package to regenerate in place; it cannot go with --out")
            )
        if spec is not None:
            raise PackageError(
                _(
                    "--package regenerates from the spec the package records; for another spec use --spec FILE --out DIR"
                )
            )
        folder = Path(package)
        if not folder.is_dir() or read_marker(folder) is None:
            raise PackageError(
                _(
                    "{folder} is not a package chainrule generated (it holds no {marker})",
                    folder=folder,
                    marker=MARKER,
                )
            )
        remake = _("make it again with --spec FILE --out {folder}", folder=folder)
        recorded = recorded_spec(folder, remake)
        if recorded is None:
            from chainrule.codegen.model import catalog

            require_specs(folder, {s.cls for s in catalog().layers}, spec_given=False, hint=remake)
        target = folder
        plan = GeneratePlan(folder, None if recorded is None else str(recorded), recorded is not None)
    else:
        if spec is not None and out is None:
            raise PackageError(_("--spec writes a new package: name its folder with --out DIR"))
        target = Path(out) if out is not None else default_out
        plan = GeneratePlan(target, spec, spec is not None)
    if not check and target.resolve() == default_out.resolve():
        refuse_installed(default_out)
    return plan
