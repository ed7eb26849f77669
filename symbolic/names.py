"""The names a spec gives (layer, short name, constants): identifiers, distinct, used by nothing else."""

from __future__ import annotations

import builtins
import keyword
import math
import unicodedata
from collections.abc import Iterable

from chainrule.symbolic.chapter import CHAPTER
from chainrule.symbolic.messages import N_
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import FUNCTIONS, NAMED_NUMBERS, Spec, SpecError, fail, quote, shorten

TAKEN = frozenset(
    {"MulLayer", "AddLayer", "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "TwoLayerNet", "MultiLayerNet"}
)
MAX_NAME_CHARS = 64


# Names the code generated for a spec's layer uses itself: its methods' arguments and locals, the
# module's numpy.  codegen passes the full set, read from the rendered package, to check_names.
LAYER_NAMES = frozenset(
    {"self", "forward", "backward", "x", "y", "t", "out", "dout", "loss", "batch_size", "np"}
)


# Names Python itself gives a meaning in every module: a layer class named ValueError or float would
# hide the built-in from the generated module's own code (its label errors raise ValueError).
PYTHON_NAMES = frozenset(dir(builtins)) | frozenset(keyword.softkwlist)


def _taken(reserved: Iterable[str]) -> dict[str, str]:
    """Every name a spec's layer cannot have, with what already holds it."""
    owners = {name: N_("a module-level name of the generated package") for name in reserved}
    owners.update({name: N_("a derivation of the chapter") for name in CHAPTER})
    owners.update({name: N_("a layer of the chapter") for name in TAKEN})
    for spec in SHIPPED:
        owners[spec.name] = owners[spec.key] = _owner(spec)
    return owners


def _owner(spec: Spec) -> str:
    if spec in SHIPPED:
        return N_("the shipped layer {name}", name=spec.name)
    return N_("the layer at {where}", where=spec.where)


def _identifier(raw: object) -> tuple[str, str] | None:
    """``raw`` as Python reads it (NFKC-normalized), and how to show it; None if it cannot be a name."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_NAME_CHARS:
        return None
    name = unicodedata.normalize("NFKC", raw)
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
        return None
    shown = repr(name) if name == raw else N_("{raw} (to Python, {name})", raw=repr(raw), name=repr(name))
    return name, shown


def _not_normal(name: str, raw: str) -> str:
    return N_(
        "{raw} is {name} to Python (NFKC normalization): write it as {name}", raw=repr(raw), name=repr(name)
    )


def _check_value(spec: Spec, const: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise fail(
            spec,
            N_(
                "constant {const} must be a finite number, not {value}",
                const=const,
                value=quote(value) if isinstance(value, str) else shorten(repr(value)),
            ),
        )
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not finite:
        raise fail(spec, N_("constant {const} must be a finite number of at most about 1.8e308", const=const))


def check_names(specs: list[Spec], reserved: Iterable[str] = (), members: Iterable[str] = ()) -> None:
    """Layer, short and constant names are identifiers, distinct, and used by nothing else.

    Names are NFKC-normalized first, as Python does, so that a full-width letter cannot
    stand for a name already in use.  ``reserved`` adds the module-level names of the
    generated package and ``members`` the names a layer's generated methods use; codegen
    reads both from the package it renders.
    """
    owners = _taken(reserved)
    members = LAYER_NAMES | set(members)
    for spec in specs:
        name = _identifier(spec.name)
        if name is None:
            raise SpecError(
                N_("{where}: {name} is not a valid class name", where=spec.where, name=quote(str(spec.name)))
            )
        key = _identifier(spec.key)
        if key is None:
            raise fail(spec, N_("{key} is not a valid short name", key=quote(str(spec.key))))
        me = _owner(spec)
        for (normal, shown), what in ((name, "name"), (key, "short name")):
            held = owners.get(normal)
            if normal in members:
                held = N_("a name the layer's own methods use")
            elif what == "name" and normal in PYTHON_NAMES:
                held = N_("a name Python itself defines (a built-in or keyword)")
            if held is not None and held != me:
                if what == "name" and normal == spec.name:
                    label = N_("the name")
                elif what == "name":
                    label = N_("the name {shown}", shown=shown)
                else:
                    label = N_("the short name {shown}", shown=shown)
                raise fail(spec, N_("{label} is already taken: {held}", label=label, held=held))
            if normal != (spec.name if what == "name" else spec.key):
                raise fail(spec, _not_normal(normal, spec.name if what == "name" else spec.key))
            owners[normal] = me
        if spec.kind not in ("activation", "loss"):
            raise fail(
                spec, N_("kind must be 'activation' or 'loss', not {kind}", kind=quote(str(spec.kind)))
            )
        if spec.init not in ("he", "xavier"):
            raise fail(spec, N_("init must be 'he' or 'xavier', not {init}", init=quote(str(spec.init))))
    formula_names = set(FUNCTIONS) | set(NAMED_NUMBERS) | members
    for spec in specs:
        own: set[str] = set()
        for const, value in spec.constants:
            normal = _identifier(const)
            if normal is None or normal[0].startswith("_"):
                raise fail(spec, N_("{const} cannot name a constant", const=quote(str(const))))
            if normal[0] in formula_names:
                raise fail(
                    spec,
                    N_(
                        "{const} cannot name a constant: formulas and the layer's code use it",
                        const=normal[1],
                    ),
                )
            held = owners.get(normal[0])
            if held is not None:
                raise fail(
                    spec,
                    N_("{const} cannot name a constant: it is already {held}", const=quote(const), held=held),
                )
            if normal[0] != const:
                raise fail(spec, _not_normal(normal[0], const))
            if const in own:
                raise fail(spec, N_("constant {const} is given twice", const=const))
            own.add(const)
            _check_value(spec, const, value)
