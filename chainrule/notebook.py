"""``chainrule notebook -o chapter5.ipynb``: the chapter as a Jupyter notebook.

Section by section (5.1 to 5.7): the chapter's derivations as Markdown with math, their
figures, and code cells that run the generated layers to reproduce the chapter's numbers:
the shopping examples, the activation layers, Softmax-with-Loss's y - t, the gradient
check on 3 MNIST images and a short training run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from codegen.i18n import N_, _, gettext

# The chapter trains for 10,000 iterations (``chainrule train``); a few hundred show the
# accuracy climbing and keep a run of the whole notebook to seconds.
TRAIN_ITERS = 500
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


@dataclass(frozen=True)
class Code:
    """A code cell, with the sentence that introduces it (an English msgid; see ``_say``)."""

    lead: str
    source: str


@dataclass(frozen=True)
class Part:
    """One section of the chapter: its number and title, a paragraph, derivations, code.

    The title and the paragraph are English msgids, shown in the reader's language by ``_say``.
    """

    number: str
    title: str
    text: str
    derivations: tuple[str, ...] = ()
    code: tuple[Code, ...] = ()


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

SETUP = """\
import numpy as np
from IPython.display import SVG

from codegen.figures import svg"""

MASK = """\
from generated.layers import Relu

x = np.array([[1.0, -0.5], [-2.0, 3.0]])
print("x:", x)
mask = x <= 0
print("mask:", mask)

relu = Relu()
print("forward:", relu.forward(x))
print("backward:", relu.backward(np.ones_like(x)))"""

SIGMOID = """\
from generated.layers import Sigmoid

sigmoid = Sigmoid()
y = sigmoid.forward(x)
dx = sigmoid.backward(np.ones_like(x))  # dL/dy = 1
print("y:", y)
print("dx:", dx)
print("dx == y(1 - y):", np.allclose(dx, y * (1 - y)))"""

AFFINE = """\
from generated.layers import Affine

rng = np.random.default_rng(0)
affine = Affine(rng.standard_normal((2, 3)), np.zeros(3))  # W: (2, 3), B: (3,)
X = rng.standard_normal((4, 2))  # a batch of N = 4
Y = affine.forward(X)
dX = affine.backward(np.ones_like(Y))
print("Y:", Y.shape, " dX:", dX.shape, " dW:", affine.dW.shape, " dB:", affine.db.shape)"""

SOFTMAX = """\
from generated.layers import SoftmaxWithLoss

t = np.array([[0, 1, 0]])  # the label: class 1
scores = np.log(np.array([[0.3, 0.2, 0.5]]))  # scores whose softmax is (0.3, 0.2, 0.5)
layer = SoftmaxWithLoss()
loss = layer.forward(scores, t)
print("y:", layer.y)
print("loss:", loss)
print("dx = (y - t) / N:", layer.backward(1))"""

LOAD = """\
from chainrule.mnist import load_mnist

(x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True, dtype=np.float64)
print(x_train.shape, t_train.shape, x_test.shape, t_test.shape)"""

GRADIENT_CHECK = """\
from generated.gradient_check import gradient_check
from generated.two_layer_net import TwoLayerNet

network = TwoLayerNet(input_size=784, hidden_size=50, output_size=10, seed=0)
x_batch = x_train[:3]
t_batch = t_train[:3]

for key, diff in gradient_check(network, x_batch, t_batch).items():
    print(key + ":" + str(diff))"""

TRAIN = f"""\
from generated.train_neuralnet import train

# prints the train and test accuracy once per epoch, as the chapter does
network, history = train(x_train, t_train, x_test, t_test, iters_num={TRAIN_ITERS}, batch_size=100, learning_rate=0.1)
print("test accuracy after {TRAIN_ITERS} iterations:", network.accuracy(x_test, t_test))"""

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
    """The chapter's sections, in order; the shopping cells are the generated scripts themselves."""
    return (
        Part(
            "5.1",
            N_("Computational graphs"),
            N_(
                "A computational graph writes a calculation as nodes (the operations) and arrows (the "
                "values passed between them); the forward pass runs from left to right. Problem 1: Taro "
                "buys 2 apples at 100 yen each, with 10% consumption tax. The backward pass, from right "
                "to left, gives the derivative of the price with respect to each input: an apple 1 yen "
                "dearer makes the price 2.2 yen higher (図5-5)."
            ),
            ("apples",),
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
            ("chain_rule",),
        ),
        Part(
            "5.3",
            N_("Backward pass"),
            N_(
                "An add node passes the upstream derivative on to both inputs unchanged; a multiply node "
                "passes it on times the other input, so it keeps its inputs from the forward pass "
                "(図5-9 to 図5-13). With these two rules the shopping graphs run backward: the apples and "
                "oranges of Problem 2 (図5-15)."
            ),
            ("add", "mul", "apples_oranges"),
        ),
        Part(
            "5.4",
            N_("Implementing simple layers"),
            N_(
                "Each node becomes a layer with `forward()` and `backward()`: `MulLayer` and `AddLayer`, "
                "generated from the multiply and add derivations into `generated/layers.py`. The "
                "shopping code below is `generated/buy_apple.py` and `generated/buy_apple_orange.py` as "
                "chainrule wrote them."
            ),
            code=(
                Code(
                    N_("The generated layers (the chapter's `layer_naive.py`):"),
                    "import inspect\n\nfrom generated.layers import AddLayer, MulLayer\n\n"
                    "print(inspect.getsource(MulLayer))\nprint(inspect.getsource(AddLayer))",
                ),
                Code(N_("Buying 2 apples (図5-16):"), script("buy_apple")),
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
            ("relu", "sigmoid"),
            (
                Code(N_("ReLU's mask, and the layer forward and backward:"), MASK),
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
            ("affine", "softmax_with_loss"),
            (
                Code(N_("Every gradient has the shape of its variable (図5-27):"), AFFINE),
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
            code=(
                Code(N_("MNIST:"), LOAD),
                Code(
                    N_(
                        "The gradient check: the mean absolute difference between the two gradients, "
                        "per parameter, is tiny:"
                    ),
                    GRADIENT_CHECK,
                ),
                Code(N_("A short training run, {iters} iterations:"), TRAIN),
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

    spec = importlib.util.find_spec(f"generated.{module}")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"generated.{module} is not installed")
    source = Path(spec.origin).read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    imports = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
            imports.append(f"from generated.{node.module} import {names}")
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


def _figure_cell(name: str, nbformat: Any) -> Any:
    """A cell that draws a figure, its output already there so the notebook shows it unrun."""
    import re

    from codegen.figures import svg

    cell = nbformat.v4.new_code_cell(f'SVG(svg("{name}"))')
    picture = re.sub(r"\A<\?xml[^>]*\?>\s*", "", svg(name))
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"image/svg+xml": picture, "text/plain": "<IPython.core.display.SVG object>"}
        )
    ]
    return cell


def build() -> Any:
    """The chapter as an nbformat notebook (version 4), every cell's id fixed so the file is reproducible."""
    import nbformat

    import symbolic
    from chainrule.report import figure_names

    v4 = nbformat.v4
    cells = [v4.new_markdown_cell(_say(INTRO)), v4.new_code_cell(SETUP)]
    for part in chapter():
        cells.append(v4.new_markdown_cell(f"# {part.number} {_say(part.title)}\n\n{_say(part.text)}"))
        for name in part.derivations:
            cells.append(v4.new_markdown_cell(symbolic.derive(name).markdown().strip()))
            cells += [_figure_cell(figure, nbformat) for figure in figure_names(name)]
        for code in part.code:
            cells += [v4.new_markdown_cell(_say(code.lead)), v4.new_code_cell(code.source)]
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:03d}"
    notebook = v4.new_notebook(
        cells=cells, metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}}
    )
    nbformat.validate(notebook)
    return notebook


def notebook_text() -> str:
    """The notebook as the JSON text of an ``.ipynb`` file."""
    import nbformat

    return nbformat.writes(build())


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``notebook`` subcommand on the CLI's subparsers."""
    notebook = sub.add_parser(
        "notebook",
        help=_(
            "write the chapter as a Jupyter notebook: derivations, figures and the generated layers at work"
        ),
    )
    notebook.add_argument(
        "-o", "--output", metavar="FILE", required=True, help=_("the notebook to write, e.g. chapter5.ipynb")
    )
    notebook.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the notebook to ``args.output`` atomically; refuse anything but a regular file there."""
    from chainrule.errors import UsageError
    from chainrule.files import check_output, shown, write_output_text

    try:
        check_output(args.output)  # before the work: a folder, a device or a file of yours fails at once
        write_output_text(args.output, notebook_text())
    except OSError as exc:
        raise UsageError(
            _("cannot write {path}: {reason}", path=shown(args.output), reason=exc.strerror or exc)
        ) from None
    print(_("wrote {path}", path=shown(args.output)), file=sys.stderr)
    return 0
