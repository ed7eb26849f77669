"""``chainrule verify``: check every generated gradient three ways, or each kernel's accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from chainrule.codegen.i18n import _, message_of
from chainrule.commands.options import read_specs, seed_int
from chainrule.errors import UsageError

if TYPE_CHECKING:
    from types import ModuleType


def _grid_points(text: str) -> int:
    """Points per sign of the accuracy grid: 2 to 5000, so a run stays bounded."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text} is not a whole number", text=repr(text))) from None
    if not 2 <= value <= 5000:
        raise argparse.ArgumentTypeError(_("{value} is not between 2 and 5000", value=value))
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``verify`` subcommand."""
    verify = sub.add_parser(
        "verify", help=_("check every generated gradient against SymPy and central differences")
    )
    verify.add_argument("--seed", type=seed_int, default=0, help=_("seed of the random inputs"))
    verify.add_argument(
        "--spec",
        metavar="FILE",
        help=_("the spec file the package was generated with (default: the one it records)"),
    )
    verify.add_argument(
        "--package", metavar="DIR", help=_("a package written by generate --out (default: generated/)")
    )
    verify.add_argument(
        "--accuracy",
        action="store_true",
        help=_("instead: worst float64 error in ulps of every kernel and activation against 50-digit mpmath"),
    )
    verify.add_argument(
        "--points",
        dest="per_sign",
        type=_grid_points,
        metavar="N",
        help=_("with --accuracy: grid points per sign (default 400, at most 5000)"),
    )
    verify.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check every generated gradient three ways, plus gradcheck's hygiene checks."""
    from chainrule.checks.gradients import run as check
    from chainrule.codegen.model import catalog
    from chainrule.packages.importer import import_package
    from chainrule.packages.marker import (
        DEFAULT_OUT,
        MARKER,
        PackageError,
        read_marker,
        recorded_spec,
        require_specs,
    )

    if args.per_sign is not None and not args.accuracy:
        raise UsageError(_("--points goes with --accuracy"))
    if args.spec and not args.package:
        raise UsageError(
            _(
                "--spec describes a package made with 'generate --spec FILE --out DIR': name it with --package DIR"
            )
        )
    folder = Path(args.package) if args.package else None
    spec = args.spec
    if folder is not None:
        if (folder / "layers.py").is_file() and read_marker(folder) is None:
            # verify imports the package, so it runs only code that chainrule wrote
            raise UsageError(
                _(
                    "{package} is not a package chainrule generated (no {marker}): verify runs only those",
                    package=args.package,
                    marker=MARKER,
                )
            )
        try:
            recorded = None if spec is not None else recorded_spec(folder)  # else the one it records
        except PackageError as exc:
            raise UsageError(message_of(exc)) from None
        spec = spec if recorded is None else str(recorded)
    specs = read_specs(spec)
    cat = catalog(specs)
    try:
        (layers,) = import_package(folder, ("layers",))
        # A layer that no derivation at hand describes would go unchecked while every check passes.
        require_specs(
            folder or DEFAULT_OUT, {layer.cls for layer in cat.layers}, spec_given=args.spec is not None
        )
    except PackageError as exc:
        raise UsageError(message_of(exc)) from None
    module = layers.__name__
    if folder is not None:
        _check_classes(folder, layers, tuple(layer.cls for layer in cat.layers), recorded=args.spec is None)
    if args.accuracy:
        from chainrule.checks import accuracy

        return 0 if accuracy.run(module, cat, per_sign=args.per_sign or 400) else 1
    return 0 if check(module, seed=args.seed, cat=cat) else 1


def _check_classes(
    folder: Path, layers: ModuleType, classes: tuple[str, ...], *, recorded: bool = False
) -> None:
    """Every layer class the checks will build must be in the package: else one line, not a traceback.

    ``recorded``: the spec is the one the package keeps, so regenerating in place brings the classes.
    """
    import shlex

    missing = [name for name in classes if not isinstance(getattr(layers, name, None), type)]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UsageError(
            f"{folder}/layers.py has no class {', '.join(missing[:3])}{more}: "
            + (
                f"its spec has changed; regenerate it with 'chainrule generate --package {shlex.quote(str(folder))}'"
                if recorded
                else "generate the package again from the same spec with 'chainrule generate --spec FILE --out DIR'"
            )
        )
