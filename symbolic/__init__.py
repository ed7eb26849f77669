"""Every formula of the backpropagation chapter, derived by SymPy.

Pure code: builds :class:`~symbolic.core.Derivation` objects and nothing else
(no file I/O, no printing).  ``derive(name)`` returns one, ``NAMES`` lists them
in the chapter's order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from chainrule.symbolic.activations import relu, sigmoid
from chainrule.symbolic.core import Derivation
from chainrule.symbolic.graphs import (
    add_node,
    apples,
    apples_oranges,
    chain_rule,
    computational_graph,
    mul_node,
)
from chainrule.symbolic.linear import affine
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.softmax_loss import softmax_with_loss
from chainrule.symbolic.spec import Spec

# The chapter's order: the book's 5.1 to 5.6, each derivation where its section is.
BUILDERS: dict[str, Callable[[], Derivation]] = {
    "computational_graph": computational_graph,
    "chain_rule": chain_rule,
    "add": add_node,
    "mul": mul_node,
    "apples": apples,
    "apples_oranges": apples_oranges,
    "relu": relu,
    "sigmoid": sigmoid,
    "affine": affine,
    "softmax_with_loss": softmax_with_loss,
}
# The layers shipped as specs (Tanh, LeakyReLU, ...), derived by the same engine as a user's.
BUILDERS.update({spec.key: (lambda spec=spec: _from_spec(spec)) for spec in SHIPPED})
NAMES: tuple[str, ...] = tuple(BUILDERS)


class UnknownDerivation(KeyError):
    """A name that is not one of the derivations."""

    def __str__(self) -> str:
        return f"unknown derivation {self.args[0]!r}; valid names: {', '.join(NAMES)}"


def _from_spec(spec: Spec) -> Derivation:
    from chainrule.symbolic.spec import derive_spec

    return derive_spec(spec).derivation


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
