"""Render every generated file, formatted, as text: the package by its paths, nothing written."""

from __future__ import annotations

import ast
import os
import subprocess
from functools import cache

import jinja2
from ruff.__main__ import find_ruff_bin

from chainrule.codegen import model
from chainrule.codegen.environment import render, shell_quote
from chainrule.codegen.i18n import _, message_of
from chainrule.symbolic.names import check_names
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import Spec, SpecError

LINE_LENGTH = 110

# A package made from a spec file keeps a copy of it under this name, so that it can be
# verified and regenerated with nothing but its folder.
SPEC_FILE = "spec.toml"
SOURCE_REGENERATE = "change symbolic/ or codegen/templates/, then run `chainrule generate`"


class GenerateError(Exception):
    """Generation failed; generated/ was left as it was."""


def regenerate_command(package: str) -> str:
    """The header's instruction for a package made from a spec: the command that remakes it."""
    return f"change {SPEC_FILE}, then run `chainrule generate --package {shell_quote(package)}`"


def render_all(
    specs: tuple[Spec, ...] = (), regenerate: str = SOURCE_REGENERATE, package: str | None = None
) -> dict[str, str]:
    """Every generated file, by its path inside the package, before formatting.

    ``regenerate`` is what the headers tell a reader to do instead of editing; ``package``
    names a package made from a spec, whose script then trains that package's own layers.
    """
    cat = catalog(specs)
    names = ", ".join(s.derivation for s in cat.layers)
    r = regenerate
    files = {
        "__init__.py": render("__init__.py.jinja", regenerate=r),
        "layers.py": render(
            "layers.py.jinja", layers=cat.models(), kernels=cat.kernels(), derivations=names, regenerate=r
        ),
        "multi_layer_net.py": render(
            "multi_layer_net.py.jinja",
            activations=cat.activations(),
            step=model.multi_layer_step(),
            regenerate=r,
        ),
        "buy_apple.py": render("shopping.py.jinja", **model.shopping_model("apples"), regenerate=r),
        "buy_apple_orange.py": render(
            "shopping.py.jinja", **model.shopping_model("apples_oranges"), regenerate=r
        ),
        "two_layer_net.py": render(
            "two_layer_net.py.jinja",
            affines=model.two_layer_affines(),
            step=model.two_layer_step(),
            scores=model.two_layer_scores(),
            scores_buffered=model.two_layer_scores_buffered(),
            regenerate=r,
        ),
        "gradient_check.py": render("gradient_check.py.jinja", regenerate=r),
        "train_neuralnet.py": render("train_neuralnet.py.jinja", package=package, regenerate=r),
    }
    return dict(sorted(files.items()))


def catalog(specs: tuple[Spec, ...] = ()) -> model.Catalog:
    """``model.catalog``, once no user spec takes a name the package already uses (``package_names``)."""
    if specs:  # the package's own names are read from a render with the shipped specs alone
        check_names([*SHIPPED, *specs], *package_names())
    return model.catalog(specs)


def _bound_at_top(node: ast.stmt) -> set[str]:
    """The names a module-level statement binds: imports, functions, classes, assignments."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used_in_class(cls: ast.ClassDef) -> set[str]:
    """Every name a class's code uses: its methods, their arguments and locals, its ``self.`` attributes."""
    names: set[str] = set()
    for n in ast.walk(cls):
        if isinstance(n, ast.FunctionDef):
            names.add(n.name)
        elif isinstance(n, ast.arg):
            names.add(n.arg)
        elif isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
            names.add(n.attr)
    return names


@cache
def package_names() -> tuple[frozenset[str], frozenset[str]]:
    """The names a user's layer may not take: (every generated module's top-level names, the spec layers' own).

    Read, not typed, from the package rendered with the shipped specs alone, so they follow the templates;
    the shipped layers' constants (``alpha``) are a layer's to choose, so not among the second set.
    """
    module: set[str] = set()
    members: set[str] = set()
    spec_classes = {s.name for s in SHIPPED}
    for rel, text in render_all().items():
        if not rel.endswith(".py"):
            continue
        tree = ast.parse(text)
        for node in tree.body:
            module |= _bound_at_top(node)
            if isinstance(node, ast.ClassDef) and rel == "layers.py" and node.name in spec_classes:
                members |= _used_in_class(node)
    members -= {c for s in SHIPPED for c, _ in s.constants}
    return frozenset(module), frozenset(members)


def rendered(specs: tuple[Spec, ...] = (), package: str | None = None) -> dict[str, str]:
    """render_all (``package``: one made from a spec file), a bad spec or template as a one-line GenerateError."""
    try:
        return (
            render_all(specs) if package is None else render_all(specs, regenerate_command(package), package)
        )
    except SpecError as exc:
        raise GenerateError(message_of(exc)) from None
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if getattr(exc, "lineno", None) else ""
        raise GenerateError(_("template error: {where}{message}", where=where, message=exc.message)) from None


def format_python(text: str, name: str) -> str:
    """Sort imports, then format, with the pinned ruff and no user configuration, so output never varies."""
    # --no-cache: ruff would otherwise leave a .ruff_cache/ in the current folder.
    common = ["--isolated", "--no-cache", "--line-length", str(LINE_LENGTH), "--quiet"]
    common += ["--stdin-filename", name, "-"]
    data, ruff = text.encode("utf-8"), os.fsdecode(find_ruff_bin())
    for cmd in ([ruff, "check", "--select", "I,F401", "--fix", *common], [ruff, "format", *common]):
        proc = subprocess.run(cmd, input=data, capture_output=True)
        if proc.returncode != 0:
            first = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
            raise GenerateError(
                _(
                    "ruff could not format the generated code: {reason}",
                    reason=first[0] if first else proc.returncode,
                )
            )
        data = proc.stdout
    return data.decode("utf-8")


def package_files(specs: tuple[Spec, ...] = (), package: str | None = None) -> dict[str, str]:
    """Every file of the package by its path inside it, rendered and formatted (see ``rendered``)."""
    return {
        rel: format_python(text, rel) if rel.endswith(".py") else text
        for rel, text in rendered(specs, package).items()
    }
