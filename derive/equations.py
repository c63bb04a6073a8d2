"""What a derivation produces: equations, each node's derivation, the layers and the whole result.

These are plain data. :func:`derive.derivation.backprop` makes them (each op form states its node's
equations, see :mod:`derive.forms`), :mod:`derive.layers` substitutes them into the textbook
layer recursion, and :mod:`derive.printing`, :mod:`derive.evaluation` and the code generators
read them. An :class:`Equation` is one of three forms, which is all a reader has to handle:

``matrix``
    both sides matrix expressions of :class:`sympy.MatrixSymbol` (``z1 = x·W1ᵀ + 𝟙·b1ᵀ``);
``index``
    ``lhs`` one element ``base[indices]`` of an array, ``rhs`` a scalar expression of elements
    (:class:`sympy.Indexed`, with :class:`sympy.Sum` reductions), for every index over
    ``extents`` (``N`` for the batch, then the feature sizes: any number of axes);
``scalar``
    a single number (the loss, a penalty).

Examples
--------
>>> import sympy as sp
>>> n, i = sp.symbols("n i", integer=True)
>>> eq = Equation(sp.IndexedBase("a")[n, i], sp.tanh(sp.IndexedBase("z")[n, i]), "index", (n, i), (4, 3))
>>> print(eq)
a[n, i] = tanh(z[n, i])
>>> eq.elementwise
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import sympy as sp

from .graph import GraphInfo
from .printing import latex_equation, latex_report, pretty_report
from .scalar import Derivative

__all__ = ["Equation", "Contribution", "NodeDerivation", "Layer", "Backprop"]


@dataclass(frozen=True)
class Equation:
    """``lhs = rhs``.

    ``form`` is ``"matrix"`` (both sides matrix expressions), ``"index"`` (``lhs`` is an element
    ``base[indices]``, ``rhs`` a scalar expression of elements, over the ranges ``extents``) or
    ``"scalar"`` (a single number, e.g. the loss).
    """

    lhs: sp.Basic
    rhs: sp.Basic
    form: str
    indices: tuple = ()
    extents: tuple = ()

    def __str__(self) -> str:
        return f"{self.lhs} = {self.rhs}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {latex_equation(self)}$"

    @property
    def elementwise(self) -> bool:
        """True for an index equation without sums whose elements all share the lhs indices."""
        if self.form != "index" or self.rhs.has(sp.Sum):
            return False
        return all(e.indices == self.indices for e in self.rhs.atoms(sp.Indexed))


@dataclass(frozen=True)
class Contribution:
    """One consumer's term of a node's gradient: ``consumer`` uses the node as ``arg``."""

    consumer: str
    arg: str
    equation: Equation


@dataclass
class NodeDerivation:
    """What was derived for one node: its forward equation and its VJPs (one per input argument).

    ``form`` names the op's form (:mod:`derive.forms`).
    """

    name: str
    op: str
    form: str
    forward: Equation | None
    vjps: dict[str, Equation] = field(default_factory=dict)
    #: elementwise ops, elementwise losses and penalties: the scalar derivative(s) per variable
    derivatives: dict[str, Derivative] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layer:
    """One layer of the textbook recursion: a dense node and the activation that follows it."""

    number: int
    dense: str
    activation: str | None
    weight: str
    bias: str | None
    input: str
    delta: Equation
    weight_grad: Equation
    bias_grad: Equation | None


@dataclass
class Backprop:
    """The derived backpropagation of a network (see :func:`derive.derivation.backprop`).

    ``info`` is what validating the graph found (:class:`derive.graph.GraphInfo`); everything
    that is given a Backprop reads it instead of validating again.
    """

    graph: nx.DiGraph
    info: GraphInfo
    nodes: dict[str, NodeDerivation]
    gradients: dict[str, list[Contribution]]
    layers: list[Layer]
    #: plain-language warnings about the derived gradients (e.g. a step activation blocks them)
    warnings: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> list[str]:
        """Parameter nodes in the order of :func:`derive.graph.parameters`."""
        return list(self.info.parameters)

    def pretty(self, unicode: bool = True) -> str:
        """All equations for a terminal: forward, backward per node, gradients, layer recursion."""
        return pretty_report(self, unicode=unicode)

    def latex(self) -> str:
        """The same equations as a LaTeX fragment (``align*`` blocks)."""
        return latex_report(self)

    def _repr_latex_(self) -> str:
        return latex_report(self, notebook=True)

    def __str__(self) -> str:
        return self.pretty()
