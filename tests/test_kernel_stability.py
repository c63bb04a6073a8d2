"""Compiled kernels stay finite at extreme inputs where the maths is finite (both dtypes)."""

import numpy as np
import pytest

from symprop import derive
from symprop import kernels

pytestmark = pytest.mark.slow   # one compile per activation, loss and dtype

EXTREMES = np.array([[-1000.0], [-50.0], [0.0], [50.0], [1000.0]])
ACTIVATIONS = ["sigmoid", "tanh", "softplus", "silu", "gelu", "elu", "softsign", "x*tanh(log(1+exp(x)))",
               "x*sigmoid(x)", "exp(x)/(1+exp(x))",
               # scaled softplus: its derivative exp(x)/(2*exp(x) + 2) was inf/inf at x = 1000
               "softplus(x)/2", "log(1+exp(x))/2 + 1",
               # log of a sigmoid: log(1/(1 + exp(-x))) overflowed at x = -1000
               "log(sigmoid(x))",
               # hyperbolic functions in a log or a denominator, a log of 1 - sigmoid, an ELU through min
               "log(cosh(x))", "sinh(x)/cosh(x)", "1/cosh(x)", "log(1-sigmoid(x))", "max(0,x)+min(0,exp(x)-1)"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_activation_kernels_finite_at_extremes(activation, dtype):
    net = derive.Builder().input("x", 1).dense(1, activation=activation).loss("bce_logits").build()
    _losses_at_extremes(net, dtype, activation)


def _losses_at_extremes(net, dtype, label):
    """``(x, target, loss)`` of the compiled one-weight ``net`` (W1 = 1) at every extreme input and
    target 0 and 1, after checking that the loss and every gradient are finite there."""
    model = kernels.compile(net, dtype=dtype)
    model.parameters["W1"][:] = 1.0
    out = []
    for row in EXTREMES:
        for target in (0.0, 1.0):
            loss, grads = model.loss_and_grads(row[None, :], np.array([[target]]))
            assert np.isfinite(loss), (label, dtype, row, loss)
            for p, g in grads.items():
                assert np.all(np.isfinite(g)), (label, dtype, row, p, g)
            out.append((float(row[0]), target, loss))
    return out


@pytest.mark.parametrize("loss", ["log(cosh(y-t))", "-t*log(sigmoid(y))-(1-t)*log(1-sigmoid(y))"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_user_loss_kernels_finite_at_extremes(loss, dtype):
    """A log-cosh loss and cross-entropy on logits written by hand, at outputs of +-1000 and +-50."""
    net = derive.Builder().input("x", 1).dense(1).loss(loss).build()
    for y, target, value in _losses_at_extremes(net, dtype, loss):
        if abs(y) >= 50:  # far out both losses are linear: |y - t| - log 2, and softplus(y) - t*y
            expected = abs(y - target) - np.log(2) if "cosh" in loss else max(y, 0) - target * y
            assert value == pytest.approx(expected, rel=1e-4, abs=1e-3), (loss, y, target)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_agree_with_reference_at_moderate_inputs(dtype):
    net = derive.mlp([1, 3, 1], activation="x*tanh(log(1+exp(x)))", loss="bce_logits")
    model = kernels.compile(net, dtype=dtype)
    values = derive.random_values(net, batch=4, seed=2)
    model.parameters = {p: values[p].astype(dtype) for p in model.parameters}
    loss, grads = model.loss_and_grads(values["x"], values["t"])
    ref_loss, ref = derive.evaluate(derive.backprop(net), values)
    tol = 1e-10 if dtype == "float64" else 2e-4
    assert loss == pytest.approx(ref_loss, rel=tol)
    for p in ref:
        np.testing.assert_allclose(grads[p], ref[p], rtol=tol, atol=tol)
