"""Argument types and inputs that several subcommands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

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


def spec_layer(path: str, name: str, draw: Callable[[Any], str], chapter: Callable[[str], str]) -> str:
    """The layer ``name`` of a spec file drawn by ``draw`` (given its derivation), or the chapter's
    figure of that name drawn by ``chapter``; anything else, or a layer without a graph, one line."""
    from chainrule.codegen.layout import FIGURES
    from chainrule.codegen.spec_figure import NotDrawable
    from chainrule.symbolic.from_spec import derive_spec

    specs = {s.key: s for s in read_specs(path)}
    if name not in specs:
        if name in FIGURES:
            return chapter(name)
        raise UsageError(
            _(
                "{path} has no layer {name}; its layers: {layers}",
                path=path,
                name=repr(name),
                layers=", ".join(specs),
            )
        )
    try:
        return draw(derive_spec(specs[name]))
    except NotDrawable as exc:
        raise UsageError(str(exc)) from None
