"""Compiled kernels: Numba code generated from the derived equations (numba is imported lazily).

The sub-packages follow the flow, derived equations -> source -> compiled kernel -> train / check:

* :mod:`.lower`: the equation walker, the printer, stable rewrites, what all backends share;
* :mod:`.cpu`, :mod:`.cuda`: the backends' generators and runtime (:mod:`.backends` is the table
  :func:`compile` looks a backend up in: a new backend is one entry);
* :mod:`.model`: :class:`CompiledModel`, the compiled network with its parameters;
  :mod:`.cache`: the content-addressed module files;
* :mod:`.training`: the training loop, optimizers and data sets;
* :mod:`.check`: verification against SymPy and finite differences, and the pytest plugin.

>>> from symprop import kernels
>>> kernels.Adam(lr=0.01).lr
0.01
"""

_LAZY = {
    "compile": (".backends", "compile"),
    "BACKENDS": (".backends", "BACKENDS"),
    "CompiledModel": (".model", "CompiledModel"),
    "generate": (".cpu.loss", "generate"),
    "generate_epoch": (".cpu.epoch", "generate_epoch"),
    "train": (".training.loop", "train"),
    "History": (".training.loop", "History"),
    "verify": (".check.verify", "verify"),
    "assert_gradients": (".check.verify", "assert_gradients"),
    "SGD": (".training.optim", "SGD"),
    "Momentum": (".training.optim", "Momentum"),
    "RMSprop": (".training.optim", "RMSprop"),
    "Adam": (".training.optim", "Adam"),
    "AdamW": (".training.optim", "AdamW"),
    "get_optimizer": (".training.optim", "get_optimizer"),
}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
