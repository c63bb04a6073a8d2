"""Spec files: human-written TOML and lossless JSON (networkx node-link).

A TOML spec is either a list of layers (the short form)::

    name = "mlp"
    input = 2
    loss = "mse"
    [[layers]]
    units = 16
    activation = "tanh"
    [[layers]]
    units = 1

or an explicit graph (the general form), one table per node with its op, attributes and
``inputs`` (argument -> source node)::

    [nodes.x]
    op = "input"
    shape = [2]
    [nodes.W1]
    op = "parameter"
    shape = [16, 2]
    [nodes.z1]
    op = "dense"
    inputs = { x = "x", W = "W1" }

The short form may also give ``penalty = "l2"`` and ``weight``, and ``output_activation``.
:func:`save` writes JSON (``.json``) or the explicit TOML form (``.toml``); both load back
to an equal graph.

Examples
--------
>>> import tempfile, os, networkx as nx
>>> from symprop.derive.build import mlp
>>> net = mlp([2, 4, 1])
>>> path = os.path.join(tempfile.mkdtemp(), "net.json")
>>> save(net, path)
>>> nx.utils.graphs_equal(load(path), net)
True
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from pathlib import Path

import networkx as nx

from .atomic import atomic_file
from .build import Builder
from .errors import GraphError, SpecError
from .graph import validate
from .ops import OPS

__all__ = ["load", "save", "from_dict", "to_dict", "loads_toml", "to_toml"]

_LAYER_KEYS = {"units", "activation", "alpha", "bias"}
_TOP_KEYS = {"name", "input", "loss", "layers", "nodes", "penalty", "weight", "output_activation", "description"}


def _fail(source: str, message: str) -> SpecError:
    return SpecError(f"{source}: {message}")


def from_dict(spec: dict, source: str = "spec") -> nx.DiGraph:
    """Build (and validate) the network a parsed spec describes."""
    if not isinstance(spec, dict):
        raise _fail(source, "the spec must be a table")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise _fail(source, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    has_layers, has_nodes = "layers" in spec, "nodes" in spec
    if has_layers == has_nodes:
        raise _fail(source, "give either [[layers]] (short form) or [nodes.<name>] tables (explicit graph)")
    try:
        g = _from_layers(spec, source) if has_layers else _from_nodes(spec, source)
    except GraphError as e:
        raise SpecError(f"{source}: {e}") from None
    try:
        validate(g)
    except GraphError as e:
        raise GraphError(f"{source}: {e}") from None
    return g


def _from_layers(spec: dict, source: str) -> nx.DiGraph:
    size = spec.get("input")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise _fail(source, f"'input' must be a positive integer (the number of features), got {size!r}")
    layers = spec["layers"]
    if not isinstance(layers, list) or not layers:
        raise _fail(source, "'layers' must be a non-empty list of [[layers]] tables")
    b = Builder(str(spec.get("name", "network"))).input("x", size)
    for i, layer in enumerate(layers, 1):
        if not isinstance(layer, dict):
            raise _fail(source, f"layer {i}: must be a table")
        unknown = sorted(set(layer) - _LAYER_KEYS)
        if unknown:
            raise _fail(source, f"layer {i}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_LAYER_KEYS))})")
        units = layer.get("units")
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise _fail(source, f"layer {i}: 'units' must be a positive integer, got {units!r}")
        activation = layer.get("activation")
        if activation is None and i == len(layers):
            activation = spec.get("output_activation")
        bias = layer.get("bias", True)
        if not isinstance(bias, bool):
            raise _fail(source, f"layer {i}: 'bias' must be true or false, got {bias!r}")
        b.dense(units, activation=activation, bias=bias, alpha=layer.get("alpha"))
    b.loss(spec.get("loss", "mse"))
    if spec.get("penalty"):
        b.penalty(spec["penalty"], spec.get("weight", 1e-4))
    return b.g


def _from_nodes(spec: dict, source: str) -> nx.DiGraph:
    nodes = spec["nodes"]
    if not isinstance(nodes, dict) or not nodes:
        raise _fail(source, "'nodes' must hold one [nodes.<name>] table per node")
    g = nx.DiGraph(name=str(spec.get("name", "network")))
    for name, table in nodes.items():
        if not isinstance(table, dict):
            raise _fail(source, f"node {name!r}: must be a table")
        attrs = {k: v for k, v in table.items() if k != "inputs"}
        g.add_node(name, **attrs)
    for name, table in nodes.items():
        sources = table.get("inputs", {})
        if isinstance(sources, list):  # a single-argument op may list its input
            sources = dict(zip(_args_of(table.get("op")), sources))
        if not isinstance(sources, dict):
            raise _fail(source, f"node {name!r}: 'inputs' must map argument names to node names")
        for arg, src in sources.items():
            if not isinstance(src, str):
                raise _fail(source, f"node {name!r}: input {arg!r} must name a node, got {src!r}")
            if src not in nodes:
                raise _fail(source, f"node {name!r}: input {arg!r} names unknown node {src!r}")
            g.add_edge(src, name, arg=arg)
    return g


def _args_of(op) -> tuple[str, ...]:
    return OPS[op].args if isinstance(op, str) and op in OPS else ()


def loads_toml(text: str, source: str = "spec") -> nx.DiGraph:
    """Parse TOML text into a validated network."""
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _fail(source, f"invalid TOML: {e}") from None
    return from_dict(spec, source)


def to_dict(g: nx.DiGraph) -> dict:
    """The lossless JSON form: networkx node-link data with explicit ``edges`` key."""
    return nx.node_link_data(g, edges="edges")


def load(path: str | os.PathLike) -> nx.DiGraph:
    """Load a network from a ``.toml`` spec or a ``.json`` node-link file, validated."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(source, "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(source, f"cannot read: {e}") from None
    if path.suffix == ".toml":
        return loads_toml(text, source)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise _fail(source, f"invalid JSON: {e}") from None
        if not isinstance(data, dict) or "nodes" not in data or "edges" not in data:
            raise _fail(source, "not a node-link network (needs 'nodes' and 'edges')")
        for key in ("nodes", "edges"):
            if not isinstance(data[key], list) or not all(isinstance(item, dict) for item in data[key]):
                raise _fail(source, f"malformed node-link data: {key!r} must be a list of objects")
        try:
            g = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
        except (KeyError, TypeError, AttributeError, nx.NetworkXError) as e:
            raise _fail(source, f"malformed node-link data: {e}") from None
        try:
            validate(g)
        except GraphError as e:
            raise GraphError(f"{source}: {e}") from None
        return g
    raise _fail(source, f"unknown spec format {path.suffix!r} (use .toml or .json)")


def save(g: nx.DiGraph, path: str | os.PathLike) -> None:
    """Write ``g`` to ``.json`` (node-link) or ``.toml`` (explicit nodes), atomically."""
    path = Path(path)
    try:
        validate(g)
    except GraphError as e:
        raise SpecError(f"{path}: cannot save an invalid network: {e}") from None
    if path.suffix == ".json":
        text = json.dumps(to_dict(g), indent=2, sort_keys=True) + "\n"
    elif path.suffix == ".toml":
        text = to_toml(g)
    else:
        raise SpecError(f"{path}: unknown spec format {path.suffix!r} (use .toml or .json)")
    with atomic_file(path, "w") as f:
        f.write(text)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SpecError(f"cannot write non-finite number {v!r} to TOML")
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise SpecError(f"cannot write {type(v).__name__} value {v!r} to TOML (JSON-native values only)")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _toml_string(k)


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, minus surrogate pairs (keep text raw) and DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(g: nx.DiGraph) -> str:
    """The explicit-nodes TOML form of ``g``.

    >>> from symprop.derive.build import mlp
    >>> print(to_toml(mlp([2, 1], activation=None)).splitlines()[0])
    name = "mlp"
    """
    lines = [f"name = {_toml_value(g.graph.get('name', 'network'))}"]
    for v, data in g.nodes(data=True):
        lines.append("")
        lines.append(f"[nodes.{_toml_key(v)}]")
        for k, x in data.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(x)}")
        default = _args_of(data.get("op"))[:1] or ("x",)
        ins = {d.get("arg") or default[0]: u for u, _, d in g.in_edges(v, data=True)}
        if ins:
            lines.append(f"inputs = {_toml_value(ins)}")
    return "\n".join(lines) + "\n"
