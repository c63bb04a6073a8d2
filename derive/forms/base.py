"""The base of the op forms: what a form is asked, and the context it is given.

A *form* says how an op's forward is written (a matrix expression, an elementwise function, an
index-form row definition, ...) and owns every rule that follows from that, in one object:

* :meth:`Form.shape` and :meth:`Form.check`: the output's feature shape and which kinds of values
  may feed which argument (plain Python: validating a graph needs no SymPy);
* :meth:`Form.batched`: whether the output carries the batch axis;
* :meth:`Form.derive`: the node's forward equation and its vector-Jacobian products (VJPs), derived
  by SymPy from the op's forward definition (:attr:`derive.ops.Op.forward`);
* :meth:`Form.expand`: the node's value over concrete sizes as SymPy expressions of every leaf
  element: the independent ground truth of :mod:`derive.symbolic`;
* :meth:`Form.describe` and :meth:`Form.layer_role`: how reports name the node and whether it
  starts or ends a textbook layer.

The graph walkers (:mod:`derive.graph`, :mod:`derive.derivation`, :mod:`derive.symbolic`,
:mod:`derive.layers`, :mod:`derive.printing`) only ask a node's form; a new form is one new class.
Evaluating the derived equations needs no rule per form: :mod:`derive.evaluation` (like the code
generators) reads the three equation forms of :mod:`derive.equations`.

SymPy is imported by the methods that build expressions, on first use: a process that only
builds, validates and fingerprints networks never imports it (see :class:`derive.ops.BuiltinTable`).

Examples
--------
>>> from symprop.derive.ops import get_op
>>> op = get_op("activation")
>>> op.form, op.form.describe(op, {"function": "tanh"})
(elementwise, 'activation tanh')
>>> op.form.batched({"x": Arg("z1", "dense", (3,), True)})
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Mapping

from ..variables import argument

__all__ = ["Form", "Arg", "Node", "scalar_derivatives", "Row", "concrete"]


@dataclass(frozen=True)
class Arg:
    """What validation knows about one argument of a node: its source node, the source's op,
    feature shape and whether it carries the batch axis."""

    node: str
    op: str
    shape: tuple[int, ...]
    batched: bool


class Node:
    """One node of a validated graph, as a form sees it when deriving or expanding it.

    ``need`` is the set of nodes a gradient must reach (see :meth:`wanted`).
    """

    def __init__(self, name: str, op, data: Mapping[str, Any], info, need=frozenset()):
        self.name, self.op, self.data, self.info, self.need = name, op, data, info, need

    @property
    def args(self) -> dict[str, str]:
        """``{argument: source node}``."""
        return self.info.args[self.name]

    def source(self, arg: str) -> str:
        return self.args[arg]

    def shape(self, arg: str | None = None) -> tuple[int, ...]:
        """The feature shape of the node (``arg`` None) or of one of its arguments."""
        return tuple(self.info.shapes[self.name if arg is None else self.args[arg]])

    def batched(self, arg: str | None = None) -> bool:
        return self.info.batched[self.name if arg is None else self.args[arg]]

    @property
    def attrs(self) -> dict[str, Any]:
        """The op's attributes that the node sets."""
        return {a: self.data[a] for a in self.op.attrs if a in self.data}

    def attr(self, name: str):
        """An attribute's value, or the op's default."""
        value = self.data.get(name)
        return self.op.attrs.get(name) if value is None else value

    @property
    def wanted(self) -> list[str]:
        """The arguments that get a VJP: given, not constant (targets), and on a path to a parameter."""
        return [a for a in self.op.args if a in self.args and a not in self.op.constant_args
                and self.args[a] in self.need]


class Form:
    """How an op's forward is written, and the rules that follow (see the module docstring).

    Subclasses override what differs; the defaults suit a form whose output has the shape and
    the batch axis of its first argument.
    """

    #: the form's name (``NodeDerivation.form``, the fingerprint, reports)
    name = "form"

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    # --- validation (plain Python) -------------------------------------------------------------
    def shape(self, op, attrs: Mapping[str, Any], shapes: Mapping[str, tuple]) -> tuple[int, ...]:
        """The output's feature shape from the arguments' (ValueError with the reason)."""
        return tuple(shapes[op.args[0]])

    def batched(self, args: Mapping[str, Arg]) -> bool:
        """Whether the output carries the batch axis."""
        return False

    def check(self, op, args: Mapping[str, Arg]) -> None:
        """Which kinds of values may feed which argument (ValueError with the reason)."""

    # --- derivation and ground truth (SymPy) --------------------------------------------------
    def derive(self, node: Node):
        """The node's :class:`~derive.equations.NodeDerivation`: forward equation and VJPs."""
        raise NotImplementedError(f"form {self.name!r} has no derivation rule")

    def expand(self, node: Node, ground):
        """The node's value over concrete sizes, from its arguments' values in ``ground``
        (:class:`derive.symbolic.Expansion`): an object array of SymPy expressions (batch axis
        first where batched), or one expression for an objective term."""
        raise NotImplementedError(f"form {self.name!r} has no expansion rule")

    # --- reading ------------------------------------------------------------------------------
    def describe(self, op, attrs: Mapping[str, Any], detailed: bool = False) -> str:
        """A few words naming the node's op for reports (``activation tanh``); ``detailed`` adds
        numeric attributes."""
        return op.name

    def layer_role(self, op, args: Mapping[str, str]) -> str | None:
        """``"linear"`` for a node that starts a textbook layer (``z = x Wᵀ + b``),
        ``"activation"`` for one that may end it, None otherwise (:mod:`derive.layers`)."""
        return None

    @staticmethod
    def _must_be_batch(args: Mapping[str, Arg], arg: str) -> None:
        if not args[arg].batched:
            raise ValueError(f"argument {arg!r} must be a batch of rows, not parameter {args[arg].node!r}")


# --- helpers the forms share (SymPy) ----------------------------------------------------------

def _freeze(attrs: Mapping[str, Any]) -> tuple:
    import sympy as sp

    return tuple(sorted((k, v) for k, v in attrs.items() if isinstance(v, (str, int, float, bool, sp.Basic))))


@functools.lru_cache(maxsize=256)
def _derivatives(forward, frozen_attrs: tuple, variables: tuple[str, ...], through: str | None):
    import sympy as sp

    from ..scalar import derivative

    f = forward(dict(frozen_attrs))
    out = argument(through) if through is not None else sp.Dummy("out")
    return f, {a: derivative(f, argument(a), out) for a in variables}


def scalar_derivatives(op, data: Mapping[str, Any], variables, through: str | None = None):
    """``(f, {argument: Derivative})`` for an op whose forward is one scalar expression: ``f``
    from the op's definition and the node's attributes, each derivative by :func:`derive.scalar.derivative`
    (cached per definition and attributes). ``through`` names the symbol that stands for the
    output when a derivative is re-expressed through it (``y`` for activations).

    >>> from symprop.derive.ops import get_op
    >>> f, ders = scalar_derivatives(get_op("activation"), {"function": "tanh"}, ("x",), "y")
    >>> f, ders["x"].best
    (tanh(x), 1 - y**2)
    """
    return _derivatives(op.forward, _freeze(data), tuple(variables), through)


class Row:
    """One row of an array along one axis, for the index-form definitions that index a row:
    ``Row(x, (n, i, j), 2)[c]`` is ``x[n, i, c]`` (the indices' entry at ``position`` replaced).

    >>> import sympy as sp
    >>> n, i, c = sp.symbols("n i c", integer=True)
    >>> Row(sp.IndexedBase("x"), (n, i), 1)[c]
    x[n, c]
    """

    def __init__(self, base, indices: tuple, position: int):
        self.base, self.indices, self.position = base, tuple(indices), position

    def __getitem__(self, col):
        index = list(self.indices)
        index[self.position] = col
        return self.base[tuple(index)]


def expand_sums(expr):
    """Every :class:`sympy.Sum` over concrete limits written out as its terms (inner sums first).

    This is for the ground truth over small concrete sizes only (never a derivation: see GUIDE §7).

    >>> import sympy as sp
    >>> a, k = sp.IndexedBase("a"), sp.Symbol("k", integer=True)
    >>> expand_sums(sp.exp(sp.Sum(a[k], (k, 0, 2))))
    exp(a[0] + a[1] + a[2])
    """
    import sympy as sp

    def written_out(s):
        terms = [expand_sums(s.function)]
        for var, lo, hi in s.limits:   # innermost first
            terms = [t.xreplace({var: sp.Integer(c)}) for c in range(int(lo), int(hi) + 1) for t in terms]
        return sp.Add(*terms)

    return expr.replace(lambda e: isinstance(e, sp.Sum), written_out)


def concrete(expr, arrays: Mapping):
    """An index-form expression over concrete indices, with sums written out and every element
    ``base[i, j]`` replaced by ``arrays[base][i, j]`` (object arrays of expressions).

    >>> import numpy as np, sympy as sp
    >>> x, k = sp.IndexedBase("x"), sp.Symbol("k", integer=True)
    >>> concrete(sp.Sum(x[k] ** 2, (k, 0, 1)), {x: np.array(sp.symbols("a b"), dtype=object)})
    a**2 + b**2
    """
    import sympy as sp

    expr = expand_sums(expr)
    return expr.xreplace({e: arrays[e.base][tuple(int(q) for q in e.indices)] for e in expr.atoms(sp.Indexed)})
