"""Softmax-with-Loss: the appendix's graph for 3 classes, the general case, the batch mean."""

from __future__ import annotations

import sympy as sp

from chainrule.symbolic.chain import Branch, L, mean_node
from chainrule.symbolic.core import (
    Assign,
    Chain,
    Derivation,
    Gradient,
    Graph,
    Identity,
    Kernel,
    Partial,
    Pick,
    RowMax,
    RowSum,
    Step,
    Tiny,
    Total,
    node,
)
from chainrule.symbolic.messages import N_

C = 3
a = sp.symbols(f"a1:{C + 1}", real=True)
t = sp.symbols(f"t1:{C + 1}", real=True)
e = sp.symbols(f"e1:{C + 1}", positive=True)
y = sp.symbols(f"y1:{C + 1}", positive=True)
lg = sp.symbols(f"l1:{C + 1}", real=True)
m = sp.symbols(f"m1:{C + 1}", real=True)
S, r, s = sp.symbols("S r s", positive=True)

# The layer's own variables, on a batch of N rows and n_classes columns.
N = sp.Symbol("batch_size", integer=True, positive=True)
K = sp.Symbol("n_classes", integer=True, positive=True)
Y = sp.MatrixSymbol("y", N, K)
T = sp.MatrixSymbol("t", N, K)
dout = sp.Symbol("dout", real=True)


class OneHot(sp.MatrixExpr):
    """Integer labels as the one-hot matrix they stand for: row i has its 1 in column t_i."""

    def __new__(cls, labels: sp.Symbol, rows: sp.Expr, cols: sp.Expr) -> OneHot:
        return sp.MatrixExpr.__new__(cls, labels, sp.sympify(rows), sp.sympify(cols))

    @property
    def labels(self) -> sp.Symbol:
        return self.args[0]

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.args[1], self.args[2]


def graph3() -> Graph:
    """The appendix figure: exp, sum, 1/S, products, log, times t, sum, times -1."""
    nodes = [node(e[k], "exp", (a[k],), sp.exp(a[k])) for k in range(C)]
    nodes.append(node(S, "+", e, sp.Add(*e)))
    nodes.append(node(r, "/", (S,), 1 / S))
    nodes += [node(y[k], "×", (e[k], r), e[k] * r) for k in range(C)]
    nodes += [node(lg[k], "log", (y[k],), sp.log(y[k])) for k in range(C)]
    nodes += [node(m[k], "×", (t[k], lg[k]), t[k] * lg[k]) for k in range(C)]
    nodes.append(node(s, "+", m, sp.Add(*m)))
    nodes.append(node(L, "×(−1)", (s,), -s))
    return Graph(a + t, tuple(nodes), L)


def _forward(graph: Graph) -> tuple[Step, ...]:
    """The forward pass as the appendix's figure A-1 names its nodes: softmax, then cross-entropy."""
    expr = {n.out: n.expr for n in graph.nodes}
    softmax = {y[k]: e[k] * r for k in range(C)}
    as_a = {e[k]: sp.exp(a[k]) for k in range(C)} | {r: 1 / S}
    loss = [expr[L]]
    for names in ((s,), m, lg):
        loss.append(loss[-1].xreplace({v: expr[v] for v in names}))
    del loss[2]  # -t_1 l_1 - ...: the reason names l_k
    return (
        Step(
            sp.Tuple(*e, S, r),
            (sp.Tuple(*(expr[v] for v in (*e, S, r))),),
            N_("the exp nodes, the $+$ node that sums their outputs and the $/$ node"),
        ),
        Step(
            sp.Tuple(*y),
            (sp.Tuple(*(expr[v] for v in y)), sp.Tuple(*(softmax[v].xreplace(as_a) for v in y))),
            N_(
                r"the $\times$ nodes give the softmax $y_k = \frac{\exp(a_k)}{S}$,"
                r" $S = \sum_i \exp(a_i)$ its denominator"
            ),
        ),
        Step(
            L,
            tuple(loss),
            N_(
                r"the cross-entropy error $L = -\sum_k t_k \log y_k$ node by node: $l_k = \log y_k$,"
                r" $m_k = t_k l_k$, their sum $s$ and $L = -s$"
            ),
            introduces=(*lg, *m, s),
        ),
    )


def _check(shown: sp.Basic, derived: sp.Basic, where: dict) -> None:
    """ValueError unless a displayed form equals the graph's derived one (with ``where`` substituted)."""
    if not Identity(shown, derived, "", tuple(where.items())).holds():
        raise ValueError(f"the displayed {shown} is not the backward pass's {derived}")


def _three_classes(graph: Graph) -> tuple[tuple[Step, ...], sp.Expr]:
    """The appendix's backward steps A.2 for three classes, from the graph's backward pass.

    Every displayed form is the graph's edge value, written in the forward values by substituting
    y_k = e_k / S and r = 1/S and simplified, each checked against the backward pass.
    Returns the steps and dL/da_1 = y_1 - t_1.
    """
    _, grads, edges = graph.backprop(sp.Integer(1))
    back = {(edge.src, edge.dst): edge.backward for edge in edges}
    local = {(n.out, v): d for n in graph.nodes for v, d in zip(n.inputs, n.local, strict=True)}
    forward = {y[k]: e[k] / S for k in range(C)} | {r: 1 / S} | {sp.exp(a[k]): e[k] for k in range(C)}
    one_hot = {t[C - 1]: 1 - sum(t[: C - 1])}

    def simplified(expr: sp.Basic) -> sp.Basic:
        """Each term in the forward values, cancelled: -t_1 e_1 / y_1 -> -S t_1."""
        return sp.Add(*(sp.factor(sp.cancel(term.xreplace(forward))) for term in sp.Add.make_args(expr)))

    to_r = [back[(r, y[k])] for k in range(C)]
    dr = sp.factor(sum(simplified(v) for v in to_r))
    at_s = sp.factor(sp.cancel(dr * local[(r, S)]))
    dS = sp.cancel(at_s.xreplace(one_hot))
    _check(dr, grads[r], forward)
    _check(dS, grads[S], forward | one_hot)
    de1 = dS + back[(e[0], y[0])]
    de1_e = dS + simplified(back[(e[0], y[0])])
    _check(de1, grads[e[0]], forward | one_hot)
    da1 = sp.expand(de1_e * local[(e[0], a[0])].xreplace(forward))
    da1_y = da1.xreplace({e[0]: y[0] * S})
    _check(da1_y, grads[a[0]], forward | one_hot)
    path = (
        (L, s),
        (s, m[0]),
        (m[0], lg[0]),
        (lg[0], y[0]),
        (y[0], r),
        (r, S),
        (S, e[0]),
        (y[0], e[0]),
        (e[0], a[0]),
    )
    steps = (
        Step(
            sp.Tuple(*(Partial(*p) for p in path)),
            (sp.Tuple(*(local[p] for p in path)),),
            N_(
                r"local derivatives of the nodes on the way back from $L$ to $a_1$, by SymPy"
                r" (for $a_2$, $a_3$ likewise)"
            ),
        ),
        Step(
            sp.Tuple(*(Partial(L, v) for v in y)),
            (sp.Tuple(*(grads[v] for v in y)),),
            N_(
                r"Cross Entropy Error's backward: $1$ times $-1$ at the $\times(-1)$ node, $1$ at the $+$ node,"
                r" $t_k$ at the $\times$ nodes and $\frac{1}{y_k}$ at the log nodes"
            ),
        ),
        Step(
            sp.Tuple(*(Branch(L, r, v) for v in y)),
            (sp.Tuple(*to_r), sp.Tuple(*(simplified(v) for v in to_r))),
            N_(
                r"the $\times$ node $y_k = e_k r$ sends back to $r$ the upstream $\frac{\partial L}{\partial y_k}$"
                r" times $e_k$ (the part that comes back through $y_k$ is written"
                r" $\left.\frac{\partial L}{\partial r}\right|_{\to y_k}$), and $\frac{e_k}{y_k} = S$"
            ),
        ),
        Step(
            Partial(L, S),
            (Chain(dr, local[(r, S)]), at_s, dS),
            N_(
                r"the three parts add, $\frac{\partial L}{\partial r} = -S (t_1 + t_2 + t_3)$, and the $/$ node"
                r" multiplies by $-\frac{1}{S^2}$; the one-hot labels sum to 1"
            ),
        ),
        Step(
            Partial(L, e[0]),
            (de1, de1_e),
            N_(
                r"the $+$ node passes $\frac{1}{S}$ on to $e_1$, and the $\times$ node $y_1 = e_1 r$ sends back"
                r" $\frac{\partial L}{\partial y_1}$ times $r$; the two add"
            ),
        ),
        Step(
            Partial(L, a[0]),
            (Chain(de1_e, e[0]), da1, da1_y),
            N_(r"the exp node multiplies by $\exp(a_1) = e_1$, and $\frac{e_1}{S} = y_1$"),
        ),
    )
    return steps, da1_y


def _general() -> tuple[tuple[Step, ...], sp.Expr]:
    """dL/da_k for n classes with SymPy's indexed sums."""
    n = sp.Symbol("n", integer=True, positive=True)
    i, j, k = sp.symbols("i j k", integer=True)
    A, Tb, Yb = sp.IndexedBase("a"), sp.IndexedBase("t"), sp.IndexedBase("y")
    total = sp.Sum(sp.exp(A[j]), (j, 1, n))
    loss = -sp.Sum(Tb[i] * A[i], (i, 1, n)) + sp.Sum(Tb[i], (i, 1, n)) * sp.log(total)
    d = sp.piecewise_fold(loss.diff(A[k]).doit())
    inside = d.args[0][0] if isinstance(d, sp.Piecewise) else d
    with_one = inside.xreplace({sp.Sum(Tb[i], (i, 1, n)): 1})
    in_y = with_one.xreplace({sp.exp(A[k]): Yb[k] * total})
    steps = (
        # SymPy's working (the derivative of the indexed sums, then the labels' sum of one) is checked
        # here and against the three classes' y_1 - t_1; the page shows its result.
        Step(
            Partial(L, A[k]),
            (in_y,),
            N_(
                r"for $n$ classes, and any class $k$ ($1 \le k \le n$), the same: SymPy differentiates"
                r" $L = -\sum_i t_i \log y_i$ written with indexed sums, and at $k = 1$ it is the $y_1 - t_1$ above"
            ),
            introduces=(n, k, A, Tb, Yb),  # a_k, t_k, y_k: the three classes' a_1, t_1, y_1 for any k
        ),
    )
    return steps, in_y


def _agree(three: sp.Expr, general: sp.Expr) -> sp.Expr:
    """The n-class result, checked against the 3-class graph's at k = 1; ValueError if they differ."""
    (k,) = {v.indices[0] for v in general.atoms(sp.Indexed)}
    at_one = general.subs(k, 1).xreplace({sp.IndexedBase("y")[1]: y[0], sp.IndexedBase("t")[1]: t[0]})
    if sp.expand(at_one - three) != 0:
        raise ValueError(f"the 3-class result {three} and the n-class result {general} disagree at k = 1")
    return general


def _batch(general: sp.Expr) -> tuple[tuple[Step, ...], sp.Expr, sp.Expr]:
    """The batch: the loss is the mean node of N samples' losses, then one sample's dL/da_k in matrix form.

    The mean node's local derivative 1/N comes from ``sympy.diff``. Sample i's y_k, t_k are the
    entries y_ik, t_ik of the batch's matrices; the entry's expression, with each entry replaced
    by its whole matrix, is the matrix form, checked to give back every entry (ValueError if not).
    Integer labels stand for the one-hot matrix, which replaces t.
    """
    mean, weight, Lb, i = mean_node(N)
    (k,) = {v.indices[0] for v in general.atoms(sp.Indexed)}
    entries = {sp.IndexedBase("y")[k]: Y[i, k], sp.IndexedBase("t")[k]: T[i, k]}
    entry = dout * weight * general.xreplace(entries)
    batch = entry.xreplace({Y[i, k]: Y, T[i, k]: T})
    integer = batch.xreplace({T: OneHot(sp.Symbol("t"), N, K)})
    x = sp.MatrixSymbol("x", N, K)
    steps = (
        Step(
            L,
            (mean,),
            N_(r"on a batch of $N$ samples, the loss is the mean node of the samples' losses $L_i$"),
            introduces=(N, Lb[i], i),
        ),
        Step(
            Partial(L, Lb[i]), (weight,), N_(r"the mean node passes $\frac{1}{N}$ back to each sample's loss")
        ),
        Step(
            Partial(L, x),
            (batch, integer),
            N_(
                r"the batch's scores $\mathbf{X}$, outputs $\mathbf{Y}$ and labels $\mathbf{T}$ hold one"
                r" sample per row ($a$, $y$, $t$): entry $(i, k)$ is sample $i$'s $y_k - t_k$ times"
                r" $\frac{\partial L}{\partial L_i}$; with integer labels $t$, $\mathbf{T}$ is their one-hot rows"
            ),
            introduces=(x, Y, T, K),  # K: the one-hot rows' length, not displayed
        ),
    )
    if not Identity(batch[i, k], entry, "").holds():
        raise ValueError(f"entry (i, k) of {batch} is not the chain rule's {entry}")
    return steps, batch, integer


def _label_loss() -> tuple[sp.Expr, sp.Expr]:
    """The batch loss in the layer's variables, for label rows and for integer labels.

    The loss is the mean of the samples' cross-entropy errors, each label row weighting the
    log-probabilities: one formula for one-hot rows and for any distribution.  An integer label
    t_i stands for the one-hot row delta(k, t_i); SymPy sums that row against the log-probabilities
    and only the label's term is left: the pick, checked here.
    Returns the two forms with ``log_y`` and ``t`` standing for whole arrays.
    """
    n = sp.Symbol("n", integer=True, positive=True)
    i, k = sp.symbols("i k", integer=True)
    label = sp.IndexedBase("t")[i]
    Yb = sp.IndexedBase("y")
    one_hot = sp.Sum(sp.KroneckerDelta(k, label) * sp.log(Yb[i, k]), (k, 1, n))
    summed = one_hot.doit()
    # The sum keeps the label's term where 1 <= t_i <= n: labels are checked to be classes.
    (picked, inside), *_ = summed.args if isinstance(summed, sp.Piecewise) else ((summed, sp.true),)
    if inside.subs({label: 1, n: 1}) is not sp.true or picked != sp.log(Yb[i, label]):
        raise ValueError(f"the one-hot sum {one_hot} does not reduce to the pick: {summed}")
    logy, t_ = sp.Symbol("log_y", real=True), sp.Symbol("t", real=True)
    return -Total(t_ * logy) / N, -Total(Pick(logy, t_)) / N


def kernels(proofs: tuple[Identity, ...]) -> tuple[Kernel, ...]:
    """softmax, log-softmax and cross-entropy on a batch, in their safe forms.

    Arrays are rows of a batch; RowMax and RowSum keep a column so that they
    broadcast across each row.  ``proofs`` are the shift and log identities.
    """
    v, p, labels = sp.Symbol("x", real=True), sp.Symbol("y", positive=True), sp.Symbol("t")
    shifted = v - RowMax(v)
    # Kept as (x - max) + (-log sum): unflattened, so the shifted scores are computed once.
    log_softmax = sp.Add(shifted, -sp.log(RowSum(sp.exp(shifted))), evaluate=False)
    rows = sp.Symbol("batch_size", integer=True, positive=True)
    return (
        Kernel(
            "softmax",
            (v,),
            sp.exp(shifted) / RowSum(sp.exp(shifted)),
            "Softmax of each row, with the row maximum subtracted so exp cannot overflow.",
            proofs[:1],
        ),
        Kernel(
            "log_softmax",
            (v,),
            log_softmax,
            "log(softmax(x)) of each row, finite even where softmax rounds to 0.",
            proofs[1:],
        ),
        Kernel(
            "cross_entropy_error",
            (p, labels),
            -Total(labels * sp.log(sp.Max(p, Tiny(p)))) / rows,
            "Mean cross-entropy of probabilities y for labels t: rows of class probabilities"
            " (one-hot rows) or integer class indices; a 1-D y is one sample. A probability of 0"
            " counts as the smallest normal number, so the loss stays finite.",
            labels_body=-Total(sp.log(sp.Max(Pick(p, labels), Tiny(p)))) / rows,
        ),
    )


def _safe_forms() -> tuple[Identity, ...]:
    """The forms the kernels compute, proved equal to the derived ones."""
    c = sp.Symbol("c", real=True)
    shifted = sp.exp(a[0] - c) / sum(sp.exp(v - c) for v in a)
    plain = sp.exp(a[0]) / sum(sp.exp(v) for v in a)
    log_softmax = a[0] - c - sp.log(sum(sp.exp(v - c) for v in a))
    return (
        Identity(
            shifted,
            plain,
            N_("softmax is unchanged by subtracting any $c$ (the row maximum) from every input"),
        ),
        Identity(
            sp.log(shifted),
            log_softmax,
            N_(r"$\log y_k$ from the shifted inputs: finite even where $y_k$ rounds to 0"),
        ),
    )


def softmax_with_loss() -> Derivation:
    """dL/da = y - t per sample; (y - t)/N for a batch mean; one-hot or integer labels."""
    graph = graph3()
    three_steps, three = _three_classes(graph)
    general_steps, general = _general()
    batch_steps, batch, integer = _batch(_agree(three, general))
    safe = _safe_forms()
    softmax, log_softmax, _ = kernels(safe)
    loss_rows, loss_labels = _label_loss()
    x, logy, loss = sp.symbols("x log_y loss", real=True)
    return Derivation(
        name="softmax_with_loss",
        title=N_("Softmax-with-Loss"),
        summary=N_("Softmax followed by cross-entropy sends back the output minus the label: $y - t$."),
        forward=_forward(graph),
        graph=graph,
        steps=three_steps + general_steps + batch_steps,
        backward=(Gradient(sp.MatrixSymbol("x", N, K), batch),),
        cache=(Y, T),
        upstream=L,
        kernels=kernels(safe),
        compute=(
            Assign(logy, log_softmax(x)),
            Assign(sp.Symbol("y", real=True), sp.exp(logy)),
            Assign(loss, loss_rows),
        ),
        compute_variants=(("integer labels", (Assign(loss, loss_labels),)),),
        variants=(("integer labels", (Gradient(sp.MatrixSymbol("x", N, K), integer),)),),
        notes=(
            N_(
                r"The chapter's layer is the last one, so its upstream gradient $\frac{\partial L}{\partial L}$ is 1."
            ),
        ),
    )
