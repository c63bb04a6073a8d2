"""kernels.lower.outline: moving a generated prange body into a serial function of its own."""

from __future__ import annotations

import numpy as np

import numba
import pytest

from symprop.kernels.lower.outline import FunctionPointer, module_level_names, outline


def test_free_names_in_order_and_locals_stay_inside():
    body = ["lo = q * n // parts",          # lo: local; q: the loop variable; n, parts: free
            "for i in range(lo, lo + 2):",  # i: local
            "    acc = 0.0",
            "    acc += x[i] * w",          # acc: local (bound before its +=)
            "    out[i] = math.sqrt(abs(acc))"]
    made = outline("_f", body, "q", module_names={"math"})
    assert made.params == ("q", "n", "parts", "x", "w", "out")
    assert made.call() == "_f(q, n, parts, x, w, out)"
    assert made.call(loop_arg="np.int64(q)", callee="f_fn") == "f_fn(np.int64(q), n, parts, x, w, out)"
    fn = made.function("@numba.njit")
    assert fn[:2] == ["@numba.njit", "def _f(q, n, parts, x, w, out):"]
    assert fn[2:] == ["    " + line for line in body]


def test_refuses_a_body_that_assigns_a_free_name():
    # a reduction across iterations, or a value read after the loop: the caller keeps it inline
    assert outline("_f", ["total += x[q]"], "q", module_names=set()) is None
    assert outline("_f", ["y = x[q]", "n = y"], "q", module_names=set()) is not None
    assert outline("_f", ["y = n + x[q]", "n = y"], "q", module_names=set()) is None


def test_subscript_targets_read_their_array_and_index():
    made = outline("_f", ["a[idx[q]] = b", "c[q, k] += 1"], "q", module_names=set())
    assert made.call() == "_f(q, b, a, idx, c, k)"


def test_module_level_names():
    src = "import math\nimport numpy as np\nfrom m import exp as _exp\nX = 1\n\ndef f():\n    y = 2\n"
    assert module_level_names(src) == {"math", "np", "_exp", "X", "f"}


@pytest.mark.parametrize("through_pointer", [False, True])
def test_outlined_function_runs_like_the_inline_loop(through_pointer):
    body = ["lo = q * n // parts", "hi = (q + 1) * n // parts", "for i in range(lo, hi):",
            "    out[i] = 2.0 * x[i] + math.sqrt(abs(x[i]))"]
    made = outline("_part", body, "q", module_names={"math", "numba", "np"})
    if through_pointer:   # compiled once with its signature, called through the argument part_fn
        fn = made.function('@numba.njit("void(int64, int64, int64, float64[::1], float64[::1])")')
        call, extra = made.call(loop_arg="np.int64(q)", callee="part_fn"), ", part_fn"
    else:
        fn, call, extra = made.function("@numba.njit"), made.call(), ""
    src = "\n".join(["import math", "import numba", "import numpy as np", "", *fn, "",
                     "@numba.njit(parallel=True)", f"def run(x, out, n, parts{extra}):",
                     "    for q in numba.prange(parts):", f"        {call}",
                     "", "def inline(x, out, n, parts):", "    for q in range(parts):",
                     *["        " + line for line in body]])
    namespace: dict = {}
    exec(compile(src, "<outlined>", "exec"), namespace)   # our own generated text, no user input
    x = np.random.default_rng(0).normal(size=11)
    a, b = np.empty(11), np.empty(11)
    namespace["run"](x, a, 11, 3, *([FunctionPointer(namespace["_part"])] if through_pointer else []))
    namespace["inline"](x, b, 11, 3)
    np.testing.assert_array_equal(a, b)


def test_function_pointer_needs_one_explicit_signature():
    @numba.njit
    def lazy(a):
        a[0] = 1.0

    with pytest.raises(ValueError, match="lazy needs exactly one explicit signature, has 0"):
        FunctionPointer(lazy)
    typed = numba.njit("void(float64[::1])")(lazy.py_func)
    pointer = FunctionPointer(typed)
    assert pointer.signature() == typed.nopython_signatures[0]
    assert pointer.__wrapper_address__() > 0
    assert numba.typeof(pointer) is numba.typeof(pointer) == numba.types.FunctionType(pointer.signature())
