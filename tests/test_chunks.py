"""The data-parallel epoch of the "parallel" backend (kernels.lower.chunks, chunked kernels.cpu.epoch).

Each batch is split into chunks of rows, one per thread, with partial gradients added after the
parallel region and row-independent terms (penalties) computed once outside it. The chunked
function takes the chunk count as an argument, so these tests run it with more chunks than this
machine has threads (1 to 7, and batches smaller than the chunk count) and compare it with the
serial epoch function, which test_epoch.py checks against a NumPy loop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symprop import derive
from symprop.derive.ops import BATCH
from symprop.kernels.lower import chunks
from symprop.kernels.cpu.epoch import generate_epoch, hyper_vector
from symprop.kernels.training.optim import SGD, Adam, AdamW, RMSprop

from nets import CHUNK_NETS as NETS, SPLIT_NETS

pytestmark = pytest.mark.slow   # every test compiles data-parallel epochs (about 5-50 s each)


@pytest.fixture(scope="module")
def model(compiled_model):
    return lambda key, dtype="float64": compiled_model(NETS[key], dtype, "parallel")


def _data(m, rows, seed):
    rng = np.random.default_rng(seed)
    n_in = m.shapes[m.signature.inputs[0]][0]
    n_out = m.shapes[m.signature.targets[0]][0]
    X = rng.normal(size=(rows, n_in)).astype(m.dtype)
    if n_out > 1:
        T = np.eye(n_out, dtype=m.dtype)[rng.integers(0, n_out, rows)]
    else:
        T = rng.integers(0, 2, size=(rows, 1)).astype(m.dtype)
    return X, T, rng.permutation(rows).astype(np.int64)


def _epoch(m, kernel, opt, X, T, order, batch, extra=()):
    """Run ``kernel`` from fresh parameters (seed 1); (losses, done, parameters, state)."""
    m.init(1)
    state = m.init_state(opt)
    X, T, order, batch, params, arrays = m._epoch_arrays(X, T, order, batch, state, tuple(opt.state))
    losses = np.full(-(-order.size // batch), np.nan)
    extra = (*extra, *kernel.pointers) if extra else ()
    done = kernel(X, T, order, batch, *params, *arrays, hyper_vector(opt), 2, losses, *extra)
    return losses, done, {k: v.copy() for k, v in m.parameters.items()}, state


def _compare(m, opt, rows, batch, threads, seed=0, rtol=1e-12):
    serial = m.epoch_kernel(opt, "cpu")
    par = m.epoch_kernel(opt, "parallel")
    assert par.chunked
    X, T, order = _data(m, rows, seed)
    l1, d1, p1, s1 = _epoch(m, serial, opt, X, T, order, batch)
    l2, d2, p2, s2 = _epoch(m, par, opt, X, T, order, batch, (threads,))
    assert d1 == d2 == len(l1)
    np.testing.assert_allclose(l2, l1, rtol=rtol)
    for p in p1:
        np.testing.assert_allclose(p2[p], p1[p], rtol=rtol, atol=rtol * 1e-3, err_msg=p)
        for slot in opt.state:
            np.testing.assert_allclose(s2[p][slot], s1[p][slot], rtol=rtol, atol=rtol * 1e-3, err_msg=f"{p} {slot}")


@pytest.mark.parametrize("key", sorted(NETS))
@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_chunked_epoch_equals_serial_float64(model, key, threads):
    # 23 rows in batches of 5: the last batch (3 rows) has fewer rows than 7 chunks
    _compare(model(key), Adam(lr=0.01), rows=23, batch=5, threads=threads)


@pytest.mark.parametrize("key", ["relu-sce", "relu-mse-l2"])
def test_chunked_epoch_equals_serial_float32(model, key):
    _compare(model(key, "float32"), SGD(lr=0.05, momentum=0.9), rows=40, batch=16, threads=2, rtol=2e-5)


def test_batch_of_one_row(model):
    _compare(model("relu-sce"), SGD(lr=0.1), rows=3, batch=1, threads=4)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 6), min_size=3, max_size=4),
       activation=st.sampled_from(["relu", "tanh", "sigmoid", "softplus", "x/(1+abs(x))"]),
       rows=st.integers(1, 30), batch=st.integers(1, 12), threads=st.integers(1, 5), seed=st.integers(0, 99))
def test_random_networks_chunked_equal_serial(compiled_model, sizes, activation, rows, batch, threads, seed):
    sizes = sizes[:-1] + [max(2, sizes[-1])]
    m = compiled_model(lambda: derive.mlp(sizes, activation=activation, loss="softmax_cross_entropy"),
                       "float64", "parallel")
    _compare(m, Adam(lr=0.02), rows=rows, batch=batch, threads=threads, seed=seed)


def test_penalties_run_outside_the_parallel_region():
    src = generate_epoch(NETS["relu-mse-l2"](), Adam(), "float64", "parallel")
    assert "CHUNKED = True" in src and "n_threads" in src
    # the prange loop calls the chunk's pass, a serial function of its own (kernels.lower.outline),
    # through a function-pointer argument: compiled once with its explicit signature
    loop = src[src.index("for chunk in numba.prange(n_chunks):"):]
    assert loop.splitlines()[1].strip().startswith("chunk_pass_fn(np.int64(chunk), ")
    assert "FUNCTION_ARGUMENTS = ('_chunk_pass', '_add_slices', '_update_slices')" in src
    assert "n_threads, chunk_pass_fn, add_slices_fn, update_slices_fn):" in src
    assert re.search(r'@numba\.njit\("void\(int64, int64, int64, float64\[:, ::1\], int64, float64\[:, ::1\], '
                     r"Array\(int64, 1, 'C', readonly=True\), int64, Array\(float64, 2, 'C', readonly=True\), "
                     r'.*\)", cache=True.*\ndef _chunk_pass\(chunk, N, n_chunks, work, R, grads, order, start, X, T, ',
                     src)
    # few arrays cross into the region: every batched array's slab is a view of work[chunk], every
    # partial gradient one of grads[chunk] (each array a prange body reads costs ~40 ms to compile)
    assert "    g_W1_18 = grads[chunk, 0:18].reshape(6, 3)\n" in src
    assert re.search(r"\n    v_z1_\d+ = work_c\[R \* 5:R \* 11\]\.reshape\(R, 6\)\[:Nc\]\n", src)
    region = src[src.index("def _chunk_pass("):src.index("loss_parts[chunk] =")]
    assert "v_W1" in region and "W1[k,l]²" in region          # the penalty's equation is still shown there
    assert "/20000" not in region and "(1/10)*v_W" not in region   # but its loops are not
    after = src[src.index("# row-independent gradient terms"):]
    assert "_total[" in after


def test_update_runs_on_slices_of_every_parameter_in_parallel():
    src = generate_epoch(NETS["relu-sce"](), Adam(), "float32", "parallel")
    loop = src[src.index("# in parallel: the chunks' partial gradients added, then the update"):]
    assert "for q in numba.prange(C):\n            add_and_update_slices_fn(np.int64(q), " in loop
    # the work on one parameter is one function, called for each parameter with its arrays and
    # the place of its gradient in the rows of grads: the rules are printed (and compiled) once
    one = src[src.index("def _add_and_update_slice("):src.index("def _add_and_update_slices(")]
    assert one.count("e_lo = ") == 1 and "range(e_lo" not in one     # slices, not offset ranges
    # twice: reading the second partial as it goes, and without one (a one-row batch, or a
    # gradient computed whole by the split input layer)
    assert one.count("# m ← ") == 2 and "o_g = g_f_sl[e] + part_1_sl[e]" in one and "o_g = g_f_sl[e]\n" in one
    assert "g_f_sl = grads[0, at + e_lo:at + e_hi]" in one and "part_1_sl = grads[1, at + e_lo:at + e_hi]" in one
    update = src[src.index("def _add_and_update_slices("):src.index("def train_epoch(")]
    calls = [line.strip() for line in update.splitlines() if line.strip().startswith("_add_and_update_slice(")]
    assert len(calls) == 6
    # W2 after W1 (18) and b1 (6), 5 x 6 elements
    assert "_add_and_update_slice(q, 1, 30, C, v_W2_2_f, grads, 24, s_v_W2_2_m_f, s_v_W2_2_v_f, n_chunks, " in calls[2]
    assert "_input_product" not in src and "if split" not in src   # no input layer big enough to split
    # with a penalty, its gradient term comes between the sum and the update: two regions
    src = generate_epoch(NETS["relu-mse-l2"](), Adam(), "float64", "parallel")
    tail = src[src.index("# the chunks' partial gradients, added into the first chunk's, in parallel"):]
    assert tail.count("for q in numba.prange(C):") == 2
    assert "add_slices_fn(np.int64(q), " in tail and "update_slices_fn(np.int64(q), " in tail
    assert tail.index("# row-independent gradient terms") < tail.index("# ---- optimizer Adam")


def test_chunked_form_is_optional_and_tanh_nets_take_it():
    """tanh is kernels.cpu.vecmath's (no objmode), so a tanh net gets the data-parallel form too."""
    net = derive.mlp([3, 4, 2], activation="tanh", loss="softmax_cross_entropy")
    src = generate_epoch(net, Adam(), "float64", "parallel")
    assert "CHUNKED = True" in src and "_tanh(" in src and "objmode" not in src
    assert "CHUNKED = False" in generate_epoch(net, Adam(), "float64", "parallel", chunked=False)


def test_run_uses_chunks_for_large_batches_and_restores_blas_threads(model, monkeypatch):
    from symprop.kernels.cpu import epoch_keys
    from threadpoolctl import threadpool_info

    m = model("relu-sce")
    opt = Adam(lr=0.01)
    run = m.epoch_function(opt)
    X, T, order = _data(m, 64, 0)
    before = [d["num_threads"] for d in threadpool_info()]
    monkeypatch.setattr(epoch_keys, "CHUNK_MIN", 10 ** 9)
    m.init(1)
    l_serial, _ = run(X, T, order, 32, m.init_state(opt))
    assert not m._epoch_choice(lambda: m.epoch_kernel(opt, "parallel"), run.kernel, 32).chunked
    monkeypatch.setattr(epoch_keys, "CHUNK_MIN", 0)
    m.init(1)
    l_chunked, done = run(X, T, order, 32, m.init_state(opt))
    assert done == 2
    import numba

    if numba.get_num_threads() > 1:
        assert m._epoch_choice(lambda: m.epoch_kernel(opt, "parallel"), run.kernel, 32).chunked
    np.testing.assert_allclose(l_chunked, l_serial, rtol=1e-12)
    assert [d["num_threads"] for d in threadpool_info()] == before



def _BIG():
    return derive.mlp([784, 256, 128, 10], activation="relu", loss="softmax_cross_entropy")


def test_choice_counts_parameters_and_widest_layer(compiled_model, monkeypatch):
    """Data-parallel from CHUNK_MIN of work = rows x (trained parameters + widest layer): a big
    net from batch 2 (its update is worth splitting), a tiny net only at large batches."""
    from symprop.kernels.cpu import epoch_keys
    from symprop.kernels.cpu import blas_threads

    monkeypatch.setattr(blas_threads, "controllable", lambda: True)
    monkeypatch.setattr("numba.get_num_threads", lambda: 2)
    chunked, serial = SimpleNamespace(chunked=True), SimpleNamespace(chunked=False)
    big = compiled_model(_BIG, "float32", "parallel")
    work_per_row = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 + 784   # the input is widest
    assert big._parameter_count() + big._row_width() == work_per_row
    assert 1 * work_per_row < epoch_keys.CHUNK_MIN <= 2 * work_per_row
    assert big._epoch_choice(lambda: chunked, serial, 1) is serial
    assert big._epoch_choice(lambda: chunked, serial, 2) is chunked
    tiny = compiled_model(lambda: derive.mlp([2, 16, 16, 1], activation="tanh", loss="mse"), "float64", "parallel")
    made = []
    assert tiny._epoch_choice(lambda: made.append(1) or chunked, serial, 32) is serial
    assert not made, "no parallel function is made for a batch below both thresholds"
    assert tiny._epoch_choice(lambda: chunked, serial, 1024) is chunked
    big_cpu = compiled_model(_BIG, "float32", "cpu")
    assert big_cpu._epoch_choice(lambda: chunked, serial, 1024) is serial
    monkeypatch.setattr("numba.get_num_threads", lambda: 1)
    assert big._epoch_choice(lambda: chunked, serial, 1024) is serial

# --- the classification itself -------------------------------------------------------------------

n, i, m_, l = sp.symbols("n i m l", integer=True)
Z, Y = sp.IndexedBase("z"), sp.IndexedBase("y")


def _index_eq(rhs, extents=(BATCH, 4)):
    return SimpleNamespace(form="index", rhs=rhs, indices=(n, i), extents=extents)


def _batched(name):
    return name in {"z", "y", "G", "A"}


def test_roles_of_row_local_and_summed_statements():
    assert chunks.role(_index_eq(sp.tanh(Z[n, i]) * Y[n, i]), _batched) == "row"
    assert chunks.role(_index_eq(sp.exp(Z[n, i]) / sp.Sum(sp.exp(Z[n, l]), (l, 0, 3))), _batched) == "row"
    loss = sp.Sum((Z[m_, 0] - Y[m_, 0]) ** 2, (m_, 0, BATCH - 1)) / BATCH
    assert chunks.role(SimpleNamespace(form="scalar", rhs=loss), _batched) == "sum"
    W = sp.IndexedBase("W")
    assert chunks.role(SimpleNamespace(form="scalar", rhs=sp.Sum(W[i, 0] ** 2, (i, 0, 3))), _batched) == "const"
    G, A = sp.MatrixSymbol("G", BATCH, 4), sp.MatrixSymbol("A", BATCH, 3)
    Wm = sp.MatrixSymbol("W", 4, 3)
    assert chunks.role(SimpleNamespace(form="matrix", rhs=G.T * A), _batched) == "sum"
    assert chunks.role(SimpleNamespace(form="matrix", rhs=A * Wm.T + sp.OneMatrix(BATCH, 1) * sp.OneMatrix(1, 4)),
                       _batched) == "row"


def test_roles_reject_statements_that_couple_rows():
    # a batch normalisation's centring: every row reads the whole column
    centred = Z[n, i] - sp.Sum(Z[m_, i], (m_, 0, BATCH - 1)) / BATCH
    assert chunks.role(_index_eq(centred), _batched) is None
    # a non-linear function of a sum over rows
    squared = sp.Sum(Z[m_, 0], (m_, 0, BATCH - 1)) ** 2
    assert chunks.role(SimpleNamespace(form="scalar", rhs=squared), _batched) is None
    # a row-independent term added to a sum over rows (it would be counted once per chunk)
    G, A = sp.MatrixSymbol("G", BATCH, 4), sp.MatrixSymbol("A", BATCH, 3)
    Wm = sp.MatrixSymbol("W", 4, 3)
    assert chunks.role(SimpleNamespace(form="matrix", rhs=G.T * A + Wm), _batched) is None
    # every row mixed with every other (A·Aᵀ is N×N)
    assert chunks.role(SimpleNamespace(form="matrix", rhs=A * A.T * G), _batched) is None


def test_module_doctest_examples_run():
    import doctest

    assert doctest.testmod(sys.modules["symprop.kernels.lower.chunks"]).failed == 0


_SECOND_PROCESS = """
import sys
import numpy as np
from symprop import derive, kernels
import symprop.kernels.cpu.epoch_keys
net = derive.mlp([3, 6, 5, 4], activation="relu", loss="softmax_cross_entropy")
model = kernels.compile(net, dtype="float64", backend="parallel")
opt = kernels.Adam(lr=1e-3)
fn = model.epoch_kernel(opt, "parallel")
rng = np.random.default_rng(0)
X, T = rng.normal(size=(8, 3)), np.eye(4)[np.arange(8) % 4]
X, T, order, batch, params, arrays = model._epoch_arrays(X, T, np.arange(8), 4, model.init_state(opt), ("m", "v"))
losses = np.full(2, np.nan)
done = fn(X, T, order, batch, *params, *arrays, kernels.cpu.epoch_keys.hyper_vector(opt), 0, losses, 2, *fn.pointers)
functions = [fn, *(p.dispatcher for p in fn.pointers)]
print(len(fn.pointers), done, sum(len(f.stats.cache_misses) for f in functions),
      sum(len(f.stats.cache_hits) for f in functions), "sympy" in sys.modules, *losses)
"""


def test_second_process_loads_the_data_parallel_epoch_from_numbas_cache(tmp_path):
    """train_epoch takes its prange bodies as function pointers, typed by their signatures, not
    by object: a new process loads it and them from Numba's cache without compiling, and finds
    the generated code by fingerprint without importing SymPy (no derivation, no generation)."""
    code = _SECOND_PROCESS
    env = {**os.environ, "SYMPROP_CACHE": str(tmp_path)}
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True) for _ in range(2)]
    assert [o.returncode for o in outs] == [0, 0], outs[-1].stderr[-2000:]
    cold, warm = (o.stdout.split() for o in outs)
    assert cold[:5] == ["2", "2", "3", "0", "True"]     # two pointers; three functions compiled
    assert warm[:5] == ["2", "2", "0", "3", "False"]    # ... loaded from the cache, SymPy never imported
    assert cold[5:] == warm[5:]                         # the same losses


def test_a_corrupt_cache_entry_of_a_pointer_function_is_rebuilt(tmp_path):
    """The prange bodies compile on import (explicit signatures), so a corrupt Numba cache entry
    of one failed the import itself, in every process; now the module's entries are rebuilt."""
    code = _SECOND_PROCESS.split("functions = ")[0] + "print(*losses)\n"
    env = {**os.environ, "SYMPROP_CACHE": str(tmp_path)}
    run = lambda: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)  # noqa: E731
    first = run()
    assert first.returncode == 0, first.stderr[-2000:]
    index = next((tmp_path / "__pycache__").glob("*._chunk_pass-*.nbi"))
    index.write_bytes(index.read_bytes()[:30])
    healed = run()
    assert healed.returncode == 0, healed.stderr[-2000:]
    assert healed.stdout == first.stdout


@pytest.mark.parametrize("key", sorted(NETS) + ["wide-relu-sce"])
def test_every_region_is_typed_and_called_through_a_pointer(key):
    """The generator knows the type of every value a region reads, for every optimizer: no
    outlined function is compiled lazily (and linked into train_epoch again)."""
    for opt in (SGD(lr=0.1), SGD(lr=0.1, momentum=0.9, nesterov=True), RMSprop(), Adam(l1=0.01, l2=0.01),
                AdamW(weight_decay=0.01)):
        src = generate_epoch({**NETS, **SPLIT_NETS}[key](), opt, "float32", "parallel", chunked=True)
        if key in SPLIT_NETS:
            split = "('_gather_rows', '_input_product', "
            assert split in src
            src = src.replace(split, "(")
        functions = re.findall(r"\n@numba\.njit\((.*)\)\ndef (_\w+)\(", src)
        outlined = [(deco, name) for deco, name in functions if "slice" in name or name in (
            "_chunk_pass", "_gather_rows", "_input_product")]
        assert len(outlined) >= (5 if key in SPLIT_NETS else 3) and all(deco.startswith('"void(int64, ') for deco, _ in outlined), outlined
        pointers = re.search(r"\nFUNCTION_ARGUMENTS = (\(.*\))\n", src).group(1)
        assert pointers in ("('_chunk_pass', '_add_and_update_slices')",
                            "('_chunk_pass', '_add_slices', '_update_slices')")


# --- the input layer split by features (kernels.cpu.epoch_keys.SPLIT_MIN_WEIGHTS) -----------------------

#: First layers of 256 x 256 = SPLIT_MIN_WEIGHTS weights: split by features up to 64-row batches.


def test_split_is_generated_only_for_a_big_input_layer():
    from symprop.kernels.cpu.epoch_keys import SPLIT_MIN_WEIGHTS, SPLIT_ROWS_PER_FEATURE

    src = generate_epoch(SPLIT_NETS["wide-relu-sce"](), Adam(), "float32", "parallel")
    assert 256 * 256 >= SPLIT_MIN_WEIGHTS > 255 * 256
    assert f"split = 1 if C > 1 and N * {SPLIT_ROWS_PER_FEATURE} <= 256 else 0" in src
    assert "np.dot(v_W1_0[f_lo:f_hi], xs.T, zT[f_lo:f_hi])" in src          # product by features
    assert "np.dot(gzT[f_lo:f_hi], xs, g_W1_" in src   # weight gradient by features, with the update
    assert "_add_and_update_slice(q, 256, 65536, C, v_W1_0_f, " in src   # W1 updated in whole rows
    assert "(1 if split else n_chunks)" in src   # W1's gradient is whole in the first row of grads
    narrow = generate_epoch(derive.mlp([255, 256, 3], activation="relu", loss="softmax_cross_entropy"),
                            Adam(), "float32", "parallel")
    assert "_input_product" not in narrow and "if split" not in narrow


@pytest.mark.parametrize("key", sorted(SPLIT_NETS))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_split_input_layer_equals_serial(compiled_model, key, threads):
    """Batches of 40 rows (4 x 40 <= 256: split by features, the last of 30 too) and of 100
    (by rows, its last of 50 by features: both forms in one epoch), against the serial function;
    one thread never splits."""
    m = compiled_model(SPLIT_NETS[key], "float64", "parallel")
    for batch in (40, 100):   # sums of 256 products in another order than the serial function's
        _compare(m, Adam(lr=0.01), rows=150, batch=batch, threads=threads, seed=batch, rtol=1e-10)


def test_split_input_layer_one_row_batches_and_float32(compiled_model):
    m = compiled_model(SPLIT_NETS["wide-relu-sce"], "float64", "parallel")
    _compare(m, SGD(lr=0.1), rows=3, batch=1, threads=4, rtol=1e-10)
    m32 = compiled_model(SPLIT_NETS["wide-relu-sce"], "float32", "parallel")
    # float32 sums of 256 products in another order: parameters of about 0.1 agree to about 1e-7
    _compare(m32, SGD(lr=0.05, momentum=0.9), rows=70, batch=32, threads=2, rtol=1e-4)
