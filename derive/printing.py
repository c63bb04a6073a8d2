"""Printing derived equations: one-line Unicode for terminals, LaTeX for documents.

Both printers subclass SymPy's and override only what symprop's equations need:
node names (``dL/dv`` prints ``∂L/∂v``, ``delta(l)`` prints ``δ⁽ˡ⁾``), transposes, the
all-ones vector, batch sums (``Gᵀ·𝟙`` prints ``Σₙ G``), Hadamard products in elementwise
equations (``⊙``, indices dropped), and softmax recognised in its exp/sum form.
User text (node names) is escaped in LaTeX, so any name prints as text.

Examples
--------
>>> from symprop.derive.build import mlp
>>> from symprop.derive.derivation import backprop
>>> d = backprop(mlp([2, 3, 1], activation="tanh"))
>>> print(pretty_equation(d.nodes["a1"].vjps["x"]))
∂L/∂z1 = ∂L/∂a1 ⊙ (1 - a1²)
>>> print(pretty_equation(d.layers[0].delta))
δ⁽¹⁾ = (δ⁽²⁾·W2) ⊙ (1 - a1²)
>>> print(latex_equation(d.layers[0].weight_grad))
\\frac{\\partial L}{\\partial W_{1}} = {\\delta^{(1)}}^{\\top} x
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from . import symbols as S
from .ops import get_op
from .scalar import CONVENTIONS

__all__ = ["pretty_equation", "latex_equation", "latex_sides", "pretty_report", "latex_report", "latex_escape",
           "UnicodePrinter", "SympropLatexPrinter"]

_SUPER = str.maketrans("0123456789()-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾⁻")
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "#": r"\#", "$": r"\$", "%": r"\%",
                  "&": r"\&", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "×": r"\ensuremath{\times}", "→": r"\ensuremath{\to}", "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_escape(text: str) -> str:
    r"""Escape user text for LaTeX text mode.

    >>> print(latex_escape(r"\input{/etc/passwd} 50% a_b"))
    \textbackslash{}input\{/etc/passwd\} 50\% a\_b
    """
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


class Softmax(sp.Expr):
    """Display form of ``exp(z[n, i]) / Σ_l exp(z[n, l])``: ``softmax(z)``, with the indices of
    the element (any number of axes)."""

    def __new__(cls, base, *indices):
        return sp.Expr.__new__(cls, base, *indices)


def _display(expr):
    """Rewrites for reading only: softmax in its exp/sum form."""
    def is_softmax(e):
        if not isinstance(e, sp.Mul) or len(e.args) != 2:
            return False
        num = [a for a in e.args if isinstance(a, sp.exp)]
        den = [a for a in e.args if isinstance(a, sp.Pow) and a.exp == -1 and isinstance(a.base, sp.Sum)]
        if not (num and den) or not isinstance(num[0].args[0], sp.Indexed):
            return False
        top, s = num[0].args[0], den[0].base
        body = s.function
        if not (isinstance(body, sp.exp) and isinstance(body.args[0], sp.Indexed) and body.args[0].base == top.base
                and len(s.limits) == 1 and len(body.args[0].indices) == len(top.indices)):
            return False
        # the same element but on the summed axis: a row of the top's array
        var = s.limits[0][0]
        differ = [q for q, (a, b) in enumerate(zip(body.args[0].indices, top.indices)) if a != b]
        return len(differ) <= 1 and all(body.args[0].indices[q] == var for q in differ)

    def to_softmax(e):
        top = next(a for a in e.args if isinstance(a, sp.exp)).args[0]
        return Softmax(top.base, *top.indices)

    def split(e):  # exp(z)*Sum(t)/Sum(exp) -> Sum(t) * [exp(z)/Sum(exp)]
        num = [a for a in e.args if isinstance(a, sp.exp)]
        den = [a for a in e.args if isinstance(a, sp.Pow) and a.exp == -1 and isinstance(a.base, sp.Sum)]
        if num and den and is_softmax(sp.Mul(num[0], den[0], evaluate=False)):
            rest = [a for a in e.args if a is not num[0] and a is not den[0]]
            return sp.Mul(*rest, to_softmax(sp.Mul(num[0], den[0], evaluate=False)))
        return e

    if not isinstance(expr, sp.Basic) or not expr.has(sp.Sum):
        return expr
    return expr.replace(lambda e: isinstance(e, sp.Mul), split)


def _is_array(e) -> bool:
    return bool(e.atoms(sp.Indexed)) or isinstance(e, (MatrixElement, Softmax)) or bool(e.atoms(MatrixElement))


def _is_upstream(e) -> bool:
    """A factor carrying the upstream gradient: ``∂L/∂v``, ``δ⁽ˡ⁾`` or a matrix product's element."""
    if e.atoms(MatrixElement) or isinstance(e, MatrixElement):
        return True
    return any(S.parse_name(str(b.label))[0] != "value" for b in e.atoms(sp.IndexedBase))


def _hadamard_split(mul):
    """``[upstream, local]`` for an elementwise product of an upstream gradient and a local
    derivative (printed ``upstream ⊙ local``); None when the product is not of that shape."""
    up = [f for f in mul.args if _is_upstream(f)]
    local = [f for f in mul.args if not _is_upstream(f)]
    if len(up) != 1 or not local or not any(_is_array(f) for f in local):
        return None
    return [up[0], sp.Mul(*local)]


class _Names:
    """Name printing shared by both printers."""

    unicode = True

    def _node_name(self, name: str) -> str:
        return name

    def _name(self, name: str) -> str:
        kind, rest = S.parse_name(name)
        if kind == "grad":
            return self._grad_name(self._node_name(rest))
        if kind == "delta":
            return self._delta_name(rest)
        return self._node_name(name)

    # every name goes through _name, in both printers
    def _print_Symbol(self, e, style="plain"):
        return self._name(e.name)

    def _print_MatrixSymbol(self, e):
        return self._name(e.name)

    def _print_IndexedBase(self, e):
        return self._name(str(e.label))


class UnicodePrinter(_Names, StrPrinter):
    """One-line Unicode printing of derived equations."""

    printmethod = "_symprop_unicode"  # ignore objects' own _sympystr (Indexed has one)

    def __init__(self, elementwise: bool = False, settings=None):
        super().__init__(settings or {})
        self.elementwise = elementwise

    def _grad_name(self, name):
        return f"∂L/∂{name}"

    def _delta_name(self, layer):
        return "δ" + f"({layer})".translate(_SUPER)

    def _print_Indexed(self, e):
        base = self._print(e.base)
        if self.elementwise:
            return base
        return f"{base}[{','.join(self._print(i) for i in e.indices)}]"

    def _print_MatrixElement(self, e):
        inner = self._print(e.parent)
        if self.elementwise:
            return f"({inner})" if isinstance(e.parent, (sp.MatMul, sp.MatAdd)) else inner
        return f"({inner})[{self._print(e.i)},{self._print(e.j)}]"

    def _print_Transpose(self, e):
        arg = self._print(e.arg)
        return (arg if isinstance(e.arg, sp.MatrixSymbol) else f"({arg})") + "ᵀ"

    def _print_OneMatrix(self, e):
        return "𝟙"

    def _print_MatMul(self, e):
        args = list(e.args)
        if isinstance(args[-1], sp.OneMatrix) and len(args) == 2 and isinstance(args[0], sp.Transpose):
            return f"Σₙ {self._print(args[0].arg)}"
        return "·".join(self._print(a) if isinstance(a, (sp.Transpose, sp.MatrixSymbol, sp.OneMatrix))
                        else self.parenthesize(a, 60) for a in args)

    def _print_Pow(self, e, rational=False):
        """Integer powers as superscripts (``a1²``, ``(|z1| + 1)⁻²``), square roots as ``√``
        (``√(z1² + 1)⁻³`` for an exponent of -3/2), any other power with ``^`` (``2^z1``), never
        Python's ``**``; ``x**-1`` stays ``1/x``."""
        base = self.parenthesize(e.base, 60)
        if e.exp.is_Integer and e.exp not in (1, -1):
            return base + str(int(e.exp)).translate(_SUPER)
        if e.exp.is_Rational and e.exp.q == 2:
            root = "√" + (base if e.base.is_Atom else f"({self._print(e.base)})")
            return root if e.exp.p == 1 else root + str(int(e.exp.p)).translate(_SUPER)
        if e.exp == -1:
            return super()._print_Pow(e, rational)
        return f"{base}^{self.parenthesize(e.exp, 60)}"

    def _print_Mul(self, e):
        split = _hadamard_split(e) if self.elementwise else None
        if split:
            return " ⊙ ".join(self.parenthesize(f, 50) for f in split)
        return super()._print_Mul(e)

    def _print_Heaviside(self, e):
        return f"H({self._print(e.args[0])})"

    def _print_Sum(self, e):
        body = self._print(e.function)
        idx = ",".join(self._print(lim[0]) for lim in e.limits)
        return f"Σ_{idx}({body})"

    def _print_Softmax(self, e):
        base = self._print(e.args[0])
        return f"softmax({base})" if self.elementwise else f"softmax({base})[{','.join(map(self._print, e.args[1:]))}]"

    def _print_Abs(self, e):
        return f"|{self._print(e.args[0])}|"

    def _print_FloorDiv(self, e):
        return f"⌊{self.parenthesize(e.args[0], 50)}/{self._print(e.args[1])}⌋"

    def _print_Mod(self, e):
        return f"{self.parenthesize(e.args[0], 50)} mod {self._print(e.args[1])}"


class SympropLatexPrinter(_Names, LatexPrinter):
    """LaTeX printing of derived equations; node names are escaped user text."""

    printmethod = "_symprop_latex"

    def __init__(self, elementwise: bool = False, settings=None):
        super().__init__(settings or {})
        self.elementwise = elementwise

    def _node_name(self, name: str) -> str:
        m = re.fullmatch(r"([A-Za-z]+)(\d*)", name)
        if m:
            letters, digits = m.groups()
            head = letters if len(letters) == 1 else rf"\mathrm{{{letters}}}"
            return head + (f"_{{{digits}}}" if digits else "")
        return rf"\text{{{latex_escape(name)}}}"

    def _grad_name(self, name):
        return rf"\frac{{\partial L}}{{\partial {name}}}"

    def _delta_name(self, layer):
        return rf"\delta^{{({latex_escape(layer)})}}"

    def _print_Indexed(self, e):
        base = self._print(e.base)
        if self.elementwise:
            return base
        base = f"{{{base}}}" if "_" in base or "frac" in base else base
        return f"{base}_{{{','.join(self._print(i) for i in e.indices)}}}"

    def _print_MatrixElement(self, e):
        inner = self._print(e.parent)
        if self.elementwise:
            return rf"\left({inner}\right)" if isinstance(e.parent, (sp.MatMul, sp.MatAdd)) else inner
        return rf"\left({inner}\right)_{{{self._print(e.i)},{self._print(e.j)}}}"

    def _print_Transpose(self, e):
        arg = self._print(e.arg)
        return (rf"{{{arg}}}" if isinstance(e.arg, sp.MatrixSymbol) else rf"\left({arg}\right)") + r"^{\top}"

    def _print_OneMatrix(self, e):
        return r"\mathbf{1}"

    def _print_MatMul(self, e):
        args = list(e.args)
        if isinstance(args[-1], sp.OneMatrix) and len(args) == 2 and isinstance(args[0], sp.Transpose):
            return rf"\sum_{{n}} {self._print(args[0].arg)}"
        return " ".join(self._print(a) if isinstance(a, (sp.Transpose, sp.MatrixSymbol, sp.OneMatrix))
                        else self.parenthesize(a, 60) for a in args)

    def _print_Mul(self, e):
        split = _hadamard_split(e) if self.elementwise else None
        if split:
            return r" \odot ".join(self.parenthesize(f, 50) for f in split)
        return super()._print_Mul(e)

    def _print_Heaviside(self, e, exp=None):
        return rf"H\left({self._print(e.args[0])}\right)"

    def _print_FloorDiv(self, e):
        return rf"\left\lfloor {self.parenthesize(e.args[0], 50)}/{self._print(e.args[1])} \right\rfloor"

    def _print_NumberSymbol(self, e):  # pi, GoldenRatio, ...: their own _latex (printmethod skips it)
        return e._latex(self)

    def _print_Softmax(self, e):
        base = self._print(e.args[0])
        if self.elementwise:
            return rf"\operatorname{{softmax}}\left({base}\right)"
        return rf"\operatorname{{softmax}}\left({base}\right)_{{{','.join(map(self._print, e.args[1:]))}}}"


def _sides(eq, printer_cls):
    elementwise = eq.elementwise or _is_elementwise_delta(eq)
    p = printer_cls(elementwise=elementwise)
    return p.doprint(eq.lhs), p.doprint(_display(eq.rhs))


def _is_elementwise_delta(eq) -> bool:
    """δ equations mix matrix elements ``(δ W)[n, i]`` with elementwise factors: print them elementwise."""
    if eq.form != "index" or eq.rhs.has(sp.Sum):
        return False
    elems = eq.rhs.atoms(sp.Indexed) | eq.rhs.atoms(MatrixElement)
    return all(tuple(getattr(e, "indices", None) or (e.i, e.j)) == eq.indices for e in elems)


def pretty_equation(eq) -> str:
    """``lhs = rhs`` in one line of Unicode."""
    lhs, rhs = _sides(eq, UnicodePrinter)
    return f"{lhs} = {rhs}"


def latex_equation(eq) -> str:
    """``lhs = rhs`` in LaTeX (math mode, no delimiters)."""
    lhs, rhs = latex_sides(eq)
    return f"{lhs} = {rhs}"


def latex_sides(eq) -> tuple[str, str]:
    """``(lhs, rhs)`` in LaTeX, for documents that align equations (``lhs &= rhs``)."""
    return _sides(eq, SympropLatexPrinter)


def _describe(bp, v) -> str:
    """The node's op in a few words, as its form puts it (``activation tanh``)."""
    op = get_op(bp.nodes[v].op)
    return op.form.describe(op, bp.nodes[v].attrs)


def _shape_text(bp, v) -> str:
    shape = bp.info.shapes[v]
    dims = (["N"] if bp.info.batched[v] else []) + [str(d) for d in shape]
    return "×".join(dims) if dims else "scalar"


def _report_items(bp):
    """(section title, [(label, equation)]) in reading order; shared by both report printers."""
    forward = [(f"{v}  [{_describe(bp, v)}, {_shape_text(bp, v)}]", nd.forward)
               for v, nd in bp.nodes.items() if nd.forward is not None]
    backward = []
    for v in reversed(list(bp.nodes)):
        for a, eq in bp.nodes[v].vjps.items():
            backward.append((f"{v} → {bp.info.args[v][a]}  (argument {a})", eq))
    layers = []
    for layer in bp.layers:
        layers.append((f"layer {layer.number}: {layer.dense}" + (f" → {layer.activation}" if layer.activation else ""),
                       layer.delta))
        if layer.weight_grad is not None:
            layers.append(("", layer.weight_grad))
        if layer.bias_grad is not None:
            layers.append(("", layer.bias_grad))
    return [("Forward", forward), ("Backward (derived vector-Jacobian products)", backward),
            ("Layer recursion", layers)]


def _total_gradients(bp):
    """Nodes whose gradient sums several consumers' contributions."""
    return {v: cs for v, cs in bp.gradients.items() if len(cs) > 1}


def pretty_report(bp, unicode: bool = True) -> str:
    """Every equation of a :class:`~derive.derivation.Backprop`, for a terminal."""
    name = bp.graph.graph.get("name", "network")
    params = ", ".join(f"{p} {_shape_text(bp, p)}" for p in bp.parameters)
    lines = [f"Network {name!r}: {bp.graph.number_of_nodes()} nodes; parameters: {params}",
             f"Conventions: {CONVENTIONS}"]
    lines += [f"Warning: {w}" for w in bp.warnings] + [""]
    for title, items in _report_items(bp):
        if not items:
            continue
        lines.append(title)
        for label, eq in items:
            if label:
                lines.append(f"  {label}")
            lines.append(f"      {pretty_equation(eq)}")
        lines.append("")
    totals = _total_gradients(bp)
    if totals:
        lines.append("Gradients summed over consumers")
        for v, cs in totals.items():
            terms = " + ".join(f"[from {c.consumer}]" for c in cs)
            lines.append(f"  ∂L/∂{v} = {terms}")
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    if not unicode:
        text = _to_ascii(text)
    return text


_ASCII = {"∂": "d", "δ": "delta", "⊙": "(*)", "·": "*", "ᵀ": "^T", "𝟙": "1", "Σ": "sum", "ₙ": "_n", "→": "->",
          "×": "x", "√": "sqrt", "←": "<-", "⌊": "floor(", "⌋": ")"}
_SUPERSCRIPT = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁽⁾]+")


def _to_ascii(text: str) -> str:
    """Plain ASCII: superscript runs become ``^...`` (``δ⁽²⁾ -> delta^(2)``, ``a1² -> a1^2``)."""
    text = _SUPERSCRIPT.sub(lambda m: "^" + m.group(0).translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁽⁾", "0123456789-()")),
                            text)
    for k, v in _ASCII.items():
        text = text.replace(k, v)
    return text.encode("ascii", "backslashreplace").decode("ascii")   # a name's own letters: α -> \u03b1


def latex_report(bp, notebook: bool = False) -> str:
    """The same equations as LaTeX ``align*`` blocks, one per section, labels as escaped text.

    ``notebook=True`` leaves out what MathJax does not render (comments, ``\\paragraph``) and
    puts each section title in the block as text.
    """
    out = [] if notebook else [rf"% conventions: {latex_escape(CONVENTIONS)}"]
    for w in bp.warnings:   # as pretty_report: what the reader must know before the equations
        out.append(rf"\textbf{{Warning:}} {latex_escape(w)}" if notebook else rf"\paragraph{{Warning}} {latex_escape(w)}")
    for title, items in _report_items(bp):
        if not items:
            continue
        if not notebook:
            out.append(rf"\paragraph{{{latex_escape(title)}}}")
        out.append(r"\begin{align*}")
        rows = [rf"&\text{{{latex_escape(title)}}}"] if notebook else []
        for label, eq in items:
            lhs, rhs = _sides(eq, SympropLatexPrinter)
            tag = rf" && \text{{{latex_escape(label)}}}" if label else ""
            rows.append(rf"{lhs} &= {rhs}{tag}")
        out.append(" \\\\\n".join(rows))
        out.append(r"\end{align*}")
    totals = _total_gradients(bp)
    if totals:   # a parameter used twice: its gradient is the sum of the VJPs above
        title = "Gradients summed over consumers"
        out += [] if notebook else [rf"\paragraph{{{latex_escape(title)}}}"]
        rows = [rf"&\text{{{latex_escape(title)}}}"] if notebook else []
        printer = SympropLatexPrinter()
        for v, cs in totals.items():
            lhs = printer.doprint(S.grad_matrix(v, (1, 1)))
            terms = " + ".join(rf"[\text{{from }} {printer.doprint(S.value_matrix(c.consumer, (1, 1)))}]" for c in cs)
            rows.append(rf"{lhs} &= {terms}")
        out += [r"\begin{align*}", " \\\\\n".join(rows), r"\end{align*}"]
    return "\n".join(out) + "\n"
