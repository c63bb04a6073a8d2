"""Ground truth: the whole loss as one SymPy expression, differentiated by SymPy.

This module is deliberately independent of :mod:`derive.derivation`: it expands the forward
definitions of the registry over concrete sizes into one scalar expression of every input,
target and parameter element, asks :func:`sympy.diff` for the derivative with respect to each
parameter element, and evaluates at the given values with mpmath (30 digits by default).
It is what compiled gradients are checked against. It only scales to small networks
(expression swell): see the README for measured sizes.

Examples
--------
>>> import numpy as np
>>> from symprop.derive.build import mlp
>>> net = mlp([2, 2, 1], activation="tanh")
>>> values = random_values(net, batch=3, seed=0)
>>> truth = symbolic_gradients(net, values)
>>> sorted(truth.grads), truth.grads["W1"].shape
(['W1', 'W2', 'b1', 'b2'], (2, 2))
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping

import networkx as nx
import numpy as np
import sympy as sp

from .derivation import _Row
from .evaluation import leaf_values
from .graph import validate
from .ops import MATRIX_FORWARD, ROW_FORWARD, T, X, Y, W, get_op, row_loss, scalar_function
from .scalar import apply_conventions

__all__ = ["symbolic_loss", "symbolic_gradients", "SymbolicGradients", "random_values"]


def _element_symbols(v: str, shape: tuple[int, ...], number: int) -> np.ndarray:
    """One real symbol per element, named ``W1_0_1`` (a Python identifier, so lambdify needs no
    renaming pass, which costs minutes on large expressions). Names with ``_``, that are not
    identifiers, or not ASCII (Python reads ``Ｗ1`` as ``W1``: NFKC) become ``_leaf<k>``, so two
    leaves never share an element name."""
    stem = v if v.isascii() and v.isidentifier() and "_" not in v else f"_leaf{number}"
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = sp.Symbol("_".join([stem, *map(str, idx)]), real=True)
    return arr


def _concrete_row(builder_args, row_values: dict[sp.IndexedBase, np.ndarray]) -> sp.Expr:
    """Evaluate an index-form definition over concrete rows: expand sums, bind elements."""
    expr = builder_args.doit()
    return expr.xreplace({e: row_values[e.base][int(e.indices[1])] for e in expr.atoms(sp.Indexed)})


def symbolic_loss(g: nx.DiGraph, batch: int) -> tuple[sp.Expr, dict[str, np.ndarray]]:
    """The objective (loss plus penalties) as one expression, and each leaf's element symbols."""
    info = validate(g)
    values: dict[str, np.ndarray] = {}
    leaves: dict[str, np.ndarray] = {}
    objective = sp.S.Zero
    k, l = sp.symbols("k l", integer=True, nonnegative=True)
    for v in info.order:
        data = g.nodes[v]
        op = get_op(data["op"])
        a = {arg: values[u] for arg, u in info.args[v].items()}
        if op.form == "leaf":
            shape = ((batch,) if info.batched[v] else ()) + info.shapes[v]
            values[v] = leaves[v] = _element_symbols(v, shape, len(leaves))
        elif op.form == "matrix":
            mats = {arg: sp.Matrix(x if x.ndim == 2 else x.reshape(-1, 1)) for arg, x in a.items()}
            built = MATRIX_FORWARD[op.name](*[mats.get(arg) for arg in op.args]) if "b" not in mats else None
            if built is None:  # OneMatrix needs a concrete size: build X W^T + 1 b^T explicitly
                built = mats["x"] * mats["W"].T + sp.ones(batch, 1) * mats["b"].T
            values[v] = np.array(built.tolist(), dtype=object)
        elif op.form == "elementwise":
            f = scalar_function(op.name, data)
            values[v] = np.vectorize(lambda e: f.xreplace({X: e}), otypes=[object])(a["x"])
        elif op.form == "rowwise":
            base = sp.IndexedBase("row")
            K = a["x"].shape[1]
            out = np.empty_like(a["x"])
            for r in range(batch):
                for c in range(K):
                    out[r, c] = _concrete_row(ROW_FORWARD[op.name](_Row(base, 0), c, k, K), {base: a["x"][r]})
            values[v] = out
        elif op.form == "loss":
            y, t = a["y"], a["t"]
            builder = row_loss(data["function"])
            if builder is not None:
                yb, tb = sp.IndexedBase("y"), sp.IndexedBase("t")
                rows = [_concrete_row(builder(_Row(yb, 0), _Row(tb, 0), k, l, y.shape[1]), {yb: y[r], tb: t[r]})
                        for r in range(batch)]
                values[v] = sp.Add(*rows) / batch
            else:
                f = scalar_function(op.name, data)
                terms = [f.xreplace({Y: ye, T: te}) for ye, te in zip(y.ravel(), t.ravel())]
                values[v] = sp.Add(*terms) / y.size
            objective += values[v]
        elif op.form == "penalty":
            f = scalar_function(op.name, data)
            values[v] = sp.Add(*[f.xreplace({W: we}) for we in a["w"].ravel()])
            objective += values[v]
    return objective, leaves


@dataclass(frozen=True)
class SymbolicGradients:
    """The ground truth at one point: objective value and ``parameter -> gradient`` (float64)."""

    loss: float
    grads: dict[str, np.ndarray]


def random_values(g: nx.DiGraph, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float64 values for every leaf: inputs ~ N(0,1), parameters ~ N(0, 0.5²), targets
    shaped for the loss (one-hot rows for softmax cross-entropy, values in (0, 1) for bce)."""
    for what, value in (("batch", batch), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if what == "batch" else 0):
            raise ValueError(f"{what} must be an integer >= {1 if what == 'batch' else 0}, got {value!r}")
    info = validate(g)
    rng = np.random.default_rng(seed)
    out = {}
    loss_fn = g.nodes[info.loss].get("function")
    for v in info.order:
        op = g.nodes[v]["op"]
        if op not in ("input", "target", "parameter"):
            continue
        shape = ((batch,) if info.batched[v] else ()) + info.shapes[v]
        if op == "target" and loss_fn == "softmax_cross_entropy":
            out[v] = np.eye(shape[1])[rng.integers(0, shape[1], size=batch)]
        elif op == "target" and loss_fn in ("bce", "bce_logits"):
            out[v] = rng.uniform(0.05, 0.95, size=shape)
        else:
            out[v] = rng.normal(0.0, 0.5 if op == "parameter" else 1.0, size=shape)
    return out


def _numeric_functions():
    import mpmath

    return {"Heaviside": lambda x, h0=0: mpmath.mpf(1) if x > 0 else (mpmath.mpf(h0) if x == 0 else mpmath.mpf(0)),
            "sign": mpmath.sign, "Max": max, "Min": min, "Abs": abs}


def symbolic_gradients(g: nx.DiGraph, values: Mapping[str, np.ndarray], digits: int = 30) -> SymbolicGradients:
    """Differentiate the expanded objective with respect to every parameter element at ``values``.

    ``values`` maps every input, target and parameter node to an array (inputs and targets with
    the batch dimension first); :func:`random_values` makes some.
    """
    import mpmath

    info = validate(g)
    values = leaf_values(g, info, values)
    first_input = next(v for v in info.order if g.nodes[v]["op"] == "input")
    batch = int(values[first_input].shape[0])
    objective, leaves = symbolic_loss(g, batch)
    params = [v for v in info.order if g.nodes[v]["op"] == "parameter"]
    all_symbols = [s for v in leaves for s in leaves[v].ravel()]
    numbers = []
    for v in leaves:
        arr = np.asarray(values[v], dtype=np.float64)
        if arr.shape != leaves[v].shape:
            raise ValueError(f"value of {v!r} has shape {arr.shape}, expected {leaves[v].shape}")
        numbers.extend(arr.ravel().tolist())
    targets = [objective] + [apply_conventions(sp.diff(objective, s)) for p in params for s in leaves[p].ravel()]
    with mpmath.workdps(digits):
        fn = sp.lambdify(all_symbols, targets, modules=[_numeric_functions(), "mpmath"])
        results = fn(*[mpmath.mpf(x) for x in numbers])
        floats = [float(mpmath.re(x)) if isinstance(x, mpmath.mpc) else float(x) for x in results]
    grads, pos = {}, 1
    for p in params:
        size = leaves[p].size
        grads[p] = np.array(floats[pos:pos + size]).reshape(leaves[p].shape)
        pos += size
    return SymbolicGradients(floats[0], grads)
