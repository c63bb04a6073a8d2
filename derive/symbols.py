"""The SymPy symbols that stand for node values and gradients in derived equations.

One place decides the names, so printers, code generators and tests agree:

* the value of node ``v`` is ``v`` (a :class:`sympy.MatrixSymbol` in matrix equations, an
  :class:`sympy.IndexedBase` in index equations);
* the gradient of the objective with respect to it is ``dL/dv`` (printed ``∂L/∂v``);
* the layer-recursion error of layer ``l`` is ``delta(l)`` (printed ``δ⁽ˡ⁾``).

Examples
--------
>>> value_matrix("W1", (16, 2)).shape
(16, 2)
>>> grad_base("z1")
dL/dz1
>>> parse_name("dL/dz1")
('grad', 'z1')
"""

from __future__ import annotations

import sympy as sp

from .graph import DELTA_PREFIX, GRAD_PREFIX
from .ops import BATCH

__all__ = ["value_matrix", "value_base", "grad_matrix", "grad_base", "delta_matrix", "delta_base",
           "parse_name", "dims", "GRAD_PREFIX", "DELTA_PREFIX", "FREE", "DUMMY"]


#: Free indices of index equations: batch row n, then feature i (parameters: i, j).
FREE = sp.symbols("n i j", integer=True, nonnegative=True)
#: Summation indices used in definitions (never free in a result).
DUMMY = sp.symbols("m k l r", integer=True, nonnegative=True)


def dims(shape: tuple[int, ...], batched: bool) -> tuple:
    """Matrix dimensions of a value: (N, d) for a batch of rows, (rows, cols) or (d, 1) otherwise."""
    if batched:
        return (BATCH, shape[0]) if len(shape) == 1 else (BATCH, *shape)
    return tuple(shape) if len(shape) == 2 else (shape[0], 1)


def value_matrix(v: str, shape: tuple) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(v, *shape)


def value_base(v: str) -> sp.IndexedBase:
    return sp.IndexedBase(v)


def grad_matrix(v: str, shape: tuple) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(GRAD_PREFIX + v, *shape)


def grad_base(v: str) -> sp.IndexedBase:
    return sp.IndexedBase(GRAD_PREFIX + v)


def delta_matrix(layer: int, shape: tuple) -> sp.MatrixSymbol:
    return sp.MatrixSymbol(f"{DELTA_PREFIX}{layer})", *shape)


def delta_base(layer: int) -> sp.IndexedBase:
    return sp.IndexedBase(f"{DELTA_PREFIX}{layer})")


def parse_name(name: str) -> tuple[str, str]:
    """``("grad", node)``, ``("delta", layer)`` or ``("value", node)`` for a symbol name."""
    if name.startswith(GRAD_PREFIX):
        return "grad", name[len(GRAD_PREFIX):]
    if name.startswith(DELTA_PREFIX) and name.endswith(")"):
        return "delta", name[len(DELTA_PREFIX):-1]
    return "value", name
