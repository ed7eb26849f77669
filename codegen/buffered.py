"""Element-wise formulas as NumPy calls that write into arrays a layer keeps.

Written as one expression, ``x * sigmoid(x)`` makes a new array for every operation.  Arrays
the size of a hidden layer's batch are handed back to the operating system when freed and
faulted in again when allocated, and at 100 x 1000 float32 that costs several times the
arithmetic.  A layer's training-step methods are printed here instead: each operation is
one ufunc call with ``out=`` an array the layer keeps (``self._keep(name, like)``), in place
where the value it overwrites is no longer read, so a step allocates nothing once it has run.

A select between two values, ``Piecewise((a, c), (b, True))``, is written ``a * c + b * ~c``,
free of the data-dependent branch np.where takes on each element, which the random signs of a
hidden layer make the processor mispredict.  Both branches are computed everywhere, so each is
first fed only inputs from its own side (``clamp_branches``): for ``x > k`` the first branch
reads ``max(x, k)`` and the second ``min(x, k)``, and a branch that is infinite on the other
side (``2 - 1/x`` for ``x >= 1``) is never multiplied by 0 there.  Where both branches are 0 at
``k = 0`` the masks drop out: LeakyReLU is ``max(x, 0) + alpha * min(x, 0)``.  A select whose
branch is not finite at k (``x log x`` for ``x > 0`` at 0), or whose condition is not a variable
against a number, stays ``np.where``.  ``sigmoid(u)`` is opened into the kernel's own arithmetic,
``exp(min(u, 0)) / (exp(min(u, 0)) + exp(-max(u, 0)))``, with ``sigmoid(-u)`` written in the
same exponentials, so a layer that needs both (SiLU, GELU) computes them once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from chainrule.codegen.numpy_printer import NumpyPrinter, relu_argument
from chainrule.symbolic.core import prove
from chainrule.symbolic.spec import sigmoid

UFUNCS = {
    sp.exp: "np.exp",
    sp.log: "np.log",
    sp.tanh: "np.tanh",
    sp.sinh: "np.sinh",
    sp.cosh: "np.cosh",
    sp.sin: "np.sin",
    sp.cos: "np.cos",
    sp.atan: "np.arctan",
    sp.Abs: "np.abs",
    expm1: "np.expm1",
    log1p: "np.log1p",
}
COMPARISONS = {"<": "np.less", "<=": "np.less_equal", ">": "np.greater", ">=": "np.greater_equal"}


def open_sigmoid(expr: sp.Basic) -> sp.Basic:
    """Every ``sigmoid(u)`` as the kernel computes it; ``sigmoid(-v)`` in the exponentials of v."""

    def opened(call: sp.Basic) -> sp.Basic:
        u = call.args[0]
        flipped = u.could_extract_minus_sign()
        v = -u if flipped else u
        low, high = sp.exp(sp.Min(v, 0)), sp.exp(-sp.Max(v, 0))
        return (high if flipped else low) / (low + high)

    def is_sigmoid(e: sp.Basic) -> bool:  # the spec's sigmoid, or the kernel called by name
        return isinstance(e, sigmoid) or (isinstance(e, sp.Function) and type(e).__name__ == "sigmoid")

    return expr.replace(is_sigmoid, opened)


_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _two_branches(e: sp.Piecewise) -> sp.Piecewise | None:
    """``e`` as nested two-branch selects ending in an otherwise (True); None when it has no otherwise."""
    if e.args[-1][1] is not sp.true:
        return None
    nested = e.args[-1][0]
    for value, cond in reversed(e.args[:-1]):
        nested = sp.Piecewise((value, cond), (nested, True), evaluate=False)
    return nested


class Where(sp.Function):
    """A select kept as ``np.where(cond, a, b)``: a branch is not finite at the kink, or the
    condition is not a variable against a number, so masked products could turn an unchosen
    branch's inf into NaN."""

    nargs = 3


def _finite_at(e: sp.Basic, at: dict[sp.Basic, sp.Basic]) -> bool:
    """Whether ``e`` has a finite value at ``at`` (other symbols, such as dout, taken as finite)."""
    value = e.xreplace(at)
    return not value.has(sp.nan, sp.zoo, sp.oo, -sp.oo)


def clamp_branches(expr: sp.Basic) -> sp.Basic:
    """Each select on ``x REL k`` (x a variable, k a number) with its branches fed their own side of k.

    ``Piecewise((a(x), x > k), (b(x), True))`` becomes ``Piecewise((a(max(x, k)), x > k),
    (b(min(x, k)), True))``: the same wherever it is evaluated, since max(x, k) = x where x > k
    and min(x, k) = x elsewhere, and each branch finite wherever the function is and at k.  With
    k = 0 and both branches 0 there, the select is their sum, ``a(max(x, 0)) + b(min(x, 0))``:
    one of the two terms is exactly 0.  Each rewrite is proved equal to the select by SymPy, on
    both sides of k and at k; one it cannot prove stays ``np.where``.
    """

    def clamped(e: sp.Piecewise) -> sp.Basic:
        e = _two_branches(e) or e
        if len(e.args) != 2 or e.args[1][1] is not sp.true:
            return e
        (a, cond), (b, _) = e.args
        if cond.is_Symbol:  # a kept mask (ReLU's): the branches are the upstream gradient or 0
            return sp.Piecewise((clamped_all(a), cond), (clamped_all(b), True), evaluate=False)
        simple = isinstance(cond, sp.core.relational.Relational) and cond.rel_op in _FLIPPED
        lhs, rhs, op = (cond.lhs, cond.rhs, cond.rel_op) if simple else (None, None, None)
        if simple and rhs.is_Symbol and lhs.is_number:
            lhs, rhs, op = rhs, lhs, _FLIPPED[op]
        simple = simple and lhs.is_Symbol and rhs.is_number and rhs.is_finite
        if not simple or not (_finite_at(a, {lhs: rhs}) and _finite_at(b, {lhs: rhs})):
            return Where(cond, clamped_all(a), clamped_all(b))
        above, below = sp.Max(lhs, rhs), sp.Min(lhs, rhs)
        own, other = (above, below) if op in (">", ">=") else (below, above)
        a, b = clamped_all(a.xreplace({lhs: own})), clamped_all(b.xreplace({lhs: other}))
        if rhs == 0 and a.xreplace({lhs: 0}) == 0 and b.xreplace({lhs: 0}) == 0:
            rewritten = a + b
        else:
            rewritten = sp.Piecewise((a, cond), (b, True), evaluate=False)
        # Proved before it is printed: SymPy, on each side of the kink and at it.
        y = sp.Dummy("y", real=True)
        if not prove(rewritten.xreplace({lhs: rhs + y}), e.xreplace({lhs: rhs + y}), split=y):
            return Where(cond, a, b)
        return rewritten

    def clamped_all(e: sp.Basic) -> sp.Basic:
        return e.replace(lambda v: isinstance(v, sp.Piecewise), clamped)

    return clamped_all(expr)


@dataclass
class Emitter:
    """Statements that compute formulas into named arrays, each operation one ufunc call.

    ``names`` maps a symbol to its code (``self.x``); ``arrays`` are the symbols holding arrays
    (the rest are numbers such as ``self.alpha``); ``like`` is the code of an array of the
    shape and dtype every value has.
    """

    names: dict[str, str]
    arrays: set[str]
    like: str
    lines: list[str]
    _free: list[str]
    _made: int = 0
    _conditions: int = 0

    @classmethod
    def start(cls, names: dict[str, str], arrays: Sequence[str], like: str) -> Emitter:
        return cls(dict(names), set(arrays), like, [], [])

    # ------------------------------------------------------------ helpers

    def code(self, e: sp.Basic) -> str:
        return NumpyPrinter({"names": self.names}).doprint(e)

    def is_array(self, e: sp.Basic) -> bool:
        return any(s.name in self.arrays for s in e.free_symbols)

    def is_atom(self, e: sp.Basic) -> bool:
        return e.is_Symbol or not self.is_array(e)

    def keep(self, name: str, dtype: str = "") -> str:
        extra = f", {dtype}" if dtype else ""
        return f"self._keep({name!r}, {self.like}{extra})"

    def scratch(self) -> str:
        """A kept array for a value needed only inside one formula, reused once released."""
        if self._free:
            return self._free.pop()
        name = f"_s{self._made}"
        self._made += 1
        self.lines.append(f"{name} = {self.keep(name)}")
        return name

    def release(self, name: str) -> None:
        self._free.append(name)

    def emit(self, line: str) -> None:
        self.lines.append(line)

    # ------------------------------------------------------------ statements

    def assign(self, target: str, expr: sp.Basic, store: str | None = None) -> None:
        """``target`` computed into a kept array of that name; ``store`` also keeps it on the layer."""
        if not self.is_array(expr):  # a number: a Python float, computed once
            self.emit(f"{target} = {self.code(expr)}")
            self.names.setdefault(target, target)
            return
        if isinstance(expr, sp.core.relational.Relational) or isinstance(expr, sp.Not):
            self.emit(f"{target} = {self.keep(target, 'bool')}")
            self.condition_into(expr, target)
        else:
            start = len(self.lines)
            self.into(expr, target)
            first = self.lines[start] if len(self.lines) > start else ""
            suffix = f", out={target})"
            if first.startswith("np.") and first.endswith(suffix) and not first.startswith("np.copyto"):
                # The first call's result is the array: name it there.
                self.lines[start] = f"{target} = {first[: -len(suffix)]}, out={self.keep(target)})"
            else:
                self.lines.insert(start, f"{target} = {self.keep(target)}")
        self.arrays.add(target)
        if store is not None:
            self.emit(f"{store} = {target}")

    # ------------------------------------------------------------ expressions

    def operand(self, e: sp.Basic, dest: str) -> str:
        """Code for an array holding ``e``: its name, or ``dest`` after computing it there."""
        if self.is_atom(e):
            return self.code(e)
        self.into(e, dest)
        return dest

    def into(self, e: sp.Basic, dest: str) -> None:
        """Statements that leave the value of ``e`` in the array ``dest`` (which ``e`` does not read)."""
        if not self.is_array(e) or e.is_Symbol:
            self.emit(f"np.copyto({dest}, {self.code(e)})")
        elif isinstance(e, sp.Add):
            self._add(e, dest)
        elif isinstance(e, sp.Mul):
            self._mul(e, dest)
        elif isinstance(e, sp.Pow):
            self._pow(e, dest)
        elif type(e) in UFUNCS:
            src = self.operand(e.args[0], dest)
            self.emit(f"{UFUNCS[type(e)]}({src}, out={dest})")
        elif isinstance(e, (sp.Min, sp.Max)):
            self._extreme(e, dest)
        elif isinstance(e, sp.Piecewise):
            self._select(e, dest)
        elif isinstance(e, Where):
            self.emit(f"np.copyto({dest}, {self.code(e)})")
        else:
            self.emit(f"{dest}[...] = {self.code(e)}")

    def _signed(self, e: sp.Basic) -> tuple[bool, sp.Basic]:
        return (True, -e) if e.could_extract_minus_sign() else (False, e)

    def _add(self, e: sp.Add, dest: str) -> None:
        number = sp.Add(*(t for t in e.args if not self.is_array(t)))
        terms = sorted((t for t in e.args if self.is_array(t)), key=self.is_atom)
        first, rest = terms[0], terms[1:]
        minus, body = self._signed(first)
        if minus and not rest and number != 0:
            src = self.operand(body, dest)
            self.emit(f"np.subtract({self.code(number)}, {src}, out={dest})")
            return
        if self.is_atom(body) and rest and self.is_atom(rest[0]) and not minus:
            other_minus, other = self._signed(rest[0])
            op = "np.subtract" if other_minus else "np.add"
            self.emit(f"{op}({self.code(body)}, {self.code(other)}, out={dest})")
            rest = rest[1:]
        else:
            self.into(body, dest)
            if minus:
                self.emit(f"np.negative({dest}, out={dest})")
        for term in rest:
            term_minus, term_body = self._signed(term)
            op = "-=" if term_minus else "+="
            if self.is_atom(term_body):
                self.emit(f"{dest} {op} {self.code(term_body)}")
            else:
                s = self.scratch()
                self.into(term_body, s)
                self.emit(f"{dest} {op} {s}")
                self.release(s)
        if number != 0:
            minus, size = self._signed(number)
            self.emit(f"{dest} {'-=' if minus else '+='} {self.code(size)}")

    def _mul(self, e: sp.Mul, dest: str) -> None:
        number = sp.Mul(*(f for f in e.args if not self.is_array(f)))
        factors = [f for f in e.args if self.is_array(f)]
        divisors = [f.base for f in factors if isinstance(f, sp.Pow) and f.exp == -1]
        products = sorted(
            (f for f in factors if not (isinstance(f, sp.Pow) and f.exp == -1)), key=self.is_atom
        )
        if not products:
            first = divisors.pop(0)
            src = self.operand(first, dest)
            self.emit(f"np.divide(1, {src}, out={dest})")
        elif len(products) > 1 and self.is_atom(products[0]) and self.is_atom(products[1]):
            self.emit(f"np.multiply({self.code(products[0])}, {self.code(products[1])}, out={dest})")
            products = products[2:]
        elif self.is_atom(products[0]) and divisors:
            divisor = divisors.pop(0)
            s = None if self.is_atom(divisor) else self.scratch()
            if s is not None:
                self.into(divisor, s)
            self.emit(f"np.divide({self.code(products[0])}, {s or self.code(divisor)}, out={dest})")
            if s is not None:
                self.release(s)
            products = products[1:]
        elif self.is_atom(products[0]) and len(products) == 1 and not divisors and number != 1:
            if number == -1:
                self.emit(f"np.negative({self.code(products[0])}, out={dest})")
            else:
                self.emit(f"np.multiply({self.code(products[0])}, {self.code(number)}, out={dest})")
            return
        else:
            self.into(products[0], dest)
            products = products[1:]
        for op, group in (("*=", products), ("/=", divisors)):
            for f in group:
                if self.is_atom(f):
                    self.emit(f"{dest} {op} {self.code(f)}")
                else:
                    s = self.scratch()
                    self.into(f, s)
                    self.emit(f"{dest} {op} {s}")
                    self.release(s)
        if number == -1:
            self.emit(f"np.negative({dest}, out={dest})")
        elif number != 1:
            self.emit(f"{dest} *= {self.code(number)}")

    def _pow(self, e: sp.Pow, dest: str) -> None:
        base, exp = e.args
        if exp == 3:  # two products: NumPy's float32 power of 3 is a general powf, far slower
            if self.is_atom(base):
                b = self.code(base)
                self.emit(f"np.multiply({b}, {b}, out={dest})")
                self.emit(f"{dest} *= {b}")
            else:
                s = self.scratch()
                self.into(base, s)
                self.emit(f"np.multiply({s}, {s}, out={dest})")
                self.emit(f"{dest} *= {s}")
                self.release(s)
            return
        src = self.operand(base, dest)
        calls = {
            2: ["np.square"],
            -1: ["np.divide(1, "],  # NumPy's reciprocal is half as fast as a division
            -2: ["np.square", "np.divide(1, "],
            sp.S.Half: ["np.sqrt"],
        }.get(exp)
        if calls is None:
            self.emit(f"np.power({src}, {self.code(exp)}, out={dest})")
            return
        for call in calls:
            self.emit(f"{call}{src}, out={dest})" if call.endswith(", ") else f"{call}({src}, out={dest})")
            src = dest

    def _extreme(self, e: sp.Basic, dest: str) -> None:
        fn = "np.minimum" if isinstance(e, sp.Min) else "np.maximum"
        arrays = sorted((a for a in e.args if self.is_array(a)), key=self.is_atom)
        numbers = [a for a in e.args if not self.is_array(a)]
        src = self.operand(arrays[0], dest)
        # Against 0, an array of zeros: NumPy's maximum of an array and a number takes a path
        # some three times slower than that of two arrays.
        others = [f"self._zeros({self.like})" if n == 0 else self.code(n) for n in numbers]
        for a in arrays[1:]:
            if self.is_atom(a):
                others.append(self.code(a))
            else:
                s = self.scratch()
                self.into(a, s)
                self.emit(f"{fn}({src}, {s}, out={dest})")
                src = dest
                self.release(s)
        for other in others:
            self.emit(f"{fn}({src}, {other}, out={dest})")
            src = dest

    def condition_into(self, cond: sp.Basic, dest: str) -> None:
        """A boolean array: a comparison, or the negation of a kept mask."""
        if isinstance(cond, sp.Not):
            self.emit(f"np.logical_not({self.code(cond.args[0])}, out={dest})")
        elif isinstance(cond, sp.core.relational.Relational) and cond.rel_op in COMPARISONS:
            self.emit(f"{COMPARISONS[cond.rel_op]}({self.code(cond.lhs)}, {self.code(cond.rhs)}, out={dest})")
        else:
            self.emit(f"{dest}[...] = {self.code(cond)}")

    def _mask(self) -> str:
        """A new kept boolean array: ``_c0``, ``_c1``, ..."""
        name = f"_c{self._conditions}"
        self._conditions += 1
        self.emit(f"{name} = {self.keep(name, 'bool')}")
        return name

    def _condition(self, cond: sp.Basic) -> str:
        """Code for a boolean array of ``cond``: a kept mask as it is, anything else into a kept array."""
        if cond.is_Symbol:
            return self.code(cond)
        name = self._mask()
        self.condition_into(cond, name)
        return name

    def _select(self, e: sp.Piecewise, dest: str) -> None:
        relu_of = relu_argument(e)
        if relu_of is not None:
            self._extreme(sp.Max(relu_of, 0, evaluate=False), dest)
            return
        e = _two_branches(e) or e
        if len(e.args) != 2 or e.args[1][1] is not sp.true:
            self.emit(f"{dest}[...] = {self.code(e)}")
            return
        (a, cond), (b, _) = e.args
        chosen = self._condition(cond)
        parts = [(value, mask) for value, mask in ((a, chosen), (b, None)) if value != 0]
        if not parts:
            self.emit(f"{dest}[...] = 0")
        for i, (value, mask) in enumerate(parts):
            target = dest if i == 0 else self.scratch()
            if mask is None:
                # The first mask's negation, as np.where takes its second value wherever the
                # condition is not true, at NaN too.
                mask = self._mask()
                self.emit(f"np.logical_not({chosen}, out={mask})")
            if self.is_atom(value):
                self.emit(f"np.multiply({self.code(value)}, {mask}, out={target})")
            else:
                self.into(value, target)
                self.emit(f"{target} *= {mask}")
            if i == 1:
                self.emit(f"{dest} += {target}")
                self.release(target)


def step_lines(
    assigns: Sequence[tuple[str, sp.Basic]],
    names: dict[str, str],
    arrays: Sequence[str],
    like: str,
    store: Callable[[str], str | None] = lambda target: None,
) -> list[str]:
    """Buffer-form statements for ``target = expr`` pairs, in order (see the module's docstring)."""
    emitter = Emitter.start(names, arrays, like)
    for target, expr in assigns:
        emitter.assign(target, expr, store(target))
        emitter.names.setdefault(target, target)
    return emitter.lines
