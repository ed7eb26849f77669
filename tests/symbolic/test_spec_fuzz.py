"""Random formulas and spec files: each ends in a layer or one line naming the spec, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.packages import bounded
from chainrule.packages.specfile import read_specs
from chainrule.symbolic.from_spec import SpecDerivation
from chainrule.symbolic.spec import FUNCTIONS, Spec, SpecError, parse_formula

WHERE = "fuzz.toml:2"
ONE_ARGUMENT = sorted(name for name, (_, arity) in FUNCTIONS.items() if arity == 1)

numbers = st.one_of(
    st.sampled_from(["0", "1", "2", "0.5", "3.25", "1e-3", "pi", "e"]),
    st.integers(-1000, 1000).map(str),
    st.integers(-(10**400), 10**400).map(str),
    st.floats(allow_nan=False).map(repr),  # includes 'inf' and 1e308
)
leaves = st.one_of(st.sampled_from(["x", "x", "alpha"]), numbers)
comparisons = st.sampled_from([">", "<", ">=", "<="])


def grammar(max_leaves: int) -> st.SearchStrategy[str]:
    """Formulas of the spec grammar, with conditions sometimes where values go."""

    def extend(kids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(kids, st.sampled_from(["+", "-", "*", "/", "**"]), kids).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(st.sampled_from(ONE_ARGUMENT), kids).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(["max", "min"]), kids, kids).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.tuples(kids, kids, comparisons, kids, kids).map(
                lambda t: f"({t[0]} if {t[1]} {t[2]} {t[3]} else {t[4]})"
            ),
            st.tuples(kids, comparisons, kids, kids, kids).map(
                lambda t: f"where({t[0]} {t[1]} {t[2]}, {t[3]}, {t[4]})"
            ),
            st.tuples(kids, comparisons, kids).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),  # a condition as a value
            kids.map(lambda a: f"-{a}"),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def nested(template: str) -> st.SearchStrategy[str]:
    """``template`` with ``@`` replaced by itself 0 to 400 times around an ``x``: deep nesting."""
    return st.integers(0, 400).map(lambda n: _nest(template, n))


def _nest(template: str, n: int) -> str:
    head, tail = template.split("@")
    return head * n + "x" + tail * n


junk = st.one_of(
    nested("exp(@)"),
    nested("-@"),
    nested("(@)"),
    nested("x**(@)"),
    st.integers(1, 12).map(lambda n: "x" + "**x" * n),
    st.text(alphabet="x()+-*/<>=#.,e019 _ifelsw[]{}'\"\\\n\t\x00ｘ", max_size=60),
    st.text(max_size=30),
    st.lists(
        st.sampled_from(["x", "+", "*", "**", "(", ")", "9", "if", "else", "exp", ">", "lambda", ":", "."]),
        max_size=25,
    ).map(" ".join),
)


def one_line(err: SpecError) -> bool:
    text = str(err)
    return text.startswith(f"{WHERE}: Fuzz: ") and "\n" not in text and "Traceback" not in text


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(grammar(12), junk))
def test_any_formula_parses_to_a_value_or_one_line(text):
    spec = Spec("Fuzz", text, where=WHERE)
    variables = {"x": sp.Symbol("x", real=True), "alpha": sp.Symbol("alpha", real=True)}
    try:
        expr = parse_formula(text, variables, spec)
    except SpecError as err:
        assert one_line(err), str(err)
    else:
        assert isinstance(expr, sp.Expr)
        assert not expr.has(sp.zoo, sp.nan, sp.oo, sp.S.NegativeInfinity)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(grammar(6), grammar(6), junk))
def test_any_formula_derives_within_the_limits_or_is_one_line(text):
    spec = Spec("Fuzz", text, constants=(("alpha", 0.5),), where=WHERE)
    with mock.patch.object(bounded, "SPEC_SECONDS", 2.0):  # the worker's limit, shortened for the suite
        try:
            (sd,) = bounded.derive_bounded([spec])
        except SpecError as err:
            assert one_line(err), str(err)
        else:
            assert isinstance(sd, SpecDerivation) and sd.spec == spec
            assert sd.derivation.backward and sd.cached in ("x", "out")


@settings(max_examples=100, deadline=None, database=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_any_spec_file_is_read_or_refused_in_one_line(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text("[[layer]]\n" + content, encoding="utf-8", errors="surrogatepass")
        try:
            specs = read_specs(path)
        except SpecError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err), str(err)
        else:
            assert all(isinstance(s, Spec) for s in specs)
