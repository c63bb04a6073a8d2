"""What choosing, finding and calling a generated epoch function needs without generating one
(and without SymPy): the backend thresholds, the optimizer's cache key and its hyperparameter
vector. :mod:`kernels.cpu.epoch` generates the functions; :mod:`kernels.model` uses this module
on every call, and a warm process (its code found in the cache) needs nothing more.

>>> from symprop.kernels.training.optim import Adam
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
_BUILT_IN = "symprop.kernels.training.optim"

#: Elements (rows of a batch times the widest layer) from which the "parallel" backend runs the
#: ``parallel=True`` epoch function, and from which its elementwise loops take ``prange``: where
#: parallel stopped losing to the serial function (bench/RESULTS.md); below it the serial
#: function runs.
PARALLEL_MIN = 1 << 20

#: Work (rows of a batch times the trained parameters plus the widest layer: the products'
#: multiply-adds and the update per row, plus the elementwise loops) from which the "parallel"
#: backend runs its data-parallel epoch (see :mod:`kernels.cpu.epoch`); chosen from measured
#: steps/s of both forms over net sizes and batches (bench/RESULTS.md).
CHUNK_MIN = 1 << 18

#: The data-parallel epoch splits the input layer's product and weight gradient by output
#: features instead of by rows when the layer's weight has at least this many elements (a
#: generated branch) and a batch has at most ``features / SPLIT_ROWS_PER_FEATURE`` rows (a
#: runtime test). Split by rows, every thread's BLAS call packs the whole weight for a few rows;
#: split by features, each packs its share (measured: bench/RESULTS.md).
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

    symprop's own optimizers (:mod:`kernels.training.optim`) choose their rules' terms by which options
    are zero or false and nothing else (their source is part of
    :func:`kernels.cache.generator_version`), so their structure is read from the options,
    without SymPy: a warm process finds its epoch function without importing it. Any other
    class is keyed by its equations themselves (SymPy's ``srepr``).

    >>> from symprop.kernels.training.optim import SGD
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
