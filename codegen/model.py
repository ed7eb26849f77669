"""What the templates are given: every formula already printed, as strings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache

import sympy as sp

from chainrule.codegen.buffered import clamp_branches, open_sigmoid, step_lines
from chainrule.codegen.latex import latex
from chainrule.codegen.numpy_printer import NumpyPrinter, buffer_statement, cse_lines
from chainrule.symbolic import derive
from chainrule.symbolic.core import Assign, Derivation, Gradient, Kernel, Node
from chainrule.symbolic.from_spec import SpecDerivation, derive_spec
from chainrule.symbolic.shipped import SHIPPED
from chainrule.symbolic.spec import Spec


@dataclass(frozen=True)
class LayerSpec:
    """How a derivation becomes a class with the chapter's interface."""

    cls: str
    derivation: str
    inputs: tuple[str, ...]
    params: tuple[str, ...] = ()
    reshape: bool = False  # Affine: a 4-D input is flattened, its gradient reshaped back
    labels: bool = False  # SoftmaxWithLoss: one-hot or integer labels
    extra_cache: tuple[str, ...] = ()
    constants: tuple[tuple[str, float], ...] = ()  # keyword arguments with defaults, e.g. alpha=0.01
    loss: bool = False  # a loss layer from a spec: forward(y, t) returns the batch mean
    activation: str | None = None  # its name for MultiLayerNet's activation=...
    init: str | None = None  # "he" or "xavier", for the weights before it


# The chapter's layers, in its order.
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("MulLayer", "mul", ("x", "y")),
    LayerSpec("AddLayer", "add", ("x", "y")),
    LayerSpec("Relu", "relu", ("x",), activation="relu", init="he"),
    LayerSpec("Sigmoid", "sigmoid", ("x",), activation="sigmoid", init="xavier"),
    LayerSpec("Affine", "affine", ("x",), params=("W", "b"), reshape=True, extra_cache=("original_x_shape",)),
    LayerSpec(
        "SoftmaxWithLoss",
        "softmax_with_loss",
        ("x", "t"),
        labels=True,
        extra_cache=("loss", "original_x_shape"),
    ),
)


@dataclass(frozen=True)
class Assignment:
    """``target = code``; ``expr`` and ``names`` keep what it was printed from, for the buffer form."""

    target: str
    code: str
    expr: sp.Basic | None = field(default=None, compare=False)
    names: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class KernelModel:
    """A module-level function: its temporaries, then its result."""

    name: str
    params: tuple[str, ...]
    doc: str
    formula: str
    temps: tuple[Assignment, ...]
    result: str
    labels_temps: tuple[Assignment, ...] = ()  # the integer-label form, for a kernel of scores and labels
    labels_result: str | None = None


@dataclass(frozen=True)
class LayerModel:
    """A layer class, every line of its forward and backward printed from its derivation."""

    spec: LayerSpec
    title: str
    forward_tex: tuple[str, ...]
    backward_tex: tuple[str, ...]
    caches: tuple[str, ...]
    forward: tuple[Assignment, ...]
    result: str
    backward: tuple[Assignment, ...]
    returns: tuple[str, ...]
    variant: tuple[Assignment, ...]
    # Forward lines that differ by label kind: label rows (``forward_rows``) or integer labels.
    forward_rows: tuple[Assignment, ...] = ()
    forward_labels: tuple[Assignment, ...] = ()
    # An activation's training-step methods, in buffer form (see ``activation_step``).
    step: Step | None = None

    @property
    def param_grads(self) -> tuple[Assignment, ...]:
        """The backward lines that set parameter gradients (``self.dW = ...``)."""
        return tuple(a for a in self.backward if a.target.startswith("self."))


@dataclass(frozen=True)
class Step:
    """An activation's ``step_forward`` and ``step_backward``: statements, then the array returned."""

    forward: tuple[str, ...]
    result: str
    backward: tuple[str, ...]
    returns: str
    kept: tuple[str, ...]  # values step_forward keeps for step_backward, beyond the derivation's cache


def activation_step(spec: LayerSpec, d: Derivation) -> Step:
    """The derivation's forward and backward as one training step, each pass into a kept array.

    The forward and backward formulas go through one common-subexpression pass: a value both
    need (SiLU's sigmoid(x), GELU's exponentials) is computed by ``step_forward`` into an array
    the layer keeps and read back by ``step_backward``.  A value only backward needs stays there.
    The derivation's cached values are kept as ``forward`` keeps them (``self.out``).
    """
    (grad,) = d.backward
    cache = {v.name for v in d.cache}
    constants = {c: f"self.{c}" for c, _ in spec.constants}
    defs: dict[sp.Basic, sp.Basic] = {}
    masks, computed = [], []
    for a in d.compute:
        expr = a.expr.xreplace(defs)
        if isinstance(expr, (sp.core.relational.Relational, sp.Not)):
            masks.append((a.target.name, expr))  # a mask: kept as it is, never a common subexpression
        else:
            computed.append((a.target.name, clamp_branches(open_sigmoid(expr))))
        if a.target in d.cache:
            defs[a.target] = a.expr  # later lines read the formula: ReLU's output is max(x, 0)
    backward = clamp_branches(open_sigmoid(grad.expr))
    temps, reduced = sp.cse(
        [e for _, e in computed] + [backward],
        symbols=sp.numbered_symbols("_tmp"),
        optimizations=None,
        order="canonical",
    )
    # A temporary that is a number (GELU's sqrt(2/pi)) is written into the formulas that use it.
    arrays = {"x", "dout", *(a.target.name for a in d.compute), *cache}
    numbers: dict[sp.Basic, sp.Basic] = {}
    for t, e in temps:
        if any(s.name in arrays for s in e.free_symbols):
            arrays.add(t.name)
        else:
            numbers[t] = e.xreplace(numbers)
    temps = [(t, e.xreplace(numbers)) for t, e in temps if t not in numbers]
    reduced = [e.xreplace(numbers) for e in reduced]
    *forward_exprs, backward_expr = reduced
    uses = {t: e.free_symbols for t, e in temps}

    def reaches(roots: set[sp.Basic]) -> set[sp.Basic]:
        seen, todo = set(), list(roots)
        while todo:
            s = todo.pop()
            if s in uses and s not in seen:
                seen.add(s)
                todo.extend(uses[s])
        return seen

    in_forward = reaches(set().union(*(e.free_symbols for e in forward_exprs)))
    kept = [t for t, _ in temps if t in in_forward and t in reaches(backward_expr.free_symbols)]
    forward_assigns = [*masks, *((t.name, e) for t, e in temps if t in in_forward)]
    forward_assigns += [(target, e) for (target, _), e in zip(computed, forward_exprs, strict=True)]
    forward = step_lines(
        forward_assigns,
        constants,
        ["x"],
        "x",
        store=lambda target: f"self.{target}" if target in cache else None,
    )
    if "x" in cache:
        forward.insert(0, "self.x = x")
    names = {**constants, **{c: f"self.{c}" for c in cache}}
    names.update({t.name: f"self._buffers[{t.name!r}]" for t in kept})
    backward_assigns = [(t.name, e) for t, e in temps if t not in in_forward] + [("dx", backward_expr)]
    backward_lines = step_lines(backward_assigns, names, ["dout", *cache, *(t.name for t in kept)], "dout")
    return Step(
        forward=tuple(forward),
        result=computed[-1][0],
        backward=tuple(backward_lines),
        returns="dx",
        kept=tuple(t.name for t in kept),
    )


def _names(d: Derivation, spec: LayerSpec) -> dict[str, str]:
    """In backward, cached values, parameters and constants are read from the layer."""
    stored = {v.name for v in d.cache} | set(spec.params) | {c for c, _ in spec.constants}
    names = {n: f"self.{n}" for n in stored}
    names.update({"batch_size": "batch_size", "n_classes": "self.y.shape[1]"})
    return names


def kernel_model(k: Kernel) -> KernelModel:
    """A safe kernel with common subexpressions pulled out."""
    names = {"batch_size": f"{k.params[0].name}.shape[0]"}
    temps, (result,) = cse_lines([k.body], names)
    labels_temps, labels_result = [], None
    if k.labels_body is not None:
        labels_temps, (labels_result,) = cse_lines([k.labels_body], names)
    return KernelModel(
        name=k.name,
        params=tuple(p.name for p in k.params),
        doc=k.doc,
        formula=latex(k.body),
        temps=tuple(Assignment(*t) for t in temps),
        result=result,
        labels_temps=tuple(Assignment(*t) for t in labels_temps),
        labels_result=labels_result,
    )


def _gradients(grads: tuple[Gradient, ...], names: dict[str, str], spec: LayerSpec) -> tuple[Assignment, ...]:
    """Backward lines; a subexpression used twice is computed once, as ``_tmp0``."""
    temps, codes = cse_lines([g.expr for g in grads], names)
    params = set(spec.params)
    lines = [Assignment(*t) for t in temps]
    for g, code in zip(grads, codes, strict=True):
        lines.append(Assignment(f"self.{g.name}" if g.wrt.name in params else g.name, code))
    return tuple(lines)


def layer_model(spec: LayerSpec, d: Derivation | None = None) -> LayerModel:
    """Print one layer's forward and backward from its derivation."""
    d = d or derive(spec.derivation)
    cache = {v.name for v in d.cache}
    # Forward: a value the layer caches is stored on it and read back from it.
    names = {p: f"self.{p}" for p in spec.params} | {c: f"self.{c}" for c, _ in spec.constants}
    last = d.compute[-1].target if d.compute else None

    def line(a: Assign) -> Assignment:
        target = a.target.name
        code = NumpyPrinter({"names": names}).doprint(a.expr)
        if target in cache or (a.target == last and target in spec.extra_cache):
            names[target] = f"self.{target}"
        return Assignment(names.get(target, target), code)

    # Lines a variant replaces are printed apart, once for each kind of labels.
    varied = {a.target for _, lines in d.compute_variants for a in lines}
    forward = [line(a) for a in d.compute if a.target not in varied]
    rows = tuple(line(a) for a in d.compute if a.target in varied)
    labels = tuple(line(a) for _, lines in d.compute_variants for a in lines)
    backward_names = _names(d, spec)
    variant: tuple[Assignment, ...] = ()
    for _, grads in d.variants:
        variant = _gradients(grads, backward_names, spec)
    return LayerModel(
        spec=spec,
        title=d.title,
        forward_tex=tuple(
            f"{latex(a.target)} = {latex(a.expr)}"
            for a in (*d.compute, *(a for _, lines in d.compute_variants for a in lines))
        ),
        backward_tex=tuple(
            f"{latex(sp.Symbol('dout'), g.wrt, d.loss)} = {latex(g.expr, d.upstream, d.loss)}"
            for g in d.backward
        ),
        caches=tuple(sorted(cache | set(spec.extra_cache))),
        forward=tuple(forward),
        result=(*forward, *rows)[-1].target,
        backward=_gradients(d.backward, backward_names, spec),
        returns=tuple(g.name for g in d.backward if g.wrt.name not in spec.params),
        variant=variant,
        forward_rows=rows,
        forward_labels=labels,
        step=activation_step(spec, d) if spec.activation else None,
    )


@cache
def derive_shipped(spec: Spec) -> SpecDerivation:
    """Shipped specs are derived once per process."""
    return derive_spec(spec)


@dataclass(frozen=True)
class Catalog:
    """Every layer to generate: the chapter's, the shipped ones, and any from a user's specs."""

    layers: tuple[LayerSpec, ...]
    derivations: tuple[Derivation, ...]

    def models(self) -> tuple[LayerModel, ...]:
        return tuple(layer_model(s, d) for s, d in zip(self.layers, self.derivations, strict=True))

    def kernels(self) -> tuple[KernelModel, ...]:
        """Every kernel the layers call, once, in the order the derivations define them."""
        seen: dict[str, KernelModel] = {}
        for d in self.derivations:
            for k in d.kernels:
                seen.setdefault(k.name, kernel_model(k))
        return tuple(seen.values())

    def activations(self) -> tuple[tuple[str, str, str], ...]:
        """(name for --activation, class, initialisation) of every activation layer."""
        return tuple((s.activation, s.cls, s.init) for s in self.layers if s.activation)


def spec_layer(sd: SpecDerivation) -> LayerSpec:
    """The class a spec becomes."""
    spec = sd.spec
    if spec.kind == "loss":
        return LayerSpec(
            spec.name, spec.key, ("y", "t"), constants=sd.constants, loss=True, extra_cache=("loss",)
        )
    return LayerSpec(spec.name, spec.key, ("x",), constants=sd.constants, activation=spec.key, init=spec.init)


def catalog(user_specs: tuple[Spec, ...] = ()) -> Catalog:
    """The chapter's layers, then the shipped specs, then the user's, each derived (names: ``generate.catalog``)."""
    specs = [derive_shipped(s) for s in SHIPPED] + [derive_spec(s) for s in user_specs]
    layers = LAYERS + tuple(spec_layer(sd) for sd in specs)
    derivations = tuple(derive(s.derivation) for s in LAYERS) + tuple(sd.derivation for sd in specs)
    return Catalog(layers, derivations)


@dataclass(frozen=True)
class ShoppingLayer:
    """One node of a shopping graph as a layer object of the script."""

    name: str
    cls: str
    out: str
    inputs: tuple[str, ...]
    grads: tuple[str, ...]


def _float_literal(value: sp.Basic) -> str:
    """An exact input as the chapter types it: 100, 2, 1.1."""
    return str(int(value)) if value.is_Integer else repr(float(value))


def _layer_stem(node: Node, leaves: tuple[sp.Symbol, ...]) -> str:
    """A layer's name as the book gives it: a multiply by the graph input it takes (``mul_apple_layer``,
    ``mul_tax_layer``), an add by its inputs without their common ending (``add_apple_orange_layer``)."""
    names = [v.name for v in node.inputs]
    if node.op == "×":
        return next((v.name for v in node.inputs if v in leaves), node.out.name)
    common = os.path.commonprefix([n[::-1] for n in names])[::-1]
    ending = common[common.find("_") :] if "_" in common else ""
    return "_".join(n.removesuffix(ending) for n in names) if ending else node.out.name


def shopping_model(name: str) -> dict[str, object]:
    """The chapter's buy_apple scripts, from a shopping graph's node list and its inputs."""
    d = derive(name)
    (example,) = d.examples
    kinds = {"×": ("mul", "MulLayer"), "+": ("add", "AddLayer")}
    layers = []
    for n in d.graph.nodes:
        kind, cls = kinds[n.op]
        layers.append(
            ShoppingLayer(
                name=f"{kind}_{_layer_stem(n, d.graph.inputs)}_layer",
                cls=cls,
                out=n.out.name,
                inputs=tuple(v.name for v in n.inputs),
                grads=tuple(f"d{v.name}" for v in n.inputs),
            )
        )
    # Print as the chapter does: int() where the exact result is a whole number.
    out = d.graph.output

    def shown(v: sp.Basic, value: sp.Basic) -> str:
        return f"int({v.name})" if value.is_Integer else v.name

    prints = [(out.name, shown(out, example.value(out)))]
    for v in d.graph.inputs:
        label = "d" + v.name[0].upper() + v.name[1:]
        prints.append((label, shown(sp.Symbol("d" + v.name), example.grad(v))))
    return {
        "derivation": name,
        "title": d.title,
        "inputs": [(v.name, _float_literal(value)) for v, value in example.inputs],
        "layers": layers,
        "classes": sorted({layer.cls for layer in layers}),
        "output": out.name,
        "seed": _float_literal(example.seed),
        "prints": prints,
    }


@dataclass(frozen=True)
class AffineSlot:
    """One Affine layer of a network: its index and the sizes its weights connect."""

    index: int
    fan_in: str
    fan_out: str


def two_layer_affines() -> tuple[AffineSlot, ...]:
    """The chapter's two Affine layers: input -> hidden -> output."""
    return (AffineSlot(1, "input_size", "hidden_size"), AffineSlot(2, "hidden_size", "output_size"))


def _inline(
    steps: tuple[tuple[sp.Basic, sp.Basic], ...], names: dict[str, str], targets: dict[str, str]
) -> list[Assignment]:
    """Print (target, expr) pairs with the layer's names replaced by the network's."""
    lines = []
    for target, expr in steps:
        code = NumpyPrinter({"names": names}).doprint(expr)
        new = targets.get(target, target)
        lines.append(Assignment(new, code, expr, tuple(names.items())))
        names[target] = new  # later lines read the renamed value
    return lines


def _compute(name: str, names: dict[str, str], targets: dict[str, str]) -> list[Assignment]:
    """A layer's forward lines; a value kept for backward is still written out in what follows,
    so that ReLU's output prints as np.maximum(x, 0) while its mask is kept for backward."""
    d = derive(name)
    varied = {a.target for _, lines in d.compute_variants for a in lines}
    defs: dict[sp.Basic, sp.Basic] = {}
    steps = []
    for a in d.compute:
        if a.target in varied:
            continue  # printed by _varied, once per kind of labels
        steps.append((a.target.name, a.expr.xreplace(defs)))
        if a.target in d.cache and not isinstance(a.target, sp.MatrixSymbol):
            defs[a.target] = a.expr
    return _inline(tuple(steps), dict(names), targets)


def _varied(name: str, names: dict[str, str], targets: dict[str, str], variant: bool) -> list[Assignment]:
    """The forward lines that differ by label kind: label rows, or with ``variant`` integer labels."""
    d = derive(name)
    varied = {a.target for _, lines in d.compute_variants for a in lines}
    lines = d.compute_variants[0][1] if variant else tuple(a for a in d.compute if a.target in varied)
    return _inline(tuple((a.target.name, a.expr) for a in lines), dict(names), targets)


def _backward(
    name: str, names: dict[str, str], targets: dict[str, str], variant: bool = False
) -> list[Assignment]:
    d = derive(name)
    grads = d.variants[0][1] if variant else d.backward
    wanted = tuple((g.name, g.expr) for g in grads if g.name in targets)
    return _inline(wanted, dict(names), targets)


def _inference(name: str, names: dict[str, str], targets: dict[str, str]) -> list[Assignment]:
    """A layer's forward for inference: nothing cached, cached values substituted into what uses them."""
    d = derive(name)
    defs: dict[sp.Basic, sp.Basic] = {}
    steps = []
    for a in d.compute:
        expr = a.expr.xreplace(defs)
        if a.target in d.cache:
            defs[a.target] = expr  # only backward needs it stored
            continue
        steps.append((a.target.name, expr))
    return _inline(tuple(steps), dict(names), targets)


def two_layer_scores() -> tuple[Assignment, ...]:
    """TwoLayerNet's scores for a batch, without the caches backward needs."""
    return tuple(
        _inference("affine", {"x": "x", "W": "W1", "b": "b1"}, {"out": "a1"})
        + _inference("relu", {"x": "a1"}, {"out": "h1"})
        + _inference("affine", {"x": "h1", "W": "W2", "b": "b2"}, {"out": "a2"})
    )


@dataclass(frozen=True)
class TrainStep:
    """TwoLayerNet's whole training step, every line printed from the layers' derivations."""

    forward: tuple[Assignment, ...]
    backward_one_hot: tuple[Assignment, ...]  # the loss and its gradient for label rows
    backward_labels: tuple[Assignment, ...]  # the same for integer labels
    backward: tuple[Assignment, ...]
    # The same lines in buffer form: products into arrays kept across steps, element-wise
    # steps in place over a value no later line reads (see numpy_printer.buffer_statement).
    forward_buffered: tuple[str, ...] = ()
    backward_buffered: tuple[str, ...] = ()
    update: tuple[str, ...] = ()  # ``W1 -= dW1`` ..., after the backward lines


def _loss_and_gradient(gradient: str) -> tuple[tuple[Assignment, ...], tuple[Assignment, ...]]:
    """Softmax-with-Loss's loss and its input's gradient, named ``gradient``, after ``log_y`` and ``y``:
    for label rows, then for integer labels.  The upstream gradient is the learning rate."""
    inputs = {"t": "t", "log_y": "log_y", "batch_size": "batch_size"}
    names = {
        "dout": "learning_rate",
        "y": "y",
        "t": "t",
        "batch_size": "batch_size",
        "n_classes": "y.shape[1]",
    }
    return tuple(
        tuple(
            _varied("softmax_with_loss", inputs, {"loss": "loss"}, variant=variant)
            + _backward("softmax_with_loss", names, {"dx": gradient}, variant=variant)
        )
        for variant in (False, True)
    )


def two_layer_step() -> TrainStep:
    """Affine1, Relu1, Affine2, SoftmaxWithLoss inlined, with their names mapped onto the network's.

    The upstream gradient of the loss is the learning rate: every backward result is
    linear in dout, so each comes out already multiplied by it and the update is a
    subtraction.
    """
    forward = (
        _compute("affine", {"x": "x", "W": "W1", "b": "b1"}, {"out": "a1"})
        + _compute("relu", {"x": "a1"}, {"mask": "mask1", "out": "h1"})
        + _compute("affine", {"x": "h1", "W": "W2", "b": "b2"}, {"out": "a2"})
        + _compute(
            "softmax_with_loss",
            {"x": "a2", "batch_size": "batch_size"},
            {"log_y": "log_y", "y": "y", "loss": "loss"},
        )
    )
    backward = (
        _backward("affine", {"dout": "da2", "W": "W2", "x": "h1"}, {"dx": "dh1", "dW": "dW2", "db": "db2"})
        + _backward("relu", {"dout": "dh1", "mask": "mask1"}, {"dx": "da1"})
        + _backward("affine", {"dout": "da1", "x": "x"}, {"dW": "dW1", "db": "db1"})
    )
    one_hot, labels = _loss_and_gradient("da2")
    # The update, in place, one line per parameter; it reads every gradient, so none is written over.
    update = tuple(f"{p}{a.index} -= d{p}{a.index}" for a in two_layer_affines() for p in ("W", "b"))
    return TrainStep(
        forward=tuple(forward),
        backward_one_hot=one_hot,
        backward_labels=labels,
        backward=tuple(backward),
        forward_buffered=_buffered(
            forward, [*(a.code for a in (*one_hot, *labels, *backward)), *update, "loss"]
        ),
        backward_buffered=_buffered(backward, [*update, "loss"]),
        update=update,
    )


def _buffered(
    lines: list[Assignment], after: list[str], prefix: str = "", keyed: bool = False
) -> tuple[str, ...]:
    """Each line in buffer form, knowing which values the lines after it still read.

    ``keyed``: the lines run once per layer, so each kept array's key holds the layer's ``idx``.
    """
    out = []
    for i, a in enumerate(lines):
        later = [b.code for b in lines[i + 1 :]] + after
        key = f"({a.target!r}, idx)" if keyed else None
        out.append(buffer_statement(a.target, a.expr, dict(a.names), later, prefix, key))
    return tuple(out)


@dataclass(frozen=True)
class MultiStep:
    """MultiLayerNet's training step: one Affine's lines, run in a loop over the layers, and the loss."""

    affine_forward: tuple[str, ...]  # a = h @ W + b, the product into a kept array
    loss_forward: tuple[Assignment, ...]  # log_y and y from the last scores
    backward_labels: tuple[Assignment, ...]  # the loss and da for integer labels
    backward_one_hot: tuple[Assignment, ...]  # the same for label rows
    affine_params: tuple[str, ...]  # dW and db of one Affine
    affine_input: tuple[str, ...]  # dh, the gradient of its input, for every Affine but the first
    update: tuple[str, ...]


def multi_layer_step() -> MultiStep:
    """The lines of Affine and Softmax-with-Loss, named for a loop over MultiLayerNet's layers.

    The activations between the Affine layers are the layers' own ``step_forward`` and
    ``step_backward``; as in TwoLayerNet, the upstream gradient of the loss is the learning
    rate, so every gradient comes out scaled and the update is a subtraction.
    """
    affine = _compute("affine", {"x": "h", "W": "W", "b": "b"}, {"out": "a"})
    loss = _compute(
        "softmax_with_loss",
        {"x": "a", "batch_size": "batch_size"},
        {"log_y": "log_y", "y": "y", "loss": "loss"},
    )
    one_hot, labels = _loss_and_gradient("da")
    params = _backward("affine", {"dout": "da", "x": "h"}, {"dW": "dW", "db": "db"})
    inputs = _backward("affine", {"dout": "da", "W": "W"}, {"dx": "dh"})
    update = ("W -= dW", "b -= db")
    return MultiStep(
        affine_forward=_buffered(affine, ["h = a"], keyed=True),
        loss_forward=tuple(loss),
        backward_labels=labels,
        backward_one_hot=one_hot,
        affine_params=_buffered(params, [*(a.code for a in inputs), *update], keyed=True),
        affine_input=_buffered(inputs, [*update], keyed=True),
        update=update,
    )


def two_layer_scores_buffered() -> tuple[str, ...]:
    """``scores`` in buffer form; the scores it returns are a new array, since the caller keeps them."""
    *inner, last = two_layer_scores()
    return (
        *_buffered(inner, [last.code, f"return {last.target}"], prefix="scores."),
        f"{last.target} = {last.code}",
    )
