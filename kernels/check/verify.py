"""Check a compiled model's gradients against references that do not share its code.

:func:`verify` draws random parameters, inputs and targets (:func:`derive.random_values`, seeded),
runs the compiled kernel and compares every parameter's gradient with

* ``symbolic``: :func:`derive.symbolic_gradients`, the whole expanded objective differentiated by
  SymPy and evaluated with mpmath at 30 digits: the ground truth. It scales badly (expression
  swell), so by default (``symbolic="auto"``) it is used only for networks with at most
  :data:`SYMBOLIC_LIMIT` parameter values; ``True``/``False`` force it on or off;
* ``finite-diff``: central differences ``(L(w + h) - L(w - h)) / (2h)`` of the objective computed
  by the *float64* compiled kernel (also when the model under test is float32), one element at a
  time, with ``h = 1e-6 · max(1, |w|)``;
* ``directional``: for networks with more than :data:`FD_ELEMENTWISE_LIMIT` parameter values,
  instead of per-element differences, one seeded random unit direction ``u`` per parameter and the
  check ``<Jᵀv, u> = <∂L/∂w, u>`` (with ``v = 1``, the objective being a scalar) against the
  directional difference ``(L(w + h·u) - L(w - h·u)) / (2h)``. The result says which was used.

An element passes when ``|compiled - reference| <= atol + rtol · |reference|``. The tolerances
(:data:`TOLERANCES`) are keyed by the dtype of the model under test and the reference:

================  ===========  ======  ======
dtype             reference    rtol    atol
================  ===========  ======  ======
float64           symbolic     1e-9    1e-12
float64           finite-diff  1e-5    1e-7
float32           either       2e-3    1e-5
================  ===========  ======  ======

Why these numbers. Against the symbolic truth a float64 kernel differs only by rounding: a few
ulps per operation, accumulated over sums of a few batch rows (eps64 = 2.2e-16, so 1e-9 relative
leaves six orders of magnitude of room while still catching any wrong rule, which errs in the
leading digits). A central difference has truncation error O(h²·|L'''|) ≈ 1e-12 and rounding
error O(eps·|L|/h) ≈ 2.2e-16·|L|/1e-6 ≈ 2e-10·|L|; rtol 1e-5, atol 1e-7 leave a margin of about a
hundred for objectives of size up to ~100. A float32 kernel rounds each operation at
eps32 = 1.2e-7 (and its inputs are rounded to float32 before it sees them); errors of a few
hundred ulps relative, larger for elements that are small sums of cancelling terms, give rtol
2e-3 and atol 1e-5. A wrong rule (a missing factor, a transposed product, a sign) shows up as an
error of order one relative, far above every tolerance; the tests check that a gradient scaled by
1.01 is reported.

:func:`assert_gradients` raises :class:`AssertionError` with a readable message when a check
fails; the ``assert_gradients`` pytest fixture (:mod:`kernels.check.pytest_plugin`) does the same.

Examples
--------
>>> TOLERANCES["float64"]["symbolic"], TOLERANCES["float32"]["finite-diff"]
((1e-09, 1e-12), (0.002, 1e-05))
>>> from symprop import derive
>>> result = verify(derive.mlp([2, 3, 1], activation="tanh"))          # doctest: +SKIP
>>> result.ok, result.parameters, result.references                     # doctest: +SKIP
(True, ['W1', 'b1', 'W2', 'b2'], ['symbolic', 'finite-diff'])
>>> print(result.table())                                                # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Mapping

import networkx as nx
import numpy as np

__all__ = ["verify", "assert_gradients", "VerifyResult", "Row", "TOLERANCES", "SYMBOLIC_LIMIT",
           "FD_ELEMENTWISE_LIMIT", "FD_STEP"]

#: ``dtype -> reference -> (rtol, atol)``; ``directional`` uses the ``finite-diff`` entry.
TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    "float64": {"symbolic": (1e-9, 1e-12), "finite-diff": (1e-5, 1e-7)},
    "float32": {"symbolic": (2e-3, 1e-5), "finite-diff": (2e-3, 1e-5)},
}
#: ``symbolic="auto"`` uses SymPy only up to this many parameter values.
SYMBOLIC_LIMIT = 150
#: Above this many parameter values, finite differences are directional, not per element.
FD_ELEMENTWISE_LIMIT = 2000
#: Relative finite-difference step: ``h = FD_STEP · max(1, |w|)``.
FD_STEP = 1e-6

_REFERENCE_KEY = {"symbolic": "symbolic", "finite-diff": "finite-diff", "directional": "finite-diff"}
_OBJECTIVE = "(objective)"


@dataclass(frozen=True)
class Row:
    """One parameter (or the objective) compared with one reference.

    ``worst_index`` is the element where ``|compiled - reference| / (atol + rtol·|reference|)`` is
    largest (``None`` for a directional check, whose values are the inner products
    ``<∂L/∂w, u>``); ``compiled_value`` and ``reference_value`` are the values there.
    ``max_rel_error`` divides by ``max(|reference|, atol)``. ``ratio`` is the worst error over its
    tolerance: the row passes when it is at most 1.
    """

    parameter: str
    shape: tuple
    reference: str
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple | None
    compiled_value: float
    reference_value: float
    rtol: float
    atol: float
    ok: bool
    ratio: float

    @property
    def tolerance(self) -> str:
        return f"rtol={self.rtol:.0e}, atol={self.atol:.0e}"

    @property
    def where(self) -> str:
        """``W1[1, 0]``, ``W1·u`` for a directional check, or the objective's name."""
        if self.parameter == _OBJECTIVE:
            return self.parameter
        if self.worst_index is None:
            return f"<∂L/∂{self.parameter}, u>"
        return f"{self.parameter}[{', '.join(map(str, self.worst_index))}]"

    def describe(self) -> str:
        """One line: what failed (or passed), where, the values and the tolerance."""
        verdict = "ok" if self.ok else "FAILED"
        return (f"{self.parameter} vs {self.reference}: {verdict}; worst element {self.where}: "
                f"compiled {self.compiled_value:.12g} vs reference {self.reference_value:.12g} "
                f"(abs err {self.max_abs_error:.3g}, rel err {self.max_rel_error:.3g}; tolerance "
                f"|compiled - reference| <= atol + rtol·|reference| with {self.tolerance})")


@dataclass
class VerifyResult:
    """The outcome of :func:`verify`: ``ok``, the ``rows`` and how they were obtained."""

    rows: list[Row]
    name: str
    dtype: str
    backend: str
    batch: int
    seed: int
    n_values: int
    symbolic_used: bool
    symbolic_note: str
    fd_mode: str  # "elementwise", "directional" or "off"
    fd_note: str
    loss: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def parameters(self) -> list[str]:
        return list(dict.fromkeys(r.parameter for r in self.rows if r.parameter != _OBJECTIVE))

    @property
    def references(self) -> list[str]:
        return list(dict.fromkeys(r.reference for r in self.rows))

    def failures(self) -> list[Row]:
        """The failing rows, worst first."""
        return sorted((r for r in self.rows if not r.ok), key=lambda r: -r.ratio)

    def worst(self) -> Row | None:
        """The row with the largest error relative to its tolerance (``None`` with no rows)."""
        return max(self.rows, key=lambda r: r.ratio, default=None)

    def header(self) -> str:
        return (f"gradient check of {self.name!r}: dtype={self.dtype}, backend={self.backend!r}, "
                f"batch={self.batch}, seed={self.seed}, {self.n_values} parameter values\n"
                f"  symbolic: {self.symbolic_note}\n"
                f"  finite differences: {self.fd_note}")

    def table(self) -> str:
        """An aligned text table, one row per parameter and reference."""
        head = ("parameter", "shape", "reference", "max abs err", "max rel err", "worst at", "compiled",
                "reference value", "rtol", "atol", "ok")
        body = []
        for r in self.rows:
            shape = "(" + ", ".join(map(str, r.shape)) + ("," if len(r.shape) == 1 else "") + ")"
            if r.worst_index is None:
                where = "u (random)"
            else:
                where = "[" + ", ".join(map(str, r.worst_index)) + "]" if r.worst_index else "-"
            body.append((r.parameter, shape, r.reference, f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}",
                         where, f"{r.compiled_value:.10g}", f"{r.reference_value:.10g}", f"{r.rtol:.0e}",
                         f"{r.atol:.0e}", "ok" if r.ok else "FAIL"))
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        numeric = {3, 4, 6, 7, 8, 9}

        def line(cells):
            return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "  ".join("-" * w for w in widths)
        verdict = "all within tolerance" if self.ok else f"{len(self.failures())} of {len(self.rows)} rows FAILED"
        return "\n".join([self.header(), line(head), rule, *map(line, body), f"result: {verdict}"])

    def __str__(self) -> str:
        return self.table()

    def message(self) -> str:
        """The assertion message: each failing row described, then the table."""
        fails = self.failures()
        if not fails:
            return f"gradients of {self.name!r} are within tolerance\n" + self.table()
        names = ", ".join(dict.fromkeys(repr(r.parameter) for r in fails))
        lines = [f"gradient check failed for {names} ({self.dtype}, backend={self.backend!r}):"]
        lines += ["  " + r.describe() for r in fails]
        return "\n".join(lines + ["", self.table()])


# --- helpers -------------------------------------------------------------------------------------

def _is_model(obj) -> bool:
    return hasattr(obj, "loss_and_grads") and hasattr(obj, "signature") and hasattr(obj, "net")


def _tolerances(dtype: str, tolerances) -> dict[str, tuple[float, float]]:
    """Merge user tolerances into the defaults: ``(rtol, atol)`` for all references, or a mapping
    ``reference -> (rtol, atol)``, or a mapping ``dtype -> reference -> (rtol, atol)``."""
    tol = dict(TOLERANCES[dtype])
    if tolerances is None:
        return tol
    if isinstance(tolerances, Mapping):
        if dtype in tolerances and isinstance(tolerances[dtype], Mapping):
            tolerances = tolerances[dtype]
        for key, value in tolerances.items():
            key = _REFERENCE_KEY.get(key, key)
            if key not in tol:
                raise ValueError(f"unknown reference {key!r} in tolerances (use 'symbolic' or 'finite-diff')")
            tol[key] = _pair(value, f"tolerances[{key!r}]")
        return tol
    pair = _pair(tolerances, "tolerances")
    return {k: pair for k in tol}


def _pair(value, what: str) -> tuple[float, float]:
    """``(rtol, atol)``: two finite numbers >= 0 (a negative bound passed any gradient)."""
    try:
        rtol, atol = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair (rtol, atol) of numbers, got {value!r}") from None
    if not (math.isfinite(rtol) and math.isfinite(atol) and rtol >= 0 and atol >= 0):
        raise ValueError(f"{what} must be finite numbers >= 0, got {value!r}")
    return rtol, atol


def _compare(parameter: str, reference: str, compiled, expected, rtol: float, atol: float,
             directional: bool = False, shape: tuple | None = None) -> Row:
    c = np.asarray(compiled, dtype=np.float64)
    r = np.asarray(expected, dtype=np.float64)
    diff = np.abs(c - r)
    bound = atol + rtol * np.abs(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff == 0, 0.0, diff / bound)
        rel = diff / np.maximum(np.abs(r), atol if atol > 0 else np.finfo(np.float64).tiny)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)  # NaN or Inf anywhere fails
    flat = int(np.argmax(ratio)) if ratio.size else 0
    idx = tuple(int(i) for i in np.unravel_index(flat, ratio.shape)) if ratio.ndim else ()
    worst_ratio = float(ratio.flat[flat]) if ratio.size else 0.0
    return Row(parameter=parameter, shape=tuple(c.shape) if shape is None else tuple(shape),
               reference=reference, max_abs_error=float(np.max(diff)) if diff.size else 0.0,
               max_rel_error=float(np.max(rel)) if rel.size else 0.0,
               worst_index=None if directional else idx,
               compiled_value=float(c.flat[flat]) if c.size else float("nan"),
               reference_value=float(r.flat[flat]) if r.size else float("nan"),
               rtol=rtol, atol=atol, ok=bool(worst_ratio <= 1.0), ratio=worst_ratio)


def _fingerprint(net) -> str:
    nodes = sorted((str(v), repr(sorted(d.items()))) for v, d in net.nodes(data=True))
    edges = sorted((str(u), str(v), repr(sorted(d.items()))) for u, v, d in net.edges(data=True))
    return repr((net.graph.get("name"), nodes, edges))


_SYMBOLIC_MEMO: dict[str, object] = {}


def _symbolic(net, values: Mapping[str, np.ndarray]):
    """:func:`derive.symbolic_gradients`, remembered per (network, values) in this process: the
    float64 and float32 checks of one network at one seed share it."""
    from symprop import derive
    h = hashlib.sha256(_fingerprint(net).encode())
    for k in sorted(values):
        arr = np.ascontiguousarray(values[k], dtype=np.float64)
        h.update(k.encode() + repr(arr.shape).encode() + arr.tobytes())
    key = h.hexdigest()
    if key not in _SYMBOLIC_MEMO:
        if len(_SYMBOLIC_MEMO) >= 64:
            _SYMBOLIC_MEMO.pop(next(iter(_SYMBOLIC_MEMO)))
        _SYMBOLIC_MEMO[key] = derive.symbolic_gradients(net, values)
    return _SYMBOLIC_MEMO[key]


def _run(model, values: Mapping[str, np.ndarray], params: Mapping[str, np.ndarray]):
    """The compiled objective and gradients, through ``loss_and_grads`` when the network has one
    input and one target (so a wrapped ``loss_and_grads`` is what gets checked), else ``evaluate``."""
    sig = model.signature
    if len(sig.inputs) == 1 and len(sig.targets) == 1:
        return model.loss_and_grads(values[sig.inputs[0]], values[sig.targets[0]], params)
    return model.evaluate({v: values[v] for v in (*sig.inputs, *sig.targets)}, params)


def _fd_elementwise(loss, params: dict[str, np.ndarray], p: str) -> np.ndarray:
    w = params[p]
    out = np.empty(w.shape, dtype=np.float64)
    for idx in np.ndindex(*w.shape):
        orig = float(w[idx])
        h = FD_STEP * max(1.0, abs(orig))
        up, down = orig + h, orig - h
        w[idx] = up
        lp = loss(params)
        w[idx] = down
        lm = loss(params)
        w[idx] = orig
        out[idx] = (lp - lm) / (up - down)
    return out


def _fd_directional(loss, params: dict[str, np.ndarray], p: str, u: np.ndarray) -> float:
    w0 = params[p]
    h = FD_STEP * max(1.0, float(np.max(np.abs(w0), initial=0.0)))
    try:
        params[p] = w0 + h * u
        lp = loss(params)
        params[p] = w0 - h * u
        lm = loss(params)
    finally:
        params[p] = w0
    return (lp - lm) / (2.0 * h)


# --- the check -----------------------------------------------------------------------------------

def verify(net=None, backend: str = "cpu", dtype="float64", batch: int = 3, seed: int = 0,
           symbolic="auto", tolerances=None, *, model=None, fd="auto", fd_model=None) -> VerifyResult:
    """Compare a compiled model's gradients with SymPy's and with finite differences.

    Parameters
    ----------
    net:
        A network (``networkx.DiGraph``), compiled here with :func:`kernels.compile`, or an
        already compiled model (same as ``model=``).
    backend, dtype:
        For compiling ``net``; ignored when a model is given (the model's own are used).
    batch, seed:
        Size of the random batch and seed of :func:`derive.random_values`, which draws the
        parameters (N(0, 0.5²)), inputs and targets the gradients are compared at; the model's
        own :attr:`parameters` are not used.
    symbolic:
        ``"auto"`` (only with at most :data:`SYMBOLIC_LIMIT` parameter values), ``True`` or ``False``.
    tolerances:
        ``None`` for :data:`TOLERANCES`, ``(rtol, atol)`` for every reference, or a mapping
        ``{"symbolic": (rtol, atol), "finite-diff": (rtol, atol)}`` (either key may be left out).
    model:
        An already compiled model (:class:`kernels.model.CompiledModel` or anything with its
        ``signature``, ``net``, ``dtype``, ``backend``, ``loss_and_grads`` and ``evaluate``).
    fd:
        ``"auto"`` (per element up to :data:`FD_ELEMENTWISE_LIMIT` parameter values, else one
        random direction per parameter), ``"elementwise"``, ``"directional"`` or ``False``.
    fd_model:
        The float64 compiled model whose objective is differenced (default: the model itself when
        it is float64, else ``net`` compiled in float64 with the same backend).
    """
    from symprop import derive
    if symbolic not in ("auto", True, False):
        raise ValueError(f"symbolic must be 'auto', True or False, got {symbolic!r}")
    if fd not in ("auto", "elementwise", "directional", False, None):
        raise ValueError(f"fd must be 'auto', 'elementwise', 'directional' or False, got {fd!r}")
    if _is_model(net):
        model, net = net, None
    if model is not None:
        if net is not None and net is not model.net and not nx.utils.graphs_equal(net, model.net):
            raise ValueError("give either a network or a compiled model (or the network it was compiled from)")
        net = model.net
        dtype_name = np.dtype(model.dtype).name
        backend = getattr(model, "backend", backend)
    else:
        if net is None:
            raise TypeError("verify() needs a network or a compiled model")
        from symprop.kernels.backends import compile

        dtype_name = np.dtype(dtype).name
        model = compile(net, backend=backend, dtype=dtype_name, seed=seed)
    if dtype_name not in TOLERANCES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype_name!r}")
    tol = _tolerances(dtype_name, tolerances)

    values = derive.random_values(net, batch=batch, seed=seed)
    names = list(model.signature.parameters)
    n_values = int(sum(np.asarray(values[p]).size for p in names))
    params = {p: np.array(values[p], dtype=np.float64) for p in names}
    loss, grads = _run(model, values, {p: v.copy() for p, v in params.items()})
    missing = set(names) - set(grads)
    if missing:
        raise ValueError(f"the compiled model returned no gradient for {sorted(missing)}")

    rows: list[Row] = []
    notes: list[str] = []

    # (a) SymPy, the ground truth
    if symbolic == "auto":
        use_symbolic = n_values <= SYMBOLIC_LIMIT
        symbolic_note = (f"used (auto: {n_values} parameter values <= {SYMBOLIC_LIMIT})" if use_symbolic else
                         f"skipped (auto: {n_values} parameter values > {SYMBOLIC_LIMIT}; pass symbolic=True "
                         f"to force it)")
    else:
        use_symbolic = bool(symbolic)
        symbolic_note = "used (forced)" if use_symbolic else "skipped (symbolic=False)"
    if not use_symbolic:
        notes.append("symbolic reference " + symbolic_note)
    truth = _symbolic(net, values) if use_symbolic else None
    if truth is not None:
        symbolic_note += "; SymPy differentiates the expanded objective, mpmath evaluates at 30 digits"
        rtol, atol = tol["symbolic"]
        rows.append(_compare(_OBJECTIVE, "symbolic", loss, truth.loss, rtol, atol))

    # (b), (c) central differences of the float64 compiled objective
    mode = {"auto": "elementwise" if n_values <= FD_ELEMENTWISE_LIMIT else "directional",
            False: "off", None: "off"}.get(fd, fd)
    if mode == "off":
        fd_note = "off (fd=False)"
    else:
        if fd_model is None:
            if dtype_name == "float64":
                fd_model = model
            else:
                from symprop.kernels.backends import compile

                fd_model = compile(net, backend=backend, dtype="float64", seed=seed)
        if np.dtype(fd_model.dtype) != np.float64:
            raise ValueError("fd_model must be a float64 model")
        sig = fd_model.signature
        data = {v: values[v] for v in (*sig.inputs, *sig.targets)}

        def objective(ps):
            return fd_model.evaluate(data, ps)[0]

        if mode == "elementwise":
            fd_note = (f"elementwise central differences of the float64 compiled objective, "
                       f"h = {FD_STEP:g}·max(1, |w|)")
        else:
            fd_note = (f"directional: one random unit direction u per parameter, <dL/dw, u> vs "
                       f"(L(w + h·u) - L(w - h·u))/(2h), h = {FD_STEP:g}·max(1, max|w|)"
                       + (f" ({n_values} parameter values > {FD_ELEMENTWISE_LIMIT})" if fd == "auto" else ""))
            notes.append("finite differences: " + fd_note)
    rng = np.random.default_rng([seed, 0x5EED])

    for p in names:
        g = np.asarray(grads[p])
        if g.shape != tuple(np.shape(values[p])):
            raise ValueError(f"gradient of {p!r} has shape {g.shape}, expected {np.shape(values[p])}")
        if truth is not None:
            rtol, atol = tol["symbolic"]
            rows.append(_compare(p, "symbolic", g, truth.grads[p], rtol, atol))
        if mode == "elementwise":
            rtol, atol = tol["finite-diff"]
            rows.append(_compare(p, "finite-diff", g, _fd_elementwise(objective, params, p), rtol, atol))
        elif mode == "directional":
            rtol, atol = tol["finite-diff"]
            u = rng.normal(size=g.shape)
            norm = float(np.linalg.norm(u))
            u = u / norm if norm > 0 else u
            compiled = float(np.sum(g.astype(np.float64) * u))
            rows.append(_compare(p, "directional", compiled, _fd_directional(objective, params, p, u), rtol, atol,
                                 directional=True, shape=g.shape))

    name = str(net.graph.get("name", "network"))
    return VerifyResult(rows=rows, name=name, dtype=dtype_name, backend=str(backend), batch=batch, seed=seed,
                        n_values=n_values, symbolic_used=truth is not None, symbolic_note=symbolic_note,
                        fd_mode=mode, fd_note=fd_note, loss=float(loss), notes=notes)


def assert_gradients(net=None, backend: str = "cpu", dtype="float64", **kw) -> VerifyResult:
    """:func:`verify`, raising :class:`AssertionError` naming the failing parameter, reference,
    worst element, compiled and reference values and tolerance; returns the result when it passes.

    The same check is the ``assert_gradients`` fixture of the symprop pytest plugin.
    """
    __tracebackhide__ = True
    result = verify(net, backend=backend, dtype=dtype, **kw)
    if not result.ok:
        raise AssertionError(result.message())
    return result
