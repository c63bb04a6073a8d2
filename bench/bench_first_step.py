"""Time to first training step for the 784-256-128-10 ReLU net (Adam, float32), cold and warm.

Cold: a new process with an empty kernel cache (derive, generate, Numba compile, first step).
Warm: a second new process reusing that cache: it finds the generated modules by the network's
fingerprint (no derivation, see kernels.model) and Numba loads their machine code from disk.
Run by hand: ``python bench/bench_first_step.py [warm runs, default 5] [backend, default cpu]``.
With ``parallel`` the first step (batch 32) runs the data-parallel epoch, so the cold run also
compiles that ``parallel=True`` function and the warm run loads it and Numba's OpenMP layer.
"""

import os
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0 = time.perf_counter()
import numpy as np
from symprop import derive, kernels
net = derive.mlp([784, 256, 128, 10], activation="relu", loss="softmax_cross_entropy")
model = kernels.compile(net, dtype="float32", backend=BACKEND)
run = model.epoch_function(kernels.Adam(lr=1e-3))
rng = np.random.default_rng(0)
X = rng.normal(size=(32, 784)).astype(np.float32)
T = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)]
losses, done = run(X, T, np.arange(32), 32, model.init_state(kernels.Adam(lr=1e-3)), 0)
assert done == 1
print(f"{time.perf_counter() - t0:.2f}")
"""


def once(cache: str, backend: str) -> float:
    env = {**os.environ, "SYMPROP_CACHE": cache}
    child = CHILD.replace("BACKEND", repr(backend))
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    warm_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    backend = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    with tempfile.TemporaryDirectory() as cache:
        cold = once(cache, backend)
        warm = sorted(once(cache, backend) for _ in range(warm_runs))
    print(f"time to first step, 784-256-128-10 relu, Adam, float32, backend {backend} (imports included): "
          f"cold {cold:.2f} s, "
          f"warm {warm[len(warm) // 2]:.2f} s (median of {warm_runs} new processes; "
          f"fastest {warm[0]:.2f}, slowest {warm[-1]:.2f})")


if __name__ == "__main__":
    main()
