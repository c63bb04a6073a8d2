"""The textbook layer recursion, obtained by substituting the derived VJPs into each other.

A layer is a dense node ``z⁽ˡ⁾`` and the activation ``a⁽ˡ⁾`` that follows it (if any).
``δ⁽ˡ⁾ = ∂L/∂z⁽ˡ⁾`` is the activation's derived VJP with its upstream gradient replaced by the
derived VJP of the next layer's dense node (``δ⁽ˡ⁺¹⁾ W⁽ˡ⁺¹⁾``) or of the loss; the weight
and bias gradients are the dense node's derived VJPs with ``∂L/∂z⁽ˡ⁾`` renamed ``δ⁽ˡ⁾``.
Nothing here states a derivative: it only substitutes what :mod:`derive.derivation` derived.

Examples
--------
>>> from symprop.derive.build import mlp
>>> from symprop.derive.derivation import backprop
>>> layers = backprop(mlp([2, 3, 1], activation="tanh")).layers
>>> layers[0].delta.rhs
(1 - a1[n, i]**2)*(delta(2)*W2)[n, i]
>>> layers[0].weight_grad.rhs
delta(1).T*x
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

from . import symbols as S
from .equations import Equation, Layer
from .ops import BATCH, get_op

__all__ = ["layer_recursion"]


def _role(bp, v) -> str | None:
    """The node's part in a textbook layer, as its form says (``"linear"``, ``"activation"``)."""
    op = get_op(bp.graph.nodes[v]["op"])
    return op.form.layer_role(op, bp.info.args[v])


def _dense_layers(bp) -> list[tuple[str, str | None]]:
    """``(linear node, the activation that alone follows it or None)`` in topological order."""
    out = []
    for v in bp.info.order:
        if _role(bp, v) != "linear":
            continue
        succ = list(bp.graph.successors(v))
        act = succ[0] if len(succ) == 1 and _role(bp, succ[0]) == "activation" else None
        out.append((v, act))
    return out


def _grad_expr(bp, node: str, n, i, deltas: dict[str, sp.MatrixSymbol]):
    """``∂L/∂node`` as one expression: the sum of its consumers' VJPs, deltas substituted, at [n, i]."""
    terms = []
    for c in bp.gradients.get(node, []):
        rhs = c.equation.rhs.xreplace(_delta_map(bp, deltas))
        terms.append(MatrixElement(rhs, n, i) if c.equation.form == "matrix" else rhs)
    return sp.Add(*terms) if terms else None


def _delta_map(bp, deltas):
    mapping = {}
    for node, delta in deltas.items():
        mapping[S.grad_matrix(node, delta.shape)] = delta
        mapping[S.grad_base(node)] = S.delta_base(int(delta.name[len(S.DELTA_PREFIX):-1]))
    return mapping


def _tidy(rhs: sp.Expr) -> sp.Expr:
    """Cancel what the substitution put over a common factor (sigmoid then bce: ``(a - t)/N``)."""
    if rhs.has(sp.Sum) or rhs.atoms(MatrixElement):
        return rhs
    candidates = [rhs]
    for transform in (sp.cancel, sp.factor):
        try:
            candidates.append(transform(rhs))
        except Exception:  # pragma: no cover - SymPy may give up
            continue
    return min(candidates, key=lambda c: sp.count_ops(c))


def layer_recursion(bp) -> list[Layer]:
    """The layers of ``bp`` (a :class:`derive.equations.Backprop`) with their δ equations."""
    layers = _dense_layers(bp)
    if not layers:
        return []
    n, i, _ = S.FREE
    deltas = {}
    for number, (dense, _act) in enumerate(layers, 1):
        shape = S.dims(bp.info.shapes[dense], True)
        deltas[dense] = S.delta_matrix(number, shape)
    result = []
    mapping_all = _delta_map(bp, deltas)
    for number, (dense, act) in reversed(list(enumerate(layers, 1))):
        if dense not in bp.gradients:
            continue
        out = act or dense
        upstream = _grad_expr(bp, out, n, i, {d: deltas[d] for d in deltas if d != dense})
        if upstream is None:
            continue
        if act is not None and "x" in bp.nodes[act].vjps:
            local = bp.nodes[act].vjps["x"].rhs
            rhs = local.xreplace({S.grad_base(act)[n, i]: upstream})
        else:
            rhs = upstream
        rhs = _tidy(rhs)
        extents = (bp.info.shapes[dense][0],)
        delta_eq = Equation(S.delta_base(number)[n, i], rhs, "index", (n, i),
                            (BATCH, *extents))
        node = bp.nodes[dense]
        wg = node.vjps.get("W")
        bg = node.vjps.get("b")
        weight_grad = Equation(wg.lhs, wg.rhs.xreplace(mapping_all), "matrix") if wg else None
        bias_grad = Equation(bg.lhs, bg.rhs.xreplace(mapping_all), "matrix") if bg else None
        args = bp.info.args[dense]
        result.append(Layer(number, dense, act, args["W"], args.get("b"), args["x"],
                            delta_eq, weight_grad, bias_grad))
    return list(reversed(result))
