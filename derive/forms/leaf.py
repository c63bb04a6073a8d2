"""The leaf form: ``input``, ``target`` and ``parameter`` nodes, whose values come from outside.

A leaf has no arguments and derives nothing; its feature shape is its ``shape`` attribute, and
inputs and targets carry the batch axis in front (parameters do not). In the ground truth each
element is one real symbol.

Examples
--------
>>> from symprop.derive.ops import get_op
>>> op = get_op("parameter")
>>> op.form.batched({}), op.form.shape(op, {"shape": [3, 2]}, {})
(False, (3, 2))
"""

from __future__ import annotations

from ..axes import shape_attribute
from .base import Form, Node

__all__ = ["Leaf"]


class Leaf(Form):
    """A value supplied from outside; ``batched``: whether it is a batch of examples."""

    name = "leaf"

    def __init__(self, batched: bool):
        self._batched = batched

    def shape(self, op, attrs, shapes):
        return shape_attribute(attrs.get("shape"))

    def batched(self, args) -> bool:
        return self._batched

    def derive(self, node: Node):
        from ..equations import NodeDerivation

        return NodeDerivation(node.name, node.op.name, self.name, None, attrs=node.attrs)

    def expand(self, node: Node, ground):
        return ground.leaf(node.name, ((ground.batch,) if node.batched() else ()) + node.shape())
