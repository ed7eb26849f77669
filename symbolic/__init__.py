"""Every formula of the backpropagation chapter, derived by SymPy.

Pure code: builds :class:`~symbolic.core.Derivation` objects and nothing else
(no file I/O, no printing).  ``derive(name)`` returns one, ``NAMES`` lists them
in the chapter's order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from chainrule.symbolic.chapter import CHAPTER
from chainrule.symbolic.core import Derivation
from chainrule.symbolic.from_spec import derive_spec
from chainrule.symbolic.shipped import SHIPPED

# The chapter's derivations, then the layers shipped as specs (Tanh, LeakyReLU, ...), derived by the
# same engine as a user's.
BUILDERS: dict[str, Callable[[], Derivation]] = {
    **CHAPTER,
    **{spec.key: (lambda spec=spec: derive_spec(spec).derivation) for spec in SHIPPED},
}
NAMES: tuple[str, ...] = tuple(BUILDERS)


class UnknownDerivation(KeyError):
    """A name that is not one of the derivations."""

    def __str__(self) -> str:
        return f"unknown derivation {self.args[0]!r}; valid names: {', '.join(NAMES)}"


@cache
def derive(name: str) -> Derivation:
    """The derivation called ``name``, built once per process."""
    if not isinstance(name, str):
        # A one-line message naming the type: str(KeyError(obj)) would hold the object's repr.
        raise TypeError(f"a derivation is named by a string, not {type(name).__name__}")
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise UnknownDerivation(name) from None
    return builder()


__all__ = ["BUILDERS", "NAMES", "Derivation", "UnknownDerivation", "derive"]
