"""The floors: symbolic/ derives, codegen/ prints, generated/ runs, chainrule/ writes and calls down.

Every import in the source is read, those inside functions too, and resolved to the module it
names. An import may go down a floor or stay on its own, never up, and no module reaches itself
again by any chain of imports. symbolic/ uses only SymPy and the standard library, generated/ only
NumPy and the standard library. The one import that goes up is a derivation's display in a
notebook (its LaTeX, Markdown, figure and HTML), loaded from codegen/ when it is asked for.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Where each floor's source is, and the name it installs under.
FLOORS = {
    "symbolic": "chainrule.symbolic",
    "codegen": "chainrule.codegen",
    "generated": "chainrule.generated",
    "chainrule": "chainrule",
}
# What each floor may import of the others.
BELOW = {
    "symbolic": {"symbolic"},
    "generated": {"generated"},
    "codegen": {"codegen", "symbolic"},
    "chainrule": {"chainrule", "codegen", "symbolic", "generated"},
}
# What each floor may import from outside the project, beyond the standard library (None: anything).
OUTSIDE = {
    "symbolic": {"sympy", "mpmath"},
    "generated": {"numpy"},
    "codegen": {
        "sympy",
        "mpmath",
        "jinja2",
        "markupsafe",
        "babel",
        "latex2mathml",
        "ruff",
        "anywidget",
        "traitlets",
    },
    "chainrule": None,
}
# What writes to the disk: the floors below the shell return what they make and write nothing.
WRITES = {"write_text", "write_bytes", "mkdir", "unlink", "rmdir", "touch", "symlink_to", "hardlink_to"}
WRITES_IN = {
    "os": {"replace", "rename", "unlink", "remove", "makedirs", "mkdir", "rmdir", "link", "symlink"},
    "shutil": {"rmtree", "copy", "copyfile", "copytree", "move"},
}
# The one edge up: the display a derivation loads when a notebook or a user asks it to show itself.
DISPLAY = ("chainrule.symbolic.core", "chainrule.codegen.display")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function: run when the function is called, not when the module loads


def modules(root: Path = ROOT) -> dict[str, tuple[str, Path]]:
    """Every module of the source, by its installed name: (floor, file)."""
    found = {}
    for floor, name in FLOORS.items():
        for path in sorted((root / floor).rglob("*.py")):
            parts = path.relative_to(root / floor).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = (floor, path)
    return found


def floor_of(module: str, known: dict[str, tuple[str, Path]]) -> str:
    return known[module][0]


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known) -> list[str]:
    """The modules an import statement names: the deepest known module of each name."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            prefix = ".".join([*base, *([node.module] if node.module else [])])
        else:
            prefix = node.module or ""
        names = [
            f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names
        ]
    out = []
    for name in names:
        parts = name.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        out.append(".".join(parts) if parts else name)
    return out


def _named_imports(tree: ast.AST) -> list[ast.ImportFrom]:
    """``importlib.import_module("name")`` and ``__import__("name")`` with a literal name, as import statements."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(ast.copy_location(ast.Import(names=[ast.alias(node.args[0].value)]), node))
    return found


def _lazy_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines.update(n.lineno for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return lines


def edges(root: Path = ROOT) -> list[Edge]:
    """Every import in the source, resolved: to a module of ours, or to an outside top-level name."""
    known = modules(root)
    found = []
    for module, (_floor, path) in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        lazy = _lazy_lines(tree)
        for node in [*ast.walk(tree), *_named_imports(tree)]:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path.name == "__init__.py", node, known):
                    if target != module:
                        found.append(Edge(module, target, node.lineno, node.lineno in lazy))
    return found


def upward(root: Path = ROOT) -> list[str]:
    """Imports that go up a floor, or out of the project to what the floor may not use."""
    known = modules(root)
    wrong = []
    for edge in edges(root):
        floor = floor_of(edge.source, known)
        where = f"{known[edge.source][1].relative_to(root)}:{edge.line}"
        if edge.target in known:
            if floor_of(edge.target, known) not in BELOW[floor]:
                if (edge.source, edge.target) == DISPLAY and edge.lazy:
                    continue
                wrong.append(f"{where}: {edge.source} imports {edge.target}")
        else:
            top = edge.target.split(".")[0]
            allowed = OUTSIDE[floor]
            if allowed is not None and top not in allowed and top not in sys.stdlib_module_names:
                wrong.append(f"{where}: {edge.source} imports {top}")
    return wrong


def circles(root: Path = ROOT) -> list[list[str]]:
    """The groups of modules that reach one another through imports (Tarjan's strongly connected components)."""
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for edge in edges(root):
        if edge.target in known and (edge.source, edge.target) != DISPLAY:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_no_import_goes_up_a_floor() -> None:
    assert upward() == []


def writes(root: Path = ROOT) -> list[str]:
    """Calls that write to the disk, or open a file for writing, below the shell."""
    found = []
    for module, (floor, path) in modules(root).items():
        if floor == "chainrule":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            mode = node.args[1] if name == "open" and len(node.args) > 1 else None
            mode = next((k.value for k in node.keywords if k.arg == "mode"), mode) if name == "open" else None
            opened = (
                isinstance(mode, ast.Constant)
                and isinstance(mode.value, str)
                and set(mode.value) & set("wax+")
            )
            owner = getattr(node.func, "value", None)
            of = WRITES_IN.get(owner.id, set()) if isinstance(owner, ast.Name) else set()
            if name in WRITES or name in of or opened:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {module} calls {name}")
    return found


def test_only_the_shell_writes() -> None:
    assert writes() == []


def test_no_import_circle() -> None:
    assert circles() == []


def test_the_walk_sees_lazy_imports_and_every_floor(tmp_path: Path) -> None:
    """The walk itself: a lazy import up, a circle and a forbidden library are each found."""
    for floor in FLOORS:
        (tmp_path / floor).mkdir()
        (tmp_path / floor / "__init__.py").write_text("")
    (tmp_path / "symbolic" / "a.py").write_text("def f():\n    from chainrule.codegen import b\n")
    (tmp_path / "codegen" / "b.py").write_text("from chainrule.codegen import c\n")
    (tmp_path / "codegen" / "c.py").write_text("def g():\n    from . import b\n")
    (tmp_path / "generated" / "d.py").write_text("import numpy\nimport sympy\n")
    (tmp_path / "generated" / "e.py").write_text("import importlib\nimportlib.import_module('matplotlib')\n")
    (tmp_path / "codegen" / "f.py").write_text("import requests\nopen('x', 'w').write('1')\n")
    assert upward(tmp_path) == [
        "symbolic/a.py:2: chainrule.symbolic.a imports chainrule.codegen.b",
        "codegen/f.py:1: chainrule.codegen.f imports requests",
        "generated/d.py:2: chainrule.generated.d imports sympy",
        "generated/e.py:2: chainrule.generated.e imports matplotlib",
    ]
    assert writes(tmp_path) == ["codegen/f.py:2: chainrule.codegen.f calls open"]
    assert circles(tmp_path) == [["chainrule.codegen.b", "chainrule.codegen.c"]]


@pytest.mark.parametrize("floor", ["symbolic", "codegen", "generated"])
def test_each_floor_loads_without_the_ones_above(floor: str) -> None:
    """Importing a floor's every module in a fresh interpreter loads nothing of the floors above it."""
    import subprocess

    known = modules()
    names = sorted(m for m, (f, _p) in known.items() if f == floor)
    above = sorted({FLOORS[f] for f in FLOORS if f not in BELOW[floor] and f != "chainrule"})
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.startswith('chainrule.') and m.split('.')[1] not in "
        f"{[n.split('.')[1] for n in BELOW_NAMES(floor)]!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", (above, done.stdout)


def BELOW_NAMES(floor: str) -> list[str]:
    return [FLOORS[f] for f in BELOW[floor] if f != "chainrule"]
