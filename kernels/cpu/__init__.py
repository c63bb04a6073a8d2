"""The CPU backend (``"cpu"`` and ``"parallel"``): Numba ``@njit`` modules.

* :mod:`.loss`: ``loss_and_grads``, one batch's objective and gradients;
* :mod:`.epoch`: ``train_epoch``, a whole epoch of fused steps (serial, ``prange`` or data-parallel);
* :mod:`.epoch_keys`: what a cached epoch function is found by, without SymPy;
* :mod:`.vecmath`: vectorisable ``exp``/``tanh``; :mod:`.blas_threads`: BLAS thread control.
"""
