"""Argument types and inputs that several subcommands share."""

from __future__ import annotations

import argparse

from chainrule.codegen.i18n import _, message_of
from chainrule.errors import UsageError

# numpy's legacy seeding, which the chapter's scripts use, takes seeds below 2**32.
SEED_MAX = 2**32 - 1


def seed_int(text: str) -> int:
    """A random seed as argparse reads it: a whole number from 0 to SEED_MAX."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            _("{text} is not a whole number from 0 to {seed_max}", text=repr(text), seed_max=SEED_MAX)
        )
    return value


def read_specs(path: str | None, prove: bool = False) -> tuple:
    """The specs of a TOML file, or none, each derived within the limits; a bad file is a one-line error.

    Derived here, once, in a child process with a time and memory limit; the rest of the
    command reuses the derivations. With ``prove`` their identities are proved there too.
    """
    if path is None:
        return ()
    from chainrule.codegen.generate import package_names
    from chainrule.packages.bounded import derive_bounded
    from chainrule.packages.specfile import read_specs as read_spec_file
    from chainrule.symbolic.names import check_names
    from chainrule.symbolic.shipped import SHIPPED
    from chainrule.symbolic.spec import SpecError

    try:
        specs = read_spec_file(path)
        check_names([*SHIPPED, *specs], *package_names())
        derive_bounded(specs, prove)
    except SpecError as exc:
        raise UsageError(message_of(exc)) from None
    return specs
