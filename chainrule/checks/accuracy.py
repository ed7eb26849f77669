"""``chainrule verify --accuracy``: the generated kernels and activations against 50-digit arithmetic.

The reference is the derivation's forward expression and its SymPy derivative, evaluated
as ``symbolic.exact`` does (50 digits or more), never through the project's NumPy printer
or the generated code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import sympy as sp

from chainrule.codegen.i18n import N_, _, columns
from chainrule.codegen.model import Catalog, LayerSpec
from chainrule.symbolic import exact

TARGET_ULPS = 4.0
SMALLEST = 1e-12
# Functions that miss the target for a reason a float64 formula cannot remove; the
# table marks them and prints why.  Anything else that misses fails the command.
EXCEPTIONS = {
    "GELU": N_(
        "its forward x sigmoid(2u) is as accurate as u = sqrt(2/pi)(x + 0.044715x^3) allows:"
        " u is rounded to a few parts in 1e16, and for u < 0 sigmoid(2u) ~ exp(2u) multiplies that"
        " by |2u| (hundreds of ulp for x from -10 to -20, where the value then underflows);"
        " the 1 + tanh(u) form it replaces loses every digit there; its backward is NaN for |x| past"
        " 1.34e154, where x^2 overflows while the sigmoid's derivative is 0: every float64 form of"
        " the derivative multiplies the two"
    ),
    "MeanSquaredError": N_(
        "0.5 (y - t)^2 squares before it halves: for |y - t| from 1.34e154 to 1.9e154 the square"
        " overflows although the loss is below the largest float64"
    ),
    "log_softmax (kernel)": N_(
        "x - max - log(sum exp(x - max)): at a row's maximum the true value is minus the sum of"
        " the other exp(x_j - max), lost once below 1.1e-16 because the sum rounds to 1; the"
        " error stays within 1 ulp of 1, and the loss it feeds is then below 1.1e-16"
    ),
}
# Of those, the ones that overflow (inf or NaN where the true value is finite) at the edges of
# float64, for a reason no spec form can remove: any float64 form of the derivative multiplies a
# power of x by a sigmoid's derivative, and SymPy writes a square before halving it.
OVERFLOWS = frozenset({"GELU", "MeanSquaredError"})


def overflow_hint(name: str, at: float) -> str:
    """One line: a layer overflows at ``at`` where the true value is finite, and what a spec can do."""
    return _(
        "  {name} gives inf or NaN at x = {at} where the true value is finite: give its spec a form"
        ' that cannot overflow with safe = "..."',
        name=name,
        at=format(at, ".6g"),
    )


RESULTS = {"pass": N_("pass"), "FAIL": N_("FAIL"), "exception": N_("exception")}


STEP = " (training step)"  # the row of an activation's step_forward and step_backward


def shown(name: str) -> str:
    """A row's name in the reader's language: a kernel is marked as one, softmax (kernel), and a
    training step as one, GELU (training step)."""
    if name.endswith(" (kernel)"):
        return name.removesuffix(" (kernel)") + _(" (kernel)")
    if name.endswith(STEP):
        return name.removesuffix(STEP) + _(" (training step)")
    return name


def filed_under(name: str) -> str:
    """The name a row's known exception is filed under: a training step's is its layer's."""
    return name.removesuffix(STEP)


def _pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded to ``width`` columns as a terminal shows it: a wide (CJK) character takes two."""
    fill = " " * max(width - columns(text), 0)
    return fill + text if right else text + fill


@dataclass(frozen=True)
class Worst:
    """The largest error on the grid, in ulps, and the input where it occurs."""

    ulps: float
    at: float


@dataclass(frozen=True)
class Row:
    """One function's accuracy: forward, backward (None for a kernel), against the target."""

    name: str
    forward: Worst
    backward: Worst | None = None
    backward_relative: Worst | None = None  # not a target: what a backward formula costs pointwise
    target: float = TARGET_ULPS

    @property
    def ok(self) -> bool:
        return self.forward.ulps <= self.target and (
            self.backward is None or self.backward.ulps <= self.target
        )

    @property
    def overflow(self) -> float | None:
        """The x where forward or backward is inf or NaN although the true value is finite, if any."""
        for w in (self.forward, self.backward):
            if w is not None and w.ulps == math.inf:
                return w.at
        return None

    @property
    def result(self) -> str:
        """pass, exception (a known miss, explained below the table) or FAIL; an overflow is never known."""
        if self.ok:
            return "pass"
        if self.overflow is not None and filed_under(self.name) not in OVERFLOWS:
            return "FAIL"
        return "exception" if filed_under(self.name) in EXCEPTIONS else "FAIL"


def grid(per_sign: int = 400) -> np.ndarray:
    """|x| log-spaced from 1e-12 to 700, both signs, and 0, in increasing order; then the edges of
    float64 (symbolic.exact.EDGES): where exp, squares and cubes overflow, up to the largest float,
    and down to the smallest subnormal."""
    magnitudes = np.logspace(math.log10(SMALLEST), math.log10(exact.LARGEST), per_sign)
    return np.unique(np.concatenate([-magnitudes[::-1], [0.0], magnitudes, exact.EDGES]))


def _relative(computed: np.ndarray, true: Sequence[object], xs: np.ndarray) -> Worst:
    """Worst |computed - true| in ulps of the true value; both below the normal range is no error."""
    return Worst(*exact.worst_ulps(computed.ravel(), true, xs.ravel()))


def _absolute(computed: np.ndarray, true: Sequence[object], xs: np.ndarray) -> Worst:
    """Worst |computed - true| in ulps of the largest |true| for |x| up to 700 (or of |true| itself
    where it is larger, past 700); a true value beyond float64 is set aside, an inf or NaN where
    the true value is finite is an infinite error."""
    return Worst(*exact.worst_ulps(computed.ravel(), true, xs.ravel(), exact.largest(true, xs.ravel())))


def _derivation_forward(d: object, spec: LayerSpec) -> tuple[sp.Expr, sp.Symbol]:
    """The derivation's forward formula of x, its constants at the layer's default values."""
    expr = d.forward[0].rhs[0]  # type: ignore[attr-defined]
    x = next(s for s in expr.free_symbols if s.name == "x")
    values = {s: sp.Float(dict(spec.constants)[s.name], 60) for s in expr.free_symbols if s != x}
    return expr.subs(values), x


def activation_row(module: ModuleType, spec: LayerSpec, d: object, xs: np.ndarray, step: bool = False) -> Row:
    """An element-wise layer: forward(x), and backward(1) = f'(x), against f and SymPy's f'.

    ``step``: the same for its training step, step_forward and step_backward, which compute the
    formulas in their own order of operations.
    """
    f, x = _derivation_forward(d, spec)
    derivative = sp.diff(
        f.replace(lambda e: type(e).__name__ == "sigmoid", lambda e: 1 / (1 + sp.exp(-e.args[0]))), x
    )
    # SymPy's step is 1/2 at its kink; the chapter's ReLU (mask x <= 0) takes the slope there as 0.
    derivative = derivative.replace(
        lambda e: isinstance(e, sp.Heaviside), lambda e: sp.Heaviside(e.args[0], 0)
    )
    layer = getattr(module, spec.cls)()
    forward, backward = (layer.step_forward, layer.step_backward) if step else (layer.forward, layer.backward)
    with np.errstate(all="ignore"):
        computed = np.array(forward(xs.copy()), dtype=np.float64)
        slopes = np.array(backward(np.ones_like(xs)), dtype=np.float64)
    f_mp, d_mp = exact.mpmath_function(f, (x,)), exact.mpmath_function(derivative, (x,))
    true = [exact.reference(f_mp, v) for v in xs]
    true_slopes = [exact.reference(d_mp, v) for v in xs]
    return Row(
        spec.cls + (STEP if step else ""),
        _relative(computed, true, xs),
        _absolute(slopes, true_slopes, xs),
        _relative(slopes, true_slopes, xs),
    )


def loss_row(module: ModuleType, spec: LayerSpec, d: object, ys: np.ndarray, label: float = 0.3) -> Row:
    """A spec loss on batches of one: forward(y, t) = f(y, t), backward(1) = df/dy."""
    from chainrule.symbolic.core import Total

    (total,) = d.forward[0].rhs[0].atoms(Total)  # type: ignore[attr-defined]  # L = Total(f)/N
    f = total.args[0]
    y, t = sorted(f.free_symbols, key=lambda s: s.name != "y")
    f = f.subs(t, sp.Float(label, 60))
    values, slopes = [], []
    for v in ys:
        layer = getattr(module, spec.cls)()
        with np.errstate(all="ignore"):
            values.append(layer.forward(np.array([[v]]), np.array([[label]])))
            slopes.append(np.asarray(layer.backward(1.0)).item())
    f_mp, d_mp = exact.mpmath_function(f, (y,)), exact.mpmath_function(sp.diff(f, y), (y,))
    true = [exact.reference(f_mp, v) for v in ys]
    true_slopes = [exact.reference(d_mp, v) for v in ys]
    computed, slopes_arr = np.array(values, dtype=np.float64), np.array(slopes, dtype=np.float64)
    return Row(
        spec.cls,
        _relative(computed, true, ys),
        _absolute(slopes_arr, true_slopes, ys),
        _relative(slopes_arr, true_slopes, ys),
    )


def kernel_rows(module: ModuleType, xs: np.ndarray) -> list[Row]:
    """sigmoid on x; softmax and log_softmax on rows (x, 0, -x); cross_entropy_error on probabilities."""
    from chainrule import symbolic
    from chainrule.symbolic import softmax_loss

    sig = symbolic.derive("sigmoid").forward[0].rhs[0]
    (xv,) = sig.free_symbols
    sig_mp = exact.mpmath_function(sig, (xv,))
    rows = [
        Row(
            "sigmoid (kernel)",
            _relative(np.asarray(module.sigmoid(xs.copy())), [exact.reference(sig_mp, v) for v in xs], xs),
        )
    ]
    loss_d = symbolic.derive("softmax_with_loss")
    soft = loss_d.graph.definitions()[softmax_loss.y[0]]  # y_1 = exp(a_1) / sum_k exp(a_k)
    first, *others = sorted(soft.free_symbols, key=lambda s: s.name)
    scores = np.stack([xs, np.zeros_like(xs), -xs], axis=1)
    where = np.repeat(xs[:, None], 3, axis=1)
    soft_mp, log_mp = (
        exact.mpmath_function(soft, (first, *others)),
        exact.mpmath_function(sp.log(soft), (first, *others)),
    )

    def per_entry(f: Callable[..., object]) -> list[object]:
        # Entry k of a row is y_1 with a_k first: softmax is symmetric in the other inputs.
        return [exact.reference(f, row[k], *np.delete(row, k)) for row in scores for k in range(3)]

    with np.errstate(all="ignore"):
        rows.append(
            Row("softmax (kernel)", _relative(module.softmax(scores.copy()), per_entry(soft_mp), where))
        )
        rows.append(
            Row(
                "log_softmax (kernel)", _relative(module.log_softmax(scores.copy()), per_entry(log_mp), where)
            )
        )
    # The loss of one sample with label 0: L = -sum_k t_k log y_k at t = (1, 0, 0).
    loss = next(s for s in loss_d.forward if s.lhs == loss_d.loss).rhs[-1]
    ys = sorted((s for s in loss.free_symbols if s.name.startswith("y")), key=lambda s: s.name)
    ts = sorted((s for s in loss.free_symbols if s.name.startswith("t")), key=lambda s: s.name)
    one_hot = loss.subs({ts[0]: 1, **{tk: 0 for tk in ts[1:]}})
    ce_mp = exact.mpmath_function(one_hot, ys)
    # Below the smallest normal number a probability counts as it (the kernel's stated clamp).
    probabilities = np.unique(
        np.concatenate(
            [np.abs(xs[(np.abs(xs) <= 1) & (np.abs(xs) >= exact.TINY)]), 1 - np.abs(xs[np.abs(xs) < 0.5])]
        )
    )
    computed = np.array(
        [module.cross_entropy_error(np.array([[p, 1 - p, 0.0]]), np.array([0])) for p in probabilities]
    )
    true = [exact.reference(ce_mp, p, 1 - p, 0.0) for p in probabilities]
    rows.append(Row("cross_entropy_error (kernel)", _relative(computed, true, probabilities)))
    return rows


def measure(module: ModuleType, cat: Catalog, xs: np.ndarray) -> list[Row]:
    """Every kernel, then every activation and spec loss of the catalog, on the grid ``xs``."""
    rows = kernel_rows(module, xs)
    for spec, d in zip(cat.layers, cat.derivations, strict=True):
        if spec.activation:
            rows.append(activation_row(module, spec, d, xs))
            if hasattr(getattr(module, spec.cls), "step_forward"):
                rows.append(activation_row(module, spec, d, xs, step=True))
        elif spec.loss:
            rows.append(loss_row(module, spec, d, xs))
    return rows


def _cell(w: Worst | None) -> str:
    if w is None:
        return f"{'-':>10} {'':>10}"
    at = "" if math.isnan(w.at) else f"{w.at:.3g}"
    return f"{w.ulps:10.3g} {at:>10}"


def table(rows: Sequence[Row], points: int) -> list[str]:
    """The printed table: worst errors in ulps and where, the target, pass or FAIL."""
    heads = (_("function"), _("forward"), _("at x"), _("backward"), _("at x"), _("target"), _("result"))
    first = max([29, *(columns(shown(r.name)) for r in rows)])
    lines = [
        _(
            "float64 against mpmath at {digits} digits: {points} points, |x| from {smallest} to {largest}"
            " of both signs, and 0",
            digits=exact.DIGITS,
            points=points,
            smallest=format(float(np.min(np.abs(exact.EDGES))), "g"),
            largest=format(float(np.max(np.abs(exact.EDGES))), "g"),
        ),
        _(
            "target: forward within {ulps} ulp of the true value (subnormal results aside);"
            " backward within {ulps} ulp of the largest |derivative| on the grid",
            ulps=format(TARGET_ULPS, "g"),
        ),
        " ".join(
            [
                _pad(heads[0], first),
                *(_pad(h, 10, right=True) for h in heads[1:5]),
                _pad(heads[5], 6, right=True),
            ]
        )
        + f"  {heads[6]}",
    ]
    for r in rows:
        lines.append(
            f"{_pad(shown(r.name), first)} {_cell(r.forward)} {_cell(r.backward)} {r.target:6g}  {_(RESULTS[r.result])}"
        )
    for r in rows:
        if r.result == "exception" and filed_under(r.name) != r.name:
            lines.append(
                _("  exception, {name}: as {layer}'s", name=shown(r.name), layer=filed_under(r.name))
            )
        elif r.result == "exception":
            lines.append(_("  exception, {name}: {why}", name=shown(r.name), why=_(EXCEPTIONS[r.name])))
        elif r.result == "FAIL" and r.overflow is not None:
            lines.append(overflow_hint(shown(r.name), r.overflow))
    lines += ["", _("backward relative to the true derivative at each point (not a target):")]
    for r in rows:
        if r.backward_relative is not None:
            lines.append(f"{_pad(shown(r.name), first)} {_cell(r.backward_relative)}")
    return lines


def run(
    module_name: str = "chainrule.generated.layers",
    cat: Catalog | None = None,
    per_sign: int = 400,
    echo: Callable[[str], object] = print,
) -> bool:
    """Measure and print the table; True when every function meets its target."""
    import importlib

    from chainrule.codegen.model import catalog

    module = importlib.import_module(module_name)
    xs = grid(per_sign)
    rows = measure(module, cat or catalog(), xs)
    for line in table(rows, len(xs)):
        echo(line)
    failed = [r.name for r in rows if r.result == "FAIL"]
    known = [r.name for r in rows if r.result == "exception"]
    echo("")
    if failed:
        echo(
            _(
                "{count} functions miss the target: {names}",
                count=len(failed),
                names=", ".join(map(shown, failed)),
            )
        )
    elif known:
        echo(
            _(
                "every function meets its target, but the known exceptions {names}",
                names=", ".join(map(shown, known)),
            )
        )
    else:
        echo(_("every function meets its target"))
    return not failed
