"""Compiled kernels: Numba code generated from the derived equations (numba is imported lazily).

>>> from symprop import kernels
>>> kernels.Adam(lr=0.01).lr
0.01
"""

_LAZY = {
    "compile": (".compiled", "compile"),
    "CompiledModel": (".compiled", "CompiledModel"),
    "generate": (".codegen", "generate"),
    "generate_epoch": (".epoch", "generate_epoch"),
    "train": (".training", "train"),
    "History": (".training", "History"),
    "verify": (".verification", "verify"),
    "assert_gradients": (".verification", "assert_gradients"),
    "SGD": (".optim", "SGD"),
    "Momentum": (".optim", "Momentum"),
    "RMSprop": (".optim", "RMSprop"),
    "Adam": (".optim", "Adam"),
    "AdamW": (".optim", "AdamW"),
    "get_optimizer": (".optim", "get_optimizer"),
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
