"""The SymPy symbols that stand for node values and gradients in derived equations.

One place decides the names, so printers, code generators and tests agree:

* the value of node ``v`` is ``v`` (a :class:`sympy.MatrixSymbol` in matrix equations, an
  :class:`sympy.IndexedBase` in index equations);
* the gradient of the objective with respect to it is ``dL/dv`` (printed ``∂L/∂v``);
* the layer-recursion error of layer ``l`` is ``delta(l)`` (printed ``δ⁽ˡ⁾``);
* index equations take their free indices from the value's shape: ``n`` for the batch, then one
  per feature axis (``i, j, u, v, ...``: :func:`indices`), and sum over ``m`` (the batch) and
  ``k, l, r, s, ...`` (:func:`dummies`), so a rank-1 value reads ``x[n, i]`` as it always did.

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
           "parse_name", "dims", "GRAD_PREFIX", "DELTA_PREFIX", "FREE", "DUMMY", "indices", "feature_indices",
           "dummies", "extents", "BATCH_DUMMY"]


def _index(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, nonnegative=True)


#: Free indices of index equations: batch row n, then feature i (parameters: i, j); see
#: :func:`indices` for any rank.
FREE = tuple(map(_index, ("n", "i", "j")))
#: Summation indices used in definitions (never free in a result); see :func:`dummies`.
DUMMY = tuple(map(_index, ("m", "k", "l", "r")))
#: The summation index that runs over the batch's rows.
BATCH_DUMMY = DUMMY[0]

_FEATURE_NAMES = ("i", "j", "u", "v")   # in alphabetical order, so sums of them print in axis order
_DUMMY_NAMES = ("k", "l", "r", "s")


def _names(pool: tuple[str, ...], stem: str, count: int) -> list[str]:
    return list(pool[:count]) + [f"{stem}{q}" for q in range(len(pool), count)]


def feature_indices(rank: int) -> tuple:
    """The free indices of ``rank`` feature axes, in axis order: ``i, j, u, v``, then ``i4, i5, ...``.

    >>> feature_indices(3)
    (i, j, u)
    """
    return tuple(map(_index, _names(_FEATURE_NAMES, "i", rank)))


def indices(rank: int, batched: bool) -> tuple:
    """The free indices of a value with ``rank`` feature axes: the batch row ``n`` first when
    ``batched``, then :func:`feature_indices`.

    >>> indices(1, True), indices(2, False)
    ((n, i), (i, j))
    """
    return ((FREE[0],) if batched else ()) + feature_indices(rank)


def dummies(count: int, avoid=()) -> tuple:
    """``count`` summation indices for feature axes, in axis order: ``k, l, r, s``, then
    ``k4, k5, ...``, leaving out the symbols in ``avoid``. The batch's is :data:`BATCH_DUMMY`.

    >>> dummies(2), dummies(2, avoid=dummies(2))
    ((k, l), (r, s))
    """
    avoid = set(avoid)
    out: list = []
    total = count
    while len(out) < count:
        out = [d for d in map(_index, _names(_DUMMY_NAMES, "k", total)) if d not in avoid][:count]
        total += 1
    return tuple(out)


def extents(shape: tuple[int, ...], batched: bool) -> tuple:
    """The ranges of :func:`indices`: ``N`` for the batch, then the feature sizes (SymPy integers).

    >>> extents((2, 3), True)
    (N, 2, 3)
    """
    return ((BATCH,) if batched else ()) + tuple(sp.Integer(d) for d in shape)


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
