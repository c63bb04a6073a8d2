"""Values of any rank: every op at feature ranks 1-3 against independent references.

The gradients computed from the derived equations (``derive.evaluate(derive.backprop(net), values)``)
must equal (a) ``derive.symbolic_gradients``, SymPy's derivative of the whole objective expanded
with NumPy's broadcasting and reshaping over concrete sizes, and (b) central finite differences
of the forward equations. Also: the ``[2, 3]`` input whose loss once averaged 2 of its 6 elements,
broadcast parameters getting their gradient summed over the broadcast axes, views against
``numpy.reshape``, and a one-line GraphError naming the node for every bad shape or axis.
"""

from __future__ import annotations

import functools

import networkx as nx
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symprop import derive
from symprop.derive import symbols as S
from symprop.derive.evaluation import finite_differences, forward_values


def check_network(net, batch: int = 2, seed: int = 0) -> None:
    bp = derive.backprop(net)
    values = derive.random_values(net, batch=batch, seed=seed)
    loss, grads = derive.evaluate(bp, values)
    truth = derive.symbolic_gradients(net, values)
    fd = finite_differences(bp, values)
    params = derive.parameters(net)
    assert sorted(grads) == sorted(params) == sorted(truth.grads)
    assert loss == pytest.approx(truth.loss, rel=1e-12, abs=1e-14)
    for p in params:
        assert grads[p].shape == truth.grads[p].shape == np.shape(values[p])
        scale = 1 + np.max(np.abs(truth.grads[p]))
        assert np.max(np.abs(grads[p] - truth.grads[p])) <= 1e-10 * scale, (p, grads[p], truth.grads[p])
        assert np.max(np.abs(grads[p] - fd[p])) <= 1e-6 * scale, (p, grads[p], fd[p])
    for nd in bp.nodes.values():
        for eq in [nd.forward, *nd.vjps.values()]:
            assert eq is None or not eq.rhs.has(sp.KroneckerDelta), eq


def B(name: str, shape) -> derive.Builder:
    return derive.Builder(name).input("x", shape)


#: shapes of ranks 1-3, small enough for the ground truth
SHAPES = {1: [3], 2: [2, 3], 3: [2, 1, 3]}

NETWORKS = {}
for rank, shape in SHAPES.items():
    NETWORKS.update({
        # a parameter of the full feature shape added, then an activation: each elementwise op at rank r
        f"activation_r{rank}": functools.partial(lambda s, r: B(f"act{r}", s).parameter("b", s).add("b")
                                                 .activation("tanh").loss("mse").build(), shape, rank),
        f"mul_r{rank}": functools.partial(lambda s, r: B(f"mul{r}", s).parameter("g", s).mul("g")
                                          .activation("sigmoid").loss("bce").build(), shape, rank),
        # a bias over the last axis only: summed over the batch and the leading axes
        f"add_last_r{rank}": functools.partial(lambda s, r: B(f"addl{r}", s).parameter("b", s[-1:]).add("b")
                                               .activation("softplus").loss("mae").build(), shape, rank),
        f"softmax_last_r{rank}": functools.partial(lambda s, r: B(f"sm{r}", s).parameter("b", s).add("b")
                                                   .softmax().loss("mse").build(), shape, rank),
        f"softmax_ce_r{rank}": functools.partial(lambda s, r: B(f"ce{r}", s).parameter("b", s[-1:]).add("b")
                                                 .loss("softmax_cross_entropy").build(), shape, rank),
        f"flatten_r{rank}": functools.partial(lambda s, r: B(f"fl{r}", s).parameter("b", s).mul("b").flatten()
                                              .dense(2, activation="tanh").loss("bce_logits").build(), shape, rank),
        f"penalty_r{rank}": functools.partial(lambda s, r: B(f"pen{r}", s).parameter("w", s).add("w")
                                              .loss("mse").penalty("l1", 0.1, on="w").build(), shape, rank),
    })
NETWORKS.update({
    "softmax_axis0_r2": lambda: B("sm0", [2, 3]).parameter("b", [2, 3]).add("b").softmax(axis=0).loss("mse").build(),
    "softmax_axis1_r3": lambda: B("sm1", [2, 2, 2]).parameter("w", [2, 1, 2]).mul("w").softmax(axis=1)
    .loss("mse").build(),
    "softmax_ce_axis0_r3": lambda: _with_loss_axis(B("ce0", [2, 2, 2]).parameter("b", [2, 1, 1]).add("b"), 0),
    "stretched_axes": lambda: B("st", [2, 3]).parameter("b", [2, 1]).add("b").parameter("g", [1, 3]).mul("g")
    .activation("tanh").loss("mse").build(),
    "parameter_of_higher_rank": lambda: B("hi", [3]).parameter("b", [2, 3]).add("b").activation("tanh")
    .loss("mse").build(),
    "batch_of_lower_rank": lambda: _two_inputs(),
    "reshape_1_to_2_to_3": lambda: B("rs", [6]).dense(6).reshape([2, 3]).softmax(axis=0).reshape([3, 1, 2])
    .activation("tanh").loss("mse").build(),
    "reshape_2_to_2": lambda: B("rs2", [2, 3]).parameter("b", [2, 3]).add("b").reshape([3, 2])
    .softmax().loss("mse").build(),
    "residual": lambda: B("res", [3]).dense(3, activation="tanh").add("x", name="r").dense(1).loss("mse").build(),
    "gated_residual": lambda: B("gate", [2, 2]).parameter("b", [2]).add("b", name="h").activation("sigmoid", name="s")
    .mul("h", name="gated").add("x").flatten().dense(1).loss("mse").build(),
})


def _with_loss_axis(builder: derive.Builder, axis: int) -> nx.DiGraph:
    builder.loss("softmax_cross_entropy")
    builder.g.nodes["L"]["axis"] = axis
    return builder.build()


def _two_inputs() -> nx.DiGraph:
    """A batch of feature shape [3] added to a batch of [2, 3]: the batch axis is shared."""
    return (B("two", [2, 3]).parameter("w", [2, 3]).mul("w", name="h").input("u", [3]).parameter("c", [3])
            .mul("c", name="uc").add("h").activation("tanh").loss("mse").build())


@pytest.mark.parametrize("name", list(NETWORKS))
def test_derived_gradients_match_symbolic_and_finite_differences(name):
    check_network(NETWORKS[name](), batch=2, seed=sum(map(ord, name)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).filter(lambda s: np.prod(s) <= 8),
       data=st.data(), op=st.sampled_from(["add", "mul"]), activation=st.sampled_from(["tanh", "sigmoid", "relu"]),
       seed=st.integers(0, 1000))
def test_random_broadcasts(shape, data, op, activation, seed):
    """A parameter of a random shape that broadcasts against a random input shape (a suffix of its
    axes, each kept or 1), through add or mul, an activation and a softmax over a random axis."""
    keep = data.draw(st.integers(1, len(shape)))
    pshape = [d if data.draw(st.booleans()) else 1 for d in shape[-keep:]]
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    b = B("random", shape).parameter("w", pshape)
    getattr(b, op)("w").activation(activation).softmax(axis=axis).loss("mse")
    check_network(b.build(), batch=2, seed=seed)


# --- the [2, 3] input: every element counts --------------------------------------------------------

def test_the_loss_is_the_mean_over_all_elements_of_a_sample_and_the_batch():
    net = derive.Builder("t").input("x", [2, 3]).activation("tanh").loss("mse").build()
    values = derive.random_values(net, batch=4, seed=3)
    loss, _ = derive.evaluate(derive.backprop(net), values)
    assert loss == pytest.approx(np.mean((np.tanh(values["x"]) - values["t"]) ** 2), rel=1e-14)
    assert loss == pytest.approx(derive.symbolic_gradients(net, values).loss, rel=1e-14)


def test_softmax_cross_entropy_averages_every_position_but_the_class_axis():
    net = derive.Builder("ce").input("x", [2, 3]).loss("softmax_cross_entropy").build()
    values = derive.random_values(net, batch=3, seed=1)
    x, t = values["x"], values["t"]
    assert t.shape == (3, 2, 3) and np.all(t.sum(axis=-1) == 1)   # one-hot along the class axis
    log_softmax = x - np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
    loss, _ = derive.evaluate(derive.backprop(net), values)
    assert loss == pytest.approx(np.mean(-np.sum(t * log_softmax, axis=-1)), rel=1e-13)


def test_a_bias_over_the_last_axis_gets_the_gradient_summed_over_the_batch_and_the_other_axes():
    net = B("bias", [2, 3]).parameter("b", [3]).add("b", name="h").loss("mse").build()
    bp = derive.backprop(net)
    values = derive.random_values(net, batch=4, seed=2)
    _, grads = derive.evaluate(bp, values)
    h = values["x"] + values["b"]
    upstream = 2 * (h - values["t"]) / h.size
    np.testing.assert_allclose(grads["b"], upstream.sum(axis=(0, 1)), rtol=1e-13)
    vjp = bp.nodes["h"].vjps["y"]
    assert isinstance(vjp.rhs, sp.Sum) and [str(lim[0]) for lim in vjp.rhs.limits] == ["k", "m"]
    assert vjp.extents == (3,) and vjp.indices == S.feature_indices(1)


def test_stretched_axes_sum_and_index_zero():
    net = B("st", [2, 3]).parameter("b", [2, 1]).add("b", name="h").loss("mse").build()
    bp = derive.backprop(net)
    assert "b[i, 0]" in str(bp.nodes["h"].forward.rhs)
    values = derive.random_values(net, batch=3, seed=4)
    _, grads = derive.evaluate(bp, values)
    h = values["x"] + values["b"]
    np.testing.assert_allclose(grads["b"], (2 * (h - values["t"]) / h.size).sum(axis=(0, 2))[:, None], rtol=1e-13)


def test_activation_vjp_at_rank_2_is_through_the_output_and_elementwise():
    bp = derive.backprop(B("a", [2, 3]).parameter("b", [2, 3]).add("b", name="h").activation("tanh", name="a")
                         .loss("mse").build())
    eq = bp.nodes["a"].vjps["x"]
    assert eq.elementwise and eq.indices == S.indices(2, True)
    assert derive.pretty_equation(eq) == "∂L/∂h = ∂L/∂a ⊙ (1 - a²)"


# --- views ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,new", [([2, 49], [98]), ([6], [2, 3]), ([2, 3, 4], [4, 6]), ([2, 3], [3, 1, 2])])
def test_views_are_numpy_reshapes_and_their_vjps_reshape_back(shape, new):
    """Exact integer index arithmetic: ``floor((1/49)*49)`` is 0 in floating point."""
    net = B("view", shape).parameter("b", shape).mul("b", name="h").reshape(new, name="r").loss("mse").build()
    bp = derive.backprop(net)
    values = derive.random_values(net, batch=2, seed=6)
    env = forward_values(bp, values)
    np.testing.assert_array_equal(env["r"], env["h"].reshape(2, *new))
    _, grads = derive.evaluate(bp, values)
    upstream = (2 * (env["r"] - values["t"]) / env["r"].size).reshape(2, *shape)
    np.testing.assert_allclose(grads["b"], (upstream * values["x"]).sum(axis=0), rtol=1e-12)


def test_flatten_prints_as_an_index_identity():
    bp = derive.backprop(B("f", [2, 3]).parameter("b", [2, 3]).mul("b", name="h").flatten(name="f")
                         .dense(1).loss("mse").build())
    assert derive.pretty_equation(bp.nodes["f"].forward) == "f[n,i] = h[n,⌊i/3⌋,i mod 3]"
    assert derive.pretty_equation(bp.nodes["f"].vjps["x"]) == "∂L/∂h[n,i,j] = ∂L/∂f[n,3*i + j]"


@pytest.mark.parametrize("shape,new", [([2, 2, 3], [3, 2, 2]), ([4, 6], [2, 3, 4]), ([2, 49], [98])])
def test_view_indices_print_as_exact_integer_code(shape, new):
    """The code printers (lambdify here, the kernels' printer alike) get ``//`` and ``%`` with the
    precedence kept: ``(4*i + 2*j + u) // 6``, never ``math.floor((1/6)*...)``."""
    from sympy.printing.pycode import pycode

    bp = derive.backprop(B("v", shape).parameter("b", shape).mul("b", name="h").reshape(new, name="r")
                         .loss("mse").build())
    for eq, src, dst in [(bp.nodes["r"].forward, shape, new), (bp.nodes["r"].vjps["x"], new, shape)]:
        (element,) = [e for e in eq.rhs.atoms(sp.Indexed)]
        code = pycode(sp.Tuple(*element.indices))
        assert "floor" not in code and "/" not in code.replace("//", ""), code
        read = sp.lambdify(eq.indices[1:], sp.Tuple(*element.indices[1:]), modules="math")
        for at in np.ndindex(*dst):
            assert tuple(read(*at)) == np.unravel_index(np.ravel_multi_index(at, dst), src), (at, code)


def test_reshape_of_a_reshape_back_is_the_identity_index():
    bp = derive.backprop(B("rr", [6]).dense(6, name="z").reshape([2, 3], name="r").reshape([6], name="q")
                         .loss("mse").build())
    vjp = bp.nodes["r"].vjps["x"]
    assert derive.pretty_equation(vjp) == "∂L/∂z[n,i] = ∂L/∂r[n,⌊i/3⌋,i mod 3]"
    nested = derive.backprop(B("r3", [2, 2, 3]).parameter("b", [3]).add("b", name="h").reshape([3, 2, 2], name="r")
                             .loss("mse").build())
    assert "⌊(4*i + 2*j + u)/6⌋" in derive.pretty_equation(nested.nodes["r"].forward)
    assert derive.pretty_equation(bp.nodes["q"].vjps["x"]) == "∂L/∂r[n,i,j] = ∂L/∂q[n,3*i + j]"


# --- bad shapes and axes: one line naming the node ---------------------------------------------------

def one_line_error(g, node: str, match: str) -> None:
    with pytest.raises(derive.GraphError) as info:
        derive.validate(g)
    message = str(info.value)
    assert "\n" not in message and f"node {node!r}" in message and match in message, message


def _graph(*nodes, edges) -> nx.DiGraph:
    g = nx.DiGraph()
    for name, attrs in nodes:
        g.add_node(name, **attrs)
    for u, v, a in edges:
        g.add_edge(u, v, arg=a)
    return g


def _elementwise(op, xshape, yshape, yop="parameter"):
    return _graph(("x", {"op": "input", "shape": xshape}), ("y", {"op": yop, "shape": yshape}),
                  ("h", {"op": op}), ("t", {"op": "target", "shape": xshape}), ("L", {"op": "loss", "function": "mse"}),
                  edges=[("x", "h", "x"), ("y", "h", "y"), ("h", "L", "y"), ("t", "L", "t")])


@pytest.mark.parametrize("op", ["add", "mul"])
def test_operands_that_do_not_broadcast(op):
    one_line_error(_elementwise(op, [2, 3], [2]), "h", "shapes [2, 3] and [2] do not broadcast")


def test_add_of_two_parameters_is_not_a_batch():
    g = _elementwise("add", [3], [3])   # h = x + y
    g.remove_edge("x", "h")
    g.add_node("P", op="parameter", shape=[3])
    g.add_node("m", op="add")           # h = P + y, m = x + h
    g.add_edges_from([("P", "h", {"arg": "x"}), ("x", "m", {"arg": "x"}), ("h", "m", {"arg": "y"}),
                      ("m", "L", {"arg": "y"})])
    g.remove_edge("h", "L")
    one_line_error(g, "h", "at least one argument must be a batch of rows (all of 'P', 'y' are parameters)")


def _unary(op, in_shape, **attrs):
    return _graph(("x", {"op": "input", "shape": in_shape}), ("h", {"op": op, **attrs}),
                  ("t", {"op": "target", "shape": in_shape}), ("L", {"op": "loss", "function": "mse"}),
                  edges=[("x", "h", "x"), ("h", "L", "y"), ("t", "L", "t")])


def test_reshape_of_the_wrong_size():
    one_line_error(_unary("reshape", [2, 3], shape=[4]), "h",
                   "cannot reshape x of shape [2, 3] (6 elements) to [4] (4 elements)")


@pytest.mark.parametrize("shape", [[], [2, 0], "6", [2.0, 3]])
def test_reshape_to_no_shape(shape):
    one_line_error(_unary("reshape", [6], shape=shape), "h", "'shape' must be a non-empty list of positive integers")


@pytest.mark.parametrize("axis,needle", [(2, "'axis' 2 is out of range for feature shape [2, 3] (allowed: -2 to 1)"),
                                         (-3, "out of range"), ("1", "'axis' must be an integer"),
                                         (True, "'axis' must be an integer")])
def test_softmax_axis_out_of_range(axis, needle):
    one_line_error(_unary("softmax", [2, 3], axis=axis), "h", needle)


def test_loss_axis_out_of_range_and_only_for_row_losses():
    g = derive.Builder("ce").input("x", [2, 3]).loss("softmax_cross_entropy").g
    g.nodes["L"]["axis"] = 5
    one_line_error(g, "L", "'axis' 5 is out of range")
    g.nodes["L"].update(function="mse", axis=0)
    one_line_error(g, "L", "'axis' applies only to the row losses")


def test_dense_on_a_rank_2_input_suggests_flatten():
    g = _graph(("x", {"op": "input", "shape": [2, 3]}), ("W", {"op": "parameter", "shape": [1, 3]}), ("z", {"op": "dense"}),
               ("t", {"op": "target", "shape": [1]}), ("L", {"op": "loss", "function": "mse"}),
               edges=[("x", "z", "x"), ("W", "z", "W"), ("z", "L", "y"), ("t", "L", "t")])
    one_line_error(g, "z", "dense input x must have one feature dimension, got shape [2, 3] (flatten it first")
    with pytest.raises(derive.GraphError, match="flatten it first"):
        derive.Builder().input("x", [2, 3]).dense(4)


@pytest.mark.parametrize("op", ["flatten", "softmax", "activation"])
def test_views_and_unary_ops_need_a_batch(op):
    g = _graph(("x", {"op": "input", "shape": [3]}), ("P", {"op": "parameter", "shape": [3]}),
               ("h", {"op": op, **({"function": "tanh"} if op == "activation" else {})}),
               ("m", {"op": "add"}), ("t", {"op": "target", "shape": [3]}), ("L", {"op": "loss", "function": "mse"}),
               edges=[("P", "h", "x"), ("h", "m", "y"), ("x", "m", "x"), ("m", "L", "y"), ("t", "L", "t")])
    one_line_error(g, "h", "argument 'x' must be a batch of rows, not parameter 'P'")


def test_builder_names_unknown_operands():
    with pytest.raises(derive.GraphError, match="add: no node named 'nope'"):
        derive.Builder().input("x", [2, 3]).add("nope")
    with pytest.raises(derive.GraphError, match="node 'h' \\(mul\\): shapes \\[2, 3\\] and \\[2\\] do not broadcast"):
        derive.Builder().input("x", [2, 3]).parameter("g", [2]).mul("g", name="h")


# --- spec files -----------------------------------------------------------------------------------

def test_spec_files_describe_residuals_views_and_axes(tmp_path):
    text = """
name = "residual"
[nodes.x]
op = "input"
shape = [2, 3]
[nodes.b]
op = "parameter"
shape = [3]
[nodes.h]
op = "add"
inputs = { x = "x", y = "b" }
[nodes.p]
op = "softmax"
axis = 0
inputs = ["h"]
[nodes.r]
op = "reshape"
shape = [6]
inputs = ["p"]
[nodes.t]
op = "target"
shape = [6]
[nodes.L]
op = "loss"
function = "mse"
inputs = { y = "r", t = "t" }
"""
    net = derive.loads_toml(text)
    assert derive.validate(net).shapes["r"] == (6,)
    for suffix in (".toml", ".json"):
        derive.save(net, tmp_path / f"net{suffix}")
        assert nx.utils.graphs_equal(derive.load(tmp_path / f"net{suffix}"), net)
    check_network(net, batch=2, seed=9)
