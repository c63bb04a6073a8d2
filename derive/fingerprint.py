"""A fingerprint of a network and of everything its derivation depends on.

Two calls of :func:`derive.backprop` on graphs with equal fingerprints give the same equations:
the fingerprint covers the graph (its attributes, its nodes and edges with theirs, in insertion
order, since the topological order and so the printed equations follow it), the op registry
(:mod:`derive.ops`: op forms, arguments and definitions, built-in activations, losses and
penalties), the source of the ``derive`` package (its subpackages included) and the SymPy and
networkx versions. :mod:`kernels` uses it to
find the code it generated for a network in an earlier process without deriving again.

A graph with an attribute that is not JSON-native (a SymPy expression as an activation, a NumPy
scalar) has no fingerprint: :func:`fingerprint` returns None and callers derive as usual.

Examples
--------
>>> from symprop.derive.build import mlp
>>> fingerprint(mlp([2, 3, 1])) == fingerprint(mlp([2, 3, 1]))
True
>>> fingerprint(mlp([2, 3, 1])) == fingerprint(mlp([2, 4, 1]))
False
>>> len(fingerprint(mlp([2, 3, 1], activation="x*tanh(x)")))
64
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path

import networkx as nx

from . import ops

__all__ = ["fingerprint", "graph_text", "registry_text", "package_version", "sources_digest"]


class _NotNative(TypeError):
    pass


def _refuse(value):
    raise _NotNative(type(value).__name__)


def graph_text(g: nx.DiGraph) -> str | None:
    """Canonical JSON of the graph's content in insertion order; None if an attribute is not
    JSON-native (str, int, float, bool, None, lists and string-keyed dicts of these)."""
    content = {"graph": dict(g.graph),
               "nodes": [[v, data] for v, data in g.nodes(data=True)],
               "edges": [[u, v, data] for u, v, data in g.edges(data=True)]}
    try:
        return json.dumps(content, sort_keys=True, default=_refuse, allow_nan=True)
    except (_NotNative, TypeError, ValueError):
        return None


def _code_text(code) -> str:
    """Byte code, names and constants (nested code objects described alike, never by address)."""
    consts = [_code_text(c) if hasattr(c, "co_code") else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()} {code.co_names} [{', '.join(consts)}]"


def _describe_callable(fn) -> str:
    code = getattr(fn, "__code__", None)
    body = hashlib.sha256(_code_text(code).encode()).hexdigest() if code else ""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(type(fn)))}:{body}"


def _srepr(value) -> str:
    import sympy as sp   # only for entries a program changed (built-ins are named, see BuiltinTable)

    return sp.srepr(value)


def _describe_activation(entry) -> str:
    expr, defaults = entry
    return f"{_srepr(expr)} {sorted(defaults.items())}"


def registry_text() -> str:
    """The op registry as text: every entry a derivation can reach, in a stable form.

    Computed on each call (about a millisecond): the registry is made of dicts that a program
    could change, and a changed entry must change the fingerprint. The built-in activations,
    losses and penalties (:class:`derive.ops.BuiltinTable`) appear by name, since the ``derive``
    source fixes them (:func:`package_version`), so no SymPy is needed; an entry a program added
    or replaced appears as its SymPy ``srepr``. (Changing a built-in entry's value in place, such
    as its defaults dict, is not seen: assign a new entry instead.)
    """
    lines = []
    for name, op in ops.OPS.items():
        described = {what: _describe_callable(fn) if fn is not None else "none"
                     for what, fn in (("forward", op.forward), ("shape", op.shape), ("check", op.check))}
        lines.append(f"op {name}: {op.form!r} {type(op.form).__module__}.{type(op.form).__qualname__} "
                     f"{sorted(vars(op.form).items())} {op.args} optional={sorted(op.optional)} "
                     f"attrs={sorted((k, repr(v)) for k, v in op.attrs.items())} "
                     f"constant={sorted(op.constant_args)} "
                     + " ".join(f"{what}={text}" for what, text in described.items()))
    lines += [f"row_loss {name}: {_describe_callable(fn)}" for name, fn in ops.ROW_LOSSES.items()]
    lines += [f"activation {entry}" for entry in ops.ACTIVATIONS.describe(_describe_activation)]
    lines += [f"loss {entry}" for entry in ops.ELEMENTWISE_LOSSES.describe(_srepr)]
    lines += [f"penalty {entry}" for entry in ops.PENALTIES.describe(_srepr)]
    return "\n".join(lines)


def sources_digest(folder: Path, preamble: str) -> str:
    """SHA-256 (hex) of ``preamble`` and of every ``*.py`` file in ``folder`` and its subfolders
    (paths relative to ``folder`` and bytes, in path order): a package's code version.
    :mod:`kernels.cache` uses it for ``kernels`` too."""
    folder = Path(folder)
    h = hashlib.sha256(preamble.encode("utf-8"))
    for path in sorted(folder.rglob("*.py"), key=lambda p: p.relative_to(folder).as_posix()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def package_version() -> str:
    """SHA-256 of the ``derive`` package's source files and the SymPy and networkx versions
    (SymPy's read from its installed metadata, without importing it)."""
    return sources_digest(Path(__file__).parent, f"sympy {metadata.version('sympy')}\nnetworkx {nx.__version__}\n")


def fingerprint(g: nx.DiGraph) -> str | None:
    """SHA-256 (hex) of :func:`graph_text`, :func:`registry_text` and :func:`package_version`;
    None when the graph has an attribute that is not JSON-native."""
    text = graph_text(g)
    if text is None:
        return None
    return hashlib.sha256("\n".join([text, registry_text(), package_version()]).encode("utf-8")).hexdigest()
