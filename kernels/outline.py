"""Move the body of a generated ``prange`` loop into a serial function of its own.

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

Examples
--------
>>> fn, call = outline("_part", ["lo = q * n", "out[q] = x[lo] + math.pi"], "q",
...                    module_names={"math"}, decorator="@numba.njit")
>>> call
'_part(q, n, x, out)'
>>> fn[1]
'def _part(q, n, x, out):'
>>> outline("_bad", ["total += x[q]"], "q", module_names=set(), decorator="@numba.njit") is None
True
"""

from __future__ import annotations

import ast
import builtins

__all__ = ["outline", "module_level_names"]

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


def outline(name: str, body: list[str], loop_var: str, *, module_names: set[str],
            decorator: str, loop_arg: str | None = None) -> tuple[list[str], str] | None:
    """``(function lines, call)`` moving ``body`` (a loop body over ``loop_var``, unindented) into
    ``def name(loop_var, free...)``; ``None`` when the body assigns one of its free names. The call
    passes ``loop_arg`` (default: ``loop_var`` itself) for the loop variable."""
    visitor = _FreeNames()
    visitor.bound.add(loop_var)
    for stmt in ast.parse("\n".join(body)).body:
        visitor.visit(stmt)
    if visitor.rebound_free:
        return None
    free = [n for n in visitor.free if n not in module_names and n not in _BUILTINS]
    lines = [decorator, f"def {name}({', '.join([loop_var, *free])}):",
             *[("    " + line) if line else "" for line in body]]
    return lines, f"{name}({', '.join([loop_arg or loop_var, *free])})"
