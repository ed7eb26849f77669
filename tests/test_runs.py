"""Safety of training: labels that are not classes, run folders, signals, broken pipes, limits."""

from __future__ import annotations

import numpy as np
import pytest

# --- labels outside 0..C-1 -----------------------------------------------------------------------


@pytest.mark.parametrize(("label", "shown"), [(-1, "-1"), (3, "3")])
def test_softmax_with_loss_refuses_a_label_that_is_not_a_class(label, shown):
    from generated.layers import SoftmaxWithLoss

    layer = SoftmaxWithLoss()
    scores = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=rf"^label {shown} is not a class: labels must be 0\.\.2$"):
        layer.forward(scores, np.array([0, label]))
    assert layer.t is None and layer.loss is None  # refused before anything was cached
    # the last class is still a label: -1's old silent meaning, asked for by its number
    assert layer.forward(scores, np.array([2, 0])) == pytest.approx(
        -(np.log(np.exp(2) / np.exp([0.0, 1.0, 2.0]).sum()) + np.log(np.e / (np.e + 2))) / 2
    )


@pytest.mark.parametrize(
    ("t", "message"),
    [
        (np.array([1.0, 0.0]), "labels must be one-hot rows of shape (2, 3) or 2 integer class indices"),
        (np.array([1]), "labels must be one-hot rows of shape (2, 3) or 2 integer class indices"),
        (np.eye(2), "one-hot labels of shape (2, 2) do not match scores of shape (2, 3)"),
    ],
)
def test_labels_of_the_wrong_kind_or_shape_are_refused(t, message):
    from generated.layers import SoftmaxWithLoss

    with pytest.raises(ValueError) as info:
        SoftmaxWithLoss().forward(np.zeros((2, 3)), t)
    assert str(info.value).startswith(message)


def test_cross_entropy_error_refuses_a_negative_label():
    from generated.layers import cross_entropy_error

    y = np.array([[0.25, 0.75]])
    with pytest.raises(ValueError, match=r"^label -1 is not a class: labels must be 0\.\.1$"):
        cross_entropy_error(y, np.array([-1]))
    assert cross_entropy_error(y, np.array([1])) == pytest.approx(-np.log(0.75))


def test_train_checks_the_labels_once_before_the_first_step():
    from generated.train_neuralnet import train

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(20, 6))
    t = rng.integers(0, 3, size=20)
    bad = t.copy()
    bad[7] = -1
    started = []
    with pytest.raises(ValueError, match=r"^label -1 is not a class: labels must be 0\.\.2$"):
        train(x, bad, x, t, iters_num=5, batch_size=4, hidden_size=4, on_start=started.append)
    assert started == []  # no network was built: the check comes first
    network, history = train(x, t, x, t, iters_num=5, batch_size=4, hidden_size=4, on_epoch=lambda *a: None)
    assert len(history.train_loss_list) == 5 and network.params["W2"].shape == (4, 3)
