"""An optimizer's update equations lowered to element statements, shared by the CPU epoch
(:mod:`symprop.kernels.cpu.epoch`) and the CUDA update (:mod:`symprop.kernels.cuda.codegen`)."""

from __future__ import annotations

import sympy as sp

from symprop.kernels.cpu.epoch_keys import hyper_names

__all__ = ["OptimizerRules"]


class _Hoister:
    """Replaces subexpressions of hyperparameters and ``t`` alone with per-step scalars."""

    def __init__(self, constant: set):
        self.constant = constant
        self.scalars: dict = {}          # expression -> Symbol, in first-seen order

    def scalar(self, e):
        if e not in self.scalars:
            self.scalars[e] = sp.Symbol(f"_o{len(self.scalars) + 1}", real=True)
        return self.scalars[e]

    def is_const(self, e) -> bool:
        return e.free_symbols <= self.constant

    def __call__(self, e):
        if e.is_Number:
            return e
        if self.is_const(e):
            return self.scalar(e)
        if isinstance(e, (sp.Add, sp.Mul)):
            const = [a for a in e.args if self.is_const(a) and not a.is_Number]
            nums = [a for a in e.args if a.is_Number]
            rest = [self(a) for a in e.args if not self.is_const(a)]
            head = [self.scalar(e.func(*nums, *const))] if const else nums
            return e.func(*head, *rest, evaluate=False)
        if e.is_Atom:
            return e
        return e.func(*[self(a) for a in e.args], evaluate=False)


class OptimizerRules:
    """An optimizer's update rules renamed for generated code, shared by the CPU epoch and the
    CUDA update (:mod:`kernels.cuda.codegen`).

    ``rules``: ``(lhs, rhs)`` with the element symbols ``o_w, o_g, o_<slot>``; the subexpressions
    of the hyperparameters (``h_<name>``) and of the step ``t`` (named ``step``) alone are hoisted
    into per-step scalars ``_o1, _o2, ...`` (``scalars``: expression -> symbol, in order).
    ``names``: the hyperparameters in :func:`hyper_names` order.

    >>> from symprop.kernels.training.optim import SGD
    >>> r = OptimizerRules(SGD(lr=0.1))
    >>> r.rules, dict(r.scalars)
    ([(o_w, _o1*o_g + o_w)], {-h_lr: _o1})
    """

    def __init__(self, optimizer, step: str = "t_step"):
        self.names = hyper_names(optimizer)
        hyper = {k: sp.Symbol(f"h_{k}", real=True) for k in self.names}
        element = {s: sp.Symbol(f"o_{s}", real=True) for s in ("w", "g", *optimizer.state)}
        tsym = sp.Symbol(step, integer=True)

        def rename(s):
            if s.name in element:
                return element[s.name]
            if s.name in hyper:
                return hyper[s.name]
            if s.name == "t":
                return tsym
            raise ValueError(f"optimizer {type(optimizer).__name__}: unknown symbol {s} in its rules")

        eqs = optimizer.equations()
        table = {s: rename(s) for lhs, rhs in eqs for s in {lhs} | rhs.free_symbols}
        hoist = _Hoister(set(hyper.values()) | {tsym})
        self.rules = [(table[lhs], hoist(rhs.xreplace(table))) for lhs, rhs in eqs]
        self.scalars = hoist.scalars
        self.pretty = optimizer.pretty().splitlines()
