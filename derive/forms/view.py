"""The view form: the same elements under another feature shape (``flatten``, ``reshape``), in
row-major order as ``numpy.reshape``.

A view is an index identity: the output element at flat offset ``o`` *is* the input element at
flat offset ``o``. Its forward reads the input at the output index carried through the flat
offset, ``y[n, i] = x[n, floor(i/3), Mod(i, 3)]`` for a ``[2, 3] -> [6]`` flatten. Its VJP is
derived from that identity: SymPy differentiates ``Σ_m Σ_o G[m, unravel(o)]·x̃[m, o]`` (``x̃`` the
input seen flat) with respect to ``x̃[n, q]``, the delta is contracted, and ``q`` is the input
index's flat offset: ``∂L/∂x[n, i, j] = ∂L/∂y[n, 3*i + j]``.

Examples
--------
>>> from symprop import derive
>>> net = (derive.Builder("f").input("x", [2, 3]).parameter("g", [2, 3]).mul("g", name="h")
...        .flatten(name="f").loss("mse").build())
>>> d = derive.backprop(net)
>>> d.nodes["f"].forward.rhs
h[n, FloorDiv(i, 3), Mod(i, 3)]
>>> d.nodes["f"].vjps["x"].rhs
dL/df[n, 3*i + j]
"""

from __future__ import annotations

import math
from typing import Mapping

from ..axes import strides
from ..variables import symbol
from .base import Arg, Form, Node

__all__ = ["View", "ravel", "unravel"]


def ravel(index: tuple, shape: tuple):
    """The row-major flat offset of feature ``index`` in ``shape``.

    >>> import sympy as sp
    >>> ravel(sp.symbols("i j"), (2, 3))
    3*i + j
    """
    import sympy as sp

    return sp.Add(*[q * s for q, s in zip(index, strides(shape))])


def unravel(offset, shape: tuple) -> tuple:
    """The feature index in ``shape`` of a flat ``offset``: its digits in the mixed radix of the shape.

    >>> import sympy as sp
    >>> unravel(sp.Symbol("o", integer=True, nonnegative=True), (2, 3))
    (FloorDiv(o, 3), Mod(o, 3))
    """
    import sympy as sp

    from ..indexcalc import FloorDiv

    digits = []
    for axis, (d, s) in enumerate(zip(shape, strides(shape))):
        q = FloorDiv(offset, s)
        digits.append(q if axis == 0 else sp.Mod(q, d))
    return tuple(digits)


def _tidy_digits(expr, extents: Mapping):
    """``FloorDiv(i, d) -> 0`` and ``Mod(i, d) -> i`` for an index ``i`` whose extent is at most ``d``."""
    import sympy as sp

    from ..indexcalc import FloorDiv

    def small(e, d):
        return e in extents and d.is_Integer and extents[e] <= d

    expr = expr.replace(lambda e: isinstance(e, FloorDiv) and small(*e.args), lambda e: sp.S.Zero)
    return expr.replace(lambda e: isinstance(e, sp.Mod) and small(*e.args), lambda e: e.args[0])


class View(Form):
    """The input's elements under the output's feature shape (see the module docstring)."""

    name = "view"

    def batched(self, args: Mapping[str, Arg]) -> bool:
        return args["x"].batched

    def check(self, op, args: Mapping[str, Arg]) -> None:
        self._must_be_batch(args, "x")

    def describe(self, op, attrs, detailed=False) -> str:
        shape = attrs.get("shape")
        return f"{op.name} to {list(shape)}" if isinstance(shape, (list, tuple)) else op.name

    def _index(self, index: tuple, out_shape: tuple, in_shape: tuple, extents) -> tuple:
        """The input index of the element at output ``index`` (``index[0]`` the batch row)."""
        flat = ravel(index[1:], out_shape)
        return (index[0], *(_tidy_digits(q, extents) for q in unravel(flat, in_shape)))

    def derive(self, node: Node):
        import sympy as sp

        from .. import symbols as S
        from ..equations import Equation, NodeDerivation
        from ..indexcalc import contract

        v, x = node.name, node.source("x")
        out_shape, in_shape = node.shape(), node.shape("x")
        out_index, out_extents = S.indices(len(out_shape), True), S.extents(out_shape, True)
        in_index, in_extents = S.indices(len(in_shape), True), S.extents(in_shape, True)
        nd = NodeDerivation(v, node.op.name, self.name, None, attrs=node.attrs)
        bounds = dict(zip(out_index[1:], out_shape))
        read = self._index(out_index, out_shape, in_shape, bounds)
        nd.forward = Equation(S.value_base(v)[out_index], S.value_base(x)[read], "index", out_index, out_extents)
        if "x" in node.wanted:
            m, n = S.BATCH_DUMMY, in_index[0]
            o = sp.Dummy("o", integer=True, nonnegative=True)
            q = sp.Dummy("q", integer=True, nonnegative=True)
            flat = sp.IndexedBase(sp.Dummy("flat"))   # the input seen flat: x̃[m, o] = x[m, unravel(o)]
            size = sp.Integer(math.prod(in_shape))
            scalar = sp.Sum(S.grad_base(v)[(m, *unravel(o, out_shape))] * flat[m, o], (o, 0, size - 1),
                            (m, 0, symbol("BATCH") - 1))
            d = contract(sp.diff(scalar, flat[n, q]))
            rhs = _tidy_digits(d.xreplace({q: ravel(in_index[1:], in_shape)}), dict(zip(in_index[1:], in_shape)))
            nd.vjps["x"] = Equation(S.grad_base(x)[in_index], rhs, "index", in_index, in_extents)
        return nd

    def expand(self, node: Node, ground):
        values = ground.values[node.source("x")]
        return values.reshape((values.shape[0], *node.shape()))
