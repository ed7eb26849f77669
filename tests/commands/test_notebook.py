"""``chainrule notebook``: the chapter as a notebook that runs headlessly and prints the chapter's numbers."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from chainrule import symbolic
from chainrule.cli import main
from chainrule.codegen.figures import document_figure_names
from chainrule.codegen.html import figure_names
from chainrule.codegen.i18n import gettext
from chainrule.commands.notebook import EXPLORE_LEAD
from chainrule.fs.ledger import write_output_text
from tests.helpers import CHAPTER, run_notebook

SECTIONS = ("5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7")
# The derivations shown live, by a cell of their own (``.explore()``), in the chapter's order.
LIVE = ("add", "mul", "apples", "apples_oranges", "relu", "sigmoid", "affine", "softmax_with_loss")
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """The notebook as the command line writes it."""
    path = tmp_path_factory.mktemp("nb") / "chapter5.ipynb"
    assert main(["notebook", "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def notebook(written) -> nbformat.NotebookNode:
    nb = nbformat.read(written, as_version=4)
    nbformat.validate(nb)
    return nb


@pytest.fixture(scope="module")
def executed(notebook, tmp_path_factory) -> nbformat.NotebookNode:
    """The notebook run top to bottom in a fresh kernel of this interpreter, offline.

    The kernelspec is installed into a temporary prefix for sys.executable, so the kernel has
    this interpreter's packages and PYTHONPATH; it talks over Unix sockets, not the network;
    MNIST is the shipped sample (CHAINRULE_OFFLINE and an empty cache).
    """
    return run_notebook(nbformat.from_dict(notebook), tmp_path_factory.mktemp("kernel"))


def _code(nb, needle: str) -> nbformat.NotebookNode:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    return cell


def _stdout(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_sections_in_the_chapters_order(notebook):
    headings = [c.source.splitlines()[0] for c in notebook.cells if c.cell_type == "markdown"]
    numbered = [h.split()[1] for h in headings if re.match(r"# 5\.\d ", h)]
    assert tuple(numbered) == SECTIONS
    assert notebook.metadata.kernelspec.name == "python3"


def test_every_derivation_is_markdown_after_its_figures(notebook):
    cells = notebook.cells
    for name in CHAPTER:
        body = symbolic.derive(name).markdown().strip().split("\n", 2)[2].strip()  # without its heading
        (at,) = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.endswith(body)]
        figures = figure_names(name)
        assert figures
        # the layers of 5.3 to 5.6: their figures drawn, then the cell that shows them live
        live = 2 if name in LIVE else 0
        first = at - len(figures) - live
        for offset, figure in enumerate(figures):
            cell = cells[first + offset]
            # the figure the derivation's numbers draw is drawn by the call that takes the reader's own
            assert cell.source == f'SVG(svg("{figure}"))' or cell.source.startswith(
                f'SVG(symbolic.derive("{name}").figure('
            )
            # drawn already, so the notebook shows its figures before anything runs
            (out,) = cell.outputs
            assert out.data["image/svg+xml"].startswith("<svg ")
            assert "<title>" in out.data["image/svg+xml"]
        assert first < at and all(
            c.cell_type != "markdown" or not c.source.startswith("#") for c in cells[first:at]
        )
        if live:
            lead, explore = cells[at - 2 : at]
            assert lead.cell_type == "markdown" and lead.source == gettext(EXPLORE_LEAD)
            assert explore.source == f'symbolic.derive("{name}").explore()' and explore.outputs == []


def test_the_layers_of_5_3_to_5_6_are_shown_live(notebook):
    explored = [c.source for c in notebook.cells if c.cell_type == "code" and ".explore()" in c.source]
    assert explored == [f'symbolic.derive("{name}").explore()' for name in LIVE]


def test_shopping_cells_are_the_generated_scripts(notebook):
    cell = _code(notebook, "mul_tax_layer.forward(apple_price, tax)")
    assert cell.source.startswith("from chainrule.generated.layers import MulLayer\n")
    assert "def main" not in cell.source and "from ." not in cell.source
    assert 'print("dTax:"' in cell.source


def test_the_file_is_reproducible(written, tmp_path):
    again = tmp_path / "again.ipynb"
    assert main(["notebook", "-o", str(again)]) == 0
    assert again.read_bytes() == written.read_bytes()


@pytest.mark.slow
def test_runs_and_prints_the_chapters_shopping_numbers(executed):
    assert _stdout(_code(executed, "mul_tax_layer.forward(apple_price, tax)")).startswith(
        "price: 220\ndApple: 2.2\ndApple_num: 110\ndTax: 200\n"
    )
    assert _stdout(_code(executed, "add_apple_orange_layer = AddLayer()")) == (
        "price: 715\ndApple: 2.2\ndApple_num: 110\ndOrange: 3.3000000000000003\ndOrange_num: 165\ndTax: 650\n"
    )


@pytest.mark.slow
def test_runs_the_layers_as_the_chapter_does(executed):
    relu = _stdout(_code(executed, "mask = x <= 0"))
    assert relu.startswith("x: [[ 1.  -0.5]\n [-2.   3. ]]\nmask: [[False  True]\n [ True False]]\n")
    assert "relu.backward(dout): [[1. 0.]\n [0. 1.]]" in relu
    assert _stdout(_code(executed, "sigmoid = Sigmoid()")).endswith("dx == y(1 - y): True\n")
    assert _stdout(_code(executed, "affine = Affine(")) == "Y: (4, 3)  dX: (4, 2)  dW: (2, 3)  dB: (3,)\n"
    softmax = _stdout(_code(executed, "SoftmaxWithLoss()"))
    assert "y: [[0.3 0.2 0.5]]\n" in softmax
    assert "dx = (y - t) / N: [[ 0.3 -0.8  0.5]]\n" in softmax
    (loss,) = re.findall(r"L: (\S+)", softmax)
    assert float(loss) == pytest.approx(1.6094379124341003)  # -log 0.2


@pytest.mark.slow
def test_runs_the_gradient_check_and_a_training_run(executed):
    assert "(4000, 784) (4000, 10) (1000, 784) (1000, 10)" in _stdout(_code(executed, "load_mnist("))
    check = _stdout(_code(executed, "gradient_check(network"))
    diffs = dict(line.split(":") for line in check.splitlines())
    assert list(diffs) == ["W1", "b1", "W2", "b2"]
    assert all(0 < float(v) < 1e-6 for v in diffs.values())
    trained = _stdout(_code(executed, "train(x_train"))
    epochs = [tuple(map(float, line.split())) for line in trained.splitlines()[:-1]]
    assert len(epochs) == 13  # 500 iterations of 100 from 4,000 images: an epoch every 40
    assert epochs[0][1] < 0.3 < 0.8 < epochs[-1][1]
    (final,) = re.findall(r"test accuracy after 500 iterations: (\S+)", trained)
    assert float(final) > 0.8
    plot = _code(executed, "plt.plot(")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)


@pytest.mark.slow
def test_runs_without_errors_or_warnings(executed):
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None
        assert all(o.output_type != "error" for o in cell.outputs)
        stderr = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")
        assert stderr == "", (cell.source, stderr)
    assert "MNIST from the sample shipped with chainrule" in _stdout(_code(executed, "load_mnist("))
    figures = [c for c in executed.cells if c.cell_type == "code" and c.source.startswith("SVG(")]
    shown = {*CHAPTER, "computational_graph"}
    assert len(figures) == sum(len(figure_names(n)) for n in shown) >= len(shown) + 1
    assert all("image/svg+xml" in c.outputs[0].data for c in figures)


@pytest.mark.slow
def test_runs_the_live_figures_as_widgets(executed):
    """Each explore() cell gives a widget view; the kernel's widget state, which nbclient saves in the
    notebook's metadata, holds each widget's figures and their inputs (the front end's own part,
    the module in a browser, is tests/codegen/test_widget.py's Chromium test)."""
    stored = executed.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    for name in LIVE:
        cell = _code(executed, f'symbolic.derive("{name}").explore()')
        assert all(o.output_type != "error" for o in cell.outputs)
        (view,) = [o for o in cell.outputs if WIDGET in o.get("data", {})]
        assert view.data["text/plain"].startswith(f"<live figures, {symbolic.derive(name).title}: ")
        model = stored[view.data[WIDGET]["model_id"]]
        assert model["model_name"] == "AnyModel"
        figures = document_figure_names(name)
        assert list(model["state"]["state"]) == list(figures)
        assert all(model["state"]["state"][f].startswith(f + "?") for f in figures)
        assert "export default { render };" in model["state"]["_esm"]


def test_refuses_what_is_not_a_regular_file(tmp_path, capsys):
    folder = tmp_path / "folder.ipynb"
    folder.mkdir()
    assert main(["notebook", "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: cannot write") and "is a folder" in err and err.count("\n") == 1

    target = tmp_path / "mine.txt"
    target.write_text("keep me")
    link = tmp_path / "link.ipynb"
    link.symlink_to(target)
    assert main(["notebook", "-o", str(link)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert link.is_symlink() and target.read_text() == "keep me"

    assert main(["notebook", "-o", str(tmp_path / "missing" / "ch5.ipynb")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.ipynb", "link.ipynb", "mine.txt"]


def test_replaces_a_notebook_it_wrote(tmp_path, written):
    old = tmp_path / "chapter5.ipynb"
    write_output_text(old, "{}")  # an earlier output of chainrule's, different from today's
    assert main(["notebook", "-o", str(old)]) == 0
    assert old.read_bytes() == written.read_bytes()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_refuses_a_fifo_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "pipe.ipynb"
    os.mkfifo(fifo)
    assert main(["notebook", "-o", str(fifo)]) == 2
    assert "a FIFO" in capsys.readouterr().err


def test_output_is_required(capsys):
    assert main(["notebook"]) == 2
    err = capsys.readouterr().err
    assert "-o/--output" in err and err.count("\n") == 1
