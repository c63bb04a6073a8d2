"""The matrix form: a matrix expression of the arguments as :class:`sympy.MatrixSymbol` (``dense``:
``X Wᵀ + 𝟙 bᵀ``), one row per example.

The VJP with respect to argument ``A`` is SymPy's matrix calculus on the op's forward definition
``F``: ``∂ trace(Gᵀ F(args)) / ∂A``, with ``G`` the upstream gradient (``Gᵀ·X`` for the weight,
``G·W`` for the input, ``Gᵀ·𝟙`` for the bias). Values are rank-1 rows: an argument with more
feature axes is refused by the op's shape rule (flatten it first).

Examples
--------
>>> from symprop import derive
>>> d = derive.backprop(derive.mlp([2, 3, 1]))
>>> print(d.nodes["z1"].forward.rhs)
x*W1.T + 1*b1.T
>>> d.nodes["z1"].vjps["W"].rhs
dL/dz1.T*x
"""

from __future__ import annotations

from typing import Mapping

from .base import Arg, Form, Node

__all__ = ["Matrix"]


class Matrix(Form):
    """A matrix expression of matrix-shaped arguments; ``batch_args`` are the rows of examples,
    every other argument a parameter."""

    name = "matrix"

    def __init__(self, batch_args: tuple[str, ...] = ("x",)):
        self.batch_args = batch_args

    def batched(self, args: Mapping[str, Arg]) -> bool:
        return any(args[a].batched for a in self.batch_args if a in args)

    def check(self, op, args: Mapping[str, Arg]) -> None:
        for a, arg in args.items():
            if a in self.batch_args:
                self._must_be_batch(args, a)
            elif arg.batched:
                raise ValueError(f"argument {a!r} must be a parameter, not the batch {arg.node!r}")

    def layer_role(self, op, args) -> str | None:
        return "linear" if "W" in args else None

    def derive(self, node: Node):
        import sympy as sp

        from .. import symbols as S
        from ..equations import Equation, NodeDerivation

        v = node.name
        mats = {a: S.value_matrix(u, S.dims(node.shape(a), node.batched(a))) for a, u in node.args.items()}
        out_dims = S.dims(node.shape(), node.batched())
        grad = S.grad_matrix(v, out_dims)
        forward = node.op.forward(*[mats.get(a) for a in node.op.args])
        objective = sp.Trace(grad.T * forward)
        nd = NodeDerivation(v, node.op.name, self.name, Equation(S.value_matrix(v, out_dims), forward, "matrix"),
                            attrs=node.attrs)
        for a in node.wanted:
            u = node.source(a)
            nd.vjps[a] = Equation(S.grad_matrix(u, S.dims(node.shape(a), node.batched(a))), objective.diff(mats[a]),
                                  "matrix")
        return nd

    def expand(self, node: Node, ground):
        import numpy as np
        import sympy as sp

        values = {a: ground.values[u] for a, u in node.args.items()}
        mats = {a: sp.Matrix(x if x.ndim == 2 else x.reshape(-1, 1)) for a, x in values.items()}
        built = sp.Matrix(node.op.forward(*[mats.get(a) for a in node.op.args]))   # 𝟙 made explicit
        return np.array(built.tolist(), dtype=object)
