"""``chainrule notebook -o chapter5.ipynb``: the chapter as a Jupyter notebook.

Section by section (5.1 to 5.7), in the chapter's order: each derivation under its book
section, its figures first (drawn already, so the saved notebook shows them), in 5.3 to 5.6 a
cell that shows them live (a widget, drawn when the notebook runs), then the derivation as
Markdown with math; code cells that run the generated layers to reproduce the
chapter's numbers (the shopping examples with the book's variable names, the activation layers,
Softmax-with-Loss's y - t, ``TwoLayerNet.gradient``, the gradient check on 3 MNIST images and a
short training run); and the book's exercise of 図5-15 with a cell that checks the answers.
"""

from __future__ import annotations

import argparse
from typing import Any

from chainrule.codegen.i18n import N_, _
from chainrule.commands.chapter import (
    INTRO,
    Derived,
    Exercise,
    Heading,
    Item,
    Listing,
    Part,
    _say,
    chapter,
    setup,
)

KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}

# The exercise of 図5-15: the derivation whose backward values the reader fills in.
EXERCISE = "apples_oranges"


def _figure_cell(source: str, picture: str, nbformat: Any) -> Any:
    """A cell that draws a figure, its output already there so the notebook shows it unrun."""
    import re

    cell = nbformat.v4.new_code_cell(source)
    picture = re.sub(r"\A<\?xml[^>]*\?>\s*", "", picture)
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={"image/svg+xml": picture, "text/plain": "<IPython.core.display.SVG object>"}
        )
    ]
    return cell


def _inputs(name: str) -> tuple[tuple[str, str], ...]:
    """A derivation's worked inputs as the chapter types them (``apple``, ``100``); none for a symbolic one."""
    from chainrule import symbolic
    from chainrule.codegen.model import _float_literal

    d = symbolic.derive(name)
    return tuple((v.name, _float_literal(value)) for v, value in d.examples[0].inputs) if d.examples else ()


def redraw_source(name: str) -> str | None:
    """The code that draws a derivation's graph with the reader's own inputs; None for a graph without numbers."""
    inputs = _inputs(name)
    if not inputs:
        return None
    values = ", ".join(f"{key}={literal}" for key, literal in inputs)
    return f'SVG(symbolic.derive("{name}").figure({values}))'


def _figure_cells(name: str, nbformat: Any) -> list[Any]:
    """A derivation's figures, drawn; the one its worked numbers draw is drawn by the code that redraws it
    with the reader's own numbers, introduced by a sentence that says so."""
    import ast

    from chainrule import symbolic
    from chainrule.codegen.figures import svg
    from chainrule.codegen.html import figure_names

    redraw = redraw_source(name)
    own = (
        symbolic.derive(name).figure(**{k: ast.literal_eval(v) for k, v in _inputs(name)}) if redraw else None
    )
    cells = []
    for figure in figure_names(name):
        picture = svg(figure)
        if redraw is not None and picture == own:
            lead = N_("The cell below draws the graph from its numbers: change them and run it to redraw it.")
            cells.append(nbformat.v4.new_markdown_cell(_say(lead)))
            cells.append(_figure_cell(redraw, picture, nbformat))
            redraw = None
        else:
            cells.append(_figure_cell(f'SVG(svg("{figure}"))', picture, nbformat))
    return cells


# The sentence before a derivation's live figures; the saved notebook shows the static ones above
# (GitHub runs no widget), a kernel draws these.
EXPLORE_LEAD = N_("Change the numbers and watch every value move:")


def explore_source(name: str) -> str:
    """The cell that shows a derivation's figures live, as a widget."""
    return f'symbolic.derive("{name}").explore()'


def _derived_cells(part: Part, item: Derived, nbformat: Any) -> list[Any]:
    """A derivation under its book section: the heading, its figures, the derivation."""
    import re

    from chainrule import symbolic
    from chainrule.codegen.i18n import translate

    v4 = nbformat.v4
    d = symbolic.derive(item.name)
    # A derivation that is its section's whole subject goes under the section's heading.
    cells = (
        [] if item.number == part.number else [v4.new_markdown_cell(f"## {item.number} {translate(d.title)}")]
    )
    cells += _figure_cells(item.name, nbformat)
    if item.live:
        cells.append(v4.new_markdown_cell(_say(EXPLORE_LEAD)))
        cells.append(v4.new_code_cell(explore_source(item.name)))
    # The derivation's own heading is the one above, with the book's section number.
    cells.append(
        v4.new_markdown_cell(re.sub(r"\A## [^\n]*\n+", "", symbolic.derive(item.name).markdown().strip()))
    )
    return cells


def listing(target: str) -> str:
    """The source of a generated class or method, ``"MulLayer"`` or ``"TwoLayerNet.gradient"``, as chainrule wrote it."""
    import importlib
    import inspect
    import textwrap

    owner, _dot, member = target.partition(".")
    module = "chainrule.generated.two_layer_net" if owner == "TwoLayerNet" else "chainrule.generated.layers"
    obj = getattr(importlib.import_module(module), owner)
    return textwrap.dedent(inspect.getsource(getattr(obj, member) if member else obj)).strip()


def exercise_blanks() -> tuple[str, ...]:
    """The backward values of 図5-15 the reader fills in, in the backward pass's order (the book's names)."""
    from chainrule.codegen.model import shopping_model

    layers = shopping_model(EXERCISE)["layers"]
    return tuple(g for layer in reversed(layers) for g in layer.grads)


def exercise_values() -> dict[str, float]:
    """The backward values of 図5-15 as the generated layers compute them, forward then backward."""
    import importlib

    from chainrule import symbolic
    from chainrule.codegen.model import shopping_model

    generated = importlib.import_module("chainrule.generated.layers")
    example = symbolic.derive(EXERCISE).examples[0]
    model = shopping_model(EXERCISE)
    values: dict[str, Any] = {v.name: float(value) for v, value in example.inputs}
    objects = {}
    for layer in model["layers"]:
        objects[layer.name] = getattr(generated, layer.cls)()
        values[layer.out] = objects[layer.name].forward(*(values[name] for name in layer.inputs))
    grads: dict[str, Any] = {"d" + model["output"]: float(example.seed)}
    for layer in reversed(model["layers"]):
        grads.update(zip(layer.grads, objects[layer.name].backward(grads["d" + layer.out]), strict=True))
    return {name: float(grads[name]) for name in exercise_blanks()}


def check_figure_5_15(answers: dict[str, Any]) -> bool:
    """Say which of the reader's backward values of 図5-15 are right, compared with the generated layers'."""
    import math

    values = exercise_values()
    right = 0
    for name, value in values.items():
        given = answers.get(name) if isinstance(answers, dict) else None
        if given is None:
            print(_("{name}: not filled in yet", name=name))
            continue
        try:
            ok = math.isclose(float(given), value, rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            ok = False
        right += ok
        if ok:
            print(_("{name} = {given}: right", name=name, given=given))
        else:
            print(
                _(
                    "{name} = {given}: not right; multiply the derivative from upstream by the node's local derivative",
                    name=name,
                    given=given,
                )
            )
    if right == len(values):
        print(_("All {count} right: 図5-15 is complete.", count=len(values)))
    else:
        print(_("{right} of {count} right.", right=right, count=len(values)))
    return right == len(values)


def _exercise_cells(nbformat: Any) -> list[Any]:
    """The book's exercise of 図5-15: the question, the blanks, and the cell that checks them."""
    from chainrule import symbolic
    from chainrule.codegen.model import _float_literal

    v4 = nbformat.v4
    example = symbolic.derive(EXERCISE).examples[0]
    inputs = dict(example.inputs)
    forward = ", ".join(
        f"`{v.name} = {_float_literal(value)}`" for v, value in example.forward if v not in inputs
    )
    question = _say(
        N_(
            "Fill in the boxes of 図5-15: the derivative of the price with respect to each value of "
            "Problem 2, going backward from `dprice = 1`. The forward values are those of 図5-3: {forward}. "
            "Replace each `None` below by your number, then run the checking cell."
        )
    ).replace("{forward}", forward)
    blanks = "\n".join(f'    "{name}": None,' for name in exercise_blanks())
    heading = _say(N_("Exercise: 図5-15"))
    return [
        v4.new_markdown_cell(f"### {heading}\n\n{question}"),
        v4.new_code_cell(f"answers = {{\n{blanks}\n}}"),
        v4.new_markdown_cell(_say(N_("Check your answers against the values of the generated layers:"))),
        v4.new_code_cell(
            "from chainrule.commands.notebook import check_figure_5_15\n\ncheck_figure_5_15(answers)"
        ),
    ]


def _cells(part: Part, item: Item, nbformat: Any) -> list[Any]:
    """The cells of one item of a section."""
    v4 = nbformat.v4
    if isinstance(item, Derived):
        return _derived_cells(part, item, nbformat)
    if isinstance(item, Heading):
        return [v4.new_markdown_cell(f"## {item.number} {_say(item.title)}")]
    if isinstance(item, Listing):
        return [v4.new_markdown_cell(f"{_say(item.lead)}\n\n```python\n{listing(item.source)}\n```")]
    if isinstance(item, Exercise):
        return _exercise_cells(nbformat)
    return [v4.new_markdown_cell(_say(item.lead)), v4.new_code_cell(item.source)]


def build() -> Any:
    """The chapter as an nbformat notebook (version 4), every cell's id fixed so the file is reproducible."""
    import nbformat

    v4 = nbformat.v4
    cells = [v4.new_markdown_cell(_say(INTRO)), v4.new_code_cell(setup())]
    for part in chapter():
        cells.append(v4.new_markdown_cell(f"# {part.number} {_say(part.title)}\n\n{_say(part.text)}"))
        for item in part.items:
            cells += _cells(part, item, nbformat)
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
    from chainrule.console import cannot_write, output
    from chainrule.fs.ledger import check_output

    try:
        check_output(args.output)  # before the work: a folder, a device or a file of yours fails at once
    except OSError as exc:
        raise cannot_write(args.output, exc) from None
    output(notebook_text(), args.output)
    return 0
