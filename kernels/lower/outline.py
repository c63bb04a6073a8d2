"""Move the body of a generated ``prange`` loop into a serial function of its own, and call it
through a function pointer.

Numba compiles a ``parallel=True`` function through its parfor passes, which analyse every
statement inside a ``prange`` body; for the data-parallel epoch of the 784-256-128-10 net that
took 14-18 s (measured here), most of the cold start. A body moved into a plain
``@numba.njit`` function compiles through the ordinary pipeline, and the ``prange`` loop left
behind is one call, so the parfor passes have almost nothing to look at.

:func:`outline` finds the body's free names with :mod:`ast` (names read before the body assigns
them, minus the module's globals and builtins) and makes them the function's parameters, in the
order they first appear. A body that assigns a free name (a reduction across iterations, or a
value used after the loop) cannot be moved and is refused with ``None``: the caller keeps the
loop as it was.

Called by name, a function is linked into its caller: Numba copies its LLVM code into the
``prange`` body's gufunc, both gufunc wrappers and the outer function, and optimises and
compiles it again in each (7 s of LLVM for the 784 net's epoch, measured). Called through a
:class:`FunctionPointer` argument (a Numba first-class function), it is compiled once: the
caller holds only its address, which Numba reads when the argument is passed, so the caller
stays cacheable. That needs the function's exact signature up front (:meth:`Outlined.function`
takes it).

Examples
--------
>>> part = outline("_part", ["lo = q * n", "out[q] = x[lo] + math.pi"], "q", module_names={"math"})
>>> part.params
('q', 'n', 'x', 'out')
>>> part.call()
'_part(q, n, x, out)'
>>> part.call(loop_arg="np.int64(q)", callee="part_fn")
'part_fn(np.int64(q), n, x, out)'
>>> part.function("@numba.njit")[1]
'def _part(q, n, x, out):'
>>> outline("_bad", ["total += x[q]"], "q", module_names=set()) is None
True
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

from numba.core.types import FunctionType, WrapperAddressProtocol
from numba.extending import typeof_impl

__all__ = ["outline", "Outlined", "module_level_names", "FunctionPointer"]

_BUILTINS = frozenset(dir(builtins))


def module_level_names(source: str) -> set[str]:
    """Names bound at the top level of ``source``: imports, functions, classes, assignments."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


class _FreeNames(ast.NodeVisitor):
    """Names read before they are bound, in order of first appearance, and every bound name.

    Statements are visited in execution order as written (an assignment's value before its
    target, a loop's iterable before its variable), which is exact for straight-line generated
    code and loops; a name bound only in one branch and read after it counts as bound."""

    def __init__(self):
        self.bound: set[str] = set()
        self.free: dict[str, None] = {}
        self.rebound_free: set[str] = set()

    def _bind(self, target):
        for n in ast.walk(target):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                if n.id in self.free:
                    self.rebound_free.add(n.id)
                self.bound.add(n.id)
            elif isinstance(n, (ast.Subscript, ast.Attribute)):
                self.visit(n)   # x[i] = ...: x and i are read

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load) and node.id not in self.bound:
            self.free.setdefault(node.id)

    def visit_Assign(self, node):
        self.visit(node.value)
        for t in node.targets:
            self._bind(t)

    def visit_AugAssign(self, node):
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.visit_Name(ast.Name(node.target.id, ast.Load()))
        self._bind(node.target)

    def visit_For(self, node):
        self.visit(node.iter)
        self._bind(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)


@dataclass(frozen=True)
class Outlined:
    """A loop body moved into ``def name(*params)``: the loop variable, then the free names."""

    name: str
    params: tuple[str, ...]
    body: tuple[str, ...]   # unindented lines

    def function(self, decorator: str) -> list[str]:
        """The function's lines under ``decorator``."""
        return [decorator, f"def {self.name}({', '.join(self.params)}):",
                *[("    " + line) if line else "" for line in self.body]]

    def call(self, loop_arg: str | None = None, callee: str | None = None) -> str:
        """The statement that replaces the body: ``callee`` (default: the function's name) called
        with ``loop_arg`` (default: the loop variable itself) and the free names."""
        return f"{callee or self.name}({', '.join([loop_arg or self.params[0], *self.params[1:]])})"


def outline(name: str, body: list[str], loop_var: str, *, module_names: set[str]) -> Outlined | None:
    """``body`` (a loop body over ``loop_var``, unindented) as :class:`Outlined` function ``name``;
    ``None`` when the body assigns one of its free names."""
    visitor = _FreeNames()
    visitor.bound.add(loop_var)
    for stmt in ast.parse("\n".join(body)).body:
        visitor.visit(stmt)
    if visitor.rebound_free:
        return None
    free = [n for n in visitor.free if n not in module_names and n not in _BUILTINS]
    return Outlined(name, (loop_var, *free), tuple(body))


class FunctionPointer(WrapperAddressProtocol):
    """A Numba function with one explicit signature, to pass to another compiled function as a
    first-class function: the callee runs through its C wrapper's address instead of being
    linked (and compiled again) into the caller.

    Numba types it ``FunctionType(signature)``, so a caller compiled for it is cached by
    signature, not by object, and a new process loads it from the cache. The C wrapper cannot
    raise into the caller: an exception inside is printed, and the call returns. The functions
    passed this way (the data-parallel epoch's ``prange`` bodies) raise none.

    >>> import numba, numpy as np
    >>> @numba.njit("void(float64[::1], int64)")
    ... def bump(a, i):
    ...     a[i] += 1.0
    >>> @numba.njit
    ... def twice(f, a):
    ...     f(a, 0)
    ...     f(a, 0)
    >>> a = np.zeros(2); twice(FunctionPointer(bump), a); a
    array([2., 0.])
    """

    def __init__(self, dispatcher):
        signatures = dispatcher.nopython_signatures
        if len(signatures) != 1:
            raise ValueError(f"{dispatcher.__name__} needs exactly one explicit signature, has {len(signatures)}")
        self.dispatcher = dispatcher
        self._signature = signatures[0]
        self._type = FunctionType(self._signature)
        self._address = None

    def signature(self):
        return self._signature

    def __wrapper_address__(self) -> int:
        if self._address is None:
            result = self.dispatcher.overloads[self._signature.args]
            self._address = result.library.get_pointer_to_function(result.fndesc.llvm_cfunc_wrapper_name)
        return self._address


@typeof_impl.register(FunctionPointer)
def _typeof_function_pointer(value, context):
    """Its type, made once: Numba's rule for any such object builds a new ``FunctionType`` on
    every call (40 µs measured on a 30-argument signature)."""
    return value._type
