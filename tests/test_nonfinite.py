"""A step whose loss, any gradient or any updated value is not finite is not applied (issue 18, item 3).

Every backend form of the CPU epoch (serial, ``prange``, data-parallel chunks) and every optimizer:
the epoch stops at the failing batch and the parameters and optimizer state are *exactly* those
of a run of the same start over the good batches only (the run that stops one step earlier).
Two ways to fail with a finite objective: a NaN gradient (``sqrt(|z|)`` at ``z = 0``: a
bias-free layer and an all-zero input row), and an optimizer state that overflows from finite
gradients (Adam's and RMSprop's ``g²`` of a 1e160 gradient; SGD's ``w - lr·g`` with a huge
``lr``). Then ``train``'s messages and checkpoint, and the command line's exit code, message and
files, for the issue's cases (several batches an epoch, and one). The CUDA backend's version of
these runs under the simulator (tests/cuda_sim/test_sim_cuda.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from symprop import derive
from symprop.kernels.training.loop import load_checkpoint, train
from symprop.kernels.training.optim import SGD, Adam, AdamW, RMSprop

OPTIMIZERS = {
    "sgd-l2": SGD(lr=0.1, l2=0.01),
    "momentum-l1": SGD(lr=0.05, momentum=0.9, l1=0.001),
    "nesterov": SGD(lr=0.05, momentum=0.9, nesterov=True),
    "rmsprop-l2": RMSprop(lr=0.01, l2=0.01),
    "adam-l1": Adam(lr=0.01, l1=0.01),
    "adamw-l2": AdamW(lr=0.01, l2=0.01, weight_decay=0.1),
}

FORMS = ["cpu", pytest.param("prange", marks=pytest.mark.slow), pytest.param("chunked", marks=pytest.mark.slow)]

BATCH = 4


def sqrt_net():
    """``sqrt(|x·W1ᵀ|)``: at an all-zero input row the objective is finite, ∂L/∂W1 is NaN."""
    return (derive.Builder("sqrt_abs").input("x", 2).dense(3, activation="sqrt(abs(x))", bias=False)
            .dense(1).loss("mse").build())


def sqrt_net_prange():   # another builder: its own compiled model, into which a prange kernel goes
    return sqrt_net()


def sqrt_net_l2():
    """With an L2 penalty node: the data-parallel form adds its gradient after the chunks and
    updates in a region of its own (``_update_slices``)."""
    return (derive.Builder("sqrt_abs_l2").input("x", 2).dense(3, activation="sqrt(abs(x))", bias=False)
            .dense(1).loss("mse").penalty("l2", 0.01).build())


def sqrt_net_l2_prange():
    return sqrt_net_l2()


def logits_net():
    """relu and a logistic loss: a 1e160 input gives a finite objective (linear in the logit) and
    finite 1e160 gradients, whose squares overflow."""
    return derive.mlp([2, 4, 1], activation="relu", loss="bce_logits")


def logits_net_prange():
    return logits_net()


def _runner(compiled_model, monkeypatch, make, prange_make, form, opt):
    """(model, run) with ``run`` forced to take ``form`` of the epoch, which is checked."""
    from symprop.kernels.cpu import blas_threads, epoch_keys

    if form == "cpu":
        m = compiled_model(make, "float64", "cpu")
        return m, m.epoch_function(opt)
    if form == "chunked":
        m = compiled_model(make, "float64", "parallel")
        monkeypatch.setattr(epoch_keys, "CHUNK_MIN", 0)
        monkeypatch.setattr("numba.get_num_threads", lambda: 3)   # 3 chunks whatever the machine
        monkeypatch.setattr(blas_threads, "controllable", lambda: True)
        run = m.epoch_function(opt)
        assert m._epoch_choice(lambda: m.epoch_kernel(opt, "parallel"), run.kernel, BATCH).chunked
        return m, run
    # the prange form: no network in the zoo needs it, so its kernel is made here and given to the model
    from symprop.kernels import cache
    from symprop.kernels.cpu.epoch import generate_epoch

    m = compiled_model(prange_make, "float64", "parallel")
    monkeypatch.setattr(epoch_keys, "PARALLEL_MIN", 0)
    key = (epoch_keys.optimizer_key(opt), "parallel", 0)
    if key not in m._epoch_kernels:
        source = generate_epoch(m.backprop, opt, "float64", "parallel", parallel_min=0, chunked=False)
        assert "CHUNKED = False" in source and "numba.prange(" in source
        fn = cache.load(source).train_epoch
        fn.chunked, fn.pointers = False, ()
        m._epoch_kernels[key] = fn
    run = m.epoch_function(opt)
    assert m._epoch_choice(lambda: m.epoch_kernel(opt, "parallel"), run.kernel, BATCH) is m._epoch_kernels[key]
    return m, run


def _snapshot(m, state):
    return ({p: v.copy() for p, v in m.parameters.items()},
            {p: {s: v.copy() for s, v in slots.items()} for p, slots in state.items()})


def _assert_same(got, want):
    for p in want[0]:
        assert np.isfinite(got[0][p]).all(), p
        np.testing.assert_array_equal(got[0][p], want[0][p], err_msg=f"parameter {p}")
        for s in want[1][p]:
            assert np.isfinite(got[1][p][s]).all(), f"{p} {s}"
            np.testing.assert_array_equal(got[1][p][s], want[1][p][s], err_msg=f"state {s} of {p}")


def _stops_at(m, run, opt, X, T, bad):
    """Run the epoch from seed-1 parameters; it must stop at batch ``bad`` with that batch's
    objective finite and the state of the run over batches ``< bad`` only. Returns the batch's
    gradients at the parameters it stopped with."""
    order = np.arange(len(X))
    m.init(1)
    state = m.init_state(opt)
    losses, done = run(X, T, order, BATCH, state, 0)
    assert done == bad
    assert np.isfinite(losses[:bad + 1]).all() and np.isnan(losses[bad + 1:]).all()
    got = _snapshot(m, state)
    m.init(1)
    state = m.init_state(opt)
    start = _snapshot(m, state)
    if bad:   # the run that stops one step earlier (with bad == 0: no step, the start)
        assert run(X, T, order[:bad * BATCH], BATCH, state, 0)[1] == bad
    _assert_same(got, _snapshot(m, state))
    if bad:
        assert any(not np.array_equal(got[0][p], start[0][p]) for p in start[0])   # the good steps did happen
    rows = order[bad * BATCH:(bad + 1) * BATCH]
    loss, grads = m.loss_and_grads(X[rows], T[rows], got[0])
    assert np.isfinite(loss)
    return grads


#: every optimizer in the serial and data-parallel forms; the prange form (one generated epoch per
#: optimizer, about 8-14 s each, used by no network of today's zoo) with two of them
CASES = [pytest.param(form, name, marks=[pytest.mark.slow] if (form, name) != ("cpu", "adam-l1") else [])
         for form in ("cpu", "chunked") for name in sorted(OPTIMIZERS)]
CASES += [pytest.param("prange", name, marks=pytest.mark.slow) for name in ("adam-l1", "nesterov")]


@pytest.mark.parametrize("form,name", CASES)
def test_nan_gradient_update_is_not_applied(compiled_model, monkeypatch, form, name):
    opt = OPTIMIZERS[name]
    m, run = _runner(compiled_model, monkeypatch, sqrt_net, sqrt_net_prange, form, opt)
    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(40, 2)), rng.normal(size=(40, 1))
    X[13] = 0.0   # batch 3 of 10
    grads = _stops_at(m, run, opt, X, T, bad=3)
    assert not np.isfinite(grads["W1"]).all()   # what failed: a gradient


@pytest.mark.parametrize("form", FORMS)
def test_nan_gradient_with_a_penalty_node(compiled_model, monkeypatch, form):
    opt = Adam(lr=0.01)
    m, run = _runner(compiled_model, monkeypatch, sqrt_net_l2, sqrt_net_l2_prange, form, opt)
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
    X[9] = 0.0   # batch 2 of 5
    grads = _stops_at(m, run, opt, X, T, bad=2)
    assert not np.isfinite(grads["W1"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("form", ["cpu", "chunked"])
@pytest.mark.parametrize("name,opt", [("adam", Adam(lr=0.01)), ("rmsprop", RMSprop(lr=0.01)), ("sgd", SGD(lr=1e200))])
def test_update_overflowing_from_finite_gradients_is_not_applied(compiled_model, monkeypatch, form, name, opt):
    """Finite objective, finite gradients (about 1e160: a 1e160 input, targets 0.5 so that every
    row's ∂L/∂z = σ(z) - t is ±0.5): Adam's and RMSprop's g² overflows in batch 2 (the state; the
    parameters stay finite), SGD's ``w - lr·g`` in batch 0 (a parameter)."""
    m, run = _runner(compiled_model, monkeypatch, logits_net, logits_net_prange, form, opt)
    X, T = np.random.default_rng(1).normal(size=(24, 2)), np.full((24, 1), 0.5)
    bad = 0 if name == "sgd" else 2
    if name == "sgd":
        X[:] = 1e160
    else:
        X[9] = 1e160   # batch 2 of 6
    grads = _stops_at(m, run, opt, X, T, bad=bad)
    assert all(np.isfinite(g).all() for g in grads.values())   # what failed: the update
    assert max(np.abs(g).max() for g in grads.values()) > 1e150


# --- train(): the messages and the checkpoint ----------------------------------------------------

def _zero_row_data(rows=32, zero=None):
    rng = np.random.default_rng(2)
    X, T = rng.normal(size=(rows, 2)), rng.normal(size=(rows, 1))
    if zero is not None:
        X[zero] = 0.0
    return X, T


def test_train_resumed_then_failing_keeps_the_checkpoint_and_the_last_good_step(compiled_model, tmp_path):
    from symprop.kernels.backends import compile

    opt = Adam(lr=0.01)
    ck = tmp_path / "ck.npz"
    good = compile(sqrt_net())
    h1 = train(good, *_zero_row_data(), epochs=1, batch_size=BATCH, optimizer=opt, seed=7, progress=False,
               checkpoint=ck)
    assert h1.stopped is None and h1.last["steps"] == 8
    after_epoch_1 = {p: v.copy() for p, v in good.parameters.items()}

    X, T = _zero_row_data(zero=21)
    model = compile(sqrt_net(), seed=5)
    h = train(model, X, T, epochs=3, batch_size=BATCH, optimizer=opt, seed=7, progress=False, checkpoint=ck,
              resume=True)
    order = np.random.default_rng([7, 1]).permutation(len(X))   # train's order of epoch 2
    bad = int(np.flatnonzero(order == 21)[0]) // BATCH
    assert h.stopped == (f"diverged: at epoch 2, batch {bad + 1} a gradient or an updated parameter or optimizer "
                         f"state was NaN or Inf (the loss was {h.last['loss']:.6g}); the update was not applied; "
                         f"parameters are those of the last good step ({8 + bad}); the checkpoint {ck} holds the "
                         f"last good epoch (1, step 8)")
    assert np.isfinite(h.last["loss"]) and h.last["steps"] == 8 + bad
    # the checkpoint is still epoch 1's
    check = compile(sqrt_net(), seed=9)
    state, step, epoch, history = load_checkpoint(ck, check)
    assert (step, epoch, len(history.epochs), history.stopped) == (8, 1, 1, None)
    for p in after_epoch_1:
        np.testing.assert_array_equal(check.parameters[p], after_epoch_1[p])
    # the parameters are those after the good batches of epoch 2, from that checkpoint
    check.epoch_function(opt)(X, T, order[:bad * BATCH], BATCH, state, step)
    for p in check.parameters:
        assert np.isfinite(model.parameters[p]).all()
        np.testing.assert_array_equal(model.parameters[p], check.parameters[p], err_msg=p)


def test_train_failing_in_its_first_epoch_writes_the_starting_point(tmp_path):
    from symprop.kernels.backends import compile

    opt = SGD(lr=0.1, momentum=0.9)
    ck = tmp_path / "ck.npz"
    ck.write_bytes(b"an older file: not what the message may speak of")
    model = compile(sqrt_net(), seed=3)
    start = {p: v.copy() for p, v in model.parameters.items()}
    X, T = _zero_row_data(zero=np.arange(32))   # every row zero: batch 1 fails
    h = train(model, X, T, epochs=2, batch_size=BATCH, optimizer=opt, progress=False, checkpoint=ck)
    assert h.stopped.endswith(f"parameters are those of the last good step (0); the checkpoint {ck} holds the "
                              f"last good epoch (0, step 0: the starting point)")
    assert "at epoch 1, batch 1 a gradient" in h.stopped and len(h.epochs) == 1
    check = compile(sqrt_net(), seed=4)
    state, step, epoch, history = load_checkpoint(ck, check)
    assert (step, epoch, history.epochs, history.stopped, history.optimizer) == (0, 0, [], None, "SGD")
    for p in start:
        np.testing.assert_array_equal(model.parameters[p], start[p])
        np.testing.assert_array_equal(check.parameters[p], start[p])
        assert not state[p]["buf"].any()
    # resuming from it works (with another learning rate it would go on)
    h2 = train(check, X, T, epochs=2, batch_size=BATCH, optimizer=opt, progress=False, checkpoint=ck, resume=True)
    assert h2.stopped.endswith(f"the checkpoint {ck} holds the last good epoch (0, step 0: the starting point)")


def test_loss_divergence_message_is_unchanged_in_kind(tmp_path):
    """A non-finite objective still says so (and no checkpoint clause without a checkpoint)."""
    from symprop.kernels.backends import compile
    from symprop.kernels.training.data import make

    data = make("sine", n_samples=64, seed=0)
    model = compile(derive.mlp([1, 4, 1], activation="identity", loss="mse"))
    h = train(model, data.X, data.targets(1), epochs=50, batch_size=8, optimizer=SGD(lr=1e3), progress=False)
    assert h.stopped.startswith(f"diverged: the loss became {h.last['loss']} at epoch 1, batch ")
    assert not np.isfinite(h.last["loss"])
    assert "; its update was not applied; parameters are those of the last good step (" in h.stopped
    assert "checkpoint" not in h.stopped
    assert all(np.isfinite(v).all() for v in model.parameters.values())


# --- the command line (the two cases) ----------------------------------------------------

SPEC = """name = "sqrt_abs"
input = 2
loss = "mse"

[[layers]]
units = 3
activation = "sqrt(abs(x))"

[[layers]]
units = 1
"""


@pytest.mark.parametrize("rows,batch", [(64, 32), (8, 32)], ids=["several-batches", "one-batch"])
def test_cli_exit_message_and_files_after_a_nan_gradient(tmp_path, capsys, rows, batch):
    from symprop.cli import main
    from symprop.kernels.backends import compile

    (tmp_path / "spec.toml").write_text(SPEC)
    data = np.hstack([np.zeros((rows, 2)), np.ones((rows, 1))])
    np.savetxt(tmp_path / "data.csv", data, delimiter=",", header="x0,x1,y", comments="")
    save, ck = tmp_path / "p.npz", tmp_path / "c.npz"
    code = main(["train", str(tmp_path / "spec.toml"), "--data", str(tmp_path / "data.csv"), "--epochs", "3",
                 "--batch-size", str(batch), "--save", str(save), "--checkpoint", str(ck), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "epoch 1/3: stopped (" in out and f"parameters written to {save}" in out
    assert err == ("symprop: training stopped: diverged: at epoch 1, batch 1 a gradient or an updated parameter "
                   "or optimizer state was NaN or Inf (the loss was 1); the update was not applied; parameters "
                   f"are those of the last good step (0); the checkpoint {ck} holds the last good epoch (0, step 0: "
                   "the starting point)\n")
    fresh = compile(derive.load(tmp_path / "spec.toml"))   # seed 0, as the command's
    with np.load(save, allow_pickle=False) as saved:
        for p, v in fresh.parameters.items():
            assert np.isfinite(saved[p]).all()
            np.testing.assert_array_equal(saved[p], v)   # no good step: the starting parameters
    state, step, epoch, _ = load_checkpoint(ck, fresh)
    assert (step, epoch) == (0, 0) and all(not a.any() for slots in state.values() for a in slots.values())
