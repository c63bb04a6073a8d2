"""The fused training epoch (kernels.cpu.epoch, CompiledModel.epoch_function) against a NumPy loop.

The reference runs the same batches through ``model.loss_and_grads`` (the compiled gradient
kernel, itself checked against the derivation in test_codegen.py) and ``optimizer.step_numpy``
(the optimizer's rules evaluated by NumPy). Every network is compiled once per module, into a
temporary SYMPROP_CACHE.
"""

from __future__ import annotations

import ast
import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symprop import derive
from symprop.kernels.training.optim import SGD, Adam, AdamW, RMSprop

ROWS, BATCH = 23, 5            # 4 full batches and a final batch of 3 rows
STEP0 = 3


from nets import EPOCH_NETS as NETS


@pytest.fixture(scope="module")
def model(compiled_model):
    """``model(key, dtype, backend)`` (see tests/conftest.py)."""
    return lambda key="sce", dtype="float64", backend="cpu": compiled_model(NETS[key], dtype, backend)


def _data(model, rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    n_in = model.shapes[model.signature.inputs[0]][0]
    n_out = model.shapes[model.signature.targets[0]][0]
    X = rng.normal(size=(rows, n_in))
    T = np.eye(n_out)[rng.integers(0, n_out, rows)] if n_out > 1 else rng.normal(size=(rows, 1))
    return X, T, rng.permutation(rows)


def _reference(model, opt, params, X, T, order, batch, step0, steps=None):
    """NumPy loop: loss_and_grads per batch + step_numpy; returns (losses, params, state)."""
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    state: dict = {}
    losses = []
    for b, start in enumerate(range(0, len(order), batch)):
        if steps is not None and b == steps:
            break
        idx = order[start:start + batch]
        loss, grads = model.loss_and_grads(X[idx], T[idx], params)
        losses.append(loss)
        opt.step_numpy(params, {k: g.astype(np.float64) for k, g in grads.items()}, state, step0 + b + 1)
    return np.array(losses), params, state


OPTIMIZERS = {
    "sgd": SGD(lr=0.1),
    "nesterov": SGD(lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop": RMSprop(lr=0.01),
    "adam": Adam(lr=0.01),
    "adamw_l2": AdamW(lr=0.01, l2=0.01, weight_decay=0.05),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_epoch_equals_numpy_reference(model, name):
    m = model()
    opt = OPTIMIZERS[name]
    m.init(1)
    start = {k: v.copy() for k, v in m.parameters.items()}
    X, T, order = _data(m)
    state = m.init_state(opt)
    losses, done = m.epoch_function(opt)(X, T, order, BATCH, state, STEP0)
    ref_losses, ref_params, ref_state = _reference(m, opt, start, X, T, order, BATCH, STEP0)
    assert done == 5 and losses.shape == (5,)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-9)
    for p in start:
        np.testing.assert_allclose(m.parameters[p], ref_params[p], rtol=1e-9, atol=1e-13, err_msg=p)
        assert not np.array_equal(m.parameters[p], start[p]), p
        for s in opt.state:
            np.testing.assert_allclose(state[p][s], ref_state[p][s], rtol=1e-9, atol=1e-13, err_msg=f"{p}.{s}")


def test_float32_runs_and_is_close(model):
    m64, m32 = model(), model("sce", "float32")
    opt = Adam(lr=0.01)
    X, T, order = _data(m64)
    m64.init(2), m32.init(2)
    l64, d64 = m64.epoch_function(opt)(X, T, order, BATCH, m64.init_state(opt), 0)
    state32 = m32.init_state(opt)
    l32, d32 = m32.epoch_function(opt)(X, T, order, BATCH, state32, 0)
    assert d32 == d64 == 5
    assert all(v.dtype == np.float32 for v in m32.parameters.values())
    assert state32["W1"]["m"].dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-4)
    for p in m64.parameters:
        np.testing.assert_allclose(m32.parameters[p], m64.parameters[p], rtol=1e-3, atol=1e-4, err_msg=p)


def test_changing_lr_does_not_recompile(model):
    m = model()
    a, b = m.epoch_function(SGD(lr=0.1)), m.epoch_function(SGD(lr=0.3))
    assert a.kernel is b.kernel
    assert a.hyper_names == ("l1", "l2", "lr", "momentum")
    assert a.hyper[2] == 0.1 and b.hyper[2] == 0.3
    # structure changes do give another function: momentum adds a state slot, nesterov changes a rule
    c = m.epoch_function(SGD(lr=0.1, momentum=0.9))
    d = m.epoch_function(SGD(lr=0.1, momentum=0.9, nesterov=True))
    assert len({id(a.kernel), id(c.kernel), id(d.kernel)}) == 3
    # and the lr really is used: two epochs from the same start differ
    X, T, order = _data(m)
    out = []
    for run in (a, b):
        m.init(3)
        run(X, T, order, BATCH, m.init_state(SGD()), 0)
        out.append(m.parameters["W1"].copy())
    assert not np.allclose(out[0], out[1])


def test_divergence_stops_before_the_bad_update(model):
    m = model("mse")
    m.init(0)
    start = {k: v.copy() for k, v in m.parameters.items()}
    rng = np.random.default_rng(5)
    X, T = rng.normal(size=(200, 2)) * 3, rng.normal(size=(200, 1)) * 3
    order = np.arange(200)
    opt = SGD(lr=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        losses, done = m.epoch_function(opt)(X, T, order, 4, m.init_state(opt), 0)
        _, ref_params, _ = _reference(m, opt, start, X, T, order, 4, 0, steps=done)
    assert 0 < done < 50
    assert np.all(np.isfinite(losses[:done])) and not np.isfinite(losses[done])
    assert np.all(np.isnan(losses[done + 1:]))
    for p in start:
        np.testing.assert_allclose(m.parameters[p], ref_params[p], rtol=1e-9, err_msg=p)


@pytest.mark.slow
def test_parallel_backend_equals_cpu(model, monkeypatch):
    """The "parallel" backend's epoch, generated with prange taken on every loop (threshold 0)."""
    from symprop.kernels.cpu import epoch_keys
    monkeypatch.setattr(epoch_keys, "PARALLEL_MIN", 0)
    cpu, par = model(), model("sce", "float64", "parallel")
    opt = Adam(lr=0.01, l2=0.01)
    X, T, order = _data(cpu, rows=40)
    results = []
    for m in (cpu, par):
        m.init(4)
        state = m.init_state(opt)
        losses, done = m.epoch_function(opt)(X, T, order, 8, state, 0)
        assert done == 5
        results.append((losses, {k: v.copy() for k, v in m.parameters.items()}, state))
    kernels_used = [k for key, k in par._epoch_kernels.items() if key[1] == "parallel"]
    assert len(kernels_used) == 1
    src = __import__("sys").modules[kernels_used[0].py_func.__module__].__file__
    assert "numba.prange(" in open(src, encoding="utf-8").read()
    (l1, p1, s1), (l2, p2, s2) = results
    np.testing.assert_allclose(l2, l1, rtol=1e-12)
    for p in p1:
        np.testing.assert_allclose(p2[p], p1[p], rtol=1e-12, atol=1e-15, err_msg=p)
        np.testing.assert_allclose(s2[p]["v"], s1[p]["v"], rtol=1e-12, atol=1e-15, err_msg=p)


def test_epoch_source_is_commented_and_allocation_free(model):
    from symprop.kernels.cpu.epoch import generate_epoch

    m = model()
    src = generate_epoch(m.backprop, Adam(), "float64")
    ast.parse(src)
    assert 'cache=True, nogil=True, fastmath=False, error_model="numpy"' in src
    loop = src[src.index("for b in range(n_batches):"):]
    assert "np.empty" not in loop and "np.zeros" not in loop and " @ " not in loop
    assert "np.dot(" in loop and "_tanh(" in loop and "objmode" not in src
    assert "# m ← " in src and "β₁" in src and "# node 'z1' (dense): forward" in src
    assert "hyper = [beta1, beta2, eps, l1, l2, lr] (sorted names)" in src


def test_run_validates_arguments(model):
    m = model()
    opt = SGD(lr=0.1, momentum=0.5)
    run = m.epoch_function(opt)
    X, T, order = _data(m)
    state = m.init_state(opt)
    with pytest.raises(ValueError, match="outside"):
        run(X, T, np.array([0, ROWS]), 2, state, 0)
    with pytest.raises(ValueError, match="batch_size"):
        run(X, T, order, 0, state, 0)
    with pytest.raises(ValueError, match="no slot 'buf'"):
        run(X, T, order, 2, m.init_state(SGD()), 0)
    with pytest.raises(ValueError, match="rows but the input has"):
        run(X, T[:-1], order, 2, state, 0)
    losses, done = run(X, T, order, 100, state, 0)  # one batch larger than the data
    assert done == 1 and losses.shape == (1,)


# --- the optimizer's cache key -------------------------------------------------------------------

def _equations(opt):
    import sympy as sp

    return [(sp.srepr(lhs), sp.srepr(rhs)) for lhs, rhs in opt.equations()]


_OPTION = st.one_of(st.just(0.0), st.floats(1e-4, 0.99))


@settings(max_examples=60, deadline=None)
@given(cls=st.sampled_from([SGD, RMSprop, Adam, AdamW]), a=st.data(), b=st.data())
def test_built_in_optimizer_keys_read_from_options_match_their_equations(cls, a, b):
    """symprop's optimizers are keyed by which options are zero or false, without SymPy: two with
    the same key must have the same update equations (hyperparameters are symbols in them)."""
    from symprop.kernels.cpu.epoch_keys import optimizer_key

    def draw(data):
        options = {}
        for f in dataclasses.fields(cls):
            if f.init and f.name != "lr":
                options[f.name] = data.draw(st.booleans() if f.type in (bool, "bool") else _OPTION, label=f.name)
        return cls(lr=data.draw(st.floats(1e-4, 1.0), label="lr"), **options)

    x, y = draw(a), draw(b)
    if optimizer_key(x) == optimizer_key(y):
        assert _equations(x) == _equations(y)
    # and the key follows the terms: a zero decay drops its term from the equations
    assert (optimizer_key(x) == optimizer_key(dataclasses.replace(x, l2=0.0))) == (not x.l2)


def test_an_optimizer_of_the_users_is_keyed_by_its_equations():
    import sympy as sp

    from symprop.kernels.cpu.epoch_keys import optimizer_key

    @dataclasses.dataclass(frozen=True)
    class Clipped(SGD):
        clip: float = 1.0

        def gradient(self):
            return sp.Max(-sp.Symbol("clip", positive=True), sp.Min(sp.Symbol("clip", positive=True),
                                                                      super().gradient()))

    key = optimizer_key(Clipped(lr=0.1))
    assert key[:2] == (__name__, "test_an_optimizer_of_the_users_is_keyed_by_its_equations.<locals>.Clipped")
    assert key[-1] == tuple(_equations(Clipped(lr=0.1)))
    assert optimizer_key(Clipped(lr=0.1, clip=0.0)) == key          # values never enter the key


# --- optimizer options -------------------------------------------------------------------------

@pytest.mark.parametrize("make,needle", [
    (lambda: Adam(lr=True), "hyperparameter 'lr' must be a number, got True"),
    (lambda: Adam(lr="0.1"), "hyperparameter 'lr' must be a number, got '0.1'"),
    (lambda: Adam(beta1=1.0), "beta1 must be in [0, 1), got 1.0"),
    (lambda: AdamW(beta2=2.0), "beta2 must be in [0, 1), got 2.0"),
    (lambda: SGD(lr=0.1, momentum=0.9, nesterov="yes"), "option 'nesterov' must be true or false, got 'yes'"),
    (lambda: RMSprop(rho=-0.5), "'rho' must be a finite number >= 0"),
])
def test_bad_optimizer_options(make, needle):
    with pytest.raises(ValueError) as info:
        make()
    assert needle in str(info.value)


def test_numpy_scalars_are_optimizer_options():
    opt = Adam(lr=np.float32(0.5), beta1=np.float64(0.8))
    assert type(opt.lr) is float and opt.lr == 0.5 and opt.hyperparameters()["beta1"] == 0.8


def test_an_option_of_another_optimizer_is_refused_by_name():
    from symprop.kernels.training.optim import get_optimizer

    with pytest.raises(ValueError, match=r"optimizer 'adam' has no option 'momentum' \(its options: lr, l1, l2, "):
        get_optimizer("adam", momentum=0.9)
    assert get_optimizer("nesterov", lr=0.1, momentum=0.5).nesterov is True
