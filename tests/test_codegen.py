"""Compiled kernels (kernels.cpu.loss / kernels.cache / kernels.model) against the reference.

The compiled gradients must equal ``derive.evaluate(derive.backprop(net), values)``, the NumPy
interpreter of the same derived equations. Numba compilation is slow, so every distinct network
is compiled once per session (module-scoped fixtures) into a temporary cache directory.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from symprop import derive
from symprop.derive.evaluation import forward_values

from nets import NETS   # the test zoo: tanh_mse, relu_sce, tanh_bce, formula_mse, tanh_mse_l2, softmax_mse_l1

SEED = 3
BATCH = 6


@pytest.fixture(scope="module")
def compiled(compiled_model):
    """``compiled(key, dtype)``: the compiled model of ``NETS[key]`` (see tests/conftest.py)."""
    return lambda key, dtype="float64": compiled_model(NETS[key], dtype)


def _values(model, seed=SEED, batch=BATCH):
    return derive.random_values(model.net, batch=batch, seed=seed)


def _run(model, values):
    params = {p: values[p] for p in model.signature.parameters}
    x, t = model.signature.inputs[0], model.signature.targets[0]
    return model.loss_and_grads(values[x], values[t], params)


# --- against the interpreter of the derived equations -------------------------------------------

@pytest.mark.parametrize("key", sorted(NETS))
def test_gradients_equal_evaluate_float64(compiled, key):
    model = compiled(key)
    values = _values(model)
    loss, grads = _run(model, values)
    ref_loss, ref_grads = derive.evaluate(model.backprop, values)
    assert set(grads) == set(ref_grads) == set(model.parameters)
    assert loss == pytest.approx(ref_loss, rel=1e-9)
    for p, ref in ref_grads.items():
        assert grads[p].shape == ref.shape and grads[p].dtype == np.float64
        np.testing.assert_allclose(grads[p], ref, rtol=1e-9, atol=1e-13, err_msg=p)


def test_penalty_is_in_the_objective(compiled):
    model = compiled("tanh_mse_l2")
    values = _values(model)
    loss, _ = _run(model, values)
    env = forward_values(model.backprop, values)
    penalties = model.backprop.info.penalties
    assert len(penalties) == 2
    assert loss == pytest.approx(env[model.backprop.info.loss] + sum(env[p] for p in penalties), rel=1e-12)


def test_float32_close_to_float64(compiled):
    model32 = compiled("tanh_mse", "float32")
    values = _values(model32)
    loss, grads = _run(model32, values)
    ref_loss, ref_grads = derive.evaluate(model32.backprop, values)
    assert isinstance(loss, float) and loss == pytest.approx(ref_loss, rel=1e-4)
    for p, ref in ref_grads.items():
        assert grads[p].dtype == np.float32
        np.testing.assert_allclose(grads[p], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max(), err_msg=p)
    assert all(v.dtype == np.float32 for v in model32.parameters.values())
    assert "np.float32" in model32.source


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_cross_entropy_is_stable_for_huge_logits(compiled, dtype):
    model = compiled("relu_sce", dtype)
    params = {k: v.copy() for k, v in model.parameters.items()}
    params["W2"][:] = 0.0
    params["b2"][:] = [1000.0, -1000.0, 0.0]  # logits z2 = (1000, -1000, 0) in every row
    X = np.random.default_rng(0).normal(size=(5, 3))
    T = np.tile([0.0, 1.0, 0.0], (5, 1))     # the true class has logit -1000
    loss, grads = model.loss_and_grads(X, T, params)
    assert np.isfinite(loss) and loss == pytest.approx(2000.0, rel=1e-6)
    for p, g in grads.items():
        assert np.all(np.isfinite(g)), p
    # softmax(z2) = (1, 0, 0): dL/db2 = mean(softmax - t) = (1, -1, 0)
    np.testing.assert_allclose(grads["b2"], [1.0, -1.0, 0.0], atol=1e-6)
    assert "_max" in model.source  # the row maximum is subtracted


# --- the generated source ------------------------------------------------------------------------

def test_source_is_plain_and_commented(compiled):
    model = compiled("relu_sce")
    src = model.source
    tree = ast.parse(src)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert not called & {"exec", "eval", "compile", "__import__"}
    assert "exec(" not in src and "eval(" not in src
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "loss_and_grads" in functions
    assert 'numba.njit(cache=True, fastmath=False, error_model="numpy")' in src
    for node in ("z1", "a1", "z2", "L", "W1", "b1", "W2", "b2"):
        assert f"# node {node!r}" in src
    comments = "\n".join(line for line in src.splitlines() if line.strip().startswith("#"))
    assert "x·W1ᵀ" in comments and "∂L/∂W1" in comments
    assert "@" in src and "np.sum(" in src and "for n in range(N):" in src


@pytest.mark.slow
def test_source_is_deterministic():
    """The same network gives the same text (and so the same cache file), in any process."""
    from symprop.kernels.cpu.loss import generate

    net = NETS["relu_sce"]()
    src = generate(net)
    assert generate(net) == src
    assert generate(net, "float32") != src
    code = ("import sys; from symprop import derive; from symprop.kernels.cpu.loss import generate; "
            "sys.stdout.write(generate(derive.mlp([3, 4, 3], activation='relu', loss='softmax_cross_entropy')))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONIOENCODING="utf-8")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
                         check=True, env=env)
    assert out.stdout == src


def _py_func_matches_interpreter(module, bp, batch: int, seed: int) -> None:
    """The generated ``loss_and_grads`` run as plain Python (``py_func``, no Numba compile) equals
    ``derive.evaluate`` at random values."""
    from symprop.kernels.lower.signature import signature

    sig = signature(bp)
    values = derive.random_values(bp.graph, batch=batch, seed=seed)
    grads = {p: np.empty(np.shape(values[p])) for p in sig.parameters}
    loss = module.loss_and_grads.py_func(*[values[v] for v in (*sig.inputs, *sig.targets, *sig.parameters)],
                                         *grads.values())
    ref_loss, ref_grads = derive.evaluate(bp, values)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for p in ref_grads:
        np.testing.assert_allclose(grads[p], ref_grads[p], rtol=1e-10, atol=1e-14, err_msg=p)


def test_odd_node_names_are_sanitised():
    """Names with spaces, quotes, slashes and non-ASCII letters give valid identifiers; the
    generated Python (run without Numba via ``py_func``) still matches the interpreter."""
    from symprop.kernels import cache
    from symprop.kernels.cpu.loss import generate

    net = (derive.Builder('odd "net"\'').input('in put"""', 2).dense(3, activation="sigmoid", name="dx/dq")
           .dense(2, name="größe").softmax(name="p r/ob").loss("mse", name="loss'", target="t a r").build())
    src = generate(net)
    ast.parse(src)
    _py_func_matches_interpreter(cache.load(src), derive.backprop(net), batch=4, seed=1)
    assert "# node 'größe'" in src


def test_shared_weight_accumulates_python():
    """A parameter used twice gets both contributions (checked through ``py_func``, no compile)."""
    from symprop.kernels import cache
    from symprop.kernels.cpu.loss import generate
    from symprop.kernels.lower.signature import signature

    g = nx.DiGraph(name="shared")
    g.add_node("x", op="input", shape=[3])
    g.add_node("W", op="parameter", shape=[3, 3])
    g.add_node("z1", op="dense")
    g.add_node("a1", op="activation", function="tanh")
    g.add_node("z2", op="dense")
    g.add_node("t", op="target", shape=[3])
    g.add_node("L", op="loss", function="mse")
    g.add_node("pen", op="penalty", kind="l1", weight=0.1)
    for u, v, a in [("x", "z1", "x"), ("W", "z1", "W"), ("z1", "a1", "x"), ("a1", "z2", "x"), ("W", "z2", "W"),
                    ("z2", "L", "y"), ("t", "L", "t"), ("W", "pen", "w")]:
        g.add_edge(u, v, arg=a)
    bp = derive.backprop(g)
    assert len(bp.gradients["W"]) == 3
    module = cache.load(generate(bp))
    sig = signature(bp)
    values = derive.random_values(g, batch=5, seed=2)
    grads = {"W": np.empty((3, 3))}
    loss = module.loss_and_grads.py_func(values["x"], values["t"], values["W"], grads["W"])
    ref_loss, ref_grads = derive.evaluate(bp, values)
    assert sig.parameters == ("W",)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grads["W"], ref_grads["W"], rtol=1e-10)


# --- the cache -----------------------------------------------------------------------------------

def test_second_compile_reuses_the_cached_file(compiled, kernel_cache):
    from symprop.kernels import cache
    from symprop.kernels.backends import compile

    model = compiled("tanh_mse")
    assert model.path.parent == kernel_cache
    assert model.path.name == cache.cache_key(model.source) + ".py"
    before = os.stat(model.path)
    cache.clear_memory()  # force a fresh import from disk
    again = compile(NETS["tanh_mse"](), backend="parallel")
    after = os.stat(again.path)
    assert again.path == model.path
    assert (after.st_mtime_ns, after.st_ino, after.st_size) == (before.st_mtime_ns, before.st_ino, before.st_size)
    assert again.path.read_text(encoding="utf-8") == model.source
    values = _values(model)
    l1, g1 = _run(model, values)
    l2, g2 = _run(again, values)
    assert l1 == l2 and all(np.array_equal(g1[p], g2[p]) for p in g1)


def test_corrupt_cache_file_is_rewritten(kernel_cache):
    from symprop.kernels import cache

    src = "# symprop cache test\nVALUE = 41 + 1\n"
    path = cache.source_path(src)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("VALUE = (  # truncated\n", encoding="utf-8")
    module = cache.load(src)
    assert module.VALUE == 42
    assert path.read_text(encoding="utf-8") == src
    stat = os.stat(path)
    assert cache.load(src) is module and os.stat(path).st_mtime_ns == stat.st_mtime_ns


HEAL = """
import numpy as np, derive, kernels
m = kernels.compile(derive.mlp([2, 3, 1], activation="tanh"))
X = np.arange(6.0).reshape(3, 2) / 7
loss, grads = m.loss_and_grads(X, np.ones((3, 1)))
print(f"{loss:.15f} {grads['W1'][0, 0]:.15f}", len(m.kernel.stats.cache_hits))
"""


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated index", "garbled data", "empty data", "folder for data"])
def test_a_corrupt_numba_cache_file_is_compiled_over(tmp_path, damage):
    """Numba raised UnpicklingError, EOFError, AttributeError or IsADirectoryError from such a file,
    in every later process; now the kernel compiles again and its cache entry is rewritten."""
    env = {**os.environ, "SYMPROP_CACHE": str(tmp_path)}
    once = lambda: subprocess.run([sys.executable, "-c", HEAL], env=env, capture_output=True, text=True)  # noqa: E731
    first = once()
    assert first.returncode == 0, first.stderr[-2000:]
    index = next((tmp_path / "__pycache__").glob("*loss_and_grads*.nbi"))
    data = next((tmp_path / "__pycache__").glob("*loss_and_grads*.nbc"))
    if damage == "truncated index":
        index.write_bytes(index.read_bytes()[:30])
    elif damage == "garbled data":
        data.write_bytes(b"garbage" * 10)
    elif damage == "empty data":
        data.write_bytes(b"")
    else:
        data.unlink()
        data.mkdir()
    healed, again = once(), once()
    assert healed.returncode == 0 and again.returncode == 0, (healed.stderr + again.stderr)[-2000:]
    values = [p.stdout.split() for p in (first, healed, again)]
    assert values[0][:2] == values[1][:2] == values[2][:2]
    assert values[1][2] == "0" and values[2][2] == "1"       # compiled over, then loaded again


def test_a_cache_that_cannot_be_written_is_named(monkeypatch, tmp_path):
    from symprop import kernels
    from symprop.kernels import cache

    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path / "afile"))
    cache.clear_memory()
    with pytest.raises(ValueError) as info:
        kernels.compile(derive.mlp([2, 5, 1], activation="softsign"))
    assert str(info.value).startswith(f"the kernel cache {tmp_path / 'afile'} cannot be written")
    assert "set SYMPROP_CACHE" in str(info.value)


def test_a_folder_in_place_of_an_index_entry_does_not_stop_compiling(monkeypatch, tmp_path):
    """The index only saves a later process the derivation; writing it failed the compile."""
    from symprop import kernels
    from symprop.kernels import cache

    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path))
    net = derive.mlp([2, 5, 1], activation="softsign")
    name = cache.generated_name(net, "loss_and_grads", "float64")
    (tmp_path / "derived" / f"{name}.json").mkdir(parents=True)
    model = kernels.compile(net)
    assert np.isfinite(model.loss_and_grads(np.zeros((2, 2)), np.zeros((2, 1)))[0])
    assert cache.recall(name) is not None          # and the entry was written over the folder


@pytest.mark.slow
def test_a_network_edited_after_compile_does_not_change_the_model():
    """The epoch function's cache name came from the edited graph but its code from the compiled
    one: tanh code was filed under the relu network's name and handed to later relu models."""
    from symprop import kernels
    from symprop.kernels.training.optim import SGD

    X, T = np.linspace(-1, 1, 16).reshape(8, 2), np.full((8, 1), 0.3)
    net = derive.mlp([2, 4, 1], activation="tanh")
    model = kernels.compile(net)
    net.nodes["a1"]["function"] = "relu"
    assert model.net.nodes["a1"]["function"] == "tanh"
    model.epoch_function(SGD(lr=0.1))(X, T, np.arange(8), 8, model.init_state(SGD(lr=0.1)), 0)
    relu = kernels.compile(derive.mlp([2, 4, 1], activation="relu"))
    losses, _ = relu.epoch_function(SGD(lr=0.1))(X, T, np.arange(8), 8, relu.init_state(SGD(lr=0.1)), 0)
    reference, _ = derive.evaluate(relu.backprop, {"x": X, "t": T, **relu.init(0)})
    assert losses[0] == pytest.approx(reference, rel=1e-12)


def _no_derivation(monkeypatch):
    """Make ``derive.backprop`` fail loudly: a compile that still derives is caught."""
    def refuse(net):
        raise AssertionError("derived again")

    monkeypatch.setattr(derive, "backprop", refuse)


def test_warm_compile_skips_the_derivation(compiled, monkeypatch):
    """A compile that finds the network's fingerprint in the index loads the remembered module
    without deriving or generating; the derivation is made only when something asks for it."""
    from symprop.kernels import cache
    from symprop.kernels.training import optim
    from symprop.kernels.backends import compile

    model = compiled("relu_sce")
    model.epoch_function(optim.SGD(lr=0.1))         # remembers the epoch source too
    cache.clear_memory()
    with monkeypatch.context() as m:
        _no_derivation(m)
        again = compile(NETS["relu_sce"]())
        assert again.source == model.source and again.path == model.path
        assert again.signature == model.signature and again.shapes == model.shapes
        assert again.warnings == []
        values = _values(model)
        l1, g1 = _run(model, values)
        l2, g2 = _run(again, values)
        assert l1 == l2 and all(np.array_equal(g1[p], g2[p]) for p in g1)
        run = again.epoch_function(optim.SGD(lr=0.1))
        assert run.kernel.py_func.__module__.startswith(cache.MODULE_PREFIX)
        with pytest.raises(AssertionError, match="derived again"):
            again.backprop
    assert again.backprop.info.order == model.backprop.info.order


def test_warnings_are_remembered_with_the_code(monkeypatch):
    from symprop.kernels import cache
    from symprop.kernels.backends import compile

    make = lambda: derive.mlp([2, 3, 1], activation="step", loss="mse")   # noqa: E731
    first = compile(make())
    assert first.warnings and "zero derivative" in first.warnings[0]
    cache.clear_memory()
    with monkeypatch.context() as m:
        _no_derivation(m)
        assert compile(make()).warnings == first.warnings


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "wrong_key", "missing_source", "edited_source", "bad_meta"])
def test_a_bad_index_entry_is_a_miss_and_is_rewritten(monkeypatch, tmp_path, damage):
    from symprop.kernels import cache
    from symprop.kernels.backends import compile
    from symprop.kernels.cache import generated_name

    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path))
    net = derive.mlp([2, 3, 1], activation="tanh", loss="mae")
    model = compile(net)
    name = generated_name(net, "loss_and_grads", "float64")
    entry = tmp_path / "derived" / f"{name}.json"
    assert cache.recall(name) == (model.source, {"warnings": []})
    if damage == "garbage":
        entry.write_text("{not json", encoding="utf-8")
    elif damage == "wrong_key":
        entry.write_text(json.dumps({"source": "0" * 64, "meta": {}}), encoding="utf-8")
    elif damage == "missing_source":
        model.path.unlink()
    elif damage == "bad_meta":
        entry.write_text(json.dumps({"source": cache.cache_key(model.source), "meta": {"warnings": "no"}}),
                         encoding="utf-8")
    else:
        model.path.write_text(model.source.replace("return", "return 2 *", 1), encoding="utf-8")
    assert cache.recall(name) is None or damage == "bad_meta"
    calls = []
    real = derive.backprop
    monkeypatch.setattr(derive, "backprop", lambda g: calls.append(g) or real(g))
    cache.clear_memory()
    again = compile(net)
    assert len(calls) == 1 and again.source == model.source
    assert model.path.read_text(encoding="utf-8") == model.source
    assert cache.recall(name) == (model.source, {"warnings": []})


def test_no_fingerprint_means_no_index(monkeypatch, tmp_path):
    from symprop.kernels.backends import compile

    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path))
    net = derive.mlp([2, 3, 1], activation="tanh", loss="mse")
    net.graph["seed"] = np.int64(2)                   # harmless, but not JSON-native
    model = compile(net)
    assert model.backprop is not None and not (tmp_path / "derived").exists()


@pytest.mark.slow
def test_second_process_starts_without_deriving(tmp_path):
    """The fingerprint is the same in a new process, so it finds the index entries."""
    code = """
import sys
from symprop import derive, kernels
net = derive.mlp([3, 4, 2], activation="relu", loss="softmax_cross_entropy")
if sys.argv[1] == "warm":
    def refuse(g):
        raise SystemExit("derived again")
    derive.backprop = refuse
model = kernels.compile(net, dtype="float32")
model.epoch_function(kernels.Adam(lr=1e-3))
print(model.path.name)
"""
    env = {**os.environ, "SYMPROP_CACHE": str(tmp_path)}
    outs = [subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True, text=True)
            for mode in ("cold", "warm")]
    assert [o.returncode for o in outs] == [0, 0], outs[1].stderr[-2000:]
    assert outs[0].stdout == outs[1].stdout


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    from symprop.kernels import cache

    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SYMPROP_CACHE")
    assert cache.cache_dir() == cache.Path.home() / ".cache" / "symprop"


# --- the model API -------------------------------------------------------------------------------

def test_parameters_initialisation(compiled):
    model = compiled("tanh_mse")
    first = {k: v.copy() for k, v in model.parameters.items()}
    assert list(first) == ["W1", "b1", "W2", "b2"]
    assert first["W1"].shape == (5, 2) and first["b1"].shape == (5,)
    assert np.all(first["b1"] == 0) and np.all(first["b2"] == 0)
    assert np.all(np.abs(first["W1"]) <= np.sqrt(6 / 7)) and np.any(first["W1"] != 0)
    model.init(SEED + 1)
    assert not np.array_equal(model.parameters["W1"], first["W1"])
    model.init(0)
    assert all(np.array_equal(model.parameters[k], first[k]) for k in first)


def test_loss_and_grads_casts_and_validates(compiled):
    model = compiled("tanh_mse")
    X = [[1, 2], [3, 4], [5, 6]]  # integer lists are cast to float64
    T = np.zeros((3, 1), dtype=np.float32)
    loss, grads = model.loss_and_grads(X, T)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert grads["W1"].dtype == np.float64
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(batch, 2\)"):
        model.loss_and_grads(np.zeros((3, 3)), T)
    with pytest.raises(ValueError, match="target 't' has 4 rows but the batch has 3"):
        model.loss_and_grads(np.zeros((3, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="real numeric"):
        model.loss_and_grads(np.array([["a", "b"]]), T[:1])
    with pytest.raises(ValueError, match="empty"):
        model.loss_and_grads(np.zeros((0, 2)), np.zeros((0, 1)))
    bad = dict(model.parameters, W1=np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"parameter 'W1' must have shape \(5, 2\)"):
        model.loss_and_grads(X, T, bad)
    nan = np.zeros((3, 2))
    nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^input 'x' at index \[2, 1\]: nan is not finite$"):
        model.loss_and_grads(nan, T)
    with pytest.raises(ValueError, match=r"^target 't' at index \[0, 0\]: inf is not finite$"):
        model.loss_and_grads(X, np.full((3, 1), np.inf))
    with pytest.raises(ValueError, match=r"^parameter 'b1' at index \[4\]: -inf is not finite$"):
        model.loss_and_grads(X, T, dict(model.parameters, b1=np.array([0, 0, 0, 0, -np.inf])))


def test_a_value_float32_cannot_hold_is_named(compiled):
    model = compiled("tanh_mse", "float32")
    X = np.zeros((2, 2))
    X[1, 0] = 1e39
    with pytest.raises(ValueError, match=r"^input 'x' at index \[1, 0\]: 1e\+39 overflows float32$"):
        model.loss_and_grads(X, np.zeros((2, 1)))


def test_compile_rejects_unknown_backend_and_dtype():
    from symprop.kernels.backends import compile

    net = NETS["tanh_mse"]()
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        compile(net, backend="gpu")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        compile(net, dtype="int32")


def test_import_kernels_does_not_import_numba():
    code = "import sys, kernels; kernels.generate; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _zoo():
    b = derive.Builder("zoo").input("x", 2).dense(3, activation="leaky_relu", alpha=0.2)
    b = b.dense(3, activation="elu").dense(2, activation="gelu").dense(2, activation="softsign", bias=False)
    b = b.activation("softplus").activation("x*sigmoid(x)").dense(2, activation="relu").softmax().loss("mae")
    return b.penalty("l1", 0.01, on=["W1", "b1"]).penalty("l2", 0.02, on=["b2"]).build()


@pytest.mark.parametrize("make", [
    _zoo,
    lambda: derive.mlp([2, 3, 1], activation="step", loss="bce_logits"),
    lambda: derive.mlp([3, 2, 3], activation="sigmoid", loss="softmax_cross_entropy", penalty="l1"),
    lambda: derive.Builder("s").input("x", 3).dense(4).softmax().loss("softmax_cross_entropy").build(),
], ids=["zoo", "step_bce_logits", "sce_l1", "softmax_then_sce"])
def test_generated_python_matches_evaluate(make):
    """More ops, checked by running the generated function as plain Python (``py_func``)."""
    from symprop.kernels import cache
    from symprop.kernels.cpu.loss import generate

    bp = derive.backprop(make())
    _py_func_matches_interpreter(cache.load(generate(bp)), bp, batch=5, seed=4)


def test_softmax_node_is_stable_for_huge_logits_python():
    """The softmax op's forward and VJP subtract the row maximum too (plain Python's math.exp
    would raise OverflowError on exp(1000))."""
    from symprop.kernels import cache
    from symprop.kernels.cpu.loss import generate
    from symprop.kernels.lower.signature import signature

    net = derive.Builder("s").input("x", 3).dense(4).softmax().loss("mse").build()
    bp = derive.backprop(net)
    module = cache.load(generate(bp))
    assert signature(bp).parameters == ("W1", "b1")
    X = np.ones((2, 3))
    T = np.tile([0.0, 1.0, 0.0, 0.0], (2, 1))
    W1, b1 = np.zeros((4, 3)), np.array([1000.0, -1000.0, 0.0, 0.0])
    gW, gb = np.empty((4, 3)), np.empty(4)
    loss = module.loss_and_grads.py_func(X, T, W1, b1, gW, gb)
    assert loss == pytest.approx(0.5)  # p = (1, 0, 0, 0): ((1 - 0)² + (0 - 1)²) / 4
    assert np.all(np.isfinite(gW)) and np.all(np.isfinite(gb))
