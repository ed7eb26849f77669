"""Constants and conventions pinned to their published definitions, computed here independently.

Each expectation is written from the source (the GELU paper's tanh approximation, the
ELU, Softplus, LeakyReLU and SiLU definitions, the chapter's ReLU mask and its
batch-mean loss) with Python's math module, never through chainrule's code.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.generated import layers

POINTS = (-3.0, -1.0, -0.5, -1e-3, 0.25, 1.0, 2.5)


def _each(f) -> np.ndarray:
    return np.array([f(v) for v in POINTS])


def _forward(layer: object) -> np.ndarray:
    return layer.forward(np.array(POINTS))  # type: ignore[attr-defined]


def test_gelu_is_the_papers_tanh_approximation():
    # Hendrycks and Gimpel: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    published = _each(lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))))
    np.testing.assert_allclose(_forward(layers.GELU()), published, rtol=1e-13, atol=0)
    assert layers.GELU().forward(np.array([1.0]))[0] == pytest.approx(0.8411919906082768, rel=1e-14)


def test_elu_is_alpha_times_exp_minus_one_below_zero_with_alpha_one():
    published = _each(lambda v: v if v > 0 else 1.0 * (math.exp(v) - 1))
    np.testing.assert_allclose(_forward(layers.ELU()), published, rtol=1e-12, atol=0)
    layer = layers.ELU()
    layer.forward(np.array([-2.0, 2.0]))
    np.testing.assert_allclose(layer.backward(np.ones(2)), [math.exp(-2.0), 1.0], rtol=1e-15)


def test_softplus_is_log_of_one_plus_exp():
    published = _each(lambda v: math.log(1 + math.exp(v)))
    np.testing.assert_allclose(_forward(layers.Softplus()), published, rtol=1e-13, atol=0)
    # Far below 0 the value is exp(x) itself, not 0.
    assert layers.Softplus().forward(np.array([-40.0]))[0] == pytest.approx(math.exp(-40.0), rel=1e-15)


def test_leaky_relu_lets_one_hundredth_through_below_zero():
    published = _each(lambda v: v if v > 0 else 0.01 * v)
    np.testing.assert_allclose(_forward(layers.LeakyReLU()), published, rtol=1e-15, atol=0)
    layer = layers.LeakyReLU()
    layer.forward(np.array([-2.0, 2.0]))
    np.testing.assert_array_equal(layer.backward(np.array([3.0, 3.0])), [0.03, 3.0])


def test_silu_is_x_times_the_logistic_function():
    published = _each(lambda v: v / (1 + math.exp(-v)))
    np.testing.assert_allclose(_forward(layers.SiLU()), published, rtol=1e-14, atol=0)


def test_tanh_is_the_hyperbolic_tangent():
    np.testing.assert_allclose(_forward(layers.Tanh()), _each(math.tanh), rtol=1e-15, atol=0)
    layer = layers.Tanh()
    layer.forward(np.array([0.5]))
    assert layer.backward(np.array([1.0]))[0] == pytest.approx(1 - math.tanh(0.5) ** 2, rel=1e-15)


def test_relu_masks_x_at_or_below_zero_as_the_chapter_does():
    # The chapter's Relu: self.mask = (x <= 0); out[mask] = 0; dout[mask] = 0.
    layer = layers.Relu()
    out = layer.forward(np.array([-1.0, 0.0, 1e-300, 2.0]))
    np.testing.assert_array_equal(out, [0.0, 0.0, 1e-300, 2.0])
    np.testing.assert_array_equal(layer.mask, [True, True, False, False])
    np.testing.assert_array_equal(layer.backward(np.array([5.0, 5.0, 5.0, 5.0])), [0.0, 0.0, 5.0, 5.0])


SCORES = np.array([[0.3, 2.9, 4.0], [1.0, -1.0, 0.5], [-2.0, 0.0, 7.5]])
LABELS = np.array([2, 0, 1])


def _mean_cross_entropy(probabilities: list[list[float]], labels: list[int]) -> float:
    return sum(-math.log(row[k]) for row, k in zip(probabilities, labels, strict=True)) / len(labels)


def _softmax_rows(scores: np.ndarray) -> list[list[float]]:
    rows = []
    for row in scores.tolist():
        total = sum(math.exp(v) for v in row)
        rows.append([math.exp(v) / total for v in row])
    return rows


def test_cross_entropy_error_is_the_batch_mean():
    probabilities = [[0.1, 0.05, 0.85], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]]
    expected = _mean_cross_entropy(probabilities, LABELS.tolist())
    got = layers.cross_entropy_error(np.array(probabilities), LABELS)
    assert got == pytest.approx(expected, rel=1e-14)
    assert got != pytest.approx(3 * expected)  # a sum over the batch would be three times this


def test_softmax_with_loss_forward_is_the_batch_mean_for_both_label_kinds():
    expected = _mean_cross_entropy(_softmax_rows(SCORES), LABELS.tolist())
    assert layers.SoftmaxWithLoss().forward(SCORES, LABELS) == pytest.approx(expected, rel=1e-13)
    one_hot = np.eye(3)[LABELS]
    assert layers.SoftmaxWithLoss().forward(SCORES, one_hot) == pytest.approx(expected, rel=1e-13)
    two = SCORES[:2]
    assert layers.SoftmaxWithLoss().forward(two, LABELS[:2]) == pytest.approx(
        _mean_cross_entropy(_softmax_rows(two), LABELS[:2].tolist()), rel=1e-13
    )
