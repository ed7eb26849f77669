"""``chainrule explore``: the chapter's graphs as one offline page of live figures."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chainrule.codegen.layout import FIGURES
from chainrule.codegen.live import js_function, live_figure
from tests.helpers import chainrule


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def _numbers(page: str, figure: str, kind: str) -> dict[tuple[str, str], str]:
    """The numbers a figure's arrows carry as first drawn, by (src, dst): kind is forward or backward."""
    start = page.index(f'id="live-{figure}"')
    part = page[start : page.index("</figure>", start)]
    found = re.findall(
        rf'<text class="{kind}" data-src="([^"]*)" data-dst="([^"]*)"[^>]*>([^<]*)</text>', part
    )
    return {(src, dst): value for src, dst, value in found}


def test_explore_apples_writes_one_live_figure_with_the_books_numbers(tmp_path):
    out = tmp_path / "a.html"
    done = chainrule("explore", "apples", "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr.strip() == f"wrote {out}"
    page = out.read_text(encoding="utf-8")
    assert page.count('<div class="live" ') == 1
    forward, backward = _numbers(page, "apples", "forward"), _numbers(page, "apples", "backward")
    # 図5-14: 100 yen, 2 apples, tax 1.1 -> 220; back: 1.1, 2.2, 110, 200.
    assert forward == {
        ("apple", "apple_price"): "100",
        ("apple_num", "apple_price"): "2",
        ("apple_price", "price"): "200",
        ("tax", "price"): "1.1",
        ("price", ""): "220",
    }
    assert backward == {
        ("apple", "apple_price"): "2.2",
        ("apple_num", "apple_price"): "110",
        ("apple_price", "price"): "1.1",
        ("tax", "price"): "200",
        ("price", ""): "1",
    }
    assert '<a class="live-link" href="#apples?apple=100&amp;apple_num=2&amp;tax=1.1">' in page
    # The printed program is in the page as SymPy's JavaScript printer wrote it.
    assert "const price = apple_price*tax;" in page
    assert js_function(live_figure("apples").program).splitlines()[3] in page


def test_explore_without_a_name_writes_every_figure_in_the_chapters_order(tmp_path):
    out = tmp_path / "all.html"
    assert chainrule("explore", "-o", out).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert re.findall(r'<div class="live" id="live-(\w+)"', page) == list(FIGURES)
    assert page.count("<svg ") == len(FIGURES)


def test_explore_a_derivation_writes_its_figures(tmp_path):
    out = tmp_path / "shopping.html"
    assert chainrule("explore", "computational_graph", "-o", out).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert re.findall(r'<div class="live" id="live-(\w+)"', page) == [
        "shopping_forward",
        "shopping_variables",
        "shopping_two",
        "local_computation",
        "apple_derivative",
    ]


def test_explore_prints_the_page_without_o(tmp_path):
    done = chainrule("explore", "relu", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("<!DOCTYPE html>") and 'data-live="relu"' in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_page_loads_nothing(tmp_path):
    out = tmp_path / "all.html"
    assert chainrule("explore", "-o", out).returncode == 0
    page = out.read_text(encoding="utf-8")
    tags = _tags(page)
    assert {t for t, _ in tags} & {"link", "iframe", "object", "embed", "base", "img"} == set()
    assert [a for t, a in tags if t == "script"] == [{}]
    assert all(not k == "src" for _, attrs in tags for k in attrs)
    assert all(v.startswith("#") for _, attrs in tags for k, v in attrs.items() if k == "href")
    assert "default-src 'none'" in page
    (script,) = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    for call in ("fetch(", "XMLHttpRequest", "import(", "WebSocket", "http:", "https:", "sendBeacon"):
        assert call not in script, call


@pytest.mark.parametrize("name", ["nope", "tanh", "apples;alert(1)"])
def test_an_unknown_name_is_one_line_and_writes_nothing(tmp_path, name):
    out = tmp_path / "x.html"
    done = chainrule("explore", name, "-o", out)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        f"chainrule: error: unknown figure {name!r}; valid names: shopping_forward,"
    )
    assert not out.exists()


def test_a_folder_that_is_not_there_is_one_line(tmp_path):
    done = chainrule("explore", "apples", "-o", tmp_path / "missing" / "a.html")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "missing" in done.stderr and "Traceback" not in done.stderr


def test_a_file_of_the_users_is_not_replaced(tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("my notes\n")
    done = chainrule("explore", "apples", "-o", mine)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert mine.read_text() == "my notes\n"


def test_explore_in_japanese(tmp_path):
    out = tmp_path / "ja.html"
    assert chainrule("explore", "apples", "--lang", "ja", "-o", out).returncode == 0
    page = out.read_text(encoding="utf-8")
    assert '<html lang="ja">' in page
    assert '<span class="live-name">りんご</span>' in page and '<span class="live-name">消費税</span>' in page
    assert "図5-14" in page and "最初の値に戻す" in page
    assert "はこの図の入力ではありません" in page  # the script's messages, in the reader's language


SPEC = """\
[[layer]]
name = "Swish"
forward = "x * sigmoid(x)"

[[layer]]
name = "Bend"
forward = "x if x < 1 else 2 - 1/x"

[[layer]]
name = "Sq"
forward = "(y - t)**2"
kind = "loss"
"""


def test_a_spec_layer_is_explored_as_the_chapters_are(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(SPEC)
    out = tmp_path / "swish.html"
    done = chainrule("explore", "--spec", spec, "swish", "-o", out)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert re.findall(r'<div class="live" id="live-(\w+)"', page) == ["swish"]
    # x = 1, dout = 1: y = sigmoid(1) = 0.73106; dy/dx = s + x s (1 - s) = 0.92767.
    forward, backward = _numbers(page, "swish", "forward"), _numbers(page, "swish", "backward")
    assert forward[("out", "")] == "0.73106"
    assert backward[("x", "a")] == "0.19661" and backward[("x", "out")] == "0.73106"
    assert "const a = 1/(1 + Math.exp(-x));" in page  # the spec's sigmoid, printed by its definition
    every = tmp_path / "all.html"
    assert chainrule("explore", "--spec", spec, "-o", every).returncode == 0
    assert re.findall(r'<div class="live" id="live-(\w+)"', every.read_text(encoding="utf-8")) == [
        "swish",
        "bend",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sq"], "chainrule: error: sq is a loss; only an activation's graph is drawn"),
        (["nope"], "has no layer 'nope'; its layers: swish, bend, sq"),
    ],
)
def test_a_spec_layer_that_cannot_be_explored_is_one_line(tmp_path, args, message):
    spec = tmp_path / "mine.toml"
    spec.write_text(SPEC)
    done = chainrule("explore", "--spec", spec, *args, "-o", tmp_path / "x.html")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert not (tmp_path / "x.html").exists()


def test_the_spec_file_is_never_written_over(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(SPEC)
    done = chainrule("explore", "--spec", spec, "swish", "-o", spec)
    assert done.returncode == 2 and "it is the spec file being read" in done.stderr
    assert spec.read_text() == SPEC


def test_the_readmes_own_layer_is_explored(tmp_path):
    """README's my_layers.toml (Swish with beta = 1.5) as the reader copies it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("# my_layers.toml\n") :]
    spec = tmp_path / "my_layers.toml"
    spec.write_text(block[: block.index("```")])
    out = tmp_path / "swish.html"
    done = chainrule("explore", "--spec", spec, "swish", "-o", out)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert ">×1.5</text>" in page
    # x = 1 feeds two nodes: its gradient, the sum of both arrows, is written under the inputs.
    assert re.search(r'<p class="live-total">∂L/∂x, [^<]*<span data-total="dx">1.0413</span></p>', page)
