"""kernels.cpu.vecmath: vectorisable exp and tanh, against NumPy (float64 reference) in ulps, at the
edges (overflow, subnormals, inf, NaN), and checked to be vectorised (SIMD) in a Numba loop."""

import re
import sys

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symprop.kernels.cpu import vecmath


@numba.njit(error_model="numpy")
def _map_exp(x, out):
    for i in range(x.size):
        out[i] = vecmath.exp(x[i])


@numba.njit(error_model="numpy")
def _map_tanh(x, out):
    for i in range(x.size):
        out[i] = vecmath.tanh(x[i])


MAPS = {"exp": (_map_exp, np.exp), "tanh": (_map_tanh, np.tanh)}
DTYPES = [np.float64, np.float32]


def _apply(name, x):
    out = np.empty_like(x)
    MAPS[name][0](x, out)
    return out


def _ulps(got, x, name, dtype):
    """Error of ``got`` in units in the last place of the exact (float64/longdouble) value."""
    exact = MAPS[name][1](x.astype(np.longdouble))
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / ulp


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(MAPS))
def test_within_two_ulps_over_the_working_range(name, dtype):
    rng = np.random.default_rng(7)
    hi = 80.0 if (name == "exp" and dtype == np.float32) else 700.0 if name == "exp" else 30.0
    x = np.concatenate([rng.uniform(-hi, hi, 200_000), rng.normal(0, 1, 100_000),
                        rng.uniform(-0.7, 0.7, 100_000), np.linspace(-1e-6, 1e-6, 1001)]).astype(dtype)
    got = _apply(name, x)
    assert got.dtype == dtype
    worst = _ulps(got, x, name, dtype)
    assert worst.max() <= 2.0, (name, x[worst.argmax()], worst.max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_edges_overflow_underflow_inf_nan(dtype):
    big = 1000.0
    x = np.array([-big, -50, -1e-30, 0.0, 1e-8, 50, big, np.inf, -np.inf, np.nan], dtype=dtype)
    with np.errstate(all="ignore"):
        assert np.array_equal(_apply("tanh", x), np.tanh(x), equal_nan=True)
        e = _apply("exp", x)
    assert e[0] == 0.0 and e[-4] == np.inf and e[-3] == np.inf and e[-2] == 0.0 and np.isnan(e[-1])
    assert np.all(np.isfinite(_apply("tanh", x[:-1])))
    assert np.signbit(_apply("tanh", np.array([-0.0], dtype=dtype)))[0]


@pytest.mark.parametrize("dtype, lo, hi", [(np.float64, -745.0, -700.0), (np.float32, -103.9, -85.0)])
def test_exp_subnormal_results(dtype, lo, hi):
    """Below the normal range an ulp is the smallest subnormal: still within two of them."""
    x = np.linspace(lo, hi, 20001, dtype=dtype)
    assert _ulps(_apply("exp", x), x, "exp", dtype).max() <= 2.0


@settings(max_examples=200, deadline=None)
@given(v=st.floats(allow_nan=False, allow_infinity=False, width=64), name=st.sampled_from(sorted(MAPS)))
def test_any_finite_float64(v, name):
    x = np.array([v])
    with np.errstate(over="ignore"):
        ref = MAPS[name][1](x.astype(np.longdouble))
    got = _apply(name, x)
    with np.errstate(over="ignore"):
        overflows = np.isinf(ref[0].astype(np.float64))
    if overflows:
        assert got[0] == np.inf
    else:
        assert _ulps(got, x, name, np.float64)[0] <= 2.0, v


def test_loops_are_vectorised_and_call_no_libm():
    # LLVM IR's vector types (<8 x float>) are the same on every target Numba supports (x86-64,
    # AArch64, ppc64le), and each has a vector unit that the loop vectoriser uses
    for fn in (_map_exp, _map_tanh):
        for sig in fn.signatures:
            ir = fn.inspect_llvm(sig)
            assert re.search(r"<\d+ x (double|float)>", ir), (fn, sig)
            assert not re.search(r"call [^@\n]*@(llvm\.)?(exp|tanh)", ir), (fn, sig)


def test_called_from_python_they_are_numpy():
    x = np.linspace(-3, 3, 7)
    assert np.array_equal(vecmath.tanh(x), np.tanh(x)) and np.array_equal(vecmath.exp(x), np.exp(x))


def test_module_doctest_examples_run():
    import doctest

    assert doctest.testmod(sys.modules["symprop.kernels.cpu.vecmath"]).failed == 0
