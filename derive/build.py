"""Builders that return plain ``networkx.DiGraph`` networks.

Examples
--------
>>> net = mlp([2, 16, 16, 1], activation="tanh", loss="mse")
>>> sorted(net.nodes)[:4]
['L', 'W1', 'W2', 'W3']
>>> net.nodes["a1"]
{'op': 'activation', 'function': 'tanh'}
>>> net2 = (Builder("tiny").input("x", 3).dense(4, activation="relu").dense(2)
...         .loss("softmax_cross_entropy").build())
>>> net2.graph["name"], net2.nodes["z2"]["op"]
('tiny', 'dense')

Values of any rank, residuals, gates and views (:mod:`derive.axes` for broadcasting):

>>> net3 = (Builder("res").input("x", [2, 3]).activation("tanh", name="h").add("x", name="r")
...         .parameter("g", [3]).mul("g", name="gated").flatten(name="f").dense(1).loss("mse").build())
>>> net3.nodes["r"], net3.nodes["f"]
({'op': 'add'}, {'op': 'flatten'})
"""

from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import networkx as nx

from .axes import broadcast_shapes, size
from .errors import GraphError
from .graph import validate
from .ops import number_attribute

__all__ = ["Builder", "mlp"]


def _count(value, what: str) -> int:
    """``value`` as a positive int (NumPy integers too; not bools, floats or text)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise GraphError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class Builder:
    """A small fluent builder for layered networks; ``build()`` returns a validated DiGraph.

    Each ``dense`` call adds parameter nodes ``W<l>``, ``b<l>``, a dense node ``z<l>`` and,
    with an activation, an activation node ``a<l>``. Names can be overridden. Each call applies
    to the last node added (``x`` below); ``add`` and ``mul`` take a second node by name (an
    input, a :meth:`parameter`, an earlier node), broadcast as in NumPy.
    """

    def __init__(self, name: str = "network"):
        if not isinstance(name, str):
            raise GraphError(f"a network's name must be text, got {name!r}")
        self.g = nx.DiGraph(name=name)
        self._last: str | None = None
        self._shapes: dict[str, tuple[int, ...]] = {}   # feature shape of each node added so far
        self._layer = 0

    @property
    def _width(self) -> int:
        return self._shapes[self._last][-1]

    def _add(self, name: str, **attrs) -> str:
        if name in self.g:
            raise GraphError(f"node {name!r}: defined twice")
        self.g.add_node(name, **attrs)
        return name

    def _apply(self, op: str, name: str | None, args: dict[str, str], out_shape: tuple[int, ...],
               **attrs) -> "Builder":
        """Add node ``name`` (default ``<op>_<count>``) of ``op`` on ``args``, of feature shape
        ``out_shape``, as the last node."""
        v = self._add(name or f"{op}_{self.g.number_of_nodes()}", op=op, **attrs)
        for arg, u in args.items():
            self.g.add_edge(u, v, arg=arg)
        self._last, self._shapes[v] = v, tuple(out_shape)
        return self

    def _need_last(self, what: str) -> str:
        if self._last is None:
            raise GraphError(f"{what}: add an input first")
        return self._last

    def input(self, name: str = "x", size: int | Sequence[int] = 1) -> "Builder":
        sizes = list(size) if isinstance(size, (list, tuple)) else [size]
        if not sizes:
            raise GraphError(f"input {name!r}: give its number of features")
        shape = [_count(d, f"input {name!r}: a size") for d in sizes]
        self._last = self._add(name, op="input", shape=shape)
        self._shapes[name] = tuple(shape)
        return self

    def parameter(self, name: str, shape: int | Sequence[int], init: str = "auto") -> "Builder":
        """Add a parameter node of ``shape`` for a later :meth:`add` or :meth:`mul` (the last
        node stays the last)."""
        sizes = list(shape) if isinstance(shape, (list, tuple)) else [shape]
        dims = [_count(d, f"parameter {name!r}: a size") for d in sizes]
        self._add(name, op="parameter", shape=dims, init=init)
        self._shapes[name] = tuple(dims)
        return self

    def dense(self, units: int, activation: str | None = None, *, bias: bool = True,
              name: str | None = None, **activation_attrs) -> "Builder":
        x = self._need_last("dense")
        units = _count(units, "dense: units")
        if len(self._shapes[x]) != 1:
            raise GraphError(f"dense: its input {x!r} has feature shape {list(self._shapes[x])}, but dense takes "
                             "one feature axis: flatten it first (.flatten())")
        if not isinstance(bias, bool):
            raise GraphError(f"dense: bias must be True or False, got {bias!r}")
        self._layer += 1
        layer = self._layer
        z = self._add(name or f"z{layer}", op="dense")
        w = self._add(f"W{layer}", op="parameter", shape=[int(units), int(self._width)])
        self.g.add_edge(x, z, arg="x")
        self.g.add_edge(w, z, arg="W")
        if bias:
            b = self._add(f"b{layer}", op="parameter", shape=[int(units)])
            self.g.add_edge(b, z, arg="b")
        self._last, self._shapes[z] = z, (int(units),)
        if activation is not None:
            self.activation(activation, name=f"a{layer}", **activation_attrs)
        return self

    def activation(self, function, name: str | None = None, **attrs) -> "Builder":
        x = self._need_last("activation")
        return self._apply("activation", name or f"a{self._layer}_{self.g.number_of_nodes()}", {"x": x},
                           self._shapes[x], function=function, **{k: v for k, v in attrs.items() if v is not None})

    def softmax(self, name: str = "p", axis: int | None = None) -> "Builder":
        """Softmax along ``axis`` (default the last feature axis)."""
        x = self._need_last("softmax")
        return self._apply("softmax", name, {"x": x}, self._shapes[x], **({} if axis is None else {"axis": axis}))

    def _elementwise(self, op: str, other: str, name: str | None) -> "Builder":
        x = self._need_last(op)
        if other not in self._shapes:
            raise GraphError(f"{op}: no node named {other!r} (add it first: .parameter(), .input() or a layer)")
        try:
            shape = broadcast_shapes([self._shapes[x], self._shapes[other]])
        except ValueError as e:
            raise GraphError(f"node {name or op!r} ({op}): {e}") from None
        return self._apply(op, name, {"x": x, "y": other}, shape)

    def add(self, other: str, name: str | None = None) -> "Builder":
        """``last + other`` elementwise, broadcast (a residual connection, a bias)."""
        return self._elementwise("add", other, name)

    def mul(self, other: str, name: str | None = None) -> "Builder":
        """``last * other`` elementwise, broadcast (a gate, a mask, a scale)."""
        return self._elementwise("mul", other, name)

    def flatten(self, name: str | None = None) -> "Builder":
        """All feature axes of the last node as one (row-major, as ``numpy.reshape``)."""
        x = self._need_last("flatten")
        return self._apply("flatten", name, {"x": x}, (size(self._shapes[x]),))

    def reshape(self, shape: Sequence[int], name: str | None = None) -> "Builder":
        """The last node's elements under the feature ``shape`` (row-major, as ``numpy.reshape``)."""
        x = self._need_last("reshape")
        dims = [_count(d, "reshape: a size") for d in (shape if isinstance(shape, (list, tuple)) else [shape])]
        return self._apply("reshape", name, {"x": x}, tuple(dims), shape=dims)

    def loss(self, function: str = "mse", name: str = "L", target: str = "t") -> "Builder":
        """The loss of the last node against a new target node of the same shape."""
        y = self._need_last("loss")
        self._add(target, op="target", shape=list(self._shapes[y]))
        self._add(name, op="loss", function=function)
        self.g.add_edge(y, name, arg="y")
        self.g.add_edge(target, name, arg="t")
        return self

    def penalty(self, kind: str = "l2", weight: float = 1e-4, on: Iterable[str] | None = None) -> "Builder":
        """Add a penalty node per parameter (default: every weight matrix ``W*``)."""
        if not isinstance(kind, str):
            raise GraphError(f"penalty: the kind must be a penalty's name such as 'l2', got {kind!r}")
        params = [on] if isinstance(on, str) else list(on) if on is not None else [
            v for v, d in self.g.nodes(data=True) if d.get("op") == "parameter" and len(d["shape"]) == 2]
        for p in params:
            if p not in self.g:
                raise GraphError(f"penalty: no parameter named {p!r}")
            node = self._add(f"{kind}_{p}", op="penalty", kind=kind, weight=number_attribute(weight, "weight", at_least=0))
            self.g.add_edge(p, node, arg="w")
        return self

    def build(self) -> nx.DiGraph:
        validate(self.g)
        return self.g.copy()   # the builder's own graph stays its own: adding to it later changes no network


def mlp(sizes: Sequence[int], activation="tanh", loss: str = "mse", *, output_activation=None,
        penalty: str | None = None, weight: float = 1e-4, name: str = "mlp") -> nx.DiGraph:
    """A multi-layer perceptron ``sizes[0] -> ... -> sizes[-1]`` as a networkx graph.

    ``activation`` (a name or formula) follows every hidden layer. ``output_activation``
    follows the last one (default: ``sigmoid`` for the ``bce`` loss, none otherwise: softmax
    cross-entropy and ``bce_logits`` work on logits). ``penalty`` ("l1"/"l2") adds a penalty
    node on every weight matrix.

    >>> net = mlp([2, 3, 1], activation="relu", loss="bce")
    >>> net.nodes["a2"]["function"]
    'sigmoid'
    """
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise GraphError(f"mlp sizes must be a list of at least two positive integers, got {sizes!r}")
    sizes = [_count(s, "mlp sizes: each") for s in sizes]
    if output_activation is None and loss == "bce":
        output_activation = "sigmoid"
    b = Builder(name).input("x", sizes[0])
    for units in sizes[1:-1]:
        b.dense(units, activation=activation)
    b.dense(sizes[-1], activation=output_activation)
    b.loss(loss)
    if penalty:
        b.penalty(penalty, weight)
    return b.build()
