"""The CUDA backend on a GPU: correctness against the CPU backend, then training steps/s.

Run: ``python bench/bench_cuda.py [--batches 128,1024] [--steps 200] [--repeat 3]``.

1. Correctness: the 784-256-128-10 ReLU softmax cross-entropy MLP (``examples/mnist_like.toml``)
   compiled for ``cuda`` and ``cpu`` from the same seed: loss and gradients at a batch (float64:
   1e-10 relative, float32: 1e-4), and one epoch of Adam (parameters and losses after it).
   Exit 1 on a mismatch.
2. Throughput (float32, Adam, batch 128 and 1024): steps/s of the CUDA epoch function
   (``model.epoch_function``; X, T and the row order are copied to the device once per call,
   parameters and optimizer state to the device and back once per call, included in the time),
   of the ``parallel`` CPU backend's epoch function, and of PyTorch eager on the same GPU when
   ``torch`` is importable there and sees the GPU (same initial weights, same data on the
   device, the same batch loop: index, forward, loss, backward, ``Adam.step``). Best of
   ``--repeat`` timed calls after a warm-up call (compilation excluded).

Without a GPU (or without numba-cuda) it says so and exits 0. Under the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, with ``--sizes 8,6,4,3 --steps 2``) it checks its own logic; its
timings mean nothing there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_step import best_of  # noqa: E402  (bench/ is on sys.path when run as a script)

ROWS = 8192
TOL = {"float64": 1e-10, "float32": 1e-4}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-30))


def make_data(sizes, rows, seed=0):
    from symprop.kernels.training.data import make

    if sizes[0] == 784 and sizes[-1] == 10:
        ds = make("mnist_like", n_samples=rows, seed=seed)
        return ds.X, ds.targets(10)
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], rows)]


def correctness(net, sizes, rows) -> bool:
    from symprop import kernels
    from symprop.kernels.training.optim import Adam

    X, T = make_data(sizes, rows, seed=1)
    ok = True
    print("correctness: cuda against cpu (same seed, same data)")
    for dtype in ("float64", "float32"):
        cpu = kernels.compile(net, backend="cpu", dtype=dtype)
        gpu = kernels.compile(net, backend="cuda", dtype=dtype)
        batch = min(64, rows)
        l_cpu, g_cpu = cpu.loss_and_grads(X[:batch], T[:batch])
        l_gpu, g_gpu = gpu.loss_and_grads(X[:batch], T[:batch])
        errs = {"loss": rel_err(l_cpu, l_gpu), **{f"grad {p}": rel_err(g_cpu[p], g_gpu[p]) for p in g_cpu}}
        opt = Adam(lr=1e-3)
        order = np.random.default_rng(2).permutation(rows)
        out = []
        for model in (cpu, gpu):
            state = model.init_state(opt)
            losses, done = model.epoch_function(opt)(X, T, order, 32, state, 0)
            out.append((losses, done, model.parameters))
        errs["epoch losses"] = rel_err(out[0][0], out[1][0])
        errs.update({f"epoch {p}": rel_err(out[0][2][p], out[1][2][p]) for p in out[0][2]})
        worst = max(errs, key=errs.get)
        good = all(e <= TOL[dtype] for e in errs.values()) and out[0][1] == out[1][1]
        ok &= good
        print(f"  {dtype}: worst relative difference {errs[worst]:.2e} ({worst}), tolerance {TOL[dtype]:g}: "
              f"{'ok' if good else 'MISMATCH'}")
    return ok


def symprop_rate(net, backend, X, T, batch, steps, repeat, seed=0) -> float:
    from symprop import kernels
    from symprop.kernels.training.optim import Adam

    model = kernels.compile(net, backend=backend, dtype="float32", seed=seed)
    opt = Adam(lr=1e-3)
    run = model.epoch_function(opt)
    state = model.init_state(opt)
    rng = np.random.default_rng(3)
    order = np.concatenate([rng.permutation(len(X)) for _ in range(-(-steps * batch // len(X)))])[:steps * batch]
    run(X, T, order[:2 * batch], batch, state, 0)     # compile + warm up
    return steps / best_of(lambda: run(X, T, order, batch, state, 0), repeat)


def torch_rate(net, X, T, batch, steps, repeat, seed=0) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from symprop import kernels
    dev = torch.device("cuda")
    params = kernels.compile(net, backend="cpu", dtype="float32", seed=seed).parameters   # same Glorot start
    sizes = [params["W1"].shape[1]] + [params[f"W{q}"].shape[0] for q in range(1, 100) if f"W{q}" in params]
    layers = []
    for q in range(1, len(sizes)):
        lin = torch.nn.Linear(sizes[q - 1], sizes[q])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[f"W{q}"]))
            lin.bias.copy_(torch.from_numpy(params[f"b{q}"]))
        layers.append(lin)
        if q < len(sizes) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossfn = torch.nn.CrossEntropyLoss()
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
    yt = torch.from_numpy(np.argmax(T, axis=1)).to(dev)

    def epoch(n):
        order = torch.randperm(len(X), device=dev).repeat(-(-n * batch // len(X)))
        for s in range(n):
            b = order[s * batch:(s + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = lossfn(model(Xt[b]), yt[b])
            loss.backward()
            opt.step()
        torch.cuda.synchronize()

    epoch(3)
    return steps / best_of(lambda: epoch(steps), repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="784,256,128,10", help="layer sizes of the ReLU MLP")
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--steps", type=int, default=200, help="steps per timed call (GPU)")
    ap.add_argument("--cpu-steps", type=int, default=16, help="steps per timed call (parallel CPU backend)")
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    import numba

    from symprop import derive
    from symprop.kernels.cuda.model import CudaUnavailable, require_cuda

    try:
        cuda = require_cuda()
    except CudaUnavailable as e:
        print(f"no GPU available, nothing measured: {e}")
        return 0
    sim = bool(numba.config.ENABLE_CUDASIM)
    device = "CUDA simulator (timings meaningless)" if sim else cuda.get_current_device().name
    device = device.decode() if isinstance(device, bytes) else device
    sizes = [int(s) for s in args.sizes.split(",")]
    net = derive.mlp(sizes, activation="relu", loss="softmax_cross_entropy", name="mnist_like")
    print(f"device: {device}; network {'-'.join(map(str, sizes))} relu, softmax cross-entropy")

    if not correctness(net, sizes, min(args.rows, 256)):
        print("MISMATCH: the CUDA backend disagrees with the CPU backend")
        return 1

    X, T = make_data(sizes, args.rows)
    X, T = X.astype(np.float32), T.astype(np.float32)
    batches = [int(b) for b in args.batches.split(",")]
    rows = {}
    for batch in batches:
        cuda_rate = symprop_rate(net, "cuda", X, T, batch, args.steps, args.repeat)
        cpu_rate = symprop_rate(net, "parallel", X, T, batch, args.cpu_steps, args.repeat)
        torch_r = None if sim else torch_rate(net, X, T, batch, args.steps, args.repeat)
        rows[batch] = (cuda_rate, cpu_rate, torch_r)

    print("\ntraining steps/s, float32, Adam (best of %d; epoch calls of %d GPU / %d CPU steps)"
          % (args.repeat, args.steps, args.cpu_steps))
    print(f"{'batch':>6} {'cuda':>10} {'parallel':>10} {'torch-gpu':>10} {'cuda/parallel':>14} {'cuda/torch':>11}")
    for batch, (c, p, t) in rows.items():
        ts = f"{t:10.0f}" if t else f"{'n/a':>10}"
        ratio_t = f"{c / t:11.2f}" if t else f"{'n/a':>11}"
        print(f"{batch:>6} {c:10.0f} {p:10.1f} {ts} {c / p:14.1f} {ratio_t}")
    big = max(batches)
    c, p, t = rows[big]
    print(f"\ntargets at batch {big}: >= 10x parallel: {'met' if c >= 10 * p else 'NOT met'} ({c / p:.1f}x); "
          f"not slower than PyTorch eager: " + ("n/a (no torch on the GPU)" if not t else
                                                ("met" if c >= t else "NOT met") + f" ({c / t:.2f}x)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
