"""Compiled kernels: Numba code generated from the derived equations (numba is imported lazily)."""

_LAZY = {
    "compile": ("kernels.compiled", "compile"),
    "CompiledModel": ("kernels.compiled", "CompiledModel"),
    "generate": ("kernels.codegen", "generate"),
    "generate_epoch": ("kernels.epoch", "generate_epoch"),
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
