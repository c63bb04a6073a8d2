"""The penalty form: a scalar ``Σ weight·φ(w)`` over every element of a parameter (L1, L2).

VJP: ``weight·φ'(w)`` elementwise over the parameter's own indices (any rank), with ``φ'`` from
:func:`derive.scalar.derivative`.

Examples
--------
>>> from symprop import derive
>>> d = derive.backprop(derive.mlp([2, 1], activation=None, penalty="l2", weight=0.5))
>>> d.nodes["l2_W1"].forward.rhs
Sum(W1[k, l]**2/4, (k, 0, 0), (l, 0, 1))
>>> d.nodes["l2_W1"].vjps["w"].rhs
W1[i, j]/2
"""

from __future__ import annotations

from typing import Mapping

from ..variables import symbol
from .base import Arg, Form, Node, scalar_derivatives

__all__ = ["Penalty"]


class Penalty(Form):
    """``Σ weight·φ(w)`` over a parameter's elements."""

    name = "penalty"

    def shape(self, op, attrs, shapes):
        return ()

    def check(self, op, args: Mapping[str, Arg]) -> None:
        if args["w"].op != "parameter":
            raise ValueError(f"a penalty applies to a parameter node, not {args['w'].node!r}")

    def describe(self, op, attrs, detailed=False) -> str:
        kind, weight = attrs.get("kind", op.attrs["kind"]), attrs.get("weight", op.attrs["weight"])
        return f"{op.name} {kind} (weight {weight})" if detailed else f"{op.name} {kind} weight {weight}"

    def derive(self, node: Node):
        import sympy as sp

        from .. import symbols as S
        from ..equations import Equation, NodeDerivation

        u, shape = node.source("w"), node.shape("w")
        f, ders = scalar_derivatives(node.op, node.data, ("w",))
        W, wb = symbol("W"), S.value_base(u)
        index, dummies = S.feature_indices(len(shape)), S.dummies(len(shape))
        total = sp.Sum(f.subs(W, wb[dummies]), *[(d, 0, e - 1) for d, e in zip(dummies, shape)])
        nd = NodeDerivation(node.name, node.op.name, self.name, Equation(sp.Symbol(node.name), total, "scalar"),
                            derivatives=ders, attrs=node.attrs)
        if "w" in node.wanted:
            nd.vjps["w"] = Equation(S.grad_base(u)[index], ders["w"].in_input.subs(W, wb[index]), "index", index,
                                    S.extents(shape, False))
        return nd

    def expand(self, node: Node, ground):
        import sympy as sp


        f, W = node.op.forward(node.data), symbol("W")
        return sp.Add(*[f.xreplace({W: we}) for we in ground.values[node.source("w")].ravel()])
