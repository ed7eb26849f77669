"""The names a user's layer may not take, read from the package the generator renders.

Read, not typed: when a template gains a kernel or a layer gains an attribute, the
names refused to a spec follow.
"""

from __future__ import annotations

import ast
from functools import cache

from chainrule.symbolic.shipped import SHIPPED


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
    """(module-level names of every generated module, names used by the layers made from specs).

    Read from the package rendered with the shipped specs alone; the shipped layers' own
    constants (``alpha``) are a layer's to choose, so they are not among the second set.
    """
    from chainrule.codegen.generate import render_all

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
