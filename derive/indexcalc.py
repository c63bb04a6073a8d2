"""Index-form calculus: differentiate element expressions and clean the result up.

SymPy differentiates ``Indexed`` expressions into sums of ``KroneckerDelta`` products
(``d x[n, j] / d x[m, k] = delta(n, m) delta(j, k)``). :func:`contract` turns those back into
closed form: sums are expanded over their terms, factors free of the summation index are
pulled out, and a delta on the summation index substitutes it. Every index in symprop ranges
over its whole dimension, so the ``Piecewise`` range conditions SymPy would attach are always
true and never appear.

Examples
--------
>>> import sympy as sp
>>> x, g = sp.IndexedBase("x"), sp.IndexedBase("g")
>>> i, j, k = sp.symbols("i j k", integer=True)
>>> K = sp.Symbol("K", integer=True, positive=True)
>>> s = sp.Sum(g[i] * x[i] ** 2, (i, 0, K - 1))
>>> vjp(s, x, (k,))
2*g[k]*x[k]
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

__all__ = ["contract", "vjp", "index_symbols", "FloorDiv"]


class FloorDiv(sp.Function):
    """``a // d``: the integer quotient of a nonnegative index expression ``a`` by a positive
    integer ``d`` (the digits of a flat offset in a view, :mod:`derive.forms.view`).

    SymPy's ``floor(i/d)`` prints as ``math.floor((1/d)*i)`` in Python, which is wrong for some
    ``i`` (``floor((1/49)*49) == 0``); this prints as exact integer division in every Python code
    printer (``(i // 49)``, through ``_pythoncode``, ``_numpycode``, ``_lambdacode``). Multiples
    of ``d`` are taken out: ``FloorDiv(3*i + j, 3) = i + FloorDiv(j, 3)``.

    >>> i, j = index_symbols("i j")
    >>> FloorDiv(3*i + j, 3), FloorDiv(7, 3)
    (i + FloorDiv(j, 3), 2)
    >>> from sympy.printing.pycode import pycode
    >>> pycode(FloorDiv(i, 49)), pycode(FloorDiv(i + j, 2))
    ('(i // 49)', '((i + j) // 2)')
    """

    is_integer = True

    @classmethod
    def eval(cls, a, d):
        if not (d.is_Integer and d > 0):
            raise ValueError(f"FloorDiv needs a positive integer divisor, got {d}")
        if a.is_Integer:
            return sp.Integer(int(a) // int(d))
        if d == 1:
            return a
        terms = sp.Add.make_args(a)
        whole = [t for t in terms if (t / d).is_integer]
        if whole:
            rest = sp.Add(*[t for t in terms if t not in whole])
            return sp.Add(*[t / d for t in whole]) + (cls(rest, d) if rest != 0 else 0)
        return None

    def _eval_is_nonnegative(self):
        return self.args[0].is_nonnegative

    def _floordiv_code(self, printer) -> str:
        return f"({printer.parenthesize(self.args[0], PRECEDENCE['Mul'])} // {printer._print(self.args[1])})"

    _pythoncode = _numpycode = _lambdacode = _mpmathcode = _floordiv_code


def index_symbols(names: str) -> tuple[sp.Symbol, ...]:
    """Integer symbols used as array indices.

    >>> index_symbols("n i")
    (n, i)
    """
    return sp.symbols(names, integer=True, nonnegative=True)


def _expand_terms(expr: sp.Expr) -> list[sp.Expr]:
    """The additive terms of ``expr`` once products over sums are distributed (no other expansion)."""
    expanded = sp.expand(expr, deep=False, power_base=False, power_exp=False, log=False,
                         multinomial=False, mul=True)
    return list(sp.Add.make_args(expanded))


def _delta_partner(factor: sp.Expr, index: sp.Symbol):
    """For ``KroneckerDelta(index, other)`` return ``other``; None otherwise."""
    if isinstance(factor, sp.KroneckerDelta) and index in factor.args:
        a, b = factor.args
        other = b if a == index else a
        if other != index and index not in other.free_symbols:
            return other
    return None


def _contract_sum(body: sp.Expr, index: sp.Symbol, lo, hi) -> sp.Expr:
    """Closed form of ``Sum(body, (index, lo, hi))`` term by term."""
    result = sp.S.Zero
    for term in _expand_terms(body):
        inside, outside = [], []
        for factor in sp.Mul.make_args(term):
            (inside if index in factor.free_symbols else outside).append(factor)
        coeff = sp.Mul(*outside)
        partner = next((p for p in (_delta_partner(f, index) for f in inside) if p is not None), None)
        if partner is not None:
            rest = list(inside)
            rest.remove(next(f for f in inside if _delta_partner(f, index) == partner))
            result += coeff * contract(sp.Mul(*rest).xreplace({index: partner}))
        elif not inside:
            result += coeff * (hi - lo + 1)
        else:
            result += coeff * sp.Sum(sp.Mul(*inside), (index, lo, hi))
    return result


def contract(expr: sp.Expr) -> sp.Expr:
    """Contract every ``Sum`` of ``KroneckerDelta`` in ``expr`` (inside out).

    >>> import sympy as sp
    >>> a = sp.IndexedBase("a"); j, k = sp.symbols("j k", integer=True)
    >>> contract(sp.Sum(a[j] * sp.KroneckerDelta(j, k), (j, 0, 9)))
    a[k]
    """
    if not expr.has(sp.Sum, sp.KroneckerDelta):
        return expr
    if isinstance(expr, sp.Sum):
        body = contract(expr.function)
        limits = list(expr.limits)
        # innermost limit first: Sum(f, (i, ..), (j, ..)) is sum over j of sum over i
        index, lo, hi = limits[0]
        inner = _contract_sum(body, index, lo, hi)
        for index, lo, hi in limits[1:]:
            inner = _contract_sum(inner, index, lo, hi)
        return inner
    if expr.args:
        return expr.func(*[contract(a) if isinstance(a, sp.Basic) else a for a in expr.args])
    return expr


def vjp(scalar: sp.Expr, base: sp.IndexedBase, at: tuple) -> sp.Expr:
    """The derivative of a scalar index expression with respect to ``base[at]``, contracted.

    ``scalar`` is usually ``sum over outputs of upstream * output``, which makes the result
    the vector-Jacobian product at element ``at``.
    """
    derivative = sp.diff(scalar, base[at])
    derivative = derivative.replace(lambda e: isinstance(e, sp.Sum), lambda e: e)  # keep structure
    return sp.factor_terms(contract(derivative))
