"""The symprop pytest plugin (kernels.check.pytest_plugin), run on user test files through ``pytester``."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
from symprop import derive
from symprop.kernels.backends import compile

NET = derive.mlp([3, 4, 2], activation="x*tanh(log(1+exp(x)))", loss="mse")


def test_user_net(assert_gradients):
    result = assert_gradients(NET)
    assert result.ok and result.symbolic_used


def test_sabotaged_model(assert_gradients):
    model = compile(NET)
    original = model.loss_and_grads

    def wrong(X, T, parameters=None):
        loss, grads = original(X, T, parameters)
        grads["b1"] = grads["b1"] * 1.01
        return loss, grads

    model.loss_and_grads = wrong
    assert_gradients(model)  # the user's line
'''


_RUNS: dict = {}


@pytest.fixture
def user_run(pytester, kernel_cache, monkeypatch):
    """The user test file above, run once per module in a fresh pytest process (the plugin comes
    from its entry point; in-process runs would drop and re-import NumPy's extension modules)."""
    if "user" not in _RUNS:
        monkeypatch.setenv("SYMPROP_CACHE", str(kernel_cache))
        pytester.makepyfile(test_user=USER_TESTS)
        _RUNS["user"] = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=300)
    return _RUNS["user"]


def test_entry_point_is_registered():
    eps = entry_points(group="pytest11")
    assert [ep.value for ep in eps if ep.name == "symprop"] == ["symprop.kernels.check.pytest_plugin"]


def test_plugin_module_imports_only_pytest():
    code = ("import sys; import symprop.kernels.check.pytest_plugin; "
            "heavy = [m for m in ('numpy', 'sympy', 'numba', 'networkx', 'symprop.derive', 'symprop.kernels.check.verify') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fixture_comes_from_the_entry_point(pytester):
    pytester.makepyfile(test_fixture="def test_it(assert_gradients):\n    assert callable(assert_gradients)\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:symprop")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'assert_gradients' not found*"])


@pytest.mark.slow
def test_user_tests_pass_and_sabotage_fails(user_run):
    user_run.assert_outcomes(passed=1, failed=1)
    user_run.stdout.fnmatch_lines(["PASSED test_user.py::test_user_net", "FAILED test_user.py::test_sabotaged_model*"])


@pytest.mark.slow
def test_failure_message_is_readable(user_run):
    out = user_run.stdout.str()
    failure = out[out.index("test_sabotaged_model ___"):]
    assert "gradient check failed for 'b1' (float64, backend='cpu'):" in failure
    assert "b1 vs symbolic: FAILED; worst element b1[" in failure
    assert "b1 vs finite-diff: FAILED" in failure
    assert "compiled " in failure and " vs reference " in failure
    assert "rtol=1e-09, atol=1e-12" in failure and "rtol=1e-05, atol=1e-07" in failure
    for p, shape in (("W1", "(4, 3)"), ("b1", "(4,)"), ("W2", "(2, 4)"), ("b2", "(2,)")):  # the table
        assert len(re.findall(rf"^E\s+{p}\s+{re.escape(shape)}\s", failure, re.M)) == 2, p
    assert re.search(r"^E\s+b1\s+\(4,\)\s+symbolic\s.*FAIL$", failure, re.M)


@pytest.mark.slow
def test_failure_points_at_the_users_line(user_run):
    out = user_run.stdout.str()
    failure = out[out.index("test_sabotaged_model ___"):out.index("short test summary")]
    user_line = USER_TESTS.strip().splitlines().index("    assert_gradients(model)  # the user's line") + 1
    assert ">       assert_gradients(model)  # the user's line" in failure
    assert f"test_user.py:{user_line}: AssertionError" in failure  # the reported location is the user's line
    # no symprop frame is shown: the traceback ends at the user's call
    assert "kernels/verify.py" not in failure and "pytest_plugin.py" not in failure
    assert "def assert_gradients" not in failure and "raise AssertionError" not in failure
