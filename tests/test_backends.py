"""kernels.backends: the table compile() looks a backend up in."""

import numpy as np
import pytest

from symprop import kernels
from symprop.kernels.backends import BACKENDS, Backend

import nets


def test_the_table_names_every_backend():
    assert list(BACKENDS) == ["cpu", "parallel", "cuda"]
    assert [b.parallel for b in BACKENDS.values()] == [False, True, False]
    assert all(b.name == name and b.description for name, b in BACKENDS.items())


def test_a_new_backend_is_one_entry(monkeypatch, compiled_model):
    """An entry added to the table is compiled through: here a second serial CPU backend."""
    monkeypatch.setitem(BACKENDS, "cpu-again", Backend("cpu-again", ".model:compile_cpu", False, "a test entry"))
    model = kernels.compile(nets.tanh_mse(), backend="cpu-again")
    assert model.backend == "cpu-again"
    reference = compiled_model(nets.tanh_mse)
    X, T = np.ones((4, 2)), np.zeros((4, 1))
    assert model.loss_and_grads(X, T)[0] == pytest.approx(reference.loss_and_grads(X, T)[0], rel=1e-12)


def test_an_unknown_backend_names_the_table():
    with pytest.raises(ValueError, match=r"unknown backend 'tpu' \(available: cpu, parallel, cuda\)"):
        kernels.compile(nets.tanh_mse(), backend="tpu")
