"""derive.fingerprint: equal for graphs that derive alike, different otherwise, stable across processes."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symprop import derive
from symprop.derive import forms, ops

fp_module = importlib.import_module("symprop.derive.fingerprint")
registry_text = fp_module.registry_text
ROOT = Path(__file__).resolve().parent.parent


def test_equal_graphs_have_equal_fingerprints():
    a = derive.mlp([3, 4, 2], activation="tanh", loss="mse")
    b = derive.mlp([3, 4, 2], activation="tanh", loss="mse")
    assert derive.fingerprint(a) == derive.fingerprint(b)
    assert len(derive.fingerprint(a)) == 64


def test_any_change_changes_the_fingerprint():
    variants = [
        derive.mlp([3, 4, 2], activation="tanh", loss="mse"),
        derive.mlp([3, 5, 2], activation="tanh", loss="mse"),
        derive.mlp([3, 4, 2], activation="relu", loss="mse"),
        derive.mlp([3, 4, 2], activation="tanh", loss="mae"),
        derive.mlp([3, 4, 2], activation="x*tanh(x)", loss="mse"),
        derive.mlp([3, 4, 2], activation="tanh", loss="mse", penalty="l2", weight=0.01),
        derive.mlp([3, 4, 2], activation="tanh", loss="mse", penalty="l2", weight=0.02),
        derive.mlp([3, 4, 2], activation="tanh", loss="mse", penalty="l1", weight=0.01),
    ]
    prints = [derive.fingerprint(net) for net in variants]
    assert len(set(prints)) == len(variants)


def test_attribute_and_insertion_order_count():
    net = derive.mlp([2, 3, 1], activation="leaky_relu", loss="mse")
    other = derive.mlp([2, 3, 1], activation="leaky_relu", loss="mse")
    other.nodes["a1"]["alpha"] = 0.2
    assert derive.fingerprint(net) != derive.fingerprint(other)
    # the same nodes and edges added in another order: the derivation's node order may differ
    shuffled = type(net)()
    shuffled.graph.update(net.graph)
    shuffled.add_nodes_from(reversed(list(net.nodes(data=True))))
    shuffled.add_edges_from(net.edges(data=True))
    assert derive.fingerprint(shuffled) != derive.fingerprint(net)


def test_non_json_attributes_have_no_fingerprint():
    net = derive.mlp([2, 3, 1], activation="tanh", loss="mse")
    net.nodes["a1"]["function"] = sp.tanh(ops.X)          # a SymPy expression: not JSON-native
    assert derive.fingerprint(net) is None
    net = derive.mlp([2, 3, 1], activation="tanh", loss="mse")
    net.graph["seed"] = np.int64(2)
    assert derive.fingerprint(net) is None


def test_registry_changes_change_the_fingerprint(monkeypatch):
    net = derive.mlp([2, 3, 1], activation="relu", loss="mse")
    before = derive.fingerprint(net)
    monkeypatch.setitem(ops.ACTIVATIONS, "relu", (sp.Max(0, 2 * ops.X), {}))
    assert derive.fingerprint(net) != before
    monkeypatch.undo()
    assert derive.fingerprint(net) == before
    monkeypatch.setitem(ops.ELEMENTWISE_LOSSES, "mse", (ops.Y - ops.T) ** 4)
    assert derive.fingerprint(net) != before
    monkeypatch.undo()
    monkeypatch.setitem(ops.OPS, "dense", dataclasses.replace(ops.OPS["dense"], forward=lambda X, W, b: X * W.T))
    assert derive.fingerprint(net) != before
    monkeypatch.undo()
    monkeypatch.setitem(ops.OPS, "softmax", dataclasses.replace(ops.OPS["softmax"], form=forms.Elementwise()))
    assert derive.fingerprint(net) != before


def test_fingerprint_is_the_same_in_another_process():
    """No addresses, Dummy indices or hash seeds in it: a second process must find the same."""
    code = ("from symprop import derive; print(derive.fingerprint(derive.mlp([4, 3, 2], activation='x*sigmoid(x)', "
            "loss='softmax_cross_entropy', penalty='l1')))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=None).stdout.strip() for _ in range(2)}
    here = derive.fingerprint(derive.mlp([4, 3, 2], activation="x*sigmoid(x)",
                                         loss="softmax_cross_entropy", penalty="l1"))
    assert outs == {here}


def test_registry_text_describes_functions_without_addresses():
    text = fp_module.registry_text()
    assert " at 0x" not in text and "dense" in text and "softmax_cross_entropy" in text


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=2, max_size=4), st.lists(st.integers(1, 6), min_size=2, max_size=4),
       st.sampled_from(["tanh", "relu", "x*tanh(x)"]), st.sampled_from(["tanh", "relu", "x*tanh(x)"]))
def test_fingerprints_equal_exactly_when_networks_are(sizes_a, sizes_b, act_a, act_b):
    a = derive.mlp(sizes_a, activation=act_a, loss="mse")
    b = derive.mlp(sizes_b, activation=act_b, loss="mse")
    same = sizes_a == sizes_b and (act_a == act_b or len(sizes_a) == 2)
    assert (derive.fingerprint(a) == derive.fingerprint(b)) == same


def test_building_validating_and_fingerprinting_need_no_sympy():
    """Built-in names and numbers are checked without SymPy (ops.BuiltinTable), so a process that
    finds its kernels by fingerprint never imports it; a formula is parsed, importing it, and the
    fingerprints do not depend on whether the built-in definitions were ever made."""
    code = """
import sys
from symprop import derive
from symprop.derive import ops
net = derive.mlp([3, 5, 2], activation="leaky_relu", loss="softmax_cross_entropy", penalty="l1", weight=0.1)
spec = derive.load(sys.argv[1])
fps = [derive.fingerprint(net), derive.fingerprint(spec)]
print("sympy" in sys.modules)
try:
    derive.mlp([3, 4, 1], activation="tanhh")
except derive.GraphError as e:
    print("refused", "'tanhh'" in str(e))
derive.mlp([3, 4, 1], activation="x*tanh(x)")
print("sympy" in sys.modules, ops.ACTIVATIONS["relu"][0])
print(fps == [derive.fingerprint(net), derive.fingerprint(spec)])
"""
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "classifier.toml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:4] == ["False", "refused True", "True Max(0, x)", "True"]


def test_a_built_in_put_back_is_a_built_in_again():
    net = derive.mlp([2, 3, 1], activation="relu", loss="mse")
    before = derive.fingerprint(net)
    relu = ops.ACTIVATIONS["relu"]
    ops.ACTIVATIONS["relu"] = (relu[0], dict(relu[1]))   # an equal copy is a program's own entry
    try:
        assert "activation relu: built-in" not in registry_text()
        assert derive.fingerprint(net) != before
    finally:
        ops.ACTIVATIONS["relu"] = relu
    assert "activation relu: built-in" in registry_text()
    assert derive.fingerprint(net) == before



def test_sources_digest_covers_sub_packages(tmp_path):
    """A change in a sub-package's file (kernels/cpu/epoch.py) changes the code version, so cached
    kernels generated by the old code are not found again."""
    from symprop.derive.fingerprint import sources_digest

    (tmp_path / "cpu").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "cpu" / "epoch.py").write_text("y = 1\n")
    before = sources_digest(tmp_path, "v")
    (tmp_path / "cpu" / "epoch.py").write_text("y = 2\n")
    assert sources_digest(tmp_path, "v") != before
    (tmp_path / "cpu" / "epoch.py").rename(tmp_path / "cpu" / "other.py")
    (tmp_path / "cpu" / "other.py").write_text("y = 1\n")
    assert sources_digest(tmp_path, "v") != before      # same bytes under another name
