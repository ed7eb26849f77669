"""``chainrule report``: one self-contained HTML page that renders with no network."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import chainrule.commands.report as report_module
from chainrule import symbolic
from chainrule.checks import gradients as verify
from chainrule.cli import main
from chainrule.codegen.html import figure_names, math
from chainrule.commands.report import (
    GENERATOR_TAG,
    NO_RUN,
    REPORT,
    build_report,
    drawn_still,
    latest_run,
    write_report,
)
from chainrule.runs.outputs import Record, accuracy_png, metrics_csv
from chainrule.symbolic.shipped import SHIPPED
from tests.helpers import CHAPTER, chainrule, offline_env

MATHML_NS = 'xmlns="http://www.w3.org/1998/Math/MathML"'
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}
# What the report shows without --appendix: the chapter's derivations.
SHOWN = tuple(n for n in symbolic.NAMES if n not in {spec.key for spec in SHIPPED})


def _record(final_test_acc: float) -> Record:
    record = Record(losses=[2.3, 1.2, 0.6, 0.5])
    record.epochs += [(0, 0, 2.3, 0.11, 0.1), (1, 600, 0.5, 0.9, final_test_acc)]
    return record


def _fake_run(root: Path, name: str, final_test_acc: float, mtime: int) -> bytes:
    """A run folder as ``chainrule train`` leaves it: a real PNG plot and metrics.csv."""
    run = root / name
    run.mkdir(parents=True)
    png = accuracy_png(_record(final_test_acc))
    (run / "accuracy.png").write_bytes(png)
    (run / "metrics.csv").write_text(metrics_csv(_record(final_test_acc)))
    os.utime(run / "accuracy.png", (mtime, mtime))
    return png


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, bytes]:
    """Two runs; the newer one's plot is the one to embed."""
    root = tmp_path_factory.mktemp("runs")
    newest = _fake_run(root, "20260102-000000", 0.89, mtime=1_800_000_000)
    _fake_run(root, "20260101-000000", 0.5, mtime=1_700_000_000)
    return root, newest


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    """The report written through the command line, with a training run to show."""
    out = tmp_path_factory.mktemp("report") / "new" / "dir"
    assert main(["report", "-o", str(out), "--runs", str(runs[0])]) == 0
    return out / REPORT


@pytest.fixture(scope="module")
def page(report) -> str:
    return report.read_text(encoding="utf-8")


class _Tree(HTMLParser):
    """Checks that every element is closed in order; collects tags and their attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


def _parse(text: str) -> _Tree:
    tree = _Tree()
    tree.feed(text)
    tree.close()
    return tree


def _section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start : page.index("</section>", start)]


def test_report_is_well_formed_html(page):
    tree = _parse(page)
    assert tree.stack == []
    assert page.startswith("<!DOCTYPE html>\n")
    assert [t for t, _ in tree.tags].count("math") == page.count("<math ")


def test_every_derivation_has_its_title_boxed_results_and_figures(page):
    # The chapter's derivations each have their graph, the sigmoid also as one node and
    # Softmax-with-Loss also simplified (Fig. 5-30); later ones may not. Each figure is live
    # (inputs above it); a figure of formulas is also drawn as the book has it, before.
    expected_figures = {name: len(figure_names(name)) + len(drawn_still(name)) for name in SHOWN}
    assert drawn_still("apples") == () and drawn_still("sigmoid") == ("sigmoid", "sigmoid_simple")
    assert expected_figures["sigmoid"] == expected_figures["softmax_with_loss"] == 4
    assert all(expected_figures[name] for name in CHAPTER)
    for name in SHOWN:
        d = symbolic.derive(name)
        part = _section(page, name)
        assert re.search(rf'<h2><span class="book">§[^<]+</span>{re.escape(html.escape(d.title))}</h2>', part)
        results = re.findall(r'<div class="result">(<math .*?</math>)</div>', part)
        assert len(results) == len(d.backward)
        assert d.backward or name == "computational_graph"  # 5.1 is forward only: no result to box
        for r in results:
            assert r.startswith(f'<math {MATHML_NS} display="block">')
            assert '<menclose notation="box">' in r and "<mfrac>" in r
        assert part.count("<svg ") == expected_figures[name]
    drawn = {f for name in SHOWN for f in figure_names(name)}
    still = {f for name in SHOWN for f in drawn_still(name)}
    assert page.count("<svg ") == sum(expected_figures.values()) == len(drawn) + len(still)
    assert page.count('<div class="live" ') == len(drawn)
    titles = re.findall(r"<svg .*?<title>(.*?)</title>", page, flags=re.S)
    assert len(set(titles)) == len(drawn)


def test_all_latex_became_mathml(page):
    outside_script = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert re.findall(r"\\[A-Za-z]+", outside_script) == []
    assert "<merror" not in page
    # \mathrm{d} keeps its d upright: latex2mathml would make it an italic <mi>.
    assert "<mtext>d</mtext><mi>L</mi>" in math(r"\mathrm{d}L")
    for tag in ("mfrac", "msub", "msup", "mtable", "menclose"):
        assert f"<{tag}" in page


def test_nothing_refers_to_the_network(page):
    tree = _parse(page)
    assert {t for t, _ in tree.tags} & {"link", "iframe", "object", "embed", "base"} == set()
    # One script, the live figures', inline; the page's policy lets nothing be fetched.
    assert [a for t, a in tree.tags if t == "script"] == [{}]
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">" in page
    )
    namespaces = re.findall(r'<(\w+) xmlns="([^"]*)"', page)
    assert set(namespaces) == {
        ("math", "http://www.w3.org/1998/Math/MathML"),
        ("svg", "http://www.w3.org/2000/svg"),
    }
    assert len(namespaces) == page.count("<math ") + page.count("<svg ")
    rest = page.replace(MATHML_NS, "").replace(SVG_NS, "")
    (script,) = re.findall(r"<script>(.*?)</script>", rest, flags=re.S)
    for call in (
        "fetch(",
        "XMLHttpRequest",
        "import(",
        "WebSocket",
        "EventSource",
        "sendBeacon",
        ".src =",
        "new Image",
    ):
        assert call not in script, call
    rest = rest.replace(script, "")  # its comments begin with //
    assert "http://" not in rest and "https://" not in rest and "//" not in re.sub(r"data:[^\"]*", "", rest)
    for _, attrs in tree.tags:
        assert all(v.startswith("data:image/png;base64,") for k, v in attrs.items() if k == "src")
        assert all(v.startswith("#") for k, v in attrs.items() if k == "href")
    assert "@import" not in page and "url(" not in re.sub(r"url\(#[\w-]+\)", "", page)


def test_svg_ids_are_unique_and_their_references_resolve(page):
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r"url\(#([\w-]+)\)", page)) <= set(ids)
    assert "<?xml" not in page


def test_the_verify_tables_all_pass(page):
    # The chapter's layers only: the others are checked on the page with --appendix.
    grads, hygiene = verify.results(cat=report_module.checked_catalog(appendix=False))
    assert {g.case for g in grads} & {"Tanh", "GELU", "MSE"} == set()
    part = _section(page, "verify")
    rows = re.findall(
        r"<tr><td>([^<]*)</td><td>(d\w+)</td>(?:<td>[0-9.e+-]+</td>){3}<td class=\"(\w+)\">(\w+)</td></tr>",
        part,
    )
    assert [(html.unescape(case), grad) for case, grad, _, _ in rows] == [(g.case, g.grad) for g in grads]
    assert {"MulLayer", "AddLayer", "Relu", "Sigmoid", "Affine"} <= {case for case, _, _, _ in rows}
    assert {(cls, verdict) for _, _, cls, verdict in rows} == {("pass", "pass")}
    hygiene_part = part[part.index("<h3>Hygiene</h3>") :]
    names = [
        "dout unchanged",
        "input unchanged",
        "linear in dout",
        "repeatable",
        "zero in, zero out",
        "finite at the edges",
        "training step agrees",
    ]
    assert re.findall(r"<th>([^<]*)</th>", hygiene_part) == ["layer", *names]
    cases = re.findall(r"<tr><td>([^<]*)</td>", hygiene_part)
    assert [html.unescape(c) for c in cases] == list(dict.fromkeys(h.case for h in hygiene))
    cells = re.findall(r'<td class="(\w+)">([^<]+)</td>', hygiene_part)
    # Only an activation has a training step; the other layers' cell says the check does not apply.
    assert {c for c in cells if c[0] != "none"} == {("pass", "pass")} and len(cells) == len(cases) * len(
        names
    )
    assert sum(c[0] == "pass" for c in cells) == len(hygiene)
    assert ("none", "–") in cells
    assert "<p><strong>all checks pass</strong></p>" in part


def test_the_newest_run_is_embedded_with_its_last_epoch(page, runs):
    root, newest = runs
    part = _section(page, "training")
    src = re.findall(r'<img class="plot" alt="[^"]*" src="([^"]*)">', part)
    assert src == ["data:image/png;base64," + base64.b64encode(newest).decode("ascii")]
    assert base64.b64decode(src[0].split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert html.escape(str(root / "20260102-000000")) in part
    summary = "final epoch 1 (iteration 600): loss 0.5000, train accuracy 0.9000, test accuracy 0.8900"
    assert summary in part
    assert NO_RUN not in page


def test_without_a_run_the_report_says_so(tmp_path):
    text = build_report(tmp_path / "no-such-runs")
    part = _section(text, "training")
    assert f"<p>{NO_RUN}</p>" in part
    assert "<img" not in text and "data:image" not in text
    assert build_report(tmp_path / "no-such-runs") == text  # deterministic


def test_latest_run_reads_metrics_carefully(tmp_path):
    run = tmp_path / "a"
    run.mkdir()
    (run / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    found = latest_run(tmp_path)
    assert found is not None and found.summary == f"no metrics: cannot read {run / 'metrics.csv'}"
    (run / "metrics.csv").write_text("epoch,iteration,loss,train_acc,test_acc\n")
    assert latest_run(tmp_path).summary == "no epoch finished (metrics.csv has no rows)"
    assert latest_run(tmp_path / "a") is None  # runs_dir/*/accuracy.png only


@pytest.mark.parametrize(
    "row",
    [
        "1,100,nan,5.0,-3",  # accuracies outside [0, 1]
        "1,100,0.5,0.9,0.8,7",  # a sixth column
        "1,100,-0.5,0.9,0.8",  # a negative loss
        "1,100,inf,0.9,0.8",
        "-1,100,0.5,0.9,0.8",
        "1,100,0.5,0.9",  # a column short
    ],
)
def test_a_metrics_line_out_of_range_is_not_reported_as_numbers(tmp_path, row):
    run = tmp_path / "a"
    run.mkdir()
    (run / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (run / "metrics.csv").write_text(f"epoch,iteration,loss,train_acc,test_acc\n{row}\n")
    assert latest_run(tmp_path).summary == (
        f"metrics.csv's last line is not epoch,iteration,loss,train_acc,test_acc: {run / 'metrics.csv'}"
    )
    (run / "metrics.csv").write_text("epoch,iteration,loss,train_acc,test_acc\n1,100,nan,0.5,0.25\n")
    assert latest_run(tmp_path).summary == (
        "final epoch 1 (iteration 100): loss nan, train accuracy 0.5000, test accuracy 0.2500"
    )


def test_the_report_gives_the_saved_weights_scores_beside_the_last_epoch(tmp_path):
    runs = tmp_path / "runs"
    done = chainrule(
        "train",
        "--iters",
        "107",
        "--quiet",
        "--out",
        str(runs / "r"),
        cwd=tmp_path,
        env=offline_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    final = json.loads((runs / "r" / "run.json").read_text())["final"]
    summary = latest_run(runs).summary
    epoch, saved = summary.split("; ")
    assert epoch.startswith("final epoch ") and "iteration 107" not in epoch  # the last whole epoch's
    assert saved == (
        f"the saved weights, after 107 iterations: train accuracy {final['train_acc']:.4f},"
        f" test accuracy {final['test_acc']:.4f}"
    )


def test_an_unwritable_output_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    assert main(["report", "-o", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err == f"chainrule: error: cannot write to {blocker}: it exists and is not a folder\n"
    assert blocker.read_text() == "keep"
    assert main(["report", "-o", str(blocker / "below")]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: cannot write {blocker / 'below' / REPORT}: Not a directory\n"
    )


def test_output_is_required(capsys):
    assert main(["report"]) == 2
    assert "-o/--output" in capsys.readouterr().err


def test_write_report_makes_the_folder(tmp_path, runs, page):
    path = write_report(tmp_path / "x" / "y", runs[0])
    assert path == tmp_path / "x" / "y" / REPORT and path.read_text(encoding="utf-8") == page
    assert [p.name for p in path.parent.iterdir()] == [REPORT]  # no temporary file left


# Headless Chromium, as a reader's browser: it must typeset the page without fetching anything.
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def _chromium(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium: its DOM after loading, and the URLs requested for it."""
    net_log = tmp / "net.json"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Chromium still asks for updates, the time and sign-in by itself; every host name
        # fails here, so those requests never leave the machine (nor would the page's).
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp / 'profile'}",
        f"--log-net-log={net_log}",
        "--net-log-capture-mode=Default",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, _page_requests(json.loads(net_log.read_text()))


def _page_requests(log: dict) -> list[str]:
    """URLs of the requests made for a file:// page.

    Chromium's own background requests are in the log too; they carry another
    network isolation key than a page's subresources, whose top frame is file://.
    """
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start
        and "url" in e.get("params", {})
        and e["params"].get("network_isolation_key", "").startswith("file://")
    ]


@pytest.mark.slow
@needs_chromium
def test_chromium_sees_a_page_that_does_fetch(tmp_path):
    """The control: the net log shows a page's external requests, and not data: or file: ones."""
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><html><head>"
        '<link rel="stylesheet" href="https://fonts.example.invalid/math.css">'
        '<script src="http://cdn.example.invalid/mathjax.js"></script></head><body>'
        '<img src="https://img.example.invalid/plot.png">'
        '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        "</body></html>"
    )
    (tmp_path / "work").mkdir()
    dom, requested = _chromium(control, tmp_path / "work")
    assert "<img" in dom
    assert sorted(requested) == [
        "http://cdn.example.invalid/mathjax.js",
        "https://fonts.example.invalid/math.css",
        "https://img.example.invalid/plot.png",
    ]


@pytest.mark.slow
@needs_chromium
def test_chromium_renders_the_report_offline(report, page, tmp_path):
    dom, requested = _chromium(report, tmp_path)
    assert requested == []
    for tag in ("math", "mfrac", "menclose", "mtable", "svg", "polyline", "circle", "section"):
        assert dom.count(f"<{tag} ") + dom.count(f"<{tag}>") == page.count(f"<{tag} ") + page.count(
            f"<{tag}>"
        ), tag
    drawn = {f for name in SHOWN for f in figure_names(name)}
    still = {f for name in SHOWN for f in drawn_still(name)}
    assert dom.count("<math ") > len(SHOWN) and dom.count("<svg ") == len(drawn) + len(still)
    assert re.search(r'<img class="plot" [^>]*src="data:image/png;base64,', dom)


def test_a_report_html_chainrule_did_not_write_is_never_replaced(tmp_path, capsys, page):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "none").mkdir()  # a runs folder with no run in it
    (out / REPORT).write_text("my own notes\n")
    assert main(["report", "-o", str(out), "--runs", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: refusing to replace {out / REPORT}: chainrule did not write it "
        "(no chainrule generator tag); choose another -o folder\n"
    )
    assert (out / REPORT).read_text() == "my own notes\n"
    (out / REPORT).unlink()
    assert main(["report", "-o", str(out), "--runs", str(tmp_path / "none")]) == 0
    first = (out / REPORT).read_text(encoding="utf-8")
    (tmp_path / "none" / "run1").mkdir()
    (tmp_path / "none" / "run1" / "accuracy.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["report", "-o", str(out), "--runs", str(tmp_path / "none")]) == 0  # its own page: replaced
    second = (out / REPORT).read_text(encoding="utf-8")
    assert second != first and GENERATOR_TAG.decode() in second
    capsys.readouterr()
    edited = second.replace("<body>", "<body><p>MY NOTES</p>", 1)
    (out / REPORT).write_text(edited, encoding="utf-8")  # its page, edited by the user: theirs now
    assert main(["report", "-o", str(out), "--runs", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.endswith(
        "chainrule did not write it, or it was changed since; move it away or name another file\n"
    )
    assert (out / REPORT).read_text(encoding="utf-8") == edited


def test_a_runs_folder_that_is_not_there_is_an_error(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "rusn"
    assert main(["report", "-o", str(tmp_path / "out"), "--runs", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"chainrule: error: no runs folder {missing}: name the folder 'chainrule train' saves into\n"
    )
    assert not (tmp_path / "out").exists()
    # Without --runs, a folder with no runs/ yet (a fresh clone) still gets its report, without a run.
    monkeypatch.chdir(tmp_path)
    assert main(["report", "-o", "out"]) == 0
    assert "no training run found: run chainrule train" in (tmp_path / "out" / REPORT).read_text(
        encoding="utf-8"
    )
