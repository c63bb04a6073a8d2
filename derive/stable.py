"""Numerically stable rewrites of derived expressions, applied before code generation.

Printed naively, ``log(1 + exp(x))`` overflows to ``inf`` at x = 1000 and
``exp(x)/(exp(x) + 1)**2`` (the derivative of a sigmoid) becomes ``inf/inf = NaN``. The
maths is finite there, so the generated code must be too. :func:`stabilize` rewrites, for
every ``a`` that appears as ``exp(a)`` next to ``1 + exp(a)``:

* ``log(1 + exp(a))`` into :class:`Softplus` ``(a)``, evaluated as ``max(a, 0) + log1p(exp(-|a|))``;
* every remaining rational function of ``u = exp(a)`` into one of ``s = σ(a) = u/(1 + u)``
  (so ``u = s/(1 - s)``), with ``1 - s`` written :class:`Sigmoid` ``(-a)``: both are bounded,
  computed without overflow (``σ(a) = 1/(1 + exp(-a))`` for a >= 0, ``exp(a)/(1 + exp(a))`` otherwise).

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
"""

from __future__ import annotations

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


def _exp_arguments(expr: sp.Expr) -> list[sp.Expr]:
    """Arguments ``a`` of ``exp(a)`` that appear in a sum ``c + k·exp(±a)`` with positive numbers
    ``c`` and ``k`` (``1 + exp(-a)``; ``2·exp(a) + 2``, the derivative of ``softplus(x)/2``)."""
    found = []
    for add in expr.atoms(sp.Add):
        if not any(t.is_Number and t > 0 for t in add.args):
            continue
        for t in add.args:
            k, e = t.as_coeff_Mul()
            if isinstance(e, sp.exp) and k > 0:
                a = e.args[0]
                if a not in found and -a not in found:
                    found.append(a)
    return found


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


def _through_sigmoid(expr: sp.Expr, a: sp.Expr) -> sp.Expr:
    """Rewrite the rational dependence of ``expr`` on ``exp(a)`` through ``s = σ(a)``."""
    u, s = sp.Dummy("u", positive=True), sp.Dummy("s", positive=True)

    def to_u(e):
        ratio = sp.simplify(e.args[0] / a)
        if ratio.is_Integer:
            return u ** int(ratio)
        return e

    in_u = expr.replace(lambda e: isinstance(e, sp.exp) and (e.args[0] / a).is_Number, to_u)
    if in_u.has(sp.exp(a)) or not in_u.has(u):
        return expr
    try:
        in_s = sp.factor(sp.cancel(in_u.subs(u, s / (1 - s))), s)
    except (sp.PolynomialError, sp.polys.polyerrors.PolificationFailed, TypeError):
        return expr
    sig_pos, sig_neg = Sigmoid(a), Sigmoid(-a)
    out = in_s.subs(1 - s, sig_neg).subs(s - 1, -sig_neg).subs(s, sig_pos)
    if out.has(s):
        return expr
    return out


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


def stabilize(expr: sp.Expr) -> sp.Expr:
    """``expr`` with softplus and sigmoid patterns in overflow-free form (see the module docstring)."""
    if not expr.has(sp.exp):
        return expr
    out = _softplus(expr)
    for a in _exp_arguments(out):
        base = a if not (isinstance(a, sp.Mul) and a.args[0] == -1) else -a
        candidate = _through_sigmoid(out, base)
        if candidate is not out:
            out = candidate
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
#: compiled kernels print the same formulas (``kernels.codegen``).
NUMPY_FUNCTIONS = {"Sigmoid": _np_sigmoid, "Softplus": _np_softplus}
