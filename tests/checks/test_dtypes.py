"""float32 in, float32 out: every generated layer and kernel keeps its input's float type, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.generated import layers
from chainrule.generated.multi_layer_net import MultiLayerNet
from chainrule.generated.two_layer_net import TwoLayerNet

ACTIVATIONS = ["Relu", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softplus", "SiLU", "GELU"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_an_activation_keeps_its_inputs_float_type(name, dtype):
    x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
    layer = getattr(layers, name)()
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert (out.dtype, dx.dtype) == (dtype, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernels_affine_and_losses_keep_their_inputs_float_type(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype(dtype)
    t = np.eye(5, dtype=dtype)[[0, 1, 2, 3]]
    assert {layers.sigmoid(x).dtype, layers.softmax(x).dtype, layers.log_softmax(x).dtype} == {
        np.dtype(dtype)
    }
    affine = layers.Affine(rng.normal(size=(5, 3)).astype(dtype), np.zeros(3, dtype=dtype))
    assert affine.forward(x).dtype == dtype and affine.backward(np.ones((4, 3), dtype=dtype)).dtype == dtype
    assert affine.dW.dtype == dtype and affine.db.dtype == dtype
    for loss in (layers.SoftmaxWithLoss(), layers.MeanSquaredError()):
        loss.forward(x, t)
        assert loss.backward(1).dtype == dtype, type(loss).__name__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "activation", ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "softplus", "silu", "gelu"]
)
def test_a_network_keeps_its_float_type_in_every_gradient(activation, dtype):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 8)).astype(dtype)
    t = np.eye(3, dtype=dtype)[rng.integers(0, 3, size=6)]
    net = MultiLayerNet(8, [5, 4], 3, activation=activation, dtype=dtype, seed=0)
    assert {g.dtype for g in net.gradient(x, t).values()} == {np.dtype(dtype)}
    two = TwoLayerNet(8, 5, 3, dtype=dtype, seed=0)
    assert {g.dtype for g in two.gradient(x, t).values()} == {np.dtype(dtype)}
