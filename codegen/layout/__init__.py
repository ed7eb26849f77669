"""Where the chapter's pictures put things: one layout per graph, computed from its node list.

A layout is pure data, measured in drawing units (one unit is one SVG pixel, y
grows downwards); the SVG and TikZ renderers in :mod:`codegen.figures` only
draw it.  Variables are layered by depth, the longest path from an input:
inputs in the leftmost column, the output arrow ends in the rightmost one.  An
arrow that skips columns bends through one point per column it crosses, so
that every straight piece spans exactly one gap between columns.  Within a
column the order comes from barycenter sweeps (each point ordered by the mean
position of its neighbours) refined by swapping neighbours, which draws every
planar graph of the chapter without a crossing.  Each node then sits at the
mean height of the arrows feeding it, and its labels where they cover no line,
circle or other label, as far as the estimate of their size can tell.

Softmax-with-Loss (Fig. 5-29) is one row, as the book draws it: its labels t_k enter
late, at the nodes that use them, and a little less room between its columns keeps it on a
page.  Its simplified form (Fig. 5-30) is two boxes, placed directly.  Every figure names the
book's figure it redraws, and its labels are what the book writes on that figure: numbers for
the worked examples (forward only in section 5.1's, Figs. 5-1 to 5-4, which a reader may redraw
with inputs of their own), else the running products of the backward pass; a matrix's shape
above its forward value and below its backward one (Figs. 5-25, 5-27).  Variables are named in
the reader's language where the book has a word for them (りんご for apple).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache

from chainrule.codegen.i18n import _, active
from chainrule.codegen.layout.drawing import _build, _Spec
from chainrule.codegen.layout.geometry import Layout
from chainrule.codegen.layout.layers import (
    _affine,
    _from_derivation,
    _layers_simple,
    _sigmoid_simple,
    _softmax_with_loss,
)
from chainrule.codegen.layout.numbered import _NUMBERS, _choices, _numbers_spec

_SPECS: dict[str, Callable[[], _Spec]] = {
    **{name: (lambda name=name: _numbers_spec(name)) for name in _NUMBERS},
    "chain_rule": lambda: _from_derivation("chain_rule"),
    "relu": lambda: _from_derivation("relu"),
    "sigmoid": lambda: _from_derivation("sigmoid"),
    "sigmoid_simple": _sigmoid_simple,
    "affine": _affine,
    "softmax_with_loss": _softmax_with_loss,
}

# Pictures drawn by hand from their derivation, not laid out as a graph of nodes.
_LAYOUTS: dict[str, Callable[[], Layout]] = {"softmax_with_loss_simple": _layers_simple}

# In the chapter's order: section 5.1's figures first, each derivation's in the book's order.
FIGURES: tuple[str, ...] = (
    "shopping_forward",
    "shopping_variables",
    "shopping_two",
    "local_computation",
    "apple_derivative",
    "chain_rule",
    "add",
    "mul",
    "apples",
    "apples_oranges",
    "relu",
    "sigmoid",
    "sigmoid_simple",
    "affine",
    "softmax_with_loss",
    "softmax_with_loss_simple",
)
assert set(FIGURES) == {*_SPECS, *_LAYOUTS}


class UnknownFigure(KeyError):
    """A name that is not one of the figures."""

    def __str__(self) -> str:
        return f"unknown figure {self.args[0]!r}; valid names: {', '.join(FIGURES)}"


@cache
def _layout(name: str, lang: str) -> Layout:
    """The layout of the figure called ``name`` in the language ``lang``, computed once per process."""
    if name in _LAYOUTS:
        return _LAYOUTS[name]()
    try:
        spec = _SPECS[name]
    except KeyError:
        raise UnknownFigure(name) from None
    return _build(spec())


def layout_for(name: str) -> Layout:
    """The layout of the figure called ``name``, in the reader's language (its labels are the book's words)."""
    return _layout(name, active())


layout_for.cache_clear = _layout.cache_clear  # type: ignore[attr-defined]


def inputs_of(name: str) -> tuple[str, ...]:
    """The inputs a reader may choose for the figure ``name`` (empty for a figure without numbers)."""
    return tuple(_choices(_NUMBERS[name]())) if name in _NUMBERS else ()


def layout_with(name: str, values: Mapping[str, object]) -> Layout:
    """The figure ``name`` redrawn with the reader's own input values, by the same exact backprop.

    ValueError, in one line naming the valid inputs, for a figure without numbers, an unknown input
    or a value that is not a finite number.
    """
    if name not in FIGURES:
        raise UnknownFigure(name)
    if name not in _NUMBERS:
        raise ValueError(
            _(
                "the figure {name} has no input values to choose; figures that take them: {names}",
                name=name,
                names=", ".join(n for n in FIGURES if n in _NUMBERS),
            )
        )
    return _build(_numbers_spec(name, values))
