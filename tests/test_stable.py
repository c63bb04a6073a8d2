"""Stable rewrites: finite where the maths is finite, equal to the original elsewhere."""

import mpmath
import numpy as np
import pytest
import sympy as sp

from symprop import derive
from symprop.derive.ops import ACTIVATIONS, ELEMENTWISE_LOSSES, X, Y, T
from symprop.derive.scalar import apply_conventions
from symprop.derive.stable import NUMPY_FUNCTIONS, Sigmoid, Softplus, stabilize

POINTS = [-1000.0, -50.0, -3.0, 0.0, 0.5, 50.0, 1000.0]
FORMULAS = ["x*tanh(log(1+exp(x)))", "x*sigmoid(x)", "log(1+exp(x))", "exp(x)/(1+exp(x))", "1/(1+exp(-x))",
            "log(1+exp(-2*x))",
            # hyperbolic functions in a log or a denominator: inf and inf/inf at |x| = 1000
            "log(cosh(x))", "sinh(x)/cosh(x)", "1/cosh(x)", "cosh(x)/(1+cosh(x))", "log(exp(x)+exp(-x))",
            # logs of sigmoids written by hand: log(0) at x = 50 in float64
            "log(1-sigmoid(x))", "log(sigmoid(x)*(1-sigmoid(x)))",
            # an ELU written with min: exp(1000)*H(1 - exp(1000)) was inf*0 = NaN
            "max(0,x)+min(0,exp(x)-1)",
            # a Gompertz curve: exp(-x)*exp(-exp(-x)) was inf*0 at x = -1000; erf of a softplus:
            # its derivative was put over exp(softplus(x)**2), inf at x = 50
            "exp(-exp(-x))", "x*erf(softplus(x))"]


def _cases():
    for name, (f, _) in ACTIVATIONS.items():
        f = f.subs(sp.Symbol("alpha", positive=True), sp.Rational(1, 10))
        yield name, f
    for text in FORMULAS:
        yield text, derive.parse_formula(text, {"x": X})


CASES = list(_cases())


def _reference(expr, x):
    """The value at x of the un-rewritten expression in mpmath at a fixed 600 digits.

    (Not ``sympy.N``: its adaptive precision chases cancellations such as ``1 + erf(-707)``
    for minutes.) 600 digits is exact enough for every case here, ``1 - σ(1000)`` (about
    ``1e-435``) included: the rewrites are checked against it to 1e-10 relative."""
    fn = sp.lambdify([X], expr, modules=[{"Heaviside": lambda a, h=0: mpmath.mpf(1) if a > 0 else mpmath.mpf(h)
                                          if a == 0 else mpmath.mpf(0)}, "mpmath"])
    with mpmath.workdps(600):
        return float(fn(mpmath.mpf(x)))


def _numeric(expr, dtype):
    fn = sp.lambdify([X], expr, modules=[NUMPY_FUNCTIONS, {"Heaviside": lambda a, h: np.where(a > 0, 1.0, 0.0)},
                                         "numpy"])

    def call(x):
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(fn(np.asarray(x, dtype=dtype)), dtype=np.float64)
    return call


@pytest.mark.parametrize("name,f", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("which", ["forward", "derivative"])
def test_finite_and_accurate_at_extremes(name, f, dtype, which):
    expr = f if which == "forward" else apply_conventions(sp.diff(f, X))
    if expr.has(sp.DiracDelta) or expr == 0 and which == "derivative":
        return
    stable = stabilize(expr)
    fn = _numeric(stable, dtype)
    for x in POINTS:
        if x == 0 and expr.has(sp.Heaviside, sp.Piecewise, sp.Max, sp.Abs, sp.sign):
            continue  # the kink: covered by the convention tests
        exact = _reference(expr, x)
        got = float(fn(x))
        assert np.isfinite(got), f"{name} {which} at {x} in {np.dtype(dtype).name}: {got} (rewritten: {stable})"
        tol = 1e-12 if dtype == np.float64 else 1e-5
        assert got == pytest.approx(exact, rel=tol * 50, abs=tol * max(1.0, abs(x))), (name, which, x)


def test_patterns_rewritten():
    x = X
    assert stabilize(sp.log(1 + sp.exp(x))) == Softplus(x)
    assert stabilize(1 / (1 + sp.exp(-x))) == Sigmoid(x)
    assert stabilize(sp.exp(x) / (1 + sp.exp(x))) == Sigmoid(x)
    assert stabilize(sp.exp(x) / (sp.exp(x) + 1) ** 2) == Sigmoid(x) * Sigmoid(-x)
    assert not stabilize(sp.diff(x * sp.tanh(sp.log(1 + sp.exp(x))), x)).has(sp.exp)


def test_untouched_when_nothing_to_do():
    for e in (sp.tanh(X), sp.exp(X) - 1, X ** 2, sp.erf(X)):
        assert stabilize(e) == e


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_LOSSES))
def test_losses_finite_for_logits(name):
    if name != "bce_logits":
        return
    d = stabilize(sp.diff(ELEMENTWISE_LOSSES[name], Y))
    fn = sp.lambdify([Y, T], d, modules=[NUMPY_FUNCTIONS, "numpy"])
    for y in POINTS:
        assert np.isfinite(fn(np.float32(y), np.float32(1.0)))


#: Losses written by hand: log-cosh, and cross-entropy on logits through sigmoids.
LOSS_FORMULAS = ["log(cosh(y-t))", "-t*log(sigmoid(y))-(1-t)*log(1-sigmoid(y))",
                 "-t*log(1/(1+exp(-y)))-(1-t)*log(1-1/(1+exp(-y)))", "softplus(-t*y)",
                 # a sigmoid inside sign(): its derivative was inf/inf at y = -1000
                 "abs(sigmoid(y)-t)"]


@pytest.mark.parametrize("text", LOSS_FORMULAS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_user_losses_finite_and_accurate_at_extremes(text, dtype):
    f = derive.parse_formula(text, {"y": Y, "t": T})
    for expr in (f, apply_conventions(sp.diff(f, Y))):
        stable = stabilize(expr)
        fn = sp.lambdify([Y, T], stable, modules=[NUMPY_FUNCTIONS, "numpy"])
        exact_fn = sp.lambdify([Y, T], expr, modules="mpmath")
        for y in POINTS:
            for t in (0.0, 0.3, 1.0):
                with mpmath.workdps(600):  # 1 - σ(1000) is about 1e-435
                    exact = float(exact_fn(mpmath.mpf(y), mpmath.mpf(t)))
                with np.errstate(over="ignore", under="ignore"):
                    got = float(fn(dtype(y), dtype(t)))
                assert np.isfinite(got), f"{text}: {expr} at y={y}, t={t}: {got} (rewritten: {stable})"
                tol = 1e-12 if dtype == np.float64 else 1e-5
                assert got == pytest.approx(exact, rel=tol * 50, abs=tol * max(1.0, abs(y))), (text, expr, y, t)


@pytest.mark.parametrize("text", ["sinh(x)/cosh(x)", "diff: log(cosh(x))", "diff: 1/cosh(x)"])
def test_hyperbolic_rewrite_keeps_precision_near_zero(text):
    """``2σ(x) - 1`` is printed as ``tanh(x/2)``: no cancellation where it is tiny (relative
    accuracy of tanh(x) and -tanh(x)/cosh(x) at x = 1e-9; log(cosh(1e-9)) is 0 in float64 either way)."""
    expr = derive.parse_formula(text.removeprefix("diff: "), {"x": X})
    if text.startswith("diff: "):
        expr = sp.diff(expr, X)
    fn = _numeric(stabilize(expr), np.float64)
    for x in (1e-9, -3e-6, 1e-3):
        assert float(fn(x)) == pytest.approx(_reference(expr, x), rel=1e-12, abs=1e-300), (expr, x)


def test_hyperbolic_functions_left_alone_without_a_hazard():
    """``cosh`` and ``sinh`` outside logs and denominators overflow only where the maths does."""
    for e in (sp.cosh(X), X * sp.sinh(X), sp.sinh(X) + sp.cosh(X) ** 2):
        assert stabilize(e) == e


@pytest.mark.parametrize("text", ["sigmoid(x)*sigmoid(2*x)*sigmoid(3*x)*sigmoid(5*x)",
                                  "log(cosh(x))*cosh(2*x)/(1+cosh(3*x))", "sigmoid(x)**30"])
def test_big_rational_functions_are_rewritten_in_bounded_time(text):
    """Multiples of one argument share one variable, and sums too big for one common
    denominator are rewritten term by term (these ran for minutes in sympy.cancel)."""
    import time

    f = derive.parse_formula(text, {"x": X})
    for expr in (f, sp.diff(f, X)):
        start = time.perf_counter()
        stable = stabilize(expr)
        assert time.perf_counter() - start < 20, expr
        fn = _numeric(stable, np.float64)
        for x in (-1000.0, -3.0, 0.5, 1000.0):
            exact = _reference(expr, x)
            if np.isfinite(exact):
                assert float(fn(x)) == pytest.approx(exact, rel=1e-9, abs=1e-12), (text, expr, x)
