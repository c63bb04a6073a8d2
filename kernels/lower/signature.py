"""The generated ``loss_and_grads`` function's name and argument lists, and the dtypes it is made
for: what a compiled model needs to call code it found in the cache, without SymPy.

>>> from symprop import derive
>>> net = derive.mlp([2, 3, 1])
>>> graph_signature(net, derive.validate(net))
Signature(inputs=('x',), targets=('t',), parameters=('W1', 'b1', 'W2', 'b2'))
>>> dtype_name("float32")
'float32'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FUNCTION_NAME", "DTYPES", "Signature", "signature", "graph_signature"]

FUNCTION_NAME = "loss_and_grads"
#: Supported dtypes and how the generated code names them.
DTYPES = {"float64": "np.float64", "float32": "np.float32"}


def dtype_name(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


@dataclass(frozen=True)
class Signature:
    """The argument lists of the generated function, by node name."""

    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    parameters: tuple[str, ...]

    @property
    def gradients(self) -> tuple[str, ...]:
        return self.parameters


def signature(bp) -> Signature:
    """Inputs and targets in topological order, parameters in :func:`derive.parameters` order."""
    return graph_signature(bp.graph, bp.info)


def graph_signature(g, info) -> Signature:
    """:func:`signature` from the graph and its :class:`derive.GraphInfo` (no derivation needed)."""
    return Signature(tuple(info.inputs), tuple(info.targets), tuple(info.parameters))
