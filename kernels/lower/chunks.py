"""Which derived statements may run on a slice of the batch's rows (the data-parallel epoch).

The ``parallel`` backend's epoch (:mod:`kernels.cpu.epoch`) splits each batch into one chunk of rows
per thread; every thread runs the forward and backward statements on its own rows, into its own
buffers and its own *partial* parameter gradients, which are added after the parallel region.
That is only right when every statement is one of:

``"row"``
    a batched array whose row ``n`` needs only row ``n`` of other batched arrays
    (``x·Wᵀ + 𝟙·bᵀ``, ``tanh(z1[n, i])``, the softmax's ``∂L/∂z[n, i]``);
``"sum"``
    a parameter gradient or a scalar that is a sum over the batch's rows of row-local terms
    times row-independent factors (``∂L/∂zᵀ·a``, ``∂L/∂zᵀ·𝟙``, ``Σ_m(...)/N``): the chunks'
    partial results add up to the whole;
``"const"``
    a value that reads no batched array at all (a penalty and its gradient): computed once,
    outside the parallel region, so that it is not counted once per chunk.

:func:`role` returns one of these for an equation, or None when a statement couples rows in
another way (a future batch normalisation, say); the epoch generator then falls back to the
whole-batch ``prange`` form. ``N`` in a formula stays the whole batch's size in every chunk.

Examples
--------
>>> from symprop import derive
>>> bp = derive.backprop(derive.mlp([3, 4, 2], activation="tanh", loss="mse"))
>>> role(bp.nodes["z1"].forward, lambda n: n in {"x", "z1", "a1", "z2", "t"})
'row'
>>> role(bp.gradients["W1"][0].equation, lambda n: n in {"x", "dL/dz1"})
'sum'
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from symprop.derive.ops import BATCH

__all__ = ["role"]


def role(eq, batched: Callable[[str], bool]) -> str | None:
    """``"row"``, ``"sum"`` or ``"const"`` (see the module docstring) for a derived equation
    (``eq.form`` ``matrix``, ``index`` or ``scalar``); ``batched(name)`` tells whether the array a
    SymPy name stands for has the batch as its first axis."""
    if eq.form == "matrix":
        return _matrix(eq.rhs, batched)
    if eq.form == "index":
        rows = eq.indices[0] if eq.indices and eq.extents[0] == BATCH else None
        if rows is not None:
            return "row" if _row_local(eq.rhs, rows, batched) else None
        return _sum_form(eq.rhs, batched)
    return _sum_form(eq.rhs, batched)


def _batched_elements(expr, batched) -> list:
    return [a for a in expr.atoms(sp.Indexed) if batched(str(a.base.label))]


def _row_local(expr, row, batched) -> bool:
    """Every element of a batched array in ``expr`` is taken at row ``row``."""
    return all(a.indices[0] == row for a in _batched_elements(expr, batched))


def _sum_form(expr, batched) -> str | None:
    """``const`` without batched elements; ``sum`` when ``expr`` is a sum of terms, each a
    row-independent factor times one ``Σ`` over all N rows of a row-local body."""
    if not _batched_elements(expr, batched):
        return "const"
    for term in sp.Add.make_args(expr):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        rest = [f for f in sp.Mul.make_args(term) if not isinstance(f, sp.Sum)]
        if len(sums) != 1 or any(_batched_elements(f, batched) for f in rest):
            return None
        over_rows = [v for v, lo, hi in sums[0].limits if lo == 0 and hi == BATCH - 1]
        if not any(_row_local(sums[0].function, v, batched) for v in over_rows):
            return None
    return "sum"


def _matrix(expr, batched) -> str | None:
    """Role of a matrix expression: ``row`` (N rows, each from the same row of its operands),
    ``sum`` (a product contracting the batch axis: ``Gᵀ·A``), ``const``; ``rowT`` internally for
    the transpose of a row-local operand; None otherwise."""
    if isinstance(expr, sp.MatrixSymbol):
        return "row" if batched(expr.name) else "const"
    if isinstance(expr, sp.OneMatrix):
        return "row" if expr.shape[0] == BATCH else "const"
    if isinstance(expr, sp.Transpose):
        inner = _matrix(expr.arg, batched)
        return {"row": "rowT", "const": "const"}.get(inner)
    if isinstance(expr, sp.MatMul):
        coeff, factors = expr.as_coeff_matrices()
        if coeff.free_symbols - {BATCH}:
            return None
        roles = [_matrix(f, batched) for f in factors]
        if None in roles:
            return None
        if all(r == "const" for r in roles):
            return "const"
        if roles[0] == "row" and all(r == "const" for r in roles[1:]):
            return "row"
        if roles[:2] == ["rowT", "row"] and all(r == "const" for r in roles[2:]):
            return "sum"
        return None
    if isinstance(expr, sp.MatAdd):
        roles = {_matrix(a, batched) for a in expr.args}
        return roles.pop() if len(roles) == 1 and roles <= {"row", "sum", "const"} else None
    return None
