"""A Japanese artefact is Japanese: no English word is left outside code, math and proper names.

Each artefact is made as a reader gets it (the PDF compiled by lualatex and read back by pdftotext,
the Markdown, the report's page, the notebook run in a kernel, every ``--help``, verify's tables),
its code and math are set aside, and every word of three or more ASCII letters that is left must be
a proper name or a code identifier of the allow-list below. Every offender of every artefact is
reported at once, with the artefact and the text around it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chainrule.cli import main
from chainrule.codegen import i18n
from tests.helpers import chainrule, compile_tex, offline_env, run_notebook

# --- what counts as an English word ------------------------------------------------------------------

# A word, with what joins it to its neighbours into one name: apple_num, float64, one-hot,
# sympy.diff, layers.py. Its neighbours decide whether it is code (--lr, $CHAINRULE_LANG, runs/).
_TOKEN = re.compile(r"[A-Za-z0-9_]*[A-Za-z][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]*[A-Za-z][A-Za-z0-9_]*)*")

# Proper names and code identifiers a Japanese text keeps as they are, each for a reason.
# (A name in CamelCase or capitals, NumPy, SymPy, MNIST, ReLU, TwoLayerNet, is a name by its
# shape and needs no entry; nor does snake_case or a name with a digit, apple_num, float64.)
ALLOW = {
    # Layer names as the book writes them, in its text and on its figures (図5-19, 図5-29).
    "Sigmoid",
    "Affine",
    "Softmax",
    "Softmax-with-Loss",
    "Cross",
    "Entropy",
    "Error",
    # The shipped layers of the appendix, named as their classes and the literature do.
    "Tanh",
    "Softplus",
    # The code's name of the upstream gradient (dout = ∂L/∂y), and its mask in ReLU (5.5.1).
    "dout",
    "mask",
    # The book's title, ゼロから作るDeep Learning.
    "Deep",
    "Learning",
    # Python's literals, as a code cell prints them (dx == y(1 - y): True), and the book's class
    # name of the ReLU layer (class Relu, 5.5.1).
    "True",
    "False",
    "None",
    "Relu",
    # The operator of the one-hot rows in the formula (Y - onehot(t)) / N, which pdftotext reads
    # back as a word.
    "onehot",
    # The program itself, and the names of Python, Jupyter and the Markdown format.
    "chainrule",
    "Python",
    "Jupyter",
    "Markdown",
    # Functions as the book writes them in its formulas and on its nodes (exp on 図5-19, log on
    # 図5-29, relu on 図5-18, sigmoid on 図5-21).
    "exp",
    "log",
    "relu",
    "sigmoid",
    # ... and as the accuracy table writes its formulas on one line: x - max - log(sum exp(x - max)).
    "max",
    "min",
    "sum",
    # Infinity as a table prints a float (NaN is a name by its shape).
    "inf",
    # The book's own word: one-hot 表現 (4.2.1, 5.6.3), and its "dot" node of the matrix product (図5-25).
    "one-hot",
    "dot",
    # The unit of floating-point error ("units in the last place"), which has no Japanese name.
    "ulp",
    # The tools named in the text: mpmath (the accuracy reference), tqdm's name in no sentence.
    "mpmath",
}


def _is_code_shaped(token: str) -> bool:
    """A name by its shape: snake_case, with digits, a file or module name, CamelCase, an acronym."""
    if any(c.isdigit() or c in "_." for c in token):
        return True
    first, rest = token[0], token[1:]
    if token.isupper() and len(token) <= 5:  # MNIST, PNG, JPEG, GELU, NaN-like acronyms
        return True
    return any(c.isupper() for c in rest) and any(c.islower() for c in token) and first.isalpha()


def english_words(text: str, exempt: set[str] = frozenset(), math: str = "") -> list[str]:
    """The English words of ``text`` with a little context each.

    A word is exempt when it is code by its neighbours (an option --lr, a variable $NAME, a path
    runs/ or /tmp, a call forward(), a LaTeX command) or by its shape, in the allow-list or in
    ``exempt``, or when its letters stand in ``math`` (the letters of the source's formulas, which
    pdftotext runs together: e^{a_k} reads "eak").
    """
    found = []
    for m in _TOKEN.finditer(text):
        token = m.group(0).strip("-.")
        letters = re.sub(r"[^A-Za-z]", "", token)
        if not re.search(r"[A-Za-z]{3}", token) or token in ALLOW or token in exempt:
            continue
        before, after = text[max(m.start() - 1, 0) : m.start()], text[m.end() : m.end() + 1]
        if before in ("-", "$", "/", "\\", "~", "=", "%") or after in ("/", "(", "=", "~"):
            continue
        if before == "「" and after == "」":  # a name quoted as the book quotes its nodes: 「exp」ノード
            continue
        if _is_code_shaped(token) or (math and letters in math):
            continue
        found.append(f"{token!r} in …{text[max(m.start() - 30, 0) : m.end() + 30]!r}…")
    return found


# --- setting code and math aside -------------------------------------------------------------------

_MD_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_TEX_MATH = re.compile(
    r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)"
    r"|\\begin\{(equation|align|gather|multline|displaymath)(\*?)\}(.+?)\\end\{\5\6\}",
    re.S,
)
# Prose inside a formula: its words are checked, not exempt.
_TEX_TEXT = re.compile(r"\\(?:text|textrm|mbox|intertext)\{(?:[^{}]|\{[^{}]*\})*\}")
# Commands whose names are printed as they are: \exp, \log, \max ...
_OPERATORS = r"exp|log|ln|max|min|sin|cos|tan|tanh|sinh|cosh|lim|sup|inf|det|arg"


def markdown_prose(text: str) -> str:
    """Markdown without its code (fenced blocks, inline spans), math and the data of inline images."""
    text = re.sub(r'<img\b[^>]*\balt="([^"]*)"[^>]*>', r" \1 ", text)  # an image is its alt text
    text = re.sub(r"</?[A-Za-z][^<>]*>", " ", text)  # a tag, never a formula's x < 0 ... >
    text = _MD_CODE.sub(" ", text)
    return _TEX_MATH.sub(" ", text).replace("\\_", "_")  # Markdown's escaped underscore: leaky\_relu


def tex_math_letters(source: str) -> str:
    """The letters the formulas and the code of a LaTeX source show, one formula per line.

    ``\\text{...}`` inside a formula is prose and is left out; a command shows nothing, but an
    operator (\\exp) or an upright name (\\mathrm{mask}, \\operatorname{onehot}) shows its name.
    """
    source = re.sub(r"(?<!\\)%.*", "", source)
    shown = [m.group(1) for m in re.finditer(r"\\texttt\{((?:[^{}]|\{[^{}]*\})*)\}", source)]
    for m in _TEX_MATH.finditer(source):
        formula = next(g for g in (m.group(1), m.group(2), m.group(3), m.group(4), m.group(7)) if g)
        formula = _TEX_TEXT.sub(" ", formula)
        formula = re.sub(rf"\\({_OPERATORS})(?![A-Za-z])", r"\1", formula)
        formula = re.sub(r"\\[A-Za-z]+", "", formula)
        shown.append(formula)
    return "\n".join(re.sub(r"[^A-Za-z\n]", "", s.replace("\n", "")) for s in shown)


class _Text(HTMLParser):
    """The text a reader sees on a page, without math, code, scripts and machine-only metadata."""

    SKIP = {"math", "code", "pre", "script", "style", "desc", "kbd", "samp"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.depth += 1
        for name, value in attrs:
            if name in ("alt", "title", "aria-label") and value and not self.depth:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def html_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    return "\n".join(parser.parts)


def help_text(text: str, names: set[str]) -> str:
    """A ``--help`` without its usage block and its left column (options, metavars, subcommands)."""
    kept, usage = [], False
    for line in text.splitlines():
        if line.startswith("使い方") or line.startswith("usage"):
            usage = True
        if usage:
            usage = bool(line.strip())
            continue
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("-") or (indent <= 4 and stripped.split(" ")[0] in names):
            parts = re.split(r"\s{2,}", stripped, maxsplit=1)
            stripped = parts[1] if len(parts) == 2 else ""
        kept.append(stripped)
    return "\n".join(kept)


def _is_python(text: str) -> bool:
    """Whether an output is Python source a cell printed (inspect.getsource of a layer): code, not prose."""
    try:
        compile(textwrap.dedent(text), "<output>", "exec")
    except (SyntaxError, ValueError):
        return False
    return "def " in text or "class " in text


def _offenders(where: str, words: list[str]) -> list[str]:
    return [f"{where}: {w}" for w in words]


# --- the artefacts -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pdf(tmp_path_factory) -> tuple[str, str]:
    """The Japanese chapter as lualatex typesets it, read back by pdftotext; and its LaTeX source."""
    folder = tmp_path_factory.mktemp("ja-pdf")
    tex = folder / "chapter.tex"
    assert main(["derive", "--standalone", "--lang", "ja", "-o", str(tex)]) == 0
    compile_tex("lualatex", tex)
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(tex.with_suffix(".pdf")), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return text, tex.read_text(encoding="utf-8")


def _tiny_run(root: Path) -> Path:
    """A run folder as ``chainrule train`` leaves it (a real plot and metrics), as tests/commands/test_report.py makes one."""
    from chainrule.runs.outputs import Record, accuracy_png, metrics_csv

    record = Record(losses=[2.3, 1.2, 0.6, 0.5])
    record.epochs += [(0, 0, 2.3, 0.11, 0.1), (1, 600, 0.5, 0.9, 0.89)]
    run = root / "20260102-000000"
    run.mkdir(parents=True)
    (run / "accuracy.png").write_bytes(accuracy_png(record))
    (run / "metrics.csv").write_text(metrics_csv(record))
    return root


def _subcommands() -> list[str]:
    from chainrule.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return list(sub.choices)


@pytest.mark.slow
def test_no_english_word_is_left_in_a_japanese_artefact(pdf, tmp_path):
    """Every Japanese artefact, checked together: the list names each word, where, and its context."""
    from chainrule import symbolic
    from chainrule.codegen.figures import FIGURES

    offenders: list[str] = []

    # The PDF: what pdftotext reads, less the letters the source sets as formulas or code.
    text, source = pdf
    offenders += _offenders("PDF", english_words(text, math=tex_math_letters(source)))

    # The Markdown document.
    md = tmp_path / "chapter.md"
    assert main(["derive", "--standalone", "--format", "markdown", "--lang", "ja", "-o", str(md)]) == 0
    offenders += _offenders("Markdown", english_words(markdown_prose(md.read_text(encoding="utf-8"))))

    # The report's page, with a run to show.
    runs = _tiny_run(tmp_path / "runs")
    assert main(["report", "--lang", "ja", "-o", str(tmp_path / "report"), "--runs", str(runs)]) == 0
    (page,) = (tmp_path / "report").glob("*.html")
    offenders += _offenders("report", english_words(html_text(page.read_text(encoding="utf-8"))))

    # The live figures' page: its inputs, buttons, notes and figure titles.
    explore = tmp_path / "explore.html"
    assert main(["explore", "--lang", "ja", "-o", str(explore)]) == 0
    offenders += _offenders("explore", english_words(html_text(explore.read_text(encoding="utf-8"))))

    # Every --help, and verify's tables; the names the command line takes are code there.
    names = {*_subcommands(), *symbolic.NAMES, *FIGURES, "names", "paths", "folder", "images", "run"}
    for command in ["", *_subcommands()]:
        done = chainrule(
            "--lang", "ja", *([command] if command else []), "--help", cwd=tmp_path, env=offline_env(tmp_path)
        )
        assert done.returncode == 0, done.stderr
        where = f"chainrule {command} --help".replace("  ", " ")
        offenders += _offenders(where, english_words(help_text(done.stdout, names), exempt=names))
    done = chainrule("--lang", "ja", "verify", cwd=tmp_path, env=offline_env(tmp_path))
    assert done.returncode == 0, done.stderr
    offenders += _offenders("verify", english_words(done.stdout + done.stderr))
    # evaluate's confusion matrix, of a short run on the shipped sample.
    assert (
        chainrule(
            "train",
            "--iters",
            "5",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
            cwd=tmp_path,
            env=offline_env(tmp_path),
        ).returncode
        == 0
    )
    done = chainrule(
        "--lang", "ja", "evaluate", str(tmp_path / "run"), cwd=tmp_path, env=offline_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    offenders += _offenders("evaluate", english_words(done.stdout + done.stderr))
    # The accuracy table names the generated kernels by their functions: softmax is code there.
    from chainrule.generated import layers

    kernels = {name for name in dir(layers) if callable(getattr(layers, name))}
    done = chainrule(
        "--lang", "ja", "verify", "--accuracy", "--points", "20", cwd=tmp_path, env=offline_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    offenders += _offenders("verify --accuracy", english_words(done.stdout + done.stderr, exempt=kernels))

    assert offenders == [], f"{len(offenders)} English words in Japanese artefacts:\n" + "\n".join(offenders)


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory):
    """``chainrule notebook --lang ja``, run top to bottom in a kernel of this interpreter, offline.

    The kernel's environment is the tests' (English): a notebook asked for in Japanese speaks
    Japanese whatever the reader's locale.
    """
    import nbformat

    root = tmp_path_factory.mktemp("ja-notebook")
    path = root / "chapter5.ipynb"
    assert main(["notebook", "--lang", "ja", "-o", str(path)]) == 0
    return run_notebook(nbformat.read(path, as_version=4), root)


@pytest.mark.slow
def test_no_english_word_is_left_in_the_japanese_notebook(executed_notebook):
    """Its Markdown cells and every output a reader sees once it has run (code cells are code).

    The exercise's answers are named by the keys the reader typed in (dtax, ...): code, not words;
    and the shopping scripts print what the book's buy_apple.py prints (5.4.1, 実行結果: price: 220).
    """
    from chainrule.commands.notebook import exercise_blanks

    keys = set(exercise_blanks()) | {"price"}
    offenders: list[str] = []
    for number, cell in enumerate(executed_notebook.cells, 1):
        if cell.cell_type == "markdown":
            offenders += _offenders(f"notebook cell {number}", english_words(markdown_prose(cell.source)))
            continue
        for output in cell.get("outputs", []):
            texts = []
            if output.output_type == "stream" and not _is_python(output.text):
                texts.append(output.text)
            data = output.get("data", {})
            if "text/html" in data:
                texts.append(html_text(data["text/html"]))
            elif "text/markdown" in data:
                texts.append(markdown_prose(data["text/markdown"]))
            elif "text/plain" in data and "image/svg+xml" not in data and "image/png" not in data:
                texts.append(data["text/plain"])
            if output.output_type == "error":
                texts.append(f"{output.ename}: {output.evalue}")
            for text in texts:
                offenders += _offenders(f"notebook cell {number} output", english_words(text, exempt=keys))
    assert offenders == [], f"{len(offenders)} English words in the Japanese notebook:\n" + "\n".join(
        offenders
    )


# --- the rule itself ------------------------------------------------------------------------------------


def test_the_rule_finds_english_words_and_spares_code_math_and_names():
    assert [w.split()[0] for w in english_words("1 for x > 0; 0 otherwise, 本書 5.6.3, appendix A 節")] == [
        "'for'",
        "'otherwise'",
        "'appendix'",
    ]
    spared = (
        "Softmax-with-Loss の dout、SymPy と NumPy、MNIST、TwoLayerNet、apple_num、float64、"
        "layers.py、--lr、$CHAINRULE_LANG、runs/、forward()、one-hot 表現、ReLU の mask"
    )
    assert english_words(spared) == []
    assert (
        english_words(
            markdown_prose("`sympy.diff` で微分します。$\\frac{\\partial L}{\\partial x}$、$$\\exp(x)$$")
        )
        == []
    )
    source = r"$e^{a_k}$ と \[\begin{cases} x & \text{for}\: x > 0 \end{cases}\] と $\max_j x_j$"
    assert [w.split()[0] for w in english_words("eak と for と max", math=tex_math_letters(source))] == [
        "'for'"
    ]
    page = "<p>値<math><mi>sin</mi></math><code>relu_layer</code>だけ<svg><desc>Generated by</desc></svg></p>"
    assert english_words(html_text(page)) == []
    assert english_words(html_text("<p>true\\pred</p>")) != []
    shown = "使い方: chainrule train [-h]\n\nオプション:\n  --lr LR    学習率（既定 0.1）\n  derive    導出を表示します"
    assert english_words(help_text(shown, {"derive"})) == []


def test_the_language_of_the_check_is_japanese():
    """The artefacts above are checked in Japanese: the catalog is installed and read."""
    with i18n.language("ja"):
        assert i18n.gettext("Forward") == "順伝播"
    assert sys.executable
    assert json.dumps(sorted(ALLOW))  # the allow-list is plain names


# --- what the rule found, fixed where it is printed -------------------------------------------------------


def test_cases_are_written_as_the_book_writes_relu_with_every_condition():
    """図5-18's equation (5.7): each value with its condition in parentheses, the last one's too."""
    import sympy as sp

    from chainrule.codegen.latex import latex
    from chainrule.codegen.text import text

    x = sp.Symbol("x", real=True)
    relu = sp.Piecewise((1, x > 0), (0, True))
    assert latex(relu) == r"\begin{cases} 1 & (x > 0) \\ 0 & (x \leq 0) \end{cases}"
    assert text(relu) == "{1 (x > 0); 0 (x ≤ 0)}"
    clipped = sp.Piecewise((1, x > 1), (-1, x < -1), (x, True))
    assert latex(clipped).endswith(r"x & (-1 \leq x \leq 1) \end{cases}")
    for lang in ("en", "ja"):
        with i18n.language(lang):
            from chainrule.codegen.document import document
            from chainrule.symbolic import derive

            shown = document([derive("relu")], "latex", standalone=False)
        assert r"\begin{cases}" in shown and "otherwise" not in shown and r"\text{for}" not in shown


def test_verify_in_japanese_keeps_its_columns_under_japanese_headings():
    import unicodedata

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    done = chainrule("--lang", "ja", "verify", cwd=Path.cwd(), env=offline_env(Path.cwd()))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = lines[1]
    assert head.split() == ["レイヤ", "勾配", "生成~SymPy", "生成~数値", "SymPy~数値", "結果"]
    rows = [line for line in lines[2:] if line.strip()][:3]
    for row in rows:  # each number ends where its heading ends, as in English
        for heading in ("生成~SymPy", "生成~数値", "SymPy~数値"):
            end = width(head[: head.index(heading) + len(heading)])
            assert row[end - 1] != " " and row[end] == " ", (row, heading)
        assert row.endswith("合格")
    hygiene = lines[lines.index("") + 1]
    assert hygiene.split() == [
        "健全性",
        "dout",
        "不変",
        "入力不変",
        "dout",
        "に線形",
        "再現可能",
        "0",
        "入力で",
        "0",
        "出力",
        "端でも有限",
        "学習ステップも一致",
    ]
    assert any(line.startswith("SoftmaxWithLoss（整数ラベル）") for line in lines)
    assert lines[-1] == "すべての確認に合格"


def test_the_books_sections_are_cited_as_the_book_does():
    from chainrule import symbolic
    from chainrule.codegen.document import reference
    from chainrule.codegen.i18n import book_sections

    assert book_sections("5.6.3, appendix A") == "5.6.3, appendix A"
    with i18n.language("ja"):
        assert book_sections("5.6.3, appendix A") == "5.6.3 節・付録A"
        assert book_sections("5.3.3, 5.4.1") == "5.3.3 節・5.4.1 節"
        assert reference(symbolic.derive("sigmoid")) == "本書 5.5.2 節"
        assert reference(symbolic.derive("softmax_with_loss")) == "本書 5.6.3 節・付録A"


def test_the_shopping_variables_read_as_the_books_words_in_the_math_too():
    """The figures say りんご and 消費税: so do the displays, the reasons and the products between them."""
    from chainrule import symbolic
    from chainrule.codegen.document import document

    with i18n.language("ja"):
        tex = document([symbolic.derive("apples")])
    assert (
        r"\frac{\partial \text{支払金額}}{\partial \text{りんご}} = \text{りんごの個数} \cdot \text{消費税}"
        in tex
    )
    assert "apple" not in tex and r"\mathrm{price}" not in tex
    # English keeps the code's names.
    assert r"= \mathrm{apple\_num} \cdot \mathrm{tax}" in document([symbolic.derive("apples")])
