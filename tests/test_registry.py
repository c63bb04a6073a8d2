"""Every registry entry through derive -> code -> verify, driven by one table (tests/nets.py).

A new op, activation, loss or penalty is picked up here with no edit: the ops need an example
network in ``nets.OP_EXAMPLES`` (a test fails until it has one), the functions get a small network
built around them. The fast tier checks the derived gradients (the NumPy interpreter of the
derived equations) against SymPy's derivative of the whole expanded loss and central finite
differences; the slow tier compiles each network and checks the compiled gradients the same way
(float64; the ops in float32 too).
"""

import numpy as np
import pytest

from symprop import derive, kernels
from symprop.derive.evaluation import finite_differences
from symprop.derive.ops import OPS

from nets import OP_EXAMPLES, registry_cases

CASES = registry_cases()
IDS = [c[0] for c in CASES]


def test_every_op_has_an_example():
    assert sorted(set(OPS) - set(OP_EXAMPLES)) == []


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=IDS)
def test_derived_gradients_against_references(make):
    net = make()
    bp = derive.backprop(net)
    values = derive.random_values(net, batch=3, seed=1)
    loss, grads = derive.evaluate(bp, values)
    truth = derive.symbolic_gradients(net, values)
    fd = finite_differences(bp, values)
    assert np.isclose(loss, float(truth.loss), rtol=1e-12, atol=1e-12)
    assert set(grads) == set(truth.grads) == set(fd)
    for p in grads:
        np.testing.assert_allclose(grads[p], np.asarray(truth.grads[p], dtype=float), rtol=1e-10, atol=1e-12,
                                   err_msg=f"{p}: derived vs SymPy")
        np.testing.assert_allclose(grads[p], fd[p], rtol=1e-5, atol=1e-7, err_msg=f"{p}: derived vs finite differences")


#: every entry compiled in float64; the ops (each form's statements) in float32 too. Every built-in
#: activation and loss also compiles in both dtypes in tests/test_kernel_stability.py.
COMPILED = [pytest.param(make, "float64", id=f"{name}-float64") for name, make in CASES]
COMPILED += [pytest.param(make, "float32", id=f"{name}-float32") for name, make in CASES if name.startswith("op:")]


@pytest.mark.slow
@pytest.mark.parametrize("make,dtype", COMPILED)
def test_compiled_gradients_verify(make, dtype, compiled_model):
    model = compiled_model(make, dtype)
    result = kernels.verify(model=model, seed=2)
    assert result.ok, result.table()
