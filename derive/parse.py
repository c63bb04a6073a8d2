"""Safe parser for user formulas: activations and elementwise losses given as strings.

SymPy's ``sympify`` and ``parse_expr`` call :func:`eval`, so a formula such as
``"__import__('os').system('ls')"`` would run. This module never evaluates the text: it
parses it with :mod:`ast`, checks every node against a whitelist, and builds the SymPy
expression itself.

Accepted: numbers, the caller's variables, the constants ``pi`` and ``e``, unary ``+`` and
``-``, binary ``+ - * / **``, parentheses, and calls of the functions in
:data:`ALLOWED_FUNCTIONS` by plain name with positional arguments. Everything else
(attributes, subscripts, strings, lambdas, comparisons, keywords, ...) is refused with a
one-line :class:`FormulaError` that names the formula and the culprit.

Float literals stay exact (``0.01`` becomes ``1/100``). ``heaviside`` and ``step`` are 0
at 0, as PyTorch.

SymPy simplifies as it builds, and some inputs would keep it busy for hours, so these are
refused as well: text over 2,000 characters; expressions or brackets nested over 100 deep;
integer literals over 30 digits; numeric exponents over 1000 in absolute value; numbers
over 400 digits; constants outside the float64 range (``exp(exp(exp(9)))``); fractional
powers of numbers that SymPy would take long to simplify; ``max``/``min`` of more than 8
arguments; and undefined values (``1/0``, ``log(0)``).

Examples
--------
>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> parse_formula("x*sigmoid(x)", {"x": x})
x/(1 + exp(-x))
>>> parse_formula("0.01*x**2 + log1p(x)", {"x": x})
x**2/100 + log(x + 1)
>>> parse_formula("x.__class__", {"x": x})
Traceback (most recent call last):
...
symprop.derive.parse.FormulaError: formula 'x.__class__': attribute access '.__class__' is not allowed
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sympy

from .errors import SymPropError

__all__ = ["ALLOWED_FUNCTIONS", "FormulaError", "parse_formula"]

# --- limits against resource abuse ------------------------------------------------------------
_MAX_LENGTH = 2000        # characters of formula text
_MAX_DEPTH = 100          # depth of the expression tree, and of nested brackets
_MAX_INT_DIGITS = 30      # digits of an integer literal
_MAX_EXPONENT = 1000      # absolute value of a numeric exponent
_MAX_NUMBER_DIGITS = 400  # digits of any number the expression holds (2**1000 has 302)
_MAX_ROOT_WORK = 10_000   # digits of the power SymPy builds to simplify a fractional power
_MAX_MINMAX_ARGS = 8      # arguments of one max/min, nested ones included (SymPy compares pairs)
_MAX_CONSTANT = 1e308     # magnitude of a nonzero constant subexpression: the float64 range,
_MIN_CONSTANT = 5e-324    # denormals included
_SHOWN_CHARS = 60         # characters of the formula quoted in an error message


class FormulaError(SymPropError):
    """A formula string that cannot be parsed or is not allowed.

    A :class:`ValueError` (through :class:`derive.errors.SymPropError`). The message is one
    line naming the formula and the culprit.

    Examples
    --------
    >>> import sympy
    >>> try:
    ...     parse_formula("z + 1", {"x": sympy.Symbol("x")})
    ... except FormulaError as err:
    ...     print(err)
    formula 'z + 1': unknown name 'z' (variables: x)
    """


# --- whitelisted functions --------------------------------------------------------------------
@dataclass(frozen=True)
class _Function:
    """How to build one whitelisted function, and how many arguments it takes."""

    build: Callable[..., sympy.Expr]
    min_args: int = 1
    max_args: int | None = 1  # None: no upper bound
    flattens: type | None = None  # Max, Min: nested calls merge into one argument list

    def arity_problem(self, name: str, given: int) -> str | None:
        """Why ``given`` arguments are wrong for this function, or None."""
        if self.min_args <= given and (self.max_args is None or given <= self.max_args):
            return None
        if self.max_args is None:
            expected = f"at least {self.min_args} arguments"
        else:
            expected = f"{self.min_args} argument" + ("s" if self.min_args != 1 else "")
        return f"function {name!r} takes {expected} ({given} given)"


def _heaviside(arg: sympy.Expr) -> sympy.Expr:
    """Heaviside step with value 0 at 0 (symprop's convention, as PyTorch)."""
    return sympy.Heaviside(arg, 0)


_FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(sympy.Abs),
    "asinh": _Function(sympy.asinh),
    "atan": _Function(sympy.atan),
    "cos": _Function(sympy.cos),
    "cosh": _Function(sympy.cosh),
    "erf": _Function(sympy.erf),
    "erfc": _Function(sympy.erfc),
    "exp": _Function(sympy.exp),
    "expm1": _Function(lambda a: sympy.exp(a) - 1),
    "heaviside": _Function(_heaviside),
    "log": _Function(sympy.log),
    "log1p": _Function(lambda a: sympy.log(1 + a)),
    "max": _Function(sympy.Max, 2, None, sympy.Max),
    "min": _Function(sympy.Min, 2, None, sympy.Min),
    "relu": _Function(lambda a: sympy.Max(0, a)),
    "sigmoid": _Function(lambda a: 1 / (1 + sympy.exp(-a))),
    "sign": _Function(sympy.sign),
    "sin": _Function(sympy.sin),
    "sinh": _Function(sympy.sinh),
    "softplus": _Function(lambda a: sympy.log(1 + sympy.exp(a))),
    "sqrt": _Function(sympy.sqrt),
    "step": _Function(_heaviside),
    "tan": _Function(sympy.tan),
    "tanh": _Function(sympy.tanh),
}

#: Names of the functions a formula may call, sorted.
ALLOWED_FUNCTIONS: tuple[str, ...] = tuple(sorted(_FUNCTIONS))

_CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "e": sympy.E}

_UNARY_OPS: dict[type, Callable[[sympy.Expr], sympy.Expr]] = {
    ast.UAdd: lambda a: a,
    ast.USub: lambda a: -a,
}
_BINARY_OPS: dict[type, Callable[[sympy.Expr, sympy.Expr], sympy.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    # ast.Pow is built by _build_power, which guards the size of the result
}
_OPERATOR_SYMBOLS: dict[type, str] = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~",
}

#: Refused constructs, node type -> what the message calls it.
_REFUSED: dict[type, str] = {
    ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Slice: "slice",
    ast.Lambda: "lambda", ast.ListComp: "list comprehension", ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension", ast.GeneratorExp: "generator expression",
    ast.Compare: "comparison", ast.BoolOp: "boolean operator", ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment expression", ast.JoinedStr: "f-string", ast.Starred: "starred argument",
    ast.Tuple: "tuple", ast.List: "list", ast.Set: "set", ast.Dict: "dict",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}


# --- context and messages ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    """The formula being parsed and the variables it may use."""

    text: str
    symbols: Mapping[str, sympy.Symbol]

    def error(self, reason: str) -> FormulaError:
        """A FormulaError for this formula: ``formula '<text>': <reason>``."""
        return _error(self.text, reason)

    def segment(self, node: ast.AST) -> str:
        """The source text of ``node``, shortened, quoted (one line)."""
        return _quote(ast.get_source_segment(self.text, node) or type(node).__name__)


def _quote(text: str) -> str:
    """``repr`` of ``text`` shortened to a readable length: always one line."""
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return repr(text)


def _error(text: str, reason: str) -> FormulaError:
    reason = " ".join(reason.split("\n"))
    return FormulaError(f"formula {_quote(text)}: {reason}")


def _describe_number(value: sympy.Expr) -> str:
    """A short text for a (possibly huge) SymPy number; never ``str`` of a huge integer."""
    if value.is_Rational and _digits(value) > 20:
        return f"(a {_digits(value)}-digit number)"
    return str(value)


def _digits(value: sympy.Rational) -> int:
    """Decimal digits of the larger of numerator and denominator."""
    return math.floor(_log10(value)) + 1


def _log10(value: sympy.Rational) -> float:
    """``log10`` of the larger of numerator and denominator (0 for 0)."""
    return math.log10(max(abs(int(value.p)), int(value.q), 1))


# --- stage 1: text to AST ---------------------------------------------------------------------
def _check_text(text: object) -> str:
    """The stripped formula text, after checking its type, length and emptiness."""
    if not isinstance(text, str):
        raise FormulaError(f"formula of type {type(text).__name__!r}: a formula must be a str")
    if len(text) > _MAX_LENGTH:
        raise _error(text, f"too long ({len(text)} characters, limit {_MAX_LENGTH})")
    stripped = text.strip()
    if not stripped:
        raise _error(stripped, "empty")
    return stripped


def _check_brackets(ctx: _Context) -> None:
    """Refuse brackets nested deeper than the limit (they leave no trace in the AST)."""
    depth = 0
    for char in ctx.text:
        if char in "([{":
            depth += 1
            if depth > _MAX_DEPTH:
                raise ctx.error(f"brackets nested deeper than {_MAX_DEPTH} levels")
        elif char in ")]}":
            depth -= 1


def _parse(ctx: _Context) -> ast.expr:
    """The AST of the single expression the formula must consist of."""
    try:
        module = ast.parse(ctx.text, mode="exec")
    except SyntaxError as exc:
        raise ctx.error(_syntax_reason(exc)) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes; parser limits
        raise ctx.error(f"cannot be parsed ({type(exc).__name__})") from None
    if len(module.body) != 1:
        raise ctx.error("multiple statements are not allowed")
    statement = module.body[0]
    if not isinstance(statement, ast.Expr):
        kind = "assignment" if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)) else "statement"
        raise ctx.error(f"{kind} {ctx.segment(statement)} is not allowed (give one expression)")
    return statement.value


def _syntax_reason(exc: SyntaxError) -> str:
    where = f"column {exc.offset}" if (exc.lineno or 1) == 1 else f"line {exc.lineno}, column {exc.offset}"
    return f"{exc.msg} at {where}" if exc.offset else str(exc.msg)


# --- stage 2: whitelist check of the AST ------------------------------------------------------
def _walk(root: ast.AST) -> Iterator[tuple[ast.AST, ast.AST | None, int]]:
    """Every node under ``root`` with its parent and depth, without recursion.

    The parts of an f-string are not visited: the f-string itself is refused.
    """
    stack: list[tuple[ast.AST, ast.AST | None, int]] = [(root, None, 1)]
    while stack:
        node, parent, depth = stack.pop()
        yield node, parent, depth
        if not isinstance(node, ast.JoinedStr):
            stack.extend((child, node, depth + 1) for child in ast.iter_child_nodes(node))


def _check_depth(root: ast.expr, ctx: _Context) -> None:
    depth = max(d for node, _, d in _walk(root) if isinstance(node, ast.expr))
    if depth > _MAX_DEPTH:
        raise ctx.error(f"expression nested too deeply (depth {depth}, limit {_MAX_DEPTH})")


def _check_constant(node: ast.Constant, parent: ast.AST | None, ctx: _Context) -> str | None:
    value = node.value
    if isinstance(value, bool) or value is None or value is Ellipsis:
        return f"constant {ctx.segment(node)} is not allowed"
    if isinstance(value, int):
        if abs(value) >= 10**_MAX_INT_DIGITS:
            return f"integer literal {ctx.segment(node)} has more than {_MAX_INT_DIGITS} digits"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"number {ctx.segment(node)} is not finite"
    kind = {str: "string", bytes: "bytes", complex: "complex number"}.get(type(value), "constant")
    return f"{kind} {ctx.segment(node)} is not allowed"


def _check_name(node: ast.Name, parent: ast.AST | None, ctx: _Context) -> str | None:
    name = node.id
    if isinstance(parent, ast.Call) and parent.func is node:
        return _check_function_name(name)
    if not isinstance(node.ctx, ast.Load):
        return None  # an assignment target: the assignment itself is refused
    if name.startswith("_"):
        return f"name {name!r} is not allowed (names starting with '_' are reserved)"
    if name in ctx.symbols or name in _CONSTANTS:
        return None
    if name in _FUNCTIONS:
        return f"function {name!r} must be called, as in {name}(...)"
    return f"unknown name {name!r} (variables: {', '.join(sorted(ctx.symbols)) or 'none'})"


def _check_function_name(name: str) -> str | None:
    if name in _FUNCTIONS:
        return None
    return f"function {name!r} is not allowed (allowed: {', '.join(ALLOWED_FUNCTIONS)})"


def _check_call(node: ast.Call, parent: ast.AST | None, ctx: _Context) -> str | None:
    if not isinstance(node.func, ast.Name):
        return f"only plain function names can be called, not {ctx.segment(node.func)}"
    function = _FUNCTIONS.get(node.func.id)
    plain = not node.keywords and not any(isinstance(arg, ast.Starred) for arg in node.args)
    if function is None or not plain:
        return None  # reported at the name, the keyword or the starred argument
    return function.arity_problem(node.func.id, len(node.args))


def _check_keyword(node: ast.keyword, parent: ast.AST | None, ctx: _Context) -> str | None:
    if node.arg is None:
        return f"'**' argument unpacking {ctx.segment(node)} is not allowed"
    return f"keyword argument '{node.arg}=' is not allowed (arguments are positional)"


def _check_operator(node: ast.UnaryOp | ast.BinOp, parent: ast.AST | None, ctx: _Context) -> str | None:
    if type(node.op) in _UNARY_OPS or type(node.op) in _BINARY_OPS or isinstance(node.op, ast.Pow):
        return None
    symbol = _OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
    hint = " (use ** for powers)" if symbol == "^" else ""
    return f"operator {symbol!r} is not allowed{hint}"


def _check_attribute(node: ast.Attribute, parent: ast.AST | None, ctx: _Context) -> str | None:
    return f"attribute access {'.' + node.attr!r} is not allowed"


def _refuse(node: ast.AST, parent: ast.AST | None, ctx: _Context) -> str:
    kind = _REFUSED.get(type(node), f"{type(node).__name__} expression")
    return f"{kind} {ctx.segment(node)} is not allowed"


_CHECKS: dict[type, Callable[[ast.AST, ast.AST | None, _Context], str | None]] = {
    ast.Constant: _check_constant,
    ast.Name: _check_name,
    ast.Call: _check_call,
    ast.keyword: _check_keyword,
    ast.UnaryOp: _check_operator,
    ast.BinOp: _check_operator,
    ast.Attribute: _check_attribute,
}


def _is_private(node: ast.AST) -> bool:
    """Whether ``node`` names an underscore identifier (the likeliest sign of an attack)."""
    name = getattr(node, "id", None) if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return isinstance(name, str) and name.startswith("_")


def _find_problem(root: ast.expr, ctx: _Context) -> str | None:
    """The reason to refuse the formula, or None.

    Of several problems, underscore names come first, then the first in reading order
    (innermost first where constructs start at the same column).
    """
    problems = []
    for node, parent, depth in _walk(root):
        if not hasattr(node, "col_offset"):
            continue  # operators and contexts: checked with their parent
        reason = _CHECKS.get(type(node), _refuse)(node, parent, ctx)
        if reason is not None:
            problems.append((not _is_private(node), node.lineno, node.col_offset, -depth, reason))
    return min(problems)[-1] if problems else None


# --- stage 3: AST to SymPy --------------------------------------------------------------------
def _build(node: ast.AST, ctx: _Context) -> sympy.Expr:
    builder = _BUILDERS.get(type(node))
    if builder is None:  # unreachable after _find_problem; kept as a second line of defence
        raise ctx.error(f"{type(node).__name__} is not allowed")
    expr = builder(node, ctx)
    _check_defined(expr, ctx)
    _check_number_sizes(expr, ctx)
    _check_constant_size(expr, node, ctx)
    return expr


def _check_defined(expr: sympy.Expr, ctx: _Context) -> None:
    """Refuse ``1/0``, ``log(0)``, ... as soon as they appear (Max, Min cannot compare them)."""
    if expr.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        raise ctx.error("the value is undefined or infinite (division by zero, log(0), ...)")


def _check_constant_size(expr: sympy.Expr, node: ast.AST, ctx: _Context) -> None:
    """Refuse constants beyond the float range, such as ``exp(exp(exp(9)))`` or ``exp(-1000)``.

    SymPy evaluates constants numerically to compare them (``max``, ``sign``, simplification
    of ``exp``), and for a tower of exponentials that takes practically forever. Checking
    every constant as it is built keeps all arguments within range, so each check is quick.
    """
    if expr.free_symbols:
        return
    # the exponentials inside too: softplus(a) = log(1 + exp(a)) is no node of its own
    for constant in (expr, *expr.atoms(sympy.exp)):
        value = constant if constant.is_Rational else constant.evalf(15)
        if value.is_number and value.is_real is False:   # sqrt(-1), log(-1), (-8)**(1/3)
            raise ctx.error(f"constant {ctx.segment(node)} is not a real number ({value})")
        magnitude = abs(value)
        if magnitude.is_Number and magnitude != 0 and not _MIN_CONSTANT <= magnitude <= _MAX_CONSTANT:
            raise ctx.error(f"constant {ctx.segment(node)} is beyond the floating-point range")


def _check_number_sizes(expr: sympy.Expr, ctx: _Context) -> None:
    """Refuse huge numbers before SymPy spends time on them (roots, factoring, comparisons)."""
    numbers = [expr] if expr.is_Rational else expr.atoms(sympy.Rational)
    largest = max(numbers, key=_digits, default=None)
    if largest is not None and _digits(largest) > _MAX_NUMBER_DIGITS:
        raise ctx.error(f"{_describe_number(largest)} is too large (limit {_MAX_NUMBER_DIGITS} digits)")


def _build_constant(node: ast.Constant, ctx: _Context) -> sympy.Expr:
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool):
        return sympy.Integer(value)
    if isinstance(value, float) and math.isfinite(value):
        return sympy.Rational(repr(value))  # exact: 0.01 -> 1/100
    raise ctx.error(f"constant {ctx.segment(node)} is not allowed")


def _build_name(node: ast.Name, ctx: _Context) -> sympy.Expr:
    if node.id in ctx.symbols:
        return ctx.symbols[node.id]
    if node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    raise ctx.error(f"unknown name {node.id!r}")


def _build_unary(node: ast.UnaryOp, ctx: _Context) -> sympy.Expr:
    operation = _UNARY_OPS.get(type(node.op))
    if operation is None:
        raise ctx.error(f"operator {type(node.op).__name__} is not allowed")
    return operation(_build(node.operand, ctx))


def _build_binary(node: ast.BinOp, ctx: _Context) -> sympy.Expr:
    left, right = _build(node.left, ctx), _build(node.right, ctx)
    if isinstance(node.op, ast.Pow):
        return _build_power(left, right, ctx)
    operation = _BINARY_OPS.get(type(node.op))
    if operation is None:
        raise ctx.error(f"operator {type(node.op).__name__} is not allowed")
    return operation(left, right)


def _build_power(base: sympy.Expr, exponent: sympy.Expr, ctx: _Context) -> sympy.Expr:
    """``base**exponent``, refusing numeric powers SymPy would take long to evaluate.

    With a numeric base, SymPy also evaluates the power to the constant term of a symbolic
    exponent when it simplifies (``999**(10**30 - x)`` -> ``999**(10**30) * 999**(-x)``, in
    ``min``), so that term is held to the same limits.
    """
    if exponent.is_Number and not exponent.is_Rational:
        raise ctx.error(f"exponent {exponent} is not allowed")
    if exponent.is_Rational:
        _check_numeric_power(base, exponent, ctx)
    elif base.is_Rational:
        constant = exponent.as_coeff_Add()[0]
        if constant.is_Rational:
            _check_numeric_power(base, constant, ctx)
    return base**exponent


def _check_numeric_power(base: sympy.Expr, exponent: sympy.Rational, ctx: _Context) -> None:
    if abs(exponent) > _MAX_EXPONENT:
        raise ctx.error(f"exponent {_describe_number(exponent)} is too large (limit {_MAX_EXPONENT})")
    if base.is_Rational and _log10(base) * abs(exponent) > _MAX_NUMBER_DIGITS:
        raise ctx.error(f"power of {_describe_number(base)} would have more than "
                        f"{_MAX_NUMBER_DIGITS} digits")
    if not exponent.is_Integer:
        _check_root_work(base, exponent, ctx)


def _check_root_work(base: sympy.Expr, exponent: sympy.Rational, ctx: _Context) -> None:
    """Refuse fractional powers of numbers that SymPy would take long to simplify.

    To simplify ``c**(p/q)`` (also as the coefficient of a product), SymPy raises ``c`` to a
    power of up to ``max(p, q)`` before it takes a ``q``-th root: ``(2/999)**(1/10**6)``
    would build a number of millions of digits.
    """
    coefficient = base if base.is_Rational else base.as_coeff_Mul()[0]
    if not coefficient.is_Rational or _log10(coefficient) == 0:
        return
    if max(abs(exponent.p), exponent.q) > _MAX_ROOT_WORK / _log10(coefficient):
        raise ctx.error(f"power of {_describe_number(coefficient)} to the fractional exponent "
                        f"{_describe_number(exponent)} is too costly to simplify")


def _build_call(node: ast.Call, ctx: _Context) -> sympy.Expr:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
        raise ctx.error("call is not allowed")
    function = _FUNCTIONS[node.func.id]
    problem = function.arity_problem(node.func.id, len(node.args))
    if problem is not None:
        raise ctx.error(problem)
    args = [_build(arg, ctx) for arg in node.args]
    if function.flattens is not None:
        count = sum(len(a.args) if isinstance(a, function.flattens) else 1 for a in args)
        if count > _MAX_MINMAX_ARGS:
            raise ctx.error(f"{node.func.id}() of {count} arguments, nested calls included, "
                            f"is too many (limit {_MAX_MINMAX_ARGS})")
    return function.build(*args)


_BUILDERS: dict[type, Callable[[ast.AST, _Context], sympy.Expr]] = {
    ast.Constant: _build_constant,
    ast.Name: _build_name,
    ast.UnaryOp: _build_unary,
    ast.BinOp: _build_binary,
    ast.Call: _build_call,
}


def _build_checked(root: ast.expr, ctx: _Context) -> sympy.Expr:
    """Build the expression, turning SymPy's complaints into FormulaError."""
    try:
        return _build(root, ctx)
    except FormulaError:
        raise
    except (ValueError, TypeError, ArithmeticError, NotImplementedError, RecursionError) as exc:
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ctx.error(f"SymPy cannot build it: {detail}") from None


def _check_result(expr: object, ctx: _Context) -> None:
    if not isinstance(expr, sympy.Expr):
        raise ctx.error(f"the result is not a SymPy expression ({type(expr).__name__})")
    unexpected = expr.free_symbols - set(ctx.symbols.values())
    if unexpected:
        raise ctx.error(f"unexpected symbols {', '.join(sorted(map(str, unexpected)))}")
    _check_defined(expr, ctx)


def _check_symbols(symbols: object) -> Mapping[str, sympy.Symbol]:
    if not isinstance(symbols, Mapping):
        raise TypeError(f"symbols must be a mapping of names to sympy.Symbol, not {type(symbols).__name__}")
    for name, symbol in symbols.items():
        if not isinstance(name, str) or not isinstance(symbol, sympy.Symbol):
            raise TypeError(f"symbols must map str to sympy.Symbol, got {name!r}: {type(symbol).__name__}")
    return symbols


# --- public entry point -----------------------------------------------------------------------
def parse_formula(text: str, symbols: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    """Parse a formula string into a SymPy expression without evaluating any code.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"x*tanh(log(1+exp(x)))"`` or ``"(y-t)**2"``. At most 2,000
        characters; surrounding whitespace is ignored.
    symbols : Mapping[str, sympy.Symbol]
        The variables the formula may use, by name, and the symbols to use for them.
        ``pi`` and ``e`` are constants unless ``symbols`` names them too.

    Returns
    -------
    sympy.Expr
        The expression; its free symbols are among ``symbols.values()``. Float literals are
        exact rationals.

    Raises
    ------
    FormulaError
        For anything outside the whitelist (see the module docstring), syntax errors,
        unknown names, wrong numbers of arguments, oversized input, and results that are
        undefined (``1/0``). The message is one line.
    TypeError
        If ``symbols`` is not a mapping of str to :class:`sympy.Symbol`.

    Examples
    --------
    >>> import sympy
    >>> y, t = sympy.symbols("y t", real=True)
    >>> parse_formula("(y-t)**2", {"y": y, "t": t})
    (-t + y)**2
    >>> x = sympy.Symbol("x", real=True)
    >>> parse_formula("relu(x) + step(x)", {"x": x})
    Heaviside(x, 0) + Max(0, x)
    >>> parse_formula("exp(x, x)", {"x": x})
    Traceback (most recent call last):
    ...
    symprop.derive.parse.FormulaError: formula 'exp(x, x)': function 'exp' takes 1 argument (2 given)
    """
    variables = _check_symbols(symbols)
    ctx = _Context(_check_text(text), dict(variables))
    _check_brackets(ctx)
    root = _parse(ctx)
    _check_depth(root, ctx)
    problem = _find_problem(root, ctx)
    if problem is not None:
        raise ctx.error(problem)
    expr = _build_checked(root, ctx)
    _check_result(expr, ctx)
    return expr
