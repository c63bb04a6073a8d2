"""A plain NumPy interpreter of the derived equations (float64), for checks and teaching.

It runs the forward equations in topological order and the derived VJPs in reverse,
summing each node's contributions, exactly as printed. Like the code generators it reads only
the three equation forms (:mod:`derive.equations`), never an op: index equations without sums
are evaluated on whole arrays (every element read through its index expressions, so broadcast
and view indices such as ``b[j]`` or ``x[n, floor(i/3), Mod(i, 3)]`` gather as NumPy), those
with sums element by element. It is meant for small sizes: the compiled kernels are the fast
path; this is the reference that the derivation itself is right.

Examples
--------
>>> from symprop.derive.build import mlp
>>> from symprop.derive.derivation import backprop
>>> from symprop.derive.symbolic import random_values
>>> bp = backprop(mlp([2, 3, 1]))
>>> loss, grads = evaluate(bp, random_values(bp.graph, batch=4))
>>> grads["W1"].shape, grads["b1"].shape
((3, 2), (3,))
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Mapping

import networkx as nx
import numpy as np
import sympy as sp

from . import symbols as S
from .indexcalc import FloorDiv
from .ops import BATCH

__all__ = ["evaluate", "forward_values", "objective", "finite_differences", "leaf_values", "NUMERIC_FUNCTIONS"]

#: NumPy versions of the functions derived expressions use that ``sympy.lambdify`` does not map
#: itself (``Heaviside(x, 0)``, ``sign``, ``Max``, ``erf``), for ``lambdify(..., modules=[NUMERIC_FUNCTIONS,
#: "numpy"])``; :mod:`reports.figures` plots with them too.
#:
#: >>> import sympy as sp
#: >>> x = sp.Symbol("x")
#: >>> sp.lambdify(x, sp.Heaviside(x, 0), modules=[NUMERIC_FUNCTIONS, "numpy"])(np.array([-1.0, 0.0, 2.0]))
#: array([0., 0., 1.])
NUMERIC_FUNCTIONS = {"Heaviside": lambda x, h0=0.0: np.where(x > 0, 1.0, np.where(x == 0, h0, 0.0)),
          "sign": np.sign, "Max": np.maximum, "Min": np.minimum,
          "erf": np.vectorize(math.erf, otypes=[float]), "erfc": np.vectorize(math.erfc, otypes=[float])}


def _matrix_value(expr, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    """Evaluate a matrix expression of MatrixSymbols, products, sums, transposes and 𝟙."""
    if isinstance(expr, sp.MatrixSymbol):
        value = env[expr.name]
        return value.reshape(-1, 1) if value.ndim == 1 else value
    if isinstance(expr, sp.OneMatrix):
        rows = batch if expr.shape[0] == BATCH else int(expr.shape[0])
        return np.ones((rows, int(expr.shape[1]) if expr.shape[1] != BATCH else batch))
    if isinstance(expr, sp.Transpose):
        return _matrix_value(expr.arg, env, batch).T
    if isinstance(expr, sp.MatMul):
        coeff, mats = expr.as_coeff_matrices()
        out = _matrix_value(mats[0], env, batch)
        for m in mats[1:]:
            out = out @ _matrix_value(m, env, batch)
        return float(coeff) * out
    if isinstance(expr, sp.MatAdd):
        return sum(_matrix_value(a, env, batch) for a in expr.args)
    raise TypeError(f"cannot evaluate matrix expression {expr}")


def _integer_index(expr, grid: dict) -> np.ndarray | int:
    """An index expression (sums and integer multiples of indices, their quotients
    :class:`~derive.indexcalc.FloorDiv` and remainders ``Mod`` by an integer) evaluated exactly in
    integers over ``grid`` (index -> open-grid array)."""
    if expr.is_Integer:
        return int(expr)
    if expr.is_Symbol:
        return grid[expr]
    if isinstance(expr, sp.Add):
        return sum(_integer_index(a, grid) for a in expr.args)
    if isinstance(expr, sp.Mul) and expr.args[0].is_Integer:
        return int(expr.args[0]) * _integer_index(sp.Mul(*expr.args[1:]), grid)
    if isinstance(expr, FloorDiv):
        return _integer_index(expr.args[0], grid) // int(expr.args[1])
    if isinstance(expr, sp.Mod) and expr.args[1].is_Integer:
        return _integer_index(expr.args[0], grid) % int(expr.args[1])
    raise TypeError(f"cannot evaluate the index expression {expr}")


def _gathered(element: sp.Indexed, array: np.ndarray, indices: tuple, extents: list, grid: dict) -> np.ndarray:
    """The elements an index equation reads from ``array`` at every point of its range, shaped to
    broadcast over ``extents``."""
    if tuple(element.indices) == tuple(indices) and array.shape == tuple(extents):
        return array
    return array[tuple(_integer_index(q, grid) for q in element.indices)]


def _index_value(eq, env: dict[str, np.ndarray], batch: int) -> np.ndarray:
    """Evaluate an index equation over its whole range."""
    extents = [batch if e == BATCH else int(e) for e in eq.extents]
    rhs = eq.rhs.subs(BATCH, batch)
    if not rhs.has(sp.Sum):
        grid = {idx: np.arange(ext).reshape([-1 if q == p else 1 for q in range(len(extents))])
                for p, (idx, ext) in enumerate(zip(eq.indices, extents))}
        elements = tuple(sorted(rhs.atoms(sp.Indexed), key=sp.default_sort_key))
        fn = _lambdified_elements(rhs, elements)
        values = [_gathered(e, env[str(e.base.label)], eq.indices, extents, grid) for e in elements]
        return np.broadcast_to(fn(*values), extents).astype(np.float64)
    bases = sorted({str(b.label) for b in rhs.atoms(sp.IndexedBase)})
    fn = _lambdified(rhs, tuple(bases), tuple(eq.indices))
    out = np.empty(extents)
    values = [env[b] for b in bases]
    for idx in np.ndindex(*extents):
        out[idx] = fn(*idx, *values)
    return out


@lru_cache(maxsize=1024)
def _lambdified_elements(rhs, elements: tuple):
    """The rhs as a NumPy function of its elements' values, in the order of ``elements`` (cached)."""
    plain = {e: sp.Symbol(f"_v{q}") for q, e in enumerate(elements)}
    return sp.lambdify([plain[e] for e in elements], rhs.xreplace(plain), modules=[NUMERIC_FUNCTIONS, "numpy"])


@lru_cache(maxsize=1024)
def _lambdified(rhs, bases: tuple[str, ...], indices: tuple):
    """The rhs as a Python function of the indices and the arrays (cached: the same equation is
    evaluated many times)."""
    arrays = {b: sp.IndexedBase(f"_a{i}") for i, b in enumerate(bases)}
    rhs = rhs.xreplace({sp.IndexedBase(b): arrays[b] for b in bases})
    return sp.lambdify([*indices, *arrays.values()], rhs, modules=[NUMERIC_FUNCTIONS, "math"])


def leaf_values(g: nx.DiGraph, info, values: Mapping[str, np.ndarray], needed=None) -> dict[str, np.ndarray]:
    """The leaves' values as float64 arrays, checked: every input, target and parameter (of
    ``needed``, default all) given, real, finite and of its shape (inputs and targets with one
    number of rows first). ValueError naming the node otherwise.

    >>> from symprop.derive.build import mlp
    >>> from symprop.derive.graph import validate
    >>> net = mlp([2, 1])
    >>> leaf_values(net, validate(net), {"x": [[1, 2]], "t": [[0]], "W1": [[1, 1]]})
    Traceback (most recent call last):
    ...
    ValueError: no value for parameter 'b1'
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"values must map node names to arrays, got {type(values).__name__}")
    out, batch = {}, None
    kinds = {**dict.fromkeys(info.inputs, "input"), **dict.fromkeys(info.targets, "target"),
             **dict.fromkeys(info.parameters, "parameter")}
    for v in info.order:
        op = kinds.get(v)
        if op is None or (needed is not None and v not in needed):
            continue
        if v not in values:
            raise ValueError(f"no value for {op} {v!r}")
        arr = np.asarray(values[v])
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{op} {v!r} must hold real numbers, got dtype {arr.dtype}")
        arr, want = arr.astype(np.float64), tuple(info.shapes[v])
        if info.batched[v]:
            if arr.ndim != 1 + len(want) or arr.shape[1:] != want or arr.shape[0] == 0:
                raise ValueError(f"{op} {v!r} must have shape (batch, {', '.join(map(str, want))}), got {arr.shape}")
            if batch is not None and arr.shape[0] != batch:
                raise ValueError(f"{op} {v!r} has {arr.shape[0]} rows but the batch has {batch}")
            batch = arr.shape[0]
        elif arr.shape != want:
            raise ValueError(f"{op} {v!r} must have shape {want}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{op} {v!r} holds NaN or Inf")
        out[v] = arr
    return out


def _batch(info, env: dict[str, np.ndarray]) -> int:
    """The number of rows of the inputs given (:func:`leaf_values` checked that they agree)."""
    return next(env[v].shape[0] for v in info.inputs if v in env)


def forward_values(bp, values: Mapping[str, np.ndarray], until: str | None = None) -> dict[str, np.ndarray]:
    """Every node's value: the leaves as given (checked, see :func:`leaf_values`), the rest by
    the forward equations.

    With ``until``, only that node and what it depends on are computed (predictions need
    neither targets nor the loss).
    """
    if not hasattr(bp, "info") or not hasattr(bp, "nodes"):
        raise TypeError(f"expected a derivation (derive.backprop(net)), got {type(bp).__name__}")
    needed = None if until is None else nx.ancestors(bp.graph, until) | {until}
    env = leaf_values(bp.graph, bp.info, values, needed)
    batch = _batch(bp.info, env)
    for v in bp.info.order:
        eq = bp.nodes[v].forward
        if eq is None or (needed is not None and v not in needed):
            continue
        if eq.form == "matrix":
            env[v] = _matrix_value(eq.rhs, env, batch)
        elif eq.form == "index":
            env[v] = _index_value(eq, env, batch)
        else:
            env[v] = float(_scalar_value(eq.rhs, env, batch))
    return env


def _scalar_value(expr, env, batch) -> float:
    expr = expr.subs(BATCH, batch)
    bases = sorted({str(b.label) for b in expr.atoms(sp.IndexedBase)})
    return _lambdified(expr, tuple(bases), ())(*[env[b] for b in bases])


def evaluate(bp, values: Mapping[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
    """The objective and ``parameter -> gradient`` computed from the derived equations."""
    env = forward_values(bp, values)
    batch = _batch(bp.info, env)
    objective = env[bp.info.loss] + sum(env[p] for p in bp.info.penalties)
    for v in reversed(bp.info.order):
        contributions = bp.gradients.get(v)
        if not contributions:
            continue
        total = None
        for c in contributions:
            eq = c.equation
            part = _matrix_value(eq.rhs, env, batch) if eq.form == "matrix" else _index_value(eq, env, batch)
            part = part.reshape(np.shape(env[v]))
            total = part if total is None else total + part
        env[S.GRAD_PREFIX + v] = total
    grads = {p: env[S.GRAD_PREFIX + p] for p in bp.parameters if S.GRAD_PREFIX + p in env}
    return float(objective), grads


def objective(bp, values: Mapping[str, np.ndarray]) -> float:
    """The objective (loss plus penalties) from the forward equations."""
    env = forward_values(bp, values)
    return float(env[bp.info.loss] + sum(env[p] for p in bp.info.penalties))


def finite_differences(bp, values: Mapping[str, np.ndarray], h: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences of :func:`objective` with respect to every parameter element (float64)."""
    grads = {}
    for p in bp.parameters:
        base = np.array(values[p], dtype=np.float64)
        g = np.zeros_like(base)
        for idx in np.ndindex(*base.shape):
            up, down = base.copy(), base.copy()
            up[idx] += h
            down[idx] -= h
            g[idx] = (objective(bp, {**values, p: up}) - objective(bp, {**values, p: down})) / (2 * h)
        grads[p] = g
    return grads
