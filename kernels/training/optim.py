"""Optimizers whose update rules are SymPy expressions: printed like the backprop equations and
compiled into the training step by :mod:`kernels.cpu.epoch`.

An optimizer is a list of per-element update equations in order: state updates first, then the
parameter update. Symbols: ``w`` the parameter element, ``g`` its gradient, ``t`` the step
number (1-based), hyperparameters by name (``lr``, ``beta1``, ...), and one symbol per state
slot (``m``, ``v``, ...). Weight decay: ``l2`` adds ``l2*w`` to the gradient (coupled, as
PyTorch's ``weight_decay``), ``l1`` adds ``l1*sign(w)``; AdamW decays the weight itself
(decoupled, ``w <- w*(1 - lr*weight_decay)`` first, as PyTorch).

The rules below choose their terms only by which options are zero or false (never by a value):
:func:`kernels.cpu.epoch_keys.optimizer_key` relies on it to find a cached epoch function without
SymPy, which is imported only when the rules are first built.

Examples
--------
>>> opt = Adam(lr=1e-3)
>>> [str(lhs) for lhs, _ in opt.equations()]
['m', 'v', 'w']
>>> print(opt.pretty().splitlines()[-1])
w ← w - m·lr/((1 - β₁ᵗ)·(ε + √(v/(1 - β₂ᵗ))))
>>> SGD(lr=0.1, momentum=0.9, nesterov=True).state
('buf',)
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:   # SymPy is imported when the rules are first built (a warm process never does)
    import sympy as sp

__all__ = ["Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "AdamW", "get_optimizer", "OPTIMIZERS"]


@functools.cache
def _symbols() -> dict:
    """``w`` (a parameter element), ``g`` (its gradient), ``t`` (the step): made on first use."""
    import sympy as sp

    w, g = sp.symbols("w g", real=True)
    return {"w": w, "g": g, "t": sp.Symbol("t", positive=True, integer=True)}

_PRETTY = {"beta1": "β₁", "beta2": "β₂", "eps": "ε", "rho": "ρ", "mu": "μ", "lambda": "λ"}


def _minus(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``a - b`` kept in that order for printing (evaluates to the same value)."""
    import sympy as sp

    return sp.Add(a, sp.Mul(-1, b, evaluate=False), evaluate=False)


def _sym(name: str) -> sp.Symbol:
    import sympy as sp

    return sp.Symbol(name, positive=True)


@dataclass(frozen=True)
class Optimizer:
    """Base: subclasses define ``state`` (slot names) and ``_rules`` (the update equations)."""

    lr: float = 0.01
    l1: float = 0.0
    l2: float = 0.0
    name: str = field(default="optimizer", init=False)
    state: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.init:
                continue
            if f.type in (bool, "bool"):
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(f"{type(self).__name__}: option {f.name!r} must be true or false, got {value!r}")
                object.__setattr__(self, f.name, bool(value))
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{type(self).__name__}: hyperparameter {f.name!r} must be a number, got {value!r}")
            object.__setattr__(self, f.name, float(value))   # (frozen) NumPy scalars become floats
        for key in ("beta1", "beta2"):   # as PyTorch: an average needs a decay below 1
            if not 0 <= getattr(self, key, 0) < 1:
                raise ValueError(f"{type(self).__name__}: {key} must be in [0, 1), got {getattr(self, key)!r}")
        for key, value in self.hyperparameters().items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}: hyperparameter {key!r} must be a finite number >= 0, "
                                 f"got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be > 0, got {self.lr!r}")

    def hyperparameters(self) -> dict[str, float]:
        """Name -> value of every hyperparameter symbol the rules use."""
        return {f.name: float(getattr(self, f.name)) for f in self.__dataclass_fields__.values()
                if f.init and isinstance(getattr(self, f.name), (int, float)) and not isinstance(getattr(self, f.name), bool)}

    def gradient(self) -> sp.Expr:
        """The gradient after coupled weight decay."""
        import sympy as sp

        w = _symbols()["w"]
        out = _symbols()["g"]
        if self.l2:
            out = out + _sym("l2") * w
        if self.l1:
            out = out + _sym("l1") * sp.sign(w)
        return out

    def _rules(self) -> list[tuple[sp.Symbol, sp.Expr]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def equations(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """``[(target, new value), ...]`` applied in order to every parameter element."""
        return self._rules()

    def pretty(self) -> str:
        """The update rules, one per line, in Unicode."""
        from symprop.derive.printing import UnicodePrinter

        printer = UnicodePrinter(settings={"order": "none"})
        lines = []
        for lhs, rhs in self.equations():
            text = f"{printer.doprint(lhs)} ← {printer.doprint(rhs)}"
            for k, v in _PRETTY.items():
                text = text.replace(k, v)
            lines.append(text.replace("sqrt", "√").replace("^t", "ᵗ").replace("*", "·"))
        return "\n".join(lines)

    def latex(self) -> str:
        """The update rules as LaTeX rows (``w \\leftarrow ...``) for an ``align*`` block."""
        import sympy as sp

        names = {_sym(k): sp.Symbol({"beta1": r"\beta_1", "beta2": r"\beta_2", "eps": r"\epsilon", "rho": r"\rho",
                                     "mu": r"\mu", "lr": r"\eta"}.get(k, k), positive=True)
                 for k in self.hyperparameters()}
        rows = [rf"{sp.latex(lhs)} &\leftarrow {sp.latex(rhs.xreplace(names))}" for lhs, rhs in self.equations()]
        return " \\\\\n".join(rows)

    def step_numpy(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                   state: dict[str, dict[str, np.ndarray]], step: int) -> None:
        """Reference update in NumPy (float64), evaluated from the same SymPy rules; in place."""
        import sympy as sp

        hyper = self.hyperparameters()
        for p, value in params.items():
            slots = state.setdefault(p, {s: np.zeros_like(value) for s in self.state})
            env = {"w": value, "g": grads[p], "t": step, **hyper, **slots}
            for lhs, rhs in self.equations():
                symbols = sorted(rhs.free_symbols, key=lambda s: s.name)
                fn = sp.lambdify(symbols, rhs, modules="numpy")
                result = fn(*[env[s.name] for s in symbols])
                env[lhs.name] = np.broadcast_to(result, value.shape).astype(value.dtype)
            value[...] = env["w"]
            for s in self.state:
                slots[s][...] = env[s]


@dataclass(frozen=True)
class SGD(Optimizer):
    """``w ← w − lr·g`` (with ``momentum``: heavy ball, optionally Nesterov, as PyTorch)."""

    momentum: float = 0.0
    nesterov: bool = False
    name: str = field(default="sgd", init=False)

    @property
    def state(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("buf",) if self.momentum else ()

    def _rules(self):
        import sympy as sp

        w, grad = _symbols()["w"], self.gradient()
        if not self.momentum:
            return [(w, _minus(w, _sym("lr") * grad))]
        buf, mu = sp.Symbol("buf", real=True), _sym("momentum")
        # the rules apply in order: the parameter update sees the new buffer (PyTorch's convention)
        direction = grad + mu * buf if self.nesterov else buf
        return [(buf, mu * buf + grad), (w, _minus(w, _sym("lr") * direction))]


def Momentum(lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False, **kw) -> SGD:
    """SGD with momentum (a convenience constructor)."""
    return SGD(lr=lr, momentum=momentum, nesterov=nesterov, **kw)


@dataclass(frozen=True)
class RMSprop(Optimizer):
    """``s ← ρ s + (1−ρ) g²``, ``w ← w − lr·g/(√s + ε)``."""

    rho: float = 0.99
    eps: float = 1e-8
    name: str = field(default="rmsprop", init=False)
    state: tuple[str, ...] = field(default=("s",), init=False)

    def _rules(self):
        import sympy as sp

        w, s, grad = _symbols()["w"], sp.Symbol("s", real=True), self.gradient()
        rho = _sym("rho")
        return [(s, rho * s + (1 - rho) * grad ** 2), (w, _minus(w, _sym("lr") * grad / (sp.sqrt(s) + _sym("eps"))))]


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), coupled L1/L2 decay on the gradient."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: str = field(default="adam", init=False)
    state: tuple[str, ...] = field(default=("m", "v"), init=False)

    def _decoupled(self) -> sp.Expr:
        return _symbols()["w"]

    def _rules(self):
        import sympy as sp

        m, v, grad = sp.Symbol("m", real=True), sp.Symbol("v", real=True), self.gradient()
        b1, b2, t = _sym("beta1"), _sym("beta2"), _symbols()["t"]
        update = _sym("lr") * (m / (1 - b1 ** t)) / (sp.sqrt(v / (1 - b2 ** t)) + _sym("eps"))
        return [(m, b1 * m + (1 - b1) * grad), (v, b2 * v + (1 - b2) * grad ** 2), (_symbols()["w"], _minus(self._decoupled(), update))]


@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay: ``w ← w·(1 − lr·weight_decay)`` before the Adam step."""

    weight_decay: float = 0.01
    name: str = field(default="adamw", init=False)

    def _decoupled(self) -> sp.Expr:
        return _symbols()["w"] * (1 - _sym("lr") * _sym("weight_decay"))


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": lambda **kw: Momentum(nesterov=True, **kw),
              "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get_optimizer(name: str, **hyper) -> Optimizer:
    """An optimizer by name (``sgd``, ``momentum``, ``nesterov``, ``rmsprop``, ``adam``, ``adamw``).

    >>> get_optimizer("adam", lr=0.01).lr
    0.01
    >>> get_optimizer("sgd", weight_decay=0.1)
    Traceback (most recent call last):
    ...
    ValueError: optimizer 'sgd' has no option 'weight_decay' (its options: lr, l1, l2, momentum, nesterov)
    """
    try:
        factory = OPTIMIZERS[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown optimizer {name!r} (known: {', '.join(OPTIMIZERS)})") from None
    given = {k: v for k, v in hyper.items() if v is not None}
    cls = factory if isinstance(factory, type) else SGD     # momentum and nesterov are SGD's
    options = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise ValueError(f"optimizer {name!r} has no option {unknown[0]!r} (its options: {', '.join(options)})")
    return factory(**given)
