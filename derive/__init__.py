"""symprop's derivation core: networks as networkx graphs, backprop derived by SymPy.

Data flows one way: graph -> symbolic equations -> (kernels) -> (reports). This package
imports neither :mod:`kernels` nor :mod:`reports`, nor numba.

Examples
--------
>>> import derive
>>> net = derive.mlp([2, 16, 16, 1], activation="tanh", loss="mse")
>>> d = derive.backprop(net)
>>> print(derive.pretty_equation(d.layers[0].delta))
δ⁽¹⁾ = (δ⁽²⁾·W2) ⊙ (1 - a1²)
"""

from .build import Builder, mlp
from .derivation import Backprop, Equation, backprop
from .errors import GraphError, SpecError, SymPropError
from .evaluate import evaluate
from .fingerprint import fingerprint
from .graph import GraphInfo, parameters, validate
from .ops import OPS, get_op
from .parse import FormulaError, parse_formula
from .printing import latex_equation, pretty_equation
from .scalar import CONVENTIONS, derivative
from .spec import load, loads_toml, save
from .symbolic import random_values, symbolic_gradients, symbolic_loss

__all__ = [
    "Builder", "mlp", "Backprop", "Equation", "backprop", "GraphError", "SpecError", "SymPropError",
    "FormulaError", "evaluate", "fingerprint", "GraphInfo", "parameters", "validate", "OPS", "get_op", "parse_formula",
    "latex_equation", "pretty_equation", "CONVENTIONS", "derivative", "load", "loads_toml", "save",
    "random_values", "symbolic_gradients", "symbolic_loss",
]
