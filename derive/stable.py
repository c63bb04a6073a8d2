"""Numerically stable rewrites of derived expressions, applied before code generation.

Printed naively, ``log(1 + exp(x))`` overflows to ``inf`` at x = 1000 and
``exp(x)/(exp(x) + 1)**2`` (the derivative of a sigmoid) becomes ``inf/inf = NaN``. The
maths is finite there, so the generated code must be too. :func:`stabilize` rewrites, for
every ``a`` that appears as ``exp(a)`` next to ``1 + exp(a)``:

* ``log(1 + exp(a))`` into :class:`Softplus` ``(a)``, evaluated as ``max(a, 0) + log1p(exp(-|a|))``;
* every remaining rational function of ``u = exp(a)`` into one of ``s = σ(a) = u/(1 + u)``
  (so ``u = s/(1 - s)``), with ``1 - s`` written :class:`Sigmoid` ``(-a)``: both are bounded,
  computed without overflow (``σ(a) = 1/(1 + exp(-a))`` for a >= 0, ``exp(a)/(1 + exp(a))`` otherwise).

* a ``log`` of such a rational function into a sum over its factors, ``log(s) = -softplus(-a)`` and
  ``log(1 - s) = -softplus(a)`` (hand-written cross-entropy ``-t·log(σ(y)) - (1-t)·log(1-σ(y))``
  was ``log(0)`` at y = 50), and a factor ``2s - 1`` into ``tanh(a/2)`` (no cancellation near 0);
* ``cosh``/``sinh`` inside a log or a denominator first into exponentials, so that ``log(cosh(a))``
  becomes ``softplus(a) + softplus(-a) + log(s² + (1-s)²) - log 2`` and ``sinh(a)/cosh(a)`` a ratio of
  bounded terms (they were ``inf`` and ``inf/inf`` at ``|a| = 1000``);
* the arguments of other functions the same way (``sign(t - σ(y))``), holding every function
  and root as a symbol while the rest is cancelled, and products of exponentials as one
  (``exp(-x)·exp(-exp(-x))`` was ``inf·0`` at x = -1000);
* a product ``k·exp(a)·H(g)`` with a step into ``k·exp(a) if g > 0 else 0``, so the step gates off
  the ``inf·0 = NaN`` (the derivative of an ELU written ``max(0, x) + min(0, exp(x) - 1)``).

The result is kept only if it is numerically equal to the input at sample points and has no
``exp(a)`` left; otherwise the input is returned unchanged. It works on user formulas too:
nothing here knows which op an expression came from.

Examples
--------
>>> import sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> stabilize(sp.log(1 + sp.exp(x)))
Softplus(x)
>>> stabilize(sp.exp(x) / (sp.exp(x) + 1) ** 2)
Sigmoid(-x)*Sigmoid(x)
>>> stabilize(1 / (1 + sp.exp(-x)))
Sigmoid(x)
>>> stabilize(sp.log(1 - 1 / (1 + sp.exp(-x))))
-Softplus(x)
"""

from __future__ import annotations

import functools
import random

import sympy as sp

__all__ = ["Sigmoid", "Softplus", "stabilize", "NUMPY_FUNCTIONS"]


class Sigmoid(sp.Function):
    """``σ(a) = 1 / (1 + exp(-a))``, a function symbol so that code printers can emit a stable form."""

    nargs = 1

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return 1 / (1 + sp.exp(-a))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def fdiff(self, argindex=1):  # derivatives are derived before stabilising: never needed
        raise TypeError("Sigmoid is a code-printing form; differentiate the expression before stabilize()")


class Softplus(sp.Function):
    """``log(1 + exp(a))``, printed stably as ``max(a, 0) + log1p(exp(-|a|))``."""

    nargs = 1

    def _eval_rewrite_as_exp(self, a, **kwargs):
        return sp.log(1 + sp.exp(a))

    def _eval_evalf(self, prec):
        return self.rewrite(sp.exp)._eval_evalf(prec)

    def _eval_is_real(self):
        return self.args[0].is_real

    def fdiff(self, argindex=1):
        raise TypeError("Softplus is a code-printing form; differentiate the expression before stabilize()")


def _exp_terms(add: sp.Add) -> list[tuple[sp.Expr, sp.Expr]]:
    """The ``(k, a)`` of the terms ``k·exp(a)`` of a sum."""
    found = []
    for t in add.args:
        k, e = t.as_coeff_Mul()
        if isinstance(e, sp.exp):
            found.append((k, e.args[0]))
    return found


def _exp_arguments(expr: sp.Expr) -> list[sp.Expr]:
    """Arguments ``a`` of ``exp(a)`` in a sum that overflows to ``inf`` where a ratio or a log of
    it is finite: ``c + k·exp(±a)`` with positive numbers ``c`` and ``k`` (``1 + exp(-a)``;
    ``2·exp(a) + 2``, the derivative of ``softplus(x)/2``) or ``k·exp(a) + m·exp(-a)`` (a ``cosh``
    or ``sinh`` written out)."""
    found = []

    def add(a):
        if a not in found and -a not in found:
            found.append(a)

    for total in expr.atoms(sp.Add):
        terms = _exp_terms(total)
        if any(t.is_Number and t > 0 for t in total.args):
            for k, a in terms:
                if k > 0:
                    add(a)
        for k, a in terms:
            if any((a + b).is_zero for _, b in terms):
                add(a)
    return found


def _bases(expr: sp.Expr) -> list[sp.Expr]:
    """One ``b`` for each overflow-prone ``exp(k·b)`` of :func:`_exp_arguments` (``k`` a number):
    ``b`` times the greatest common divisor of the ``k`` of every ``exp`` of ``expr`` on it, so
    that each is a whole power of ``exp(b)`` (``exp(-x)``, ``exp(-2x)`` and ``exp(-5x)`` on ``x``:
    one rewrite in one variable instead of one per argument, each holding the others)."""
    coefficients: dict[sp.Expr, list[sp.Rational]] = {}
    for e in expr.atoms(sp.exp):
        k, b = e.args[0].as_coeff_Mul()
        if k.is_Rational and k != 0:
            coefficients.setdefault(b, []).append(abs(k))
    bases = []
    for a in _exp_arguments(expr):
        k, b = a.as_coeff_Mul()
        base = b * functools.reduce(sp.gcd, coefficients.get(b, [abs(k)])) if k.is_Rational else a
        if base not in bases:
            bases.append(base)
    return bases


def _softplus(expr: sp.Expr) -> sp.Expr:
    # log(1/(1 + exp(a))) = -log(1 + exp(a)): log(sigmoid(x)) overflowed at x = -1000
    expr = expr.replace(lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.Pow)
                        and e.args[0].exp == -1 and isinstance(e.args[0].base, sp.Add),
                        lambda e: -sp.log(e.args[0].base))

    def is_softplus(e):
        if not isinstance(e, sp.log) or not isinstance(e.args[0], sp.Add):
            return False
        terms = e.args[0].args
        return len(terms) == 2 and 1 in terms and any(isinstance(t, sp.exp) for t in terms)

    def to_softplus(e):
        exp_term = next(t for t in e.args[0].args if isinstance(t, sp.exp))
        return Softplus(exp_term.args[0])

    return expr.replace(is_softplus, to_softplus)


class _GiveUp(Exception):
    """The expression has no overflow-free form in ``σ(a)`` that this module can find."""


#: Highest degree in ``s`` of a polynomial of more than two terms that is factored: SymPy took
#: 160 s to factor one of degree 26 from the derivative of ``log(cosh(x))*cosh(2x)/(1 + cosh(3x))``;
#: beyond it the expression is left as it is (``σ(x)**30``, a monomial, is still rewritten).
_MAX_DEGREE = 16


def _too_big(poly: sp.Expr, s: sp.Dummy) -> bool:
    return sp.degree(poly, s) > _MAX_DEGREE and len(sp.Add.make_args(sp.expand(poly))) > 2


def _degree_bound(e: sp.Expr, u: sp.Dummy) -> int:
    """An upper bound of the degree in ``u`` of ``e``'s numerator and denominator over one common
    denominator. A sum above half :data:`_MAX_BOUND` is rewritten term by term (the derivative of
    ``σ(x)σ(2x)σ(3x)σ(5x)`` ran for minutes in ``sympy.cancel`` over one denominator), a term
    above it not at all."""
    if e == u:
        return 1
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return abs(int(e.exp)) * _degree_bound(e.base, u)
    if isinstance(e, (sp.Add, sp.Mul)):
        return sum(_degree_bound(a, u) for a in e.args)
    return 0


_MAX_BOUND = 48


def _in_sigmoid(poly: sp.Expr, s: sp.Dummy, a: sp.Expr) -> sp.Expr:
    """A polynomial in ``s = σ(a)`` with its factors ``1 - s`` and ``2s - 1`` printed as
    ``σ(-a)`` and ``tanh(a/2)``: bounded, and without the cancellation of ``1 - s`` near
    ``s = 1`` or of ``2s - 1`` near ``a = 0``."""
    if _too_big(poly, s):
        raise _GiveUp
    coeff, factors = sp.factor_list(poly, s)
    return coeff * sp.Mul(*[_factor_in_sigmoid(f, s, a) ** m for f, m in factors])


def _factor_in_sigmoid(f: sp.Expr, s: sp.Dummy, a: sp.Expr) -> sp.Expr:
    """One irreducible factor ``f`` of a polynomial in ``s = σ(a)``, printed in bounded terms."""
    if f == s - 1:
        return -Sigmoid(-a)
    if f == 2 * s - 1:
        return sp.tanh(a / 2)
    return f.subs(s, Sigmoid(a))


def _log_in_sigmoid(rational: sp.Expr, s: sp.Dummy, a: sp.Expr) -> sp.Expr:
    """``log`` of a rational function of ``s = σ(a)``, split over its factors: ``log(s)`` is
    ``-softplus(-a)`` and ``log(1 - s)`` is ``-softplus(a)``, finite where ``s`` rounds to 0 or 1."""
    num, den = sp.fraction(sp.cancel(rational))
    coeff, out = sp.Integer(1), sp.Integer(0)
    for poly, sign in ((num, 1), (den, -1)):
        if _too_big(poly, s):
            raise _GiveUp
        c, factors = sp.factor_list(poly, s)
        coeff *= c ** sign
        for f, m in factors:
            if f == s:
                out -= sign * m * Softplus(-a)
            elif f == s - 1:
                coeff *= (-1) ** m
                out -= sign * m * Softplus(a)
            else:
                out += sign * m * sp.log(_factor_in_sigmoid(f, s, a))
    if not coeff.is_positive:
        raise _GiveUp
    return sp.log(coeff) + out


def _through_sigmoid(expr: sp.Expr, a: sp.Expr) -> sp.Expr:
    """Rewrite the rational dependence of ``expr`` on ``exp(a)`` through ``s = σ(a)``, inside
    logs (split over factors) and the arguments of other functions too (``sign(t - σ(a))``)."""
    u, s = sp.Dummy("u", positive=True), sp.Dummy("s", positive=True)

    def power(e):  # the integer k of exp(k·a), or None
        ratio = sp.cancel(e.args[0] / a) if isinstance(e, sp.exp) else None
        return int(ratio) if ratio is not None and ratio.is_Integer else None

    in_u = expr.replace(lambda e: power(e) is not None, lambda e: u ** power(e))
    if in_u.has(sp.exp(a)) or not in_u.has(u):
        return expr

    def rational(e):  # a rational function of u, in s
        num, den = sp.fraction(sp.cancel(e.subs(u, s / (1 - s))))
        return _in_sigmoid(num, s, a) / _in_sigmoid(den, s, a)

    held = {}

    def opaque(e):  # a function application or a root: held as a symbol while the rest is cancelled
        return e.is_Function or (isinstance(e, sp.Pow) and not e.exp.is_Integer)

    def hold(e):
        if isinstance(e, sp.log) and e.args[0].has(u):
            value = _log_in_sigmoid(e.args[0].subs(u, s / (1 - s)), s, a)
        elif isinstance(e, sp.Pow):
            if e.exp.has(u):
                raise _GiveUp
            value = rational(e.base) ** e.exp if e.base.has(u) else e
        else:
            value = e.func(*[rational(x) if x.has(u) else x for x in e.args])
        placeholder = sp.Dummy("held")
        held[placeholder] = value
        return placeholder

    try:
        held_u = in_u.replace(opaque, hold)   # inside out: an argument is held before its function
        parts = sp.Add.make_args(held_u)   # too big for one common denominator: each term over its own
        if len(parts) == 1 or _degree_bound(held_u, u) <= _MAX_BOUND // 2:
            parts = (held_u,)
        if any(_degree_bound(p, u) > _MAX_BOUND for p in parts):
            return expr
        out = sp.Add(*[rational(p) for p in parts])
    except (_GiveUp, sp.PolynomialError, sp.polys.polyerrors.PolificationFailed, TypeError):
        return expr
    for _ in range(len(held)):
        if not out.has(*held):
            break
        out = out.xreplace(held)
    if out.has(s, u, *held):
        return expr
    return out


def _merge_exps(expr: sp.Expr) -> sp.Expr:
    """``exp(a)·exp(b)`` as ``exp(a + b)``: ``exp(-x)·exp(-exp(-x))`` (a Gompertz curve's
    derivative) was ``inf·0 = NaN`` at x = -1000, ``exp(1000 - inf)`` is 0."""
    def merged(mul):
        exps = [f for f in mul.args if isinstance(f, sp.exp)]
        rest = [f for f in mul.args if not isinstance(f, sp.exp)]
        return sp.Mul(*rest) * sp.exp(sp.Add(*[e.args[0] for e in exps]))
    return expr.replace(lambda e: isinstance(e, sp.Mul) and sum(isinstance(f, sp.exp) for f in e.args) > 1, merged)


def _gate_overflow(expr: sp.Expr) -> sp.Expr:
    """``k·exp(a)·H(g)`` as ``k·exp(a) if g > 0 else 0``: the step gates off the ``inf·0 = NaN``
    that the product gives where ``exp(a)`` overflows (the derivative of ``min(0, exp(x) - 1)``)."""
    def gated(mul):
        steps = [f for f in mul.args if isinstance(f, sp.Heaviside)]
        rest = sp.Mul(*[f for f in mul.args if not isinstance(f, sp.Heaviside)])
        if len(steps) != 1 or not rest.has(sp.exp):
            return mul
        g, h0 = steps[0].args[0], (steps[0].args[1] if len(steps[0].args) > 1 else sp.S.Half)
        pieces = [(rest, g > 0)]
        if h0 != 0:
            pieces.append((h0 * rest, sp.Eq(g, 0)))
        return sp.Piecewise(*pieces, (0, True))

    return expr.replace(lambda e: isinstance(e, sp.Mul) and e.has(sp.Heaviside), gated)


def _same(a: sp.Expr, b: sp.Expr) -> bool:
    """Numerically equal at random moderate points of their free symbols (30 digits)."""
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    rng = random.Random(1)
    for _ in range(6):
        point = {x: sp.Float(rng.uniform(-2, 2), 30) for x in symbols}
        va = sp.N(a.rewrite(sp.exp).subs(point), 30)
        vb = sp.N(b.rewrite(sp.exp).subs(point), 30)
        if not (va.is_number and vb.is_number):
            return False
        if abs(va - vb) > sp.Float(1e-18) * (1 + abs(va)):
            return False
    return True


def _hyperbolic_hazard(expr: sp.Expr) -> bool:
    """A ``cosh``/``sinh`` inside a log or a denominator: ``log(cosh(1000))`` and
    ``sinh(1000)/cosh(1000)`` are ``inf`` and ``inf/inf`` where the maths is finite."""
    def risky(e):
        return e.has(sp.cosh, sp.sinh)
    return any(risky(e.args[0]) for e in expr.atoms(sp.log)) or any(
        risky(p.base) for p in expr.atoms(sp.Pow) if p.exp.is_negative)


def stabilize(expr: sp.Expr) -> sp.Expr:
    """``expr`` with softplus and sigmoid patterns in overflow-free form (see the module docstring)."""
    if not expr.has(sp.exp, sp.cosh, sp.sinh):
        return expr
    out = expr
    if _hyperbolic_hazard(out):
        out = out.replace(lambda e: isinstance(e, (sp.cosh, sp.sinh)), lambda e: e.rewrite(sp.exp))
    out = _softplus(_merge_exps(out))
    for base in _bases(out):
        out = _through_sigmoid(out, base)
    if any(isinstance(e.args[0], sp.Add) for e in out.atoms(sp.exp)) and not expr.has(sp.exp):
        return expr  # cosh/sinh written out but not rewritten: keep the original functions
    out = _gate_overflow(out)
    if out == expr:
        return expr
    try:
        return out if _same(expr, out) else expr
    except (TypeError, ValueError):  # pragma: no cover - exotic expressions
        return expr


def _np_sigmoid(a):
    import numpy as np

    a = np.asarray(a)
    e = np.exp(-np.abs(a))  # <= 1: never overflows
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _np_softplus(a):
    import numpy as np

    a = np.asarray(a)
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


#: NumPy implementations for ``lambdify(..., modules=[NUMPY_FUNCTIONS, "numpy"])``; the
#: compiled kernels print the same formulas (``kernels.lower.walker``).
NUMPY_FUNCTIONS = {"Sigmoid": _np_sigmoid, "Softplus": _np_softplus}
