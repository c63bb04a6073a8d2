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
from dataclasses import dataclass, field
from typing import Mapping

import networkx as nx
import numpy as np
import sympy as sp

from .axes import feature_axis
from .evaluation import leaf_values
from .forms import Node
from .graph import GraphInfo, validate
from .ops import get_op
from .scalar import apply_conventions

__all__ = ["symbolic_loss", "symbolic_gradients", "SymbolicGradients", "random_values", "Expansion"]


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


@dataclass
class Expansion:
    """The state of one expansion over concrete sizes: what each op form's
    :meth:`~derive.forms.base.Form.expand` reads and adds to.

    ``values`` maps each node expanded so far to its value (an object array of expressions with
    the batch axis first where batched, or one expression); ``leaves`` the leaves' symbols.
    """

    batch: int
    info: GraphInfo
    values: dict = field(default_factory=dict)
    leaves: dict = field(default_factory=dict)

    def leaf(self, v: str, shape: tuple[int, ...]) -> np.ndarray:
        """New element symbols for leaf ``v`` (see :func:`_element_symbols`)."""
        self.leaves[v] = _element_symbols(v, shape, len(self.leaves))
        return self.leaves[v]

    def aligned(self, v: str, rank: int) -> np.ndarray:
        """The value of ``v`` shaped to broadcast, as NumPy does, against a batch of ``rank``
        feature axes: size-1 axes after the batch axis where its feature shape is shorter (a
        parameter lines up from the right by itself)."""
        value = self.values[v]
        if not self.info.batched[v]:
            return value
        missing = rank - (value.ndim - 1)
        return value.reshape((value.shape[0],) + (1,) * missing + value.shape[1:])


def symbolic_loss(g: nx.DiGraph, batch: int, info: GraphInfo | None = None) -> tuple[sp.Expr, dict[str, np.ndarray]]:
    """The objective (loss plus penalties) as one expression, and each leaf's element symbols.

    Each node's value is its op form's expansion (:meth:`~derive.forms.base.Form.expand`) of
    the forward definition over ``batch`` rows. ``info``: the graph's validation, if done already.
    """
    info = validate(g) if info is None else info
    ground = Expansion(batch, info)
    for v in info.order:
        op = get_op(g.nodes[v]["op"])
        ground.values[v] = op.form.expand(Node(v, op, g.nodes[v], info), ground)
    objective = ground.values[info.loss] + sp.Add(*[ground.values[p] for p in info.penalties])
    return objective, ground.leaves


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
    loss = g.nodes[info.loss]
    loss_fn = loss.get("function")
    leaves = set(info.inputs) | set(info.targets) | set(info.parameters)
    for v in info.order:
        if v not in leaves:
            continue
        shape = ((batch,) if info.batched[v] else ()) + info.shapes[v]
        if v in info.targets and loss_fn == "softmax_cross_entropy":
            axis = 1 + feature_axis(-1 if loss.get("axis") is None else loss["axis"], info.shapes[v])
            classes = shape[axis]
            rest = shape[:axis] + shape[axis + 1:]
            out[v] = np.moveaxis(np.eye(classes)[rng.integers(0, classes, size=rest)], -1, axis)
        elif v in info.targets and loss_fn in ("bce", "bce_logits"):
            out[v] = rng.uniform(0.05, 0.95, size=shape)
        else:
            out[v] = rng.normal(0.0, 0.5 if v in info.parameters else 1.0, size=shape)
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
    batch = int(values[info.inputs[0]].shape[0])
    objective, leaves = symbolic_loss(g, batch, info)
    params = info.parameters
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
