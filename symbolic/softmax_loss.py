"""Softmax-with-Loss: the appendix's graph for 3 classes, the general case, the batch mean."""

from __future__ import annotations

import sympy as sp

from symbolic.chain import L, backward_steps, in_terms_of, local_steps, mean_node
from symbolic.core import (
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
from symbolic.messages import N_

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


def _three_classes(graph: Graph) -> tuple[tuple[Step, ...], sp.Expr]:
    """dL/da_1 for three classes, reduced to y_1 - t_1 with t_1 + t_2 + t_3 = 1."""
    _, grads, _ = graph.backprop(sp.Integer(1))
    # The exp nodes' local derivatives exp(a_k) are their own outputs e_k.
    raw = grads[a[0]].xreplace({sp.exp(a[k]): e[k] for k in range(C)})
    # y_k = e_k r and r = 1/S: write everything in e and S.
    in_e = sp.cancel(in_terms_of(raw, {y[k]: e[k] * r for k in range(C)}).xreplace({r: 1 / S}))
    one_hot = sp.cancel(in_e.xreplace({t[C - 1]: 1 - sum(t[: C - 1])}))
    in_y = sp.expand(one_hot.xreplace({e[0]: y[0] * S}))
    steps = (
        Step(Partial(L, a[0]), (raw,), N_("the backward pass above, in the nodes' variables")),
        Step(Partial(L, a[0]), (in_e,), N_("substitute $y_k = e_k r$ and $r = 1/S$")),
        Step(Partial(L, a[0]), (one_hot, in_y), N_("the labels sum to one, and $e_1/S = y_1$")),
    )
    return steps, in_y


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
        Step(
            L,
            (loss,),
            N_(r"$\log y_i = a_i - \log \sum_j e^{a_j}$, and the last term does not depend on $i$"),
        ),
        Step(Partial(L, A[k]), (inside,), N_(r"SymPy differentiates the indexed sums ($1 \le k \le n$)")),
        Step(
            Partial(L, A[k]),
            (with_one, in_y),
            N_(r"the labels sum to one, and $e^{a_k} / \sum_j e^{a_j} = y_k$"),
        ),
    )
    return steps, in_y


def _batch_mean() -> tuple[tuple[Step, ...], sp.Expr]:
    """The loss of a batch is the mean of N samples' losses; the mean node's local derivative is 1/N."""
    mean, weight, Lb, i = mean_node(N)
    return (
        Step(L, (mean,), N_("the batch loss is the mean over its $N$ samples")),
        Step(Partial(L, Lb[i]), (weight,), N_("local derivative of the mean node")),
    ), weight


def _agree(three: sp.Expr, general: sp.Expr) -> sp.Expr:
    """The n-class result, checked against the 3-class graph's at k = 1; ValueError if they differ."""
    (k,) = {v.indices[0] for v in general.atoms(sp.Indexed)}
    at_one = general.subs(k, 1).xreplace({sp.IndexedBase("y")[1]: y[0], sp.IndexedBase("t")[1]: t[0]})
    if sp.expand(at_one - three) != 0:
        raise ValueError(f"the 3-class result {three} and the n-class result {general} disagree at k = 1")
    return general


def _to_batch(general: sp.Expr, weight: sp.Expr) -> tuple[tuple[Step, ...], sp.Expr, sp.Expr, Identity]:
    """Carry one sample's dL/da_k into the batch: the chain rule through the mean, then matrix form.

    Sample i's y_k, t_k are the entries y_ik, t_ik of the batch's matrices; the
    entry's expression, with each entry replaced by its whole matrix, is the
    matrix form, and an identity checks that it gives back every entry.
    Integer labels stand for the one-hot matrix, which replaces t.
    """
    i = sp.Symbol("i", integer=True)
    (k,) = {v.indices[0] for v in general.atoms(sp.Indexed)}
    entries = {sp.IndexedBase("y")[k]: Y[i, k], sp.IndexedBase("t")[k]: T[i, k]}
    entry = dout * weight * general.xreplace(entries)
    batch = entry.xreplace({Y[i, k]: Y, T[i, k]: T})
    integer = batch.xreplace({T: OneHot(sp.Symbol("t"), N, K)})
    x = sp.MatrixSymbol("x", N, K)
    steps = (
        Step(
            Partial(L, x[i, k]),
            (Chain(Partial(L, sp.IndexedBase("L")[i]), Partial(sp.IndexedBase("L")[i], x[i, k])), entry),
            N_(
                r"chain rule: the upstream gradient times the mean node's local derivative times sample $i$'s own $y_k - t_k$"
            ),
        ),
        Step(
            Partial(L, x),
            (batch,),
            N_("every entry has this form: write it with the whole matrices $Y$ and $T$"),
        ),
        Step(Partial(L, x), (integer,), N_("integer labels stand for the one-hot rows they index")),
    )
    proof = Identity(batch[i, k], entry, N_("entry $(i, k)$ of the matrix form is the chain rule's entry"))
    return steps, batch, integer, proof


def _label_loss() -> tuple[tuple[Step, ...], sp.Expr, sp.Expr]:
    """The batch loss in the layer's variables, for label rows and for integer labels.

    The loss is the mean of the samples' cross-entropy errors, each label row weighting the
    log-probabilities: one formula for one-hot rows and for any distribution.  An integer label
    t_i stands for the one-hot row delta(k, t_i); SymPy sums that row against the log-probabilities
    and only the label's term is left: the pick, proved equal to the one-hot form.
    Returns the steps, and the two forms with ``log_y`` and ``t`` standing for whole arrays.
    """
    n = sp.Symbol("n", integer=True, positive=True)
    i, k = sp.symbols("i k", integer=True)
    label = sp.IndexedBase("t")[i]
    Tb, Yb = sp.IndexedBase("t"), sp.IndexedBase("y")
    rows = -sp.Sum(sp.Sum(Tb[i, k] * sp.log(Yb[i, k]), (k, 1, n)), (i, 1, N)) / N
    one_hot = sp.Sum(sp.KroneckerDelta(k, label) * sp.log(Yb[i, k]), (k, 1, n))
    summed = one_hot.doit()
    # The sum keeps the label's term where 1 <= t_i <= n: labels are checked to be classes.
    (picked, inside), *_ = summed.args if isinstance(summed, sp.Piecewise) else ((summed, sp.true),)
    if inside.subs({label: 1, n: 1}) is not sp.true or picked != sp.log(Yb[i, label]):
        raise ValueError(f"the one-hot sum {one_hot} does not reduce to the pick: {summed}")
    steps = (
        Step(
            L,
            (rows,),
            N_("the batch loss: the mean of the samples' cross-entropy errors, for any label rows"),
        ),
        Step(
            L,
            (-sp.Sum(one_hot, (i, 1, N)) / N, -sp.Sum(picked, (i, 1, N)) / N),
            N_(
                r"an integer label $t_i$ stands for the one-hot row $\delta_{k t_i}$: only the label's term is left"
            ),
        ),
    )
    logy, t_ = sp.Symbol("log_y", real=True), sp.Symbol("t", real=True)
    return steps, -Total(t_ * logy) / N, -Total(Pick(logy, t_)) / N


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
            sp.expand_log(sp.log(shifted), force=True),
            log_softmax,
            N_(r"$\log y_k$ from the shifted inputs: finite even where $y_k$ rounds to 0"),
        ),
    )


def softmax_with_loss() -> Derivation:
    """dL/da = y - t per sample; (y - t)/N for a batch mean; one-hot or integer labels."""
    graph = graph3()
    three_steps, three = _three_classes(graph)
    general_steps, general = _general()
    mean_steps, weight = _batch_mean()
    batch_steps, batch, integer, entry_proof = _to_batch(_agree(three, general), weight)
    safe = _safe_forms()
    softmax, log_softmax, _ = kernels(safe)
    label_steps, loss_rows, loss_labels = _label_loss()
    x, logy, loss = sp.symbols("x log_y loss", real=True)
    forward = (
        Step(
            y[0],
            (sp.exp(a[0]) / sp.Add(*(sp.exp(v) for v in a)),),
            N_("softmax ($k = 1$; likewise $k = 2, 3$)"),
        ),
        Step(
            L, (-sp.Add(*(tk * sp.log(yk) for tk, yk in zip(t, y, strict=True))),), N_("cross-entropy error")
        ),
    )
    return Derivation(
        name="softmax_with_loss",
        title=N_("Softmax-with-Loss"),
        summary=N_("Softmax followed by cross-entropy sends back the output minus the label: $y - t$."),
        forward=forward,
        graph=graph,
        steps=local_steps(graph)
        + backward_steps(graph, sp.Integer(1))
        + three_steps
        + general_steps
        + mean_steps
        + batch_steps
        + label_steps,
        backward=(Gradient(sp.MatrixSymbol("x", N, K), batch),),
        cache=(Y, T),
        upstream=L,
        identities=(entry_proof, *safe),
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
            N_(
                r"With integer labels $t$, the one-hot rows are built from $t$: $\frac{\partial L}{\partial X} = (Y - \operatorname{onehot}(t)) / N$."
            ),
        ),
    )
