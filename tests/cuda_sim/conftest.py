"""The CUDA backend's tests, run under Numba's CUDA simulator by ``tests/test_cuda.py``.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before Numba is imported, and
the main pytest process has imported Numba already (the CPU backend), so ``tests/test_cuda.py``
runs this folder in a second pytest process with the variable set. Without it, nothing here is
collected (not as tests, not for doctests).
"""

import os

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
    collect_ignore_glob = ["*.py"]
