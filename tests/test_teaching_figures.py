"""The chapter's figures as the book draws them: section 5.1's shopping graphs, the book's words on
the nodes, shapes on the backward values, and a reader's own numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import symbolic
from codegen.figures import svg

SVG = "{http://www.w3.org/2000/svg}"


def arrows(document: str) -> dict[tuple[str, str], dict[str, str]]:
    """Every arrow's labels in an SVG: (src, dst) -> {"forward": ..., "backward": ...}."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for t in ET.fromstring(document).iter(f"{SVG}text"):
        if t.get("class") in ("forward", "backward"):
            found.setdefault((t.get("data-src"), t.get("data-dst")), {})[t.get("class")] = "".join(
                t.itertext()
            )
    return found


def test_a_readers_own_inputs_redraw_the_figure():
    # Apples at 150 instead of 100: 300 before tax, 330 to pay, by the same exact backprop.
    found = arrows(symbolic.derive("apples").figure(apple=150))
    assert found[("apple", "apple_price")] == {"forward": "150", "backward": "2.2"}
    assert found[("apple_price", "price")]["forward"] == "300"
    assert found[("price", "")] == {"forward": "330", "backward": "1"}
    three = arrows(symbolic.derive("apples").figure(apple=150, apple_num=3, tax=1.08))
    assert three[("price", "")]["forward"] == "486"
    assert three[("apple", "apple_price")]["backward"] == "3.24"
    assert arrows(svg("mul", {"x": 3, "y": 4}))[("z", "")]["forward"] == "12"
    # Without values, the book's numbers.
    assert symbolic.derive("apples").figure() == svg("apples")


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("apples", {"banana": 1}, "apples takes the inputs apple, apple_num, tax, not 'banana'"),
        (
            "apples",
            {"apple": "150"},
            "apple must be a finite number, not '150'; apples takes the inputs apple, apple_num, tax",
        ),
        ("add", {"x": float("inf")}, "x must be a finite number, not inf; add takes the inputs x, y"),
        ("mul", {"y": True}, "y must be a finite number, not True; mul takes the inputs x, y"),
    ],
)
def test_a_wrong_input_is_named_in_one_line(name, values, message):
    with pytest.raises(ValueError) as info:
        symbolic.derive(name).figure(**values)
    assert str(info.value) == message


def test_a_figure_without_numbers_takes_no_inputs():
    with pytest.raises(ValueError, match="^the figure sigmoid has no input values to choose; figures that"):
        symbolic.derive("sigmoid").figure(x=1)
