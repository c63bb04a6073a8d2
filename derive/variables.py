"""The scalar symbols that op definitions are written in, made (and SymPy imported) on first use.

An elementwise op is defined by one SymPy expression in one symbol per argument, named like the
argument (``x`` for an activation, ``x`` and ``y`` for ``add``, ``y`` and ``t`` for a loss, ``w``
for a penalty); ``alpha`` is an activation's attribute and ``N`` the batch size, symbolic in every
mean. :mod:`derive.ops` re-exports them as ``X``, ``Y``, ``T``, ``W``, ``ALPHA`` and ``BATCH``.
Nothing is made at import, so building and validating networks needs no SymPy.

Examples
--------
>>> argument("x") == symbol("X"), symbol("BATCH")
(True, N)
"""

from __future__ import annotations

import functools

__all__ = ["argument", "symbol", "NAMES", "BATCH_NAME"]

#: The batch size's symbol (no node may be called so, see :func:`derive.graph.validate`).
BATCH_NAME = "N"

#: The names :func:`symbol` knows.
NAMES = ("X", "Y", "T", "W", "ALPHA", "BATCH")


def argument(name: str):
    """The real symbol that stands for an element of the op argument ``name`` in definitions.

    >>> argument("t")
    t
    """
    import sympy as sp

    return sp.Symbol(name, real=True)


@functools.cache
def _symbols() -> dict:
    import sympy as sp

    return {
        "X": argument("x"),     # an element of the op's input
        "Y": argument("y"),     # an element of a prediction (losses), of a second input or of the output
        "T": argument("t"),     # an element of a target
        "W": argument("w"),     # an element of a parameter (penalties)
        "ALPHA": sp.Symbol("alpha", positive=True),
        "BATCH": sp.Symbol(BATCH_NAME, integer=True, positive=True),   # the batch size: symbolic everywhere
    }


def symbol(name: str):
    """One of :data:`NAMES` as a SymPy symbol."""
    return _symbols()[name]
