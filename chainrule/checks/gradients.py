"""``chainrule verify``: every generated gradient against SymPy and against central differences."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import sympy as sp

from chainrule.checks.accuracy import RESULTS, _pad
from chainrule.checks.reference import reference_value
from chainrule.codegen.i18n import _, columns
from chainrule.codegen.model import Catalog, LayerSpec, catalog
from chainrule.packages.importer import import_package
from chainrule.packages.marker import PackageError
from chainrule.symbolic.core import Derivation
from chainrule.symbolic.softmax_loss import OneHot
from chainrule.symbolic.spec import Spec

TOL_SYMBOLIC = 1e-12
TOL_NUMERIC = 1e-6
STEP = 1e-6


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the larger array's largest entry.

    Infinite when either side has a non-real or non-finite entry: a layer is
    real-valued, and verify's inputs keep every reference finite.
    """
    a, b = np.asarray(a), np.asarray(b)
    for side in (a, b):
        if side.dtype.kind not in "biuf" and not (side.dtype.kind == "c" and np.all(side.imag == 0)):
            return math.inf
    a, b = np.real(a).astype(np.float64), np.real(b).astype(np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.inf
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
    kinks: tuple[float, ...] = ()  # where an activation's derivative jumps: checked against the derivation


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
    at: float | None = None  # for "finite at the edges": the x where it is not


def _away_from_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.1 from 0, where ReLU-like layers have their kink."""
    return rng.uniform(0.1, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)


KINK_MARGIN = 0.05  # central differences with STEP = 1e-6 never straddle a kink this far away


def kinks(forward: sp.Basic, constants: dict[str, float]) -> tuple[float, ...]:
    """The real x where an element-wise forward switches branch: conditions, abs, max, min, sign."""
    xs = [v for v in forward.free_symbols if v.name == "x"]
    if not xs:
        return ()
    x = xs[0]
    forward = forward.subs({v: constants[v.name] for v in forward.free_symbols if v.name in constants})
    boundaries = []
    for part in sp.preorder_traversal(forward):
        if isinstance(part, sp.Abs | sp.sign | sp.Heaviside):
            boundaries.append(part.args[0])
        elif isinstance(part, sp.Max | sp.Min):
            boundaries += [a - b for a in part.args for b in part.args if a != b]
        elif isinstance(part, sp.Rel):
            boundaries.append(part.lhs - part.rhs)
    points: set[float] = set()
    for g in boundaries:
        if x not in g.free_symbols:
            continue
        try:
            solutions = sp.solve(g, x)
        except (NotImplementedError, ValueError):
            continue
        points |= {float(v) for v in solutions if v.is_number and v.is_real}
    return tuple(sorted(points))


def _clear_of(values: np.ndarray, points: tuple[float, ...]) -> np.ndarray:
    """``values`` with every entry within KINK_MARGIN of a kink moved 2 margins away from it."""
    out = values.copy()
    for k in points:
        near = np.abs(out - k) < KINK_MARGIN
        out[near] = k + 2 * KINK_MARGIN * np.where(out[near] >= k, 1.0, -1.0)
    return out


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
            out.append(
                Case(
                    _("{layer} (one-hot)", layer=spec.cls),
                    spec,
                    d,
                    {name: scores},
                    {},
                    labels=np.eye(c)[classes],
                )
            )
            if spec.labels:  # rows of class probabilities that are not one-hot: the loss is -sum t log y
                soft = rng.dirichlet(np.ones(c), size=n)
                out.append(
                    Case(_("{layer} (soft)", layer=spec.cls), spec, d, {name: scores.copy()}, {}, labels=soft)
                )
            out.append(
                Case(
                    _("{layer} (labels)", layer=spec.cls),
                    spec,
                    d,
                    {name: scores.copy()},
                    {},
                    labels=classes,
                    variant=bool(d.variants),
                )
            )
        else:
            at = kinks(d.forward[0].rhs[-1], dict(spec.constants))
            x = _clear_of(_away_from_kinks(rng, (3, 4)) * 1.5, at)
            out.append(Case(spec.cls, spec, d, {"x": x}, {}, kinks=at))
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
    """The derivation's backward expressions evaluated on the layer's cached values, at 50 digits.

    The reference never goes through the printer that wrote the code it checks:
    ``reference_value`` walks the SymPy tree itself with mpmath.
    """
    d = case.derivation
    grads = d.variants[0][1] if case.variant else d.backward
    cached = _cache_from_derivation(case)
    out = {}
    for g in grads:
        env = {a.name: cached.get(a.name, _value(layer, a.name, dout)) for a in _names(g.expr)}
        if "dout" in env:
            env["dout"] = dout
        result = reference_value(g.expr, env)
        shape = case.inputs[g.wrt.name].shape if g.wrt.name in case.inputs else case.params[g.wrt.name].shape
        out[g.name] = np.broadcast_to(result, shape) if result.ndim == 0 else result.reshape(shape)
    return out


def _cache_from_derivation(case: Case) -> dict[str, object]:
    """An activation's cache (mask, output) computed from its input by the derivation, not read from the layer.

    So a layer that caches the wrong thing (a mask ``x < 0`` for ``x <= 0``) is caught.
    """
    if set(case.inputs) != {"x"} or case.params or not case.kinks and not case.derivation.compute:
        return {}
    env: dict[str, object] = {"x": case.inputs["x"]}
    try:
        for step in case.derivation.compute:
            env[step.target.name] = reference_value(step.expr, env)
    except (NotImplementedError, KeyError):
        return {}
    return env


def _names(expr: sp.Basic) -> set[sp.Basic]:
    """Every symbol and matrix symbol the expression reads, and the sizes of the matrices it builds."""
    if isinstance(expr, sp.Symbol | sp.MatrixSymbol):
        return {expr}  # a matrix symbol's shape is read from its value, not from the layer
    found: set[sp.Basic] = set()
    if isinstance(expr, sp.OneMatrix | OneHot):
        found = {s for dim in expr.shape for s in sp.sympify(dim).free_symbols}
    for arg in expr.args:
        if isinstance(arg, sp.Basic):
            found |= _names(arg)
    return found


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
        value = complex(np.sum(dout * _forward(layer, case, inputs)))
        return value.real if value.imag == 0 else math.nan  # a complex forward has no real gradient

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


def _at_kinks(module: ModuleType, case: Case) -> dict[str, float]:
    """Generated vs the derivation with every input exactly at a kink: the stated convention holds there.

    Central differences mean nothing at a kink, so only the derivation is the reference.
    """
    if not case.kinks:
        return {}
    shape = case.inputs["x"].shape
    x = np.resize(np.array(case.kinks, dtype=np.float64), shape)
    at = dataclasses.replace(case, inputs={"x": x})
    layer = _make(module, at)
    _forward(layer, at, at.inputs)
    dout = np.linspace(0.5, 1.5, x.size).reshape(shape)
    gen = _backward(layer, at, dout)
    sym = _symbolic(layer, at, dout)
    return {name: rel_error(gen[name], sym[name]) for name in gen}


def check_case(
    module: ModuleType, case: Case, rng: np.random.Generator
) -> tuple[list[GradientCheck], list[HygieneCheck]]:
    """All three comparisons and the hygiene checks for one layer.

    NumPy's floating-point warnings are silenced: a select evaluates both branches (np.where),
    so ``x log x if x > 0 else 0`` takes log(0) at 0 although its value is finite; what the
    checks measure are the values, and a non-finite one fails them.
    """
    with np.errstate(all="ignore"):
        return _check_case(module, case, rng)


def _check_case(
    module: ModuleType, case: Case, rng: np.random.Generator
) -> tuple[list[GradientCheck], list[HygieneCheck]]:
    layer = _make(module, case)
    before = {k: v.copy() for k, v in case.inputs.items()}
    out = _forward(layer, case, case.inputs)
    dout = _upstream(out, rng)
    dout_copy = copy.deepcopy(dout)
    gen = _backward(layer, case, dout)
    sym = _symbolic(layer, case, dout)
    num = _numeric(module, case, dout)
    at_kinks = _at_kinks(module, case)
    grads = [
        GradientCheck(
            case.label,
            name,
            max(rel_error(gen[name], sym[name]), at_kinks.get(name, 0.0)),
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
        HygieneCheck(case.label, _("dout unchanged"), bool(np.array_equal(dout, dout_copy))),
        HygieneCheck(
            case.label, _("input unchanged"), all(np.array_equal(case.inputs[k], before[k]) for k in before)
        ),
        HygieneCheck(
            case.label,
            _("linear in dout"),
            all(rel_error(combined[k], a * first[k] + b * second[k]) <= TOL_SYMBOLIC * 10 for k in combined),
        ),
        HygieneCheck(
            case.label, _("repeatable"), all(np.array_equal(repeat[0][k], repeat[1][k]) for k in repeat[0])
        ),
        HygieneCheck(case.label, _("zero in, zero out"), all(not np.any(zero[k]) for k in zero)),
    ]
    at = overflow_at_edges(module, case)
    hygiene.append(HygieneCheck(case.label, _("finite at the edges"), at is None, at))
    if hasattr(layer, "step_forward"):  # an activation: its training step must give the same numbers
        agrees = step_agrees(module, case, out, gen["dx"], dout)
        hygiene.append(HygieneCheck(case.label, _("training step agrees"), agrees))
    return grads, hygiene


def step_agrees(module: ModuleType, case: Case, out: np.ndarray, dx: np.ndarray, dout: np.ndarray) -> bool:
    """Whether an activation's ``step_forward`` and ``step_backward`` give what ``forward`` and
    ``backward`` give: on the case's inputs, then, on the same layer (so its kept arrays change
    shape), at 0, at the kinks and out to the edges of float64 (short of the last factor 1024,
    as for "finite at the edges"), wherever ``forward`` and ``backward`` are finite.  There a value
    the step writes as a masked product (``a * c``) must not turn an unchosen branch's inf into
    NaN (``x if x < 1 else 2 - 1/x`` at 0)."""
    from chainrule.symbolic.exact import EDGES, scalable

    stepped = _make(module, case)
    s_out = np.array(stepped.step_forward(case.inputs["x"].copy()), copy=True)
    s_dx = np.array(stepped.step_backward(np.array(dout, copy=True)), copy=True)
    if not (rel_error(s_out, out) <= TOL_SYMBOLIC and rel_error(s_dx, dx) <= TOL_SYMBOLIC):
        return False
    x = np.array(sorted({0.0, *case.kinks, *(e for e in EDGES if scalable(e))}))
    d = np.linspace(0.5, 1.5, x.size)
    readable = _make(module, case)
    with np.errstate(all="ignore"):
        want = (
            np.array(readable.forward(x.copy()), copy=True),
            np.array(readable.backward(d.copy()), copy=True),
        )
        got = (
            np.array(stepped.step_forward(x.copy()), copy=True),
            np.array(stepped.step_backward(d.copy()), copy=True),
        )
    return all(_agree_where_finite(g, w) for g, w in zip(got, want, strict=True))


def _agree_where_finite(got: np.ndarray, want: np.ndarray) -> bool:
    """Each entry of ``got`` within TOL_SYMBOLIC of ``want``'s, relative, wherever ``want``'s is finite."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    finite = np.isfinite(want)
    g, w = got[finite], want[finite]
    with np.errstate(all="ignore"):
        return bool(np.all(np.isfinite(g)) and np.all(np.abs(g - w) <= TOL_SYMBOLIC * np.abs(w) + 1e-300))


def overflow_at_edges(module: ModuleType, case: Case) -> float | None:
    """Where an activation's forward or backward(1) is inf or NaN at the edges of float64 although
    the true value is finite (symbolic.exact.EDGES, up to the largest float); None if nowhere.

    The layers verify --accuracy lists as known to overflow, with the reason, are not checked again.
    """
    from chainrule.checks import accuracy
    from chainrule.symbolic.exact import EDGES

    if not case.spec.activation or case.spec.cls in accuracy.OVERFLOWS:
        return None
    with warnings.catch_warnings():  # a complex layer fails the gradient checks; here only finiteness
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        return accuracy.activation_row(module, case.spec, case.derivation, np.array(EDGES)).overflow


def results(
    module_name: str = "chainrule.generated.layers", seed: int = 0, cat: Catalog | None = None
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
    module_name: str = "chainrule.generated.layers",
    seed: int = 0,
    echo: Callable[[str], object] = print,
    cat: Catalog | None = None,
) -> bool:
    """Check every layer of a generated module; print the table; True when all pass."""
    return show(*results(module_name, seed, cat), echo)


def show(
    all_grads: list[GradientCheck], all_hygiene: list[HygieneCheck], echo: Callable[[str], object]
) -> bool:
    """Print the table of the checks; True when all pass."""
    echo(
        _(
            "max relative error (float64): generated~symbolic (50 digits, also at kinks) <= {symbolic},"
            " ~central differences <= {numeric}",
            symbolic=format(TOL_SYMBOLIC, "g"),
            numeric=format(TOL_NUMERIC, "g"),
        )
    )
    first = max([26, *(columns(g.case) for g in all_grads), *(columns(h.case) for h in all_hygiene)])
    heads = [_("gen~sym"), _("gen~num"), _("sym~num")]
    widths = [max(9, columns(h)) for h in heads]
    layer, grad, result = _("layer"), _("grad"), _("result")
    echo(
        f"{_pad(layer, first)} {_pad(grad, 5)} "
        + " ".join(_pad(h, w, right=True) for h, w in zip(heads, widths, strict=True))
        + f"  {result}"
    )
    for g in all_grads:
        numbers = (format(v, "9.1e") for v in (g.gen_sym, g.gen_num, g.sym_num))
        echo(
            f"{_pad(g.case, first)} {_pad(g.grad, 5)} "
            + " ".join(_pad(n, w, right=True) for n, w in zip(numbers, widths, strict=True))
            + f"  {_verdict(g.ok)}"
        )
    echo("")
    names = list(dict.fromkeys(h.name for h in all_hygiene))
    hygiene = _("hygiene")
    echo(f"{_pad(hygiene, first)} " + "  ".join(names))
    for label in dict.fromkeys(h.case for h in all_hygiene):
        row = {h.name: h.ok for h in all_hygiene if h.case == label}
        echo(
            (
                f"{_pad(label, first)} "
                + "  ".join(_pad(_verdict(row[n]) if n in row else "-", max(columns(n), 4)) for n in names)
            ).rstrip()
        )
    ok = all(g.ok for g in all_grads) and all(h.ok for h in all_hygiene)
    failed = sum(not g.ok for g in all_grads) + sum(not h.ok for h in all_hygiene)
    echo("")
    echo(_("all checks pass") if ok else _("{failed} checks FAILED", failed=failed))
    return ok


def _verdict(ok: bool) -> str:
    """A check's verdict in the reader's language: pass or FAIL."""
    return _(RESULTS["pass" if ok else "FAIL"])


def verify_package(
    folder: Path, specs: tuple[Spec, ...], echo: Callable[[str], object] | None = None
) -> None:
    """Verify a generated package with a user's layers; GenerateError (one line) if anything fails."""
    from chainrule.codegen.generate import GenerateError

    try:
        (layers,) = import_package(folder, ("layers",), sealed=False)  # the staging this process just wrote
    except PackageError as exc:  # the staged code itself does not import: say so in one line
        raise GenerateError(_("the generated package does not import: {exc}", exc=exc)) from None
    grads, hygiene = results(layers.__name__, cat=catalog(specs))
    if not show(grads, hygiene, echo or (lambda text: print(text, file=sys.stderr))):
        overflow = first_overflow(layers, catalog(specs))
        if overflow is not None:
            raise GenerateError(overflow_message(*overflow))
        failed = dict.fromkeys(c.case.split()[0] for c in (*grads, *hygiene) if not c.ok)
        raise GenerateError(_("verify failed for {join}: nothing was written", join=", ".join(failed)))


def failing_derivations(module: ModuleType, cat: Catalog | None = None, seed: int = 0) -> list[str]:
    """The derivations whose layers in ``module`` fail any check of ``chainrule verify``; empty when all pass."""
    rng = np.random.default_rng(seed)
    failed: dict[str, None] = {}
    for case in cases(rng, cat):
        grads, hygiene = check_case(module, case, rng)
        if not all(g.ok for g in grads) or not all(h.ok for h in hygiene):
            failed[case.derivation.name] = None
    return list(failed)


def first_overflow(module: ModuleType, cat: Catalog | None = None) -> tuple[str, float] | None:
    """The first activation of ``module`` that is inf or NaN at the edges of float64 where the true
    value is finite, and the x where it is; None when every one stays finite."""
    for case in cases(np.random.default_rng(0), cat):
        at = overflow_at_edges(module, case)
        if at is not None:
            return case.label, at
    return None


def overflow_message(name: str, at: float) -> str:
    """One line: a layer overflows where its true value is finite, and the way out (a ``safe`` form)."""
    return _(
        "verify failed for {name}: inf or NaN at x = {at} where the true value is finite;"
        ' give it a form that cannot overflow with safe = "..."; nothing was written',
        name=name,
        at=format(at, ".6g"),
    )
