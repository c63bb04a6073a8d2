"""Tests of derive.spec: TOML and JSON spec files, lossless round trips, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symprop import derive
from symprop.derive.spec import from_dict, to_dict, to_toml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.toml") if p.name != "bad.toml")


def equal(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    """Same graph: nodes, edges, node/edge/graph attributes (networkx's own comparison)."""
    return nx.utils.graphs_equal(a, b)


def one_line(exc_info, *must_contain: str) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and "\r" not in message, message
    for text in must_contain:
        assert text in message, message
    return message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- examples ----------------------------------------------------------------------------------

def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"mlp.toml", "classifier.toml", "swish.toml", "mish.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads(path):
    g = derive.load(path)
    assert type(g) is nx.DiGraph
    info = derive.validate(g)
    assert g.nodes[info.loss]["op"] == "loss"
    assert derive.parameters(g)


def test_example_contents():
    mlp = derive.load(ROOT / "examples" / "mlp.toml")
    assert equal(mlp, derive.mlp([2, 16, 16, 1], activation="tanh", loss="mse", name="mlp"))
    classifier = derive.load(ROOT / "examples" / "classifier.toml")
    assert classifier.nodes["a1"] == {"op": "activation", "function": "leaky_relu", "alpha": 0.1}
    assert derive.validate(classifier).shapes["logits"] == (3,)
    mish = derive.load(ROOT / "examples" / "mish.toml")
    assert mish.nodes["a1"]["function"] == "x*tanh(log(1+exp(x)))"
    assert {v for v, d in mish.nodes(data=True) if d["op"] == "penalty"} == {"l2_W1", "l2_W2"}
    assert mish.nodes["l2_W1"]["weight"] == 0.001
    swish = derive.load(ROOT / "examples" / "swish.toml")
    assert swish.nodes["a1"]["function"] == "x*sigmoid(x)"


def test_bad_example_names_node_y():
    with pytest.raises(derive.GraphError) as info:
        derive.load(ROOT / "examples" / "bad.toml")
    message = one_line(info, "bad.toml", "node 'y'", "shape mismatch")
    assert message.startswith(str(ROOT / "examples" / "bad.toml"))


# --- round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_toml_to_json_round_trip(path, tmp_path):
    g = derive.load(path)
    derive.save(g, tmp_path / "net.json")
    back = derive.load(tmp_path / "net.json")
    assert equal(back, g)
    for u, v in g.edges:
        assert back.edges[u, v]["arg"] == g.edges[u, v]["arg"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_toml_to_toml_round_trip(path, tmp_path):
    g = derive.load(path)
    derive.save(g, tmp_path / "net.toml")
    back = derive.load(tmp_path / "net.toml")
    assert equal(back, g)
    # and the saved file is a fixed point of save
    derive.save(back, tmp_path / "again.toml")
    assert (tmp_path / "again.toml").read_text() == (tmp_path / "net.toml").read_text()


def test_json_is_node_link_data(tmp_path):
    g = derive.mlp([2, 3, 1])
    derive.save(g, tmp_path / "net.json")
    data = json.loads((tmp_path / "net.json").read_text())
    assert data == json.loads(json.dumps(to_dict(g)))
    assert {"nodes", "edges", "directed"} <= set(data)
    assert data["directed"] is True
    assert equal(nx.node_link_graph(data, edges="edges"), g)


def test_round_trip_of_odd_node_names_and_attributes(tmp_path):
    g = nx.relabel_nodes(derive.mlp([2, 3, 1], activation="leaky_relu", penalty="l1", weight=0.5),
                         {"x": "in put.1", "a1": 'é"q\\', "W1": "W[1]", "t": "#t = 1"})
    g.nodes['é"q\\']["alpha"] = 0.2
    derive.validate(g)
    for suffix in (".json", ".toml"):
        derive.save(g, tmp_path / f"net{suffix}")
        assert equal(derive.load(tmp_path / f"net{suffix}"), g), suffix


def test_saved_network_without_edge_arg_reloads(tmp_path):
    """`arg` may be left out on single-argument ops (validate accepts it), so save must cope."""
    g = derive.mlp([2, 3, 1])
    del g.edges["z1", "a1"]["arg"]
    derive.validate(g)
    for suffix in (".json", ".toml"):
        derive.save(g, tmp_path / f"net{suffix}")
        back = derive.load(tmp_path / f"net{suffix}")
        assert derive.validate(back).args["a1"] == {"x": "z1"}
        assert set(back.edges) == set(g.edges)


@pytest.mark.parametrize("text", ["\U0001F600", "net \U00010000 work"])
def test_toml_round_trip_of_non_bmp_text(tmp_path, text):
    """Characters outside the BMP (emoji) in names must survive a TOML round trip.

    JSON escapes them as UTF-16 surrogate pairs (``\\ud83d\\ude00``), which TOML refuses.
    """
    g = nx.relabel_nodes(derive.mlp([2, 1], name=text), {"x": f"x{text}"})
    derive.save(g, tmp_path / "net.toml")
    assert equal(derive.load(tmp_path / "net.toml"), g)


def test_unencodable_name_is_refused(tmp_path):
    """A lone surrogate is not text: validation names the node, and save() raises a one-line
    SpecError without leaving its temporary file behind."""
    g = nx.relabel_nodes(derive.mlp([2, 1]), {"x": "a\ud800b"})
    with pytest.raises(derive.GraphError, match="lone surrogate"):
        derive.validate(g)
    for suffix in (".json", ".toml"):
        path = tmp_path / f"net{suffix}"
        with pytest.raises(derive.SpecError) as info:
            derive.save(g, path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert not list(tmp_path.glob("*.tmp")), "a failed save must not leave its temporary file"


def test_save_is_atomic_and_creates_folders(tmp_path):
    target = tmp_path / "deep" / "er" / "net.json"
    derive.save(derive.mlp([2, 1]), target)
    assert target.exists()
    assert [p.name for p in target.parent.iterdir()] == ["net.json"]


def test_loads_toml_explicit_form():
    text = (ROOT / "examples" / "classifier.toml").read_text()
    g = derive.loads_toml(text, "classifier")
    assert equal(g, derive.load(ROOT / "examples" / "classifier.toml"))


def test_inputs_may_be_a_list_for_single_argument_ops():
    text = to_toml(derive.mlp([2, 3, 1])).replace('inputs = { x = "z1" }', 'inputs = ["z1"]')
    assert 'inputs = ["z1"]' in text
    g = derive.loads_toml(text)
    assert g.edges["z1", "a1"]["arg"] == "x"


def test_short_form_options():
    g = derive.loads_toml('input = 3\nloss = "bce"\noutput_activation = "sigmoid"\npenalty = "l1"\n'
                          'weight = 0.5\n[[layers]]\nunits = 4\nactivation = "relu"\nbias = false\n'
                          '[[layers]]\nunits = 1\n')
    assert "b1" not in g and "b2" in g
    assert g.nodes["a2"]["function"] == "sigmoid"
    assert g.nodes["l1_W1"] == {"op": "penalty", "kind": "l1", "weight": 0.5}


# --- errors: one line naming the file ------------------------------------------------------------

def spec_error(path, *must_contain: str, error=derive.SpecError) -> str:
    with pytest.raises(error) as info:
        derive.load(path)
    return one_line(info, str(path), *must_contain)


def test_malformed_toml(tmp_path):
    spec_error(write(tmp_path / "broken.toml", "name = \n[[layers"), "invalid TOML")


def test_unknown_top_level_key(tmp_path):
    spec_error(write(tmp_path / "k.toml", 'input = 2\nlayerz = 1\n[[layers]]\nunits = 1\n'), "'layerz'")


def test_missing_file(tmp_path):
    spec_error(tmp_path / "nope.toml", "no such file")


def test_unknown_extension(tmp_path):
    spec_error(write(tmp_path / "net.yaml", "input: 2\n"), "'.yaml'")
    with pytest.raises(derive.SpecError) as info:
        derive.save(derive.mlp([2, 1]), tmp_path / "net.yaml")
    one_line(info, "net.yaml")


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", '"nodes"', '{"nodes": []}',
                                  '{"directed": true, "graph": {}, "nodes": [1, 2], "edges": []}',
                                  '{"directed": true, "graph": {}, "nodes": [{"id": "x"}], "edges": 3}'])
def test_json_that_is_not_node_link(tmp_path, text):
    spec_error(write(tmp_path / "x.json", text), "node-link")


def test_invalid_json(tmp_path):
    spec_error(write(tmp_path / "x.json", '{"nodes": ['), "invalid JSON")


def test_json_graph_failing_validation_names_the_file_and_node(tmp_path):
    data = to_dict(derive.mlp([2, 3, 1]))
    for node in data["nodes"]:
        if node["id"] == "W2":
            node["shape"] = [1, 5]
    path = write(tmp_path / "x.json", json.dumps(data))
    spec_error(path, "node 'z2'", error=derive.GraphError)


@pytest.mark.parametrize("units", ["0", "-3", '"3"', "2.5", "true", "[3]"])
def test_layers_with_bad_units(tmp_path, units):
    path = write(tmp_path / "u.toml", f"input = 2\n[[layers]]\nunits = {units}\n")
    spec_error(path, "layer 1", "units")


def test_layers_missing_units(tmp_path):
    spec_error(write(tmp_path / "u.toml", 'input = 2\n[[layers]]\nactivation = "tanh"\n'), "units")


@pytest.mark.parametrize("text,needle", [
    ("input = 2\n", "layers"),
    ('input = 2\n[[layers]]\nunits = 1\n[nodes.x]\nop = "input"\nshape = [2]\n', "layers"),
    ("input = 0\n[[layers]]\nunits = 1\n", "'input'"),
    ("layers = []\ninput = 2\n", "layers"),
    ("input = 2\n[[layers]]\nunits = 1\nfoo = 2\n", "'foo'"),
    ('[nodes.x]\nop = "input"\nshape = [2]\n[nodes.y]\nop = "softmax"\ninputs = { x = "q" }\n', "'q'"),
    ('[nodes.x]\nop = "input"\nshape = [2]\n[nodes.y]\nop = "softmax"\ninputs = "x"\n', "'y'"),
    ("nodes = 3\n", "nodes"),
    ('[nodes.x]\nop = "input"\nshape = [2]\n[nodes.y]\nop = "softmax"\ninputs = { x = ["x"] }\n',
     "input 'x' must name a node, got ['x']"),
])
def test_other_spec_errors(tmp_path, text, needle):
    spec_error(write(tmp_path / "s.toml", text), needle)


def test_an_op_that_is_a_table_is_a_one_line_error(tmp_path):
    path = write(tmp_path / "o.toml", '[nodes.x]\nop = "input"\nshape = [2]\n[nodes.y]\nop = { a = 1 }\ninputs = ["x"]\n')
    spec_error(path, "node 'y': unknown op {'a': 1}", error=derive.GraphError)


def test_unknown_layer_activation_is_a_one_line_error(tmp_path):
    path = write(tmp_path / "a.toml", 'input = 2\n[[layers]]\nunits = 3\nactivation = "tanhh"\n[[layers]]\nunits = 1\n')
    with pytest.raises(derive.SymPropError) as info:
        derive.load(path)
    one_line(info, str(path), "'tanhh'")


def test_unsafe_formula_in_spec(tmp_path):
    path = write(tmp_path / "evil.toml",
                 "input = 2\n[[layers]]\nunits = 3\nactivation = \"__import__('os').system('touch pwned')\"\n"
                 "[[layers]]\nunits = 1\n")
    with pytest.raises(derive.GraphError) as info:
        derive.load(path)
    one_line(info, str(path), "node 'a1'", "__import__")
    assert not (tmp_path / "pwned").exists()


EVIL = "__import__('pathlib').Path('{marker}').touch()"


@pytest.mark.parametrize("template", [
    # a string where a number belongs once reached SymPy's sympify, which evaluates it
    'input = 2\n[[layers]]\nunits = 3\nactivation = "leaky_relu"\nalpha = "{evil}"\n[[layers]]\nunits = 1\n',
    'input = 2\n[[layers]]\nunits = 3\nactivation = "tanh"\nalpha = "{evil}"\n[[layers]]\nunits = 1\n',
    'input = 2\npenalty = "l2"\nweight = "{evil}"\n[[layers]]\nunits = 1\n',
    '[nodes.x]\nop = "input"\nshape = [2]\n[nodes.W]\nop = "parameter"\nshape = [1, 2]\n'
    '[nodes.z]\nop = "dense"\ninputs = {{ x = "x", W = "W" }}\n[nodes.t]\nop = "target"\nshape = [1]\n'
    '[nodes.L]\nop = "loss"\nfunction = "mse"\ninputs = {{ y = "z", t = "t" }}\n'
    '[nodes.P]\nop = "penalty"\nweight = "{evil}"\ninputs = ["W"]\n',
])
def test_text_in_a_numeric_attribute_is_refused_never_evaluated(tmp_path, template):
    marker = tmp_path / "pwned"
    path = write(tmp_path / "evil.toml", template.format(evil=EVIL.format(marker=marker.as_posix())))
    with pytest.raises(derive.SymPropError) as info:
        derive.load(path)
    one_line(info, str(path), "must be a finite number", "__import__")
    assert not marker.exists()


@pytest.mark.parametrize("text,needle", [
    ('input = 2\n[[layers]]\nunits = 3\nactivation = "elu"\nalpha = nan\n[[layers]]\nunits = 1\n',
     "'alpha' must be a finite number, got nan"),
    ('input = 2\n[[layers]]\nunits = 3\nactivation = "elu"\nalpha = true\n[[layers]]\nunits = 1\n',
     "'alpha' must be a finite number, got True"),
    ('input = 2\npenalty = "l1"\nweight = inf\n[[layers]]\nunits = 1\n', "'weight' must be a finite number, got inf"),
    ('input = 2\npenalty = "l1"\nweight = -0.5\n[[layers]]\nunits = 1\n', "'weight' must be at least 0, got -0.5"),
    ('input = 2\npenalty = {{ kind = "l2" }}\n[[layers]]\nunits = 1\n', "penalty's name"),
    ('input = 2\n[[layers]]\nunits = 1\nbias = "no"\n', "'bias' must be true or false, got 'no'"),
])
def test_bad_numeric_and_flag_attributes(tmp_path, text, needle):
    path = write(tmp_path / "s.toml", text.format())
    with pytest.raises(derive.SymPropError) as info:
        derive.load(path)
    one_line(info, str(path), needle)


def test_leaky_relu_alpha_from_a_spec_is_used():
    g = derive.loads_toml('input = 2\n[[layers]]\nunits = 3\nactivation = "leaky_relu"\nalpha = 0.2\n'
                          '[[layers]]\nunits = 1\n')
    import sympy

    from symprop.derive.ops import X, scalar_function
    assert scalar_function("activation", g.nodes["a1"]).subs(X, -1) == -sympy.Rational(1, 5)


def test_from_dict_refuses_non_tables():
    with pytest.raises(derive.SpecError, match="table"):
        from_dict([1, 2], "listy")


# --- hypothesis: random MLPs round-trip through JSON and TOML -------------------------------------

ACTS = ["tanh", "relu", "sigmoid", "leaky_relu", "elu", "softplus", "x*sigmoid(x)", None]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5),
       activation=st.sampled_from(ACTS),
       loss=st.sampled_from(["mse", "mae", "bce", "bce_logits", "softmax_cross_entropy", "(y-t)**2/2"]),
       penalty=st.sampled_from([None, "l1", "l2"]),
       weight=st.floats(1e-6, 1.0),
       # Basic Multilingual Plane only: characters beyond it are test_toml_round_trip_of_non_bmp_text
       name=st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs", "Cc"]), max_size=12))
def test_random_mlps_round_trip(tmp_path, sizes, activation, loss, penalty, weight, name):
    g = derive.mlp(sizes, activation=activation, loss=loss, penalty=penalty, weight=weight, name=name)
    for suffix in (".json", ".toml"):
        path = tmp_path / f"net{suffix}"
        derive.save(g, path)
        back = derive.load(path)
        assert equal(back, g), suffix
