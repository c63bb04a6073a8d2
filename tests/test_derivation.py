"""The key test: derived backward equations against independent references.

For a table of networks, the gradients computed from the derived equations
(``derive.evaluate(derive.backprop(net), values)``) must equal

(a) ``derive.symbolic_gradients``: SymPy's derivative of the whole expanded objective,
    evaluated at 30 digits (independent of derive.derivation), to ~1e-10 relative; and
(b) central finite differences of the objective (``derive.evaluation.finite_differences``, which
    runs only the forward equations), to ~1e-6.

Also checked: the shape of the derived expressions (no KroneckerDelta, no range Piecewise,
activation VJPs through the output, the softmax VJP, the layer recursion).
"""

from __future__ import annotations

import functools

import networkx as nx
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy.matrices.expressions.matexpr import MatrixElement

from symprop import derive
from symprop.derive import symbols as S
from symprop.derive.evaluation import finite_differences, forward_values


# --- networks ------------------------------------------------------------------------------------

def shared_weight_net() -> nx.DiGraph:
    """One weight matrix W used by two dense layers of the same width: its gradient must accumulate."""
    g = nx.DiGraph(name="shared")
    g.add_node("x", op="input", shape=[3])
    g.add_node("W", op="parameter", shape=[3, 3])
    g.add_node("b1", op="parameter", shape=[3])
    g.add_node("b2", op="parameter", shape=[3])
    g.add_node("z1", op="dense")
    g.add_node("a1", op="activation", function="tanh")
    g.add_node("z2", op="dense")
    g.add_node("t", op="target", shape=[3])
    g.add_node("L", op="loss", function="mse")
    for u, v, a in [("x", "z1", "x"), ("W", "z1", "W"), ("b1", "z1", "b"), ("z1", "a1", "x"),
                    ("a1", "z2", "x"), ("W", "z2", "W"), ("b2", "z2", "b"), ("z2", "L", "y"), ("t", "L", "t")]:
        g.add_edge(u, v, arg=a)
    return g


def hostile_name_net() -> nx.DiGraph:
    """A network whose input node has a name that is not an identifier (nor safe LaTeX)."""
    return nx.relabel_nodes(derive.mlp([2, 2, 1], activation="tanh"), {"x": r"\input{/etc/passwd}"})


NETWORKS = {
    "tanh_mse": lambda: derive.mlp([2, 3, 1], activation="tanh", loss="mse"),
    "tanh_mse_deep": lambda: derive.mlp([2, 2, 2, 1], activation="tanh", loss="mse"),
    "relu_softmax_ce": lambda: derive.mlp([2, 2, 2], activation="relu", loss="softmax_cross_entropy"),
    "sigmoid_bce": lambda: derive.mlp([2, 3, 1], activation="tanh", loss="bce"),
    "bce_logits": lambda: derive.mlp([2, 3, 1], activation="sigmoid", loss="bce_logits"),
    "mae": lambda: derive.mlp([2, 3, 2], activation="tanh", loss="mae"),
    "leaky_relu": lambda: derive.mlp([2, 3, 1], activation="leaky_relu", loss="mse"),
    "leaky_relu_alpha": lambda: derive.Builder().input("x", 2).dense(3, activation="leaky_relu", alpha=0.3)
    .dense(1).loss("mse").build(),
    "elu": lambda: derive.mlp([2, 3, 1], activation="elu", loss="mse"),
    "gelu": lambda: derive.mlp([2, 3, 1], activation="gelu", loss="mse"),
    "softsign": lambda: derive.mlp([2, 3, 1], activation="softsign", loss="mse"),
    "softplus": lambda: derive.mlp([2, 3, 1], activation="softplus", loss="mse"),
    "silu": lambda: derive.mlp([2, 3, 1], activation="silu", loss="mse"),
    "identity": lambda: derive.mlp([2, 3, 1], activation="identity", loss="mse"),
    "step": lambda: derive.mlp([2, 3, 1], activation="step", loss="mse"),
    "formula_swish": lambda: derive.mlp([2, 3, 1], activation="x*sigmoid(x)", loss="mse"),
    "formula_loss": lambda: derive.mlp([2, 3, 2], activation="tanh", loss="(y-t)**4/4"),
    "softmax_mse": lambda: derive.Builder().input("x", 3).dense(3).softmax().loss("mse").build(),
    "penalty_l1": lambda: derive.mlp([2, 3, 1], activation="tanh", penalty="l1", weight=0.05),
    "penalty_l2": lambda: derive.mlp([2, 3, 1], activation="tanh", penalty="l2", weight=0.05),
    "penalty_on_bias": lambda: derive.Builder().input("x", 2).dense(2, activation="tanh").dense(1).loss("mse")
    .penalty("l2", 0.5, on=["b1"]).build(),
    "no_bias": lambda: derive.Builder().input("x", 2).dense(3, activation="tanh", bias=False).dense(1).loss("mse")
    .build(),
    "shared_weight": shared_weight_net,
    "hostile_name": hostile_name_net,
}


@functools.lru_cache(maxsize=None)
def derived(name: str):
    net = NETWORKS[name]()
    return net, derive.backprop(net)


def check_network(net, bp, batch: int, seed: int) -> None:
    values = derive.random_values(net, batch=batch, seed=seed)
    loss, grads = derive.evaluate(bp, values)
    truth = derive.symbolic_gradients(net, values)
    params = derive.parameters(net)
    assert sorted(grads) == sorted(params) == sorted(truth.grads)
    assert loss == pytest.approx(truth.loss, rel=1e-12, abs=1e-14)
    fd = finite_differences(bp, values)
    for p in params:
        assert grads[p].shape == truth.grads[p].shape == np.shape(values[p])
        scale = 1 + np.max(np.abs(truth.grads[p]))
        assert np.max(np.abs(grads[p] - truth.grads[p])) <= 1e-10 * scale, (p, grads[p], truth.grads[p])
        assert np.max(np.abs(grads[p] - fd[p])) <= 1e-6 * scale, (p, grads[p], fd[p])


def test_names_python_reads_as_one_stay_two_parameters():
    """Python normalises identifiers (NFKC): ``Ｗ1`` and ``W1`` as element names once made the
    ground truth's lambdified function fail with "duplicate argument 'W1_0_0'"."""
    import networkx as nx

    net = nx.relabel_nodes(derive.mlp([2, 3, 2], activation="tanh", loss="mse"), {"W2": "Ｗ1", "b2": "ｂ1"})
    check_network(net, derive.backprop(net), batch=3, seed=5)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_derived_gradients_match_symbolic_and_finite_differences(name):
    net, bp = derived(name)
    check_network(net, bp, batch=2, seed=sum(map(ord, name)))


def test_sympy_expression_as_activation_function():
    """``function`` may be a SymPy expression in ``derive.ops.X`` (as ``scalar_function`` says):
    it derives like the same formula given as a string."""
    import sympy as sp

    from symprop.derive.ops import X

    net = derive.mlp([2, 3, 1], activation="x*tanh(x)", loss="mse")
    expr_net = derive.mlp([2, 3, 1], activation="x*tanh(x)", loss="mse")
    expr_net.nodes["a1"]["function"] = X * sp.tanh(X)
    bp, expr_bp = derive.backprop(net), derive.backprop(expr_net)
    assert expr_bp.nodes["a1"].forward.rhs == bp.nodes["a1"].forward.rhs
    assert expr_bp.nodes["a1"].vjps["x"].rhs == bp.nodes["a1"].vjps["x"].rhs
    check_network(expr_net, expr_bp, batch=2, seed=5)


def test_batch_of_three():
    net, bp = derived("tanh_mse")
    check_network(net, bp, batch=3, seed=11)


# --- hypothesis: random small MLPs ---------------------------------------------------------------

ACTIVATIONS = ["tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus", "silu", "softsign", "identity"]


def parameter_count(sizes) -> int:
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(sizes=st.tuples(st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=2), st.integers(1, 2))
       .map(lambda p: [p[0], *p[1], p[2]]).filter(lambda s: parameter_count(s) <= 18),
       activation=st.sampled_from(ACTIVATIONS),
       loss=st.sampled_from(["mse", "mae", "bce_logits", "bce"]),
       seed=st.integers(0, 1000))
@pytest.mark.slow
def test_random_mlps(sizes, activation, loss, seed):
    """Random MLPs: 1-2 hidden layers of 1-3 units (the ground truth's cost bounds the sizes)."""
    net = derive.mlp(sizes, activation=activation, loss=loss)
    check_network(net, derive.backprop(net), batch=2, seed=seed)


# --- the accumulation of a shared parameter's gradient ------------------------------------------

def test_shared_weight_gradient_sums_both_uses():
    net, bp = derived("shared_weight")
    contributions = bp.gradients["W"]
    assert sorted(c.consumer for c in contributions) == ["z1", "z2"]
    assert all(c.arg == "W" for c in contributions)
    values = derive.random_values(net, batch=2, seed=5)
    _, grads = derive.evaluate(bp, values)
    # each use alone is not the gradient; their sum is
    env = forward_values(bp, values)
    dz2 = 2 * (env["z2"] - values["t"]) / env["z2"].size
    dz1 = (dz2 @ values["W"]) * (1 - env["a1"] ** 2)
    np.testing.assert_allclose(grads["W"], dz2.T @ env["a1"] + dz1.T @ values["x"], rtol=1e-12)
    assert not np.allclose(grads["W"], dz2.T @ env["a1"])
    assert "∂L/∂W = [from z2] + [from z1]" in bp.pretty() or "∂L/∂W = [from z1] + [from z2]" in bp.pretty()


def test_penalty_adds_weight_times_phi_prime():
    plain = derive.mlp([2, 3, 1], activation="tanh")
    values = derive.random_values(plain, batch=2, seed=2)
    _, g0 = derive.evaluate(derive.backprop(plain), values)
    _, g2 = derive.evaluate(derived("penalty_l2")[1], values)
    _, g1 = derive.evaluate(derived("penalty_l1")[1], values)
    for w in ("W1", "W2"):
        np.testing.assert_allclose(g2[w] - g0[w], 0.05 * values[w], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(g1[w] - g0[w], 0.05 * np.sign(values[w]), rtol=1e-9, atol=1e-15)
    for b in ("b1", "b2"):
        np.testing.assert_allclose(g2[b], g0[b], rtol=1e-14)


def test_step_network_passes_no_gradient_to_the_first_layer():
    net, bp = derived("step")
    _, grads = derive.evaluate(bp, derive.random_values(net, batch=2, seed=1))
    assert np.all(grads["W1"] == 0) and np.all(grads["b1"] == 0)
    assert np.any(grads["W2"] != 0)


def test_relu_gradient_at_exact_zero_follows_the_convention():
    """A pre-activation exactly at 0 passes no gradient (relu'(0) = 0, as PyTorch)."""
    net, bp = derived("relu_softmax_ce")
    values = derive.random_values(net, batch=2, seed=0)
    values["x"] = np.zeros_like(values["x"])
    values["b1"] = np.zeros_like(values["b1"])
    _, grads = derive.evaluate(bp, values)
    truth = derive.symbolic_gradients(net, values)
    assert np.all(grads["W1"] == 0) and np.all(grads["b1"] == 0)
    for p in grads:
        np.testing.assert_allclose(grads[p], truth.grads[p], rtol=1e-10, atol=1e-14)


# --- the form of the derived expressions ----------------------------------------------------------

def all_equations(bp):
    for nd in bp.nodes.values():
        if nd.forward is not None:
            yield nd, "forward", nd.forward
        for a, eq in nd.vjps.items():
            yield nd, a, eq
    for layer in bp.layers:
        for eq in (layer.delta, layer.weight_grad, layer.bias_grad):
            if eq is not None:
                yield None, "layer", eq


@pytest.mark.parametrize("name", ["tanh_mse", "relu_softmax_ce", "softmax_mse", "mae", "sigmoid_bce",
                                  "penalty_l1", "formula_loss", "shared_weight"])
def test_no_kronecker_delta_or_range_piecewise(name):
    _, bp = derived(name)
    for nd, what, eq in all_equations(bp):
        assert not eq.rhs.has(sp.KroneckerDelta), (what, eq)
        if nd is None or nd.op in ("dense", "loss", "softmax", "penalty"):
            assert not eq.rhs.has(sp.Piecewise), (what, eq)
        # every Piecewise (activations only) compares the value, never an index
        for pw in eq.rhs.atoms(sp.Piecewise):
            for _, cond in pw.args:
                assert not (cond.free_symbols & set(S.FREE) | cond.free_symbols & set(S.DUMMY)), pw


def test_dense_vjps_are_matrix_calculus_results():
    _, bp = derived("tanh_mse")
    z2 = bp.nodes["z2"]
    G = S.grad_matrix("z2", (derive.ops.BATCH, 1))
    W2 = S.value_matrix("W2", (1, 3))
    a1 = S.value_matrix("a1", (derive.ops.BATCH, 3))
    assert z2.vjps["x"].rhs == G * W2
    assert z2.vjps["W"].rhs == G.T * a1
    assert z2.vjps["b"].rhs == G.T * sp.OneMatrix(derive.ops.BATCH, 1)
    assert z2.vjps["x"].form == "matrix"


@pytest.mark.parametrize("activation,out_node,in_node", [("sigmoid", "a1", "z1"), ("tanh", "a1", "z1")])
def test_activation_vjp_is_expressed_through_the_output(activation, out_node, in_node):
    bp = derive.backprop(derive.mlp([2, 3, 1], activation=activation))
    rhs = bp.nodes[out_node].vjps["x"].rhs
    bases = {str(b.label) for b in rhs.atoms(sp.IndexedBase)}
    assert out_node in bases
    assert in_node not in bases
    assert S.GRAD_PREFIX + out_node in bases
    assert bp.nodes[out_node].derivatives["x"].through_output is not None
    y = sp.IndexedBase(out_node)[S.FREE[0], S.FREE[1]]
    g = sp.IndexedBase(S.GRAD_PREFIX + out_node)[S.FREE[0], S.FREE[1]]
    expected = g * (y * (1 - y) if activation == "sigmoid" else 1 - y ** 2)
    assert sp.expand(rhs - expected) == 0


def test_relu_vjp_uses_the_input():
    bp = derive.backprop(derive.mlp([2, 3, 1], activation="relu"))
    rhs = bp.nodes["a1"].vjps["x"].rhs
    n, i = S.FREE[:2]
    assert rhs == sp.IndexedBase("dL/da1")[n, i] * sp.Heaviside(sp.IndexedBase("z1")[n, i], 0)


def test_softmax_vjp_form():
    _, bp = derived("softmax_mse")
    eq = bp.nodes["p"].vjps["x"]
    n, i, _ = S.FREE
    y, g = sp.IndexedBase("p"), sp.IndexedBase("dL/dp")
    assert str(eq.lhs.base.label) == "dL/dz1" and eq.indices == (n, i)
    rhs = eq.rhs
    assert not rhs.has(sp.exp), "the softmax must be recognised and replaced by its output"
    assert {str(b.label) for b in rhs.atoms(sp.IndexedBase)} == {"p", "dL/dp"}
    sums = list(rhs.atoms(sp.Sum))
    assert len(sums) == 1
    (l, lo, hi), = sums[0].limits
    assert (lo, hi) == (0, 2)
    expected = y[n, i] * (g[n, i] - sp.Sum(g[n, l] * y[n, l], (l, 0, 2)))
    assert sp.expand((rhs - expected).doit()) == 0
    # the structure y * (g - Σ g y): a product with the output as one factor
    assert isinstance(rhs, sp.Mul) and y[n, i] in rhs.args


def test_softmax_cross_entropy_vjp_is_softmax_minus_target():
    _, bp = derived("relu_softmax_ce")
    eq = bp.nodes["L"].vjps["y"]
    assert not eq.rhs.has(sp.KroneckerDelta, sp.Piecewise)
    n, i, _ = S.FREE
    z, t = sp.IndexedBase("z2"), sp.IndexedBase("t")
    softmax = sp.exp(z[n, i]) / (sp.exp(z[n, 0]) + sp.exp(z[n, 1]))
    expected = (softmax * (t[n, 0] + t[n, 1]) - t[n, i]) / derive.ops.BATCH
    assert sp.simplify(eq.rhs.doit() - expected) == 0


def test_loss_vjps_divide_by_the_number_of_elements():
    _, bp = derived("mae")
    eq = bp.nodes["L"].vjps["y"]
    N = derive.ops.BATCH
    n, i, _ = S.FREE
    y, t = sp.IndexedBase("z2")[n, i], sp.IndexedBase("t")[n, i]
    assert sp.simplify(eq.rhs - sp.sign(y - t) / (2 * N)) == 0
    assert eq.extents == (N, 2)


def test_layer_recursion():
    net = derive.mlp([2, 3, 3, 1], activation="tanh")
    bp = derive.backprop(net)
    dense = [v for v in bp.info.order if net.nodes[v]["op"] == "dense"]
    assert [layer.dense for layer in bp.layers] == dense == ["z1", "z2", "z3"]
    assert [layer.number for layer in bp.layers] == [1, 2, 3]
    assert [layer.activation for layer in bp.layers] == ["a1", "a2", None]
    assert [layer.weight for layer in bp.layers] == ["W1", "W2", "W3"]
    assert [layer.bias for layer in bp.layers] == ["b1", "b2", "b3"]
    assert [layer.input for layer in bp.layers] == ["x", "a1", "a2"]
    for layer in bp.layers[:-1]:
        rhs = layer.delta.rhs
        names = {m.name for m in rhs.atoms(sp.MatrixSymbol)}
        nxt = layer.number + 1
        assert f"delta({nxt})" in names, (layer.number, rhs)
        assert f"W{nxt}" in names, (layer.number, rhs)
        assert rhs.atoms(MatrixElement)
        # the activation's derivative through its output
        assert sp.IndexedBase(layer.activation) in rhs.atoms(sp.IndexedBase)
        assert not any(str(b.label).startswith(S.GRAD_PREFIX) for b in rhs.atoms(sp.IndexedBase)), rhs
    last = bp.layers[-1]
    assert not any(m.name.startswith("delta(") for m in last.delta.rhs.atoms(sp.MatrixSymbol))
    assert {str(b.label) for b in last.delta.rhs.atoms(sp.IndexedBase)} == {"z3", "t"}
    for layer in bp.layers:
        delta = S.delta_matrix(layer.number, (derive.ops.BATCH, bp.info.shapes[layer.dense][0]))
        x = S.value_matrix(layer.input, (derive.ops.BATCH, bp.info.shapes[layer.input][0]))
        assert layer.weight_grad.rhs == delta.T * x
        assert layer.bias_grad.rhs == delta.T * sp.OneMatrix(derive.ops.BATCH, 1)
        assert layer.weight_grad.lhs.name == f"dL/dW{layer.number}"


def test_layer_recursion_agrees_with_the_graph_gradients():
    """Evaluate the δ recursion numerically and compare with evaluate()'s gradients."""
    net = derive.mlp([2, 3, 3, 1], activation="tanh")
    bp = derive.backprop(net)
    values = derive.random_values(net, batch=3, seed=4)
    env = forward_values(bp, values)
    _, grads = derive.evaluate(bp, values)
    N = values["x"].shape[0]
    delta = 2 * (env["z3"] - values["t"]) / (N * 1)
    for layer in reversed(bp.layers):
        np.testing.assert_allclose(grads[layer.weight], delta.T @ env[layer.input], rtol=1e-12)
        np.testing.assert_allclose(grads[layer.bias], delta.sum(axis=0), rtol=1e-12)
        if layer.number > 1:
            prev = bp.layers[layer.number - 2]
            delta = (delta @ values[layer.weight]) * (1 - env[prev.activation] ** 2)


def test_equation_objects():
    _, bp = derived("tanh_mse")
    eq = bp.nodes["a1"].vjps["x"]
    assert eq.form == "index" and eq.elementwise
    assert str(eq).startswith("dL/dz1[n, i] = ")
    assert bp.nodes["L"].forward.form == "scalar"
    assert bp.nodes["z1"].forward.form == "matrix"
    assert "$" in eq._repr_latex_()


def test_only_parameter_paths_get_gradients():
    _, bp = derived("tanh_mse")
    assert "x" not in bp.gradients and "t" not in bp.gradients
    assert "x" not in bp.nodes["z1"].vjps
    assert set(bp.nodes["z1"].vjps) == {"W", "b"}
    assert "t" not in bp.nodes["L"].vjps


# --- bad values for the evaluators ----------------------------------------------------------------

@pytest.mark.parametrize("change,needle", [
    (lambda d: d.pop("W1"), "no value for parameter 'W1'"),
    (lambda d: d.update(W1=np.zeros((2, 2))), "parameter 'W1' must have shape (3, 2), got (2, 2)"),
    (lambda d: d.update(t=np.zeros((2, 1))), "target 't' has 2 rows but the batch has 3"),
    (lambda d: d.update(x=np.full((3, 2), np.nan)), "input 'x' holds NaN or Inf"),
    (lambda d: d.update(x=np.array([["a", "b"]] * 3)), "input 'x' must hold real numbers"),
])
def test_evaluators_name_the_bad_value(change, needle):
    """They raised KeyError, NumPy's matmul errors or an IndexError from lambdified code, or
    returned NaN silently."""
    net = derive.mlp([2, 3, 1])
    values = derive.random_values(net, batch=3)
    change(values)
    for evaluate in (lambda: derive.evaluate(derive.backprop(net), values),
                     lambda: derive.symbolic_gradients(net, values)):
        with pytest.raises(ValueError) as info:
            evaluate()
        assert str(info.value).startswith(needle), str(info.value)


def test_evaluate_needs_a_derivation_and_random_values_counts():
    net = derive.mlp([2, 3, 1])
    with pytest.raises(TypeError, match="expected a derivation"):
        derive.evaluate(net, derive.random_values(net))
    for kwargs, needle in [({"batch": 0}, "batch must be an integer >= 1, got 0"),
                           ({"batch": True}, "batch must be an integer >= 1, got True"),
                           ({"seed": -1}, "seed must be an integer >= 0, got -1")]:
        with pytest.raises(ValueError, match=needle):
            derive.random_values(net, **kwargs)

