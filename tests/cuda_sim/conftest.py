"""The CUDA backend's tests, run under Numba's CUDA simulator by ``tests/test_cuda.py``.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before Numba is imported, and
the main pytest process has imported Numba already (the CPU backend), so ``tests/test_cuda.py``
runs this folder in a second pytest process with the variable set. Without it, nothing here is
collected (not as tests, not for doctests).

The simulator does not type kernels as the CUDA compiler does. So this run also records the
argument types of every kernel launch (when ``SYMPROP_CUDA_SIGNATURES`` names a file: kernel
file, name, argument types, as JSON), and ``tests/test_cuda.py`` compiles each recorded kernel
for a real GPU (``numba.cuda.compile_ptx``, no GPU needed) with exactly those types.
"""

import json
import os

import numpy as np

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["*.py"]

_SIGNATURES: dict = {}


def _describe(value) -> list:
    if hasattr(value, "_ary"):            # the simulator's device array
        value = value._ary
    if isinstance(value, np.ndarray):
        return ["array", value.dtype.name, value.ndim, "C" if value.flags.c_contiguous else "A"]
    if isinstance(value, (bool, np.bool_)):
        return ["boolean"]
    if isinstance(value, (int, np.integer)):
        return ["int64"]
    if isinstance(value, (float, np.floating)):
        return [np.dtype(type(value)).name]
    raise TypeError(f"kernel argument of type {type(value).__name__}")


def pytest_configure(config):
    path = os.environ.get("SYMPROP_CUDA_SIGNATURES")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" or not path:
        return
    import sys

    from numba.cuda.simulator.kernel import FakeCUDAKernel

    from symprop.kernels.cache import MODULE_PREFIX

    launch = FakeCUDAKernel.__call__

    def recording(self, *args):
        if not self._device:
            where = getattr(sys.modules.get(self.fn.__module__), "__file__", None)
            if self.fn.__module__.startswith(MODULE_PREFIX) and where:   # generated kernels only
                key = json.dumps([where, self.fn.__name__, [_describe(a) for a in args]])
                _SIGNATURES[key] = True
        return launch(self, *args)

    FakeCUDAKernel.__call__ = recording


def pytest_unconfigure(config):
    path = os.environ.get("SYMPROP_CUDA_SIGNATURES")
    if path and _SIGNATURES:
        with open(path, "w", encoding="utf-8") as f:
            json.dump([json.loads(k) for k in _SIGNATURES], f)
