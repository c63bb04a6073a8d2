"""The report's figures: activation curves evaluate derive's *derived* derivative; training curves,
decision boundaries and fitted curves are drawn for the cases they claim; bytes are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symprop import derive
from symprop.derive.ops import ACTIVATIONS, X, scalar_function
from symprop.derive.scalar import derivative
from symprop.reports import figures as F

KINKS = {"step", "relu", "leaky_relu", "elu", "softsign"}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_curves_are_the_derived_derivative(name):
    deriv = derive.backprop(derive.mlp([1, 2, 1], activation=name)).nodes["a1"].derivatives["x"]
    x, f, df = F.activation_curves(deriv)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(df))
    np.testing.assert_allclose(df, F.evaluate_scalar(deriv.in_input, x))
    # independent check: central differences of f, away from the kinks
    h = 1e-6
    fd = (F.evaluate_scalar(deriv.function, x + h) - F.evaluate_scalar(deriv.function, x - h)) / (2 * h)
    away = np.abs(x) > 1e-3 if name in KINKS else np.ones_like(x, dtype=bool)
    if name == "step":
        assert np.all(df == 0)  # the convention: DiracDelta taken as 0
    else:
        np.testing.assert_allclose(df[away], fd[away], rtol=1e-5, atol=1e-6)


def test_conventions_at_the_kink():
    d = derivative(scalar_function("activation", {"function": "relu"}))
    assert F.evaluate_scalar(d.in_input, np.array([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.0, 1.0]


def test_user_formula_activation():
    d = derivative(scalar_function("activation", {"function": "x*tanh(log(1+exp(x)))"}))
    x, f, df = F.activation_curves(d)
    assert np.all(np.isfinite(df)) and abs(df[len(x) // 2] - 0.6) < 0.01  # mish'(0) = tanh(log 2) ≈ 0.6


def test_activation_figure_bytes_are_reproducible(tmp_path):
    import matplotlib

    d = derivative(sp.tanh(X))
    a = F.activation_figure(d, tmp_path / "a.pdf").read_bytes()
    with matplotlib.rc_context({"lines.linewidth": 7, "font.size": 20}):  # a user's style does not leak in
        b = F.activation_figure(d, tmp_path / "b.pdf").read_bytes()
    assert a == b and a.startswith(b"%PDF") and b"CreationDate" not in a


def history(val: bool = True):
    from symprop.kernels.training.loop import History

    rows = [{"epoch": e, "steps": 4 * e, "seconds": 0.01, "loss": 1.0 / e, "accuracy": 1 - 0.5 / e,
             **({"val_loss": 1.2 / e, "val_accuracy": 1 - 0.6 / e} if val else {})} for e in range(1, 11)]
    return History(epochs=rows, optimizer="Adam")


@pytest.mark.parametrize("val", [True, False])
def test_training_figure(tmp_path, val):
    path = F.training_figure(history(val), tmp_path / "t.pdf")
    assert path.read_bytes().startswith(b"%PDF")


@pytest.mark.slow
def test_decision_figures(tmp_path):
    from symprop.kernels.training.data import make

    rng = np.random.default_rng(0)
    moons = make("moons", n_samples=64, seed=0)
    for loss in ("bce_logits", "mse", "bce"):
        bp = derive.backprop(derive.mlp([2, 4, 1], activation="tanh", loss=loss))
        params = {p: rng.normal(size=bp.info.shapes[p]) for p in bp.parameters}
        assert F.decision_figure(bp, params, moons.X, moons.y, tmp_path / f"{loss}.pdf").exists()
    three = make("spirals3", n_samples=60, seed=0)
    bp = derive.backprop(derive.mlp([2, 5, 3], activation="relu", loss="softmax_cross_entropy"))
    params = {p: rng.normal(size=bp.info.shapes[p]) for p in bp.parameters}
    assert F.decision_figure(bp, params, three.X, three.y, tmp_path / "three.pdf").exists()
    sine = make("sine", n_samples=50, seed=0)
    bp = derive.backprop(derive.mlp([1, 5, 1], activation="tanh"))
    params = {p: rng.normal(size=bp.info.shapes[p]) for p in bp.parameters}
    assert F.decision_figure(bp, params, sine.X, sine.y, tmp_path / "sine.pdf").exists()
    bp = derive.backprop(derive.mlp([3, 2, 1]))
    params = {p: rng.normal(size=bp.info.shapes[p]) for p in bp.parameters}
    assert F.decision_figure(bp, params, np.zeros((4, 3)), None, tmp_path / "none.pdf") is None


def test_network_output_matches_derive_evaluate():
    bp = derive.backprop(derive.mlp([2, 3, 1], activation="tanh"))
    values = derive.random_values(bp.graph, batch=5, seed=1)
    params = {p: values[p] for p in bp.parameters}
    from symprop.derive.evaluation import forward_values

    expected = forward_values(bp, values)["z2"]
    np.testing.assert_allclose(F.network_output(bp, params, values["x"]), expected)
