"""JAX reference timings for the same networks as bench/bench_step.py (run by hand).

The whole update step (forward, backward, optimizer) is one ``jax.jit`` function; the batch loop
runs in Python over pre-sliced device arrays, as JAX users write it. Prints steps/s.

    python bench/bench_jax.py            # needs `pip install jax jaxlib` (CPU)
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover
    raise SystemExit("JAX is not installed: pip install jax jaxlib")

jax.config.update("jax_enable_x64", True)


def mlp_init(sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        params.append((jnp.asarray(rng.uniform(-limit, limit, (fan_out, fan_in)), dtype=dtype),
                       jnp.zeros(fan_out, dtype=dtype)))
    return params


def forward(params, x, act):
    for W, b in params[:-1]:
        x = act(x @ W.T + b)
    W, b = params[-1]
    return x @ W.T + b


def make_step(act, loss, optimizer, lr):
    def objective(params, x, t):
        y = forward(params, x, act)
        if loss == "mse":
            return jnp.mean((y - t) ** 2)
        return -jnp.mean(jnp.sum(t * jax.nn.log_softmax(y, axis=1), axis=1))

    grad = jax.value_and_grad(objective)
    if optimizer == "sgd":
        @jax.jit
        def step(params, state, x, t):
            value, g = grad(params, x, t)
            return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g), state, value
        return step, lambda params: ()

    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def step(params, state, x, t):
        m, v, k = state
        value, g = grad(params, x, t)
        k = k + 1
        m = jax.tree_util.tree_map(lambda m_, d: b1 * m_ + (1 - b1) * d, m, g)
        v = jax.tree_util.tree_map(lambda v_, d: b2 * v_ + (1 - b2) * d * d, v, g)
        params = jax.tree_util.tree_map(
            lambda p, m_, v_: p - lr * (m_ / (1 - b1 ** k)) / (jnp.sqrt(v_ / (1 - b2 ** k)) + eps), params, m, v)
        return params, (m, v, k), value

    def init(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return (zeros, zeros, 0)

    return step, init


def bench(name, sizes, act, loss, optimizer, lr, dtype, batch, rows=4096, seconds=2.0):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, sizes[0])).astype(dtype)
    if loss == "mse":
        T = rng.normal(size=(rows, sizes[-1])).astype(dtype)
    else:
        T = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], rows)]
    batches = [(jnp.asarray(X[i:i + batch]), jnp.asarray(T[i:i + batch])) for i in range(0, rows - batch + 1, batch)]
    params = mlp_init(sizes, dtype)
    step, init = make_step(act, loss, optimizer, lr)
    state = init(params)
    params, state, value = step(params, state, *batches[0])  # compile
    value.block_until_ready()
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        for x, t in batches:
            params, state, value = step(params, state, x, t)
            steps += 1
        value.block_until_ready()
    rate = steps / (time.perf_counter() - began)
    print(f"{name:<44} batch {batch:>5}: {rate:>10,.0f} steps/s")
    return rate


def main():
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}")
    bench("tiny 2-16-16-1 tanh mse sgd float64", [2, 16, 16, 1], jnp.tanh, "mse", "sgd", 0.01, np.float64, 32)
    for act_name, act in (("relu", jax.nn.relu), ("tanh", jnp.tanh)):
        for batch in (32, 128, 1024):
            bench(f"784-256-128-10 {act_name} sce adam float32", [784, 256, 128, 10], act, "sce", "adam", 1e-3,
                  np.float32, batch)


if __name__ == "__main__":
    main()
