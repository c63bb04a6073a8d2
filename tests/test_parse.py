"""Tests of derive.parse: the whitelist formula parser (never eval)."""

from __future__ import annotations

import ast
import builtins
import math
import os
import time

import mpmath
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symprop.derive.parse import ALLOWED_FUNCTIONS, FormulaError, parse_formula

X = sympy.Symbol("x", real=True)
Y = sympy.Symbol("y", real=True)
T = sympy.Symbol("t", real=True)
XS = {"x": X}
LOSS = {"y": Y, "t": T}


def same(a: sympy.Expr, b: sympy.Expr) -> bool:
    return a == b or sympy.simplify(a - b) == 0


def refused(text, symbols=XS) -> str:
    """The FormulaError message for ``text``, checked to be one line naming the formula."""
    with pytest.raises(FormulaError) as info:
        parse_formula(text, symbols)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith("formula ")
    assert len(message) < 400
    return message


# --- good formulas ---------------------------------------------------------------------------
GOOD = [
    ("x*tanh(log(1+exp(x)))", XS, X * sympy.tanh(sympy.log(1 + sympy.exp(X)))),
    ("x*sigmoid(x)", XS, X / (1 + sympy.exp(-X))),
    ("0.5*x*(1+erf(x/sqrt(2)))", XS, X / 2 * (1 + sympy.erf(X / sympy.sqrt(2)))),
    ("max(0.01*x, x)", XS, sympy.Max(X / 100, X)),
    ("(y-t)**2", LOSS, (Y - T) ** 2),
    ("-x", XS, -X),
    ("+x", XS, X),
    ("2**-x", XS, 2 ** (-X)),
    ("-x**2", XS, -(X**2)),
    ("2**3**2", XS, sympy.Integer(512)),
    ("x-1-2", XS, X - 3),
    ("x/2/4", XS, X / 8),
    ("x**0.5", XS, sympy.sqrt(X)),
    ("pi*e*x", XS, sympy.pi * sympy.E * X),
    ("min(x, 1, 2)", XS, sympy.Min(X, 1)),
    ("  x + 1 \n", XS, X + 1),
    ("(x\n + 1)", XS, X + 1),
    ("1_000*x + 0x10", XS, 1000 * X + 16),
    ("1e-3*x", XS, X / 1000),
    ("log(1+exp(-abs(y))) + relu(y) - y*t", LOSS,
     sympy.log(1 + sympy.exp(-sympy.Abs(Y))) + sympy.Max(0, Y) - Y * T),
    ("x**1000", XS, X**1000),
    ("2**1000", XS, sympy.Integer(2) ** 1000),
    ("1" * 30 + "*x", XS, int("1" * 30) * X),
]


@pytest.mark.parametrize(("text", "symbols", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_good_formulas(text, symbols, expected):
    parsed = parse_formula(text, symbols)
    assert isinstance(parsed, sympy.Expr)
    assert same(parsed, expected)
    assert parsed.free_symbols <= set(symbols.values())


FUNCTIONS = {
    "abs": sympy.Abs(X), "asinh": sympy.asinh(X), "atan": sympy.atan(X), "cos": sympy.cos(X),
    "cosh": sympy.cosh(X), "erf": sympy.erf(X), "erfc": sympy.erfc(X), "exp": sympy.exp(X),
    "expm1": sympy.exp(X) - 1, "heaviside": sympy.Heaviside(X, 0), "log": sympy.log(X),
    "log1p": sympy.log(1 + X), "relu": sympy.Max(0, X), "sigmoid": 1 / (1 + sympy.exp(-X)),
    "sign": sympy.sign(X), "sin": sympy.sin(X), "sinh": sympy.sinh(X),
    "softplus": sympy.log(1 + sympy.exp(X)), "sqrt": sympy.sqrt(X), "step": sympy.Heaviside(X, 0),
    "tan": sympy.tan(X), "tanh": sympy.tanh(X),
}


def test_allowed_functions_is_sorted_and_complete():
    assert ALLOWED_FUNCTIONS == tuple(sorted(ALLOWED_FUNCTIONS))
    assert set(ALLOWED_FUNCTIONS) == set(FUNCTIONS) | {"max", "min"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_unary_function(name):
    assert parse_formula(f"{name}(x)", XS) == FUNCTIONS[name]


def test_max_min_take_two_or_more_arguments():
    assert parse_formula("max(x, 0)", XS) == sympy.Max(X, 0)
    assert parse_formula("min(x, 0, -1)", XS) == sympy.Min(X, -1)


def test_step_is_zero_at_zero():
    assert parse_formula("step(x)", XS).subs(X, 0) == 0
    assert parse_formula("heaviside(x)", XS).subs(X, 0) == 0
    assert parse_formula("relu(x)", XS).subs(X, 0) == 0


def test_floats_stay_exact():
    parsed = parse_formula("0.1*x + 0.01", XS)
    assert not parsed.has(sympy.Float)
    assert parsed == X / 10 + sympy.Rational(1, 100)


def test_caller_chooses_symbols():
    z = sympy.Symbol("z", positive=True)
    assert parse_formula("z**2", {"z": z}) == z**2
    # a variable named like a constant shadows the constant
    e = sympy.Symbol("e")
    assert parse_formula("e + 1", {"e": e}) == e + 1


def test_length_limit_boundary():
    assert parse_formula("x" + " " * 1999, XS) == X
    assert "too long" in refused("x" + " " * 2000)


def test_depth_limit_boundary():
    assert parse_formula("-" * 99 + "x", XS) == -X
    assert "nested" in refused("-" * 101 + "x")
    assert "nested" in refused("(" * 101 + "x" + ")" * 101)


# --- hostile and invalid formulas ------------------------------------------------------------
HOSTILE = [
    ("__import__('os').system('touch /tmp/pwned_symprop')", "__import__"),
    ("().__class__.__bases__[0].__subclasses__()", "__class__"),
    ("x.__class__", "__class__"),
    ("lambda: 1", "lambda"),
    ("open('/etc/passwd').read()", "'open'"),
    ("eval('1')", "'eval'"),
    ("exec('1')", "'exec'"),
    ("getattr(x, 'y')", "'getattr'"),
    ("[x for x in ()]", "comprehension"),
    ("x if x else 1", "conditional"),
    ("9**9**9", "exponent"),
    ("'abc'", "string"),
    ("x[0]", "subscript"),
    ("x; y", "multiple statements"),
    ("x = 1", "assignment"),
    ("f'{x}'", "f-string"),
    ("1j*x", "complex"),
    ("_x", "'_x'"),
    ("x" * 10_000, "too long"),
    ("(" * 200 + "x" + ")" * 200, "nested"),
    ("-" * 200 + "x", "nested"),
    ("x.real", "'.real'"),
    ("exp(x)(2)", "plain function names"),
    ("exp(x=1)", "keyword"),
    ("exp(*x)", "starred"),
    ("exp(**x)", "'**'"),
    ("(x := 1)", "assignment expression"),
    ("x < 1", "comparison"),
    ("x and 1", "boolean"),
    ("not x", "'not'"),
    ("~x", "'~'"),
    ("x^2", "'^'"),
    ("x % 2", "'%'"),
    ("x // 2", "'//'"),
    ("x @ x", "'@'"),
    ("b'x'", "bytes"),
    ("True", "True"),
    ("None", "None"),
    ("...", "'...'"),
    ("{x}", "set"),
    ("[x]", "list"),
    ("(x, x)", "tuple"),
    ("{'a': x}", "dict"),
    ("import os", "statement"),
    ("exp", "must be called"),
    ("1e400*x", "not finite"),
    ("1" * 31 + "*x", "30 digits"),
    ("x**1001", "exponent"),
    ("x**-1001", "exponent"),
    ("(10**30)**1000", "digits"),
    ("((10**10)**100)**100", "digits"),
    ("x*10**300*10**300", "digits"),
    ("max(x,1,2,3,4,5,6,7,8)", "max()"),
    ("1/0", "undefined"),
    ("log(0)", "undefined"),
    ("0/0*x", "undefined"),
    ("\x00", "null"),
]


@pytest.mark.parametrize(("text", "culprit"), HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_formulas_are_refused(text, culprit):
    message = refused(text, {"x": X, "y": Y})
    assert culprit in message


def test_refused_formula_runs_nothing():
    marker = "/tmp/pwned_symprop"
    if os.path.exists(marker):
        os.remove(marker)
    refused(f"__import__('os').system('touch {marker}')")
    refused(f"open('{marker}', 'w').write('x')")
    assert not os.path.exists(marker)


def test_no_eval_or_exec_during_parsing(monkeypatch):
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    for text, symbols, _ in GOOD:
        parse_formula(text, symbols)
    for text, _ in HOSTILE:
        with pytest.raises(FormulaError):
            parse_formula(text, XS)
    assert calls == []


def test_message_names_the_formula():
    assert refused("__import__(\"os\").system(\"ls\")").startswith(
        "formula '__import__(\"os\").system(\"ls\")': function '__import__' is not allowed (allowed: abs, ")
    assert refused("x.__class__") == "formula 'x.__class__': attribute access '.__class__' is not allowed"


def test_unknown_function_is_named():
    message = refused("foo(x) + 1")
    assert "'foo'" in message and "allowed: " + ", ".join(ALLOWED_FUNCTIONS) in message


def test_unknown_variable_is_named():
    assert refused("z + 1") == "formula 'z + 1': unknown name 'z' (variables: x)"
    assert "unknown name 'x' (variables: t, y)" in refused("(x - t)**2", LOSS)


def test_underscore_names_are_refused_even_as_variables():
    assert "'_x'" in refused("_x", {"_x": X})


@pytest.mark.parametrize(("text", "expected"), [
    ("exp(x, x)", "function 'exp' takes 1 argument (2 given)"),
    ("exp()", "function 'exp' takes 1 argument (0 given)"),
    ("log(x, 2)", "function 'log' takes 1 argument (2 given)"),
    ("sigmoid()", "function 'sigmoid' takes 1 argument (0 given)"),
    ("max(x)", "function 'max' takes at least 2 arguments (1 given)"),
    ("min()", "function 'min' takes at least 2 arguments (0 given)"),
])
def test_wrong_arity(text, expected):
    assert expected in refused(text)


def test_syntax_error_becomes_formula_error():
    assert refused("x+") == "formula 'x+': invalid syntax at column 3"
    assert "never closed" in refused("exp(x")


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty(text):
    assert refused(text) == "formula '': empty"


@pytest.mark.parametrize("value", [None, 3, 1.5, b"x", ["x"], X])
def test_non_string_input(value):
    message = refused(value)
    assert type(value).__name__ in message


def test_bad_symbols_mapping_is_a_type_error():
    with pytest.raises(TypeError):
        parse_formula("x", {"x": "x"})
    with pytest.raises(TypeError):
        parse_formula("x", ["x"])


def test_formula_error_is_a_value_error():
    assert issubclass(FormulaError, ValueError)


# Syntactically fine formulas on which SymPy's automatic simplification would spend minutes or
# hours (towers of exponentials, huge roots, comparisons of nearly equal constants).
SLOW_FOR_SYMPY = [
    "exp(exp(exp(9)))",
    "exp(expm1(exp(expm1(expm1(pi)))))",
    "max(x, cosh(cosh(18)))",
    "max(2, (1e-300/pi)**(999-e))",
    "max(1, sigmoid(10**300))",
    "min(x, 999**99, softplus(999**99))",
    "(2/999)**(1/10**6)",
    "(2*relu(x)/999)**1e-300",
    "(10**29+7)**(999/1000)",
    "((10**10)**100)**100",
    "min(1, 999**(1e30-x))",
    "min(1, 999**(x+1/10**6))",
    "max(" + ",".join(f"exp({k}*x)*sin(x+{k})" for k in range(1, 10)) + ")",
    "max(max(x, exp(x), sin(x), x**3, erf(x)), max(x**5, cos(x), tanh(x), atan(x)))",
]


@pytest.mark.parametrize("text", SLOW_FOR_SYMPY, ids=[t[:40] for t in SLOW_FOR_SYMPY])
def test_inputs_that_would_keep_sympy_busy_are_refused_quickly(text):
    start = time.perf_counter()
    refused(text)
    assert time.perf_counter() - start < 5


def test_constants_must_be_in_float_range():
    assert "floating-point range" in refused("x*exp(1000)")
    assert "floating-point range" in refused("x*exp(-1000)")
    assert parse_formula("x*exp(700)", XS) == X * sympy.exp(700)
    assert parse_formula("5e-324*x", XS) == sympy.Rational("5e-324") * X


@pytest.mark.parametrize("text", ["sqrt(-1)*x", "log(-1)*x", "(-8)**(1/3)*x", "x + asinh(2)*sqrt(-3)"])
def test_constants_must_be_real(text):
    """A complex constant passed validation, then failed Numba's typing with a long traceback."""
    assert "is not a real number" in refused(text)


def test_max_min_argument_limit_counts_nested_calls():
    eight = "max(x, 1, 2, 3, 4, 5, 6, 7)"
    assert parse_formula(eight, XS) == sympy.Max(X, 7)
    assert "max() of 9 arguments" in refused("max(x, 1, 2, 3, 4, 5, 6, 7, 8)")
    assert "is too many" in refused("min(min(x, exp(x), sin(x), x**3, erf(x)), min(x**5, cos(x), tanh(x), atan(x)))")


# --- property-based: random formulas from the grammar ----------------------------------------
UNARY = sorted(FUNCTIONS)
PREC = 80          # mpmath digits of the reference
LIMIT = 1e30       # larger intermediate values: skip the point (keeps the comparison well conditioned)
EDGE = 1e-20       # arguments this close to a discontinuity or pole: skip the point
POINTS = [{"x": "0.7", "y": "-1.3"}, {"x": "-2.1", "y": "0.45"}, {"x": "1.9", "y": "2.6"}]


class Undefined(ArithmeticError):
    """The reference cannot evaluate the formula at this point."""


def _away_from(value, edge=0):
    if abs(value - edge) < EDGE:
        raise Undefined("too close to a discontinuity")
    return value


def _positive(value):
    if value <= 0:
        raise Undefined("domain")
    return value


def _exp(a):
    if a > math.log(LIMIT):
        raise Undefined("overflow")
    return mpmath.exp(a)


REFERENCE = {
    "abs": abs,
    "asinh": mpmath.asinh,
    "atan": mpmath.atan,
    "cos": mpmath.cos,
    "cosh": lambda a: (_exp(abs(a)) + mpmath.exp(-abs(a))) / 2,
    "erf": mpmath.erf,
    "erfc": mpmath.erfc,
    "exp": _exp,
    "expm1": lambda a: _exp(a) - 1,
    "heaviside": lambda a: 1 if _away_from(a) > 0 else 0,
    "log": lambda a: mpmath.log(_positive(a)),
    "log1p": lambda a: mpmath.log(_positive(1 + a)),
    "max": max,
    "min": min,
    "relu": lambda a: max(0, a),
    "sigmoid": lambda a: 1 / (1 + _exp(-a)),
    "sign": lambda a: mpmath.sign(_away_from(a)),
    "sin": mpmath.sin,
    "sinh": lambda a: (_exp(a) - _exp(-a)) / 2,
    "softplus": lambda a: mpmath.log(1 + _exp(a)),
    "sqrt": lambda a: mpmath.sqrt(a) if a >= 0 else _positive(a),
    "step": lambda a: 1 if _away_from(a) > 0 else 0,
    "tan": lambda a: mpmath.sin(a) / _away_from(mpmath.cos(a)),
    "tanh": mpmath.tanh,
}
CONSTANTS = {"pi": lambda: mpmath.pi, "e": lambda: mpmath.e}


def _ref_node(node: ast.AST, point) -> mpmath.mpf:
    if isinstance(node, ast.Constant):
        value = mpmath.mpf(repr(node.value))
    elif isinstance(node, ast.Name):
        value = point[node.id] if node.id in point else CONSTANTS[node.id]()
    elif isinstance(node, ast.UnaryOp):
        operand = _ref_node(node.operand, point)
        value = -operand if isinstance(node.op, ast.USub) else +operand
    elif isinstance(node, ast.BinOp):
        value = _ref_binary(node.op, _ref_node(node.left, point), _ref_node(node.right, point))
    elif isinstance(node, ast.Call):
        value = REFERENCE[node.func.id](*(_ref_node(arg, point) for arg in node.args))
    else:
        raise AssertionError(f"reference cannot evaluate {ast.dump(node)}")
    value = mpmath.mpf(value)
    if not mpmath.isfinite(value) or abs(value) > LIMIT:
        raise Undefined("too large")
    return value


def _ref_binary(op: ast.operator, a, b):
    if isinstance(op, ast.Add):
        return a + b
    if isinstance(op, ast.Sub):
        return a - b
    if isinstance(op, ast.Mult):
        return a * b
    if isinstance(op, ast.Div):
        return a / _away_from(b)
    if isinstance(op, ast.Pow):  # integer exponents only in the generated formulas
        return a**b if b > 0 else 1 / _away_from(a) ** -b
    raise AssertionError(f"reference cannot evaluate {op}")


def reference(text: str, point: dict[str, str]) -> float:
    """Evaluate a generated formula with mpmath at high precision, walking its AST (no eval)."""
    with mpmath.workdps(PREC):
        values = {name: mpmath.mpf(v) for name, v in point.items()}
        return float(_ref_node(ast.parse(text, mode="eval").body, values))


def evaluate(expr: sympy.Expr, point: dict[str, str]) -> complex:
    """Evaluate the parsed expression exactly at a point (rationals), then numerically."""
    exact = expr.xreplace({X: sympy.Rational(point["x"]), Y: sympy.Rational(point["y"])})
    return complex(sympy.N(exact, 30))


LEAVES = st.sampled_from(["x", "y", "0", "1", "2", "3", "0.5", "2.25", "0.01", "pi", "e"])


def formulas(depth: int) -> st.SearchStrategy[str]:
    """Formula strings from the grammar, trees at most ``depth`` operations deep."""
    if depth == 0:
        return LEAVES
    sub = formulas(depth - 1)
    return st.one_of(
        LEAVES,
        st.tuples(sub, st.sampled_from("+-*/"), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(UNARY), sub).map(lambda t: f"{t[0]}({t[1]})"),
        sub.map(lambda s: f"-{s}"),
        st.tuples(sub, st.sampled_from(["2", "3", "-1"])).map(lambda t: f"({t[0]})**{t[1]}"),
        st.tuples(st.sampled_from(["max", "min"]), sub, sub).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    )


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(formulas(4))
def test_random_formulas_evaluate_like_reference(text):
    symbols = {"x": X, "y": Y}
    try:
        parsed = parse_formula(text, symbols)
    except FormulaError as err:
        if "is too many" in str(err) or "floating-point range" in str(err):
            return  # max(max(...), max(...)) beyond the argument limit; exp(exp(exp(3)))
        # otherwise only a formula that is undefined everywhere may be refused:
        # 1/(x-x), log(0), max() of a complex value such as sqrt(-1), a complex constant log(log(0.5))
        assert any(why in str(err) for why in ("undefined", "not comparable", "is not a real number")), str(err)
        for point in POINTS:
            with pytest.raises(Undefined):
                reference(text, point)
        return
    assert parsed.free_symbols <= {X, Y}
    for point in POINTS:
        try:
            expected = reference(text, point)
        except Undefined:
            continue
        got = evaluate(parsed, point)
        assert math.isclose(got.real, expected, rel_tol=1e-9, abs_tol=1e-9), (text, point, got, expected)
        assert abs(got.imag) <= 1e-9, (text, point, got)



@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(st.text(alphabet="xe+-*/()0129., ", max_size=40), st.text(max_size=30)))
def test_arbitrary_text_gives_expression_or_formula_error(text):
    try:
        parsed = parse_formula(text, XS)
    except FormulaError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(parsed, sympy.Expr)
        assert parsed.free_symbols <= {X}
