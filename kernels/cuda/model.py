"""The CUDA backend: a :class:`~kernels.model.CompiledModel` whose kernels run on an NVIDIA GPU.

``kernels.compile(net, backend="cuda", dtype=...)`` returns a :class:`CudaModel`: the same API as
the CPU backends (``parameters`` on the host, ``loss_and_grads``, ``evaluate``, ``init``,
``init_state``, ``epoch_function``), so :func:`kernels.train`, :func:`kernels.verify` and the
command line work unchanged. The kernels are generated from the derived equations by
:mod:`kernels.cuda.codegen` and written through :mod:`kernels.cache` like the CPU ones.

Where the data live
-------------------
* ``loss_and_grads``/``evaluate``: inputs, targets and parameters are copied to the device,
  the gradients and the objective back (one call, one batch).
* ``epoch_function(optimizer)``'s ``run``: the parameters and the optimizer state are copied to
  the device once at the start of the epoch and back (into the same host arrays, in place) at
  its end; ``X``, ``T`` and ``order`` are copied once per epoch; every batch is gathered on the
  device (``order[b*batch_size:...]`` rows of ``X`` and ``T``) into a workspace allocated once
  for the largest batch. A step is a sequence of asynchronous launches: the host never waits
  for the device inside the epoch, except every :data:`CHECK_EVERY` batches.

Stopping at a non-finite objective, as on the CPU
-------------------------------------------------
The objective kernel of batch ``b`` writes the objective into a device array of losses and,
when it is not finite, sets a device flag ``stop[0] = b + 1``. The optimizer kernels (and the
gathers and objectives of later batches) do nothing once the flag is set, so the update of the
failing batch is not applied and the parameters stay the last good ones, with no host round
trip per batch. The optimizer kernel sets ``stop[0] = -(b + 1)`` when a thread reads a gradient
element or writes a parameter or state value that is not finite; that update is applied, but
only on the device: the host arrays still hold the parameters and state from the start of the
call, so ``run`` drops the device's copies and runs batches ``0..b-1`` again from them (the
kernels are deterministic: the same values), as the CPU backends do. The host reads the flag
every :data:`CHECK_EVERY` batches (one small copy, which also waits for the queued work) and
stops launching once it is set: at most that many batches of launches are wasted after a
divergence, instead of a synchronisation on every step. ``run`` returns ``(losses,
steps_done)``: the losses of the batches run (NaN after the failing one), and ``b`` when batch
``b`` failed, as the CPU epoch does.

No GPU
------
Without numba-cuda, or without a usable GPU (and not under Numba's CUDA simulator,
``NUMBA_ENABLE_CUDASIM=1``), :func:`compile_cuda` raises :class:`CudaUnavailable` (a
:class:`derive.errors.SymPropError`: the command line prints it as a one-line error, exit 2)
saying what is missing and how to check.

>>> model = kernels.compile(derive.mlp([2, 3, 1]), backend="cuda", dtype="float32")  # doctest: +SKIP
>>> loss, grads = model.loss_and_grads(X, T)                                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np

from symprop import derive
from symprop.derive.errors import SymPropError

from symprop.kernels import cache
from symprop.kernels.lower.signature import dtype_name, signature
from symprop.kernels.model import CompiledModel

__all__ = ["compile_cuda", "CudaModel", "CudaUnavailable", "require_cuda", "CHECK_EVERY"]

#: The host reads the device's stop flag every this many batches of an epoch.
CHECK_EVERY = 32

NO_PACKAGE = "backend 'cuda' needs numba-cuda: pip install -e '.[cuda]'"
NO_GPU = ("backend 'cuda' needs an NVIDIA GPU with a working driver: numba.cuda.is_available() is False "
          "(check with `nvidia-smi` and `python -c \"from numba import cuda; cuda.detect()\"`)")


class CudaUnavailable(SymPropError):
    """The CUDA backend cannot run here (no numba-cuda, or no usable GPU)."""


def require_cuda():
    """``numba.cuda``, after checking that numba-cuda is installed and that a GPU (or the
    simulator, ``NUMBA_ENABLE_CUDASIM=1``) is usable; else :class:`CudaUnavailable`."""
    if importlib.util.find_spec("numba_cuda") is None:
        raise CudaUnavailable(NO_PACKAGE)
    try:
        import numba
        from numba import cuda
    except ImportError as e:  # pragma: no cover - a broken installation
        raise CudaUnavailable(f"{NO_PACKAGE} (importing numba.cuda failed: {e})") from None
    if numba.config.ENABLE_CUDASIM:
        return cuda
    try:
        available = cuda.is_available()
    except Exception:  # pragma: no cover - driver errors surface here on some systems
        available = False
    if not available:
        raise CudaUnavailable(NO_GPU)
    return cuda


@contextlib.contextmanager
def _quiet():
    """Hide Numba's low-occupancy notices (tiny grids for small layers: intended)."""
    from numba.core.errors import NumbaPerformanceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        yield


class CudaModel(CompiledModel):
    """A network compiled to numba-cuda kernels (see the module docstring).

    Attributes as :class:`~kernels.model.CompiledModel`; :attr:`module` is the imported
    generated module (kernels, ``workspace``, ``gather``, ``forward_backward``) and
    :attr:`kernel` its ``forward_backward``. :attr:`parameters` stay NumPy arrays on the host.
    """

    def __init__(self, net, source: str, path: Path, module, bp, dtype: str, seed: int = 0):
        super().__init__(net, source, path, module.forward_backward, bp, signature(bp), dtype, "cuda", seed)
        self.module = module
        self._ws_rows = 0
        self._ws: dict = {}

    def _workspace(self, rows: int) -> dict:
        """Device arrays for batches of up to ``rows`` rows (kept for the next call; a copy of the dict)."""
        if rows > self._ws_rows:
            self._ws = self.module.workspace(rows)
            self._ws_rows = rows
        return dict(self._ws)

    def _loss_and_grads(self, arrays, params):
        cuda = require_cuda()
        sig, mod = self.signature, self.module
        X, T = arrays
        N = X.shape[0]
        ws = self._workspace(N)
        ws[mod.INPUTS[sig.inputs[0]]][:N].copy_to_device(X)
        ws[mod.TARGETS[sig.targets[0]]][:N].copy_to_device(T)
        for p, arr in zip(sig.parameters, params):
            ws[mod.PARAMETERS[p]] = cuda.to_device(arr)
        stop = cuda.to_device(np.zeros(1, dtype=np.int64))
        losses = cuda.to_device(np.full(1, np.nan))
        with _quiet():
            mod.forward_backward(N, 0, stop, losses, ws)
        grads = {p: ws[mod.GRADIENTS[p]].copy_to_host() for p in sig.parameters}
        return float(losses.copy_to_host()[0]), grads

    def _optimizer_module(self, optimizer):
        from symprop.kernels.cpu import epoch
        from symprop.kernels.cuda import codegen as cuda_codegen

        key = (epoch.optimizer_key(optimizer), "cuda")
        module = self._epoch_kernels.get(key)
        if module is None:
            sizes = [int(np.prod(self.shapes[p])) for p in self.signature.parameters]
            module = cache.load(cuda_codegen.generate_optimizer(optimizer, self.dtype.name, sizes))
            self._epoch_kernels[key] = module
        return module

    def epoch_function(self, optimizer):
        """``run(X, T, order, batch_size, state, step0) -> (losses, steps_done)``, as
        :meth:`kernels.model.CompiledModel.epoch_function`, on the device (see the module
        docstring). ``run.kernel`` is the optimizer's ``update`` kernel, ``run.hyper`` the float64
        hyperparameter vector (sorted names, ``run.hyper_names``)."""
        from symprop.kernels.cpu.epoch import hyper_names, hyper_vector

        opt = self._optimizer_module(optimizer)
        hyper = hyper_vector(optimizer)
        slots = tuple(optimizer.state)
        model, sig, mod = self, self.signature, self.module

        def run(X, T, order, batch_size, state, step0=0):
            cuda = require_cuda()
            X, T, order, batch_size, params, arrays = model._epoch_arrays(X, T, order, batch_size, state, slots)
            n_rows = order.size
            n_batches = -(-n_rows // batch_size)
            ws = model._workspace(min(batch_size, n_rows))
            dX, dT, dorder = cuda.to_device(X), cuda.to_device(T), cuda.to_device(order)
            dparams = [cuda.to_device(a) for a in params]
            dstate = [cuda.to_device(a) for a in arrays]
            for p, d in zip(sig.parameters, dparams):
                ws[mod.PARAMETERS[p]] = d
            k = len(slots)
            flat = []   # for every parameter: itself, its gradient, its state slots; flat views
            for q, p in enumerate(sig.parameters):
                flat += [d.reshape(d.size) for d in (dparams[q], ws[mod.GRADIENTS[p]], *dstate[q * k:(q + 1) * k])]
            blocks = mod._blocks(sum(opt.SIZES))
            stop = cuda.to_device(np.zeros(1, dtype=np.int64))
            losses = cuda.to_device(np.full(n_batches, np.nan))
            with _quiet():
                for b in range(n_batches):
                    start = b * batch_size
                    N = min(batch_size, n_rows - start)
                    mod.gather(N, start, dX, dT, dorder, stop, ws)
                    mod.forward_backward(N, b, stop, losses, ws)
                    scalars = opt.scalars(hyper, int(step0) + b + 1)
                    # configured at each launch: the simulator's kernel[grid, block] sets the
                    # configuration on the kernel object itself (a kept one would be shared)
                    opt.update[blocks, mod.TPB](*flat, *scalars, b, stop)
                    if (b + 1) % CHECK_EVERY == 0 and b + 1 < n_batches and stop.copy_to_host()[0]:
                        break
            flag = int(stop.copy_to_host()[0])
            host_losses = losses.copy_to_host()
            if flag >= 0:
                for d, a in zip(dparams + dstate, params + arrays):
                    d.copy_to_host(a)
                return host_losses, (flag - 1 if flag else n_batches)
            # the update of batch b read or wrote a non-finite value: the host arrays still hold
            # the state from before the call, so the device's is dropped and batches < b run again
            b = -flag - 1
            if b == 0:
                return host_losses, 0
            again, done = run(X, T, order[:b * batch_size], batch_size, state, step0)
            host_losses[:b] = again
            host_losses[done + 1:] = np.nan   # (done == b: the same steps, deterministic kernels)
            return host_losses, done

        run.kernel = opt.update
        run.hyper = hyper
        run.hyper_names = hyper_names(optimizer)
        return run


def compile_cuda(net, dtype="float64", seed: int = 0, backend: str = "cuda") -> CudaModel:
    """:func:`kernels.compile` for ``backend="cuda"``: generate (:mod:`kernels.cuda.codegen`),
    cache, import and wrap the CUDA kernels of ``net``; :class:`CudaUnavailable` without numba-cuda
    or a GPU. Numba compiles each kernel on its first launch."""
    require_cuda()
    from symprop.kernels.cuda.codegen import generate_cuda

    name = dtype_name(dtype)
    bp = derive.backprop(net)
    source = generate_cuda(bp, name)
    module = cache.load(source)
    return CudaModel(net, source, Path(module.__file__), module, bp, name, seed)
