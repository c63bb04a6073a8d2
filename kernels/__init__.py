"""Compiled kernels: Numba code generated from the derived equations (numba is imported lazily).

>>> import kernels
>>> kernels.Adam(lr=0.01).lr
0.01
"""

_LAZY = {
    "compile": ("kernels.compiled", "compile"),
    "CompiledModel": ("kernels.compiled", "CompiledModel"),
    "generate": ("kernels.codegen", "generate"),
    "generate_epoch": ("kernels.epoch", "generate_epoch"),
    "train": ("kernels.training", "train"),
    "History": ("kernels.training", "History"),
    "verify": ("kernels.verification", "verify"),
    "assert_gradients": ("kernels.verification", "assert_gradients"),
    "SGD": ("kernels.optim", "SGD"),
    "Momentum": ("kernels.optim", "Momentum"),
    "RMSprop": ("kernels.optim", "RMSprop"),
    "Adam": ("kernels.optim", "Adam"),
    "AdamW": ("kernels.optim", "AdamW"),
    "get_optimizer": ("kernels.optim", "get_optimizer"),
}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'kernels' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
