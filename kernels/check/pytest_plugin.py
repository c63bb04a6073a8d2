"""The symprop pytest plugin (entry point ``pytest11``: ``symprop = "kernels.check.pytest_plugin"``).

It loads in every pytest run of every environment where symprop is installed, so this module
imports only pytest and the standard library at the top; NumPy, SymPy, Numba and symprop itself
are imported when a check runs.

The ``assert_gradients`` fixture checks a network's (or a compiled model's) gradients with
:func:`kernels.check.verify.verify` and fails the test with a message naming the parameter, the
reference, the worst element, the compiled and reference values and the tolerance::

    from symprop import derive
    def test_my_network(assert_gradients):
        net = derive.mlp([3, 4, 2], activation="x*tanh(log(1+exp(x)))", loss="mse")
        assert_gradients(net)                    # float64 against SymPy and finite differences
        assert_gradients(net, dtype="float32")

Without the plugin, ``from kernels.check.verify import assert_gradients`` does the same.
"""

from __future__ import annotations

import pytest

# kernels.check.verify raises its own AssertionError; registering it means that any plain ``assert``
# added there later is rewritten too (it must be registered before the module is imported).
pytest.register_assert_rewrite("symprop.kernels.check.verify")

__all__ = ["assert_gradients"]


def _assert_gradients(net=None, backend: str = "cpu", dtype="float64", **kw):
    """``kernels.check.verify.assert_gradients(net, backend, dtype, **kw)``: raise AssertionError when a
    compiled gradient differs from SymPy's or from finite differences beyond the tolerance."""
    __tracebackhide__ = True
    from symprop.kernels.check.verify import assert_gradients as check

    return check(net, backend=backend, dtype=dtype, **kw)


@pytest.fixture
def assert_gradients():
    """A callable ``assert_gradients(net_or_model, backend="cpu", dtype="float64", **kw)`` that
    runs :func:`kernels.check.verify.verify` (keyword arguments: ``batch``, ``seed``, ``symbolic``,
    ``tolerances``, ``model``, ``fd``, ``fd_model``) and fails the test, pointing at the calling
    line, when a gradient is out of tolerance. It returns the :class:`kernels.check.verify.VerifyResult`."""
    return _assert_gradients
