"""Stable forms of element expressions before printing.

:func:`stabilize_rows` rewrites every row reduction ``Σ_l exp(e_l)`` with the row maximum
``M = max_l e_l`` subtracted: ``log Σ exp(e)`` becomes ``M + log Σ exp(e - M)``,
``exp(e_c)/Σ exp(e)`` becomes ``exp(e_c - M)/Σ exp(e - M)`` (softmax, softmax cross-entropy);
any other use is ``exp(M)·Σ exp(e - M)``, which is exact. It first applies
:func:`symprop.derive.stable.stabilize` (sigmoid/softplus forms) to the element expression
(:func:`stable_elements`). The rules for whole expressions live in :mod:`symprop.derive.stable`;
this module adds only what needs array elements and sums.

>>> import sympy as sp
>>> x = sp.IndexedBase("x"); n, j = sp.symbols("n j", integer=True)
>>> print(stabilize_rows(sp.log(sp.Sum(sp.exp(x[n, j]), (j, 0, 2)))))
log(Sum(exp(-RowMax(x[n, j], j, 0, 2) + x[n, j]), (j, 0, 2))) + RowMax(x[n, j], j, 0, 2)
"""

from __future__ import annotations

import sympy as sp

from symprop.derive.stable import stabilize

from .printer import RowMax

__all__ = ["stabilize_rows", "stable_elements"]


def stable_elements(expr: sp.Expr) -> sp.Expr:
    """:func:`derive.stable.stabilize` on an element expression (sigmoid/softplus patterns).

    Elements ``x[n, i]`` and sums are swapped for plain symbols while rewriting; the bodies of
    sums are rewritten the same way, inside out.
    """
    if not isinstance(expr, sp.Expr) or isinstance(expr, sp.MatrixExpr) or not expr.has(sp.exp, sp.cosh, sp.sinh):
        return expr
    expr = expr.replace(lambda e: isinstance(e, sp.Sum),
                        lambda e: sp.Sum(stable_elements(e.function), *e.limits))
    opaque = sorted(expr.atoms(sp.Indexed) | expr.atoms(sp.Sum), key=sp.default_sort_key)
    plain = {a: sp.Dummy(real=True) for a in opaque}
    out = stabilize(expr.xreplace(plain))
    return out.xreplace({v: k for k, v in plain.items()})


def stabilize_rows(expr: sp.Expr) -> sp.Expr:
    """Rewrite every ``Σ_l exp(e_l)`` with the row maximum subtracted (see the module docstring),
    and elementwise sigmoid/softplus patterns through their stable forms."""
    expr = stable_elements(expr)
    sums = [s for s in sorted(expr.atoms(sp.Sum), key=sp.default_sort_key)
            if len(s.limits) == 1 and isinstance(s.function, sp.exp) and s.limits[0][0] in s.function.free_symbols]
    for s in sums:
        var, lo, hi = s.limits[0]
        e = s.function.args[0]
        M = RowMax(e, var, lo, hi)
        shifted = sp.Sum(sp.exp(e - M), (var, lo, hi))
        w = sp.Wild("w")
        pattern = e.xreplace({var: w})

        def shift_exp(f):
            if isinstance(f, sp.exp):
                match = f.args[0].match(pattern)
                if match is not None and w in match:
                    return sp.exp(f.args[0] - M)
            return None

        def rewrite_mul(mul):
            factors = list(mul.args)
            inverse = [q for q, f in enumerate(factors) if f == sp.Pow(s, -1)]
            shifted_exps = [(q, shift_exp(f)) for q, f in enumerate(factors)]
            shifted_exps = [(q, f) for q, f in shifted_exps if f is not None]
            if not inverse or not shifted_exps:
                return mul
            factors[inverse[0]] = sp.Pow(shifted, -1)
            q, f = shifted_exps[0]
            factors[q] = f
            return sp.Mul(*factors, evaluate=False)

        expr = expr.replace(lambda x: isinstance(x, sp.Mul) and sp.Pow(s, -1) in x.args, rewrite_mul)
        expr = expr.replace(lambda x: isinstance(x, sp.log) and x.args[0] == s, lambda x: M + sp.log(shifted))
        expr = expr.xreplace({s: sp.exp(M) * shifted})
    return expr
