"""The chapter as the notebook tells it: its sections in order, their sentences and their cells' code."""

from __future__ import annotations

from dataclasses import dataclass

from chainrule.codegen.i18n import N_, active, gettext

# The chapter trains for 10,000 iterations (``chainrule train``); a few hundred show the
# accuracy climbing and keep a run of the whole notebook to seconds.
TRAIN_ITERS = 500


@dataclass(frozen=True)
class Code:
    """A code cell, with the sentence that introduces it (an English msgid; see ``_say``)."""

    lead: str
    source: str


@dataclass(frozen=True)
class Derived:
    """A derivation under its book section: its figures first, then the derivation itself."""

    number: str  # the book's section, "5.3.1"; the part's own number for a derivation that is the part
    name: str
    # Followed by a cell that shows its figures live (``.explore()``): the layers of 5.3 to 5.6.
    live: bool = False


@dataclass(frozen=True)
class Heading:
    """A subsection of the book without a derivation of its own (an English msgid title)."""

    number: str
    title: str


@dataclass(frozen=True)
class Listing:
    """Generated code shown as a Markdown listing: always visible, nothing to run."""

    lead: str
    source: str


@dataclass(frozen=True)
class Exercise:
    """The book's exercise of 図5-15: blanks to fill in, and a cell that checks them."""


Item = Code | Derived | Heading | Listing | Exercise


@dataclass(frozen=True)
class Part:
    """One section of the chapter: its number and title, a paragraph, then its items in order.

    The title and the paragraph are English msgids, shown in the reader's language by ``_say``.
    """

    number: str
    title: str
    text: str
    items: tuple[Item, ...] = ()


INTRO = N_("""\
# Chapter 5: Backpropagation

The backpropagation chapter of "ゼロから作るDeep Learning", derived by SymPy. Each section
holds the chapter's derivations (every local derivative from `sympy.diff`, every chain-rule
product multiplied out by SymPy), their computational graphs (forward values above the
arrows, backward values below), and code that runs the NumPy layers chainrule generated
from those derivations (the package `generated`) to reproduce the chapter's numbers.

Run all cells to see them. The MNIST cells load the data as `chainrule train` does: from
your cache, else a download, else the sample shipped with chainrule. In a cell of your own,
`symbolic.derive("sigmoid")` shows a derivation; `.latex()`, `.markdown()` and `.figure()`
give its text.""")

SETUP_COMMENT = N_("chainrule's messages in the language of this notebook")


def setup() -> str:
    """The first code cell: imports, and chainrule's messages in the notebook's language."""
    return f"""\
import numpy as np
from IPython.display import SVG

from chainrule import symbolic
from chainrule.codegen.figures import svg
from chainrule.codegen.i18n import activate

activate("{active()}")  # {gettext(SETUP_COMMENT)}"""


MASK = """\
from chainrule.generated.layers import Relu

x = np.array([[1.0, -0.5], [-2.0, 3.0]])
print("x:", x)
mask = x <= 0
print("mask:", mask)

relu = Relu()
print("relu.forward(x):", relu.forward(x))
print("relu.backward(dout):", relu.backward(np.ones_like(x)))  # dout = 1 everywhere"""

SIGMOID = """\
from chainrule.generated.layers import Sigmoid

sigmoid = Sigmoid()
y = sigmoid.forward(x)
dx = sigmoid.backward(np.ones_like(x))  # dL/dy = 1
print("y:", y)
print("dx:", dx)
print("dx == y(1 - y):", np.allclose(dx, y * (1 - y)))"""

AFFINE = """\
from chainrule.generated.layers import Affine

rng = np.random.default_rng(0)
affine = Affine(rng.standard_normal((2, 3)), np.zeros(3))  # W: (2, 3), B: (3,)
X = rng.standard_normal((4, 2))  # a batch of N = 4
Y = affine.forward(X)
dX = affine.backward(np.ones_like(Y))
print("Y:", Y.shape, " dX:", dX.shape, " dW:", affine.dW.shape, " dB:", affine.db.shape)"""

SOFTMAX = """\
from chainrule.generated.layers import SoftmaxWithLoss

t = np.array([[0, 1, 0]])  # the label: class 1
scores = np.log(np.array([[0.3, 0.2, 0.5]]))  # scores whose softmax is (0.3, 0.2, 0.5)
layer = SoftmaxWithLoss()
loss = layer.forward(scores, t)
print("y:", layer.y)
print("L:", loss)
print("dx = (y - t) / N:", layer.backward(1))"""

LOAD = """\
from chainrule.mnist import load_mnist, locate_mnist

source = locate_mnist(announce=None)
print(source.describe())
(x_train, t_train), (x_test, t_test) = load_mnist(
    normalize=True, one_hot_label=True, dtype=np.float64, source=source
)
print(x_train.shape, t_train.shape, x_test.shape, t_test.shape)"""

GRADIENT_CHECK = """\
from chainrule.generated.gradient_check import gradient_check
from chainrule.generated.two_layer_net import TwoLayerNet

network = TwoLayerNet(input_size=784, hidden_size=50, output_size=10, seed=0)
x_batch = x_train[:3]
t_batch = t_train[:3]

for key, diff in gradient_check(network, x_batch, t_batch).items():
    print(key + ":" + str(diff))"""

TRAIN_COMMENT = N_("prints the train and test accuracy once per epoch, as the chapter does")

TRAIN_LABEL = N_("test accuracy after {iters} iterations:")


def train_source() -> str:
    """The short training run, its comment and printed label in the reader's language."""
    return f"""\
from chainrule.generated.train_neuralnet import train

# {gettext(TRAIN_COMMENT)}
network, history = train(x_train, t_train, x_test, t_test, iters_num={TRAIN_ITERS}, batch_size=100, learning_rate=0.1)
print("{_say(TRAIN_LABEL)}", network.accuracy(x_test, t_test))"""


PLOT = """\
import matplotlib.pyplot as plt

epochs = np.arange(len(history.train_acc_list))
plt.plot(epochs, history.train_acc_list, label="train acc")
plt.plot(epochs, history.test_acc_list, label="test acc", linestyle="--")
plt.xlabel("epochs")
plt.ylabel("accuracy")
plt.ylim(0, 1.0)
plt.legend(loc="lower right")
plt.show()"""


def chapter() -> tuple[Part, ...]:
    """The chapter's sections, in its order; the shopping cells are the generated scripts themselves."""
    return (
        Part(
            "5.1",
            N_("Computational graphs"),
            N_(
                "A computational graph writes a calculation as nodes (the operations) and arrows (the "
                "values passed between them); the forward pass runs from left to right. Problem 1: Taro "
                "buys 2 apples at 100 yen each, with 10% consumption tax. Problem 2: he buys 2 apples "
                "and 3 oranges at 150 yen each, with the same tax. Each node computes only from its own "
                "inputs, a local calculation (図5-4), and the graph keeps every intermediate result: "
                "the backward pass of 5.2 uses them."
            ),
            (Derived("5.1", "computational_graph"),),
        ),
        Part(
            "5.2",
            N_("The chain rule"),
            N_(
                "The derivative of a composite function is the product of the derivatives of its parts. "
                r"For $z = (x + y)^2$, with $t = x + y$: "
                r"$\frac{\partial z}{\partial x} = \frac{\partial z}{\partial t}\frac{\partial t}{\partial x}"
                r" = 2t \cdot 1 = 2(x + y)$ (図5-7, 図5-8). A backward pass multiplies each node's local "
                "derivative into the value that comes from upstream."
            ),
            (Derived("5.2", "chain_rule"),),
        ),
        Part(
            "5.3",
            N_("Backward pass"),
            N_(
                "An add node passes the upstream derivative on to both inputs unchanged; a multiply node "
                "passes it on times the other input, so it keeps its inputs from the forward pass "
                "(図5-9 to 図5-13). With these two rules the shopping graph of Problem 1 runs backward "
                "(図5-14); Problem 2 is the exercise of 図5-15."
            ),
            (
                Derived("5.3.1", "add", live=True),
                Derived("5.3.2", "mul", live=True),
                Derived("5.3.3", "apples", live=True),
                Exercise(),
            ),
        ),
        Part(
            "5.4",
            N_("Implementing simple layers"),
            N_(
                "Each node becomes a layer with `forward()` and `backward()`: `MulLayer` and `AddLayer`, "
                "generated from the multiply and add derivations into `generated/layers.py`. The "
                "shopping code below is `generated/buy_apple.py` and `generated/buy_apple_orange.py` as "
                "chainrule wrote them, with the book's names for the layers."
            ),
            (
                Heading("5.4.1", N_("The multiply layer")),
                Listing(N_("The generated `MulLayer` (the chapter's `layer_naive.py`):"), "MulLayer"),
                Code(N_("Buying 2 apples (図5-16):"), script("buy_apple")),
                Derived("5.4.2", "apples_oranges", live=True),
                Listing(N_("The generated `AddLayer`:"), "AddLayer"),
                Code(N_("Buying 2 apples and 3 oranges (図5-17):"), script("buy_apple_orange")),
            ),
        ),
        Part(
            "5.5",
            N_("Activation function layers"),
            N_(
                r"ReLU passes the upstream derivative on where its input was positive and stops it "
                r"elsewhere, so it keeps a mask of where $x \leq 0$. Sigmoid's backward, through the /, "
                r"+1, exp and ×(−1) nodes (図5-19, 図5-20), comes to "
                r"$\frac{\partial L}{\partial y} y(1 - y)$: it needs only the forward output $y$."
            ),
            (
                Derived("5.5.1", "relu", live=True),
                Code(N_("ReLU's mask, and the layer forward and backward:"), MASK),
                Derived("5.5.2", "sigmoid", live=True),
                Code(N_("Sigmoid's backward is y(1 − y) times the upstream derivative:"), SIGMOID),
            ),
        ),
        Part(
            "5.6",
            N_("Affine and Softmax layers"),
            N_(
                r"The Affine layer computes $X \cdot W + B$ on matrices; backward, "
                r"$\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Y} \cdot W^T$ and "
                r"$\frac{\partial L}{\partial W} = X^T \cdot \frac{\partial L}{\partial Y}$, each the "
                r"shape of its variable, and for a batch $\frac{\partial L}{\partial B}$ sums "
                r"$\frac{\partial L}{\partial Y}$ over the rows. Softmax-with-Loss, the softmax followed "
                r"by the cross-entropy error, sends back $y - t$, divided by the batch size $N$."
            ),
            (
                Derived("5.6.1", "affine", live=True),
                Code(N_("Every gradient has the shape of its variable (図5-27):"), AFFINE),
                Derived("5.6.3", "softmax_with_loss", live=True),
                Code(
                    N_(
                        "The chapter's example: label (0, 1, 0), softmax output (0.3, 0.2, 0.5), "
                        "so the layer sends back (0.3, −0.8, 0.5):"
                    ),
                    SOFTMAX,
                ),
            ),
        ),
        Part(
            "5.7",
            N_("Implementing backpropagation"),
            N_(
                "`TwoLayerNet` stacks Affine, ReLU, Affine and Softmax-with-Loss. Its gradients by "
                "backpropagation are checked against central differences on the first 3 training "
                "images (the gradient check), then it trains for {iters} mini-batches of 100 "
                "(the chapter runs 10,000: `chainrule train`)."
            ),
            (
                Heading("5.7.2", N_("A network with backpropagation")),
                Listing(
                    N_(
                        "The core of 5.7.2, `TwoLayerNet.gradient` as chainrule generated it: the forward "
                        "pass gives the loss, then each layer's `backward` runs in reverse order, "
                        "starting from `dout = 1`:"
                    ),
                    "TwoLayerNet.gradient",
                ),
                Heading("5.7.3", N_("Gradient check")),
                Code(
                    N_(
                        "MNIST: from your cache, else a download, else the 4,000-image sample shipped "
                        "with chainrule; the cell says which:"
                    ),
                    LOAD,
                ),
                Code(
                    N_(
                        "The gradient check: the mean absolute difference between the two gradients, "
                        "per parameter, is tiny:"
                    ),
                    GRADIENT_CHECK,
                ),
                Heading("5.7.4", N_("Learning with backpropagation")),
                Code(N_("A short training run, {iters} iterations:"), train_source()),
                Code(N_("Accuracy per epoch:"), PLOT),
            ),
        ),
    )


def script(module: str) -> str:
    """A generated script as notebook code: its imports, then the body of its ``main()``.

    Read from the installed ``generated`` package, so the cell is the code chainrule wrote,
    not a second copy of it.
    """
    import ast
    import importlib.util
    import textwrap
    from pathlib import Path

    spec = importlib.util.find_spec(f"chainrule.generated.{module}")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"chainrule.generated.{module} is not installed")
    source = Path(spec.origin).read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    imports = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
            imports.append(f"from chainrule.generated.{node.module} import {names}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(ast.get_source_segment(source, node) or "")
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    body = main.body[1:] if ast.get_docstring(main) is not None else main.body
    code = textwrap.dedent("\n".join(lines[body[0].lineno - 1 : main.end_lineno]))
    return "\n".join(imports) + "\n\n" + code.strip()


def _say(msgid: str) -> str:
    """A sentence of the notebook in the reader's language; {iters} is the short run's length.

    Only a sentence with the field is formatted: the others hold LaTeX, whose braces are not fields.
    """
    text = gettext(msgid)
    return text.replace("{iters}", str(TRAIN_ITERS)) if "{iters}" in msgid else text
