"""Training throughput of the fused epoch function (kernels.cpu.epoch) against PyTorch eager.

Run: ``python bench/bench_step.py [--quick] [--backends cpu,parallel]``. Prints a table of
steps/s: one ``train_epoch`` call runs a whole epoch (4096 random rows), timed after a warm-up
call (compilation excluded; best of ``--repeat``). PyTorch runs the same batch loop eagerly
(``torch.set_num_threads(2)``): index the batch, forward, loss, backward, optimizer step.
"matmul only" is the chain of matrix products of one step (3 forward, 2 backward through the
layers, 3 weight gradients) with the same shapes, in a Numba loop into preallocated outputs
(hot caches: the same input every step); "mm+gather" adds copying the batch's rows of a shuffled
4096-row input first, which any training step must do. When JAX is installed, its whole update
step under ``jit`` runs in a child process on the same batches ("jax st/s"; see :func:`jax_steps`).
Every contender is measured ``--rounds`` times, interleaved, and keeps its best: this machine's
speed drifts for seconds at a time; each starts after a short rest (:data:`REST`). The first line names the OpenBLAS kernels Numba's products
run (``OPENBLAS_CORETYPE`` pins them; unset, OpenBLAS picks by CPU).
No assertions: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROWS = 4096


CHUNK = 8   # steps per timed call (short calls: the minimum filters out time lost to other processes)


#: seconds of rest before each measurement: OpenBLAS's threads spin for about 0.1 s after a
#: product, and the parallel backend's one-thread BLAS calls ran 10-25% slower while they did, so
#: every contender starts with them asleep
REST = 0.3


def best_of(fn, repeat):
    time.sleep(REST)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def data(sizes, loss, dtype, rng):
    X = rng.normal(size=(ROWS, sizes[0])).astype(dtype)
    if loss == "mse":
        T = rng.normal(size=(ROWS, sizes[-1])).astype(dtype)
    else:
        T = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], ROWS)]
    return X, T


def symprop_steps(sizes, act, loss, opt, dtype, batch, backend, repeat, X, T, order):
    from symprop import derive
    from symprop.kernels.backends import compile

    model = compile(derive.mlp(sizes, activation=act, loss=loss), backend=backend, dtype=dtype)
    run = model.epoch_function(opt)
    state = model.init_state(opt)
    time.sleep(REST)
    t0 = time.perf_counter()
    run(X, T, order, batch, state, 0)          # compile (or load from Numba's cache) + warm up
    first = time.perf_counter() - t0
    sub, n = chunk(order, batch, sizes[1] <= 64)
    secs = best_of(lambda: run(X, T, sub, batch, state, 0), repeat)
    return n / secs, first


def chunk(order, batch, whole):
    """The rows of one timed call: the whole epoch (tiny nets), else CHUNK batches."""
    n = -(-len(order) // batch)
    n = n if whole else min(n, CHUNK)
    return order[:n * batch], n


def torch_steps(sizes, act, loss, optname, lr, dtype, batch, repeat, X, T, order):
    import torch

    torch.set_num_threads(2)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    layers = []
    for q in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[q], sizes[q + 1]).to(tdt))
        if q < len(sizes) - 2:
            layers.append(torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=lr) if optname == "adam" else torch.optim.SGD(net.parameters(), lr=lr)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    idx = torch.from_numpy(order)
    if loss == "mse":
        lossfn = torch.nn.MSELoss()
    else:
        Tt = Tt.argmax(dim=1)
        lossfn = torch.nn.CrossEntropyLoss()

    sub, n = chunk(order, batch, sizes[1] <= 64)
    rows = len(sub)

    def epoch():
        for s in range(0, rows, batch):
            b = idx[s:s + batch]
            opt.zero_grad(set_to_none=True)
            out = lossfn(net(Xt[b]), Tt[b])
            out.backward()
            opt.step()

    epoch()
    return n / best_of(epoch, repeat)


def jax_steps(sizes, act, loss, optname, lr, dtype, batch, repeat, X, T, order):
    """JAX with the whole update step under ``jit`` (bench/bench_jax.py's step), timed like PyTorch:
    the same rows in the same batches, pre-sliced into device arrays (JAX users' way; no gather
    in the timed loop), best of ``repeat`` calls of the same number of steps.

    Runs in a child process: XLA's worker threads keep spinning after a step and, in this
    process, slowed the next symprop and matmul measurements by up to 3x on 2 cores."""
    import json
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, X=X, T=T, order=order)
        args = json.dumps([sizes, act, loss, optname, lr, dtype, batch, repeat])
        code = ("import json, sys, numpy as np; import bench_step as b; d = np.load(sys.argv[1]); "
                "a = json.loads(sys.argv[2]); print(b._jax_steps_here(*a, d['X'], d['T'], d['order']))")
        out = subprocess.run([sys.executable, "-c", code, path, args], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        if out.returncode != 0:
            raise RuntimeError(f"JAX benchmark failed:\n{out.stderr[-2000:]}")
        return float(out.stdout.strip().splitlines()[-1])


def _jax_steps_here(sizes, act, loss, optname, lr, dtype, batch, repeat, X, T, order):
    import jax
    import jax.numpy as jnp

    import bench_jax as J

    step, init = J.make_step(jnp.tanh if act == "tanh" else jax.nn.relu, "mse" if loss == "mse" else "sce",
                             optname, lr)
    params = J.mlp_init(sizes, np.dtype(dtype).type)
    state = init(params)
    sub, n = chunk(order, batch, sizes[1] <= 64)
    batches = [(jnp.asarray(X[sub[s:s + batch]]), jnp.asarray(T[sub[s:s + batch]])) for s in range(0, len(sub), batch)]

    def epoch():
        nonlocal params, state
        for x, t in batches:
            params, state, value = step(params, state, x, t)
        value.block_until_ready()

    epoch()
    return n / best_of(epoch, repeat)


def blas_kernels() -> str:
    """Which OpenBLAS kernels Numba's ``np.dot`` runs (SciPy's OpenBLAS), and OPENBLAS_CORETYPE."""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one Numba calls)
        from threadpoolctl import threadpool_info

        arch = sorted({d.get("architecture") or "?" for d in threadpool_info() if "scipy_openblas-" in d["filepath"]
                       or d.get("internal_api") == "openblas"})
        found = ", ".join(arch)
    except ImportError:
        found = "unknown (pip install threadpoolctl to see)"
    return f"OpenBLAS kernels: {found}; OPENBLAS_CORETYPE={forced if forced is not None else '(unset: detected)'}"


def matmul_only_steps(sizes, dtype, batch, repeat, gather=False):
    """Steps/s of the step's matrix products alone (Numba, preallocated outputs); ``gather``:
    plus copying the batch's rows (a random permutation of 4096) into the input buffer first."""
    import numba

    @numba.njit(nogil=True)
    def chain(X, order, A0, A1, A2, W1, W2, W3, G3, G2, G1, D2, D1, gW1, gW2, gW3, steps, gather):
        B = A0.shape[0]
        for s in range(steps):
            if gather:
                for r in range(B):
                    row = order[(s * B + r) % order.shape[0]]
                    for c in range(X.shape[1]):
                        A0[r, c] = X[row, c]
            np.dot(A0, W1.T, A1)
            np.dot(A1, W2.T, A2)
            np.dot(A2, W3.T, G3)
            np.dot(G3, W3, D2)
            np.dot(G2, W2, D1)
            np.dot(G3.T, A2, gW3)
            np.dot(G2.T, A1, gW2)
            np.dot(G1.T, A0, gW1)

    rng = np.random.default_rng(0)
    d0, d1, d2, d3 = sizes
    mk = lambda *s: rng.normal(size=s).astype(dtype)
    args = [mk(batch, d0), mk(batch, d1), mk(batch, d2), mk(d1, d0), mk(d2, d1), mk(d3, d2),
            mk(batch, d3), mk(batch, d2), mk(batch, d1), mk(batch, d2), mk(batch, d1),
            mk(d1, d0), mk(d2, d1), mk(d3, d2)]
    X = mk(ROWS, d0)
    order = rng.permutation(ROWS)
    steps = min(CHUNK, -(-ROWS // batch))
    chain(X, order, *args, 1, gather)
    return steps / best_of(lambda: chain(X, order, *args, steps, gather), repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=3,
                    help="measure every contender this many times, interleaved, and keep each one's best "
                         "(this machine's speed drifts for seconds at a time)")
    ap.add_argument("--backends", default="cpu,parallel")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-jax", action="store_true", help="skip JAX even when it is installed")
    ap.add_argument("--quick", action="store_true", help="only the tiny MLP and batch 32/1024 of the relu net")
    ap.add_argument("--acts", help="activations of the 784 net, comma-separated (default relu,tanh)")
    ap.add_argument("--batches", help="batch sizes of the 784 net, comma-separated (default 32,128,1024)")
    args = ap.parse_args(argv)
    os.environ.setdefault("SYMPROP_CACHE", os.path.join(tempfile.gettempdir(), "symprop-bench-cache"))
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from symprop.kernels.training.optim import SGD, Adam

    backends = args.backends.split(",")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        use_jax = not args.no_jax and __import__("jax") is not None
    except ImportError:
        use_jax = False
    print(blas_kernels())
    rng = np.random.default_rng(0)
    order = rng.permutation(ROWS).astype(np.int64)
    cases = [("tiny 2-16-16-1 tanh mse sgd f64", [2, 16, 16, 1], "tanh", "mse", "sgd", "float64", 32)]
    acts = args.acts.split(",") if args.acts else ["relu"] if args.quick else ["relu", "tanh"]
    batches = [int(b) for b in args.batches.split(",")] if args.batches else [32, 1024] if args.quick else [32, 128, 1024]
    for act in acts:
        for b in batches:
            cases.append((f"784-256-128-10 {act} sce adam f32", [784, 256, 128, 10], act, "softmax_cross_entropy",
                          "adam", "float32", b))
    header = f"{'case':36s} {'batch':>5s} " + " ".join(f"{bk + ' st/s':>14s}" for bk in backends) + \
        f" {'torch st/s':>11s} {'x torch':>8s} {'matmul st/s':>12s} {'% of matmul':>11s} {'mm+gather':>10s} {'%':>5s}"
    header += (f" {'jax st/s':>9s} {'x jax':>6s}" if use_jax else "") + f" {'1st call s':>10s}"
    print(header)
    print("-" * len(header))
    for label, sizes, act, loss, optname, dtype, batch in cases:
        X, T = data(sizes, loss, dtype, rng)
        lr = 0.01 if optname == "sgd" else 1e-3
        opt = SGD(lr=lr) if optname == "sgd" else Adam(lr=lr)
        rates, first = {bk: 0.0 for bk in backends}, 0.0
        tr = jr = 0.0
        mm = mg = 0.0 if len(sizes) == 4 else float("nan")
        for _ in range(args.rounds):
            for bk in backends:
                r, f = symprop_steps(sizes, act, loss, opt, dtype, batch, bk, args.repeat, X, T, order)
                rates[bk], first = max(rates[bk], r), max(first, f)
            if not args.no_torch:
                tr = max(tr, torch_steps(sizes, act, loss, optname, lr, dtype, batch, args.repeat, X, T, order))
            if len(sizes) == 4:
                mm = max(mm, matmul_only_steps(sizes, dtype, batch, args.repeat))
                mg = max(mg, matmul_only_steps(sizes, dtype, batch, args.repeat, True))
            if use_jax:
                jr = max(jr, jax_steps(sizes, act, loss, optname, lr, dtype, batch, args.repeat, X, T, order))
        tr = tr if not args.no_torch else float("nan")
        best = max(rates.values())
        cells = " ".join(f"{rates[bk]:14,.0f}" for bk in backends)
        pct = f"{100 * best / mm:10.0f}%" if mm == mm else f"{'':>11s}"
        mmc = f"{mm:12,.0f}" if mm == mm else f"{'':>12s}"
        mgc = f"{mg:10,.0f} {100 * best / mg:4.0f}%" if mg == mg else f"{'':>16s}"
        jaxc = f" {jr:9,.0f} {best / jr:6.2f}" if use_jax else ""
        print(f"{label:36s} {batch:5d} {cells} {tr:11,.0f} {best / tr:8.2f} {mmc} {pct} {mgc}{jaxc} {first:10.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
