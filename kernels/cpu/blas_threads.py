"""One BLAS thread per caller while the data-parallel epoch runs.

The ``parallel`` backend's chunked epoch (:mod:`kernels.cpu.epoch`) calls BLAS from every Numba
thread at once, one chunk of the batch's rows each. OpenBLAS's own threads would then multiply
the threads on the cores (and spin between calls), so the BLAS libraries of this process are
limited to one thread for the call and restored after it, through :mod:`threadpoolctl` (a
ctypes call into each library, about 8 µs a call measured here).

>>> with single_threaded() as limited:
...     pass
>>> limited in (True, False)
True
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

__all__ = ["single_threaded", "controllable"]

@functools.cache
def _blas():
    """threadpoolctl's controller of this process's BLAS libraries (made once), or None."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that Numba's np.dot calls)
        from threadpoolctl import ThreadpoolController

        blas = ThreadpoolController().select(user_api="blas")
    except Exception:  # pragma: no cover - threadpoolctl missing or failing on an odd BLAS
        return None
    return blas if blas.lib_controllers else None


def controllable() -> bool:
    """Whether this process's BLAS threads can be limited (else the chunked epoch is not used)."""
    return _blas() is not None


@contextmanager
def single_threaded():
    """Limit every BLAS library to one thread inside the block; yields whether it could."""
    blas = _blas()
    if blas is None:
        yield False
        return
    with blas.limit(limits=1):
        yield True
