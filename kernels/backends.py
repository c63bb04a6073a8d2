"""The backend table that :func:`compile` looks a backend up in: a new backend is one entry.

Each entry names the function that compiles a network for it, as ``module:function`` (a module
starting with ``.`` is under ``symprop.kernels``; imported on first use, so the CUDA toolchain
loads only for ``"cuda"``), with what the backend is. The function takes ``(net, dtype, seed, backend)`` and returns a
:class:`~symprop.kernels.model.CompiledModel` (or a subclass with the same API).

>>> sorted(BACKENDS)
['cpu', 'cuda', 'parallel']
>>> BACKENDS["parallel"].parallel, BACKENDS["cuda"].maker
(True, '.cuda.model:compile_cuda')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from symprop.kernels.lower.signature import dtype_name

__all__ = ["Backend", "BACKENDS", "compile"]


@dataclass(frozen=True)
class Backend:
    """A backend: its name, the ``module:function`` that compiles a network for it (``.model``
    is ``symprop.kernels.model``), whether its training epoch runs on several cores, and one line
    for users."""

    name: str
    maker: str
    parallel: bool
    description: str

    def compile(self, net, dtype: str, seed: int):
        module, function = self.maker.split(":")
        make = getattr(importlib.import_module(module, "symprop.kernels"), function)
        return make(net, dtype, seed, self.name)


#: name -> :class:`Backend`. ``loss_and_grads`` is the same serial kernel for ``"cpu"`` and
#: ``"parallel"``; the training epoch (:meth:`CompiledModel.epoch_function`) is compiled with
#: ``parallel=True`` for ``"parallel"`` (see :mod:`symprop.kernels.cpu.epoch` for where it uses
#: ``prange`` and why). ``"cuda"``: the same equations as numba-cuda kernels on an NVIDIA GPU
#: (:class:`symprop.kernels.cuda.model.CudaModel`; a clear error without one).
BACKENDS: dict[str, Backend] = {b.name: b for b in [
    Backend("cpu", ".model:compile_cpu", False, "Numba on one core"),
    Backend("parallel", ".model:compile_cpu", True, "Numba, the training epoch on every core"),
    Backend("cuda", ".cuda.model:compile_cuda", False, "numba-cuda kernels on an NVIDIA GPU"),
]}


def compile(net, backend: str = "cpu", dtype="float64", seed: int = 0):
    """Generate, cache, import and wrap the compiled kernels of ``net`` for ``backend`` (a name in
    :data:`BACKENDS`); ``dtype`` is ``"float64"`` or ``"float32"``, ``seed`` seeds the initial
    parameters. Numba compiles on the first call of a kernel and caches the machine code next to
    the generated file (:mod:`symprop.kernels.cache`); a network compiled before is not derived
    again.

    >>> from symprop import derive
    >>> compile(derive.mlp([2, 3, 1]), backend="tpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown backend 'tpu' (available: cpu, parallel, cuda)
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (available: {', '.join(BACKENDS)})")
    return BACKENDS[backend].compile(net, dtype_name(dtype), seed)
