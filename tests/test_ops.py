"""Tests of the op registry and of derive.scalar: every scalar derivative symprop derives.

Each activation of :data:`derive.ops.ACTIVATIONS` (and a few user formulas) is differentiated by
:func:`derive.scalar.derivative`; the result is checked against

* SymPy's own ``diff`` of the forward expression (conventions applied), evaluated at 30 digits,
* central finite differences of the forward function in float64,
* the textbook closed forms (sigmoid, tanh, softsign, relu),
* PyTorch's conventions at the kinks (stated below; torch itself is not imported).
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symprop import derive
from symprop.derive.ops import ACTIVATIONS, ELEMENTWISE_LOSSES, PENALTIES, OPS, T, X, Y, get_op, scalar_function
from symprop.derive.scalar import CONVENTIONS, Derivative, apply_conventions, derivative

USER_FORMULAS = ["x*tanh(log(1+exp(x)))", "x*sigmoid(x)", "0.5*x*(1+erf(x/sqrt(2)))"]
ACTIVATION_CASES = [*ACTIVATIONS, *USER_FORMULAS]

#: Points where every activation is differentiable (all kinks are at 0).
POINTS = [-2.7, -1.3, -0.45, -0.1, 0.1, 0.37, 0.9, 1.6, 2.9]
H = 1e-6


def forward(name: str) -> sp.Expr:
    return scalar_function("activation", {"function": name})


_DERIVATIVES: dict[str, Derivative] = {}


def derived(name: str) -> Derivative:
    """``derivative`` of an activation, cached (SymPy's simplify is the slow part)."""
    if name not in _DERIVATIVES:
        _DERIVATIVES[name] = derivative(forward(name))
    return _DERIVATIVES[name]


def exact(expr: sp.Expr, **at: float) -> float:
    """``expr`` at a point, evaluated by SymPy/mpmath at 30 digits."""
    subs = {sp.Symbol(k, real=True): sp.Float(v, 30) for k, v in at.items()}
    value = sp.N(expr.subs(subs), 30)
    assert value.is_real, (expr, at, value)
    return float(value)


def float_function(expr: sp.Expr, *symbols: sp.Symbol):
    """``expr`` as a float64 Python function (math module)."""
    return sp.lambdify(symbols, expr, modules="math")


def central_difference(fn, x: float, h: float = H) -> float:
    return (fn(x + h) - fn(x - h)) / (2 * h)


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * (1 + abs(a) + abs(b))


# --- the registry itself ------------------------------------------------------------------------

def test_registry_ops_and_args():
    assert {"input", "target", "parameter", "dense", "activation", "softmax", "loss", "penalty"} <= set(OPS)
    assert get_op("dense").required == ("x", "W")
    assert get_op("dense").optional == frozenset({"b"})
    assert get_op("loss").constant_args == frozenset({"t"})
    with pytest.raises(derive.GraphError, match="unknown op 'dnese'"):
        get_op("dnese")


def test_every_forward_is_a_function_of_x_only():
    for name in ACTIVATION_CASES:
        f = forward(name)
        assert f.free_symbols <= {X}, name
    for name, term in ELEMENTWISE_LOSSES.items():
        assert term.free_symbols <= {Y, T}, name


def test_no_forward_definition_states_a_derivative():
    """The registry holds forward definitions only: no Derivative/Subs objects anywhere."""
    for name in ACTIVATIONS:
        assert not forward(name).has(sp.Derivative, sp.Subs), name
    for term in [*ELEMENTWISE_LOSSES.values(), *PENALTIES.values()]:
        assert not term.has(sp.Derivative, sp.Subs)


# --- activations: derived derivative vs SymPy's diff and vs finite differences -------------------

@pytest.mark.parametrize("name", ACTIVATION_CASES)
def test_in_input_matches_sympy_diff(name):
    d = derived(name)
    reference = apply_conventions(sp.diff(forward(name), X))
    for x in POINTS:
        assert close(exact(d.in_input, x=x), exact(reference, x=x), 1e-20), (name, x)


@pytest.mark.parametrize("name", ACTIVATION_CASES)
def test_in_input_matches_finite_differences(name):
    d = derived(name)
    f = float_function(forward(name), X)
    fprime = float_function(d.in_input, X)
    for x in POINTS:
        assert close(fprime(x), central_difference(f, x), 1e-6), (name, x, fprime(x), central_difference(f, x))


@pytest.mark.parametrize("name", ACTIVATION_CASES)
def test_through_output_agrees_with_in_input(name):
    d = derived(name)
    if d.through_output is None:
        assert d.best == d.in_input
        return
    assert d.through_output.free_symbols <= {Y}, "the output form must not mention x"
    assert d.best == d.through_output
    for x in POINTS:
        y = exact(forward(name), x=x)
        assert close(exact(d.through_output, y=y), exact(d.in_input, x=x), 1e-12), (name, x)


def test_derivative_is_a_result_type():
    d = derived("tanh")
    assert isinstance(d, Derivative)
    assert d.function == sp.tanh(X)
    assert not d.zero


# --- textbook closed forms -----------------------------------------------------------------------

def _same(a: sp.Expr, b: sp.Expr) -> bool:
    return a == b or sp.simplify(a - b) == 0


def test_sigmoid_through_output_is_y_one_minus_y():
    d = derived("sigmoid")
    assert d.through_output is not None
    assert _same(d.through_output, Y * (1 - Y))


def test_tanh_through_output_is_one_minus_y_squared():
    d = derived("tanh")
    assert d.through_output is not None
    assert _same(d.through_output, 1 - Y ** 2)


def test_softsign_closed_form():
    d = derived("softsign")
    assert _same(d.in_input, 1 / (1 + sp.Abs(X)) ** 2)
    assert not d.in_input.has(sp.sign), "x*sign(x) must be tidied to |x|"


def test_relu_derivative_is_heaviside_zero_at_zero():
    assert derived("relu").in_input == sp.Heaviside(X, 0)


def test_identity_derivative_is_one():
    assert derived("identity").in_input == 1


def test_user_swish_equals_builtin_silu():
    assert _same(derived("x*sigmoid(x)").in_input, derived("silu").in_input)


def test_user_gelu_equals_builtin_gelu():
    assert _same(derived("0.5*x*(1+erf(x/sqrt(2)))").in_input, derived("gelu").in_input)


# --- conventions at the kinks (all as PyTorch) --------------------------------------------------
# PyTorch: relu's backward is `grad * (x > 0)`, so relu'(0) = 0; leaky_relu's backward is
# `x > 0 ? grad : grad * negative_slope`, so leaky_relu'(0) = negative_slope; elu's backward at
# x <= 0 is `alpha * exp(x)`, so elu'(0) = alpha; abs's backward is `grad * sgn(x)` and L1Loss's
# is `sign(y - t)`, both 0 at 0; a step (heaviside) has no useful gradient: 0 everywhere.

def test_relu_prime_at_zero_is_zero():
    assert exact(derived("relu").in_input, x=0.0) == 0.0


def test_leaky_relu_prime_at_zero_is_alpha_default():
    assert ACTIVATIONS["leaky_relu"][1]["alpha"] == 0.01
    d = derived("leaky_relu")
    assert d.in_input.subs(X, 0) == sp.Rational(1, 100)
    assert d.in_input.subs(X, sp.Rational(-1, 2)) == sp.Rational(1, 100)
    assert d.in_input.subs(X, sp.Rational(1, 2)) == 1


def test_leaky_relu_prime_at_zero_is_the_given_alpha():
    d = derivative(scalar_function("activation", {"function": "leaky_relu", "alpha": 0.2}))
    assert d.in_input.subs(X, 0) == sp.Rational(1, 5)


def test_elu_prime_at_zero_is_alpha():
    assert derived("elu").in_input.subs(X, 0) == 1
    d = derivative(scalar_function("activation", {"function": "elu", "alpha": 0.5}))
    assert d.in_input.subs(X, 0) == sp.Rational(1, 2)


def test_abs_derivative_at_zero_is_zero():
    d = derivative(sp.Abs(X))
    assert d.in_input.subs(X, 0) == 0
    assert derivative(derive.parse_formula("abs(x)", {"x": X})).in_input.subs(X, 0) == 0


def test_mae_derivative_at_equality_is_zero():
    d = derivative(ELEMENTWISE_LOSSES["mae"], Y, sp.Dummy("out"))
    assert d.in_input.subs({Y: 1, T: 1}) == 0
    assert d.in_input.subs({Y: 2, T: 1}) == 1
    assert d.in_input.subs({Y: 0, T: 1}) == -1


def test_l1_penalty_derivative_at_zero_is_zero():
    from symprop.derive.ops import W
    d = derivative(PENALTIES["l1"], W, sp.Dummy("out"))
    assert d.in_input.subs(W, 0) == 0


def test_step_derivative_is_identically_zero():
    d = derived("step")
    assert d.zero
    assert d.in_input == 0
    assert not d.in_input.has(sp.DiracDelta)
    # the formula spelling of the step too
    assert derivative(derive.parse_formula("step(x)", {"x": X})).zero


def test_only_the_step_has_a_zero_derivative():
    assert [n for n in ACTIVATION_CASES if derived(n).zero] == ["step"]


def test_no_diracdelta_or_bare_heaviside_survives():
    for name in ACTIVATION_CASES:
        d = derived(name).in_input
        assert not d.has(sp.DiracDelta), name
        for h in d.atoms(sp.Heaviside):
            assert h.args[1:] == (0,), (name, h)


def test_apply_conventions():
    assert apply_conventions(sp.Heaviside(X) + sp.DiracDelta(X)) == sp.Heaviside(X, 0)
    assert apply_conventions(sp.Heaviside(X, sp.Rational(1, 2))) == sp.Heaviside(X, 0)


def test_conventions_text_states_each_convention():
    assert "relu'(0) = 0" in CONVENTIONS
    assert "leaky_relu'(0) = alpha" in CONVENTIONS
    assert "|x|'(0)" in CONVENTIONS and "= 0" in CONVENTIONS
    assert "step" in CONVENTIONS
    assert "PyTorch" in CONVENTIONS
    assert "\n" not in CONVENTIONS
    assert derive.CONVENTIONS == CONVENTIONS


# --- elementwise losses: derivative with respect to the prediction ------------------------------

LOSS_POINTS = {
    "mse": [(-1.2, 0.3), (0.4, 0.9), (2.0, -1.0)],
    "mae": [(-1.2, 0.3), (0.4, 0.9), (2.0, -1.0)],
    "bce": [(0.2, 0.3), (0.7, 0.9), (0.55, 0.05)],
    "bce_logits": [(-1.2, 0.3), (0.4, 0.9), (2.5, 0.05)],
}


def test_every_elementwise_loss_has_points():
    assert set(LOSS_POINTS) == set(ELEMENTWISE_LOSSES)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_LOSSES))
def test_loss_derivative_matches_finite_differences(name):
    term = scalar_function("loss", {"function": name})
    d = derivative(term, Y, sp.Dummy("out"))
    fn = float_function(term, Y, T)
    dfn = float_function(d.in_input, Y, T)
    reference = apply_conventions(sp.diff(term, Y))
    for y, t in LOSS_POINTS[name]:
        fd = central_difference(lambda v: fn(v, t), y)
        assert close(dfn(y, t), fd, 1e-6), (name, y, t, dfn(y, t), fd)
        assert close(exact(d.in_input, y=y, t=t), exact(reference, y=y, t=t), 1e-20)


def test_user_loss_formula_derivative():
    term = scalar_function("loss", {"function": "(y-t)**4/4"})
    d = derivative(term, Y, sp.Dummy("out"))
    assert _same(d.in_input, (Y - T) ** 3)


@pytest.mark.parametrize("kind", sorted(PENALTIES))
def test_penalty_derivative_matches_finite_differences(kind):
    from symprop.derive.ops import W
    term = scalar_function("penalty", {"kind": kind, "weight": 0.25})
    d = derivative(term, W, sp.Dummy("out"))
    fn, dfn = float_function(term, W), float_function(d.in_input, W)
    for w in (-1.5, -0.2, 0.3, 2.0):
        assert close(dfn(w), central_difference(fn, w), 1e-6)


# --- hypothesis: random smooth formulas -----------------------------------------------------------

_LEAVES = st.one_of(st.just("x"), st.sampled_from(["0.5", "2", "1.5", "3", "0.25"]))


def _extend(children):
    unary = st.sampled_from(["tanh({})", "sigmoid({})", "log(1+exp({}))", "erf({})",
                             "exp(tanh({}))", "exp(sigmoid({})/2)", "({})**2"])
    binary = st.sampled_from(["({}) + ({})", "({}) - ({})", "({}) * ({})"])
    return st.one_of(
        st.tuples(unary, children).map(lambda p: p[0].format(p[1])),
        st.tuples(binary, children, children).map(lambda p: p[0].format(p[1], p[2])),
    )


FORMULAS = st.recursive(_LEAVES, _extend, max_leaves=5)


# derandomized: SymPy's simplify inside `derivative` is occasionally very slow on some random formulas
# (see test_user_formula_derivative_is_fast), which would make the suite's run time a lottery.
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=FORMULAS, seed=st.integers(0, 2**16))
def test_random_formula_derivative_matches_finite_differences(text, seed):
    f = derive.parse_formula(text, {"x": X})
    assume(f.has(X))
    d = derivative(f)
    fn, dfn = float_function(f, X), float_function(d.in_input, X)
    rng = random.Random(seed)
    checked = 0
    for _ in range(4):
        x = rng.choice([-1, 1]) * rng.uniform(0.1, 2.0)
        try:
            values = [fn(x - H), fn(x + H), dfn(x)]
        except (OverflowError, ValueError, ZeroDivisionError):
            continue
        if not all(math.isfinite(v) for v in values) or abs(values[2]) > 1e6:
            continue
        fd = (values[1] - values[0]) / (2 * H)
        scale = 1 + abs(fn(x)) + abs(values[2])
        assert abs(values[2] - fd) <= 1e-6 * scale, (text, x, values[2], fd)
        checked += 1
        if d.through_output is not None:
            assert close(exact(d.through_output, y=fn(x)), values[2], 1e-9), (text, x)
    assume(checked > 0)


# --- a user formula must not hang the derivation -------------------------------------------------

def test_user_formula_derivative_is_fast():
    """`derivative` of a small smooth formula finishes in seconds (run in a child, killed at 15 s).

    ``derive.scalar.through_output`` checks its least-squares fit with ``_equal``, which calls
    ``sympy.simplify(a - b)`` before the cheap numeric check; for these formulas simplify spends
    minutes in trigsimp/factor although the numeric check refutes the fit at once
    (another: ``exp(sigmoid(sigmoid(x)*tanh(x))/2)``, about a minute).
    """
    text = "tanh(x) - erf(x) - sigmoid(2)"
    code = ("from symprop import derive; from symprop.derive.ops import X; from symprop.derive.scalar import derivative; "
            f"d = derivative(derive.parse_formula({text!r}, {{'x': X}})); print(d.in_input)")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=15,
                              cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        pytest.fail(f"derivative({text!r}) took more than 15 s")
    assert proc.returncode == 0, proc.stderr


def test_deeply_nested_formulas_derive_in_bounded_time():
    """sympy.simplify on the derivative of 15 nested sines took 80 s (50: over 10 minutes); tidy
    now tries it only up to SIMPLIFY_MAX_OPS operations. The derivative stays exact."""
    import time

    from symprop import derive
    text = "sin(" * 50 + "x" + ")" * 50
    began = time.perf_counter()
    d = derive.backprop(derive.mlp([2, 3, 1], activation=text)).nodes["a1"].derivatives["x"]
    assert time.perf_counter() - began < 60
    f = X
    for _ in range(50):
        f = sp.sin(f)
    assert sp.N((d.in_input - sp.diff(f, X)).subs(X, sp.Rational(3, 10)), 30) == 0

