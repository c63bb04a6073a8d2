"""Backward expressions derived by SymPy from the ops' forward definitions, chained by the graph.

For every node, :func:`backprop` asks the node's form (:mod:`derive.forms`) for the forward
equation and one vector-Jacobian product (VJP) per differentiable input: the contribution of
this node to the gradient of the objective with respect to that input, given the node's own
upstream gradient ``dL/dv``. Each form derives them from the op's forward definition:

* matrix ops (dense): ``diff(Trace(G^T Z), A)`` by SymPy's matrix calculus;
* elementwise ops (activations, add, mul): ``G * ∂f/∂a``, with ``∂f/∂a`` from
  :func:`derive.scalar.derivative` (re-expressed through the node's output when SymPy finds it),
  summed over the axes the argument is broadcast along;
* row ops and row losses (softmax, softmax cross-entropy): ``diff`` of the index-form
  definition, with the ``KroneckerDelta`` sums contracted (:mod:`derive.indexcalc`) and the
  forward expression recognised and replaced by the node's output;
* views (flatten, reshape): the index identity's VJP, the gradient read at the same flat offset;
* elementwise losses and penalties: the scalar derivative of the term, times the reduction's
  scale.

The graph walker then sums, for every node, the contributions of all its consumers
(a parameter feeding several nodes gets the sum: recurrences need exactly this).

Examples
--------
>>> from symprop.derive.build import mlp
>>> d = backprop(mlp([2, 3, 1], activation="tanh", loss="mse"))
>>> d.nodes["a1"].vjps["x"].rhs
(1 - a1[n, i]**2)*dL/da1[n, i]
>>> d.nodes["z1"].vjps["W"].rhs
dL/dz1.T*x
"""

from __future__ import annotations

import networkx as nx

from .equations import Backprop, Contribution, Equation, Layer, NodeDerivation
from .forms import Node
from .graph import GraphInfo, validate
from .layers import layer_recursion
from .ops import get_op

__all__ = ["Equation", "NodeDerivation", "Contribution", "Backprop", "backprop", "Layer"]


def _needs_gradient(g: nx.DiGraph, info: GraphInfo) -> set[str]:
    """Nodes downstream of a parameter (gradients flow back through them to a parameter)."""
    need: set[str] = set()
    for p in info.parameters:
        need |= {p} | nx.descendants(g, p)
    return need - {info.loss, *info.penalties}


def backprop(g: nx.DiGraph) -> Backprop:
    """Derive every node's forward and backward equations, and the layer recursion.

    The graph is validated first (:func:`derive.graph.validate`), once: the result carries
    what validation found as its ``info``.
    """
    info = validate(g)
    need = frozenset(_needs_gradient(g, info))
    nodes = {}
    for v in info.order:
        op = get_op(g.nodes[v]["op"])
        nodes[v] = op.form.derive(Node(v, op, g.nodes[v], info, need))
    gradients: dict[str, list[Contribution]] = {v: [] for v in info.order if v in need}
    for v in reversed(info.order):
        for a, eq in nodes[v].vjps.items():
            gradients[info.args[v][a]].append(Contribution(v, a, eq))
    result = Backprop(g, info, nodes, gradients, [], _warnings(g, info, nodes))
    result.layers = layer_recursion(result)
    return result


def _warnings(g: nx.DiGraph, info: GraphInfo, nodes: dict[str, NodeDerivation]) -> list[str]:
    """Say plainly where no gradient can flow: an activation whose derivative is 0."""
    out = []
    for v, nd in nodes.items():
        d = nd.derivatives.get("x")
        if d is not None and d.zero:
            blocked = sorted(set(nx.ancestors(g, v)) & set(info.parameters))
            out.append(f"node {v!r}: the {nd.attrs.get('function')} activation has zero derivative almost "
                       f"everywhere, so no gradient reaches {', '.join(blocked) or 'anything'} through it; "
                       "training through it will not change those parameters")
    return out
