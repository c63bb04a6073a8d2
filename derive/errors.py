"""Error types of the derivation core.

Every error raised for a user's input is a one-line message that names the culprit
(the node, the file, the formula) and the reason, so the command-line tool can print it as is.

Examples
--------
>>> str(SpecError("node 'h1': unknown op 'dnese'"))
"node 'h1': unknown op 'dnese'"
"""

__all__ = ["SymPropError", "SpecError", "GraphError"]


class SymPropError(ValueError):
    """Base class of the errors symprop raises for bad user input."""


class SpecError(SymPropError):
    """A spec file (TOML or JSON) that cannot be read or does not describe a network."""


class GraphError(SymPropError):
    """A network graph that fails validation (cycle, unknown op, shape mismatch, ...)."""
