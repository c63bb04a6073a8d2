"""The test zoo: small networks shared by the test modules, and one example per registry entry.

Builders are module-level functions (not lambdas made per module), so the session's compiled
model cache (``compiled_model`` in tests/conftest.py) shares a kernel between every module that
asks for the same network. :data:`OP_EXAMPLES` must name every op of the registry: a new op
brings its own example, and :mod:`tests.test_registry` takes it through derive -> code -> verify.
"""

from __future__ import annotations

from symprop import derive
from symprop.derive.ops import ACTIVATIONS, ELEMENTWISE_LOSSES, OPS, PENALTIES, ROW_LOSSES


def tanh_mse():
    return derive.mlp([2, 5, 1], activation="tanh", loss="mse")


def relu_sce():
    return derive.mlp([3, 4, 3], activation="relu", loss="softmax_cross_entropy")


def tanh_bce():
    return derive.mlp([2, 4, 1], activation="tanh", loss="bce")


def formula_mse():
    return derive.mlp([2, 3, 1], activation="x*tanh(log(1+exp(x)))", loss="mse")


def tanh_mse_l2():
    return derive.mlp([2, 3, 2], activation="tanh", loss="mse", penalty="l2", weight=0.05)


def softmax_mse_l1():
    """An explicit softmax node (not fused into the loss) and an L1 penalty."""
    return (derive.Builder("softmax_mse_l1").input("x", 2).dense(3, activation="softplus").dense(2).softmax()
            .loss("mse").penalty("l1", 0.01).build())


def residual_rank2():
    """Rank-2 features [2, 3]: a tanh, a residual ``add`` of the input and a gate broadcast along
    the first feature axis (``mul`` by a [3] parameter), MSE over all 6 elements."""
    return (derive.Builder("residual_rank2").input("x", [2, 3]).activation("tanh", name="h")
            .add("x", name="r").parameter("g", [3]).mul("g", name="gated").loss("mse").build())


def views_rank3():
    """Rank 3 [2, 2, 3] reshaped to [3, 4], softmax on axis 0, flattened into a dense layer."""
    return (derive.Builder("views_rank3").input("x", [2, 2, 3]).activation("softplus", name="a")
            .reshape([3, 4], name="r").softmax(name="p", axis=0).flatten(name="f").dense(2).loss("mse").build())


#: name -> builder: the networks most modules test with
NETS = {f.__name__: f for f in (tanh_mse, relu_sce, tanh_bce, formula_mse, tanh_mse_l2, softmax_mse_l1,
                                residual_rank2, views_rank3)}


#: the fused epoch against its NumPy reference (tests/test_epoch.py)
EPOCH_NETS = {"sce": lambda: derive.mlp([2, 4, 3], activation="tanh", loss="softmax_cross_entropy"),
              "mse": lambda: derive.mlp([2, 8, 1], activation="relu", loss="mse")}

#: the data-parallel epoch against the serial one (tests/test_chunks.py): deeper nets, penalties
CHUNK_NETS = {
    "relu-sce": lambda: derive.mlp([3, 6, 5, 4], activation="relu", loss="softmax_cross_entropy"),
    "relu-mse-l2": lambda: derive.mlp([3, 6, 2], activation="relu", loss="mse", penalty="l2", weight=0.05),
    "tanh-sce": lambda: derive.mlp([3, 6, 5, 4], activation="tanh", loss="softmax_cross_entropy"),
    "formula-bce-l1": lambda: derive.mlp([4, 5, 1], activation="x*tanh(log(1+exp(x)))", loss="bce_logits",
                                         penalty="l1", weight=0.02),
}

#: a big input layer, split by features at small batches (tests/test_chunks.py)
SPLIT_NETS = {
    "wide-relu-sce": lambda: derive.mlp([256, 256, 3], activation="relu", loss="softmax_cross_entropy"),
    "wide-tanh-mse-l2": lambda: derive.mlp([256, 256, 2], activation="tanh", loss="mse", penalty="l2",
                                           weight=0.01),
}


# --- one example per registry entry --------------------------------------------------------------

def activation_net(name: str):
    """A 2-3-1 network with activation ``name`` after the hidden layer, MSE loss."""
    return derive.mlp([2, 3, 1], activation=name, loss="mse", name=f"act_{name}")


def loss_net(name: str):
    """A 2-3-K network with loss ``name`` (K = 3 for row losses; a sigmoid output for ``bce``)."""
    out = 3 if name in ROW_LOSSES else 1
    return derive.mlp([2, 3, out], activation="tanh", loss=name, name=f"loss_{name}")


def penalty_net(name: str):
    """A 2-3-1 tanh network with penalty ``name`` on every weight matrix."""
    return derive.mlp([2, 3, 1], activation="tanh", loss="mse", penalty=name, weight=0.05, name=f"penalty_{name}")


#: op name -> a small network that uses it; every op in the registry must have one
OP_EXAMPLES = {
    "input": tanh_mse, "target": tanh_mse, "parameter": tanh_mse, "dense": tanh_mse,
    "activation": formula_mse, "softmax": softmax_mse_l1, "loss": tanh_bce, "penalty": tanh_mse_l2,
    "add": residual_rank2, "mul": residual_rank2, "reshape": views_rank3, "flatten": views_rank3,
}


def registry_cases() -> list[tuple[str, object]]:
    """``(id, builder)`` for every registry entry: each op, each built-in activation, loss and
    penalty. A builder is a zero-argument callable returning a network."""
    import functools

    cases = [(f"op:{name}", OP_EXAMPLES.get(name)) for name in OPS]
    cases += [(f"activation:{a}", functools.partial(activation_net, a)) for a in ACTIVATIONS]
    cases += [(f"loss:{lo}", functools.partial(loss_net, lo)) for lo in (*ELEMENTWISE_LOSSES, *ROW_LOSSES)]
    cases += [(f"penalty:{p}", functools.partial(penalty_net, p)) for p in PENALTIES]
    return cases
