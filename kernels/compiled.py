"""Compiled models: the generated Numba kernel of a network, with its parameters.

>>> import derive
>>> model = compile(derive.mlp([2, 3, 1], activation="tanh"))          # doctest: +SKIP
>>> loss, grads = model.loss_and_grads(X, T)                           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

import derive

from . import cache
from .codegen import FUNCTION_NAME, Signature, _dtype_name, generate, signature

__all__ = ["compile", "CompiledModel", "BACKENDS"]

#: Accepted backends. ``"parallel"`` currently runs the same serial kernel as ``"cpu"``.
BACKENDS = ("cpu", "parallel")


def _glorot(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    fan_out = shape[0]
    fan_in = int(np.prod(shape[1:]))
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


class CompiledModel:
    """A network compiled to one Numba function.

    Attributes
    ----------
    net, backprop:
        The network and its derivation (:func:`derive.backprop`).
    dtype:
        ``numpy.float64`` or ``numpy.float32``: parameters, inputs and gradients are of this type.
    source, path:
        The generated module's text and its file in the cache (:mod:`kernels.cache`).
    kernel:
        The ``@numba.njit`` function ``loss_and_grads(inputs..., targets..., parameters..., gradients...)``.
    parameters:
        ``name -> ndarray``, initialised by :meth:`init` (Glorot-uniform weights, zero biases).
    """

    def __init__(self, net, source: str, path: Path, kernel, bp, sig: Signature, dtype: str, backend: str,
                 seed: int = 0):
        self.net = net
        self.backprop = bp
        self.signature = sig
        self.source = source
        self.path = path
        self.kernel = kernel
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.shapes = {v: tuple(bp.info.shapes[v]) for v in bp.info.order}
        self.parameters: dict[str, np.ndarray] = {}
        self.init(seed)

    def __repr__(self) -> str:
        return (f"CompiledModel({self.net.graph.get('name', 'network')!r}, dtype={self.dtype.name}, "
                f"backend={self.backend!r}, parameters={list(self.parameters)})")

    def init(self, seed: int = 0) -> dict[str, np.ndarray]:
        """(Re)initialise the parameters deterministically from ``seed``: Glorot-uniform for
        matrices (fan_out = rows, fan_in = columns), zeros for vectors (biases) and for parameters
        whose ``init`` attribute is ``"zeros"``."""
        rng = np.random.default_rng(seed)
        params = {}
        for p in self.signature.parameters:
            shape = self.shapes[p]
            init = self.net.nodes[p].get("init", "auto")
            if len(shape) >= 2 and init != "zeros":
                value = _glorot(shape, rng)
            else:
                value = np.zeros(shape)
            params[p] = np.ascontiguousarray(value, dtype=self.dtype)
        self.parameters = params
        return params

    # --- argument checks ---------------------------------------------------------------------------

    def _batch_array(self, what: str, node: str, value) -> np.ndarray:
        arr = np.asarray(value)
        expected = self.shapes[node]
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{what} {node!r} must be a real numeric array, got dtype {arr.dtype}")
        if arr.ndim != 1 + len(expected) or tuple(arr.shape[1:]) != expected:
            want = "(batch, " + ", ".join(map(str, expected)) + ")"
            raise ValueError(f"{what} {node!r} must have shape {want}, got {tuple(arr.shape)}")
        if arr.shape[0] == 0:
            raise ValueError(f"{what} {node!r} is empty: the batch needs at least one row")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _parameter(self, name: str, params: Mapping[str, np.ndarray]) -> np.ndarray:
        if name not in params:
            raise ValueError(f"missing parameter {name!r} (expected: {', '.join(self.signature.parameters)})")
        arr = np.asarray(params[name])
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"parameter {name!r} must be a real numeric array, got dtype {arr.dtype}")
        if tuple(arr.shape) != self.shapes[name]:
            raise ValueError(f"parameter {name!r} must have shape {self.shapes[name]}, got {tuple(arr.shape)}")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    # --- evaluation --------------------------------------------------------------------------------

    def loss_and_grads(self, X, T, parameters: Mapping[str, np.ndarray] | None = None
                       ) -> tuple[float, dict[str, np.ndarray]]:
        """The objective (loss plus penalties) and ``parameter -> gradient`` at a batch.

        ``X`` and ``T`` are the batch of inputs and targets (rows are examples) for a network
        with one input and one target; they are cast to the model's dtype. ``parameters``
        defaults to :attr:`parameters`.
        """
        sig = self.signature
        if len(sig.inputs) != 1 or len(sig.targets) != 1:
            raise ValueError(f"loss_and_grads(X, T) needs a network with one input and one target; this one has "
                             f"inputs {list(sig.inputs)} and targets {list(sig.targets)}: use evaluate()")
        return self.evaluate({sig.inputs[0]: X, sig.targets[0]: T}, parameters)

    def evaluate(self, data: Mapping[str, np.ndarray], parameters: Mapping[str, np.ndarray] | None = None
                 ) -> tuple[float, dict[str, np.ndarray]]:
        """Like :meth:`loss_and_grads`, with every input and target given by node name."""
        sig = self.signature
        arrays = []
        batch = None
        for what, nodes in (("input", sig.inputs), ("target", sig.targets)):
            for v in nodes:
                if v not in data:
                    raise ValueError(f"missing {what} {v!r}")
                arr = self._batch_array(what, v, data[v])
                if batch is None:
                    batch = arr.shape[0]
                elif arr.shape[0] != batch:
                    raise ValueError(f"{what} {v!r} has {arr.shape[0]} rows but the batch has {batch}")
                arrays.append(arr)
        params = self.parameters if parameters is None else parameters
        arrays += [self._parameter(p, params) for p in sig.parameters]
        grads = {p: np.empty(self.shapes[p], dtype=self.dtype) for p in sig.parameters}
        loss = self.kernel(*arrays, *grads.values())
        return float(loss), grads


def compile(net, backend: str = "cpu", dtype="float64", seed: int = 0) -> CompiledModel:
    """Generate, cache, import and wrap the Numba kernel of ``net`` (see :mod:`kernels.codegen`).

    ``backend`` is ``"cpu"`` or ``"parallel"``; for now ``"parallel"`` is accepted and runs the
    same serial code as ``"cpu"``. ``dtype`` is ``"float64"`` or ``"float32"``. Numba compiles
    on the first call of the kernel, and caches the machine code next to the generated file.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    name = _dtype_name(dtype)
    bp = derive.backprop(net)
    source = generate(bp, name)
    module = cache.load(source)
    return CompiledModel(net, source, Path(module.__file__), getattr(module, FUNCTION_NAME), bp, signature(bp),
                         name, backend, seed)
