"""The live figures in a real browser: headless Chromium driven by Selenium types a reader's numbers
into each figure's boxes and reads every number the page's script writes back on the drawing.

Each number is compared with a reference that never goes through the page's JavaScript: the
generated NumPy layers (MulLayer, AddLayer, Relu, Sigmoid, Affine, SoftmaxWithLoss) where the
figure is a layer or is built of them, and otherwise the derivation's node expressions evaluated by
SymPy's NumPy printer (``sympy.lambdify``), a different printer from the JavaScript one the page
runs. ``live.evaluate`` runs the page's own program and is no reference here.

One Chromium serves the whole module; it is told where its binary and driver are, so Selenium
never downloads anything, and the page itself loads nothing (checked from the performance log).
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil

import numpy as np
import pytest
import sympy as sp

from chainrule.codegen.i18n import language
from chainrule.codegen.layout import FIGURES
from chainrule.codegen.layout.numbered import _NUMBERS
from chainrule.codegen.live import LABEL, fragment, live_figure, page, shown
from chainrule.generated.layers import AddLayer, Affine, MulLayer, Relu, Sigmoid, SoftmaxWithLoss
from chainrule.symbolic import derive

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

# A value whose exact decimal sits on a rounding boundary may round one way in float64 NumPy and
# the other way in the page's float64 JavaScript (a different order of the same operations); only
# there do the two shown strings differ, by at most one unit in the 5th significant digit.
BOUNDARY = 2e-5


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the module, with its performance and console logs on."""
    missing = [
        what for what, found in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if found is None
    ]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - CI installs it with the test extra
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        pytest.fail("the live figures' browser tests need " + ", ".join(missing) + " (.ci/run installs them)")
    # Selenium Manager would fetch a driver; with both paths given it has nothing to do, and
    # offline it could not do it anyway.
    before = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "1"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()
        if before is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = before


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page of every figure and each figure's own page, written once: name (None: all) -> path."""
    folder = tmp_path_factory.mktemp("live")
    written = {}
    for name in (None, *FIGURES):
        path = folder / f"{name or 'all'}.html"
        path.write_text(page(name), encoding="utf-8")
        written[name] = path
    return written


def load(driver, url: str) -> None:
    """Open ``url`` as a fresh document (a hash change alone would keep the old page's state)."""
    driver.get("about:blank")
    driver.get(url)


def numbers(driver, name: str) -> dict[tuple[str, str, str], str]:
    """Every number on figure ``name``'s drawing: (class, src, dst) for the arrows' text.forward and
    text.backward, ("op", var, "") for a circle's text.op -> the text shown."""
    found = driver.execute_script(
        """
        const root = document.getElementById("live-" + arguments[0]);
        return Array.from(root.querySelectorAll("svg text.forward, svg text.backward, svg text.op"))
          .map((el) => [el.getAttribute("class"), el.dataset.src || el.dataset.var || "",
                        el.dataset.dst || "", el.textContent]);
        """,
        name,
    )
    return {(c, s, d): t for c, s, d, t in found}


def note(driver, name: str) -> str:
    return driver.find_element("css selector", f"#live-{name} .live-note").text


def type_inputs(driver, name: str, values: dict) -> None:
    """Type ``values`` into figure ``name``'s boxes as a reader would: clear each, then the keys."""
    from selenium.webdriver.support.ui import Select

    root = driver.find_element("css selector", f"#live-{name}")
    for key, value in values.items():
        boxes = [
            b
            for b in root.find_elements("css selector", "[data-field]")
            if b.get_attribute("data-field") == key
        ]
        if boxes[0].tag_name == "select":
            Select(boxes[0]).select_by_value(str(value))
            continue
        flat = [x for row in value for x in row] if isinstance(value, tuple) else [value]
        assert len(boxes) == len(flat), (name, key)
        for box, x in zip(boxes, flat, strict=True):
            box.clear()
            box.send_keys(repr(x))


def js_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


# -- the references: NumPy, never the page's program ---------------------------------------------


def lambdified(graph, inputs: dict[str, float], seed: float):
    """A scalar graph run node by node with SymPy's NumPy printer: every variable's forward value,
    every arrow's backward value (src, dst), and every variable's summed gradient."""
    value = {v.name: np.float64(inputs[v.name]) for v in graph.inputs}
    for n in graph.nodes:
        f = sp.lambdify(list(n.inputs), n.expr, modules="numpy")
        value[n.out.name] = np.float64(f(*(value[v.name] for v in n.inputs)))
    grad = {graph.output.name: np.float64(seed)}
    edge = {}
    for n in reversed(graph.nodes):
        for v, vjp in zip(n.inputs, n.vjp, strict=True):
            f = sp.lambdify([n.upstream, *n.inputs], vjp, modules="numpy")
            edge[(v.name, n.out.name)] = np.float64(f(grad[n.out.name], *(value[u.name] for u in n.inputs)))
        for v in n.inputs:
            if all(edge.get((v.name, m.out.name)) is not None for m in graph.nodes if v in m.inputs):
                grad[v.name] = sum(edge[(v.name, m.out.name)] for m in graph.nodes if v in m.inputs)
    return value, edge, grad


def by_layers(graph, inputs: dict[str, float], seed: float):
    """A shopping graph run as the book runs it: one MulLayer or AddLayer per node."""
    value = {v.name: inputs[v.name] for v in graph.inputs}
    layers = {}
    for n in graph.nodes:
        assert n.op in ("×", "+") and len(n.inputs) == 2, n.op
        layers[n.out.name] = MulLayer() if n.op == "×" else AddLayer()
        value[n.out.name] = layers[n.out.name].forward(*(value[v.name] for v in n.inputs))
    grad = {graph.output.name: seed}
    edge = {}
    for n in reversed(graph.nodes):
        back = layers[n.out.name].backward(grad[n.out.name])
        for v, d in zip(n.inputs, back, strict=True):
            edge[(v.name, n.out.name)] = d
            grad[v.name] = d  # each variable of the shopping graphs feeds one node
    return value, edge, grad


def reference(name: str, inputs: dict) -> dict[tuple[str, str, str], object]:
    """What figure ``name`` must show for ``inputs``: (class, src, dst) or ("op", var, "") -> value."""
    f = live_figure(name)
    if name in _NUMBERS:
        graph = _NUMBERS[name]().graph
        seed = inputs.get("dout", 1.0)
        value, edge, grad = by_layers(graph, inputs, seed)
    elif name == "affine":
        return _affine_reference(inputs)
    else:
        base = "sigmoid" if name == "sigmoid_simple" else name
        base = "softmax_with_loss" if name == "softmax_with_loss_simple" else base
        graph = derive(base).graph
        given = dict(inputs)
        if LABEL in given:
            for k in (1, 2, 3):
                given[f"t{k}"] = 1.0 if given[LABEL] == k else 0.0
        value, edge, grad = lambdified(graph, given, given.get("dout", 1.0))
        _overlay_layers(base, given, value, edge, grad)
    expected: dict[tuple[str, str, str], object] = {}
    for arrow, (_forward, back) in f.bind.items():
        src, dst = arrow.split(">")
        expected[("forward", src, dst)] = value[src]
        if back is not None:
            expected[("backward", src, dst)] = edge[(src, dst)] if (src, dst) in edge else grad[src]
    for var, (op, _ident) in f.ops.items():
        node = next(n for n in graph.nodes if n.out.name == var)
        inside = [v for v in node.inputs if v in _NUMBERS[name]().inside][0]
        expected[("op", var, "")] = (op, value[inside.name])
    return expected


def _overlay_layers(name: str, inputs: dict, value: dict, edge: dict, grad: dict) -> None:
    """Put the generated layer's own numbers where a figure is that layer: its output and input
    gradient must be the layer's, whatever the node-by-node evaluation says."""
    if name == "relu":
        layer = Relu()
        value["out"] = layer.forward(np.array([inputs["x"]]))[0]
        edge[("x", "out")] = grad["x"] = layer.backward(np.array([inputs["dout"]]))[0]
    elif name == "sigmoid":
        layer = Sigmoid()
        value["out"] = layer.forward(np.array([inputs["x"]]))[0]
        edge[("x", "a")] = grad["x"] = layer.backward(np.array([inputs["dout"]]))[0]
    elif name == "softmax_with_loss":
        layer = SoftmaxWithLoss()
        scores = np.array([[inputs["a1"], inputs["a2"], inputs["a3"]]])
        value["L"] = layer.forward(scores, np.array([inputs[LABEL] - 1]))
        dx = layer.backward()[0]
        for k in (1, 2, 3):
            value[f"y{k}"] = layer.y[0, k - 1]
            edge[(f"a{k}", f"e{k}")] = grad[f"a{k}"] = dx[k - 1]


def _affine_reference(inputs: dict) -> dict[tuple[str, str, str], object]:
    x, W, b, dout = (np.array(inputs[k], dtype=float) for k in ("x", "W", "b", "dout"))
    layer = Affine(W, b[0])
    out = layer.forward(x)
    dx = layer.backward(dout)
    return {
        ("forward", "x", "xW"): x,
        ("backward", "x", "xW"): dx,
        ("forward", "W", "xW"): W,
        ("backward", "W", "xW"): layer.dW,
        ("forward", "xW", "out"): x @ W,  # the dot node alone: no layer stops there
        ("backward", "xW", "out"): dout,  # the + node passes the upstream gradient on
        ("forward", "b", "out"): b[0],  # a 1 x 3 bias, shown as NumPy's (3,) row
        ("backward", "b", "out"): layer.db,
        ("forward", "out", ""): out,
        ("backward", "out", ""): dout,
    }


def agrees(text: str, expected) -> bool:
    """``text`` is ``expected`` as the page shows numbers: equal to shown(), or on a boundary."""
    if isinstance(expected, tuple):  # a circle's operation and its number: "×2"
        op, number = expected
        return text.startswith(op) and agrees(text[len(op) :], number)
    array = np.asarray(expected, dtype=float)
    if array.ndim == 0:
        want = shown(float(array))
        if text == want:
            return True
        try:
            got = float(text)
        except ValueError:
            return False
        # Only a number the page could have written (5 digits, as shown() writes it), one step of
        # the 5th digit from NumPy's: the two sides rounded a value on a boundary apart.
        return text == shown(got) and math.isclose(got, float(want), rel_tol=BOUNDARY)
    try:
        parsed = np.asarray(json.loads(text), dtype=float)
    except (ValueError, TypeError):
        return False
    return parsed.shape == array.shape and all(
        agrees(shown(float(p)), float(e)) for p, e in zip(parsed.flat, array.flat, strict=True)
    )


def mismatches(shown_now: dict, expected: dict) -> list:
    missing = sorted(set(expected) - set(shown_now))
    wrong = [
        (k, shown_now[k], expected[k])
        for k in expected
        if k in shown_now and not agrees(shown_now[k], expected[k])
    ]
    return missing + wrong


# -- a reader's numbers, from a fixed seed -------------------------------------------------------


def readers_inputs(name: str, rng: random.Random) -> dict:
    """New inputs for every field of ``name``: a few decimals, a negative x for ReLU (the mask
    blocks), another label than the first one for Softmax-with-Loss."""
    f = live_figure(name)
    chosen: dict = {}
    for field in f.fields:
        if field.choices:
            chosen[field.name] = rng.choice([k for k in field.choices if k != field.default])
        elif field.shape:
            rows, cols = field.shape
            chosen[field.name] = tuple(
                tuple(round(rng.uniform(-3, 3), 2) for _ in range(cols)) for _ in range(rows)
            )
        elif name == "relu" and field.name == "x":
            chosen[field.name] = round(rng.uniform(-5, -0.1), 3)
        elif name in _NUMBERS and field.name != "dout":
            chosen[field.name] = round(rng.uniform(0.5, 300), 2)
        else:
            chosen[field.name] = round(rng.uniform(-3, 3), 3)
    return chosen


# -- the tests -----------------------------------------------------------------------------------


def test_apples_at_150_cost_330_and_every_number_is_the_layers(driver, pages):
    """The issue's "done when": #apples?apple=150 shows 330 on the price; the rest of the figure
    is what two MulLayers compute forward and backward."""
    load(driver, pages["apples"].as_uri() + "#apples?apple=150")
    on_page = numbers(driver, "apples")
    assert on_page[("forward", "price", "")] == "330"
    apple_layer, tax_layer = MulLayer(), MulLayer()
    apple_price = apple_layer.forward(150.0, 2.0)
    price = tax_layer.forward(apple_price, 1.1)
    dapple_price, dtax = tax_layer.backward(1.0)
    dapple, dapple_num = apple_layer.backward(dapple_price)
    assert on_page == {
        ("forward", "apple", "apple_price"): shown(150.0),
        ("backward", "apple", "apple_price"): shown(dapple),
        ("forward", "apple_num", "apple_price"): shown(2.0),
        ("backward", "apple_num", "apple_price"): shown(dapple_num),
        ("forward", "apple_price", "price"): shown(apple_price),
        ("backward", "apple_price", "price"): shown(dapple_price),
        ("forward", "tax", "price"): shown(1.1),
        ("backward", "tax", "price"): shown(dtax),
        ("forward", "price", ""): shown(price),
        ("backward", "price", ""): "1",
        ("op", "apple_price", ""): "×",  # no number in these circles: the inputs are arrows here
        ("op", "price", ""): "×",
    }
    assert (on_page[("backward", "apple", "apple_price")], on_page[("backward", "tax", "price")]) == (
        "2.2",
        "300",
    )
    assert note(driver, "apples") == ""


@pytest.mark.parametrize("name", FIGURES)
def test_a_readers_numbers_redraw_every_value_as_numpy_computes_it(driver, pages, name):
    """Every forward, backward and in-circle number of every figure, after typing new inputs into
    its boxes, against NumPy (the generated layers, or the nodes lambdified)."""
    rng = random.Random(f"live-{name}")
    chosen = readers_inputs(name, rng)
    load(driver, pages[name].as_uri())
    before = numbers(driver, name)
    type_inputs(driver, name, chosen)
    after = numbers(driver, name)
    expected = reference(name, chosen)
    assert mismatches(after, expected) == []
    # Every number on the drawing is checked, and the edit changed the drawing.
    ops = live_figure(name).ops
    assert set(expected) == {k for k, t in after.items() if (k[0] != "op" and t) or k[1] in ops}
    # A circle without a number keeps the operation it was drawn with ("+1", "**2", "×"): the
    # script writes only where the figure binds a number.
    for key, written in after.items():
        if key[0] == "op" and key[1] not in ops:
            assert written == before[key], key
    assert after != before
    assert note(driver, name) == ""
    if name == "relu":
        assert after[("backward", "x", "out")] == "0"  # x < 0: the mask blocks the gradient


@pytest.mark.parametrize("name", ["softmax_with_loss", "softmax_with_loss_simple"])
def test_softmax_with_loss_sends_back_y_minus_t(driver, pages, name):
    """Scores and label changed in the browser: each a_k arrow carries back y_k - t_k exactly as
    the generated SoftmaxWithLoss layer's backward gives it, and the loss is the layer's."""
    scores = {"a1": 1.25, "a2": -0.75, "a3": 0.5}
    load(driver, pages[name].as_uri())
    type_inputs(driver, name, {**scores, LABEL: 2})
    on_page = numbers(driver, name)
    layer = SoftmaxWithLoss()
    loss = layer.forward(np.array([[1.25, -0.75, 0.5]]), np.array([1]))
    dx = layer.backward()[0]
    assert dx[1] < 0 < dx[0]  # the label's class is pulled up, the others down
    dst = {"softmax_with_loss": "e{k}", "softmax_with_loss_simple": "softmax"}[name]
    for k in (1, 2, 3):
        assert on_page[("backward", f"a{k}", dst.format(k=k))] == shown(dx[k - 1])
        assert on_page[("forward", f"a{k}", dst.format(k=k))] == shown(scores[f"a{k}"])
    assert on_page[("forward", "L", "")] == shown(loss)


def test_a_fragment_opens_a_figure_with_its_numbers(driver, pages):
    """#affine?x=..&W=..&b=..&dout=.. and #softmax_with_loss?..&label=1 on the page of all figures:
    the named figure takes those numbers, the layers agree."""
    affine = {
        "x": ((0.5, -1.5), (2.0, 0.25)),
        "W": ((1.0, -2.0, 0.5), (0.3, 0.1, -0.7)),
        "b": ((0.01, 0.02, -0.03),),
        "dout": ((1.5, -1.0, 0.5), (0.2, 0.4, -0.6)),
    }
    url = pages[None].as_uri() + "#" + fragment("affine", affine)
    assert "x=0.5,-1.5;2,0.25" in url
    load(driver, url)
    assert mismatches(numbers(driver, "affine"), reference("affine", affine)) == []
    assert note(driver, "affine") == ""

    softmax = {"a1": 2.5, "a2": -1.0, "a3": 0.75, LABEL: 1}
    load(driver, pages[None].as_uri() + "#" + fragment("softmax_with_loss", softmax))
    on_page = numbers(driver, "softmax_with_loss")
    assert mismatches(on_page, reference("softmax_with_loss", softmax)) == []
    assert on_page[("forward", "t1", "m1")] == "1" and on_page[("forward", "t3", "m3")] == "0"


def test_what_a_fragment_cannot_use_is_named_and_the_rest_works(driver, pages):
    """An unknown key and a value that is no number are named in the figure's note; the other
    values of the fragment are still used."""
    load(driver, pages[None].as_uri() + "#apples?count=3&apple=abc&tax=2")
    said = note(driver, "apples")
    assert "count" in said and "apple=abc" in said
    on_page = numbers(driver, "apples")
    # apple keeps 100, tax is 2: 100 x 2 x 2.
    assert on_page[("forward", "price", "")] == shown(MulLayer().forward(MulLayer().forward(100.0, 2.0), 2.0))
    assert on_page[("forward", "tax", "price")] == "2"
    assert on_page[("forward", "apple", "apple_price")] == "100"

    load(driver, pages[None].as_uri() + "#affine?W=1,2;3,4&dout=1,1,1;2,2,2")
    said = note(driver, "affine")
    assert "W=1,2;3,4" in said
    first = live_figure("affine").fields
    kept = {f.name: f.default for f in first}
    kept["dout"] = ((1.0, 1.0, 1.0), (2.0, 2.0, 2.0))
    assert mismatches(numbers(driver, "affine"), reference("affine", kept)) == []


@pytest.mark.parametrize("key", ["__proto__", "constructor", "toString", "hasOwnProperty"])
def test_a_key_named_as_javascripts_own_properties_is_only_an_unknown_input(driver, pages, key):
    """Names every JavaScript object has (the hostile review's __proto__=1) are looked up nowhere: a
    note names them, the other values of the link are used, and nothing throws."""
    driver.get_log("browser")  # what earlier pages logged is not this test's
    load(driver, pages[None].as_uri() + f"#softmax_with_loss?{key}=1&a1=5")
    assert f"{key} is not an input of this figure" in note(driver, "softmax_with_loss")
    assert numbers(driver, "softmax_with_loss")[("forward", "a1", "e1")] == "5"
    load(driver, pages[None].as_uri() + f"#{key}?apple=1")
    assert f"this page has no figure {key}" in note(driver, FIGURES[0])
    assert js_errors(driver) == []


def test_a_broken_link_is_said_and_the_rest_of_it_used(driver, pages):
    """A broken percent-escape, a hexadecimal number and thousands of wrong keys: each said in a
    note (the keys' note cut to its first few), never an exception; what can be used is used."""
    driver.get_log("browser")
    load(driver, pages[None].as_uri() + "#softmax_with_loss?a1=5&x=%E0%A4%A&a2=1")
    said = note(driver, "softmax_with_loss")
    assert "x=%E0%A4%A" not in said and "x is not an input" in said
    on_page = numbers(driver, "softmax_with_loss")
    assert on_page[("forward", "a1", "e1")] == "5" and on_page[("forward", "a2", "e2")] == "1"
    load(driver, pages["apples"].as_uri() + "#apples?apple=0x10")
    assert "apple=0x10 is not a number" in note(driver, "apples")
    assert numbers(driver, "apples")[("forward", "apple", "apple_price")] == "100"
    load(driver, pages["apples"].as_uri() + "#apples?" + "&".join(f"k{i}=1" for i in range(2000)) + "&tax=2")
    said = note(driver, "apples")
    assert said.count("is not an input") == 5 and said.endswith("…")
    assert numbers(driver, "apples")[("forward", "price", "")] == "400"
    assert js_errors(driver) == []


def test_a_matrix_key_is_read_as_the_figure_writes_it(driver, pages):
    """The Affine figure labels its inputs X, W, B: a link may say X= and B=, and a matrix of the
    wrong shape is told its shape."""
    load(driver, pages["affine"].as_uri() + "#affine?X=1,2;3,4&B=0,0,1&W=1,2;3,4")
    said = note(driver, "affine")
    assert "W=1,2;3,4 is not 2 × 3 numbers" in said and "X" not in said.replace("W=", "")
    kept = {f.name: f.default for f in live_figure("affine").fields}
    kept.update(x=((1.0, 2.0), (3.0, 4.0)), b=((0.0, 0.0, 1.0),))
    assert mismatches(numbers(driver, "affine"), reference("affine", kept)) == []


def test_a_value_beyond_floating_point_is_said_for_what_it_is(driver, pages):
    """∞ or NaN on a figure is noted: as floating point's limit where the graph has no exp (apples at
    1e300 apples), and as the graph's own exp, which the generated layer does not overflow, elsewhere."""
    load(driver, pages["apples"].as_uri() + "#apples?apple=1e300&apple_num=1e300")
    assert numbers(driver, "apples")[("forward", "price", "")] == "∞"
    said = note(driver, "apples")
    assert "beyond floating point" in said and "exp" not in said
    load(driver, pages["sigmoid"].as_uri() + "#sigmoid?x=-800")
    assert "exp included" in note(driver, "sigmoid")


def _spec_page(tmp_path, forward: str, constants=()) -> str:
    from chainrule.codegen.live import page_of, view_of
    from chainrule.codegen.spec_figure import spec_live
    from chainrule.symbolic.from_spec import derive_spec
    from chainrule.symbolic.spec import Spec

    figure = spec_live(derive_spec(Spec("Mine", forward, constants=constants)))
    path = tmp_path / "mine.html"
    path.write_text(page_of([view_of(figure)], figure.title), encoding="utf-8")
    return path.as_uri()


def test_a_page_shows_one_computations_numbers_from_the_start(driver, tmp_path):
    """The numbers a page is written with are computed again by its script when it opens, so a page
    without a link and the same page with its numbers in the link agree, even where floating point
    and exact arithmetic part (k = 1e308), and a value beyond floating point is noted at once."""
    uri = _spec_page(tmp_path, "x * sigmoid(k * x)", (("k", 1e308),))
    load(driver, uri)
    opened = numbers(driver, "mine")
    load(driver, uri + "#mine?x=1&dout=1")
    assert numbers(driver, "mine") == opened
    # what the arrows from x carry back, and their sum under the inputs: the same computation
    total = driver.find_element("css selector", "[data-total]").text
    assert float(total) == float(opened[("backward", "x", "a")]) + float(opened[("backward", "x", "out")])
    uri = _spec_page(tmp_path, "1/(x - 1)")  # x = 1, the first input, is the pole
    load(driver, uri)
    assert numbers(driver, "mine")[("forward", "out", "")] == "∞"
    assert "beyond floating point" in note(driver, "mine")


def test_an_edit_is_kept_in_the_address_and_the_address_brings_it_back(driver, pages):
    """Typing a number rewrites location.hash to the figure's state; opening that address again
    shows the same numbers."""
    load(driver, pages["apples"].as_uri())
    type_inputs(driver, "apples", {"apple": 123.5, "tax": 1.25})
    hash_now = driver.execute_script("return location.hash")
    assert hash_now == "#" + fragment("apples", {"apple": 123.5, "tax": 1.25})
    link = driver.find_element("css selector", "#live-apples a.live-link").get_attribute("href")
    assert link.endswith(hash_now)
    edited = numbers(driver, "apples")
    assert edited[("forward", "price", "")] == shown(123.5 * 2.0 * 1.25)
    load(driver, pages["apples"].as_uri() + hash_now)
    assert numbers(driver, "apples") == edited
    # Not the first numbers: the address did carry the edit.
    load(driver, pages["apples"].as_uri())
    assert numbers(driver, "apples")[("forward", "price", "")] == "220"


def test_the_page_loads_nothing_and_has_no_errors(driver, pages):
    """Every request of the page (performance log) is the page's own file; its Content-Security-
    Policy forbids the rest; the console has no error, for one figure and for all of them."""
    for name in ("apples", None):
        driver.get("about:blank")
        driver.get_log("performance")  # drop what came before
        driver.get_log("browser")
        load(driver, pages[name].as_uri() + "#apples?apple=150")
        type_inputs(driver, "apples", {"apple_num": 3.0})
        requested = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requested.append(message["params"]["request"]["url"])
        assert requested, "the performance log saw no request at all"
        own = pages[name].as_uri()
        assert [u for u in requested if u.split("#")[0] != own and not u.startswith("data:")] == []
        csp = driver.execute_script(
            "const m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]');"
            " return m && m.content;"
        )
        assert csp is not None and "default-src 'none'" in csp
        assert js_errors(driver) == []
        assert numbers(driver, "apples")[("forward", "price", "")] == shown(150.0 * 3.0 * 1.1)
    figures = driver.execute_script("return Array.from(document.querySelectorAll('[data-live]')).length")
    assert figures == len(FIGURES)


def test_the_japanese_page_names_its_inputs_in_japanese_and_computes(driver, tmp_path):
    """The page rendered in Japanese: lang="ja", the apples' boxes labelled りんご…, and an edit
    still computes the layers' numbers."""
    with language("ja"):
        html = page("apples")
    path = tmp_path / "ja.html"
    path.write_text(html, encoding="utf-8")
    load(driver, path.as_uri())
    assert driver.execute_script("return document.documentElement.lang") == "ja"
    labels = [e.text for e in driver.find_elements("css selector", "#live-apples .live-name")]
    assert labels == ["りんご", "りんごの個数", "消費税"]
    type_inputs(driver, "apples", {"apple": 80.0, "apple_num": 4.0})
    chosen = {"apple": 80.0, "apple_num": 4.0, "tax": 1.1}
    assert mismatches(numbers(driver, "apples"), reference("apples", chosen)) == []
    assert js_errors(driver) == []


def _doubles() -> list[float]:
    """~300 doubles: ties of the 5th digit, sums that are not what they read, the extremes."""
    fixed = [
        1234.25,
        12344.5,
        99999.5,
        0.1 + 0.2,
        1e-7,
        5e-324,
        1.7e308,
        1.7976931348623157e308,
        -1234.25,
        -12344.5,
        -0.0,
        0.0,
        1.0,
        -1.0,
        330.0,
        2.2,
        1e21,
        1e-6,
        1.23456e-7,
        123456789.0,
        0.000123455,
        1.00005,
        2.00005,
        -2.5,
        0.5,
        12345.5,
        1e20,
        9.99995,
        -9.99995,
        2**53,
        2**-1074,
    ]
    rng = random.Random("shown")
    drawn = []
    for _ in range(90):
        drawn.append(rng.uniform(-1e6, 1e6))
        drawn.append(rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30))
        drawn.append(round(rng.uniform(-100000, 100000) * 2) / 2)  # halves: ties at the 5th digit
    drawn += [float(rng.randint(-(10**9), 10**9)) for _ in range(10)]
    return fixed + drawn


def test_the_page_and_python_write_numbers_alike(driver, pages):
    """The page's shown() and live.shown agree on ~300 doubles, ties and extremes included."""
    load(driver, pages["apples"].as_uri())
    values = _doubles()
    page_wrote = driver.execute_script("return arguments[0].map((x) => shown(x));", values)
    python_wrote = [shown(v) for v in values]
    assert [(v, p, q) for v, p, q in zip(values, page_wrote, python_wrote, strict=True) if p != q] == []
    # Not one format twice: the tie rounds away from zero, a huge number keeps its exponent.
    assert python_wrote[:3] == ["1234.3", "12345", "100000"]
    assert shown(1e-7) == "1e-7" and shown(1.7e308) == "1.7e+308"


def test_a_screenshot_of_apples_at_150_is_a_picture(driver, pages, tmp_path):
    """A screenshot after typing apple=150, kept under tmp_path so a failure leaves an image; it
    must be a PNG with more than one colour in it."""
    from PIL import Image

    load(driver, pages["apples"].as_uri())
    type_inputs(driver, "apples", {"apple": 150.0})
    shot = tmp_path / "apples-150.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20
    assert numbers(driver, "apples")[("forward", "price", "")] == "330"
