"""Scalar derivatives of elementwise functions, in the closed form a textbook prints.

:func:`derivative` differentiates with :func:`sympy.diff`, applies symprop's conventions at
non-differentiable points, tidies the result, and where it can re-expresses it through the
function's own output (``sigmoid' = y (1 - y)``, ``tanh' = 1 - y**2``), which is what the
backward pass reuses.

Conventions (printed with the equations and tested):

* ``Heaviside(0) = 0``: ``relu'(0) = 0`` and ``leaky_relu'(0) = alpha``, as PyTorch;
* ``|x|'(0) = sign(0) = 0``, as PyTorch;
* the step function's derivative ``DiracDelta`` is taken as 0: it is 0 almost everywhere,
  so no gradient flows through a step (the trainer warns about it).

Examples
--------
>>> import sympy as sp
>>> from symprop.derive.ops import X, Y
>>> derivative(sp.tanh(X)).through_output
1 - y**2
>>> derivative(1 / (1 + sp.exp(-X))).through_output
y*(1 - y)
>>> derivative(sp.Max(0, X)).in_input
Heaviside(x, 0)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import sympy as sp

from .ops import X, Y

__all__ = ["Derivative", "derivative", "apply_conventions", "tidy", "CONVENTIONS"]

CONVENTIONS = (
    "Heaviside(0) = 0, so relu'(0) = 0 and leaky_relu'(0) = alpha (as PyTorch); "
    "|x|'(0) = sign(0) = 0; the step's derivative (DiracDelta) is taken as 0: "
    "it is zero almost everywhere, so no gradient flows through a step."
)


def apply_conventions(expr: sp.Expr) -> sp.Expr:
    """Fix the value at the kinks: ``Heaviside(a) -> Heaviside(a, 0)``, ``DiracDelta -> 0``.

    >>> import sympy as sp
    >>> x = sp.Symbol("x", real=True)
    >>> apply_conventions(sp.Heaviside(x) + sp.DiracDelta(x))
    Heaviside(x, 0)
    """
    expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return expr.replace(lambda e: isinstance(e, sp.Heaviside) and e.args[1:] != (0,),
                        lambda e: sp.Heaviside(e.args[0], 0))


def _size(expr: sp.Expr) -> int:
    return sp.count_ops(expr, visual=False) + (100 if expr.has(sp.Piecewise) else 0)


#: The most operations an expression may have for :func:`tidy` to try ``sympy.simplify`` on it.
SIMPLIFY_MAX_OPS = 40


def tidy(expr: sp.Expr) -> sp.Expr:
    """The smallest of a few equivalent forms (``x*sign(x) -> |x|``, factored, simplified).

    Candidates that bring in a ``Piecewise`` the input did not have are refused.

    >>> import sympy as sp
    >>> x = sp.Symbol("x", real=True)
    >>> tidy(-x*sp.sign(x)/(sp.Abs(x) + 1)**2 + 1/(sp.Abs(x) + 1))
    (Abs(x) + 1)**(-2)
    """
    cleaned = expr.replace(
        lambda e: isinstance(e, sp.Mul) and any(isinstance(f, sp.sign) for f in e.args),
        lambda e: _merge_sign(e))
    had_piecewise = expr.has(sp.Piecewise)
    candidates = [expr, cleaned]
    # simplify's time grows exponentially with the expression (a derivative of 10 nested sines:
    # 64 operations, 2.4 s; 15: 80 s); the built-in activations' derivatives have at most 20
    simplify = [sp.simplify] if sp.count_ops(cleaned) <= SIMPLIFY_MAX_OPS else []
    for c in (cleaned,):
        for transform in (sp.factor_terms, sp.together, sp.cancel, *simplify, sp.factor,
                          lambda e: _flip_sign(sp.factor(e))):
            try:
                candidates.append(transform(c))
            except Exception:  # pragma: no cover - SymPy may give up on exotic input
                continue
    functions = _function_types(expr)
    valid = [c for c in candidates if (had_piecewise or not c.has(sp.Piecewise))
             and _function_types(c) <= functions | {sp.Abs}]
    return min(valid, key=lambda c: (_size(c), len(sp.Add.make_args(c)), sp.srepr(c)))


def _function_types(expr: sp.Expr) -> set[type]:
    return {type(f) for f in expr.atoms(sp.Function)}


def _flip_sign(expr: sp.Expr) -> sp.Expr:
    """``-y*(y - 1) -> y*(1 - y)``: absorb a leading minus into a sum factor."""
    if isinstance(expr, sp.Mul) and expr.args[0] == -1:
        rest = list(expr.args[1:])
        for i, f in enumerate(rest):
            if isinstance(f, sp.Add):
                rest[i] = sp.Add(*[-a for a in f.args], evaluate=False)
                return sp.Mul(*rest, evaluate=False)
    return expr


def _merge_sign(mul: sp.Mul) -> sp.Expr:
    """``a * sign(a) -> |a|`` inside one product."""
    factors = list(mul.args)
    for f in list(factors):
        if isinstance(f, sp.sign) and f.args[0] in factors:
            factors.remove(f)
            factors.remove(f.args[0])
            factors.append(sp.Abs(f.args[0]))
    return sp.Mul(*factors)


def _equal(a: sp.Expr, b: sp.Expr, x: sp.Symbol) -> bool:
    """``a == b`` as functions of x: equal to 1e-20 at 24 random points, at 30 digits.

    (``sympy.simplify(a - b)`` would be a proof, but it can take minutes on small user formulas;
    analytic expressions that agree at 24 random points to 20 digits do not differ.)
    """
    rng = random.Random(0)
    for _ in range(24):
        point = sp.Float(rng.uniform(-3, 3), 30)
        va, vb = (sp.N(e.subs(x, point), 30) for e in (a, b))
        if not (va.is_real and vb.is_real) or abs(va - vb) > sp.Float(1e-20) * (1 + abs(va)):
            return False
    return True


def through_output(d: sp.Expr, f: sp.Expr, x: sp.Symbol = X, y: sp.Symbol = Y):
    """``d`` written as a polynomial of degree <= 2 in ``y = f(x)``, or None.

    The coefficients are found by least squares on sample points, made exact, and the
    identity ``d == p(f)`` is then checked (see :func:`_equal`), so a wrong fit is never kept.
    """
    if not d.has(x) or f.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside, sp.Abs, sp.sign):
        return None
    import mpmath

    points = [sp.Rational(p, 7) for p in (-9, -5, -2, 1, 3, 6, 8)]
    rows, rhs = [], []
    try:
        for p in points:
            fv = complex(sp.N(f.subs(x, p), 30))
            dv = complex(sp.N(d.subs(x, p), 30))
            if fv.imag or dv.imag:
                return None
            rows.append([1.0, fv.real, fv.real ** 2])
            rhs.append(dv.real)
        sol = mpmath.lu_solve(mpmath.matrix(rows[:3]), mpmath.matrix(rhs[:3]))
    except (TypeError, ZeroDivisionError, ValueError):
        return None
    coeffs = [sp.nsimplify(float(c), tolerance=1e-9, rational=True) for c in sol]
    poly = coeffs[0] + coeffs[1] * y + coeffs[2] * y ** 2
    candidate = min((_flip_sign(sp.factor(poly)), sp.expand(poly)), key=_size)
    if _equal(d, poly.subs(y, f), x):
        return candidate
    return None


@dataclass(frozen=True)
class Derivative:
    """The derivative of an elementwise function ``f(x)``.

    ``in_input`` is ``f'`` as a function of x; ``through_output`` the same as a function of the
    output ``y = f(x)`` when SymPy finds one (None otherwise); ``best`` is what the backward
    pass uses (``through_output`` when found: it reuses the forward result).
    """

    function: sp.Expr
    in_input: sp.Expr
    through_output: sp.Expr | None

    @property
    def best(self) -> sp.Expr:
        return self.through_output if self.through_output is not None else self.in_input

    @property
    def zero(self) -> bool:
        """True when the derivative is identically 0 (no gradient flows: the step function)."""
        return self.in_input == 0


def derivative(f: sp.Expr, x: sp.Symbol = X, y: sp.Symbol = Y) -> Derivative:
    """Derive ``f'(x)``: conventions applied, tidied, and re-expressed through ``y`` if possible."""
    d = tidy(apply_conventions(sp.diff(f, x)))
    out = through_output(d, f, x, y) if f.has(x) else None
    if out is not None and _size(out) > _size(d):
        out = None
    return Derivative(f, d, out)
