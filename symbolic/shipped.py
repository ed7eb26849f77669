"""The activations and the loss chainrule ships, written as specs like a user's."""

from __future__ import annotations

from chainrule.symbolic.spec import Spec

SHIPPED: tuple[Spec, ...] = (
    Spec("Tanh", "tanh(x)", where="symbolic/shipped.py"),
    Spec(
        "LeakyReLU",
        "x if x > 0 else alpha * x",
        short="leaky_relu",
        constants=(("alpha", 0.01),),
        init="he",
        where="symbolic/shipped.py",
    ),
    Spec(
        "ELU",
        "x if x > 0 else alpha * (exp(x) - 1)",
        constants=(("alpha", 1.0),),
        init="he",
        where="symbolic/shipped.py",
    ),
    Spec(
        "Softplus",
        "log(1 + exp(x))",
        safe="max(x, 0) + log(1 + exp(-abs(x)))",
        init="he",
        where="symbolic/shipped.py",
    ),
    Spec("SiLU", "x * sigmoid(x)", init="he", where="symbolic/shipped.py"),
    Spec(
        "GELU",
        "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))",
        init="he",
        where="symbolic/shipped.py",
    ),
    Spec(
        "MeanSquaredError",
        "0.5 * (y - t)**2",
        kind="loss",
        short="mean_squared_error",
        where="symbolic/shipped.py",
    ),
)
