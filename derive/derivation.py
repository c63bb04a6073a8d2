"""Backward expressions derived by SymPy from the ops' forward definitions, chained by the graph.

For every node, :func:`backprop` states the forward equation and derives one vector-Jacobian
product (VJP) per differentiable input: the contribution of this node to the gradient of the
objective with respect to that input, given the node's own upstream gradient ``dL/dv``.

* matrix ops (dense): ``diff(Trace(G^T Z), A)`` by SymPy's matrix calculus;
* elementwise ops: ``G * f'``, with ``f'`` from :func:`derive.scalar.derivative`
  (re-expressed through the node's output when SymPy finds it);
* row ops and row losses (softmax, softmax cross-entropy): ``diff`` of the index-form
  definition, with the ``KroneckerDelta`` sums contracted (:mod:`derive.indexcalc`) and the
  forward expression recognised and replaced by the node's output;
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

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import networkx as nx
import sympy as sp

from . import symbols as S
from .graph import GraphInfo, validate
from .indexcalc import contract
from .ops import BATCH, MATRIX_FORWARD, ROW_FORWARD, T, X, Y, W, get_op, row_loss, scalar_function
from .scalar import Derivative, derivative

__all__ = ["Equation", "NodeDerivation", "Contribution", "Backprop", "backprop", "Layer"]

n, i, j = S.FREE
m, k, l, r = S.DUMMY


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
        from .printing import latex_equation

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
    """What was derived for one node: its forward equation and its VJPs (one per input argument)."""

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
    """The derived backpropagation of a network (see :func:`backprop`)."""

    graph: nx.DiGraph
    info: GraphInfo
    nodes: dict[str, NodeDerivation]
    gradients: dict[str, list[Contribution]]
    layers: list[Layer]
    #: plain-language warnings about the derived gradients (e.g. a step activation blocks them)
    warnings: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> list[str]:
        from .graph import parameters

        return parameters(self.graph)

    def pretty(self, unicode: bool = True) -> str:
        """All equations for a terminal: forward, backward per node, gradients, layer recursion."""
        from .printing import pretty_report

        return pretty_report(self, unicode=unicode)

    def latex(self) -> str:
        """The same equations as a LaTeX fragment (``align*`` blocks)."""
        from .printing import latex_report

        return latex_report(self)

    def _repr_latex_(self) -> str:
        from .printing import latex_report

        return latex_report(self, notebook=True)

    def __str__(self) -> str:
        return self.pretty()


# --- per-op derivation templates (cached on the op's definition) ------------------------------

def _freeze(attrs: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in attrs.items() if isinstance(v, (str, int, float, bool, sp.Basic))))


@lru_cache(maxsize=256)
def _scalar_derivatives(op: str, frozen_attrs: tuple) -> tuple[sp.Expr, dict[str, Derivative]]:
    attrs = dict(frozen_attrs)
    f = scalar_function(op, attrs)
    if op == "activation":
        return f, {"x": derivative(f, X, Y)}
    if op == "loss":
        return f, {"y": derivative(f, Y, sp.Dummy("out"))}
    return f, {"w": derivative(f, W, sp.Dummy("out"))}


def _matrix_vjps(op: str, args: dict[str, sp.MatrixSymbol], out: sp.MatrixSymbol,
                 grad: sp.MatrixSymbol) -> tuple[sp.MatrixExpr, dict[str, sp.MatrixExpr]]:
    """Forward and VJPs of a matrix op: ``d trace(G^T F(args)) / d arg`` by matrix calculus."""
    forward = MATRIX_FORWARD[op](*[args.get(a) for a in get_op(op).args])
    objective = sp.Trace(grad.T * forward)
    return forward, {a: objective.diff(A) for a, A in args.items()}


def _row_patterns(op: str, base: sp.IndexedBase, row, K):
    """The forward element of row op ``op`` at column c, for any c, as a callable."""
    def element(c, dummy):
        return ROW_FORWARD[op](_Row(base, row), c, dummy, K)
    return element


class _Row:
    """``x[n, :]`` for the index-form definitions, which index one row: ``row[j] -> x[n, j]``."""

    def __init__(self, base: sp.IndexedBase, row):
        self.base, self.row = base, row

    def __getitem__(self, col):
        return self.base[self.row, col]


def _absorb_into_sums(expr: sp.Expr) -> sp.Expr:
    """Move the factors of a product that sit beside a single ``Sum`` into it (inverse of pulling out)."""
    def absorb(mul):
        sums = [f for f in mul.args if isinstance(f, sp.Sum)]
        if len(sums) != 1:
            return mul
        others = [f for f in mul.args if f is not sums[0]]
        s = sums[0]
        return sp.Sum(sp.Mul(*others) * s.function, *s.limits)
    return expr.replace(lambda e: isinstance(e, sp.Mul) and any(isinstance(f, sp.Sum) for f in e.args), absorb)


def _subs_through_sums(expr: sp.Expr, old: sp.Expr, new: sp.Expr) -> sp.Expr:
    """``expr.subs(old, new)``, also inside sums whose index ``old`` uses (SymPy's subs skips those)."""
    expr = expr.replace(lambda e: isinstance(e, sp.Sum),
                        lambda s: sp.Sum(_subs_through_sums(s.function, old, new), *s.limits))
    return expr.subs(old, new)


def replace_row_outputs(expr: sp.Expr, op: str, in_base, out_base, K) -> sp.Expr:
    """Replace each occurrence of row op ``op``'s forward element by the output ``out_base[n, c]``.

    >>> x, y = sp.IndexedBase("x"), sp.IndexedBase("y")
    >>> K = sp.Integer(3)
    >>> e = sp.exp(x[n, i]) / sp.Sum(sp.exp(x[n, k]), (k, 0, K - 1))
    >>> replace_row_outputs(e, "softmax", x, y, K)
    y[n, i]
    """
    element = _row_patterns(op, in_base, n, K)
    dummies = {lim[0] for s in expr.atoms(sp.Sum) for lim in s.limits}
    columns = {e.indices[1] for e in expr.atoms(sp.Indexed) if e.base == in_base}
    # a single-row loss sees its columns as free and as dummies: try every combination
    for attempt in (expr, _absorb_into_sums(expr)):
        out = attempt
        for c in columns:
            for d in dummies - {c}:
                out = _subs_through_sums(out, element(c, d), out_base[n, c])
        if not out.has(in_base) or attempt is not expr:
            return sp.factor_terms(out) if out != attempt else expr
    return expr


# --- the graph walker --------------------------------------------------------------------------

def _node_derivation(g: nx.DiGraph, info: GraphInfo, v: str, need: set[str]) -> NodeDerivation:
    data = g.nodes[v]
    op = get_op(data["op"])
    args = info.args[v]
    attrs = {a: data[a] for a in op.attrs if a in data}
    nd = NodeDerivation(v, op.name, op.form, None, attrs=attrs)
    wanted = [a for a in op.args if a in args and a not in op.constant_args and args[a] in need]
    shape = info.shapes

    if op.form == "leaf":
        return nd

    if op.form == "matrix":
        mats = {a: S.value_matrix(u, S.dims(shape[u], info.batched[u])) for a, u in args.items()}
        out_dims = S.dims(shape[v], info.batched[v])
        forward, vjps = _matrix_vjps(op.name, mats, S.value_matrix(v, out_dims), S.grad_matrix(v, out_dims))
        nd.forward = Equation(S.value_matrix(v, out_dims), forward, "matrix")
        for a in wanted:
            u = args[a]
            nd.vjps[a] = Equation(S.grad_matrix(u, S.dims(shape[u], info.batched[u])), vjps[a], "matrix")
        return nd

    extents = (BATCH, shape[v][0]) if op.form in ("elementwise", "rowwise") else ()
    if op.form == "elementwise":
        u = args["x"]
        f, ders = _scalar_derivatives(op.name, _freeze(data))
        nd.derivatives = ders
        xin, yout = S.value_base(u)[n, i], S.value_base(v)[n, i]
        nd.forward = Equation(yout, f.subs(X, xin), "index", (n, i), extents)
        if "x" in wanted:
            rhs = S.grad_base(v)[n, i] * ders["x"].best.subs({X: xin, Y: yout})
            nd.vjps["x"] = Equation(S.grad_base(u)[n, i], rhs, "index", (n, i), extents)
        return nd

    if op.form == "rowwise":
        u = args["x"]
        K = sp.Integer(shape[v][0])
        xb, yb = S.value_base(u), S.value_base(v)
        element = _row_patterns(op.name, xb, n, K)
        nd.forward = Equation(yb[n, i], element(i, k), "index", (n, i), extents)
        if "x" in wanted:
            row = _row_patterns(op.name, xb, m, K)
            scalar = sp.Sum(sp.Sum(S.grad_base(v)[m, l] * row(l, k), (l, 0, K - 1)), (m, 0, BATCH - 1))
            d = contract(sp.diff(scalar, xb[n, i]))
            d = replace_row_outputs(d, op.name, xb, yb, K)
            nd.vjps["x"] = Equation(S.grad_base(u)[n, i], sp.factor_terms(d), "index", (n, i), extents)
        return nd

    if op.form == "loss":
        y_node, t_node = args["y"], args["t"]
        D = sp.Integer(shape[y_node][0])
        yb, tb = S.value_base(y_node), S.value_base(t_node)
        loss_sym = sp.Symbol(v)
        builder = row_loss(data["function"])
        if builder is not None:
            total = sp.Sum(builder(_Row(yb, m), _Row(tb, m), k, l, D), (m, 0, BATCH - 1)) / BATCH
            nd.forward = Equation(loss_sym, total, "scalar")
            if "y" in wanted:
                d = sp.factor_terms(contract(sp.diff(total, yb[n, i])))
                nd.vjps["y"] = Equation(S.grad_base(y_node)[n, i], d, "index", (n, i), (BATCH, D))
            return nd
        f, ders = _scalar_derivatives(op.name, _freeze(data))
        nd.derivatives = ders
        term = f.subs({Y: yb[m, k], T: tb[m, k]})
        nd.forward = Equation(loss_sym, sp.Sum(term, (k, 0, D - 1), (m, 0, BATCH - 1)) / (BATCH * D), "scalar")
        if "y" in wanted:
            rhs = ders["y"].in_input.subs({Y: yb[n, i], T: tb[n, i]}) / (BATCH * D)
            nd.vjps["y"] = Equation(S.grad_base(y_node)[n, i], rhs, "index", (n, i), (BATCH, D))
        return nd

    if op.form == "penalty":
        u = args["w"]
        pshape = shape[u]
        idx = (i, j)[:len(pshape)]
        f, ders = _scalar_derivatives(op.name, _freeze(data))
        nd.derivatives = ders
        wb = S.value_base(u)
        dummies = (k, l)[:len(pshape)]
        total = sp.Sum(f.subs(W, wb[dummies]), *[(d, 0, e - 1) for d, e in zip(dummies, pshape)])
        nd.forward = Equation(sp.Symbol(v), total, "scalar")
        if "w" in wanted:
            nd.vjps["w"] = Equation(S.grad_base(u)[idx], ders["w"].in_input.subs(W, wb[idx]), "index", idx,
                                    tuple(sp.Integer(e) for e in pshape))
        return nd

    raise NotImplementedError(f"op form {op.form!r} has no derivation rule")  # pragma: no cover


def _needs_gradient(g: nx.DiGraph, info: GraphInfo) -> set[str]:
    """Nodes downstream of a parameter (gradients flow back through them to a parameter)."""
    need: set[str] = set()
    for p in (v for v, op in g.nodes(data="op") if op == "parameter"):
        need |= {p} | nx.descendants(g, p)
    return need - {info.loss, *info.penalties}


def backprop(g: nx.DiGraph) -> Backprop:
    """Derive every node's forward and backward equations, and the layer recursion.

    The graph is validated first (:func:`derive.graph.validate`).
    """
    info = validate(g)
    need = _needs_gradient(g, info)
    nodes = {v: _node_derivation(g, info, v, need) for v in info.order}
    gradients: dict[str, list[Contribution]] = {v: [] for v in info.order if v in need}
    for v in reversed(info.order):
        for a, eq in nodes[v].vjps.items():
            gradients[info.args[v][a]].append(Contribution(v, a, eq))
    result = Backprop(g, info, nodes, gradients, [], _warnings(g, nodes))
    from .layers import layer_recursion

    result.layers = layer_recursion(result)
    return result


def _warnings(g: nx.DiGraph, nodes: dict[str, NodeDerivation]) -> list[str]:
    """Say plainly where no gradient can flow: elementwise ops whose derivative is 0."""
    out = []
    for v, nd in nodes.items():
        d = nd.derivatives.get("x")
        if nd.op == "activation" and d is not None and d.zero:
            blocked = sorted(u for u in nx.ancestors(g, v) if g.nodes[u]["op"] == "parameter")
            out.append(f"node {v!r}: the {nd.attrs.get('function')} activation has zero derivative almost "
                       f"everywhere, so no gradient reaches {', '.join(blocked) or 'anything'} through it; "
                       "training through it will not change those parameters")
    return out
