"""symprop's derivation core: networks as networkx graphs, backprop derived by SymPy.

Data flows one way: graph -> symbolic equations -> (kernels) -> (reports). This package
imports neither :mod:`kernels` nor :mod:`reports`, nor numba.

Examples
--------
>>> from symprop import derive
>>> net = derive.mlp([2, 16, 16, 1], activation="tanh", loss="mse")
>>> d = derive.backprop(net)
>>> print(derive.pretty_equation(d.layers[0].delta))
δ⁽¹⁾ = (δ⁽²⁾·W2) ⊙ (1 - a1²)
"""

from .build import Builder, mlp
from .errors import GraphError, SpecError, SymPropError
from .fingerprint import fingerprint
from .graph import GraphInfo, parameters, validate
from .ops import OPS, get_op
from .spec import load, loads_toml, save

# Everything below needs SymPy, imported on first use: a process that trains kernels it finds by
# the network's fingerprint builds, validates and fingerprints graphs without it (0.2 s saved).
_LAZY = {
    "Backprop": "equations", "Equation": "equations", "backprop": "derivation",
    "evaluate": "evaluation", "FormulaError": "parse", "parse_formula": "parse",
    "latex_equation": "printing", "pretty_equation": "printing",
    "CONVENTIONS": "scalar", "derivative": "scalar",
    "random_values": "symbolic", "symbolic_gradients": "symbolic", "symbolic_loss": "symbolic",
}

__all__ = [
    "Builder", "mlp", "Backprop", "Equation", "backprop", "GraphError", "SpecError", "SymPropError",
    "FormulaError", "evaluate", "fingerprint", "GraphInfo", "parameters", "validate", "OPS", "get_op", "parse_formula",
    "latex_equation", "pretty_equation", "CONVENTIONS", "derivative", "load", "loads_toml", "save",
    "random_values", "symbolic_gradients", "symbolic_loss",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
