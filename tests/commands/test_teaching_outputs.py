"""The notebook and the report teach like the book: its order, its names, its exercise, its numbers."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import nbformat
import pytest

from chainrule import symbolic
from chainrule.cli import main
from chainrule.codegen.figures import svg
from chainrule.codegen.html import figure_names, math
from chainrule.codegen.i18n import language
from chainrule.commands.report import REPORT
from tests.helpers import chainrule, offline_env, run_notebook

# The chapter's derivations in the book's order, with the book section each one is under.
ORDER = (
    ("computational_graph", "5.1"),
    ("chain_rule", "5.2"),
    ("add", "5.3.1"),
    ("mul", "5.3.2"),
    ("apples", "5.3.3"),
    ("apples_oranges", "5.4.2"),
    ("relu", "5.5.1"),
    ("sigmoid", "5.5.2"),
    ("affine", "5.6.1"),
    ("softmax_with_loss", "5.6.3"),
)
# The backward values of 図5-15 (the book's buy_apple_orange.py prints them).
ANSWERS = {
    "dall_price": 1.1,
    "dtax": 650,
    "dapple_price": 1.1,
    "dorange_price": 1.1,
    "dorange": 3.3,
    "dorange_num": 165,
    "dapple": 2.2,
    "dapple_num": 110,
}


def _number(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# --- the notebook ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["en", "ja"])
def notebook(request, tmp_path_factory) -> nbformat.NotebookNode:
    path = tmp_path_factory.mktemp("nb") / "chapter5.ipynb"
    assert main(["notebook", "--lang", request.param, "-o", str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    nb.metadata["test_lang"] = request.param
    return nb


@pytest.fixture(scope="module")
def executed(notebook, tmp_path_factory) -> nbformat.NotebookNode:
    """The notebook run top to bottom in a fresh kernel of this interpreter, offline, as test_notebook runs it."""
    return run_notebook(
        nbformat.from_dict(notebook), tmp_path_factory.mktemp("kernel"), quiet_matplotlib=True
    )


def _stream(cell, name: str) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == name)


def _index(nb, predicate) -> int:
    (at,) = [i for i, c in enumerate(nb.cells) if predicate(c)]
    return at


def _derivation_cell(nb, name: str) -> int:
    """The Markdown cell of a derivation: its body as the document prints it, without its heading."""
    with language(nb.metadata["test_lang"]):
        body = symbolic.derive(name).markdown().strip().split("\n", 2)[2].strip()
    return _index(nb, lambda c: c.cell_type == "markdown" and body in c.source)


def test_notebook_sections_and_figures_are_in_the_chapters_order(notebook):
    cells = notebook.cells
    headings = [
        m.group(1)
        for c in cells
        if c.cell_type == "markdown"
        for m in [re.match(r"#{1,3} (5\.\d(?:\.\d)?) ", c.source)]
        if m
    ]
    assert [h for h in headings if h.count(".") == 1] == ["5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7"]
    assert [_number(h) for h in headings] == sorted(_number(h) for h in headings)
    assert len(set(headings)) == len(headings)

    # each derivation under its book section, its figures drawn before it (saved with their output)
    at = {
        h: i
        for i, c in enumerate(cells)
        for h in headings
        if re.match(rf"#{{1,3}} {re.escape(h)} ", c.source)
    }
    figures_seen = []
    for name, section in ORDER:
        derivation = _derivation_cell(notebook, name)
        assert at[section] < derivation
        later = [h for h in headings if _number(h) > _number(section) and len(h) <= len(section)]
        assert not later or derivation < at[later[0]], (name, section)
        names = figure_names(name)
        drawn = [i for i in range(at[section], derivation) if cells[i].source.startswith("SVG(")][
            -len(names) :
        ]
        # then, for the layers of 5.3 to 5.6, a sentence and the cell that shows the figures live
        live = [c.source for c in cells[drawn[-1] + 1 : derivation]]
        explore = [] if section < "5.3" else [f'symbolic.derive("{name}").explore()']
        assert len(drawn) == len(names) and live[1:] == explore and len(live) == 2 * len(explore), name
        for shown, figure in zip(drawn, names, strict=True):
            (out,) = cells[shown].outputs  # drawn already, so the saved notebook shows it
            with language(notebook.metadata["test_lang"]):
                assert out.data["image/svg+xml"] == re.sub(r"\A<\?xml[^>]*\?>\s*", "", svg(figure))
            title = re.search(r"<title>(.*?)</title>", out.data["image/svg+xml"], flags=re.S).group(1)
            figures_seen.append(
                (shown, tuple(_number(n.replace("-", ".")) for n in re.findall(r"図(5-\d+)", title)))
            )
    numbers = [n for _, found in sorted(figures_seen) for n in found]
    assert numbers[:5] == [(5, 1), (5, 2), (5, 3), (5, 4), (5, 5)]
    assert (
        numbers == sorted(numbers) and (5, 29) in numbers and numbers.index((5, 29)) < numbers.index((5, 30))
    )

    # a figure with numbers is redrawn with the reader's own inputs
    redraw = 'SVG(symbolic.derive("apples").figure(apple=100, apple_num=2, tax=1.1))'
    (cell,) = [c for c in cells if c.source == redraw]
    assert cell.outputs and _index(notebook, lambda c: c is cell) < _derivation_cell(notebook, "apples")


def test_notebook_shows_the_book_names_and_the_gradient_method(notebook):
    (orange,) = [c.source for c in notebook.cells if "add_apple_orange_layer = AddLayer()" in c.source]
    for line in (
        "mul_apple_layer = MulLayer()",
        "mul_orange_layer = MulLayer()",
        "mul_tax_layer = MulLayer()",
        "all_price = add_apple_orange_layer.forward(apple_price, orange_price)",
        "dapple_price, dorange_price = add_apple_orange_layer.backward(dall_price)",
    ):
        assert line in orange
    assert not any("_price_layer" in c.source for c in notebook.cells)
    (gradient,) = [c for c in notebook.cells if "def gradient(self, x, t):" in c.source]
    assert gradient.cell_type == "markdown" and "```python\n" in gradient.source  # shown unrun
    assert "dout = self.lastLayer.backward(dout)" in gradient.source
    assert _index(notebook, lambda c: c is gradient) > _index(
        notebook, lambda c: c.source.startswith("# 5.7 ")
    )


def _exercise(notebook, answers: dict[str, object]) -> str:
    """The exercise's two cells run with ``answers`` typed into the blanks: what the checking cell prints."""
    blanks = _index(notebook, lambda c: c.cell_type == "code" and c.source.startswith("answers = {"))
    check = notebook.cells[blanks + 2]
    assert "check_figure_5_15(answers)" in check.source
    source = notebook.cells[blanks].source
    assert re.findall(r'"(\w+)": None', source) == list(ANSWERS)
    for name, value in answers.items():
        source = source.replace(f'"{name}": None', f'"{name}": {value!r}')
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with language(notebook.metadata["test_lang"]), contextlib.redirect_stdout(out):
        exec(compile(source, "<blanks>", "exec"), namespace)
        exec(compile(check.source, "<check>", "exec"), namespace)
    return out.getvalue()


def test_the_figure_5_15_exercise_says_which_answers_are_right(notebook):
    question = _index(
        notebook, lambda c: c.cell_type == "markdown" and "図5-15" in c.source and "None" in c.source
    )
    assert _index(notebook, lambda c: c.source.startswith("# 5.3 ")) < question
    assert question < _index(notebook, lambda c: c.source.startswith("# 5.4 "))
    ja = notebook.metadata["test_lang"] == "ja"

    right = _exercise(notebook, ANSWERS).splitlines()
    assert len(right) == len(ANSWERS) + 1
    assert all(line.endswith("正解です" if ja else ": right") for line in right[:-1])
    assert right[-1] == (
        "8 個すべて正解です。図5-15 が完成しました。" if ja else "All 8 right: 図5-15 is complete."
    )

    wrong = _exercise(notebook, {**ANSWERS, "dtax": 1.1, "dorange": 3.3000000000000003})
    (named,) = [line for line in wrong.splitlines() if line.startswith("dtax")]
    assert named.startswith("dtax = 1.1：正しくありません" if ja else "dtax = 1.1: not right")
    assert "dorange = 3.3000000000000003" in wrong and wrong.splitlines()[-1] == (
        "8 個中 7 個が正解です。" if ja else "7 of 8 right."
    )
    assert ("dapple_num：まだ入っていません" if ja else "dapple_num: not filled in yet") in _exercise(
        notebook, {}
    )


@pytest.mark.slow
def test_the_notebook_runs_without_stderr_and_speaks_its_language(executed):
    ja = executed.metadata["test_lang"] == "ja"
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        assert all(o.output_type != "error" for o in cell.outputs), cell.source
        assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"], (
            cell.source,
            _stream(cell, "stderr"),
        )
    (load,) = [c for c in executed.cells if "load_mnist(" in c.source]
    said = _stream(load, "stdout")
    if ja:
        assert "chainrule に同梱のサンプル" in said and "訓練データ 4,000 枚" in said
    else:
        assert "MNIST from the sample shipped with chainrule" in said and "4,000 training" in said
    (check,) = [c for c in executed.cells if "check_figure_5_15(answers)" in c.source]
    assert _stream(check, "stdout").startswith(
        "dall_price：まだ入っていません" if ja else "dall_price: not filled in yet"
    )
    redraws = [c for c in executed.cells if c.cell_type == "code" and ".figure(" in c.source]
    assert len(redraws) >= 5
    assert all(any("image/svg+xml" in o.get("data", {}) for o in c.outputs) for c in redraws)


# --- the report --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A real run of ``chainrule train`` on the shipped sample."""
    root = tmp_path_factory.mktemp("train")
    done = chainrule(
        "train",
        "--iters",
        "60",
        "--quiet",
        "--out",
        str(root / "runs" / "r"),
        cwd=root,
        env=offline_env(root),
    )
    assert done.returncode == 0, done.stderr
    return root / "runs"


@pytest.fixture(scope="module")
def page(run_folder, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "-o", str(out), "--runs", str(run_folder)]) == 0
    return (out / REPORT).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page_ja_appendix(run_folder, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("report-ja")
    assert main(["report", "--lang", "ja", "--appendix", "-o", str(out), "--runs", str(run_folder)]) == 0
    return (out / REPORT).read_text(encoding="utf-8")


def _nav(page: str) -> list[tuple[str, str]]:
    nav = re.search(r'<nav class="contents"[^>]*>(.*?)</nav>', page, flags=re.S).group(1)
    return re.findall(r'<li[^>]*><a href="#([^"]+)">(.*?)</a></li>', nav)


def test_the_report_navigation_is_the_chapter_in_order_with_book_references_and_stays(page):
    items = _nav(page)
    chapter = [(name, text) for name, text in items if name not in ("verify", "training")]
    assert [name for name, _ in chapter] == [name for name, _ in ORDER]
    for (name, text), (_, section) in zip(chapter, ORDER, strict=True):
        (book,) = re.findall(r'<span class="book">§([^<]*)</span>', text)
        assert book.split(",")[0] == section, name
        heading = re.search(rf'<section id="{name}">\s*<h2>(.*?)</h2>', page).group(1)
        assert f'<span class="book">§{book}</span>' in heading
    assert "not in the chapter" not in page and '<section id="tanh">' not in page
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)
    assert re.search(r"nav\.contents \{[^}]*position: sticky;[^}]*top: 0", style)
    assert page.index('<nav class="contents"') < page.index("<main>")


def test_the_appendix_comes_only_with_its_flag_and_is_marked(page_ja_appendix):
    items = _nav(page_ja_appendix)
    names = [name for name, _ in items]
    assert names[: len(ORDER)] == [name for name, _ in ORDER]
    appendix = [(name, text) for name, text in items[len(ORDER) :] if name not in ("verify", "training")]
    assert [name for name, _ in appendix][:2] == ["tanh", "leaky_relu"]
    for name, text in appendix:
        assert "（本章にはない）" in text and 'class="book"' not in text
        heading = re.search(rf'<section id="{name}">\s*<h2>(.*?)</h2>', page_ja_appendix).group(1)
        assert "（本章にはない）" in heading
    assert "not in the chapter" not in page_ja_appendix


def test_mathml_sets_a_sign_minus_and_bars_tight():
    negated = math("a = -x")
    ops = re.findall(r"<mo([^>]*)>&#x02212;</mo>", negated)
    assert ops == [' form="prefix" lspace="0" rspace="0"']
    assert re.findall(r"<mo([^>]*)>&#x02212;</mo>", math("y - t")) == [""]  # a subtraction stays binary
    assert re.findall(r"<mo([^>]*)>&#x02212;</mo>", math(r"e^{-x} - 1")) == [
        ' form="prefix" lspace="0" rspace="0"',
        "",
    ]
    bars = re.findall(r"<mo([^>]*)>\|</mo>", math("|x| = x"))
    assert bars == [
        ' fence="true" form="prefix" lspace="0" rspace="0"',
        ' fence="true" form="postfix" lspace="0" rspace="0"',
    ]


def test_the_report_has_no_spaced_sign_and_figures_at_body_size(page):
    # no minus right after "=" or an opening bracket is left a binary operator
    assert not re.search(r"<mo>(?:&#x0003D;|&#x00028;)</mo><mo>&#x02212;</mo>", page)
    assert '<mo form="prefix" lspace="0" rspace="0">&#x02212;</mo>' in page
    pictures = re.findall(r"<svg [^>]*>.*?</svg>", page, flags=re.S)
    assert pictures
    for picture in pictures:
        width = float(re.search(r'<svg [^>]*style="width: ([\d.]+)rem; height: auto">', picture).group(1))
        box = float(re.search(r'viewBox="0 0 ([\d.]+) ', picture).group(1))
        smallest = min(float(s) for s in re.findall(r'font-size="([\d.]+)"', picture))
        assert smallest * width / box >= 0.999  # the smallest label, in rem: at least the body text
    assert "figure svg { max-width: none; }" in page


def test_the_report_says_which_data_the_run_used_beside_the_book(page, page_ja_appendix):
    training = page[page.index('<section id="training">') :]
    book = re.search(r'<p class="book-run">(.*?)</p>', training).group(1)
    assert "0.9688" in book and "10,000 iterations on the full MNIST (60,000 training" in book
    setting = re.search(r'<p class="setting">(.*?)</p>', training).group(1)
    assert "the sample of MNIST shipped with chainrule (4,000 training and 1,000 test images)" in setting
    assert "not the full set" in setting
    assert "60 iterations, batch size 100, learning rate 0.1, hidden size 50" in setting
    ja = page_ja_appendix[page_ja_appendix.index('<section id="training">') :]
    assert "0.9688" in re.search(r'<p class="book-run">(.*?)</p>', ja).group(1)
    setting = re.search(r'<p class="setting">(.*?)</p>', ja).group(1)
    assert "同梱の MNIST のサンプル（訓練データ 4,000 枚、テストデータ 1,000 枚）" in setting
    assert "学習率 0.1" in setting


def test_the_japanese_report_tables_speak_japanese(page_ja_appendix):
    verify = page_ja_appendix[page_ja_appendix.index('<section id="verify">') :]
    verify = verify[: verify.index("</section>")]
    headers = re.findall(r"<th>([^<]*)</th>", verify)
    assert "勾配" in headers and "結果" in headers  # the hygiene checks' names are verify's, translated there
    cells = re.findall(r'<td class="(pass|FAIL)">([^<]*)</td>', verify)
    assert cells and {text for _, text in cells} == {"合格"}
    assert not re.search(r">(?:pass|FAIL|grad|result)<", verify)
