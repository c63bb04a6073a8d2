"""CUDA backend against the CPU backend, under Numba's CUDA simulator (see conftest.py).

Run by tests/test_cuda.py in a subprocess with ``NUMBA_ENABLE_CUDASIM=1``; directly:
``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda_sim``. Small networks and batches: the
simulator runs every CUDA thread as a Python thread (its blocks are small: kernels.cuda.codegen).
Tolerances: float64 1e-10 relative, float32 1e-4 (the issue's).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from symprop import derive
from symprop import kernels
from symprop.kernels.training.optim import SGD, Adam, AdamW, RMSprop

TOL = {"float64": 1e-10, "float32": 1e-4}

NETS = {
    "tanh-mse-l2": lambda: derive.mlp([3, 4, 2], activation="tanh", loss="mse", penalty="l2", weight=0.01),
    "relu-sce": lambda: derive.mlp([4, 6, 3], activation="relu", loss="softmax_cross_entropy"),
    "leaky-sce": lambda: derive.load("examples/classifier.toml"),
    "sigmoid-bce": lambda: derive.mlp([2, 3, 1], activation="sigmoid", loss="bce"),
    "mish-bce-logits": lambda: derive.mlp([3, 4, 1], activation="x*tanh(log(1+exp(x)))", loss="bce_logits"),
}

_MODELS: dict = {}


def models(key, dtype):
    """(cpu, cuda) models of NETS[key], compiled once per session, same seed (same start)."""
    if (key, dtype) not in _MODELS:
        net = NETS[key]()
        _MODELS[key, dtype] = (kernels.compile(net, dtype=dtype), kernels.compile(net, backend="cuda", dtype=dtype))
    return _MODELS[key, dtype]


def data(model, rows, seed=0):
    rng = np.random.default_rng(seed)
    n_in = model.shapes[model.signature.inputs[0]][0]
    n_out = model.shapes[model.signature.targets[0]][0]
    X = rng.normal(scale=1.5, size=(rows, n_in))
    loss = model.net.nodes[model.backprop.info.loss]["function"]
    if loss == "softmax_cross_entropy":
        T = np.eye(n_out)[rng.integers(0, n_out, rows)]
    elif loss in ("bce", "bce_logits"):
        T = rng.integers(0, 2, (rows, n_out)).astype(float)
    else:
        T = rng.normal(size=(rows, n_out))
    return X, T


def close(a, b, dtype, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(a))), 1e-30)
    err = float(np.max(np.abs(a - b))) / scale
    assert err <= TOL[dtype], f"{what}: CUDA differs from CPU by {err:.3g} (relative to max |cpu|), tolerance {TOL[dtype]}"


def test_simulator_is_on():
    from numba import config, cuda

    assert config.ENABLE_CUDASIM and cuda.is_available()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("key", list(NETS))
def test_loss_and_grads_equal_cpu(key, dtype):
    cpu, gpu = models(key, dtype)
    for p in cpu.parameters:
        np.testing.assert_array_equal(cpu.parameters[p], gpu.parameters[p])  # same Glorot init
    for rows in (1, 6):
        X, T = data(cpu, rows, seed=rows)
        l_cpu, g_cpu = cpu.loss_and_grads(X, T)
        l_gpu, g_gpu = gpu.loss_and_grads(X, T)
        close(l_cpu, l_gpu, dtype, f"{key} loss, batch {rows}")
        assert set(g_gpu) == set(g_cpu)
        for p in g_cpu:
            assert g_gpu[p].dtype == np.dtype(dtype) and g_gpu[p].shape == g_cpu[p].shape
            close(g_cpu[p], g_gpu[p], dtype, f"{key} gradient of {p}, batch {rows}")


@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(sizes=st.lists(st.integers(1, 6), min_size=2, max_size=3), rows=st.integers(1, 7),
       seed=st.integers(0, 2**16))
def test_random_shapes_equal_cpu(sizes, rows, seed):
    net = derive.mlp(sizes, activation="tanh", loss="mse")
    cpu, gpu = kernels.compile(net, seed=seed), kernels.compile(net, backend="cuda", seed=seed)
    X, T = data(cpu, rows, seed)
    l_cpu, g_cpu = cpu.loss_and_grads(X, T)
    l_gpu, g_gpu = gpu.loss_and_grads(X, T)
    close(l_cpu, l_gpu, "float64", f"mlp {sizes} loss")
    for p in g_cpu:
        close(g_cpu[p], g_gpu[p], "float64", f"mlp {sizes} gradient of {p}")


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_tiled_matrix_product(ta, tb):
    """The generic GEMM kernel on shapes that are not multiples of the tile, with bias and beta."""
    from numba import cuda

    _, gpu = models("tanh-mse-l2", "float64")
    mod = gpu.module
    rng = np.random.default_rng(int(ta) * 2 + int(tb))
    M, P, K = mod.BM + 3, 2 * mod.BN + 1, 2 * mod.BK + 3
    A = rng.normal(size=(K, M) if ta else (M, K))
    B = rng.normal(size=(P, K) if tb else (K, P))
    C = rng.normal(size=(M, P))
    bias = rng.normal(size=P)
    dC = cuda.to_device(C)
    mod._launch_gemm(M, P, K, cuda.to_device(A), ta, cuda.to_device(B), tb, dC, 0.5, 2.0, cuda.to_device(bias))
    want = 0.5 * (A.T if ta else A) @ (B.T if tb else B) + 2.0 * C + bias
    np.testing.assert_allclose(dC.copy_to_host(), want, rtol=1e-12, atol=1e-12)


OPTS = {"adam": Adam(lr=0.01, l2=0.01), "momentum": SGD(lr=0.05, momentum=0.9, nesterov=True, l1=0.001)}


# relu-sce: more parameters (24) and a larger batch (18) than the simulator's 16 threads a block
@pytest.mark.parametrize("key,dtype,batch", [("tanh-mse-l2", "float64", 4), ("relu-sce", "float32", 18)])
@pytest.mark.parametrize("opt", list(OPTS))
def test_epoch_equals_cpu_epoch(key, dtype, batch, opt):
    optimizer = OPTS[opt]
    cpu, gpu = models(key, dtype)
    rows = 13 if batch < 13 else batch + 5
    X, T = data(cpu, rows, seed=3)
    order = np.random.default_rng(4).permutation(rows)
    start = {p: v.copy() for p, v in cpu.parameters.items()}
    results = []
    for model in (cpu, gpu):
        model.parameters = {p: v.copy() for p, v in start.items()}
        state = model.init_state(optimizer)
        held = {p: model.parameters[p] for p in model.parameters}
        losses, done = model.epoch_function(optimizer)(X, T, order, batch, state, 5)
        assert all(model.parameters[p] is held[p] for p in held)   # updated in place
        results.append((losses, done, model.parameters, state))
    (l1, d1, p1, s1), (l2, d2, p2, s2) = results
    assert d1 == d2 == -(-rows // batch)
    close(l1, l2, dtype, f"{key} {opt} epoch losses")
    for p in p1:
        close(p1[p], p2[p], dtype, f"{key} {opt} parameter {p} after the epoch")
        for slot in s1[p]:
            close(s1[p][slot], s2[p][slot], dtype, f"{key} {opt} state {slot} of {p}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars on inf/NaN
def test_divergence_stops_like_cpu():
    """A non-finite objective in batch 2: its update is skipped, the epoch stops, the parameters
    are those after batch 1, on both backends."""
    optimizer = Adam(lr=0.01)
    cpu, gpu = models("tanh-mse-l2", "float64")
    X, T = data(cpu, 8, seed=5)
    X[5] = np.inf
    out = []
    for model in (cpu, gpu):
        model.init(0)
        state = model.init_state(optimizer)
        losses, done = model.epoch_function(optimizer)(X, T, np.arange(8), 2, state, 0)
        out.append((losses, done, {p: v.copy() for p, v in model.parameters.items()}))
    (l1, d1, p1), (l2, d2, p2) = out
    assert d1 == d2 == 2
    assert np.isfinite(l2[:2]).all() and not np.isfinite(l2[2]) and np.isnan(l2[3:]).all()
    close(l1[:2], l2[:2], "float64", "losses before the divergence")
    for p in p1:
        close(p1[p], p2[p], "float64", f"parameter {p} (last good)")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_found_after_a_check_interval(monkeypatch):
    """The host reads the stop flag every CHECK_EVERY batches: later failures are found too."""
    import symprop.kernels.cuda.model as cm
    monkeypatch.setattr(cm, "CHECK_EVERY", 2)
    _, gpu = models("tanh-mse-l2", "float64")
    X, T = data(gpu, 7, seed=6)
    X[5] = np.nan
    gpu.init(0)
    losses, done = gpu.epoch_function(SGD(lr=0.01))(X, T, np.arange(7), 1, gpu.init_state(SGD(lr=0.01)), 0)
    assert done == 5 and np.isnan(losses[5:]).all() and np.isfinite(losses[:5]).all()


NONFINITE_OPTS = {
    "sgd-l2": SGD(lr=0.1, l2=0.01),
    "momentum-l1": SGD(lr=0.05, momentum=0.9, l1=0.001),
    "nesterov": SGD(lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop-l2": RMSprop(lr=0.01, l2=0.01),
    "adam-l1": Adam(lr=0.01, l1=0.01),
    "adamw-l2": AdamW(lr=0.01, l2=0.01, weight_decay=0.1),
}

_SQRT: dict = {}


def sqrt_models():
    """(cpu, cuda) of ``sqrt(|x·W1ᵀ|)`` (bias-free): an all-zero input row gives a finite
    objective and a NaN ∂L/∂W1."""
    if not _SQRT:
        net = (derive.Builder("sqrt_abs").input("x", 2).dense(3, activation="sqrt(abs(x))", bias=False)
               .dense(1).loss("mse").build())
        _SQRT["m"] = (kernels.compile(net), kernels.compile(net, backend="cuda"))
    return _SQRT["m"]


def _state_after(model, optimizer, X, T, order, batch):
    model.init(1)
    state = model.init_state(optimizer)
    losses, done = model.epoch_function(optimizer)(X, T, order, batch, state, 0)
    return losses, done, {p: v.copy() for p, v in model.parameters.items()}, state


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars on inf/NaN
@pytest.mark.parametrize("opt", sorted(NONFINITE_OPTS))
def test_nan_gradient_update_is_undone_like_cpu(opt):
    """A finite objective with a NaN gradient in batch 2: the update kernel applied it on the
    device and set stop = -3; the host drops the device state and runs batches 0-1 again. The
    parameters and state equal those of the run over batches 0-1 only (exactly) and the CPU's."""
    optimizer = NONFINITE_OPTS[opt]
    cpu, gpu = sqrt_models()
    rng = np.random.default_rng(7)
    X, T = rng.normal(size=(12, 2)), rng.normal(size=(12, 1))
    X[9] = 0.0   # batch 2 of 3 (batches of 4)
    order = np.arange(12)
    l1, d1, p1, s1 = _state_after(cpu, optimizer, X, T, order, 4)
    l2, d2, p2, s2 = _state_after(gpu, optimizer, X, T, order, 4)
    assert d1 == d2 == 2
    assert np.isfinite(l2).all()   # batch 2's objective is finite: its gradient failed
    close(l1, l2, "float64", f"{opt} losses")
    _, d3, p3, s3 = _state_after(gpu, optimizer, X, T, order[:8], 4)
    assert d3 == 2
    for p in p1:
        assert np.isfinite(p2[p]).all()
        np.testing.assert_array_equal(p2[p], p3[p], err_msg=f"{opt} parameter {p}: not the last good step")
        close(p1[p], p2[p], "float64", f"{opt} parameter {p} (last good)")
        for slot in s1[p]:
            np.testing.assert_array_equal(s2[p][slot], s3[p][slot], err_msg=f"{opt} state {slot} of {p}")
            close(s1[p][slot], s2[p][slot], "float64", f"{opt} state {slot} of {p}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("first", [True, False], ids=["batch-0", "batch-2"])
def test_state_overflow_from_finite_gradients_is_undone(first):
    """Adam's g² of 1e160 gradients overflows (finite objective, finite gradients, finite
    parameters): that update is not kept, in batch 0 (the parameters from before the call) and in
    batch 2 (those after batch 1)."""
    optimizer = Adam(lr=0.01)
    net = derive.mlp([2, 3, 1], activation="relu", loss="bce_logits")
    gpu = _SQRT.setdefault("logits", kernels.compile(net, backend="cuda"))
    X, T = np.random.default_rng(8).normal(size=(6, 2)), np.full((6, 1), 0.5)
    bad = 0 if first else 2
    X[2 * bad] = 1e160
    l2, d2, p2, s2 = _state_after(gpu, optimizer, X, T, np.arange(6), 2)
    assert d2 == bad and np.isfinite(l2[:bad + 1]).all() and np.isnan(l2[bad + 1:]).all()
    if bad:
        _, _, p3, s3 = _state_after(gpu, optimizer, X, T, np.arange(2 * bad), 2)
    else:
        gpu.init(1)
        p3, s3 = gpu.parameters, gpu.init_state(optimizer)
    for p in p3:
        np.testing.assert_array_equal(p2[p], p3[p], err_msg=f"parameter {p}")
        for slot in s3[p]:
            assert np.isfinite(s2[p][slot]).all()
            np.testing.assert_array_equal(s2[p][slot], s3[p][slot], err_msg=f"state {slot} of {p}")


def test_verify_cuda():
    result = kernels.verify(derive.mlp([2, 2, 1], activation="tanh", loss="mse"), backend="cuda", batch=3)
    assert result.ok, result.table()
    assert result.backend == "cuda"


def test_train_cuda_model():
    from symprop.kernels.training.data import make

    ds = make("xor", n_samples=32, seed=0)
    net = derive.mlp([2, 4, 1], activation="tanh", loss="bce_logits")
    hist = {}
    for backend in ("cpu", "cuda"):
        model = kernels.compile(net, backend=backend)
        hist[backend] = kernels.train(model, ds.X, ds.targets(1), epochs=2, batch_size=8, optimizer=Adam(lr=0.05),
                                      seed=1, progress=False)
    a, b = hist["cpu"].last, hist["cuda"].last
    assert a["steps"] == b["steps"] == 8
    close(a["loss"], b["loss"], "float64", "training loss after 2 epochs")
