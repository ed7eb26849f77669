"""The four training loops that bench_train.py times, each on the same data, weights and batches.

- ``generated``: ``generated.train_neuralnet.train``, float32.
- ``chapter``: the chapter's TwoLayerNet and loop (section 5.7) as plain NumPy, float64 weights.
- ``torch``: PyTorch on the CPU, float32, autograd and ``torch.optim.SGD``.
- ``floor``: only the five float32 matrix products an iteration needs, no evaluation.

Every ``run_*`` function takes ``(data, setup, iters)`` and returns a :class:`Result`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from chainrule.generated.train_neuralnet import train
from chainrule.generated.two_layer_net import TwoLayerNet

PARAM_KEYS = ("W1", "b1", "W2", "b2")
BATCH_SIZE = 100
LEARNING_RATE = 0.1
HIDDEN_SIZE = 50


@dataclass(frozen=True)
class Data:
    """Images as float32 (N, 784), labels both one-hot float32 (N, 10) and as integer classes (N,)."""

    x_train: np.ndarray
    t_train: np.ndarray
    x_test: np.ndarray
    t_test: np.ndarray
    labels_train: np.ndarray
    labels_test: np.ndarray

    @classmethod
    def from_one_hot(cls, x_train, t_train, x_test, t_test) -> Data:
        """Build from load_mnist(one_hot_label=True) output, deriving the integer labels."""
        return cls(
            x_train,
            t_train,
            x_test,
            t_test,
            np.argmax(t_train, axis=1),
            np.argmax(t_test, axis=1),
        )

    def tiled(self, n_train: int, n_test: int) -> Data:
        """Repeat the examples until each split has the requested size (a stand-in for the full set)."""
        return Data(
            *(_tile(a, n_train) for a in (self.x_train, self.t_train)),
            *(_tile(a, n_test) for a in (self.x_test, self.t_test)),
            _tile(self.labels_train, n_train),
            _tile(self.labels_test, n_test),
        )


def _tile(a: np.ndarray, n: int) -> np.ndarray:
    """The first n rows of a repeated along its first axis."""
    reps = math.ceil(n / a.shape[0])
    return np.ascontiguousarray(np.tile(a, (reps,) + (1,) * (a.ndim - 1))[:n])


@dataclass(frozen=True)
class Setup:
    """What every implementation starts from: the seed, float32 initial weights, the batch indices."""

    seed: int
    init: dict[str, np.ndarray]
    batches: np.ndarray  # (iters, BATCH_SIZE) int64, row i is the batch of iteration i
    draw_s: float  # time the draws took: generated pays it inside its loop, the others read `batches`


def make_setup(data: Data, seed: int, iters: int) -> Setup:
    """Draw the initial weights and the batches exactly as ``generated.train_neuralnet.train`` does.

    train() makes one Generator from the seed, builds its TwoLayerNet from it, then
    draws ``rng.choice(train_size, batch_size)`` once per iteration.
    """
    rng = np.random.default_rng(seed)
    n_in, n_out = data.x_train.shape[1], data.t_train.shape[1]
    net = TwoLayerNet(n_in, HIDDEN_SIZE, n_out, dtype=np.float32, seed=rng)
    init = {key: net.params[key].copy() for key in PARAM_KEYS}
    train_size = data.x_train.shape[0]
    start = time.perf_counter()
    batches = [rng.choice(train_size, BATCH_SIZE) for _ in range(iters)]
    draw_s = time.perf_counter() - start
    return Setup(seed, init, np.stack(batches), draw_s)


@dataclass
class Result:
    """Timings and outcome of one training loop."""

    name: str
    iters: int
    loop_s: float  # the whole loop, evaluation included
    eval_s: float  # time spent evaluating accuracy (estimated for `generated`, see run_generated)
    n_evals: int
    train_acc: float | None
    test_acc: float | None
    params: dict[str, np.ndarray]

    @property
    def per_iter_ms(self) -> float:
        """Milliseconds per iteration, evaluation excluded."""
        return (self.loop_s - self.eval_s) / self.iters * 1e3


def _iter_per_epoch(data: Data) -> float:
    """The chapter's epoch length in iterations; a float, as in the chapter, so `i % it == 0` matches it."""
    return max(data.x_train.shape[0] / BATCH_SIZE, 1)


# ---------------------------------------------------------------- (a) generated


def run_generated(data: Data, setup: Setup, iters: int) -> Result:
    """Time ``generated.train_neuralnet.train``.

    train() computes the accuracies before it calls ``on_epoch``, so the evaluation
    cannot be timed from the callback.  Instead one evaluation (train + test accuracy)
    is timed after the loop and multiplied by the number of evaluations.
    """

    def check_start(network) -> None:
        for key in PARAM_KEYS:
            if not np.array_equal(network.params[key], setup.init[key]):
                raise RuntimeError(
                    f"generated train() started from a different {key} than make_setup(); "
                    "the benchmark's batches and weights no longer match it"
                )

    start = time.perf_counter()
    network, history = train(
        data.x_train,
        data.t_train,
        data.x_test,
        data.t_test,
        iters_num=iters,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        hidden_size=HIDDEN_SIZE,
        seed=setup.seed,
        dtype=np.float32,
        on_epoch=lambda *_: None,
        on_iteration=None,
        on_start=check_start,
    )
    loop_s = time.perf_counter() - start

    start = time.perf_counter()
    network.accuracy(data.x_train, data.t_train)
    network.accuracy(data.x_test, data.t_test)
    one_eval_s = time.perf_counter() - start
    n_evals = len(history.test_acc_list)
    return Result(
        "generated",
        iters,
        loop_s,
        one_eval_s * n_evals,
        n_evals,
        history.train_acc_list[-1],
        history.test_acc_list[-1],
        {key: network.params[key].copy() for key in PARAM_KEYS},
    )


# ---------------------------------------------------------------- (b) the chapter's code


def chapter_softmax(x):
    """Softmax as the chapter's common/functions.py computes it: max subtracted, batches transposed."""
    if x.ndim == 2:
        x = x.T
        x = x - np.max(x, axis=0)
        y = np.exp(x) / np.sum(np.exp(x), axis=0)
        return y.T
    x = x - np.max(x)
    return np.exp(x) / np.sum(np.exp(x))


def chapter_cross_entropy_error(y, t):
    """Mean cross-entropy with the chapter's +1e-7 inside the log; one-hot t becomes class indices."""
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


class ChapterRelu:
    """The chapter's Relu: forward copies then zeroes by mask; backward zeroes dout in place."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        # In place, as the chapter does; dout is Affine2's fresh dx, so no one else sees the change.
        dout[self.mask] = 0
        dx = dout
        return dx


class ChapterAffine:
    """The chapter's Affine: np.dot, inputs flattened to 2-D and dx reshaped back."""

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        out = np.dot(self.x, self.W) + self.b
        return out

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        dx = dx.reshape(*self.original_x_shape)
        return dx


class ChapterSoftmaxWithLoss:
    """The chapter's Softmax-with-Loss: softmax, cross-entropy, and (y - t) / N backward."""

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = chapter_softmax(x)
        self.loss = chapter_cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx


class ChapterTwoLayerNet:
    """The chapter's TwoLayerNet (section 5.7.2), started from given weights.

    The chapter draws ``weight_init_std * np.random.randn(...)`` (float64); here the
    weights come in from outside so that every implementation starts from the same ones.
    """

    def __init__(self, params):
        self.params = {key: np.array(params[key], dtype=np.float64) for key in PARAM_KEYS}
        self.layers = OrderedDict()
        self.layers["Affine1"] = ChapterAffine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = ChapterRelu()
        self.layers["Affine2"] = ChapterAffine(self.params["W2"], self.params["b2"])
        self.lastLayer = ChapterSoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        return self.lastLayer.forward(y, t)

    def accuracy(self, x, t):
        y = self.predict(x)
        y = np.argmax(y, axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def gradient(self, x, t):
        # forward
        self.loss(x, t)

        # backward: every layer's backward runs, so Affine1 computes a dx that nobody uses
        dout = 1
        dout = self.lastLayer.backward(dout)
        layers = list(self.layers.values())
        layers.reverse()
        for layer in layers:
            dout = layer.backward(dout)

        grads = {}
        grads["W1"], grads["b1"] = self.layers["Affine1"].dW, self.layers["Affine1"].db
        grads["W2"], grads["b2"] = self.layers["Affine2"].dW, self.layers["Affine2"].db
        return grads


def run_chapter(data: Data, setup: Setup, iters: int) -> Result:
    """The chapter's loop (section 5.7.4): images float32 as loaded, weights float64."""
    x_train, t_train, x_test, t_test = data.x_train, data.t_train, data.x_test, data.t_test
    network = ChapterTwoLayerNet(setup.init)
    iter_per_epoch = _iter_per_epoch(data)
    train_loss_list, train_acc_list, test_acc_list = [], [], []
    eval_s = 0.0

    start = time.perf_counter()
    for i in range(iters):
        batch_mask = setup.batches[i]
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]

        grad = network.gradient(x_batch, t_batch)
        for key in PARAM_KEYS:
            network.params[key] -= LEARNING_RATE * grad[key]

        loss = network.loss(x_batch, t_batch)
        train_loss_list.append(loss)

        if i % iter_per_epoch == 0:
            eval_start = time.perf_counter()
            train_acc = network.accuracy(x_train, t_train)
            test_acc = network.accuracy(x_test, t_test)
            eval_s += time.perf_counter() - eval_start
            train_acc_list.append(train_acc)
            test_acc_list.append(test_acc)
    loop_s = time.perf_counter() - start

    return Result(
        "chapter",
        iters,
        loop_s,
        eval_s,
        len(test_acc_list),
        float(train_acc_list[-1]),
        float(test_acc_list[-1]),
        {key: network.params[key].copy() for key in PARAM_KEYS},
    )


# ---------------------------------------------------------------- (c) PyTorch


def torch_available() -> bool:
    """True when PyTorch can be imported (it is optional: only this benchmark uses it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_torch(data: Data, setup: Setup, iters: int) -> Result:
    """PyTorch on the CPU: float32, nn.Linear layers, autograd, F.cross_entropy and optim.SGD.

    Written as a PyTorch user would: the loss recorded each iteration is the one of the
    forward pass that is backpropagated (before the update); the chapter's loop instead
    runs a second forward pass after the update.  Labels are class indices, as
    F.cross_entropy expects; the batches are the same rows.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    x_train, x_test = torch.from_numpy(data.x_train), torch.from_numpy(data.x_test)
    labels_train, labels_test = torch.from_numpy(data.labels_train), torch.from_numpy(data.labels_test)
    batches = torch.from_numpy(setup.batches)

    n_in, n_hidden = setup.init["W1"].shape
    n_out = setup.init["W2"].shape[1]
    model = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))
    with torch.no_grad():
        for linear, w, b in ((model[0], "W1", "b1"), (model[2], "W2", "b2")):
            linear.weight.copy_(torch.from_numpy(setup.init[w].T))  # nn.Linear stores W as (out, in)
            linear.bias.copy_(torch.from_numpy(setup.init[b]))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

    def accuracy(x, labels) -> float:
        with torch.no_grad():
            return (model(x).argmax(dim=1) == labels).float().mean().item()

    iter_per_epoch = _iter_per_epoch(data)
    train_loss_list, train_acc_list, test_acc_list = [], [], []
    eval_s = 0.0

    start = time.perf_counter()
    for i in range(iters):
        batch_mask = batches[i]
        x_batch = x_train[batch_mask]
        t_batch = labels_train[batch_mask]

        loss = F.cross_entropy(model(x_batch), t_batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_loss_list.append(loss.item())

        if i % iter_per_epoch == 0:
            eval_start = time.perf_counter()
            train_acc_list.append(accuracy(x_train, labels_train))
            test_acc_list.append(accuracy(x_test, labels_test))
            eval_s += time.perf_counter() - eval_start
    loop_s = time.perf_counter() - start

    with torch.no_grad():
        params = {
            "W1": model[0].weight.T.numpy().copy(),
            "b1": model[0].bias.numpy().copy(),
            "W2": model[2].weight.T.numpy().copy(),
            "b2": model[2].bias.numpy().copy(),
        }
    return Result(
        "torch", iters, loop_s, eval_s, len(test_acc_list), train_acc_list[-1], test_acc_list[-1], params
    )


# ---------------------------------------------------------------- (d) the floor


def run_floor(data: Data, setup: Setup, iters: int) -> Result:
    """The float32 matrix products the run cannot avoid, plus the batch gather; nothing else.

    Per iteration: forward x @ W1 and h @ W2; backward dout @ W2.T, h.T @ dout and
    x.T @ dh, each into an array allocated once.  Once per epoch, as the run evaluates: the two forward products over
    the whole training and test sets, 10,000 rows at a time.  No ReLU, softmax,
    bias, update or argmax: the weights never change, the values flowing through
    are meaningless, only the shapes and the dtype are those of training.
    """
    x_train, x_test = data.x_train, data.x_test
    W1, W2 = setup.init["W1"], setup.init["W2"]
    iter_per_epoch = _iter_per_epoch(data)
    eval_s, n_evals = 0.0, 0
    # Every array is allocated once, as the fastest loop would: the batch, each product's
    # result, and the evaluation's hidden values (see TwoLayerNet._out for why it matters).
    n, (d, hidden), classes = BATCH_SIZE, W1.shape, W2.shape[1]
    x = np.empty((n, d), dtype=np.float32)
    h, dout, dh = (
        np.empty((n, hidden), np.float32),
        np.empty((n, classes), np.float32),
        np.empty((n, hidden), np.float32),
    )
    dW1, dW2 = np.empty((d, hidden), np.float32), np.empty((hidden, classes), np.float32)
    chunk = np.empty((10_000, hidden), np.float32)

    start = time.perf_counter()
    for i in range(iters):
        np.take(x_train, setup.batches[i], axis=0, out=x, mode="clip")
        np.matmul(x, W1, out=h)
        np.matmul(h, W2, out=dout)
        np.matmul(dout, W2.T, out=dh)
        np.matmul(h.T, dout, out=dW2)
        np.matmul(x.T, dh, out=dW1)
        if i % iter_per_epoch == 0:
            eval_start = time.perf_counter()
            for images in (x_train, x_test):
                for row in range(0, images.shape[0], 10_000):
                    rows = images[row : row + 10_000]
                    np.matmul(rows, W1, out=chunk[: rows.shape[0]]) @ W2
            eval_s += time.perf_counter() - eval_start
            n_evals += 1
    loop_s = time.perf_counter() - start

    return Result("floor", iters, loop_s, eval_s, n_evals, None, None, {})


IMPLEMENTATIONS = {
    "generated": run_generated,
    "chapter": run_chapter,
    "torch": run_torch,
    "floor": run_floor,
}
