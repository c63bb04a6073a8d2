"""Tests of derive.graph (validation, shape inference) and derive.build (Builder, mlp).

Every validation error is a GraphError whose message is one line naming the culprit node.
"""

from __future__ import annotations

import networkx as nx
import pytest

from symprop import derive
from symprop.derive.graph import GraphInfo


def one_line_error(g, *names: str, match: str | None = None, error=derive.GraphError) -> str:
    """Validate ``g`` expecting ``error``; its message is one line and names one of ``names``."""
    with pytest.raises(error) as info:
        derive.validate(g)
    message = str(info.value)
    assert type(info.value) is error or isinstance(info.value, error)
    assert "\n" not in message and "\r" not in message, message
    assert message.strip() == message and message
    if names:
        assert any(f"node {n!r}" in message for n in names), message
    if match is not None:
        assert match in message, message
    return message


def net() -> nx.DiGraph:
    return derive.mlp([2, 3, 1], activation="tanh", loss="mse")


def tiny(input_op: str = "input") -> nx.DiGraph:
    """x -> y = dense(x, W) -> L = mse(y, t), built by hand."""
    g = nx.DiGraph()
    g.add_node("x", op=input_op, shape=[2])
    g.add_node("W", op="parameter", shape=[1, 2])
    g.add_node("y", op="dense")
    g.add_node("t", op="target", shape=[1])
    g.add_node("L", op="loss", function="mse")
    g.add_edge("x", "y", arg="x")
    g.add_edge("W", "y", arg="W")
    g.add_edge("y", "L", arg="y")
    g.add_edge("t", "L", arg="t")
    return g


# --- valid graphs --------------------------------------------------------------------------------

def test_tiny_graph_validates():
    info = derive.validate(tiny())
    assert isinstance(info, GraphInfo)
    assert info.loss == "L" and info.penalties == ()
    assert info.shapes["y"] == (1,) and info.batched["y"] and not info.batched["W"]
    assert info.args["y"] == {"x": "x", "W": "W"}


def test_shape_inference_mlp_3_5_2():
    g = derive.mlp([3, 5, 2])
    info = derive.validate(g)
    assert info.shapes == {
        "x": (3,), "W1": (5, 3), "b1": (5,), "z1": (5,), "a1": (5,),
        "W2": (2, 5), "b2": (2,), "z2": (2,), "t": (2,), "L": (),
    }
    assert info.batched == {
        "x": True, "W1": False, "b1": False, "z1": True, "a1": True,
        "W2": False, "b2": False, "z2": True, "t": True, "L": False,
    }
    assert info.loss == "L"
    assert info.args["z2"] == {"x": "a1", "W": "W2", "b": "b2"}
    assert info.args["L"] == {"y": "z2", "t": "t"}
    order = list(info.order)
    assert sorted(order) == sorted(g.nodes)
    for u, v in g.edges:
        assert order.index(u) < order.index(v)
    assert derive.parameters(g) == ["W1", "b1", "W2", "b2"]


def test_penalties_are_reported():
    g = derive.mlp([2, 3, 1], penalty="l2")
    info = derive.validate(g)
    assert set(info.penalties) == {"l2_W1", "l2_W2"}
    assert info.shapes["l2_W1"] == ()


def test_edge_arg_may_be_left_out_for_single_argument_ops():
    g = net()
    del g.edges["z1", "a1"]["arg"]
    assert derive.validate(g).args["a1"] == {"x": "z1"}


# --- builder and mlp produce plain, editable DiGraphs --------------------------------------------

def test_mlp_is_a_plain_digraph():
    g = derive.mlp([2, 16, 16, 1], activation="tanh", loss="mse")
    assert type(g) is nx.DiGraph
    assert g.graph["name"] == "mlp"
    assert g.nodes["a1"] == {"op": "activation", "function": "tanh"}
    assert g.nodes["W2"] == {"op": "parameter", "shape": [16, 16]}
    assert g.edges["W2", "z2"] == {"arg": "W"}
    assert g.edges["z3", "L"] == {"arg": "y"}


def test_builder_builds_a_plain_digraph():
    g = derive.Builder("tiny").input("x", 3).dense(4, activation="relu").dense(2).loss("softmax_cross_entropy").build()
    assert type(g) is nx.DiGraph
    assert g.graph["name"] == "tiny"
    assert g.nodes["z2"]["op"] == "dense"
    assert g.nodes["L"]["function"] == "softmax_cross_entropy"


def test_builder_softmax_node():
    g = derive.Builder().input("x", 3).dense(3).softmax().loss("mse").build()
    assert g.nodes["p"] == {"op": "softmax"}
    assert derive.validate(g).shapes["p"] == (3,)


def test_users_can_edit_with_networkx_and_revalidate():
    g = derive.mlp([2, 3, 1], activation="tanh")
    # insert a second hidden layer with plain networkx calls
    g.remove_edge("a1", "z2")
    g.add_node("W15", op="parameter", shape=[4, 3])
    g.add_node("z15", op="dense")
    g.add_node("a15", op="activation", function="relu")
    g.add_edge("a1", "z15", arg="x")
    g.add_edge("W15", "z15", arg="W")
    g.add_edge("z15", "a15", arg="x")
    g.add_edge("a15", "z2", arg="x")
    # the old W2 (1x3) no longer fits the 4 features of a15
    one_line_error(g, "z2", match="shape mismatch")
    g.nodes["W2"]["shape"] = [1, 4]
    info = derive.validate(g)
    assert info.shapes["a15"] == (4,)
    assert "W15" in derive.parameters(g)
    d = derive.backprop(g)
    assert "W15" in d.gradients


def test_builder_refuses_duplicate_names_and_missing_input():
    with pytest.raises(derive.GraphError, match="'x'"):
        derive.Builder().input("x", 2).input("x", 2)
    with pytest.raises(derive.GraphError):
        derive.Builder().dense(3)


@pytest.mark.parametrize("sizes", [[2], [], [2, 0], [2, -1, 1], [2.0, 1]])
def test_mlp_refuses_bad_sizes(sizes):
    with pytest.raises(derive.GraphError) as info:
        derive.mlp(sizes)
    assert "\n" not in str(info.value)


def test_mlp_bce_gets_a_sigmoid_output():
    g = derive.mlp([2, 3, 1], activation="relu", loss="bce")
    assert g.nodes["a2"]["function"] == "sigmoid"


# --- validation errors -----------------------------------------------------------------------------

def test_cycle():
    g = net()
    g.add_node("c1", op="activation", function="tanh")
    g.add_node("c2", op="activation", function="tanh")
    g.add_edge("c1", "c2", arg="x")
    g.add_edge("c2", "c1", arg="x")
    message = one_line_error(g, "c1", "c2", match="cycle")
    assert "c1" in message and "c2" in message


def test_self_loop_is_a_cycle():
    g = net()
    g.add_node("c", op="softmax")
    g.add_edge("c", "c", arg="x")
    one_line_error(g, "c", match="cycle")


def test_unknown_op():
    g = net()
    g.nodes["z1"]["op"] = "dnese"
    one_line_error(g, "z1", match="unknown op 'dnese'")


def test_missing_op():
    g = net()
    del g.nodes["z1"]["op"]
    one_line_error(g, "z1", match="op")


def test_unknown_attribute():
    g = net()
    g.nodes["a1"]["fuction"] = "tanh"
    one_line_error(g, "a1", match="unknown attribute 'fuction'")


def test_missing_required_attribute():
    g = net()
    del g.nodes["a1"]["function"]
    one_line_error(g, "a1", match="function")


def test_dense_with_only_x():
    g = net()
    g.remove_nodes_from(["W1", "b1"])
    one_line_error(g, "z1", match="wrong number of inputs")


def test_activation_with_no_input():
    g = net()
    g.add_node("lonely", op="activation", function="tanh")
    one_line_error(g, "lonely", match="wrong number of inputs")


def test_wrong_argument_name():
    g = net()
    g.edges["W1", "z1"]["arg"] = "weights"
    one_line_error(g, "z1", match="'weights'")


def test_argument_given_twice():
    g = net()
    g.add_node("W1b", op="parameter", shape=[3, 2])
    g.add_edge("W1b", "z1", arg="W")
    one_line_error(g, "z1", match="twice")


def test_dense_weight_columns_mismatch():
    g = net()
    g.nodes["W2"]["shape"] = [1, 4]
    one_line_error(g, "z2", match="shape mismatch")


def test_dense_bias_shape_mismatch():
    g = net()
    g.nodes["b1"]["shape"] = [4]
    one_line_error(g, "z1", match="shape mismatch")


def test_loss_prediction_target_mismatch():
    g = net()
    g.nodes["t"]["shape"] = [2]
    one_line_error(g, "L", match="shape mismatch")


@pytest.mark.parametrize("shape", [[0], [], "3", [2.5], [True], None])
def test_bad_leaf_shape(shape):
    g = net()
    g.nodes["x"]["shape"] = shape
    one_line_error(g, "x")


def test_missing_loss():
    g = net()
    g.remove_nodes_from(["L", "t"])
    message = one_line_error(g, match="no loss")
    assert "loss" in message


def test_two_losses():
    g = net()
    g.add_node("L2", op="loss", function="mae")
    g.add_edge("z2", "L2", arg="y")
    g.add_edge("t", "L2", arg="t")
    message = one_line_error(g, match="several loss")
    assert "'L'" in message and "'L2'" in message


def test_loss_feeding_another_node():
    g = net()
    g.add_node("after", op="activation", function="tanh")
    g.add_edge("L", "after", arg="x")
    one_line_error(g, "L")


def test_unreachable_extra_input():
    g = net()
    g.add_node("x2", op="input", shape=[2])
    one_line_error(g, "x2", match="unreachable")


def test_unreachable_activation_hanging_off_the_network():
    g = net()
    g.add_node("dangling", op="activation", function="relu")
    g.add_edge("z1", "dangling", arg="x")
    one_line_error(g, "dangling", match="unreachable")


def test_unreachable_extra_input_with_an_activation():
    g = net()
    g.add_node("x2", op="input", shape=[2])
    g.add_node("h2", op="activation", function="tanh")
    g.add_edge("x2", "h2", arg="x")
    one_line_error(g, "x2", "h2", match="unreachable")


def test_parameter_with_no_consumer():
    g = net()
    g.add_node("W9", op="parameter", shape=[2, 2])
    one_line_error(g, "W9", match="no consumer")


def test_target_feeding_a_dense():
    one_line_error(tiny(input_op="target"), "y", match="target")


def test_penalty_on_a_non_parameter():
    g = net()
    g.add_node("pen", op="penalty", kind="l2", weight=0.1)
    g.add_edge("z1", "pen", arg="w")
    one_line_error(g, "pen", match="parameter")


def test_penalty_unknown_kind():
    g = net()
    g.add_node("pen", op="penalty", kind="l3")
    g.add_edge("W1", "pen", arg="w")
    one_line_error(g, "pen", match="l3")


def test_loss_fed_by_a_parameter():
    g = nx.DiGraph()
    g.add_node("P", op="parameter", shape=[1])
    g.add_node("t", op="target", shape=[1])
    g.add_node("L", op="loss", function="mse")
    g.add_edge("P", "L", arg="y")
    g.add_edge("t", "L", arg="t")
    one_line_error(g, "L", match="'P'")


def test_loss_target_argument_not_a_target():
    g = net()
    g.add_node("x9", op="input", shape=[1])
    g.remove_edge("t", "L")
    g.remove_node("t")
    g.add_edge("x9", "L", arg="t")
    one_line_error(g, "L", match="target")


def test_dense_weight_from_a_batch():
    g = tiny()
    g.add_node("x2", op="input", shape=[2])
    g.remove_node("W")
    g.add_edge("x2", "y", arg="W")
    one_line_error(g, "y")


@pytest.mark.parametrize("formula", ["__import__('os')", "__import__('os').system('true')",
                                     "x.__class__", "().__class__", "lambda: 1", "open('/etc/passwd')"])
def test_unsafe_activation_formula(formula):
    g = net()
    g.nodes["a1"]["function"] = formula
    message = one_line_error(g, "a1", match="formula")
    assert len(message) < 600


def test_unknown_activation_name():
    g = net()
    g.nodes["a1"]["function"] = "tanhh"
    one_line_error(g, "a1", match="'tanhh'")


def test_bad_loss_formula():
    g = net()
    g.nodes["L"]["function"] = "(y-t)**2 + z"
    one_line_error(g, "L", match="'z'")


def test_unknown_loss_name():
    g = net()
    g.nodes["L"]["function"] = "msee"
    one_line_error(g, "L", match="'msee'")


@pytest.mark.parametrize("graph", [nx.Graph(), nx.MultiDiGraph(), {}, None, [("x", "y")]])
def test_not_a_digraph(graph):
    with pytest.raises(derive.GraphError) as info:
        derive.validate(graph)
    assert "DiGraph" in str(info.value) and "\n" not in str(info.value)


def test_undirected_copy_of_a_valid_net_is_refused():
    with pytest.raises(derive.GraphError, match="DiGraph"):
        derive.validate(nx.Graph(net()))


def test_empty_graph():
    one_line_error(nx.DiGraph(), match="empty")


@pytest.mark.parametrize("name", ["", "  ", "a\nb", 3, "del\x7f", "c1\x85"])
def test_bad_node_names(name):
    g = net()
    nx.relabel_nodes(g, {"a1": name}, copy=False)
    with pytest.raises(derive.GraphError) as info:
        derive.validate(g)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["dL/dz1", "dL/dW1", "delta(1)", "delta(\\foo)"])
def test_names_of_gradients_and_layer_errors_are_reserved(name):
    """A node named like a gradient symbol was taken for one: wrong gradients, no error."""
    g = nx.relabel_nodes(net(), {"a1": name})
    one_line_error(g, match=f"node {name!r}: names starting with 'dL/d' or 'delta(' are reserved")


def test_names_of_the_objective_and_the_batch_size_are_reserved():
    """Printed equations call the objective L and the batch size N: ∂L/∂L, or a node N beside
    the mean's /N, would read wrongly."""
    g = (derive.Builder().input("x", 2).dense(3, activation="tanh", name="L").dense(1)
         .loss("mse", name="objective").g)
    one_line_error(g, match="node 'L' (dense): the name 'L' is reserved for the objective")
    g = nx.relabel_nodes(net(), {"x": "N"})
    one_line_error(g, match="node 'N' (input): the name 'N' is reserved for the batch size")
    assert derive.validate(derive.mlp([2, 3, 1])).loss == "L"      # the loss itself may be L


def test_errors_are_value_errors():
    assert issubclass(derive.GraphError, ValueError)
    assert issubclass(derive.SpecError, derive.SymPropError)
    assert issubclass(derive.GraphError, derive.SymPropError)


def test_backprop_validates_first():
    g = net()
    g.nodes["W2"]["shape"] = [1, 4]
    with pytest.raises(derive.GraphError, match="'z2'"):
        derive.backprop(g)


# --- the builder's arguments ---------------------------------------------------------------------

@pytest.mark.parametrize("build,needle", [
    (lambda: derive.mlp(None), "mlp sizes must be a list of at least two positive integers, got None"),
    (lambda: derive.mlp([2, True]), "mlp sizes: each must be a positive integer, got True"),
    (lambda: derive.Builder().input("x", 2.5), "input 'x': a size must be a positive integer, got 2.5"),
    (lambda: derive.Builder().input("x", []), "input 'x': give its number of features"),
    (lambda: derive.Builder().input("x", 2).dense(2.5), "dense: units must be a positive integer, got 2.5"),
    (lambda: derive.Builder().input("x", 2).dense("3"), "dense: units must be a positive integer, got '3'"),
    (lambda: derive.Builder().input("x", 2).dense(1, bias="no"), "dense: bias must be True or False, got 'no'"),
    (lambda: derive.mlp([2, 3, 1], name=None), "a network's name must be text, got None"),
])
def test_builder_refuses_arguments_it_used_to_bend(build, needle):
    """Once silently truncated (2.5 units -> 2), counted (True -> 1) or kept ("no" bias), or a TypeError."""
    with pytest.raises(derive.GraphError) as info:
        build()
    assert str(info.value) == needle


def test_builder_takes_numpy_sizes_and_one_penalty_name():
    import numpy as np

    net = derive.mlp([np.int64(2), np.int32(3), 1])
    assert net.nodes["W1"]["shape"] == [3, 2] and type(net.nodes["W1"]["shape"][0]) is int
    g = derive.Builder().input("x", 2).dense(3).dense(1).loss().penalty(on="W1").build()
    assert [v for v, op in g.nodes(data="op") if op == "penalty"] == ["l2_W1"]   # not 'W' and '1'


def test_a_built_network_is_not_changed_by_later_builder_calls():
    b = derive.Builder("n").input("x", 2).dense(1).loss()
    net = b.build()
    b.penalty()
    assert "l2_W1" in b.g and "l2_W1" not in net
    derive.validate(net)


@pytest.mark.parametrize("function", ["tanh", "x*tanh(x)"])
def test_alpha_for_an_activation_without_one_is_refused(function):
    """It was silently ignored."""
    g = derive.Builder().input("x", 2).dense(3, activation=function, alpha=0.1).dense(1).loss().g
    one_line_error(g, match=f"node 'a1' (activation): 'alpha' does not apply to activation {function!r} "
                            "(only to: leaky_relu, elu)")
    g = derive.Builder().input("x", 2).dense(3, activation="elu", alpha=0.5).dense(1).loss().g
    derive.validate(g)


def test_a_pipeline_validates_once(monkeypatch, capsys, tmp_path):
    """symprop train loads, picks data, compiles, derives and trains: the checks run once; an edit
    of the graph runs them again, and an invalid graph is refused every time."""
    import symprop.derive.graph as G
    from symprop.cli import main

    calls = []
    check = G._check
    monkeypatch.setattr(G, "_check", lambda g: calls.append(1) or check(g))
    spec = tmp_path / "net.toml"
    derive.save(derive.mlp([2, 3, 1], activation="softsign", loss="bce_logits", name="once"), spec)
    G._VALIDATED.clear()
    calls.clear()
    assert main(["train", str(spec), "--epochs", "1", "--samples", "32", "--no-progress"]) == 0
    assert len(calls) == 1
    net = derive.load(spec)
    calls.clear()
    derive.validate(net)
    assert calls == []                      # the same content: found
    net.nodes["a1"]["function"] = "tanh"
    derive.validate(net)
    assert calls == [1]                     # edited: checked again
    net.nodes["a1"]["function"] = "nope"
    for _ in range(2):
        with pytest.raises(derive.GraphError, match="unknown activation 'nope'"):
            derive.validate(net)
    info = derive.validate(derive.load(spec))
    info.shapes.clear()                     # each call has its own copy
    assert derive.validate(derive.load(spec)).shapes
