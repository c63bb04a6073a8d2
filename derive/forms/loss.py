"""The loss form: a scalar, the mean of a term over the batch and every position of a sample.

Two kinds of term, chosen by the loss's ``function``:

* **elementwise** ``l(y, t)`` (``mse``, ``bce``, a formula): the mean over *all* elements of the
  prediction, the batch's included: ``Σ l(y, t) / (N·D)`` with ``D`` the number of features of a
  sample (``mse`` as PyTorch's ``MSELoss``). VJP: ``∂l/∂y / (N·D)`` (:func:`derive.scalar.derivative`);
* **row** terms written in index form over the class axis (``softmax_cross_entropy``, its
  ``axis`` default the last): the mean over the batch and every other position of the row
  term (as PyTorch's ``CrossEntropyLoss`` on ``(N, C, ...)``). VJP: ``diff`` of the index
  form, the deltas contracted (:func:`derive.indexcalc.contract`).

The target argument ``t`` is constant (no VJP) and must come from a target node.

Examples
--------
>>> from symprop import derive
>>> d = derive.backprop(derive.Builder("m").input("x", [2, 3]).activation("tanh", name="a").loss("mse").build())
>>> d.nodes["L"].forward.rhs
Sum((a[m, k, l] - t[m, k, l])**2, (k, 0, 1), (l, 0, 2), (m, 0, N - 1))/(6*N)
"""

from __future__ import annotations

import math
from typing import Mapping

from ..axes import feature_axis
from ..variables import symbol
from .base import Arg, Form, Node, Row, concrete, scalar_derivatives

__all__ = ["Loss"]


class Loss(Form):
    """The mean of an elementwise or row term (see the module docstring)."""

    name = "loss"

    def shape(self, op, attrs, shapes):
        if tuple(shapes["y"]) != tuple(shapes["t"]):
            raise ValueError(f"shape mismatch: prediction y is {list(shapes['y'])} but target t is {list(shapes['t'])}")
        if attrs.get("axis") is not None:
            feature_axis(attrs["axis"], shapes["y"])
        return ()

    def check(self, op, args: Mapping[str, Arg]) -> None:
        if not args["y"].batched:
            raise ValueError(f"argument 'y' must be a batch of predictions, not {args['y'].node!r}")

    def describe(self, op, attrs, detailed=False) -> str:
        fn = attrs.get("function")
        return f"{op.name} {fn}" if isinstance(fn, str) else op.name

    def derive(self, node: Node):
        import sympy as sp

        from .. import symbols as S
        from ..equations import Equation, NodeDerivation
        from ..indexcalc import contract

        v, y_node = node.name, node.source("y")
        shape = node.shape("y")
        index, extents = S.indices(len(shape), True), S.extents(shape, True)
        yb, tb = S.value_base(y_node), S.value_base(node.source("t"))
        m, N = S.BATCH_DUMMY, symbol("BATCH")
        nd = NodeDerivation(v, node.op.name, self.name, None, attrs=node.attrs)
        term = node.op.forward(node.data)
        if not isinstance(term, sp.Expr):   # a row term in index form, over the class axis
            position = 1 + feature_axis(node.attr("axis"), shape)
            k, l = S.dummies(2)
            others = [q for q in range(1, len(index)) if q != position]
            loop = S.dummies(len(others), avoid=(k, l))
            at = [m] + [None] * len(shape)
            for q, d in zip(others, loop):
                at[q] = d
            limits = [(d, 0, extents[q] - 1) for q, d in zip(others, loop)]
            rows = sp.Integer(math.prod(shape[q - 1] for q in others))
            row_term = term(Row(yb, at, position), Row(tb, at, position), k, l, extents[position])
            total = sp.Sum(row_term, *limits, (m, 0, N - 1)) / (N * rows)
            nd.forward = Equation(sp.Symbol(v), total, "scalar")
            if "y" in node.wanted:
                d = sp.factor_terms(contract(sp.diff(total, yb[index])))
                nd.vjps["y"] = Equation(S.grad_base(y_node)[index], d, "index", index, extents)
            return nd
        f, nd.derivatives = scalar_derivatives(node.op, node.data, ("y",))
        Y, T = symbol("Y"), symbol("T")
        dummies = S.dummies(len(shape))
        size = N * sp.Integer(math.prod(shape))
        total = sp.Sum(f.subs({Y: yb[(m, *dummies)], T: tb[(m, *dummies)]}),
                       *[(d, 0, e - 1) for d, e in zip(dummies, extents[1:])], (m, 0, N - 1)) / size
        nd.forward = Equation(sp.Symbol(v), total, "scalar")
        if "y" in node.wanted:
            rhs = nd.derivatives["y"].in_input.subs({Y: yb[index], T: tb[index]}) / size
            nd.vjps["y"] = Equation(S.grad_base(y_node)[index], rhs, "index", index, extents)
        return nd

    def expand(self, node: Node, ground):
        import numpy as np
        import sympy as sp


        y, t = ground.values[node.source("y")], ground.values[node.source("t")]
        term = node.op.forward(node.data)
        if isinstance(term, sp.Expr):
            Y, T = symbol("Y"), symbol("T")
            return sp.Add(*[term.xreplace({Y: ye, T: te}) for ye, te in zip(y.ravel(), t.ravel())]) / y.size
        axis = 1 + feature_axis(node.attr("axis"), node.shape("y"))
        ys, ts = np.moveaxis(y, axis, -1), np.moveaxis(t, axis, -1)
        yb, tb = sp.IndexedBase("y"), sp.IndexedBase("t")
        k, l = sp.symbols("k l", integer=True)
        K = ys.shape[-1]
        positions = list(np.ndindex(*ys.shape[:-1]))
        rows = [concrete(term(Row(yb, (0,), 0), Row(tb, (0,), 0), k, l, K), {yb: ys[at], tb: ts[at]})
                for at in positions]
        return sp.Add(*rows) / len(positions)
