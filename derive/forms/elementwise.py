"""The elementwise form: one scalar function of one element of each argument (activations,
``add``, ``mul``), the arguments broadcast as in NumPy.

Forward, for every output index ``(n, i, ...)``::

    y[n, i, ...] = f(x[n, i, ...], b[i, ...], ...)

each argument indexed by the output axes it is aligned with (:func:`derive.axes.alignment`): a
parameter has no batch axis, a shorter shape lacks leading axes, and an axis of size 1 is read
at index 0. The VJP with respect to argument ``a`` is derived from ``∂f/∂a``
(:func:`derive.scalar.derivative`, re-expressed through the output where SymPy finds it, as
``1 - y²`` for tanh), times the upstream gradient, **summed over every output axis that ``a`` is
broadcast along**: the adjoint of broadcasting. A bias added to a batch gets ``Σₙ``, a parameter
of shape ``[3]`` added to values of shape ``[2, 3]`` gets ``Σₙ Σₖ``.

Examples
--------
>>> from symprop import derive
>>> net = (derive.Builder("res").input("x", [2, 3]).parameter("b", [3]).add("b", name="h")
...        .activation("tanh", name="a").loss("mse").build())
>>> d = derive.backprop(net)
>>> d.nodes["h"].forward.rhs
b[j] + x[n, i, j]
>>> d.nodes["h"].vjps["y"].rhs
Sum(dL/dh[m, k, i], (k, 0, 1), (m, 0, N - 1))
"""

from __future__ import annotations

from typing import Mapping

from ..axes import STRETCHED, alignment, broadcast_shapes
from ..variables import argument, symbol
from .base import Arg, Form, Node, scalar_derivatives

__all__ = ["Elementwise"]


def _element_indices(out_index: tuple, out_shape: tuple, shape: tuple, batched: bool) -> tuple:
    """The indices of an argument of feature ``shape`` read at the output's batched index ``out_index``."""
    import sympy as sp

    lead = len(out_shape) - len(shape)
    features = out_index[1:]
    aligned = alignment(shape, out_shape)
    own = tuple(sp.Integer(0) if aligned[lead + q] == STRETCHED else features[lead + q] for q in range(len(shape)))
    return ((out_index[0],) if batched else ()) + own


def broadcast_adjoint(rhs, out_index: tuple, out_shape: tuple, shape: tuple, batched: bool):
    """``(indices, extents, rhs)`` of a VJP: ``rhs`` (written at the output's batched index) moved to
    the argument's own indices and summed over the output axes the argument is broadcast along
    (the batch axis for a parameter, missing and stretched feature axes).

    >>> import sympy as sp
    >>> from symprop.derive import symbols as S
    >>> g = sp.IndexedBase("g")
    >>> broadcast_adjoint(g[S.indices(2, True)], S.indices(2, True), (2, 3), (3,), False)
    ((i,), (3,), Sum(g[m, k, i], (k, 0, 1), (m, 0, N - 1)))
    """
    import sympy as sp

    from .. import symbols as S

    own = S.indices(len(shape), batched)
    features = out_index[1:]
    aligned = alignment(shape, out_shape)
    summed = [pos for pos, q in enumerate(aligned) if not isinstance(q, int)]
    dummies = S.dummies(len(summed))
    mapping, limits = {}, []
    for pos, q in enumerate(aligned):
        if isinstance(q, int):
            mapping[features[pos]] = own[len(own) - len(shape) + q]
    for pos, d in zip(summed, dummies):
        mapping[features[pos]] = d
        limits.append((d, 0, out_shape[pos] - 1))
    if not batched:
        mapping[out_index[0]] = S.BATCH_DUMMY
        limits.append((S.BATCH_DUMMY, 0, symbol("BATCH") - 1))
    moved = rhs.xreplace(mapping) if any(k != v for k, v in mapping.items()) else rhs
    return own, S.extents(shape, batched), (sp.Sum(moved, *limits) if limits else moved)


class Elementwise(Form):
    """A scalar function of one element of each argument, broadcast (see the module docstring)."""

    name = "elementwise"

    def shape(self, op, attrs, shapes):
        return broadcast_shapes([shapes[a] for a in op.args if a in shapes])

    def batched(self, args: Mapping[str, Arg]) -> bool:
        return any(a.batched for a in args.values())

    def check(self, op, args: Mapping[str, Arg]) -> None:
        if len(args) == 1:
            self._must_be_batch(args, next(iter(args)))
        elif not self.batched(args):
            raise ValueError(f"at least one argument must be a batch of rows (all of "
                             f"{', '.join(repr(args[a].node) for a in op.args if a in args)} are parameters)")

    def layer_role(self, op, args) -> str | None:
        return "activation" if tuple(args) == ("x",) else None

    def describe(self, op, attrs, detailed=False) -> str:
        fn = attrs.get("function")
        if not isinstance(fn, str):
            return op.name
        alpha = f" (alpha {attrs['alpha']})" if detailed and attrs.get("alpha") is not None else ""
        return f"{op.name} {fn}{alpha}"

    def _variables(self, node: Node) -> tuple[str, ...]:
        return tuple(a for a in node.op.args if a in node.args)

    def derive(self, node: Node):
        from .. import symbols as S
        from ..equations import Equation, NodeDerivation

        v, out_shape = node.name, node.shape()
        variables = self._variables(node)
        through = "y" if "y" not in variables else None   # the output's symbol, when free
        f, ders = scalar_derivatives(node.op, node.data, variables, through)
        index = S.indices(len(out_shape), True)
        extents = S.extents(out_shape, True)
        elements = {argument(a): S.value_base(node.source(a))[_element_indices(index, out_shape, node.shape(a),
                                                                                node.batched(a))]
                    for a in variables}
        out = S.value_base(v)[index]
        nd = NodeDerivation(v, node.op.name, self.name, None, derivatives=ders, attrs=node.attrs)
        nd.forward = Equation(out, f.subs(elements), "index", index, extents)
        local = {**elements, argument(through): out} if through else elements
        for a in node.wanted:
            rhs = S.grad_base(v)[index] * ders[a].best.subs(local)
            own, own_extents, rhs = broadcast_adjoint(rhs, index, out_shape, node.shape(a), node.batched(a))
            nd.vjps[a] = Equation(S.grad_base(node.source(a))[own], rhs, "index", own, own_extents)
        return nd

    def expand(self, node: Node, ground):
        import numpy as np


        variables = self._variables(node)
        f = node.op.forward(node.data)
        rank = len(node.shape())
        arrays = [ground.aligned(node.source(a), rank) for a in variables]
        symbols = [argument(a) for a in variables]
        return np.vectorize(lambda *e: f.xreplace(dict(zip(symbols, e))), otypes=[object])(*arrays)
