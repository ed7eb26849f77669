"""Shared numerical tools for the tests: central differences in float64."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def central_difference(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """The gradient of a scalar function of an array, one central difference per entry."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        keep = x[i]
        x[i] = keep + h
        up = f(x)
        x[i] = keep - h
        down = f(x)
        x[i] = keep
        grad[i] = (up - down) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest entry-wise error, relative to the larger magnitude (absolute near zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1.0)
    return float(np.max(np.abs(a - b) / scale))


# The chapter's derivations in its order, written here as the tests' own expectation.
CHAPTER = (
    "add",
    "mul",
    "chain_rule",
    "apples",
    "apples_oranges",
    "relu",
    "sigmoid",
    "affine",
    "softmax_with_loss",
)
