"""The op registry: every op is defined once, by its forward SymPy expression.

Nothing here is a derivative. :mod:`derive.derivation` derives each op's backward
expressions (vector-Jacobian products) from these forward definitions.

An op belongs to one of a few *forms*, which say how its forward expression is written:

``leaf``
    ``input``, ``target`` and ``parameter`` nodes: values supplied from outside.
``matrix``
    A matrix expression of :class:`sympy.MatrixSymbol` arguments (``dense``: ``X W^T + 1 b^T``).
    Its VJPs come from SymPy's matrix calculus.
``elementwise``
    A scalar function ``f(x)`` applied to every element (activations).
``rowwise``
    An index-form expression of one output element in terms of a row of the input,
    with sums over the row (``softmax``). Later: convolution, normalization.
``loss``
    A scalar: the mean over the batch of an elementwise term ``l(y, t)`` (``mse``)
    or of a row term written in index form (``softmax_cross_entropy``).
``penalty``
    A scalar: ``weight * sum(phi(w))`` over a parameter's elements (L1, L2).

New ops fit one of these forms without touching the derivation walker: convolution and pooling
are row/index forms (an output element as a sum over input elements; the index calculus
contracts the deltas); batch and layer normalization are index forms whose sums run over the
batch index or the feature index; attention is a matrix form (products with a softmax row op);
a recurrence is one parameter node feeding many time-step nodes, and the walker already sums a
node's contributions from all of its consumers.

SymPy is imported on first use of an expression, not with this module: the built-in tables
(:class:`BuiltinTable`) know their names at once and make their definitions when first read,
so validating and fingerprinting a graph of built-in ops needs no SymPy (see
:mod:`kernels.model`: a warm process trains without importing it).

Examples
--------
>>> op = get_op("activation")
>>> op.args
('x',)
>>> scalar_function("activation", {"function": "tanh"})
tanh(x)
>>> scalar_function("activation", {"function": "x*sigmoid(x)"})
x/(1 + exp(-x))
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import GraphError

if TYPE_CHECKING:   # SymPy is imported on first use, see BuiltinTable
    import sympy as sp

__all__ = [
    "Op", "OPS", "get_op", "ACTIVATIONS", "ELEMENTWISE_LOSSES", "ROW_LOSSES", "PENALTIES",
    "scalar_function", "check_function", "row_loss", "X", "Y", "T", "W", "BATCH", "is_formula", "REQUIRED",
    "number_attribute", "BuiltinTable",
]

#: Marks an attribute without a default in :attr:`Op.attrs`.
REQUIRED = "<required>"

_SYMBOLS = ("X", "Y", "T", "W", "ALPHA", "BATCH")
#: The batch size's symbol (no node may be called so, see :func:`derive.graph.validate`).
BATCH_NAME = "N"


@functools.cache
def _symbols() -> dict:
    """The scalar symbols the elementwise definitions are written in (made on first use)."""
    import sympy as sp

    return {
        "X": sp.Symbol("x", real=True),     # an element of the op's input
        "Y": sp.Symbol("y", real=True),     # an element of a prediction (losses) or of the op's output
        "T": sp.Symbol("t", real=True),     # an element of a target
        "W": sp.Symbol("w", real=True),     # an element of a parameter (penalties)
        "ALPHA": sp.Symbol("alpha", positive=True),
        "BATCH": sp.Symbol(BATCH_NAME, integer=True, positive=True),   # the batch size: symbolic everywhere
    }


def __getattr__(name: str):
    """``X``, ``Y``, ``T``, ``W``, ``ALPHA`` and ``BATCH``: SymPy symbols, made (and SymPy
    imported) on first use, see :class:`BuiltinTable`."""
    if name in _SYMBOLS:
        return _symbols()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_BUILTIN = object()   # marks an entry of a BuiltinTable that still holds its built-in value


class BuiltinTable(MutableMapping):
    """A registry table (name -> SymPy definition) whose built-in values are made on first read.

    Its names are known at once, so validating a graph (is ``"relu"`` an activation?) and the
    network's fingerprint need no SymPy: a process that finds its generated kernels by
    fingerprint (:mod:`kernels.model`) trains without importing SymPy at all. The first read
    of a value calls ``make()`` for every built-in value. A program may add, replace or delete
    entries as in a dict; :meth:`describe` tells the fingerprint which entries are no longer the
    built-ins (whose definitions the ``derive`` source, also fingerprinted, fixes).

    >>> table = BuiltinTable(("double",), lambda: {"double": "2*x"})
    >>> list(table), table.describe(str)
    (['double'], ['double: built-in'])
    >>> table["double"], table.describe(str)
    ('2*x', ['double: built-in'])
    >>> table["double"] = "x+x"
    >>> table.describe(str)
    ['double: x+x']
    """

    def __init__(self, names, make: Callable[[], dict]):
        self._make = make
        self._names = tuple(names)
        self._builtins: dict | None = None
        self._entries: dict[str, Any] = dict.fromkeys(names, _BUILTIN)

    def _builtin(self, name: str):
        if self._builtins is None:
            made = self._make()
            if set(made) != set(self._names):   # the names given and the definitions made must agree
                raise RuntimeError(f"built-in table: names {sorted(self._names)} but definitions {sorted(made)}")
            self._builtins = made
        return self._builtins[name]

    def __getitem__(self, name):
        value = self._entries[name]
        return self._builtin(name) if value is _BUILTIN else value

    def __setitem__(self, name, value):
        builtin = self._builtins is not None and value is self._builtins.get(name, _BUILTIN)
        self._entries[name] = _BUILTIN if builtin else value   # putting a built-in back restores it

    def __delitem__(self, name):
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self._entries

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._entries)})"

    def is_builtin(self, name) -> bool:
        """Whether ``name`` holds its built-in value (not a program's own entry)."""
        return name in self and self._entries[name] is _BUILTIN

    def describe(self, describe_value: Callable[[Any], str]) -> list[str]:
        """``"name: built-in"`` for an entry holding its built-in value, else ``"name: "`` and
        ``describe_value(value)``, in the table's order."""
        return [f"{name}: built-in" if value is _BUILTIN else f"{name}: {describe_value(value)}"
                for name, value in self._entries.items()]


# --- activations: f(x) -------------------------------------------------------------------------
#: The built-in activations that take attributes, with their defaults (known without SymPy).
_ACTIVATION_ATTRS = {"leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0}}


def _activations() -> dict:
    """Built-in activations, name -> (forward expression in x, {attribute: default}).

    The non-differentiable points follow PyTorch: relu'(0) = 0 (Heaviside(0) = 0), the step's
    derivative is taken as 0 everywhere (it is 0 almost everywhere), |x|'(0) = sign(0) = 0."""
    import sympy as sp

    X, ALPHA = _symbols()["X"], _symbols()["ALPHA"]
    return {
        "identity": (X, {}),
        "step": (sp.Heaviside(X, 0), {}),
        "relu": (sp.Max(0, X), {}),
        "leaky_relu": (sp.Piecewise((X, X > 0), (ALPHA * X, True)), dict(_ACTIVATION_ATTRS["leaky_relu"])),
        "elu": (sp.Piecewise((X, X > 0), (ALPHA * (sp.exp(X) - 1), True)), dict(_ACTIVATION_ATTRS["elu"])),
        "sigmoid": (1 / (1 + sp.exp(-X)), {}),
        "tanh": (sp.tanh(X), {}),
        "softplus": (sp.log(1 + sp.exp(X)), {}),
        "silu": (X / (1 + sp.exp(-X)), {}),
        "swish": (X / (1 + sp.exp(-X)), {}),
        "gelu": (X / 2 * (1 + sp.erf(X / sp.sqrt(2))), {}),
        "softsign": (X / (1 + sp.Abs(X)), {}),
    }


#: name -> (forward expression in x, {attribute: default}), see :func:`_activations`.
ACTIVATIONS = BuiltinTable(("identity", "step", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus",
                            "silu", "swish", "gelu", "softsign"), _activations)


# --- losses ------------------------------------------------------------------------------------
def _elementwise_losses() -> dict:
    """Elementwise loss terms l(y, t); the loss is their mean over every element of the batch."""
    import sympy as sp

    Y, T = _symbols()["Y"], _symbols()["T"]
    return {
        "mse": (Y - T) ** 2,
        "mae": sp.Abs(Y - T),
        # binary cross-entropy on probabilities y in (0, 1), as PyTorch's BCELoss
        "bce": -(T * sp.log(Y) + (1 - T) * sp.log(1 - Y)),
        # binary cross-entropy on logits y, as PyTorch's BCEWithLogitsLoss (stable: no sigmoid first)
        "bce_logits": sp.log(1 + sp.exp(Y)) - T * Y,
    }


#: name -> l(y, t), see :func:`_elementwise_losses`.
ELEMENTWISE_LOSSES = BuiltinTable(("mse", "mae", "bce", "bce_logits"), _elementwise_losses)


def _softmax_cross_entropy(z: sp.IndexedBase, t: sp.IndexedBase, j: sp.Idx, k: sp.Idx, K) -> sp.Expr:
    """Row term of softmax cross-entropy on logits: -sum_j t_j log softmax(z)_j."""
    import sympy as sp

    log_softmax_j = z[j] - sp.log(sp.Sum(sp.exp(z[k]), (k, 0, K - 1)))
    return -sp.Sum(t[j] * log_softmax_j, (j, 0, K - 1))


#: Row losses written in index form: name -> builder(z, t, j, k, K) of one row's term.
#: The loss is the mean of the row terms over the batch.
ROW_LOSSES: dict[str, Callable[..., sp.Expr]] = {
    "softmax_cross_entropy": _softmax_cross_entropy,
}


def _penalties() -> dict:
    """Penalties phi(w); the penalty term is weight * sum(phi(w)) over the parameter's elements."""
    import sympy as sp

    W = _symbols()["W"]
    return {"l1": sp.Abs(W), "l2": W ** 2 / 2}


#: name -> phi(w), see :func:`_penalties`.
PENALTIES = BuiltinTable(("l1", "l2"), _penalties)


def is_formula(name: str) -> bool:
    """True when ``name`` is not a built-in name but a user formula (``"x*sigmoid(x)"``).

    >>> is_formula("tanh"), is_formula("x*tanh(x)")
    (False, True)
    """
    return not name.isidentifier()


def number_attribute(value, name: str, *, at_least: float | None = None) -> float:
    """The value of a numeric node attribute (``alpha``, ``weight``) as a float.

    It must be a finite real number: text is refused, never parsed (a spec file's ``alpha =
    "..."`` would otherwise reach SymPy's ``sympify``, which evaluates it), and so are booleans,
    NaN and infinities. GraphError naming the attribute otherwise.

    >>> number_attribute(0.2, "alpha")
    0.2
    >>> number_attribute("1/0", "alpha")
    Traceback (most recent call last):
    ...
    symprop.derive.errors.GraphError: 'alpha' must be a finite number, got '1/0'
    >>> number_attribute(-1, "weight", at_least=0)
    Traceback (most recent call last):
    ...
    symprop.derive.errors.GraphError: 'weight' must be at least 0, got -1
    """
    try:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    except (TypeError, OverflowError):
        ok = False
    if not ok:
        raise GraphError(f"{name!r} must be a finite number, got {value!r}")
    if at_least is not None and value < at_least:
        raise GraphError(f"{name!r} must be at least {at_least:g}, got {value!r}")
    return float(value)


def _user_formula(text: str, variables: Mapping[str, sp.Symbol], what: str) -> sp.Expr:
    from .parse import parse_formula  # local: keeps the parser's import off the registry's path

    return parse_formula(text, variables)


def _is_expression(value) -> bool:
    """Whether ``value`` is a SymPy expression (asked without importing SymPy: before its
    import there can be none)."""
    sp = sys.modules.get("sympy")
    return sp is not None and isinstance(value, sp.Expr)


def _check_numbers(op: str, attrs: Mapping[str, Any]) -> None:
    if op == "activation" and attrs.get("alpha") is not None:
        number_attribute(attrs["alpha"], "alpha")
        fn = attrs.get("function")
        if isinstance(fn, str) and fn in ACTIVATIONS:
            takes = _ACTIVATION_ATTRS.get(fn, {}) if ACTIVATIONS.is_builtin(fn) else ACTIVATIONS[fn][1]
        else:
            takes = {}
        if "alpha" not in takes:   # it was ignored
            users = ", ".join(name for name in ACTIVATIONS if name in _ACTIVATION_ATTRS
                              or (not ACTIVATIONS.is_builtin(name) and "alpha" in ACTIVATIONS[name][1]))
            raise GraphError(f"'alpha' does not apply to activation {fn!r} (only to: {users})")
    if op == "penalty":
        number_attribute(attrs.get("weight", 1e-4), "weight", at_least=0)


def check_function(op: str, attrs: Mapping[str, Any]) -> None:
    """Check an activation, loss or penalty node's function and numbers; GraphError (or
    :class:`derive.parse.FormulaError`) naming the problem.

    Built-in names and numbers are checked without SymPy (the graph validator calls this for
    every node, see :class:`BuiltinTable`); a formula is parsed through :mod:`derive.parse`.

    >>> check_function("activation", {"function": "leaky_relu", "alpha": 0.2})
    >>> check_function("loss", {"function": "msee"})
    Traceback (most recent call last):
    ...
    symprop.derive.errors.GraphError: unknown loss 'msee' (built-in: bce, bce_logits, mae, mse, softmax_cross_entropy; or give an elementwise formula in y and t such as '(y-t)**2')
    """
    _check_numbers(op, attrs)
    fn = attrs.get("function")
    builtin = {"activation": ACTIVATIONS, "loss": ELEMENTWISE_LOSSES}.get(op)
    if op == "penalty":
        builtin, fn = PENALTIES, attrs.get("kind", "l2")
    if builtin is not None and (fn in builtin or _is_expression(fn)):
        return
    scalar_function(op, attrs)   # parses a formula, or raises the error that names the choices


def scalar_function(op: str, attrs: Mapping[str, Any]) -> sp.Expr:
    """The scalar forward expression of an elementwise op, loss or penalty node.

    ``activation`` nodes give ``f(x)``; elementwise ``loss`` nodes give ``l(y, t)``;
    ``penalty`` nodes give ``weight * phi(w)``. ``function`` may be a built-in name or a
    formula string (parsed through the whitelist of :mod:`derive.parse`, never evaluated)
    or a SymPy expression.

    >>> scalar_function("loss", {"function": "mse"})
    (-t + y)**2
    >>> scalar_function("activation", {"function": "leaky_relu", "alpha": 0.2})
    Piecewise((x, x > 0), (x/5, True))
    """
    import sympy as sp

    _check_numbers(op, attrs)
    fn = attrs.get("function")
    if op == "activation":
        if isinstance(fn, sp.Expr):
            return fn
        if fn in ACTIVATIONS:
            expr, defaults = ACTIVATIONS[fn]
            values = {**defaults, **{k: v for k, v in attrs.items() if k in defaults and v is not None}}
            if "alpha" not in values:
                return expr
            alpha = sp.nsimplify(number_attribute(values["alpha"], "alpha"), rational=True)
            return expr.subs({_symbols()["ALPHA"]: alpha})
        if isinstance(fn, str) and is_formula(fn):
            return _user_formula(fn, {"x": _symbols()["X"]}, "activation")
        raise GraphError(f"unknown activation {fn!r} (built-in: {', '.join(sorted(ACTIVATIONS))}; "
                         "or give a formula in x such as 'x*sigmoid(x)')")
    if op == "loss":
        if isinstance(fn, sp.Expr):
            return fn
        if fn in ELEMENTWISE_LOSSES:
            return ELEMENTWISE_LOSSES[fn]
        if isinstance(fn, str) and is_formula(fn):
            return _user_formula(fn, {"y": _symbols()["Y"], "t": _symbols()["T"]}, "loss")
        raise GraphError(f"unknown loss {fn!r} (built-in: {', '.join(sorted(loss_names()))}; "
                         "or give an elementwise formula in y and t such as '(y-t)**2')")
    if op == "penalty":
        kind = attrs.get("kind", "l2")
        if kind not in PENALTIES:
            raise GraphError(f"unknown penalty {kind!r} (built-in: {', '.join(sorted(PENALTIES))})")
        weight = number_attribute(attrs.get("weight", 1e-4), "weight", at_least=0)
        return sp.nsimplify(weight, rational=True) * PENALTIES[kind]
    raise GraphError(f"op {op!r} has no scalar forward function")


def row_loss(name: str):
    """The index-form builder of a row loss, or None when ``name`` is elementwise.

    >>> row_loss("softmax_cross_entropy") is not None, row_loss("mse")
    (True, None)
    """
    return ROW_LOSSES.get(name) if isinstance(name, str) else None


def loss_names() -> list[str]:
    """Every built-in loss name."""
    return sorted([*ELEMENTWISE_LOSSES, *ROW_LOSSES])


# --- shapes ------------------------------------------------------------------------------------
# A shape is a tuple of feature dimensions; the batch dimension is implicit (and symbolic)
# for activations, and absent for parameters. Shape rules raise ValueError with the reason;
# the graph validator prefixes the node's name.

def _same_as(arg: str):
    def rule(attrs, shapes):
        return shapes[arg]
    return rule


def _dense_shape(attrs, shapes):
    x, w = shapes["x"], shapes["W"]
    if len(x) != 1:
        raise ValueError(f"dense input x must have one feature dimension, got shape {list(x)}")
    if len(w) != 2:
        raise ValueError(f"dense weight W must be a matrix (units, inputs), got shape {list(w)}")
    if w[1] != x[0]:
        raise ValueError(f"shape mismatch: W is {list(w)} but x has {x[0]} features (W must be [units, {x[0]}])")
    if "b" in shapes and tuple(shapes["b"]) != (w[0],):
        raise ValueError(f"shape mismatch: b is {list(shapes['b'])} but W has {w[0]} units (b must be [{w[0]}])")
    return (w[0],)


def _loss_shape(attrs, shapes):
    if tuple(shapes["y"]) != tuple(shapes["t"]):
        raise ValueError(f"shape mismatch: prediction y is {list(shapes['y'])} but target t is {list(shapes['t'])}")
    return ()


def _leaf_shape(attrs, shapes):
    shape = attrs.get("shape")
    if (not isinstance(shape, (list, tuple)) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise ValueError(f"'shape' must be a non-empty list of positive integers, got {shape!r}")
    return tuple(shape)


@dataclass(frozen=True)
class Op:
    """One op of the registry.

    ``args`` are the named inputs in order (edges carry the name in their ``arg`` attribute),
    ``optional`` those that may be left out, ``attrs`` the allowed attributes with defaults
    (:data:`REQUIRED`: no default), ``form`` says how the forward is written (see the module docstring).
    """

    name: str
    form: str
    args: tuple[str, ...]
    shape: Callable[[Mapping[str, Any], Mapping[str, tuple]], tuple]
    doc: str
    optional: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    #: arguments that gradients never flow into (targets)
    constant_args: frozenset[str] = frozenset()

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(a for a in self.args if a not in self.optional)


def _dense_forward(Xm: sp.MatrixSymbol, Wm: sp.MatrixSymbol, bm: sp.MatrixSymbol | None) -> sp.MatrixExpr:
    """``X W^T + 1 b^T``: one row per example, one column per unit."""
    import sympy as sp

    z = Xm * Wm.T
    if bm is not None:
        z = z + sp.OneMatrix(Xm.shape[0], 1) * bm.T
    return z


#: The matrix-form forward definitions: op name -> builder of the forward MatrixExpr.
MATRIX_FORWARD: dict[str, Callable[..., sp.MatrixExpr]] = {"dense": _dense_forward}


def _softmax_forward(x: sp.IndexedBase, i, j, K) -> sp.Expr:
    """``softmax(x)_i = exp(x_i) / sum_j exp(x_j)`` over one row."""
    import sympy as sp

    return sp.exp(x[i]) / sp.Sum(sp.exp(x[j]), (j, 0, K - 1))


#: The row-form forward definitions: op name -> builder of one output element.
ROW_FORWARD: dict[str, Callable[..., sp.Expr]] = {"softmax": _softmax_forward}

OPS: dict[str, Op] = {op.name: op for op in [
    Op("input", "leaf", (), _leaf_shape, "a batch of input rows", attrs={"shape": REQUIRED}),
    Op("target", "leaf", (), _leaf_shape, "a batch of target rows (no gradient)", attrs={"shape": REQUIRED}),
    Op("parameter", "leaf", (), _leaf_shape, "a trained parameter (weights, biases)",
       attrs={"shape": REQUIRED, "init": "auto"}),
    Op("dense", "matrix", ("x", "W", "b"), _dense_shape, "affine map X W^T + b", optional=frozenset({"b"})),
    Op("activation", "elementwise", ("x",), _same_as("x"), "elementwise f(x): built-in name or formula",
       attrs={"function": REQUIRED, "alpha": None}),
    Op("softmax", "rowwise", ("x",), _same_as("x"), "softmax over each row"),
    Op("loss", "loss", ("y", "t"), _loss_shape, "mean loss over the batch",
       attrs={"function": REQUIRED}, constant_args=frozenset({"t"})),
    Op("penalty", "penalty", ("w",), lambda attrs, shapes: (), "weight * sum(phi(w)) on a parameter",
       attrs={"kind": "l2", "weight": 1e-4}),
]}


def get_op(name: str) -> Op:
    """The registered op called ``name``; GraphError naming the known ops otherwise.

    >>> get_op("dense").required
    ('x', 'W')
    """
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise GraphError(f"unknown op {name!r} (known: {', '.join(OPS)})") from None
