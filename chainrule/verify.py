"""``chainrule verify``: every generated gradient against SymPy and against central differences."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import sympy as sp

from codegen.model import Catalog, LayerSpec, catalog
from codegen.numpy_printer import NumpyPrinter
from symbolic.core import Derivation
from symbolic.spec import Spec

TOL_SYMBOLIC = 1e-12
TOL_NUMERIC = 1e-6
STEP = 1e-6
# How the symbolic side evaluates the few functions SymPy does not know: their
# plain definitions, independent of the generated kernels being checked.
SYMBOLIC_NAMESPACE = {
    "np": np,
    "one_hot": lambda t, k: np.eye(k)[t],
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
}


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the larger array's largest entry."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


@dataclass(frozen=True)
class Case:
    """A layer with random float64 inputs: what to construct, feed forward and send back."""

    label: str
    spec: LayerSpec
    derivation: Derivation
    inputs: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    variant: bool = False


@dataclass(frozen=True)
class GradientCheck:
    """One gradient of one layer: the three pairwise relative errors."""

    case: str
    grad: str
    gen_sym: float
    gen_num: float
    sym_num: float

    @property
    def ok(self) -> bool:
        return self.gen_sym <= TOL_SYMBOLIC and self.gen_num <= TOL_NUMERIC and self.sym_num <= TOL_NUMERIC


@dataclass(frozen=True)
class HygieneCheck:
    """One of gradcheck's hygiene properties for one layer."""

    case: str
    name: str
    ok: bool


def _away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.1 from 0, where ReLU-like layers have their kink."""
    return rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def cases(rng: np.random.Generator, cat: Catalog | None = None) -> list[Case]:
    """Random inputs for every layer of the catalog (the chapter's and the shipped ones by default)."""
    cat = cat or catalog()
    n, c = 4, 5
    out = []
    for spec, d in zip(cat.layers, cat.derivations, strict=True):
        if spec.derivation in ("mul", "add"):
            out.append(
                Case(spec.cls, spec, d, {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=(3, 4))}, {})
            )
        elif spec.derivation == "affine":
            params = {"W": rng.normal(size=(6, 3)), "b": rng.normal(size=3)}
            out.append(Case(spec.cls, spec, d, {"x": rng.normal(size=(2, 1, 2, 3))}, params))
        elif spec.labels or spec.loss:
            name = spec.inputs[0]
            classes = rng.integers(0, c, size=n)
            scores = rng.uniform(0.05, 0.95, size=(n, c)) if spec.loss else rng.normal(size=(n, c))
            out.append(Case(f"{spec.cls} (one-hot)", spec, d, {name: scores}, {}, labels=np.eye(c)[classes]))
            out.append(
                Case(
                    f"{spec.cls} (labels)",
                    spec,
                    d,
                    {name: scores.copy()},
                    {},
                    labels=classes,
                    variant=bool(d.variants),
                )
            )
        else:
            out.append(Case(spec.cls, spec, d, {"x": _away_from_kinks(rng, (3, 4)) * 1.5}, {}))
    return out


def _make(module: ModuleType, case: Case) -> object:
    cls = getattr(module, case.spec.cls)
    return cls(*(case.params[p].copy() for p in case.spec.params))


def _forward(layer: object, case: Case, inputs: dict[str, np.ndarray]) -> np.ndarray:
    args = [inputs[name] for name in case.spec.inputs if name != "t"]
    if case.labels is not None:
        args.append(case.labels)
    return layer.forward(*args)  # type: ignore[attr-defined]


def _backward(layer: object, case: Case, dout: np.ndarray | float) -> dict[str, np.ndarray]:
    """Every gradient the layer gives: returned ones by input name, parameter ones from dW, db."""
    returned = layer.backward(dout)  # type: ignore[attr-defined]
    if not isinstance(returned, tuple):
        returned = (returned,)
    names = [f"d{i}" for i in case.spec.inputs if i != "t"]
    out = dict(zip(names, returned, strict=True))
    for p in case.spec.params:
        out[f"d{p}"] = getattr(layer, f"d{p}")
    return out


def _symbolic(layer: object, case: Case, dout: np.ndarray | float) -> dict[str, np.ndarray]:
    """The derivation's backward expressions evaluated on the layer's cached values."""
    d = case.derivation
    grads = d.variants[0][1] if case.variant else d.backward
    out = {}
    for g in grads:
        args = sorted(g.expr.free_symbols, key=lambda s: s.name)
        f = sp.lambdify(
            args,
            g.expr,
            modules=[SYMBOLIC_NAMESPACE, "numpy"],
            printer=NumpyPrinter,
        )
        values = [_value(layer, a.name, dout) for a in args]
        result = np.asarray(f(*values), dtype=np.float64)
        shape = case.inputs[g.wrt.name].shape if g.wrt.name in case.inputs else case.params[g.wrt.name].shape
        out[g.name] = np.broadcast_to(result, shape) if result.ndim == 0 else result.reshape(shape)
    return out


def _value(layer: object, name: str, dout: np.ndarray | float) -> object:
    if name == "dout":
        return dout
    if name in ("N", "batch_size"):
        return getattr(layer, "x", None).shape[0] if hasattr(layer, "x") else layer.y.shape[0]  # type: ignore[attr-defined]
    if name == "n_classes":
        return layer.y.shape[1]  # type: ignore[attr-defined]
    return getattr(layer, name)


def _numeric(module: ModuleType, case: Case, dout: np.ndarray | float) -> dict[str, np.ndarray]:
    """Central differences of sum(dout * forward) for every input and parameter."""

    def objective(inputs: dict[str, np.ndarray], params: dict[str, np.ndarray]) -> float:
        layer = _make(module, dataclasses.replace(case, inputs=inputs, params=params))
        return float(np.sum(dout * _forward(layer, case, inputs)))

    out = {}
    for group, which in ((case.inputs, "input"), (case.params, "param")):
        for name, array in group.items():
            grad = np.zeros_like(array)
            for i in np.ndindex(array.shape):
                values = {}
                for sign in (1, -1):
                    moved = {k: v.copy() for k, v in group.items()}
                    moved[name][i] += sign * STEP
                    inputs = moved if which == "input" else case.inputs
                    params = moved if which == "param" else case.params
                    values[sign] = objective(inputs, params)
                grad[i] = (values[1] - values[-1]) / (2 * STEP)
            out[f"d{name}"] = grad
    return out


def _upstream(layer_out: np.ndarray, rng: np.random.Generator) -> np.ndarray | float:
    return float(rng.normal()) if np.ndim(layer_out) == 0 else rng.normal(size=np.shape(layer_out))


def check_case(
    module: ModuleType, case: Case, rng: np.random.Generator
) -> tuple[list[GradientCheck], list[HygieneCheck]]:
    """All three comparisons and the hygiene checks for one layer."""
    layer = _make(module, case)
    before = {k: v.copy() for k, v in case.inputs.items()}
    out = _forward(layer, case, case.inputs)
    dout = _upstream(out, rng)
    dout_copy = copy.deepcopy(dout)
    gen = _backward(layer, case, dout)
    sym = _symbolic(layer, case, dout)
    num = _numeric(module, case, dout)
    grads = [
        GradientCheck(
            case.label,
            name,
            rel_error(gen[name], sym[name]),
            rel_error(gen[name], num[name]),
            rel_error(sym[name], num[name]),
        )
        for name in sorted(gen)
    ]

    def again(d: np.ndarray | float) -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in _backward(layer, case, d).items()}

    d1, d2 = _upstream(out, rng), _upstream(out, rng)
    a, b = 0.75, -1.5
    combined = again(a * np.asarray(d1) + b * np.asarray(d2) if np.ndim(out) else a * d1 + b * d2)
    first, second = again(d1), again(d2)
    repeat = (again(d1), again(d1))
    zero = again(np.zeros_like(d1) if np.ndim(out) else 0.0)
    hygiene = [
        HygieneCheck(case.label, "dout unchanged", bool(np.array_equal(dout, dout_copy))),
        HygieneCheck(
            case.label, "input unchanged", all(np.array_equal(case.inputs[k], before[k]) for k in before)
        ),
        HygieneCheck(
            case.label,
            "linear in dout",
            all(rel_error(combined[k], a * first[k] + b * second[k]) <= TOL_SYMBOLIC * 10 for k in combined),
        ),
        HygieneCheck(
            case.label, "repeatable", all(np.array_equal(repeat[0][k], repeat[1][k]) for k in repeat[0])
        ),
        HygieneCheck(case.label, "zero in, zero out", all(not np.any(zero[k]) for k in zero)),
    ]
    return grads, hygiene


def results(
    module_name: str = "generated.layers", seed: int = 0, cat: Catalog | None = None
) -> tuple[list[GradientCheck], list[HygieneCheck]]:
    """Every gradient comparison and hygiene check of a generated module's layers, in table order."""
    module = importlib.import_module(module_name)
    rng = np.random.default_rng(seed)
    all_grads: list[GradientCheck] = []
    all_hygiene: list[HygieneCheck] = []
    for case in cases(rng, cat):
        grads, hygiene = check_case(module, case, rng)
        all_grads += grads
        all_hygiene += hygiene
    return all_grads, all_hygiene


def run(
    module_name: str = "generated.layers",
    seed: int = 0,
    echo: Callable[[str], object] = print,
    cat: Catalog | None = None,
) -> bool:
    """Check every layer of a generated module; print the table; True when all pass."""
    all_grads, all_hygiene = results(module_name, seed, cat)
    echo(
        f"max relative error (float64): generated~symbolic <= {TOL_SYMBOLIC:g}, ~central differences <= {TOL_NUMERIC:g}"
    )
    echo(f"{'layer':<26} {'grad':<5} {'gen~sym':>9} {'gen~num':>9} {'sym~num':>9}  result")
    for g in all_grads:
        echo(
            f"{g.case:<26} {g.grad:<5} {g.gen_sym:9.1e} {g.gen_num:9.1e} {g.sym_num:9.1e}  {'pass' if g.ok else 'FAIL'}"
        )
    echo("")
    names = list(dict.fromkeys(h.name for h in all_hygiene))
    echo(f"{'hygiene':<26} " + "  ".join(names))
    for label in dict.fromkeys(h.case for h in all_hygiene):
        row = {h.name: h.ok for h in all_hygiene if h.case == label}
        echo(
            (f"{label:<26} " + "  ".join(f"{'pass' if row[n] else 'FAIL':<{len(n)}}" for n in names)).rstrip()
        )
    ok = all(g.ok for g in all_grads) and all(h.ok for h in all_hygiene)
    failed = sum(not g.ok for g in all_grads) + sum(not h.ok for h in all_hygiene)
    echo("")
    echo("all checks pass" if ok else f"{failed} checks FAILED")
    return ok


def import_package(folder: Path) -> str:
    """Import a generated package from any folder under a private name; return the name."""
    name = f"_chainrule_package_{abs(hash(str(folder.resolve())))}"
    if not (folder / "__init__.py").is_file():
        raise ImportError(f"{folder} is not a generated package (no __init__.py)")
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"{folder} is not a generated package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]  # a half-imported package must not be found by the next import
        raise
    return name


def verify_package(
    folder: Path, specs: tuple[Spec, ...], echo: Callable[[str], object] | None = None
) -> None:
    """Verify a generated package with a user's layers; GenerateError (one line) if anything fails."""
    from codegen.generate import GenerateError

    try:
        name = import_package(folder)
    except Exception as exc:  # the staged code itself does not import: say so in one line
        raise GenerateError(f"the generated package does not import: {exc}") from None
    lines: list[str] = []
    ok = run(f"{name}.layers", echo=lines.append, cat=catalog(specs))
    for line in lines:
        (echo or (lambda text: print(text, file=sys.stderr)))(line)
    if not ok:
        failed = [line.split()[0] for line in lines if line.endswith("FAIL")]
        raise GenerateError(f"verify failed for {', '.join(dict.fromkeys(failed))}: nothing was written")


def failing_derivations(module: ModuleType, cat: Catalog | None = None, seed: int = 0) -> list[str]:
    """The derivations whose layers in ``module`` fail any check of ``chainrule verify``; empty when all pass."""
    rng = np.random.default_rng(seed)
    failed: dict[str, None] = {}
    for case in cases(rng, cat):
        grads, hygiene = check_case(module, case, rng)
        if not all(g.ok for g in grads) or not all(h.ok for h in hygiene):
            failed[case.derivation.name] = None
    return list(failed)
