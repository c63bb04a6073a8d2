"""kernels.check.verify: compiled gradients against SymPy and finite differences, and the checker failing.

Every network is compiled once per session into the session's temporary SYMPROP_CACHE
(tests/conftest.py), which the user-suite run of tests/test_pytest_plugin.py reuses.
"""

from __future__ import annotations

import numpy as np
import pytest

from symprop import derive
from symprop.kernels.check import verify as V

from nets import NETS as ZOO


def big():
    return derive.mlp([30, 80, 10], activation="relu", loss="mse")         # 3290 values


SMALL = ["tanh_mse", "relu_sce", "formula_mse", "tanh_mse_l2"]
NETS = {**{k: ZOO[k] for k in SMALL}, "big": big}


@pytest.fixture(scope="module")
def compiled(compiled_model):
    """``compiled(key, dtype)``: the compiled model of ``NETS[key]`` (see tests/conftest.py)."""
    return lambda key, dtype="float64": compiled_model(NETS[key], dtype)


def _check(compiled, key, dtype="float64", **kw):
    return V.verify(model=compiled(key, dtype), fd_model=compiled(key, "float64"), **kw)


def _sabotage(monkeypatch, model, parameter, factor=1.01):
    """Wrap the model's loss_and_grads so that one gradient is scaled: a deliberately wrong rule."""
    original = model.loss_and_grads

    def wrong(X, T, parameters=None):
        loss, grads = original(X, T, parameters)
        grads[parameter] = grads[parameter] * factor
        return loss, grads

    monkeypatch.setattr(model, "loss_and_grads", wrong)


# --- passing checks ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("key", SMALL)
def test_small_nets_pass(compiled, key, dtype):
    model = compiled(key, dtype)
    result = _check(compiled, key, dtype)
    assert result.ok, result.table()
    assert bool(result) and result.dtype == dtype and result.failures() == []
    assert result.symbolic_used and "used" in result.symbolic_note
    assert result.fd_mode == "elementwise"
    pairs = {(r.parameter, r.reference) for r in result.rows}
    expected = {(p, ref) for p in model.signature.parameters for ref in ("symbolic", "finite-diff")}
    assert pairs == expected | {("(objective)", "symbolic")}
    for r in result.rows:
        assert (r.rtol, r.atol) == V.TOLERANCES[dtype][V._REFERENCE_KEY[r.reference]]
        assert r.ok and r.ratio <= 1
    if dtype == "float64":  # the float64 kernel agrees with the 30-digit truth to rounding, far inside 1e-9
        assert max(r.ratio for r in result.rows if r.reference == "symbolic") < 1e-2


def test_verify_compiles_a_network_itself():
    result = V.verify(NETS["tanh_mse"](), batch=2, seed=5)
    assert result.ok and result.batch == 2 and result.seed == 5
    assert V.assert_gradients(NETS["tanh_mse"](), batch=2, seed=5).ok


def test_model_passed_positionally(compiled):
    result = V.verify(compiled("tanh_mse_l2"), symbolic=False)
    assert result.ok and not result.symbolic_used and "symbolic=False" in result.symbolic_note
    assert {r.reference for r in result.rows} == {"finite-diff"}
    # a float32 model is differenced through a float64 compile of its network, made here
    result32 = V.verify(compiled("tanh_mse_l2", "float32"), symbolic=False)
    assert result32.ok and result32.dtype == "float32"
    assert {(r.rtol, r.atol) for r in result32.rows} == {V.TOLERANCES["float32"]["finite-diff"]}


def test_a_model_with_the_network_it_was_compiled_from(compiled):
    """A model keeps a copy of its network: the caller's graph is accepted when equal, and a
    different one is refused."""
    model = compiled("tanh_mse_l2")
    same = NETS["tanh_mse_l2"]()
    assert same is not model.net and V.verify(same, model=model, symbolic=False).ok
    other = NETS["tanh_mse"]()
    with pytest.raises(ValueError, match="or the network it was compiled from"):
        V.verify(other, model=model)


def test_table_names_every_parameter(compiled):
    model = compiled("tanh_mse_l2")
    result = _check(compiled, "tanh_mse_l2")
    table = result.table()
    assert str(result) == table
    lines = table.splitlines()
    assert "symbolic: used" in lines[1] and "elementwise" in lines[2]
    header = lines[3].split()
    for column in ("parameter", "shape", "reference", "rtol", "atol", "ok"):
        assert column in header
    for p in model.signature.parameters:
        rows = [line for line in lines if line.split()[:1] == [p]]
        assert len(rows) == 2, (p, table)                  # one per reference
        assert {"symbolic", "finite-diff"} <= {w for line in rows for w in line.split()}
    assert lines[-1] == "result: all within tolerance"
    worst = result.worst()
    assert worst is not None and worst.ratio == max(r.ratio for r in result.rows)


def test_tolerances_are_keyed_by_dtype_and_can_be_overridden(compiled):
    assert V.TOLERANCES["float64"] == {"symbolic": (1e-9, 1e-12), "finite-diff": (1e-5, 1e-7)}
    assert V.TOLERANCES["float32"] == {"symbolic": (2e-3, 1e-5), "finite-diff": (2e-3, 1e-5)}
    for word in ("O(h²", "O(eps·|L|/h)", "eps32 = 1.2e-7"):  # the reasoning is documented
        assert word in V.__doc__
    # finite differences are not exact: an absurdly tight tolerance makes those rows fail, and only those
    result = _check(compiled, "tanh_mse", tolerances={"finite-diff": (1e-14, 0.0)})
    assert not result.ok
    assert {r.reference for r in result.failures()} == {"finite-diff"}
    loose = _check(compiled, "tanh_mse", tolerances=(1e-3, 1e-3))
    assert loose.ok and {(r.rtol, r.atol) for r in loose.rows} == {(1e-3, 1e-3)}


@pytest.mark.parametrize("tolerances,needle", [
    ((-1.0, -1.0), "must be finite numbers >= 0, got (-1.0, -1.0)"),   # a negative bound passed any gradient
    ((float("nan"), 0.0), "must be finite numbers >= 0"),
    ("x", "must be a pair (rtol, atol) of numbers, got 'x'"),
    ({"symbolic": (1e-3,)}, "tolerances['symbolic'] must be a pair"),
])
def test_bad_tolerances_are_refused(tolerances, needle):
    with pytest.raises(ValueError) as info:
        V._tolerances("float64", tolerances)
    assert needle in str(info.value)


# --- the checker must be able to fail ------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("parameter", ["W1", "b2"])
def test_wrong_rule_fails_naming_the_parameter(compiled, monkeypatch, dtype, parameter):
    model = compiled("formula_mse", dtype)
    _sabotage(monkeypatch, model, parameter)
    result = _check(compiled, "formula_mse", dtype)
    assert not result.ok
    failed = {(r.parameter, r.reference) for r in result.failures()}
    assert failed == {(parameter, "symbolic"), (parameter, "finite-diff")}
    worst = result.worst()
    assert worst.parameter == parameter and not worst.ok
    assert worst.compiled_value == pytest.approx(1.01 * worst.reference_value, rel=1e-3)
    assert worst.max_rel_error == pytest.approx(0.01, rel=0.05)
    assert "FAIL" in result.table() and result.table().splitlines()[-1].startswith("result: 2 of")

    with pytest.raises(AssertionError) as info:
        V.assert_gradients(model, fd_model=compiled("formula_mse", "float64"))
    message = str(info.value)
    assert message.startswith(f"gradient check failed for {parameter!r}")
    assert f"worst element {parameter}[" in message
    assert "compiled" in message and "reference" in message
    rtol, atol = V.TOLERANCES[dtype]["symbolic"]
    assert f"rtol={rtol:.0e}, atol={atol:.0e}" in message


def test_nan_gradient_fails(compiled, monkeypatch):
    model = compiled("tanh_mse")
    _sabotage(monkeypatch, model, "b1", float("nan"))
    result = V.verify(model, symbolic=False)
    assert not result.ok and {r.parameter for r in result.failures()} == {"b1"}


def test_wrong_rule_fails_in_directional_mode(compiled, monkeypatch):
    model = compiled("big")
    _sabotage(monkeypatch, model, "W1")
    result = V.verify(model)
    assert result.fd_mode == "directional" and not result.ok
    assert [r.parameter for r in result.failures()] == ["W1"]
    assert "<∂L/∂W1, u>" in result.message()


# --- size-dependent choices ----------------------------------------------------------------------

def test_auto_skips_symbolic_above_the_limit(compiled):
    result = V.verify(compiled("big"), symbolic="auto")
    assert result.n_values == 3290 > V.SYMBOLIC_LIMIT
    assert result.ok, result.table()
    assert not result.symbolic_used
    assert "skipped" in result.symbolic_note and "3290 parameter values > 150" in result.symbolic_note
    assert any("symbolic reference skipped" in n for n in result.notes)
    assert "symbolic: skipped" in result.table()
    assert "symbolic" not in {r.reference for r in result.rows}


def test_big_net_uses_one_random_direction_per_parameter(compiled):
    model = compiled("big")
    result = V.verify(model)
    assert result.n_values == 3290 > V.FD_ELEMENTWISE_LIMIT
    assert result.ok, result.table()
    assert result.fd_mode == "directional" and "directional" in result.fd_note
    assert not result.symbolic_used
    assert [r.parameter for r in result.rows] == list(model.signature.parameters)
    assert all(r.reference == "directional" and r.worst_index is None for r in result.rows)
    assert [r.shape for r in result.rows] == [(80, 30), (80,), (10, 80), (10,)]
    assert "u (random)" in result.table()


def test_forced_directional_on_a_small_net(compiled):
    result = _check(compiled, "relu_sce", "float32", fd="directional")
    assert result.ok and result.fd_mode == "directional"
    assert {r.reference for r in result.rows} == {"symbolic", "directional"}


def test_bad_arguments():
    with pytest.raises(TypeError):
        V.verify()
    with pytest.raises(ValueError, match="symbolic"):
        V.verify(NETS["tanh_mse"](), symbolic="sometimes")
    with pytest.raises(ValueError, match="fd"):
        V.verify(NETS["tanh_mse"](), fd="backward")
    with pytest.raises(ValueError, match="unknown reference"):
        V._tolerances("float64", {"torch": (1, 1)})


def test_compare_reports_the_worst_element():
    row = V._compare("W", "symbolic", np.array([[1.0, 2.0], [3.0, 4.5]]), np.array([[1.0, 2.0], [3.0, 4.0]]),
                     1e-9, 1e-12)
    assert not row.ok and row.worst_index == (1, 1) and row.where == "W[1, 1]"
    assert (row.compiled_value, row.reference_value) == (4.5, 4.0)
    assert row.max_abs_error == 0.5 and row.max_rel_error == 0.125
    assert "W vs symbolic: FAILED" in row.describe()
