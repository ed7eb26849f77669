"""Generated packages as the command line finds them: what they record, where they may be rewritten.

A package made with ``generate --spec FILE --out DIR`` keeps a copy of its spec and
says so in its marker, so ``verify --package DIR``, ``train --package DIR`` and
``generate --package DIR`` need nothing but the folder.  The generated/ of an
installed chainrule is never rewritten: only a source checkout's is.

A package is code, so it is imported only as ``chainrule.packages.importer`` checks it: the
marker lists every file with its SHA-256 and carries this account's seal of that whole list
(``chainrule.packages.marker``), and only the modules' checked bytes run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chainrule.codegen.i18n import _
from chainrule.packages.marker import (
    MARKER,
    PackageError,
    read_marker,
    recorded_spec,
    require_specs,
    source_checkout,
)


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
