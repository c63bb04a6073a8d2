"""Printing scalar element expressions for generated Numba code.

:class:`KernelPrinter` is a :class:`sympy.printing.pycode.PythonCodePrinter` that prints one
element of an array equation (``arr[n, i]``, ``_exp(...)``); :class:`Names` gives every SymPy
array name (``z1``, ``dL/dz1``) a safe Python identifier; :data:`HELPERS` are the scalar functions
every generated module defines (the stable sigmoid and softplus the printer calls);
:class:`RowMax` and :class:`RowCached` are the reduction markers the walker turns into loops.

>>> import sympy as sp
>>> x = sp.IndexedBase("z1"); n, i = sp.symbols("n i", integer=True)
>>> KernelPrinter(Names()).doprint(sp.exp(x[n, i]) / 2)
'(0.5)*_exp(v_z1_0[n, i])'
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from symprop.derive import symbols as S

__all__ = ["KernelPrinter", "Names", "HELPERS", "INDENT", "RowMax", "RowCached", "is_reduction",
           "maximal_reductions"]

#: One level of indentation in generated code.
INDENT = "    "


class Names:
    """Safe, unique Python identifiers for every SymPy array name (``z1``, ``dL/dz1``)."""

    def __init__(self):
        self._ids: dict[str, str] = {}
        self._count = 0

    def __call__(self, name: str) -> str:
        if name not in self._ids:
            kind, node = S.parse_name(name)
            stem = re.sub(r"[^0-9A-Za-z_]", "_", node)[:40]
            prefix = "g" if kind == "grad" else "v"
            self._ids[name] = f"{prefix}_{stem}_{self._count}"
            self._count += 1
        return self._ids[name]


class RowMax(sp.Function):
    """``max over var in [lo, hi] of expr`` (unevaluated; only printed as a loop)."""

    nargs = 4

    @property
    def free_symbols(self):
        expr, var, lo, hi = self.args
        return (expr.free_symbols - {var}) | lo.free_symbols | hi.free_symbols


class RowCached(sp.Function):
    """``buffer[row]``: a row reduction computed by an earlier statement and kept per row
    (printed as an array element; see :meth:`_Emitter.reduction`)."""

    nargs = 2


def is_reduction(e) -> bool:
    return isinstance(e, (sp.Sum, RowMax))


def maximal_reductions(expr) -> list:
    """Reductions in ``expr`` that are not inside another reduction, in first-seen order."""
    found: list = []

    def walk(e):
        if is_reduction(e):
            if e not in found:
                found.append(e)
            return
        for a in e.args:
            if isinstance(a, sp.Basic):
                walk(a)

    walk(expr)
    return found


#: Scalar helpers every generated module defines (stable forms printed by :class:`KernelPrinter`).
HELPERS = (
    "@numba.njit(inline=\"always\")",
    "def _heaviside(x, h0):",
    "    return 1.0 if x > 0 else (h0 if x == 0 else 0.0)",
    "",
    "",
    "@numba.njit(inline=\"always\")",
    "def _sign(x):",
    "    return 1.0 if x > 0 else (-1.0 if x < 0 else (0.0 if x == 0 else x))",
    "",
    "",
    "@numba.njit(inline=\"always\")",
    "def _sigmoid(a):",
    "    # 1/(1+exp(-a)) for a >= 0, exp(a)/(1+exp(a)) otherwise: exp of a non-positive number only",
    "    e = _exp(-abs(a))",
    "    return (1.0 if a >= 0 else e) / (1.0 + e)",
    "",
    "",
    "@numba.njit(inline=\"always\")",
    "def _softplus(a):",
    "    # log(1+exp(a)) without overflow",
    "    return max(a, 0.0) + math.log1p(_exp(-abs(a)))",
    "",
    "",
)


class KernelPrinter(PythonCodePrinter):
    """Prints scalar element expressions for a Numba loop body (``arr[n, i]``, ``_exp``).

    ``exp`` and ``tanh`` print as ``_exp``/``_tanh``: :mod:`kernels.cpu.vecmath`'s vectorisable
    functions in CPU modules, ``math.exp``/``math.tanh`` in CUDA modules."""

    def __init__(self, names: Names, settings=None):
        super().__init__(settings or {"fully_qualified_modules": True, "standard": "python3"})
        self._names = names

    def _print_Indexed(self, expr):
        indices = ", ".join(self._print(i) for i in expr.indices)
        return f"{self._names(str(expr.base.label))}[{indices}]"

    def _print_Heaviside(self, expr):
        args = expr.args
        h0 = args[1] if len(args) > 1 else sp.S.Half
        return f"_heaviside({self._print(args[0])}, {self._print(sp.Float(h0))})"

    def _print_sign(self, expr):
        return f"_sign({self._print(expr.args[0])})"

    def _print_exp(self, expr):
        return f"_exp({self._print(expr.args[0])})"

    def _print_tanh(self, expr):
        return f"_tanh({self._print(expr.args[0])})"

    def _print_Sigmoid(self, expr):
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_Softplus(self, expr):
        return f"_softplus({self._print(expr.args[0])})"

    def _print_Sum(self, expr):  # pragma: no cover - sums are turned into loops before printing
        raise ValueError("internal: a Sum reached the printer (it should have become a loop)")

    def _print_RowMax(self, expr):  # pragma: no cover
        raise ValueError("internal: a row maximum reached the printer")

    def _print_RowCached(self, expr):
        return f"{expr.args[0].name}[{self._print(expr.args[1])}]"

    def _print_Rational(self, expr):
        return f"{expr.p}/{expr.q}" if expr.q != 1 else str(expr.p)

    def _print_Half(self, expr):
        return "0.5"
