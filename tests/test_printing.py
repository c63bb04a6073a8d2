"""Tests of derive.printing: the Unicode report, the ASCII fallback and LaTeX (escaped user text)."""

from __future__ import annotations

import functools

import networkx as nx
import pytest

from symprop import derive
from symprop.derive.printing import latex_escape

HOSTILE = r"\input{/etc/passwd}"


@functools.lru_cache(maxsize=None)
def bp(kind: str):
    if kind == "tanh":
        return derive.backprop(derive.mlp([2, 16, 16, 1], activation="tanh", loss="mse"))
    if kind == "sigmoid":
        return derive.backprop(derive.mlp([2, 3, 1], activation="sigmoid", loss="bce"))
    if kind == "relu_ce":
        return derive.backprop(derive.mlp([2, 3, 3], activation="relu", loss="softmax_cross_entropy"))
    if kind == "softmax":
        return derive.backprop(derive.Builder().input("x", 3).dense(3).softmax().loss("mse").build())
    if kind == "softsign_l1":
        return derive.backprop(derive.mlp([2, 3, 1], activation="softsign", loss="mae", penalty="l1"))
    if kind == "hostile":
        return derive.backprop(nx.relabel_nodes(derive.mlp([2, 3, 1], activation="tanh"), {"x": HOSTILE}))
    raise KeyError(kind)


ALL = ["tanh", "sigmoid", "relu_ce", "softmax", "softsign_l1", "hostile"]


# --- Unicode ---------------------------------------------------------------------------------------

def test_tanh_mlp_layer_recursion_textbook_form():
    """The documented textbook form (README, derive/__init__.py, derive/printing.py docstrings)."""
    text = bp("tanh").pretty()
    assert "δ⁽¹⁾ = (δ⁽²⁾·W2) ⊙ (1 - a1²)" in text
    assert "δ⁽²⁾ = (δ⁽³⁾·W3) ⊙ (1 - a2²)" in text


def test_tanh_mlp_layer_recursion_pieces():
    text = bp("tanh").pretty()
    lines = [line.strip() for line in text.splitlines()]
    delta1 = next(line for line in lines if line.startswith("δ⁽¹⁾ = "))
    factors = sorted(part.strip() for part in delta1[len("δ⁽¹⁾ = "):].split("⊙"))
    assert factors == ["(1 - a1²)", "(δ⁽²⁾·W2)"]
    assert "∂L/∂W1 = δ⁽¹⁾ᵀ·x" in lines
    assert "∂L/∂b1 = Σₙ δ⁽¹⁾" in lines
    assert "∂L/∂W2 = δ⁽²⁾ᵀ·a1" in lines
    assert "∂L/∂W3 = δ⁽³⁾ᵀ·a2" in lines
    assert "∂L/∂b3 = Σₙ δ⁽³⁾" in lines
    assert "δ⁽³⁾ = (-2*t + 2*z3)/N" in lines


def test_tanh_mlp_sections_and_forward():
    text = bp("tanh").pretty()
    assert text.startswith("Network 'mlp': 14 nodes; parameters: W1 16×2, b1 16, W2 16×16")
    for title in ("Forward", "Backward (derived vector-Jacobian products)", "Layer recursion"):
        assert f"\n{title}\n" in text
    assert "z1 = x·W1ᵀ + 𝟙·b1ᵀ" in text
    assert "a1 = tanh(z1)" in text
    assert "∂L/∂a2 = ∂L/∂z3·W3" in text
    assert "∂L/∂W3 = ∂L/∂z3ᵀ·a2" in text
    assert "z3 → W3  (argument W)" in text
    assert "layer 1: z1 → a1" in text and "layer 3: z3" in text


def test_conventions_are_printed():
    for kind in ("tanh", "relu_ce"):
        text = bp(kind).pretty()
        assert f"Conventions: {derive.CONVENTIONS}" in text
        assert "relu'(0) = 0" in text


def test_str_is_pretty():
    assert str(bp("tanh")) == bp("tanh").pretty()


def _rhs(text: str, lhs: str) -> str:
    return next(l.strip() for l in text.splitlines() if l.strip().startswith(lhs + " = "))[len(lhs) + 3:]


def test_sigmoid_vjp_through_output():
    """sigmoid' is printed through the output a1: a Hadamard product with (1 - a1) and a1."""
    text = bp("sigmoid").pretty()
    rhs = _rhs(text, "∂L/∂z1")
    assert "∂L/∂a1" in rhs and "⊙" in rhs
    assert "(1 - a1)" in rhs
    assert rhs.replace("∂L/∂a1", "").replace("(1 - a1)", "").count("a1") == 1
    assert "exp" not in rhs and "z1" not in rhs
    delta1 = _rhs(text, "δ⁽¹⁾")
    assert "(δ⁽²⁾·W2)" in delta1 and "⊙" in delta1 and "(1 - a1)" in delta1
    assert "exp" not in delta1 and "z1" not in delta1
    assert "a1 = 1/(1 + exp(-z1))" in text


def test_relu_and_softmax_cross_entropy_printing():
    text = bp("relu_ce").pretty()
    assert "∂L/∂z1 = H(z1) ⊙ ∂L/∂a1" in text or "∂L/∂z1 = ∂L/∂a1 ⊙ H(z1)" in text
    line = next(l.strip() for l in text.splitlines() if l.strip().startswith("∂L/∂z2[n,i] = "))
    assert "softmax(z2)[n,i]" in line and "t[n,i]" in line and "/N" in line
    assert "KroneckerDelta" not in text and "Piecewise" not in text


def test_softmax_vjp_printing():
    text = bp("softmax").pretty()
    assert "∂L/∂z1[n,i] = (∂L/∂p[n,i] - Σ_l(∂L/∂p[n,l]*p[n,l]))*p[n,i]" in text


def test_abs_and_penalty_printing():
    text = bp("softsign_l1").pretty()
    assert "|z1|" in text
    assert "penalty l1 weight" in text
    assert "sign(" in text


def test_gradients_summed_over_consumers_section():
    g = nx.DiGraph(name="shared")
    g.add_node("x", op="input", shape=[2])
    g.add_node("W", op="parameter", shape=[2, 2])
    g.add_node("z1", op="dense")
    g.add_node("z2", op="dense")
    g.add_node("t", op="target", shape=[2])
    g.add_node("L", op="loss", function="mse")
    for u, v, a in [("x", "z1", "x"), ("W", "z1", "W"), ("z1", "z2", "x"), ("W", "z2", "W"),
                    ("z2", "L", "y"), ("t", "L", "t")]:
        g.add_edge(u, v, arg=a)
    text = derive.backprop(g).pretty()
    assert "Gradients summed over consumers" in text
    assert "∂L/∂W = [from z2] + [from z1]" in text
    tex = derive.backprop(g).latex()     # the LaTeX output says so too (it did not)
    assert r"\paragraph{Gradients summed over consumers}" in tex
    assert r"\frac{\partial L}{\partial W} &= [\text{from } z_{2}] + [\text{from } z_{1}]" in tex
    assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") == 4


def test_warnings_are_in_the_latex_too():
    b = derive.backprop(derive.mlp([2, 3, 1], activation="step"))
    assert b.warnings and all(derive.printing.latex_escape(w) in b.latex() for w in b.warnings)


def test_powers_print_as_superscripts_roots_and_carets_never_python():
    """``(|z1| + 1)**(-2)`` mixed Python's ** with superscripts."""
    for formula, printed in [("x/(1+abs(x))", "(|z1| + 1)⁻²"), ("x/sqrt(1+x**2)", "√(z1² + 1)⁻³"),
                             ("2**x", "a1 = 2^z1"), ("x**(1/3)", "a1 = z1^(1/3)"), ("x**(-3)", "a1 = z1⁻³")]:
        lines = derive.backprop(derive.mlp([2, 3, 1], activation=formula)).pretty().splitlines()
        equations = "\n".join(line for line in lines if line.startswith("      "))   # not the formula as typed
        assert printed in equations and "**" not in equations, (formula, equations)


# --- ASCII -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL)
def test_ascii_is_pure_ascii(kind):
    text = bp(kind).pretty(unicode=False)
    assert text.isascii(), sorted({c for c in text if not c.isascii()})


def test_ascii_is_ascii_with_unicode_node_names():
    net = nx.relabel_nodes(derive.mlp([2, 3, 1], activation="tanh"), {"a1": "αctivé", "z2": "größe"})
    text = derive.backprop(net).pretty(unicode=False)
    assert text.isascii() and "\\u03b1ctiv\\xe9" in text


def test_ascii_content():
    text = bp("tanh").pretty(unicode=False)
    assert "dL/dW1 = delta^(1)^T*x" in text
    assert "dL/db1 = sum_n delta^(1)" in text
    assert "(1 - a1^2)" in text and "(*)" in text


def test_ascii_layer_numbers_print_like_layer_one():
    """δ⁽²⁾ must become delta^(2) like δ⁽¹⁾ becomes delta^(1) (not delta^(^2))."""
    text = bp("tanh").pretty(unicode=False)
    assert "delta^(2)" in text and "delta^(3)" in text
    assert "^(^" not in text


# --- LaTeX -----------------------------------------------------------------------------------------

def test_latex_contains_the_closed_forms():
    tex = bp("tanh").latex()
    assert r"\frac{\partial L}{\partial W_{1}}" in tex
    assert r"\odot" in tex
    assert r"\delta^{(1)}" in tex
    assert r"\frac{\partial L}{\partial W_{1}} &= {\delta^{(1)}}^{\top} x" in tex
    assert r"\sum_{n} \delta^{(1)}" in tex
    assert r"\left(1 - a_{1}^{2}\right)" in tex
    assert tex.startswith("% conventions: ")
    assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") == 3


def test_latex_equation():
    d = bp("tanh")
    assert derive.latex_equation(d.layers[0].weight_grad) == r"\frac{\partial L}{\partial W_{1}} = {\delta^{(1)}}^{\top} x"
    assert derive.pretty_equation(d.layers[0].weight_grad) == "∂L/∂W1 = δ⁽¹⁾ᵀ·x"


def test_repr_latex():
    d = bp("tanh")
    tex = d._repr_latex_()
    assert isinstance(tex, str) and tex.strip()
    assert r"\delta^{(1)}" in tex and r"\frac{\partial L}{\partial W_{1}}" in tex
    assert tex.count(r"\begin{") == tex.count(r"\end{")
    eq = d.layers[0].delta._repr_latex_()
    assert eq.startswith("$") and eq.endswith("$")
    assert r"\delta^{(1)}" in eq and r"\odot" in eq
    assert r"\input{" not in bp("hostile")._repr_latex_()


def test_latex_escapes_a_hostile_node_name():
    tex = bp("hostile").latex()
    assert r"\input{" not in tex
    assert r"\input" not in tex.replace(r"\textbackslash{}input", "")
    assert latex_escape(HOSTILE) in tex
    # the Unicode report shows the name as it is
    assert HOSTILE in bp("hostile").pretty()


@pytest.mark.parametrize("name", [r"a}b\c", "50% off", "x_$#&~^", r"\\write18{rm -rf}"])
def test_latex_escapes_other_names(name):
    d = derive.backprop(nx.relabel_nodes(derive.mlp([2, 1], activation=None), {"x": name}))
    tex = d.latex()
    assert f"\\text{{{latex_escape(name)}}}" in tex
    assert "\\write18" not in tex
    for line in tex.splitlines():
        if name in line:
            raise AssertionError(f"raw name in LaTeX: {line}")


def test_latex_name_cannot_close_the_environment():
    name = r"\end{align*}\input{x}\begin{align*}"
    d = derive.backprop(nx.relabel_nodes(derive.mlp([2, 1], activation=None), {"x": name}))
    tex = d.latex()
    assert tex.count(r"\begin{align*}") == tex.count(r"\end{align*}") == 3
    assert r"\input{" not in tex


def test_latex_escape():
    assert latex_escape(r"\input{/etc/passwd} 50% a_b") == r"\textbackslash{}input\{/etc/passwd\} 50\% a\_b"
    assert latex_escape("plain") == "plain"


def test_latex_softmax_and_heaviside():
    tex = bp("relu_ce").latex()
    assert r"\operatorname{softmax}" in tex
    assert r"H\left(z_{1}\right)" in tex
