"""Compiled models: the generated Numba kernel of a network, with its parameters.

>>> from symprop import derive
>>> model = compile(derive.mlp([2, 3, 1], activation="tanh"))          # doctest: +SKIP
>>> loss, grads = model.loss_and_grads(X, T)                           # doctest: +SKIP
>>> opt = kernels.training.optim.Adam(lr=1e-3)                                   # doctest: +SKIP
>>> run = model.epoch_function(opt)                                    # doctest: +SKIP
>>> state = model.init_state(opt)                                      # doctest: +SKIP
>>> losses, steps = run(X, T, np.random.default_rng(0).permutation(len(X)), 32, state, 0)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import functools
from contextlib import nullcontext
from pathlib import Path
from typing import Mapping

import numpy as np

from symprop import derive
from symprop.kernels import cache
from symprop.kernels.cpu import blas_threads, epoch_keys
from symprop.kernels.lower.outline import FunctionPointer
from symprop.kernels.lower.signature import FUNCTION_NAME, Signature, graph_signature

__all__ = ["CompiledModel", "compile_cpu"]



def _glorot(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    fan_out = shape[0]
    fan_in = int(np.prod(shape[1:]))
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


class CompiledModel:
    """A network compiled to one Numba function.

    Attributes
    ----------
    net, info:
        The network as it was compiled (a copy: editing the graph given to :func:`compile`
        afterwards changes nothing here) and its :class:`derive.GraphInfo`.
    backprop:
        Its derivation (:func:`derive.backprop`), made on first use when :func:`compile` found the
        generated code by the network's fingerprint (a warm process needs no derivation to train).
    warnings:
        The derivation's plain-language warnings (``Backprop.warnings``), kept with the code.
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
                 seed: int = 0, *, info: derive.GraphInfo | None = None, warnings: list[str] | None = None):
        # the network as compiled: a later edit of the caller's graph must not reach the lazy
        # derivation or the cache names of the epoch functions (tanh code was filed as relu's)
        self.net = copy.deepcopy(net)
        self._backprop = bp
        self.info = bp.info if bp is not None else info if info is not None else derive.validate(net)
        self.warnings = list(bp.warnings if bp is not None else warnings or [])
        self.signature = sig
        self.source = source
        self.path = path
        self.kernel = kernel
        self.dtype = np.dtype(dtype)
        self.backend = backend
        self.shapes = {v: tuple(self.info.shapes[v]) for v in self.info.order}
        self.parameters: dict[str, np.ndarray] = {}
        self._epoch_kernels: dict[tuple, object] = {}
        self.init(seed)

    @property
    def backprop(self) -> derive.Backprop:
        """The network's derivation, derived on first use if :func:`compile` did not need it."""
        if self._backprop is None:
            self._backprop = derive.backprop(self.net)
        return self._backprop

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.net.graph.get('name', 'network')!r}, dtype={self.dtype.name}, "
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
        with np.errstate(over="ignore"):   # an overflow to inf is reported by _finite, naming the value
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
        arrays, params = self._evaluate_arrays(data, parameters)
        return self._loss_and_grads(arrays, params)

    def _evaluate_arrays(self, data: Mapping[str, np.ndarray], parameters: Mapping[str, np.ndarray] | None
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The checked inputs and targets (signature order, the model's dtype) and parameters."""
        sig = self.signature
        arrays = []
        batch = None
        for what, nodes in (("input", sig.inputs), ("target", sig.targets)):
            for v in nodes:
                if v not in data:
                    raise ValueError(f"missing {what} {v!r}")
                arr = self._finite(what, v, data[v], self._batch_array(what, v, data[v]))
                if batch is None:
                    batch = arr.shape[0]
                elif arr.shape[0] != batch:
                    raise ValueError(f"{what} {v!r} has {arr.shape[0]} rows but the batch has {batch}")
                arrays.append(arr)
        params = self.parameters if parameters is None else parameters
        return arrays, [self._finite("parameter", p, params.get(p), self._parameter(p, params)) for p in sig.parameters]

    def _finite(self, what: str, node: str, given, arr: np.ndarray) -> np.ndarray:
        """``arr`` (``given`` cast to the model's dtype) if every element is finite, else a
        ValueError naming the node, the first bad element and whether the cast overflowed."""
        bad = ~np.isfinite(arr)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            original = np.asarray(given)[index]
            why = "overflows " + self.dtype.name if np.isfinite(original) else "is not finite"
            raise ValueError(f"{what} {node!r} at index {list(index)}: {float(original)} {why}")
        return arr

    def _loss_and_grads(self, arrays: list[np.ndarray], params: list[np.ndarray]
                        ) -> tuple[float, dict[str, np.ndarray]]:
        """Run the kernel on checked arrays (see :meth:`_evaluate_arrays`)."""
        grads = {p: np.empty(self.shapes[p], dtype=self.dtype) for p in self.signature.parameters}
        loss = self.kernel(*arrays, *params, *grads.values())
        return float(loss), grads

    # --- training ----------------------------------------------------------------------------------

    def init_state(self, optimizer) -> dict[str, dict[str, np.ndarray]]:
        """Fresh optimizer state: ``parameter -> slot -> zeros`` shaped like the parameter."""
        return {p: {s: np.zeros(self.shapes[p], dtype=self.dtype) for s in optimizer.state}
                for p in self.signature.parameters}

    def epoch_kernel(self, optimizer, backend: str | None = None):
        """The compiled ``train_epoch`` (:mod:`kernels.cpu.epoch`) for ``optimizer``'s structure.

        Cached per :func:`kernels.cpu.epoch_keys.optimizer_key` (class, equations' structure) and backend,
        never per hyperparameter value: optimizers differing only in ``lr`` share one function
        object. ``backend`` defaults to the model's."""
        backend = backend or self.backend
        # the generated source depends on the threshold of the parallel backend's prange branches
        key = (epoch_keys.optimizer_key(optimizer), backend,
               epoch_keys.PARALLEL_MIN if backend == "parallel" else None)
        fn = self._epoch_kernels.get(key)
        if fn is None:
            def make():
                from symprop.kernels.cpu.epoch import generate_epoch

                return generate_epoch(self.backprop, optimizer, self.dtype.name, backend), {}

            source, _ = cache.remembered(cache.generated_name(self.net, "train_epoch", repr(key), self.dtype.name), make)
            module = cache.load(source)
            fn = getattr(module, epoch_keys.EPOCH_FUNCTION_NAME)
            fn.chunked = bool(getattr(module, "CHUNKED", False))   # the data-parallel form
            # its prange bodies, passed as its last arguments (compiled once, not linked into it)
            fn.pointers = tuple(FunctionPointer(getattr(module, f)) for f in getattr(module, "FUNCTION_ARGUMENTS", ()))
            if backend == "parallel":
                _prefer_threading_layer(fn.chunked)
            self._epoch_kernels[key] = fn
        return fn

    def _epoch_choice(self, parallel, serial, batch_size: int):
        """The epoch function for batches of ``batch_size`` rows: the ``parallel`` backend's
        data-parallel form from :data:`kernels.cpu.epoch_keys.CHUNK_MIN` of work (rows times the trained
        parameters plus the widest layer; with more than one Numba thread and BLAS threads under
        control), its ``prange`` form (a network that cannot be chunked) from
        :data:`kernels.cpu.epoch_keys.PARALLEL_MIN` elements (rows times the widest layer), else the
        serial function. ``parallel()`` returns the parallel function (made on first need)."""
        if self.backend != "parallel":
            return serial
        width = self._row_width()
        elements = batch_size * width
        work = batch_size * (self._parameter_count() + width)
        if elements < epoch_keys.PARALLEL_MIN and work < epoch_keys.CHUNK_MIN:
            return serial
        import numba

        par = parallel()
        if par.chunked:
            usable = work >= epoch_keys.CHUNK_MIN and numba.get_num_threads() > 1 and blas_threads.controllable()
        else:
            usable = elements >= epoch_keys.PARALLEL_MIN
        return par if usable else serial

    def _row_width(self) -> int:
        """The most elements one example occupies in any batched array (the widest layer)."""
        info = self.info
        return max([int(np.prod(info.shapes[v])) for v in info.order if info.batched[v]] or [1])

    def _parameter_count(self) -> int:
        """How many numbers are trained: the sizes of all parameters."""
        return sum(int(np.prod(self.shapes[p])) for p in self.signature.parameters)

    def _epoch_arrays(self, X, T, order, batch_size, state, slots: tuple[str, ...]):
        """Checked arguments of an epoch function's ``run``: ``(X, T, order, batch_size, parameters,
        state arrays)``, the parameters (:attr:`parameters`, made C-contiguous in the model's dtype
        in place if needed) in signature order, the state slots per parameter in ``slots`` order."""
        sig = self.signature
        X = self._batch_array("input", sig.inputs[0], X)
        T = self._batch_array("target", sig.targets[0], T)
        if T.shape[0] != X.shape[0]:
            raise ValueError(f"target {sig.targets[0]!r} has {T.shape[0]} rows but the input has {X.shape[0]}")
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.ndim != 1 or order.size == 0:
            raise ValueError("order must be a non-empty 1-D array of row indices")
        if order.min() < 0 or order.max() >= X.shape[0]:
            raise ValueError(f"order has row indices outside [0, {X.shape[0]})")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        params = []
        for p in sig.parameters:
            arr = self.parameters[p]
            if arr.dtype != self.dtype or not arr.flags.c_contiguous or arr.shape != self.shapes[p]:
                arr = self.parameters[p] = self._parameter(p, self.parameters).copy()
            params.append(arr)
        arrays = []
        for p in sig.parameters:
            for s in slots:
                try:
                    arr = state[p][s]
                except KeyError:
                    raise ValueError(f"state has no slot {s!r} for parameter {p!r}: use model.init_state(optimizer)") from None
                if (not isinstance(arr, np.ndarray) or arr.dtype != self.dtype or not arr.flags.c_contiguous
                        or arr.shape != self.shapes[p] or not arr.flags.writeable):
                    raise ValueError(f"state[{p!r}][{s!r}] must be a writeable C-contiguous {self.dtype.name} "
                                     f"array of shape {self.shapes[p]}")
                arrays.append(arr)
        return X, T, order, batch_size, params, arrays

    def epoch_function(self, optimizer):
        """``run(X, T, order, batch_size, state, step0) -> (losses, steps_done)``: one epoch of
        mini-batch training with ``optimizer``, in one compiled call.

        Batch ``b`` is the rows ``order[b*batch_size:(b+1)*batch_size]`` of ``X`` and ``T`` (the
        last may be smaller). :attr:`parameters` and ``state`` (from :meth:`init_state`) are
        updated in place; ``step0`` is the number of steps taken before (the optimizer's ``t`` is
        ``step0 + b + 1``). ``losses`` has one float64 entry per batch (NaN for batches not run);
        ``steps_done`` is the number of updates applied. It is fewer than the batches when batch
        ``b = steps_done`` failed: its objective is not finite (``losses[b]`` is NaN or ±inf), or
        its update read a gradient or wrote a parameter or optimizer-state value that is not
        finite (``losses[b]`` is its finite objective). Either way the epoch stops and the
        parameters and state are exactly those after the last good step: a failed update is
        undone by restoring the copy of the parameters and state made at the start of the call
        and running the ``b`` good batches again (the kernels are deterministic, so this repeats
        the same values; it costs one copy per call and, after a failure, the time of those
        batches). ``run.kernel`` is the serial Numba function, ``run.hyper`` the float64
        hyperparameter vector (sorted names, ``run.hyper_names``).

        Backend ``"parallel"``: from :data:`kernels.cpu.epoch_keys.CHUNK_MIN` of work (``batch_size``
        times the trained parameters plus the widest layer) the data-parallel function runs,
        with BLAS limited to one thread for the call (or, for a network it cannot take, the
        ``prange`` function from :data:`kernels.cpu.epoch_keys.PARALLEL_MIN` elements); smaller batches
        run the serial function, which was faster there on 2 cores (see :meth:`_epoch_choice`).
        """
        import numba

        from symprop.kernels.cpu.epoch_keys import hyper_names, hyper_vector

        kernel = self.epoch_kernel(optimizer, "cpu")
        hyper = hyper_vector(optimizer)
        sig = self.signature
        if len(sig.inputs) != 1 or len(sig.targets) != 1:  # pragma: no cover - generate_epoch raises first
            raise ValueError("epoch_function needs a network with one input and one target")
        slots = tuple(optimizer.state)
        model = self
        # looked up once: the lookup builds the optimizer's SymPy key (milliseconds a call)
        parallel = functools.cache(lambda: model.epoch_kernel(optimizer, "parallel"))

        def run(X, T, order, batch_size, state, step0=0):
            X, T, order, batch_size, params, arrays = model._epoch_arrays(X, T, order, batch_size, state, slots)
            n_batches = -(-order.size // batch_size)
            losses = np.full(n_batches, np.nan)
            fn = model._epoch_choice(parallel, kernel, batch_size)
            kept = [a.copy() for a in (*params, *arrays)]   # to undo an update found bad after it was applied
            with blas_threads.single_threaded() if fn.chunked else nullcontext():
                extra = (numba.get_num_threads(), *fn.pointers) if fn.chunked else ()

                def batches(rows):
                    return int(fn(X, T, rows, batch_size, *params, *arrays, hyper, int(step0), losses, *extra))

                done = batches(order)
                while done < 0:   # the update of batch b read or wrote a non-finite value: applied, so undone
                    b = -done - 1
                    for a, k in zip((*params, *arrays), kept):
                        np.copyto(a, k)
                    done = batches(order[:b * batch_size]) if b else 0   # the b good steps again
                    losses[done + 1:] = np.nan   # (the same steps: done == b, unless a kernel were not deterministic)
            return losses, done

        run.kernel = kernel
        run.hyper = hyper
        run.hyper_names = hyper_names(optimizer)
        return run


_LAYER_CHOSEN = False   # set by the first parallel epoch function made in this process


def _prefer_threading_layer(chunked: bool) -> None:
    """Numba's threading layer for ``parallel=True`` code, chosen once per process (by the first
    parallel epoch function made) unless the user chose one (``NUMBA_THREADING_LAYER``).

    The data-parallel form (``chunked``) prefers OpenMP: it runs with BLAS limited to one thread,
    so nothing fights OpenMP's briefly spinning threads, and its parallel regions are far cheaper
    than ``workqueue``'s (bench/RESULTS.md). The ``prange`` form keeps ``workqueue``: there the
    OpenMP layer's spinning threads fight OpenBLAS's (see :mod:`kernels.cpu.epoch`). Numba loads the
    layer at the first parallel call, so only the first choice in a process counts.
    """
    import os

    import numba

    global _LAYER_CHOSEN
    if _LAYER_CHOSEN or os.environ.get("NUMBA_THREADING_LAYER") or numba.config.THREADING_LAYER != "default":
        return
    _LAYER_CHOSEN = True
    if chunked:   # the first layer of this order that loads (OpenMP needs libgomp)
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
    else:
        numba.config.THREADING_LAYER = "workqueue"


def compile_cpu(net, dtype: str, seed: int = 0, backend: str = "cpu") -> CompiledModel:
    """The CPU backends' model of ``net`` (``backend`` ``"cpu"`` or ``"parallel"``; called through
    :func:`symprop.kernels.backends.compile`): generate, cache, import and wrap its Numba kernel
    (see :mod:`kernels.cpu.loss`).

    ``loss_and_grads`` is serial for both; the epoch functions of
    :meth:`CompiledModel.epoch_function` differ (see :mod:`kernels.cpu.epoch`). Numba compiles on
    the first call of the kernel, and caches the machine code next to the generated file. A
    network compiled before (same :func:`derive.fingerprint`, same ``kernels`` source) is not
    derived again: its module is found through :func:`kernels.cache.recall`, and
    :attr:`CompiledModel.backprop` is derived on first use.
    """
    name = dtype
    info = derive.validate(net)
    bp = None   # derived only when the index has no sound entry for this network

    def derive_and_generate():
        from symprop.kernels.cpu.loss import generate

        nonlocal bp
        bp = derive.backprop(net)
        return generate(bp, name), {"warnings": list(bp.warnings)}

    source, meta = cache.remembered(cache.generated_name(net, "loss_and_grads", name), derive_and_generate,
                               valid=lambda meta: isinstance(meta.get("warnings"), list)
                               and all(isinstance(w, str) for w in meta["warnings"]))
    module = cache.load(source)
    return CompiledModel(net, source, Path(module.__file__), getattr(module, FUNCTION_NAME),
                         bp, graph_signature(net, info), name, backend, seed,
                         info=info, warnings=meta.get("warnings"))
