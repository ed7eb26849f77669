"""The HTML report in Japanese: lang="ja", the book's terms in its headings, Japanese fonts the machine has, offline."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from chainrule.cli import main
from chainrule.codegen.i18n import JAPANESE_FONTS
from chainrule.commands.report import REPORT
from tests.commands.test_report import _chromium, _fake_run, needs_chromium


@pytest.fixture(scope="module")
def japanese(tmp_path_factory) -> tuple[object, str]:
    root = tmp_path_factory.mktemp("runs")
    _fake_run(root, "20260102-000000", 0.89, mtime=1_800_000_000)
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--lang", "ja", "-o", str(out), "--runs", str(root)]) == 0
    return out / REPORT, (out / REPORT).read_text(encoding="utf-8")


def test_the_japanese_report_speaks_the_books_terms(japanese):
    _, page = japanese
    assert '<html lang="ja">' in page
    assert "<title>誤差逆伝播法の導出</title>" in page
    assert '<h2><span class="book">5.3.1 節</span>加算ノード</h2>' in page
    assert '<h2><span class="book">5.2 節</span>連鎖律</h2>' in page
    assert "<h3>順伝播</h3>" in page and "<h3>逆伝播</h3>" in page and "<h3>局所的な微分</h3>" in page
    assert "<h2>生成したレイヤの確認</h2>" in page and "<h2>MNIST での学習</h2>" in page
    assert (
        "最後のエポック 1（イテレーション 600）：損失 0.5000、訓練データの認識精度 0.9000、テストデータの認識精度 0.8900"
        in page
    )
    assert "<title>図5-15 りんごとみかんの買い物の逆伝播の例</title>" in page  # a figure's caption
    for english in ("<h3>Forward</h3>", "Training on MNIST", "Worked values", "local derivative of"):
        assert english not in page
    # The fonts are the machine's: a Japanese system font stack, no web font.
    assert JAPANESE_FONTS.replace("'", '"') in page
    assert "@font-face" not in page and "url(http" not in page


def test_the_english_report_keeps_its_language(tmp_path):
    (tmp_path / "runs").mkdir()
    assert main(["report", "-o", str(tmp_path), "--runs", str(tmp_path / "runs")]) == 0
    page = (tmp_path / REPORT).read_text(encoding="utf-8")
    assert '<html lang="en">' in page and "<h3>Forward</h3>" in page and "Hiragino" not in page


@pytest.mark.slow
@needs_chromium
def test_chromium_renders_the_japanese_report_offline_with_japanese_headings(japanese, tmp_path):
    report, page = japanese
    dom, requested = _chromium(report, tmp_path)
    assert requested == []
    assert re.search(r'<html lang="ja"', dom)
    headings = re.findall(r'<h2>(?:<span class="book">[^<]*</span>)?([^<]*)</h2>', dom)
    assert headings[1:4] == ["連鎖律", "加算ノード", "乗算ノード"]
    assert headings[-2:] == ["生成したレイヤの確認", "MNIST での学習"]
    assert dom.count("<svg ") == page.count("<svg ")


@pytest.mark.skipif(shutil.which("fc-list") is None, reason="fontconfig is not installed")
def test_this_machine_has_a_font_of_the_stack_for_japanese():
    """What Chromium falls back to for a Japanese glyph is one the stack names (CI installs IPA Gothic)."""
    families = subprocess.run(["fc-list", ":lang=ja", "family"], capture_output=True, text=True).stdout
    named = {name.strip(" '\"") for name in JAPANESE_FONTS.split(",")}
    assert any(name in families for name in named), families


def test_the_japanese_notebook_tells_the_chapter_in_japanese(tmp_path):
    import nbformat

    target = tmp_path / "chapter5.ipynb"
    assert main(["notebook", "--lang", "ja", "-o", str(target)]) == 0
    cells = [c.source for c in nbformat.read(target, as_version=4).cells if c.cell_type == "markdown"]
    assert cells[0].startswith("# 第5章 誤差逆伝播法\n")
    assert "# 5.1 計算グラフ\n\n計算グラフは、計算の過程をノード（演算）と矢印" in "\n".join(cells)
    assert "短い学習（500 回）：" in cells
    assert "## 5.3.1 加算ノード" in cells  # a derivation under its book section, in Japanese too
    assert not any("Computational graphs" in c or "local derivative of" in c for c in cells)
