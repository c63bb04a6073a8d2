"""The row form: one output element written in index form over one row of the input along an
axis, with sums over that row (``softmax`` over its ``axis``, default the last).

Forward, for output index ``(n, i, ..., c, ...)`` with ``c`` at the row axis: the op's definition
``F(row, c, k, K)`` (:attr:`derive.ops.Op.forward`), where ``row[c']`` is the input at the same
index with ``c'`` on the row axis. Every other axis, the batch's included, is a loop axis.

VJP: ``∂/∂x[n, i, ...]`` of ``Σ_loop Σ_l G[loop, l]·F(row_loop, l, k, K)`` (SymPy's ``diff``),
the ``KroneckerDelta`` sums contracted (:func:`derive.indexcalc.contract`), then every occurrence
of the forward element recognised and replaced by the output (:func:`replace_row_outputs`):
for softmax ``y ⊙ (G - Σ_l G_l y_l)``.

Examples
--------
>>> from symprop import derive
>>> net = derive.Builder("s").input("x", [2, 3]).softmax(axis=0).loss("mse").build()
>>> d = derive.backprop(net)
>>> d.nodes["p"].forward.rhs
exp(x[n, i, j])/Sum(exp(x[n, k, j]), (k, 0, 1))
"""

from __future__ import annotations

from typing import Mapping

from ..axes import feature_axis
from ..variables import symbol
from .base import Arg, Form, Node, Row, concrete

__all__ = ["Rowwise", "replace_row_outputs"]


def _absorb_into_sums(expr):
    """Move the factors of a product that sit beside a single ``Sum`` into it (inverse of pulling out)."""
    import sympy as sp

    def absorb(mul):
        sums = [f for f in mul.args if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            return mul
        others = [f for f in mul.args if f is not sums[0]]
        s = sums[0]
        return sp.Sum(sp.Mul(*others) * s.function, *s.limits)
    return expr.replace(lambda e: isinstance(e, sp.Mul) and any(isinstance(f, sp.Sum) for f in e.args), absorb)


def _subs_through_sums(expr, old, new):
    """``expr.subs(old, new)``, also inside sums whose index ``old`` uses (SymPy's subs skips those)."""
    import sympy as sp

    expr = expr.replace(lambda e: isinstance(e, sp.Sum),
                        lambda s: sp.Sum(_subs_through_sums(s.function, old, new), *s.limits))
    return expr.subs(old, new)


def replace_row_outputs(expr, forward, in_base, out_base, K, index: tuple, position: int):
    """Replace each occurrence of a row definition's forward element by the output element.

    ``forward(row, c, dummy, K)`` is the op's definition; ``index`` the free index of the output
    with the row axis at ``position``.

    >>> import sympy as sp
    >>> from symprop.derive.ops import get_op
    >>> from symprop.derive import symbols as S
    >>> x, y = sp.IndexedBase("x"), sp.IndexedBase("y")
    >>> n, i = S.indices(1, True)
    >>> k = S.dummies(1)[0]
    >>> e = sp.exp(x[n, i]) / sp.Sum(sp.exp(x[n, k]), (k, 0, 2))
    >>> replace_row_outputs(e, get_op("softmax").forward, x, y, sp.Integer(3), (n, i), 1)
    y[n, i]
    """
    import sympy as sp

    def element(c, d):
        return forward(Row(in_base, index, position), c, d, K)

    dummies = {lim[0] for s in expr.atoms(sp.Sum) for lim in s.limits}
    columns = {e.indices[position] for e in expr.atoms(sp.Indexed) if e.base == in_base}
    out = Row(out_base, index, position)
    # a single-row loss sees its columns as free and as dummies: try every combination
    for attempt in (expr, _absorb_into_sums(expr)):
        result = attempt
        for c in columns:
            for d in dummies - {c}:
                result = _subs_through_sums(result, element(c, d), out[c])
        if not result.has(in_base) or attempt is not expr:
            return sp.factor_terms(result) if result != attempt else expr
    return expr


class Rowwise(Form):
    """One output element as an index-form expression of one row of ``x`` (see the module docstring)."""

    name = "rowwise"

    def shape(self, op, attrs, shapes):
        axis = attrs.get("axis")
        feature_axis(op.attrs["axis"] if axis is None else axis, shapes["x"])
        return tuple(shapes["x"])

    def batched(self, args: Mapping[str, Arg]) -> bool:
        return args["x"].batched

    def check(self, op, args: Mapping[str, Arg]) -> None:
        self._must_be_batch(args, "x")

    def describe(self, op, attrs, detailed=False) -> str:
        return op.name + (f" over axis {attrs['axis']}" if attrs.get("axis") is not None else "")

    def derive(self, node: Node):
        import sympy as sp

        from .. import symbols as S
        from ..equations import Equation, NodeDerivation
        from ..indexcalc import contract

        v, x = node.name, node.source("x")
        shape = node.shape()
        position = 1 + feature_axis(node.attr("axis"), shape)
        K = sp.Integer(shape[position - 1])
        index, extents = S.indices(len(shape), True), S.extents(shape, True)
        k, l = S.dummies(2)
        xb, yb = S.value_base(x), S.value_base(v)
        F = node.op.forward
        nd = NodeDerivation(v, node.op.name, self.name, None, attrs=node.attrs)
        nd.forward = Equation(yb[index], F(Row(xb, index, position), index[position], k, K), "index", index, extents)
        if "x" in node.wanted:
            # the loop axes (all but the row's) run over dummies: m for the batch, fresh ones for features
            others = [q for q in range(1, len(index)) if q != position]
            loop = [S.BATCH_DUMMY, *S.dummies(len(others), avoid=(k, l))]
            loop_index = list(loop[:1]) + [None] * (len(index) - 1)
            for q, d in zip(others, loop[1:]):
                loop_index[q] = d
            grad = Row(S.grad_base(v), loop_index, position)
            body = sp.Sum(grad[l] * F(Row(xb, loop_index, position), l, k, K), (l, 0, K - 1))
            limits = [(d, 0, extents[q] - 1) for q, d in zip(others, loop[1:])]
            scalar = sp.Sum(body, *limits, (S.BATCH_DUMMY, 0, symbol("BATCH") - 1))
            d = contract(sp.diff(scalar, xb[index]))
            d = replace_row_outputs(d, F, xb, yb, K, index, position)
            nd.vjps["x"] = Equation(S.grad_base(x)[index], sp.factor_terms(d), "index", index, extents)
        return nd

    def expand(self, node: Node, ground):
        import numpy as np
        import sympy as sp

        values = ground.values[node.source("x")]
        axis = 1 + feature_axis(node.attr("axis"), node.shape())
        K = values.shape[axis]
        base, k = sp.IndexedBase("row"), sp.Symbol("k", integer=True)
        rows = np.moveaxis(values, axis, -1)
        out = np.empty_like(rows)
        for at in np.ndindex(*rows.shape[:-1]):
            for c in range(K):
                out[at + (c,)] = concrete(node.op.forward(Row(base, (0,), 0), c, k, K), {base: rows[at]})
        return np.moveaxis(out, -1, axis)
