"""The chapter's own derivations, in its order: the book's 5.1 to 5.6, each where its section is."""

from __future__ import annotations

from collections.abc import Callable

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
from chainrule.symbolic.softmax_loss import softmax_with_loss

CHAPTER: dict[str, Callable[[], Derivation]] = {
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
