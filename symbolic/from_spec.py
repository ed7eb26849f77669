"""Your own layer: a spec in, a derivation out.

The forward formula is differentiated by SymPy; the backward is written in the
layer's output when it can be, each branch is evaluated only where it is chosen, and
a safe form or a rewrite is used only when proved equal to the derived one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import sympy as sp

from chainrule.symbolic.activations import safe_sigmoid
from chainrule.symbolic.chain import L, dout, mean_node, op_node, tidy
from chainrule.symbolic.core import (
    Assign,
    Derivation,
    Gradient,
    Graph,
    Identity,
    Partial,
    Step,
    Total,
    literal,
    node,
    prove,
    tex,
)
from chainrule.symbolic.exact import FLOAT_MAX
from chainrule.symbolic.messages import N_
from chainrule.symbolic.names import check_names
from chainrule.symbolic.rewrite import Choice, more_accurate, overflow_at
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import Spec, fail, parse_formula, sigmoid


@dataclass(frozen=True)
class SpecDerivation:
    """A spec with its derivation and the choices the engine made."""

    spec: Spec
    derivation: Derivation
    cached: str  # "out" when backward needs only the output, else "x"
    constants: tuple[tuple[str, float], ...] = field(default_factory=tuple)


def _source(spec: Spec, kind: str) -> str:
    """Where a layer's formula comes from, in words a reader of the document follows."""
    if spec in SHIPPED:
        return (
            N_("A layer chainrule ships, given as a spec")
            if kind == "layer"
            else N_("A loss chainrule ships, given as a spec")
        )
    if kind == "layer":
        return N_("A layer from the spec {where}", where=literal(spec.where))
    return N_("A loss from the spec {where}", where=literal(spec.where))


def clamp_branches(expr: sp.Expr, x: sp.Symbol) -> sp.Expr:
    """Evaluate each branch of x > c / x < c only where it is chosen: x -> max(x, c) or min(x, c).

    NumPy's ``where`` computes both branches; a branch such as exp(x), meant for
    x <= 0, would overflow for large x although its value is thrown away.  On the
    region where a branch is chosen the clamp is the identity, so values are unchanged.
    """
    if not isinstance(expr, sp.Piecewise) or len(expr.args) != 2:
        return expr
    (a, cond), (b, _) = expr.args
    if not isinstance(cond, sp.Gt | sp.Ge | sp.Lt | sp.Le) or cond.lhs != x or x in cond.rhs.free_symbols:
        return expr
    c = cond.rhs
    above, below = (sp.Max(x, c), sp.Min(x, c))
    if isinstance(cond, sp.Lt | sp.Le):
        above, below = below, above

    def clamp(branch: sp.Expr, to: sp.Expr) -> sp.Expr:
        # Only a branch that can overflow needs it: exp, sinh, cosh grow without bound.
        return branch.subs(x, to) if branch.has(sp.exp, sp.sinh, sp.cosh) else branch

    return sp.Piecewise((clamp(a, above), cond), (clamp(b, below), True))


# Real points of both signs, small to large, where a cached form must agree with the
# derivative (at 30 digits) and stay real and finite (also on the float64-rounded output).
CHECK_POINTS = tuple(sign * v for v in (1e-3, 0.5, 3.0, 20.0, 200.0) for sign in (1, -1))


def _real(expr: sp.Expr) -> float | None:
    """The value of a closed number expression when it is real and finite in float64, else None."""
    try:
        value = complex(sp.N(expr, 30))
    except (TypeError, ValueError, OverflowError):
        return None
    if value.imag != 0 or not math.isfinite(value.real) or abs(value.real) > FLOAT_MAX:
        return None
    return value.real


def not_real_at(f: sp.Expr, x: sp.Symbol, values: dict[sp.Symbol, float]) -> float | None:
    """A check point where the forward is finite but not real, or None when there is none."""
    for v in CHECK_POINTS:
        point = f.subs(values).subs(x, v)
        try:
            value = complex(sp.N(point, 30))
        except (TypeError, ValueError, OverflowError):
            continue
        if value.imag != 0 and math.isfinite(value.imag) and math.isfinite(value.real):
            return v
    return None


def _output_forms(f: sp.Expr, d: sp.Expr, x: sp.Symbol, out: sp.Symbol) -> Iterator[tuple[sp.Expr, str]]:
    """Ways to write the derivative without x, cheapest first: substitute y, solve for an inner function, invert f."""
    direct = d.subs(f, out)
    if x not in direct.free_symbols:
        yield direct, N_("substitute y for the forward expression")
    if f.has(sp.Piecewise):
        return
    inner = sp.Dummy("u")
    for u in sorted(
        (
            a
            for a in sp.preorder_traversal(f)
            if isinstance(a, sp.Function) and x in a.free_symbols and a != f
        ),
        key=str,
    ):
        outer = f.xreplace({u: inner})
        if x in outer.free_symbols:
            continue
        try:
            solutions = sp.solve(sp.Eq(out, outer), inner)
        except (NotImplementedError, ValueError):
            continue
        for sol in solutions:
            candidate = d.xreplace({u: sol})
            if x not in candidate.free_symbols:
                yield candidate, N_("solve $y = f$ for {u}", u=tex(sp.Eq(u, sol, evaluate=False)))
    if f.count(x) == 1:
        # x appears once: peeling the functions around it inverts f in closed form.
        try:
            inverses = sp.solve(sp.Eq(out, f), x)
        except (NotImplementedError, ValueError):
            inverses = []
        for inv in inverses:
            if inv.has(sp.LambertW, sp.RootOf):
                continue
            candidate = sp.simplify(d.subs(x, inv))
            if x not in candidate.free_symbols:
                yield candidate, N_("solve $y = f(x)$ for {x}", x=tex(sp.Eq(x, inv, evaluate=False)))


def _agrees(
    f: sp.Expr, d: sp.Expr, candidate: sp.Expr, x: sp.Symbol, out: sp.Symbol, values: dict[sp.Symbol, float]
) -> bool:
    """At every real check point where the forward is finite the candidate equals the derivative and is real.

    It must also stay real and finite on the output rounded to float64 (y = 2 tanh(20)
    is 2.0 in float64, where a form with 1/(2 - y) is not finite).
    """
    f, d, candidate = (e.subs(values) for e in (f, d, candidate))
    checked = 0
    for v in CHECK_POINTS:
        y = _real(f.subs(x, v))
        if y is None:
            continue
        exact = _real(d.subs(x, v))
        mine = _real(candidate.subs(out, f.subs(x, v)))
        rounded = _real(candidate.subs(out, sp.Float(y)))
        if exact is None or mine is None or rounded is None:
            return False
        if abs(exact - mine) > 1e-9 * max(1.0, abs(exact)):
            return False
        checked += 1
    return checked > 0


def _in_output(
    f: sp.Expr, d: sp.Expr, x: sp.Symbol, out: sp.Symbol, values: dict[sp.Symbol, float] | None = None
) -> tuple[sp.Expr | None, str]:
    """Write the derivative in the forward output alone, when SymPy can and it is real where f is.

    ``values`` gives the spec's constants their numbers for the check at real points.
    """
    for candidate, how in _output_forms(f, d, x, out):
        if _agrees(f, d, candidate, x, out, values or {}):
            return shortest(candidate), how
    return None, ""


def kink_convention(d: sp.Expr) -> sp.Expr:
    """Heaviside(u) as 1 where u > 0 and 0 elsewhere: 0 at the kink, as the chapter's ReLU (mask x <= 0)."""
    return d.replace(
        lambda e: isinstance(e, sp.Heaviside),
        lambda e: sp.Piecewise((1, sp.Gt(e.args[0], 0).canonical), (0, True)),
    )


def _kinks_of(expr: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, ...]:
    """The real x where max, min or abs in ``expr`` switch, when SymPy solves for them."""
    points: set[sp.Expr] = set()
    for part in sp.preorder_traversal(expr):
        if isinstance(part, sp.Abs):
            edges = [part.args[0]]
        elif isinstance(part, sp.Max | sp.Min):
            edges = [a - b for a in part.args for b in part.args if a != b]
        else:
            continue
        for g in edges:
            if x in g.free_symbols and g.is_polynomial(x) and sp.degree(g, x) == 1:
                points.update(v for v in sp.solve(g, x) if v.is_real)
    return tuple(sorted(points, key=sp.default_sort_key))


def _agree_at(
    a: sp.Expr, b: sp.Expr, x: sp.Symbol, values: dict[sp.Symbol, float], points: tuple[sp.Expr, ...]
) -> bool:
    """``a`` and ``b`` have the same value, to 25 digits, at each of ``points`` (dout = 1)."""
    probe = {dout: 1, **values}
    for p in points:
        va, vb = (sp.N(e.subs(probe).subs(x, p), 30) for e in (a, b))
        if not (va.is_real and vb.is_real) or abs(va - vb) > 1e-25 * max(1, abs(vb)):
            return False
    return True


def shortest(expr: sp.Expr) -> sp.Expr:
    """The form with fewest operations: as derived, factored, or expanded (in that order on a tie)."""
    forms = [expr, tidy(sp.factor(expr)), sp.expand(expr)]
    return min(forms, key=sp.count_ops)


def derive_activation(spec: Spec) -> SpecDerivation:
    """y = f(x) element-wise: dL/dx = dL/dy f'(x), in y alone when possible."""
    x, out = sp.Symbol("x", real=True), sp.Symbol("out", real=True)
    consts = {name: sp.Symbol(name, real=True) for name, _ in spec.constants}
    f = parse_formula(spec.forward, {"x": x, **consts}, spec)
    extra = f.free_symbols - {x, *consts.values()}
    if extra:
        raise fail(spec, N_("refers to unknown symbols {names}", names=sorted(s.name for s in extra)))
    if x not in f.free_symbols:
        raise fail(spec, N_("{forward} does not depend on x", forward=repr(spec.forward)))
    try:
        d = sp.diff(f, x)
    except (ValueError, TypeError) as exc:
        raise fail(spec, N_("cannot be differentiated: {reason}", reason=exc)) from None
    if d.has(sp.Derivative, sp.Subs) or d.has(sp.zoo, sp.nan):
        raise fail(
            spec, N_("SymPy cannot differentiate {forward} in closed form", forward=repr(spec.forward))
        )
    values = {consts[name]: value for name, value in spec.constants}
    bad = not_real_at(f, x, values)
    if bad is not None:
        raise fail(
            spec,
            N_(
                "{forward} is not real at x = {x}; an activation is real for every real x",
                forward=repr(spec.forward),
                x=format(bad, "g"),
            ),
        )
    steps = [Step(Partial(out, x), (d,), N_("local derivative of the {node}", node=op_node(spec.key)))]
    notes = []
    if d.has(sp.Heaviside):
        d = kink_convention(d)
        steps.append(
            Step(
                Partial(out, x), (d,), N_(r"at a kink the derivative is taken as 0, as ReLU's mask $x \le 0$")
            )
        )
        notes.append(
            N_("Where max or min switch arguments the derivative is 0 there, as the chapter's ReLU.")
        )
    elif d.has(sp.Piecewise, sp.sign):
        notes.append(
            N_(
                r"On a boundary of a condition the derivative is the chosen branch's; $|x|$ has derivative $\operatorname{sign}(x)$, 0 at 0."
            )
        )
    in_y, how = _in_output(f, d, x, out, values)
    graph = Graph((x,), (node(out, spec.key, (x,), f),), out)
    steps.append(Step(Partial(L, x), (Partial(L, out) * Partial(out, x), dout * d), N_("chain rule")))
    identities: list[Identity] = []
    compute_expr = clamp_branches(f, x)
    if spec.safe is not None:
        safe = parse_formula(spec.safe, {"x": x, **consts}, spec)
        if not prove(safe, f, split=x):
            raise fail(
                spec,
                N_(
                    "SymPy cannot prove the safe form {safe} equal to {forward}",
                    safe=repr(spec.safe),
                    forward=repr(spec.forward),
                ),
            )
        identities.append(
            Identity(safe, f, N_("the safe form the code computes equals the derived one"), split=x)
        )
        compute_expr = clamp_branches(safe, x)
    if in_y is not None:
        backward = dout * in_y
        cache: tuple[sp.Symbol, ...] = (out,)
        steps.append(Step(Partial(L, x), (backward,), N_("in the output alone: {how}", how=how)))
        cached = "out"
    else:
        plain = sp.piecewise_fold(dout * shortest(d))
        backward = sp.piecewise_fold(dout * clamp_branches(sp.piecewise_fold(shortest(d)), x))
        cache = (x,)
        cached = "x"
        if plain != steps[-1].rhs[-1]:
            steps.append(Step(Partial(L, x), (plain,), N_("the shortest form SymPy finds")))
        if backward != plain:
            steps.append(
                Step(Partial(L, x), (backward,), N_("each branch evaluated only where it is chosen"))
            )
    from_safe = False
    if spec.safe is not None:
        given = {out: f} if cached == "out" else {}
        at = overflow_at(backward, dout * d, x, values, given)
        if at is not None:
            # The derivative of the formula overflows where the true one is finite (Mish's
            # exp(x)/(1 + exp(x)) past x = 709.78): differentiate the safe form instead, proved equal.
            d_safe = sp.diff(safe, x)
            if d_safe.has(sp.Heaviside):
                d_safe = kink_convention(d_safe)
            alt = sp.piecewise_fold(dout * clamp_branches(sp.piecewise_fold(shortest(d_safe)), x))
            # safe = f is proved, so their derivatives agree wherever both are differentiable; the
            # safe form's own kinks (max, abs) are where the convention chose a value: checked there.
            kinks = _kinks_of(safe, x)
            if _agree_at(alt, dout * d, x, values, kinks) and overflow_at(alt, dout * d, x, values) is None:
                backward, cache, cached, from_safe = alt, (x,), "x", True
                steps.append(
                    Step(
                        Partial(L, x),
                        (backward,),
                        N_(
                            "the derivative of the safe form, equal to it: the formula's overflows"
                            " at x = {x} where the true value is finite",
                            x=format(at, "g"),
                        ),
                    )
                )
    if spec.safe is None and compute_expr != f:
        identities.append(
            Identity(compute_expr, f, N_("the clamped branches equal the derived ones where chosen"), split=x)
        )
    values = {consts[name]: value for name, value in spec.constants}
    forward_choice = more_accurate(compute_expr, x, values, what="forward")
    # A backward taken from the safe form is kept as it is: chosen because it stays finite.
    backward_choice = (
        Choice(backward)
        if from_safe
        else more_accurate(backward, x, values, {out: f} if cached == "out" else {}, "backward")
    )
    compute_expr, backward = forward_choice.expr, backward_choice.expr
    identities += [c.identity for c in (forward_choice, backward_choice) if c.identity is not None]
    if backward_choice.identity is not None:
        steps.append(Step(Partial(L, x), (backward,), N_("the form that measures more accurate")))
    derivation = Derivation(
        name=spec.key,
        title=spec.name,
        summary=N_("{source}; its forward formula is the first line below.", source=_source(spec, "layer")),
        forward=(Step(out, (f,), N_("the spec's forward formula")),),
        graph=graph,
        steps=tuple(steps),
        backward=(Gradient(x, backward),),
        cache=cache,
        upstream=out,
        identities=tuple(identities),
        compute=(Assign(out, compute_expr),),
        kernels=(safe_sigmoid(),) if compute_expr.has(sigmoid) or backward.has(sigmoid) else (),
        notes=(
            N_("The layer caches its output $y$.")
            if cached == "out"
            else N_("The layer caches its input $x$."),
            *notes,
        ),
    )
    return SpecDerivation(spec, derivation, cached, spec.constants)


def derive_loss(spec: Spec) -> SpecDerivation:
    """L = (1/N) sum f(y, t) over the batch: dL/dy = dout f_y(y, t) / N."""
    y, t = sp.Symbol("y", real=True), sp.Symbol("t", real=True)
    n = sp.Symbol("batch_size", integer=True, positive=True)
    consts = {name: sp.Symbol(name, real=True) for name, _ in spec.constants}
    f = parse_formula(spec.forward, {"y": y, "t": t, **consts}, spec)
    extra = f.free_symbols - {y, t, *consts.values()}
    if extra:
        raise fail(spec, N_("refers to unknown symbols {names}", names=sorted(s.name for s in extra)))
    if y not in f.free_symbols:
        raise fail(spec, N_("{forward} does not depend on y", forward=repr(spec.forward)))
    d = sp.diff(f, y)
    if d.has(sp.Derivative, sp.Subs):
        raise fail(
            spec, N_("SymPy cannot differentiate {forward} in closed form", forward=repr(spec.forward))
        )
    loss = sp.Symbol("loss", real=True)
    mean, weight, losses, i = mean_node(n)
    backward = dout * weight * shortest(d)
    derivation = Derivation(
        name=spec.key,
        title=spec.name,
        summary=N_(
            "{source}: the batch mean of its formula, the first line below.", source=_source(spec, "loss")
        ),
        forward=(Step(L, (Total(f) / n,), N_("the batch mean of the spec's formula")),),
        graph=None,
        steps=(
            Step(L, (mean,), N_("the batch loss is the mean of the samples' losses")),
            Step(Partial(L, losses[i]), (weight,), N_("local derivative of the mean node")),
            Step(
                Partial(L, y),
                (weight * d,),
                N_("chain rule: each sample's term depends on its own y only"),
            ),
            Step(Partial(L, y), (backward,), N_("times the upstream gradient")),
        ),
        backward=(Gradient(y, backward),),
        cache=(y, t),
        upstream=L,
        compute=(Assign(loss, Total(f) / n),),
        notes=(N_("Integer labels are turned into one-hot rows first."),),
    )
    return SpecDerivation(spec, derivation, "y", spec.constants)


# Derivations made elsewhere (the command line derives a user's specs in a child process with
# time and memory limits) and handed back; derive_spec returns them instead of deriving again.
_DERIVED: dict[Spec, SpecDerivation] = {}


def remember(sd: SpecDerivation) -> None:
    """Let ``derive_spec(sd.spec)`` return ``sd`` from now on in this process."""
    _DERIVED[sd.spec] = sd


def derive_spec(spec: Spec) -> SpecDerivation:
    """The derivation of one spec."""
    check_names([spec])  # first: a constant that is not a number would make the spec unhashable
    if spec in _DERIVED:
        return _DERIVED[spec]
    return derive_activation(spec) if spec.kind == "activation" else derive_loss(spec)
