"""The derivations: each result equals the textbook's formula, symbolically and numerically."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from chainrule import symbolic
from chainrule.symbolic import activations, graphs, linear, softmax_loss
from chainrule.symbolic.core import Partial
from tests.helpers import central_difference, relative_error

rng = np.random.default_rng(20261127)


def grad(name: str, wrt: str) -> sp.Basic:
    return symbolic.derive(name).gradient(wrt).expr


def test_every_name_builds_and_unknown_names_are_refused():
    assert symbolic.NAMES == (
        "computational_graph", "chain_rule", "add", "mul", "apples", "apples_oranges",
        "relu", "sigmoid", "affine", "softmax_with_loss",
        "tanh", "leaky_relu", "elu", "softplus", "silu", "gelu", "mean_squared_error",
    )  # fmt: skip
    for name in symbolic.NAMES:
        assert symbolic.derive(name).name == name
    with pytest.raises(symbolic.UnknownDerivation, match="valid names: computational_graph, chain_rule"):
        symbolic.derive("swish")


def test_add_node_passes_the_gradient_through():
    dout = sp.Symbol("dout", real=True)
    assert grad("add", "dx") == dout and grad("add", "dy") == dout
    (ex,) = symbolic.derive("add").examples
    assert ex.value(graphs.z) == 15
    assert ex.grad(graphs.x) == sp.Rational(13, 10) and ex.grad(graphs.y) == sp.Rational(13, 10)


def test_mul_node_swaps_its_inputs():
    x, y, dout = graphs.x, graphs.y, sp.Symbol("dout", real=True)
    assert (grad("mul", "dx") - dout * y).equals(0)
    assert (grad("mul", "dy") - dout * x).equals(0)
    (ex,) = symbolic.derive("mul").examples
    assert ex.value(graphs.z) == 50
    assert ex.grad(x) == sp.Rational(13, 2) and ex.grad(y) == 13  # 6.5 and 13


def test_chain_rule_gives_two_x_plus_y():
    x, y = graphs.x, graphs.y
    assert (grad("chain_rule", "dx") - 2 * (x + y)).equals(0)
    d = symbolic.derive("chain_rule")
    # the chain step multiplies dz/dt = 2t by dt/dx = 1
    step = next(s for s in d.steps if s.reason.startswith("chain rule through $t$"))
    assert step.rhs[1].args == (2 * graphs.t, 1)


@pytest.mark.parametrize(
    ("name", "price", "grads"),
    [
        ("apples", 220, {"apple": "2.2", "apple_num": 110, "tax": 200}),
        (
            "apples_oranges",
            715,
            {"apple": "2.2", "apple_num": 110, "orange": "3.3", "orange_num": 165, "tax": 650},
        ),
    ],
)
def test_shopping_graphs_in_exact_arithmetic(name, price, grads):
    (ex,) = symbolic.derive(name).examples
    assert ex.value(graphs.price) == price
    for var, expected in grads.items():
        assert ex.grad(sp.Symbol(var, real=True)) == sp.Rational(expected)


def test_apples_oranges_every_edge_carries_both_values():
    (ex,) = symbolic.derive("apples_oranges").examples
    edges = {(e.src.name, e.dst.name): (e.forward, e.backward) for e in ex.edges}
    half = sp.Rational(11, 10)
    assert edges == {
        ("apple", "apple_price"): (100, sp.Rational(11, 5)),
        ("apple_num", "apple_price"): (2, 110),
        ("orange", "orange_price"): (150, sp.Rational(33, 10)),
        ("orange_num", "orange_price"): (3, 165),
        ("apple_price", "all_price"): (200, half),
        ("orange_price", "all_price"): (450, half),
        ("all_price", "price"): (650, half),
        ("tax", "price"): (half, 650),
    }


def test_shopping_backward_is_symbolic_too():
    g = graphs
    assert grad("apples_oranges", "dtax") == g.apple * g.apple_num + g.orange * g.orange_num


def test_relu_derivative_and_its_convention_at_zero():
    d = symbolic.derive("relu")
    local = d.graph.nodes[0].local[0]
    x = activations.x
    assert [local.subs(x, v) for v in (-2, 0, sp.Rational(1, 3))] == [0, 0, 1]
    dx = d.gradient("dx").expr
    dout = sp.Symbol("dout", real=True)
    assert dx.subs({activations.mask: True, dout: 5}) == 0
    assert dx.subs({activations.mask: False, dout: 5}) == 5
    assert "chapter's convention" in d.notes[0]


def test_relu_matches_central_differences_away_from_the_kink():
    dx = symbolic.derive("relu").gradient("dx").expr
    f = sp.lambdify((activations.mask, sp.Symbol("dout", real=True)), dx, "numpy")
    x = rng.uniform(-3, 3, size=50)
    x = x[np.abs(x) > 1e-3]
    dout = rng.normal(size=x.shape)
    numeric = central_difference(lambda v: float(np.sum(dout * np.maximum(v, 0))), x)
    assert relative_error(f(x <= 0, dout), numeric) <= 1e-6


def test_sigmoid_backward_is_y_one_minus_y():
    out, dout = activations.out, sp.Symbol("dout", real=True)
    d = symbolic.derive("sigmoid")
    assert (d.gradient("dx").expr - dout * out * (1 - out)).equals(0)
    assert d.cache == (out,)
    # the four local derivatives, and their product y^2 exp(-x) on the way
    assert [n.local[0] for n in d.graph.nodes][:3] == [-1, sp.exp(sp.Symbol("a", real=True)), 1]
    assert any(s.rhs[-1] == dout * out**2 * sp.exp(-activations.x) for s in d.steps)
    assert all(i.holds() for i in d.identities)


def test_sigmoid_matches_central_differences():
    dx = symbolic.derive("sigmoid").gradient("dx").expr
    f = sp.lambdify((activations.out, sp.Symbol("dout", real=True)), dx, "numpy")
    x = rng.normal(scale=3, size=40)
    dout = rng.normal(size=x.shape)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    numeric = central_difference(lambda v: float(np.sum(dout * sig(v))), x)
    assert relative_error(f(sig(x), dout), numeric) <= 1e-6


def test_affine_gradients_are_the_transposes():
    A = linear
    d = symbolic.derive("affine")
    assert d.gradient("dx").expr == A.dout * A.W.T
    assert d.gradient("dW").expr == A.x.T * A.dout
    assert d.gradient("db").expr == sp.OneMatrix(1, A.N) * A.dout
    assert [i.holds() for i in d.identities] == [True, True, True]


def test_affine_matches_central_differences():
    d = symbolic.derive("affine")
    n, dim, m = 4, 5, 3
    X, W, b = rng.normal(size=(n, dim)), rng.normal(size=(dim, m)), rng.normal(size=(1, m))
    G = rng.normal(size=(n, m))
    env = {"x": X, "W": W, "b": b, "dout": G, "N": n}

    def evaluate(name):
        expr = d.gradient(name).expr
        args = sorted(expr.free_symbols, key=lambda s: s.name)
        return sp.lambdify(args, expr, "numpy")(*(env[a.name] for a in args))

    loss = lambda X_, W_, b_: float(np.sum(G * (X_ @ W_ + b_)))  # noqa: E731
    assert relative_error(evaluate("dx"), central_difference(lambda v: loss(v, W, b), X)) <= 1e-6
    assert relative_error(evaluate("dW"), central_difference(lambda v: loss(X, v, b), W)) <= 1e-6
    assert relative_error(evaluate("db"), central_difference(lambda v: loss(X, W, v), b)) <= 1e-6


def test_softmax_with_loss_three_classes_reduces_to_y_minus_t():
    d = symbolic.derive("softmax_with_loss")
    S = softmax_loss
    three = next(s for s in d.steps if s.lhs == Partial(S.L, S.a[0]))
    assert three.rhs[-1] == S.y[0] - S.t[0]
    k = sp.Symbol("k", integer=True)
    general = next(s for s in d.steps if s.lhs == Partial(S.L, sp.IndexedBase("a")[k]))
    assert general.rhs[-1] == sp.IndexedBase("y")[k] - sp.IndexedBase("t")[k]
    assert all(i.holds() for i in d.identities)


def test_softmax_with_loss_batch_gradient_is_the_textbook_formula():
    S = softmax_loss
    d = S.softmax_with_loss()
    textbook = S.dout * (S.Y - S.T) / S.N
    assert (d.gradient("dx").expr - textbook).doit() == sp.ZeroMatrix(S.N, S.K)
    ((_, (integer,)),) = d.variants
    one_hot = S.OneHot(sp.Symbol("t"), S.N, S.K)
    assert (integer.expr - S.dout * (S.Y - one_hot) / S.N).doit() == sp.ZeroMatrix(S.N, S.K)
    # Entry (i, k) of the matrix form is sample i's y_k - t_k over N (checked while the derivation is built).
    i, k = sp.symbols("i k", integer=True)
    assert sp.simplify(d.gradient("dx").expr[i, k] - S.dout * (S.Y[i, k] - S.T[i, k]) / S.N) == 0


def _swapped(monkeypatch, three=None, general=None, weight=None):
    """softmax_with_loss() rebuilt with one of its derived results replaced."""
    S = softmax_loss
    k = sp.Symbol("k", integer=True)
    if three is not None:
        monkeypatch.setattr(S, "_three_classes", lambda g: ((), three))
    if general is not None:
        monkeypatch.setattr(
            S, "_general", lambda: ((), general(sp.IndexedBase("y")[k], sp.IndexedBase("t")[k]))
        )
    if weight is not None:
        mean, _, losses, i = S.mean_node(S.N)
        monkeypatch.setattr(S, "mean_node", lambda count: (mean, weight, losses, i))
    return S.softmax_with_loss()


def test_softmax_with_loss_gradient_is_carried_from_the_derived_results(monkeypatch):
    S = softmax_loss
    d = _swapped(monkeypatch, three=S.y[0] - 2 * S.t[0], general=lambda yk, tk: yk - 2 * tk)
    assert (d.gradient("dx").expr - S.dout * (S.Y - 2 * S.T) / S.N).doit() == sp.ZeroMatrix(S.N, S.K)
    assert (d.gradient("dx").expr - S.dout * (S.Y - S.T) / S.N).doit() != sp.ZeroMatrix(S.N, S.K)


def test_softmax_with_loss_batch_gradient_follows_the_mean_node(monkeypatch):
    S = softmax_loss
    d = _swapped(monkeypatch, weight=3 / S.N)
    assert (d.gradient("dx").expr - 3 * S.dout * (S.Y - S.T) / S.N).doit() == sp.ZeroMatrix(S.N, S.K)


def test_softmax_with_loss_refuses_disagreeing_class_results(monkeypatch):
    with pytest.raises(ValueError, match="disagree"):
        _swapped(monkeypatch, general=lambda yk, tk: 2 * (yk - tk))


@pytest.mark.parametrize("labels", ["one_hot", "integer"])
def test_softmax_with_loss_matches_central_differences(labels):
    n, c = 4, 5
    a = rng.normal(size=(n, c))
    classes = rng.integers(0, c, size=n)
    t = np.eye(c)[classes]

    def loss(v):
        e = np.exp(v - v.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
        if labels == "integer":
            return float(-np.mean(np.log(y[np.arange(n), classes])))
        return float(-np.sum(t * np.log(y)) / n)

    d = symbolic.derive("softmax_with_loss")
    expr = d.gradient("dx").expr
    S = softmax_loss
    y = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    f = sp.lambdify((S.dout, S.Y, S.T, S.N), expr, "numpy")
    assert relative_error(f(1.0, y, t, n), central_difference(loss, a)) <= 1e-6
