"""What choosing, finding and calling a generated epoch function needs without generating one
(and without SymPy): the backend thresholds, the optimizer's cache key and its hyperparameter
vector. :mod:`kernels.epoch` generates the functions; :mod:`kernels.compiled` uses this module
on every call, and a warm process (its code found in the cache) needs nothing more.

>>> from symprop.kernels.optim import Adam
>>> hyper_names(Adam(lr=1e-3))
('beta1', 'beta2', 'eps', 'l1', 'l2', 'lr')
>>> float(hyper_vector(Adam(lr=1e-3))[-1])
0.001
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["EPOCH_FUNCTION_NAME", "PARALLEL_MIN", "CHUNK_MIN", "SPLIT_MIN_WEIGHTS", "SPLIT_ROWS_PER_FEATURE",
           "hyper_names", "hyper_vector", "optimizer_key"]

EPOCH_FUNCTION_NAME = "train_epoch"
_BUILT_IN = "symprop.kernels.optim"

#: Elements (rows of a batch times the widest layer) from which the "parallel" backend runs the
#: ``parallel=True`` epoch function, and from which its elementwise loops take ``prange``.
#: Measured on the 2-core machine (784-256-128-10 tanh, Adam, float32, steps/s, best of 15,
#: workqueue layer, prange on loops of >= 2**17 elements): batch 1024: serial 197, parallel 164;
#: 2048: 86 vs 84; 4096: 44.2 vs 44.4; batch 32: 3,610 vs 3,124 (no prange taken: the
#: ``parallel=True`` pipeline alone cost 13%). OpenBLAS already uses both cores for the products,
#: which are 85-95% of a large step, so prange only adds launch and contention costs. The
#: threshold is where parallel stopped losing (batch 4096 x 256 units); below it the serial
#: function runs, so "parallel" is never slower than "cpu" in the measured range.
PARALLEL_MIN = 1 << 20

#: Work (rows of a batch times the trained parameters plus the widest layer: the products'
#: multiply-adds and the update per row, plus the elementwise loops) from which the "parallel"
#: backend runs its data-parallel epoch (see the module docstring). Measured on the 2-core machine
#: (steps/s, data-parallel against the serial function, best of 3 interleaved rounds, OpenBLAS's
#: detected kernels): 784-256-128-10 ReLU, Adam, float32 (235k parameters): batch 4: 13,471 vs
#: 9,736; 32: 5,235 vs 4,483; 128: 2,333 vs 2,041; 512: 737 vs 644 (with the Haswell-pinned
#: kernels, batch 32: 3,683 vs 3,576; 128: 1,452 vs 1,372); 256-256-256-10 tanh (135k): batch 2:
#: 18,774 vs 16,484; 64-64-64-10 ReLU (8,906): batch 16: 87k vs 104k, 32: 70k vs 60k;
#: 2-16-16-1 tanh, MSE, float64 (337): batch 128: 76k vs 89k, 256: 54k vs 46k, 1024: 17k vs
#: 11k. Splitting the update between the threads is what wins at small batches of big nets. The
#: threshold (262,144) keeps 64-64-64-10 at batch 16 (143,520) and the tiny net up to batch 512
#: serial; batch 2 of the 784 net (471,860) runs data-parallel.
CHUNK_MIN = 1 << 18

#: The data-parallel epoch splits the input layer's product and weight gradient by output
#: features instead of by rows when the layer's weight has at least this many elements (a
#: generated branch) and a batch has at most ``features / SPLIT_ROWS_PER_FEATURE`` rows (a
#: runtime test). Split by rows, every thread's BLAS call packs the whole weight for a few rows;
#: split by features, each packs its half. Measured on the 2-core machine (784-256-128-10 ReLU,
#: Adam, float32, steps/s, rows against features, best of 3-4 interleaved rounds): Haswell-pinned
#: OpenBLAS, batch 32: 3,722 against 4,481; 64: 2,514 against 2,611; 128: 1,465 against 1,364;
#: 1024: 215 against 183; OpenBLAS's detected kernels, batch 32: 5,571 against 7,075. So 256
#: features split from 64 rows down.
SPLIT_MIN_WEIGHTS = 1 << 16
SPLIT_ROWS_PER_FEATURE = 4


def hyper_names(optimizer) -> tuple[str, ...]:
    """The order of the ``hyper`` array: the hyperparameter names, sorted."""
    return tuple(sorted(optimizer.hyperparameters()))


def hyper_vector(optimizer) -> np.ndarray:
    """``hyper`` for :func:`generate_epoch`'s function: float64 values in :func:`hyper_names` order."""
    h = optimizer.hyperparameters()
    return np.array([float(h[k]) for k in hyper_names(optimizer)], dtype=np.float64)


def optimizer_key(optimizer) -> tuple:
    """What the generated code depends on: the class and its update equations' structure
    (nesterov, which decay terms are present), never the hyperparameter values.

    symprop's own optimizers (:mod:`kernels.optim`) choose their rules' terms by which options
    are zero or false and nothing else (their source is part of
    :func:`kernels.cache.generator_version`), so their structure is read from the options,
    without SymPy: a warm process finds its epoch function without importing it. Any other
    class is keyed by its equations themselves (SymPy's ``srepr``).

    >>> from symprop.kernels.optim import SGD
    >>> optimizer_key(SGD(lr=0.1, momentum=0.9)) == optimizer_key(SGD(lr=0.5, momentum=0.5))
    True
    >>> optimizer_key(SGD(lr=0.1, momentum=0.9)) == optimizer_key(SGD(lr=0.1))
    False
    """
    cls = type(optimizer)
    head = (cls.__module__, cls.__qualname__, tuple(optimizer.state), hyper_names(optimizer))
    if cls.__module__ == _BUILT_IN:
        return (*head, tuple((f.name, bool(getattr(optimizer, f.name)))
                             for f in dataclasses.fields(optimizer) if f.init))
    import sympy as sp

    return (*head, tuple((sp.srepr(lhs), sp.srepr(rhs)) for lhs, rhs in optimizer.equations()))
