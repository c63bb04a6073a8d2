"""The op registry: every op is defined once, by its forward SymPy expression.

Nothing here is a derivative. Each op points to its *form* (:mod:`derive.forms`), which says how
the forward expression is written and derives the backward expressions (vector-Jacobian
products) from it:

``leaf``
    ``input``, ``target`` and ``parameter`` nodes: values supplied from outside.
``matrix``
    A matrix expression of :class:`sympy.MatrixSymbol` arguments (``dense``: ``X W^T + 1 b^T``).
    Its VJPs come from SymPy's matrix calculus.
``elementwise``
    A scalar function of one element of each argument, broadcast as in NumPy (an activation
    ``f(x)``, ``add``: ``x + y``, ``mul``: ``x*y``).
``rowwise``
    An index-form expression of one output element in terms of a row of the input along an
    axis, with sums over the row (``softmax``).
``view``
    The same elements under another feature shape (``flatten``, ``reshape``): an index identity.
``loss``
    A scalar: the mean over the batch and a sample's elements of an elementwise term ``l(y, t)``
    (``mse``) or of a row term written in index form (``softmax_cross_entropy``).
``penalty``
    A scalar: ``weight * sum(phi(w))`` over a parameter's elements (L1, L2).

Shapes are feature shapes of any rank (:mod:`derive.axes`); values computed from inputs carry a
symbolic batch axis in front. A new op of an existing form is one entry in :data:`OPS`;
convolution and pooling are row/index forms, batch and layer normalization index forms whose
sums run over the batch index or the feature index, attention a matrix form, a recurrence one
parameter node feeding many time-step nodes (the walker sums a node's contributions from all of
its consumers).

SymPy is imported on first use of an expression, not with this module: the built-in tables
(:class:`BuiltinTable`) know their names at once and make their definitions when first read,
so validating and fingerprinting a graph of built-in ops needs no SymPy (see
:mod:`kernels.model`: a warm process trains without importing it).

Examples
--------
>>> op = get_op("activation")
>>> op.args, op.form
(('x',), elementwise)
>>> scalar_function("activation", {"function": "tanh"})
tanh(x)
>>> scalar_function("activation", {"function": "x*sigmoid(x)"})
x/(1 + exp(-x))
>>> get_op("add").forward({})
x + y
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .axes import shape_attribute, size
from .errors import GraphError
from .forms import Elementwise, Form, Leaf, Loss, Matrix, Penalty, Rowwise, View
from .variables import BATCH_NAME, NAMES, symbol

if TYPE_CHECKING:   # SymPy is imported on first use, see BuiltinTable
    import sympy as sp

__all__ = [
    "Op", "OPS", "get_op", "ACTIVATIONS", "ELEMENTWISE_LOSSES", "ROW_LOSSES", "PENALTIES",
    "scalar_function", "check_function", "row_loss", "X", "Y", "T", "W", "BATCH", "is_formula", "REQUIRED",
    "number_attribute", "BuiltinTable", "BATCH_NAME",
]

#: Marks an attribute without a default in :attr:`Op.attrs`.
REQUIRED = "<required>"


def __getattr__(name: str):
    """``X``, ``Y``, ``T``, ``W``, ``ALPHA`` and ``BATCH``: SymPy symbols (:mod:`derive.variables`),
    made (and SymPy imported) on first use, see :class:`BuiltinTable`."""
    if name in NAMES:
        return symbol(name)
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

    X, ALPHA = symbol("X"), symbol("ALPHA")
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

    Y, T = symbol("Y"), symbol("T")
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

    W = symbol("W")
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


def _user_formula(text: str, variables: Mapping[str, sp.Symbol]) -> sp.Expr:
    from .parse import parse_formula  # local: keeps the parser (and SymPy) off the registry's path

    return parse_formula(text, variables)


def _is_expression(value) -> bool:
    """Whether ``value`` is a SymPy expression (asked without importing SymPy: before its
    import there can be none)."""
    sp = sys.modules.get("sympy")
    return sp is not None and isinstance(value, sp.Expr)


# --- the scalar definitions of activations, losses and penalties, chosen by attributes ---------

def _activation_alpha(attrs: Mapping[str, Any]) -> None:
    """An activation's ``alpha``: a finite number, and only for activations that take it."""
    if attrs.get("alpha") is None:
        return
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


def _activation(attrs: Mapping[str, Any]) -> sp.Expr:
    """``f(x)`` of an activation node: a built-in name (with its ``alpha``), a formula in x, or a
    SymPy expression in :data:`X`."""
    import sympy as sp

    _activation_alpha(attrs)
    fn = attrs.get("function")
    if isinstance(fn, sp.Expr):
        return fn
    if fn in ACTIVATIONS:
        expr, defaults = ACTIVATIONS[fn]
        values = {**defaults, **{k: v for k, v in attrs.items() if k in defaults and v is not None}}
        if "alpha" not in values:
            return expr
        alpha = sp.nsimplify(number_attribute(values["alpha"], "alpha"), rational=True)
        return expr.subs({symbol("ALPHA"): alpha})
    if isinstance(fn, str) and is_formula(fn):
        return _user_formula(fn, {"x": symbol("X")})
    raise GraphError(f"unknown activation {fn!r} (built-in: {', '.join(sorted(ACTIVATIONS))}; "
                     "or give a formula in x such as 'x*sigmoid(x)')")


def _check_activation(attrs: Mapping[str, Any]) -> None:
    _activation_alpha(attrs)
    fn = attrs.get("function")
    if not (fn in ACTIVATIONS or _is_expression(fn)):
        _activation(attrs)   # parses a formula, or raises the error that names the choices


def _elementwise_loss(attrs: Mapping[str, Any]) -> sp.Expr:
    """``l(y, t)`` of an elementwise loss: a built-in name, a formula in y and t, or an expression."""
    import sympy as sp

    fn = attrs.get("function")
    if isinstance(fn, sp.Expr):
        return fn
    if fn in ELEMENTWISE_LOSSES:
        return ELEMENTWISE_LOSSES[fn]
    if isinstance(fn, str) and is_formula(fn):
        return _user_formula(fn, {"y": symbol("Y"), "t": symbol("T")})
    raise GraphError(f"unknown loss {fn!r} (built-in: {', '.join(sorted(loss_names()))}; "
                     "or give an elementwise formula in y and t such as '(y-t)**2')")


def _loss_term(attrs: Mapping[str, Any]):
    """A loss node's term: the row builder of a row loss (:data:`ROW_LOSSES`), else ``l(y, t)``."""
    return row_loss(attrs.get("function")) or _elementwise_loss(attrs)


def _check_loss(attrs: Mapping[str, Any]) -> None:
    fn = attrs.get("function")
    if row_loss(fn) is not None:
        return
    if attrs.get("axis") is not None:
        raise GraphError(f"'axis' applies only to the row losses ({', '.join(ROW_LOSSES)}), not to {fn!r}")
    if not (fn in ELEMENTWISE_LOSSES or _is_expression(fn)):
        _elementwise_loss(attrs)


def _penalty(attrs: Mapping[str, Any]) -> sp.Expr:
    """``weight * phi(w)`` of a penalty node."""
    import sympy as sp

    _check_penalty(attrs)
    weight = number_attribute(attrs.get("weight", 1e-4), "weight", at_least=0)
    return sp.nsimplify(weight, rational=True) * PENALTIES[attrs.get("kind", "l2")]


def _check_penalty(attrs: Mapping[str, Any]) -> None:
    number_attribute(attrs.get("weight", 1e-4), "weight", at_least=0)
    kind = attrs.get("kind", "l2")
    if kind not in PENALTIES:
        raise GraphError(f"unknown penalty {kind!r} (built-in: {', '.join(sorted(PENALTIES))})")


def _add(attrs) -> sp.Expr:
    """``x + y`` (residual connections, biases)."""
    return symbol("X") + symbol("Y")


def _mul(attrs) -> sp.Expr:
    """``x * y`` (gates, masks, scales)."""
    return symbol("X") * symbol("Y")


def check_function(op: str, attrs: Mapping[str, Any]) -> None:
    """Check a node's function and numbers (activation, loss, penalty); GraphError (or
    :class:`derive.parse.FormulaError`) naming the problem.

    Built-in names and numbers are checked without SymPy (the graph validator calls this for
    every node, see :class:`BuiltinTable`); a formula is parsed through :mod:`derive.parse`.

    >>> check_function("activation", {"function": "leaky_relu", "alpha": 0.2})
    >>> check_function("loss", {"function": "msee"})
    Traceback (most recent call last):
    ...
    symprop.derive.errors.GraphError: unknown loss 'msee' (built-in: bce, bce_logits, mae, mse, softmax_cross_entropy; or give an elementwise formula in y and t such as '(y-t)**2')
    """
    check = get_op(op).check
    if check is not None:
        check(attrs)


def scalar_function(op: str, attrs: Mapping[str, Any]) -> sp.Expr:
    """The scalar forward expression of an elementwise op, elementwise loss or penalty node.

    ``activation`` nodes give ``f(x)``; elementwise ``loss`` nodes give ``l(y, t)``;
    ``penalty`` nodes give ``weight * phi(w)``; ``add`` and ``mul`` ``x + y`` and ``x*y``.
    ``function`` may be a built-in name or a formula string (parsed through the whitelist of
    :mod:`derive.parse`, never evaluated) or a SymPy expression.

    >>> scalar_function("loss", {"function": "mse"})
    (-t + y)**2
    >>> scalar_function("activation", {"function": "leaky_relu", "alpha": 0.2})
    Piecewise((x, x > 0), (x/5, True))
    """
    definition = _SCALAR_DEFINITIONS.get(op)
    if definition is None:
        raise GraphError(f"op {op!r} has no scalar forward function")
    return definition(attrs)


def row_loss(name: str):
    """The index-form builder of a row loss, or None when ``name`` is elementwise.

    >>> row_loss("softmax_cross_entropy") is not None, row_loss("mse")
    (True, None)
    """
    return ROW_LOSSES.get(name) if isinstance(name, str) else None


def loss_names() -> list[str]:
    """Every built-in loss name."""
    return sorted([*ELEMENTWISE_LOSSES, *ROW_LOSSES])


# --- shape rules of single ops (a form gives the others, see derive.forms) ----------------------
# A shape is a tuple of feature dimensions; the batch dimension is implicit (and symbolic) for
# values computed from inputs, and absent for parameters. Shape rules raise ValueError with the
# reason; the graph validator prefixes the node's name.

def _dense_shape(attrs, shapes):
    x, w = shapes["x"], shapes["W"]
    if len(x) != 1:
        raise ValueError(f"dense input x must have one feature dimension, got shape {list(x)} "
                         "(flatten it first: Builder.flatten() or a node with op = 'flatten')")
    if len(w) != 2:
        raise ValueError(f"dense weight W must be a matrix (units, inputs), got shape {list(w)}")
    if w[1] != x[0]:
        raise ValueError(f"shape mismatch: W is {list(w)} but x has {x[0]} features (W must be [units, {x[0]}])")
    if "b" in shapes and tuple(shapes["b"]) != (w[0],):
        raise ValueError(f"shape mismatch: b is {list(shapes['b'])} but W has {w[0]} units (b must be [{w[0]}])")
    return (w[0],)


def _flatten_shape(attrs, shapes):
    return (size(shapes["x"]),)


def _reshape_shape(attrs, shapes):
    shape = shape_attribute(attrs.get("shape"))
    if size(shape) != size(shapes["x"]):
        raise ValueError(f"cannot reshape x of shape {list(shapes['x'])} ({size(shapes['x'])} elements) "
                         f"to {list(shape)} ({size(shape)} elements)")
    return shape


@dataclass(frozen=True, eq=False)
class Op:
    """One op of the registry.

    ``form`` is how the forward is written (:mod:`derive.forms`); ``forward`` the definition in
    that form's terms (elementwise, loss, penalty: ``attrs -> expression``; matrix: the matrix
    arguments in order ``-> matrix expression``; rowwise: ``(row, c, dummy, K) ->`` one output
    element; leaves and views: None, the form says all). ``args`` are the named inputs in order
    (edges carry the name in their ``arg`` attribute), ``optional`` those that may be left out,
    ``attrs`` the allowed attributes with defaults (:data:`REQUIRED`: no default); ``shape`` a
    shape rule of its own (None: the form's), ``check`` a check of the attributes without SymPy.
    """

    name: str
    form: Form
    args: tuple[str, ...]
    doc: str
    forward: Callable | None = None
    shape: Callable[[Mapping[str, Any], Mapping[str, tuple]], tuple] | None = None
    optional: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    #: arguments that gradients never flow into (targets)
    constant_args: frozenset[str] = frozenset()
    check: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(a for a in self.args if a not in self.optional)

    def infer_shape(self, attrs: Mapping[str, Any], shapes: Mapping[str, tuple]) -> tuple:
        """The output's feature shape (ValueError with the reason)."""
        rule = self.shape if self.shape is not None else lambda a, s: self.form.shape(self, a, s)
        return tuple(rule(attrs, shapes))


def _dense_forward(Xm: sp.MatrixSymbol, Wm: sp.MatrixSymbol, bm: sp.MatrixSymbol | None) -> sp.MatrixExpr:
    """``X W^T + 1 b^T``: one row per example, one column per unit."""
    import sympy as sp

    z = Xm * Wm.T
    if bm is not None:
        z = z + sp.OneMatrix(Xm.shape[0], 1) * bm.T
    return z


def _softmax_forward(x, i, j, K) -> sp.Expr:
    """``softmax(x)_i = exp(x_i) / sum_j exp(x_j)`` over one row."""
    import sympy as sp

    return sp.exp(x[i]) / sp.Sum(sp.exp(x[j]), (j, 0, K - 1))


OPS: dict[str, Op] = {op.name: op for op in [
    Op("input", Leaf(batched=True), (), "a batch of inputs", attrs={"shape": REQUIRED}),
    Op("target", Leaf(batched=True), (), "a batch of targets (no gradient)", attrs={"shape": REQUIRED}),
    Op("parameter", Leaf(batched=False), (), "a trained parameter (weights, biases)",
       attrs={"shape": REQUIRED, "init": "auto"}),
    Op("dense", Matrix(batch_args=("x",)), ("x", "W", "b"), "affine map X W^T + b", _dense_forward,
       _dense_shape, optional=frozenset({"b"})),
    Op("activation", Elementwise(), ("x",), "elementwise f(x): built-in name or formula", _activation,
       attrs={"function": REQUIRED, "alpha": None}, check=_check_activation),
    Op("add", Elementwise(), ("x", "y"), "x + y, broadcast (residuals, biases)", _add),
    Op("mul", Elementwise(), ("x", "y"), "x * y, broadcast (gates, masks)", _mul),
    Op("softmax", Rowwise(), ("x",), "softmax along an axis (default the last)", _softmax_forward,
       attrs={"axis": -1}),
    Op("flatten", View(), ("x",), "all feature axes as one", shape=_flatten_shape),
    Op("reshape", View(), ("x",), "the same elements in another feature shape", shape=_reshape_shape,
       attrs={"shape": REQUIRED}),
    Op("loss", Loss(), ("y", "t"), "mean loss over the batch and a sample's elements", _loss_term,
       attrs={"function": REQUIRED, "axis": -1}, constant_args=frozenset({"t"}), check=_check_loss),
    Op("penalty", Penalty(), ("w",), "weight * sum(phi(w)) on a parameter", _penalty,
       attrs={"kind": "l2", "weight": 1e-4}, check=_check_penalty),
]}


#: The ops whose definition is one scalar expression (for a loss: its elementwise term).
_SCALAR_DEFINITIONS = {"activation": _activation, "add": _add, "mul": _mul, "loss": _elementwise_loss,
                       "penalty": _penalty}


def get_op(name: str) -> Op:
    """The registered op called ``name``; GraphError naming the known ops otherwise.

    >>> get_op("dense").required
    ('x', 'W')
    """
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise GraphError(f"unknown op {name!r} (known: {', '.join(OPS)})") from None
