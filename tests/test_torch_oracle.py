"""PyTorch autograd as an independent oracle for the derived gradients (float64).

Skipped when torch is not importable (.ci/run installs the local CPU wheel when the machine has
it). The forward pass below is written with torch's own functions, so the gradients come from
torch's hand-written backward rules: a check entirely independent of SymPy.
"""

import numpy as np
import pytest

from symprop import derive
torch = pytest.importorskip("torch")
F = torch.nn.functional

ACT = {
    "identity": lambda x: x,
    "relu": torch.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": F.elu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "softsign": F.softsign,
}
LOSS = {
    "mse": F.mse_loss,
    "mae": F.l1_loss,
    "bce": F.binary_cross_entropy,
    "bce_logits": F.binary_cross_entropy_with_logits,
    "softmax_cross_entropy": lambda y, t: F.cross_entropy(y, t),
}


def torch_objective(net, values):
    """The network's objective computed by torch, and the parameter tensors."""
    info = derive.validate(net)
    env, params = {}, {}
    objective = 0
    for v in info.order:
        data = net.nodes[v]
        args = {a: env[u] for a, u in info.args[v].items()}
        op = data["op"]
        if op in ("input", "target"):
            env[v] = torch.tensor(values[v], dtype=torch.float64)
        elif op == "parameter":
            env[v] = params[v] = torch.tensor(values[v], dtype=torch.float64, requires_grad=True)
        elif op == "dense":
            env[v] = F.linear(args["x"], args["W"], args.get("b"))
        elif op == "activation":
            env[v] = ACT[data["function"]](args["x"])
        elif op == "softmax":
            env[v] = torch.softmax(args["x"], dim=1)
        elif op == "loss":
            env[v] = LOSS[data["function"]](args["y"], args["t"])
            objective = objective + env[v]
        elif op == "penalty":
            w = args["w"]
            term = w.abs().sum() if data["kind"] == "l1" else (w ** 2).sum() / 2
            objective = objective + data["weight"] * term
    return objective, params


NETS = [
    ("tanh", "mse"), ("relu", "softmax_cross_entropy"), ("sigmoid", "bce"), ("gelu", "bce_logits"),
    ("elu", "mse"), ("leaky_relu", "mae"), ("softplus", "mse"), ("silu", "softmax_cross_entropy"),
    ("softsign", "mse"), ("identity", "mse"),
]


@pytest.mark.parametrize("activation,loss", NETS)
@pytest.mark.parametrize("penalty", [None, "l1", "l2"])
def test_derived_gradients_match_torch(activation, loss, penalty):
    out = 3 if loss == "softmax_cross_entropy" else 1
    net = derive.mlp([3, 4, out], activation=activation, loss=loss, penalty=penalty, weight=0.01)
    values = derive.random_values(net, batch=5, seed=7)
    ours_loss, ours = derive.evaluate(derive.backprop(net), values)
    objective, params = torch_objective(net, values)
    objective.backward()
    assert ours_loss == pytest.approx(objective.item(), rel=1e-12, abs=1e-14)
    for p, tensor in params.items():
        np.testing.assert_allclose(ours[p], tensor.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=p)


def test_softmax_node_matches_torch():
    net = derive.Builder().input("x", 3).dense(4).softmax().loss("mse").build()
    values = derive.random_values(net, batch=4, seed=3)
    _, ours = derive.evaluate(derive.backprop(net), values)
    objective, params = torch_objective(net, values)
    objective.backward()
    for p, tensor in params.items():
        np.testing.assert_allclose(ours[p], tensor.grad.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_kink_convention_matches_torch(activation):
    """At exactly 0 our derived derivative takes PyTorch's value (relu'(0)=0, leaky_relu'(0)=alpha)."""
    x = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    ACT[activation](x).sum().backward()
    d = derive.derivative(derive.ops.scalar_function("activation", {"function": activation}))
    ours = float(d.in_input.subs(derive.ops.X, 0))
    assert ours == pytest.approx(x.grad[0, 0].item())


def test_mae_kink_matches_torch():
    y = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
    F.l1_loss(y, torch.zeros(1, 1, dtype=torch.float64)).backward()
    d = derive.derivative(derive.ops.ELEMENTWISE_LOSSES["mae"], derive.ops.Y)
    assert float(d.in_input.subs({derive.ops.Y: 0, derive.ops.T: 0})) == y.grad.item() == 0.0
