"""Networks as ``networkx.DiGraph``: validation and shape inference.

A network **is** a directed graph. Each node is one op (its ``op`` attribute names an entry of
:data:`derive.ops.OPS`; other attributes are the op's parameters). An edge ``u -> v`` with
attribute ``arg`` says that the value of ``u`` is the argument ``arg`` of ``v``. Weights and
biases are explicit ``parameter`` leaf nodes, so a gradient is a flow back to a leaf.

Shapes are feature shapes of any rank (:mod:`derive.axes`): values computed from ``input`` nodes
carry an implicit, symbolic batch dimension in front; ``parameter`` values do not. Each op's form
(:mod:`derive.forms`) gives its output's shape and batch axis and says which kinds of values may
feed its arguments; validation walks the graph once and asks it.

Examples
--------
>>> import networkx as nx
>>> g = nx.DiGraph()
>>> g.add_node("x", op="input", shape=[2]); g.add_node("t", op="target", shape=[1])
>>> g.add_node("W", op="parameter", shape=[1, 2]); g.add_node("y", op="dense")
>>> g.add_edge("x", "y", arg="x"); g.add_edge("W", "y", arg="W")
>>> g.add_node("L", op="loss", function="mse"); g.add_edge("y", "L", arg="y"); g.add_edge("t", "L", arg="t")
>>> info = validate(g)
>>> info.shapes["y"], info.batched["y"], info.loss
((1,), True, 'L')
>>> info.inputs, info.targets, info.parameters
(('x',), ('t',), ('W',))
"""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, replace

import networkx as nx

from .errors import GraphError
from .forms import Arg
from .ops import BATCH_NAME, REQUIRED, get_op

__all__ = ["validate", "GraphInfo", "parameters", "inputs", "targets", "loss_node", "penalties"]


@dataclass(frozen=True)
class GraphInfo:
    """What validation learnt about a network.

    ``order`` is a topological order; ``shapes`` the feature shape of every node;
    ``batched`` whether a node's value has the batch dimension; ``loss`` the loss node;
    ``penalties`` the penalty nodes; ``args`` maps each node to ``{arg: source node}``;
    ``inputs`` and ``targets`` the input and target nodes in topological order,
    ``parameters`` the parameter nodes in the order of :func:`parameters`.
    """

    order: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    batched: dict[str, bool]
    loss: str
    penalties: tuple[str, ...]
    args: dict[str, dict[str, str]]
    inputs: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()


def _label(g: nx.DiGraph, v) -> str:
    op = g.nodes[v].get("op")
    return f"node {v!r}" + (f" ({op})" if isinstance(op, str) else "")


#: How the symbols of gradients (``dL/dz1``) and layer errors (``delta(1)``) are named
#: (:mod:`derive.symbols`); node names may not start so, or ``dL/dz1`` would be taken for the
#: gradient of ``z1``.
GRAD_PREFIX = "dL/d"
DELTA_PREFIX = "delta("
RESERVED_PREFIXES = (GRAD_PREFIX, DELTA_PREFIX)


def _check_names(g: nx.DiGraph) -> None:
    for v in g.nodes:
        if not isinstance(v, str) or not v.strip() or any(unicodedata.category(c) == "Cc" for c in v):
            raise GraphError(f"node {v!r}: a node name must be a non-empty string without control characters")
        if v.startswith(RESERVED_PREFIXES):
            raise GraphError(f"node {v!r}: names starting with {' or '.join(map(repr, RESERVED_PREFIXES))} are "
                             "reserved for gradients and layer errors")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise GraphError(f"node {v!r}: a node name must be valid Unicode text (it has a lone surrogate)") from None


#: The name the printed equations give the objective (``∂L/∂z1``).
OBJECTIVE = "L"


def _check_symbol_names(g: nx.DiGraph, loss: str) -> None:
    """A node other than the loss may not be named ``L`` (``∂L/∂L`` would read as 1), and no node
    ``N`` (the batch size in every mean)."""
    for v in g.nodes:
        if v == BATCH_NAME or (v == OBJECTIVE and v != loss):
            what = "the batch size" if v == BATCH_NAME else "the objective (only the loss node may be called so)"
            raise GraphError(f"{_label(g, v)}: the name {v!r} is reserved for {what}")


def _check_ops(g: nx.DiGraph) -> None:
    for v, data in g.nodes(data=True):
        if "op" not in data:
            raise GraphError(f"node {v!r}: no 'op' attribute")
        op = get_op_for(v, data["op"])
        unknown = sorted(set(data) - {"op", *op.attrs})
        if unknown:
            raise GraphError(f"{_label(g, v)}: unknown attribute {unknown[0]!r} "
                             f"(allowed: {', '.join(sorted(op.attrs)) or 'none'})")
        missing = [a for a, default in op.attrs.items() if default == REQUIRED and data.get(a) is None]
        if missing:
            raise GraphError(f"{_label(g, v)}: missing attribute {missing[0]!r}")


def get_op_for(v, name):
    try:
        return get_op(name)
    except GraphError as e:
        raise GraphError(f"node {v!r}: {e}") from None


def _collect_args(g: nx.DiGraph) -> dict[str, dict[str, str]]:
    args: dict[str, dict[str, str]] = {}
    for v, data in g.nodes(data=True):
        op = get_op(data["op"])
        mine: dict[str, str] = {}
        for u, _, edge in g.in_edges(v, data=True):
            arg = edge.get("arg")
            if arg is None and len(op.args) == 1:
                arg = op.args[0]
            if arg not in op.args:
                raise GraphError(f"{_label(g, v)}: edge from {u!r} has argument {arg!r}, but {op.name} takes "
                                 f"{_describe_args(op)}")
            if arg in mine:
                raise GraphError(f"{_label(g, v)}: argument {arg!r} is given twice (from {mine[arg]!r} and {u!r})")
            mine[arg] = u
        missing = [a for a in op.required if a not in mine]
        if missing:
            got = f"{len(mine)} ({', '.join(mine)})" if mine else "none"
            raise GraphError(f"{_label(g, v)}: wrong number of inputs: {op.name} takes {_describe_args(op)}, "
                             f"got {got}; missing {missing[0]!r}")
        args[v] = mine
    return args


def _describe_args(op) -> str:
    if not op.args:
        return "no inputs"
    return ", ".join(f"[{a}]" if a in op.optional else a for a in op.args)


def _check_acyclic(g: nx.DiGraph) -> tuple[str, ...]:
    try:
        return tuple(nx.topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        path = " -> ".join(str(u) for u, _ in cycle) + f" -> {cycle[0][0]}"
        raise GraphError(f"node {cycle[0][0]!r}: the graph has a cycle: {path}") from None


def _check_sinks(g: nx.DiGraph) -> tuple[str, tuple[str, ...]]:
    losses = sorted(v for v, op in g.nodes(data="op") if op == "loss")
    if not losses:
        raise GraphError("the graph has no loss node (add a node with op = 'loss')")
    if len(losses) > 1:
        raise GraphError(f"the graph has several loss nodes: {', '.join(map(repr, losses))} (exactly one allowed)")
    penalties = tuple(sorted(v for v, op in g.nodes(data="op") if op == "penalty"))
    for v in (losses[0], *penalties):
        if g.out_degree(v):
            raise GraphError(f"{_label(g, v)}: a loss or penalty cannot feed other nodes "
                             f"(it feeds {next(iter(g.successors(v)))!r})")
    reaching = set(nx.ancestors(g, losses[0])) | {losses[0]}
    for p in penalties:
        reaching |= nx.ancestors(g, p) | {p}
    for v in g.nodes:
        if v in reaching:
            continue
        if g.nodes[v]["op"] == "parameter" and g.out_degree(v) == 0:
            raise GraphError(f"{_label(g, v)}: parameter has no consumer")
        raise GraphError(f"{_label(g, v)}: unreachable: its value never reaches the loss")
    return losses[0], penalties


def _infer_shapes(g, order, args):
    """Every node's feature shape and batch axis, from its op (and form) and its arguments', in
    topological order; the kinds of values that feed each argument checked on the way."""
    shapes: dict[str, tuple[int, ...]] = {}
    batched: dict[str, bool] = {}
    for v in order:
        data = g.nodes[v]
        op = get_op(data["op"])
        given = {a: Arg(u, g.nodes[u]["op"], shapes[u], batched[u]) for a, u in args[v].items()}
        try:
            shapes[v] = op.infer_shape(data, {a: arg.shape for a, arg in given.items()})
            _check_constant_args(op, given)
            op.form.check(op, given)
        except ValueError as e:   # GraphError is one
            raise GraphError(f"{_label(g, v)}: {e}") from None
        batched[v] = op.form.batched(given)
    return shapes, batched


def _check_constant_args(op, given: dict[str, Arg]) -> None:
    """Targets feed only the arguments that take them (a loss's ``t``: ``Op.constant_args``),
    and those arguments take only targets."""
    for arg, a in given.items():
        target = a.op == "target"
        if target and arg not in op.constant_args:
            raise ValueError(f"target {a.node!r} can only feed a loss's 't' argument")
        if arg in op.constant_args and not target:
            raise ValueError(f"argument {arg!r} must come from a target node, not {a.node!r}")


def _check_functions(g: nx.DiGraph) -> None:
    """Check every node's attributes now (parse formulas), so a bad one fails validation, naming its node."""
    for v, data in g.nodes(data=True):
        check = get_op(data["op"]).check
        if check is None:
            continue
        try:
            check(data)
        except ValueError as e:  # FormulaError and GraphError are ValueErrors
            raise GraphError(f"{_label(g, v)}: {e}") from None


#: a graph's content (:func:`_state`) -> what validation found, the last few: a pipeline validates once
_VALIDATED: "OrderedDict[str, GraphInfo]" = OrderedDict()
_VALIDATED_KEEP = 32


def _state(g: nx.DiGraph) -> str:
    """The graph's content as text (attributes, nodes and edges with theirs, in insertion order)."""
    return repr((g.graph, list(g.nodes(data=True)), list(g.edges(data=True))))


def validate(g) -> GraphInfo:
    """Check a network and infer its shapes; GraphError naming the node and reason otherwise.

    Checks, in order: node names, ops and their attributes, inputs of each op (argument names,
    number), cycles, exactly one loss, every node reaching the loss (parameters with no
    consumer, unreachable nodes), names the printed equations reserve, formulas and numeric
    attributes, then along the graph each node's shape (its form's or op's rule: broadcasting,
    axes, reshape sizes) and which kind of value feeds which argument.

    A pipeline validates once: the stages after the first (loading a spec, choosing data,
    compiling, deriving, verifying) get what the first found, as long as the graph is unchanged
    (its content is compared, so any edit, or another graph, validates again; a copy of a valid
    graph is not checked twice). Each call returns its own copy of the result.
    """
    if not isinstance(g, nx.DiGraph) or isinstance(g, nx.MultiDiGraph):
        raise GraphError(f"a network must be a networkx.DiGraph, got {type(g).__name__}")
    state = _state(g)
    info = _VALIDATED.get(state)
    if info is None:
        info = _VALIDATED[state] = _check(g)
        while len(_VALIDATED) > _VALIDATED_KEEP:
            _VALIDATED.popitem(last=False)
    else:
        _VALIDATED.move_to_end(state)
    return replace(info, shapes=dict(info.shapes), batched=dict(info.batched),
                   args={v: dict(a) for v, a in info.args.items()})


def _check(g: nx.DiGraph) -> GraphInfo:
    """:func:`validate`'s checks, run on every call (no memo)."""
    if g.number_of_nodes() == 0:
        raise GraphError("the graph is empty")
    _check_names(g)
    _check_ops(g)
    args = _collect_args(g)
    order = _check_acyclic(g)
    loss, penalties = _check_sinks(g)
    _check_symbol_names(g, loss)
    _check_functions(g)
    shapes, batched = _infer_shapes(g, order, args)
    ops = {v: g.nodes[v]["op"] for v in order}
    return GraphInfo(order, shapes, batched, loss, penalties, args,
                     inputs=tuple(v for v in order if ops[v] == "input"),
                     targets=tuple(v for v in order if ops[v] == "target"),
                     parameters=tuple(parameters(g)))


def _nodes_with_op(g: nx.DiGraph, op: str) -> list[str]:
    return [v for v, o in g.nodes(data="op") if o == op]


def parameters(g: nx.DiGraph) -> list[str]:
    """Parameter nodes in topological order of their first use.

    >>> from symprop.derive.build import mlp
    >>> parameters(mlp([2, 3, 1]))
    ['W1', 'b1', 'W2', 'b2']
    """
    order = {v: i for i, v in enumerate(nx.lexicographical_topological_sort(g))}
    first_use = {p: min((order[s] for s in g.successors(p)), default=order[p]) for p in _nodes_with_op(g, "parameter")}
    return sorted(first_use, key=lambda p: (first_use[p], order[p]))


def inputs(g: nx.DiGraph) -> list[str]:
    """Input nodes (sorted by name)."""
    return sorted(_nodes_with_op(g, "input"))


def targets(g: nx.DiGraph) -> list[str]:
    """Target nodes (sorted by name)."""
    return sorted(_nodes_with_op(g, "target"))


def loss_node(g: nx.DiGraph) -> str:
    """The loss node (validates the graph)."""
    return validate(g).loss


def penalties(g: nx.DiGraph) -> list[str]:
    """Penalty nodes (sorted by name)."""
    return sorted(_nodes_with_op(g, "penalty"))
