"""``Derivation.explore()``: the live figures as a Jupyter widget, sharing the page's printed JavaScript."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys

import pytest

from chainrule import symbolic
from chainrule.codegen.figures import document_figure_names
from chainrule.codegen.layout import UnknownFigure
from chainrule.codegen.live import block, js_function, live_figure, runtime, spec_js

# The derivations whose live figures the chapter notebook shows (sections 5.3 to 5.6).
LIVE = ("add", "mul", "apples", "apples_oranges", "relu", "sigmoid", "affine", "softmax_with_loss")


def _numbers(html: str, kind: str = "forward") -> list[str]:
    """The numbers written on a drawing's arrows, forward (above) or backward (below), in order."""
    return re.findall(rf'<text[^>]*class="{kind}[^"]*"[^>]*>([^<]*)</text>', html)


@pytest.mark.parametrize("name", LIVE)
def test_the_widget_runs_the_pages_runtime_and_printed_programs(name):
    widget = symbolic.derive(name).explore()
    names = document_figure_names(name)
    # the same text as chainrule explore's page: one runtime, one printed program per figure
    assert runtime() in widget._esm
    for figure in names:
        assert spec_js(live_figure(figure)) in widget._esm
        program = "\n".join("    " + line for line in js_function(live_figure(figure).program).splitlines())
        assert program in widget._esm
    # an ES module of its own: anywidget's default export, nothing imported, nothing fetched
    assert widget._esm.rstrip().endswith("export default { render };")
    assert not re.search(r"^\s*import\b|\bimport\(|\bfetch\(|https?:", widget._esm, re.M)
    # every figure in the HTML, in the document's order, its inputs in the state
    assert [m for m in re.findall(r'data-live="(\w+)"', widget.html)] == list(names)
    assert widget.html == "\n".join(block(figure) for figure in names)
    assert set(widget.state) == set(names)
    assert all(widget.state[f].startswith(f + "?") for f in names)
    data, _metadata = widget._repr_mimebundle_()
    assert set(data) == {"text/plain", "application/vnd.jupyter.widget-view+json"}
    title = symbolic.derive(name).title
    assert data["text/plain"].startswith(f"<live figures, {title}: ")


def test_first_inputs_are_drawn_as_the_program_computes_them():
    widget = symbolic.derive("apples").explore(apple=150)
    assert widget.state == {"apples": "apples?apple=150&apple_num=2&tax=1.1"}
    assert repr(widget) == (
        "<live figures, Buying apples: apple=150, apple_num=2, tax=1.1; Jupyter shows them with boxes to change>"
    )
    # two figures that share their inputs: said once
    assert repr(symbolic.derive("sigmoid").explore()).startswith(
        "<live figures, Sigmoid: x=1, dout=1; Jupyter"
    )
    assert 'data-field="apple" value="150"' in widget.html
    assert "330" in _numbers(widget.html) and "220" not in _numbers(widget.html)
    assert widget.html == block("apples", {"apple": 150.0})
    # the book's numbers without values
    assert "220" in _numbers(symbolic.derive("apples").explore().html)
    # both of sigmoid's figures take x: at 0, y = 0.5 and dx = 0.25 on each
    sigmoid = symbolic.derive("sigmoid").explore(x=0)
    for part in sigmoid.html.split('<div class="live"')[1:]:
        assert "0.5" in _numbers(part) and "0.25" in _numbers(part, "backward")


def test_matrices_and_labels_are_taken_as_their_fields_hold_them():
    np = pytest.importorskip("numpy")
    affine = symbolic.derive("affine").explore(b=np.array([0.0, 0.0, 1.0]), W=[[1, 0, 0], [0, 1, 0]])
    assert "&W=1,0,0;0,1,0&b=0,0,1&" in affine.state["affine"]
    loss = symbolic.derive("softmax_with_loss").explore(label=1)
    assert all("label=1" in fragment for fragment in loss.state.values())


@pytest.mark.parametrize(
    ("name", "values", "said"),
    [
        ("apples", {"banana": 1}, "apples takes the inputs apple, apple_num, tax, not 'banana'"),
        ("apples", {"apple": "150"}, "apple must be a finite number, not '150'"),
        ("apples", {"apple": float("nan")}, "apple must be a finite number"),
        ("add", {"x": True}, "x must be a finite number"),
        ("affine", {"W": [[1, 2], [3, 4]]}, "affine takes the inputs x, W, b, dout"),
        (
            "affine",
            {"W": [[1, 2], [3, 4]]},
            "W must be a 2 × 3 matrix of finite numbers, not [[1, 2], [3, 4]]",
        ),
        ("affine", {"b": [[1], [2], [3]]}, "b must be a row of 3 finite numbers"),
        ("softmax_with_loss", {"label": 4}, "softmax_with_loss takes the inputs a1, a2, a3, label"),
        ("softmax_with_loss", {"label": 0}, "label must be one of 1, 2, 3, not 0"),
        ("apples", {"apple": 10**400}, "apple must be a finite number, not 1000000"),
    ],
)
def test_a_wrong_input_is_a_value_error_naming_the_valid_ones(name, values, said):
    with pytest.raises(ValueError) as caught:
        symbolic.derive(name).explore(**values)
    assert said in str(caught.value)


def test_a_derivation_without_a_figure_says_so():
    with pytest.raises(UnknownFigure):
        symbolic.derive("tanh").explore()


def test_without_anywidget_it_says_how_to_install_it_and_draws_the_numbers(monkeypatch):
    """A notebook run to its end is not stopped by the missing extra: the figure, not live, and one line."""
    monkeypatch.setitem(sys.modules, "anywidget", None)
    still = symbolic.derive("apples").explore(apple=150)
    message = repr(still)
    assert "pip install 'chainrule[notebook]'" in message and "\n" not in message
    page = still._repr_html_()
    assert page.startswith(f"<p>{html.escape(message)}</p><figure><svg ")
    assert re.search(r'<text class="forward" data-src="price" data-dst=""[^>]*>330</text>', page)
    assert "<script" not in page


def test_codegen_imports_anywidget_only_for_a_widget():
    code = (
        "import sys\n"
        "import chainrule.codegen, chainrule.codegen.display, chainrule.codegen.live\n"
        "from chainrule import symbolic\n"
        "symbolic.derive('apples').figure(apple=150)\n"
        "print('anywidget' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "False\n"


# -- the module in a real browser ----------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"></head>
<body><div id="out"></div>
<script type="module">
// anywidget's front-end model interface (get, set, on, off, save_changes), over the widget's traits.
// set() fires "change:<key>" at once when the value changes, as the Backbone model behind it does.
const values = __TRAITS__;
const handlers = {};
const model = {
  saved: [],
  get(key) { return values[key]; },
  set(key, value) {
    const changed = JSON.stringify(values[key]) !== JSON.stringify(value);
    values[key] = value;
    if (changed) for (const cb of handlers["change:" + key] || []) cb();
  },
  on(event, cb) { (handlers[event] = handlers[event] || []).push(cb); },
  off(event, cb) { handlers[event] = (handlers[event] || []).filter((h) => h !== cb); },
  save_changes() { model.saved.push(JSON.parse(JSON.stringify(values))); },
};
window.model = model;
const url = URL.createObjectURL(new Blob([__ESM__], { type: "text/javascript" }));
const widget = (await import(url)).default;
widget.render({ model, el: document.getElementById("out") });
window.ready = true;
</script></body></html>
"""


def _script_json(value: object) -> str:
    return json.dumps(value).replace("</", "<\\/")


@pytest.mark.slow
def test_the_module_runs_in_chromium(tmp_path):
    """The widget's ES module, loaded as a module by headless Chromium and rendered into a page.

    The model object on the page implements anywidget's documented front-end model interface
    (get, set, on, off, save_changes); only a Jupyter front end provides the real one, so this
    proves the module runs in a real browser and speaks that interface, not Jupyter's plumbing.
    """
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    widget = symbolic.derive("apples").explore()
    traits = {"html": widget.html, "state": widget.state}
    page = tmp_path / "widget.html"
    page.write_text(
        PAGE.replace("__TRAITS__", _script_json(traits)).replace("__ESM__", _script_json(widget._esm)),
        encoding="utf-8",
    )
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.execute_script("return window.ready === true"))

        def forward() -> list[str]:
            return [el.text for el in driver.find_elements(By.CSS_SELECTOR, "#out svg text.forward")]

        assert "220" in forward()
        assert not driver.find_elements(
            By.CSS_SELECTOR, "#out a.live-link"
        )  # a page's address, not a notebook's
        box = driver.find_element(By.CSS_SELECTOR, '#out input[data-field="apple"]')
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("150")
        WebDriverWait(driver, 10).until(lambda d: "330" in forward())
        saved = driver.execute_script("return model.saved")
        assert saved and saved[-1]["state"] == {"apples": "apples?apple=150&apple_num=2&tax=1.1"}

        # Python sets the state: the boxes and the figure follow, and nothing is sent back
        count = len(saved)
        driver.execute_script('model.set("state", {apples: "apples?apple=200&apple_num=3&tax=1"})')
        assert "600" in forward() and "330" not in forward()
        assert box.get_attribute("value") == "200"
        assert len(driver.execute_script("return model.saved")) == count
        # a state that is no number of this input is said in the figure's note; the figure keeps its numbers
        driver.execute_script('model.set("state", {apples: "apples?apple=many"})')
        assert "600" in forward()
        assert "apple=many" in driver.find_element(By.CSS_SELECTOR, "#out .live-note").text
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
