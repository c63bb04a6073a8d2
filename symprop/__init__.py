"""symprop: derive, print, compile and verify backpropagation.

One import namespace. The repository's folders install as three subpackages, one a stage of
the data flow graph -> symbolic -> code -> compiled kernel -> train / verify -> report:

* :mod:`symprop.derive`: networks as networkx graphs, their backward pass derived by SymPy;
* :mod:`symprop.kernels`: Numba code generated from the derived equations, training, checking;
* :mod:`symprop.reports`: LaTeX/PDF reports and figures.

The short names below are what a user types; each is looked up on first use, so
``import symprop`` imports neither SymPy nor Numba.

=====================  ===========================================================
``mlp``, ``Builder``   build a network (:mod:`symprop.derive.build`)
``load``, ``save``     read and write spec files (TOML/JSON)
``validate``           check a network, giving its shapes (:class:`GraphInfo`)
``backprop``           derive its forward and backward equations
``compile``            compile it (``backend`` ``"cpu"``, ``"parallel"`` or ``"cuda"``)
``train``              train a compiled model (optimizers ``SGD``, ``Adam``, ...)
``verify``             compiled gradients against SymPy and finite differences
``report``             write a LaTeX/PDF report (:func:`symprop.reports.write`)
``data``               data sets: ``symprop.data.make("moons")``, ``symprop.data.load(path)``
=====================  ===========================================================

Examples
--------
>>> import symprop
>>> net = symprop.mlp([2, 3, 1], activation="tanh", loss="mse")
>>> print(symprop.backprop(net).pretty().splitlines()[0])
Network 'mlp': 10 nodes; parameters: W1 3×2, b1 3, W2 1×3, b2 1
>>> symprop.Adam(lr=0.01).lr
0.01
"""

from __future__ import annotations

import importlib
import os

# A source checkout run from its root without installing (``python -m symprop``) finds this folder
# first; the subpackages are its siblings there (installed, they are inside it).
_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if (not os.path.isdir(os.path.join(__path__[0], "derive"))
        and os.path.isfile(os.path.join(_root, "derive", "__init__.py"))):
    __path__.append(_root)
del _root

__version__ = "0.1.0"

#: short name -> (module under symprop, attribute; None for the module itself)
_LAZY = {
    "derive": (".derive", None), "kernels": (".kernels", None), "reports": (".reports", None),
    "mlp": (".derive", "mlp"), "Builder": (".derive", "Builder"), "load": (".derive", "load"),
    "save": (".derive", "save"), "validate": (".derive", "validate"), "backprop": (".derive", "backprop"),
    "GraphError": (".derive", "GraphError"), "SpecError": (".derive", "SpecError"),
    "SymPropError": (".derive", "SymPropError"),
    "compile": (".kernels", "compile"), "train": (".kernels", "train"), "verify": (".kernels", "verify"),
    "History": (".kernels", "History"), "assert_gradients": (".kernels", "assert_gradients"),
    "SGD": (".kernels", "SGD"), "Momentum": (".kernels", "Momentum"), "RMSprop": (".kernels", "RMSprop"),
    "Adam": (".kernels", "Adam"), "AdamW": (".kernels", "AdamW"), "get_optimizer": (".kernels", "get_optimizer"),
    "data": (".kernels.training.data", None),
    "report": (".reports", "write"),
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module, __name__)
        value = value if attr is None else getattr(value, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
