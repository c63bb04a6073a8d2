"""``symprop``: derive, print and check backpropagation from the command line.

Every subcommand is a few calls into the packages; nothing is computed only here.
``main(argv)`` returns the exit code: 0 success, 1 a check failed, 2 bad input
(a spec, formula or option), so tests call it directly.

Examples
--------
>>> main(["check-spec", "examples/mlp.toml"])
examples/mlp.toml: ok (14 nodes, 6 parameters, 337 parameter values, loss L)
0
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

__all__ = ["main"]


def _load(path: str):
    import derive

    return derive.load(path)


def cmd_equations(args) -> int:
    import derive

    bp = derive.backprop(_load(args.spec))
    sys.stdout.write(bp.latex() if args.latex else bp.pretty(unicode=not args.ascii))
    return 0


def cmd_check_spec(args) -> int:
    import numpy as np

    import derive

    net = _load(args.spec)
    info = derive.validate(net)
    params = derive.parameters(net)
    count = sum(int(np.prod(info.shapes[p])) for p in params)
    print(f"{args.spec}: ok ({net.number_of_nodes()} nodes, {len(params)} parameters, "
          f"{count} parameter values, loss {info.loss})")
    return 0


def _check_table(net, batch: int, seed: int, out) -> bool:
    """Derived gradients against SymPy's ground truth and central differences; True when all agree."""
    import numpy as np

    import derive
    from derive.evaluate import finite_differences

    values = derive.random_values(net, batch=batch, seed=seed)
    bp = derive.backprop(net)
    loss, grads = derive.evaluate(bp, values)
    truth = derive.symbolic_gradients(net, values)
    fd = finite_differences(bp, values)
    ok = True
    out.write(f"{'parameter':<12}{'max |derived - symbolic|':>26}{'max |derived - finite diff|':>30}\n")
    for p, g in grads.items():
        e_sym = float(np.max(np.abs(g - truth.grads[p])))
        e_fd = float(np.max(np.abs(g - fd[p])))
        good = e_sym <= 1e-10 * (1 + np.max(np.abs(truth.grads[p]))) and e_fd <= 1e-6
        ok &= good
        out.write(f"{p:<12}{e_sym:>26.3e}{e_fd:>30.3e}  {'ok' if good else 'MISMATCH'}\n")
    out.write(f"loss: derived {loss:.12g}, symbolic {truth.loss:.12g}\n")
    return ok


def cmd_demo(args) -> int:
    import derive

    net = derive.mlp([2, 3, 1], activation="tanh", loss="mse", name="demo")
    bp = derive.backprop(net)
    print("symprop demo: a 2-3-1 tanh MLP with mean squared error (the embedded default)\n")
    sys.stdout.write(bp.pretty())
    print("\nChecking the derived gradients at a random point (batch 4) against SymPy's derivative of")
    print("the whole expanded loss and against central finite differences:\n")
    ok = _check_table(net, batch=4, seed=0, out=sys.stdout)
    print("\nall derived gradients agree" if ok else "\nMISMATCH between derived and reference gradients")
    return 0 if ok else 1


def cmd_kernels(args) -> int:
    import kernels

    net = _load(args.spec)
    sys.stdout.write(kernels.generate(net, args.dtype))
    return 0


def cmd_verify(args) -> int:
    from kernels.verification import verify

    net = _load(args.spec)
    result = verify(net, backend=args.backend, dtype=args.dtype, batch=args.batch, seed=args.seed)
    print(result.table())
    print("gradients verified" if result.ok else "MISMATCH: compiled gradients disagree with the references")
    return 0 if result.ok else 1


def cmd_train(args) -> int:
    import derive
    import kernels
    from kernels.data import resolve
    from kernels.optim import get_optimizer
    from kernels.training import train

    net = _load(args.spec)
    info = derive.validate(net)
    data = resolve(args.data, n_samples=args.samples, seed=args.seed)
    n_inputs = info.shapes[next(v for v in info.order if net.nodes[v]["op"] == "input")][0]
    if data.n_features != n_inputs:
        raise ValueError(f"data {data.name!r} has {data.n_features} features but the network's input has {n_inputs}")
    n_outputs = info.shapes[info.args[info.loss]["y"]][0]
    T = data.targets(n_outputs)
    optimizer = get_optimizer(args.optimizer, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                              l1=args.l1, l2=args.l2)
    print(f"training {net.graph.get('name', 'network')!r} on {data.name} ({data.n_samples} rows) with "
          f"{type(optimizer).__name__}, backend {args.backend}, {args.dtype}")
    model = kernels.compile(net, backend=args.backend, dtype=args.dtype, seed=args.seed)
    history = train(model, data.X, T, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                            seed=args.seed, validation=args.validation, progress=None if args.progress else False,
                            checkpoint=args.checkpoint, resume=args.resume)
    last = history.last
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("epoch", "steps", "seconds"))
    print(f"epoch {last.get('epoch', 0)}/{args.epochs}: {summary} ({history.seconds:.2f} s)")
    if args.history:
        history.save(args.history)
        print(f"history written to {args.history}")
    if args.save:
        from kernels.training import save_parameters

        save_parameters(args.save, model.parameters)
        print(f"parameters written to {args.save}")
    if history.stopped:
        print(f"symprop: training stopped: {history.stopped}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="symprop", description="Derive, print and verify backpropagation.")
    sub = p.add_subparsers(dest="command", required=True)
    eq = sub.add_parser("equations", help="print forward and derived backward equations of a network")
    eq.add_argument("spec", help="network spec (.toml or .json)")
    eq.add_argument("--latex", action="store_true", help="print LaTeX instead of Unicode")
    eq.add_argument("--ascii", action="store_true", help="plain ASCII instead of Unicode")
    eq.set_defaults(func=cmd_equations)
    cs = sub.add_parser("check-spec", help="validate a spec file; exit 2 with a one-line error if it is bad")
    cs.add_argument("spec")
    cs.set_defaults(func=cmd_check_spec)
    kn = sub.add_parser("kernels", help="print the generated kernel source of a network")
    kn.add_argument("spec")
    kn.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    kn.set_defaults(func=cmd_kernels)
    ve = sub.add_parser("verify", help="compiled gradients vs SymPy ground truth vs finite differences; exit 1 on mismatch")
    ve.add_argument("spec")
    ve.add_argument("--backend", default="cpu")
    ve.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ve.add_argument("--batch", type=int, default=3)
    ve.add_argument("--seed", type=int, default=0)
    ve.set_defaults(func=cmd_verify)
    tr = sub.add_parser("train", help="train the compiled network on a data set")
    tr.add_argument("spec")
    tr.add_argument("--data", default="moons", help="xor, moons, circles, spirals, spirals3, sine, or a .npz/.csv file")
    tr.add_argument("--samples", type=int, default=512, help="rows drawn from a built-in generator")
    tr.add_argument("--epochs", type=int, default=100)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--optimizer", default="adam", help="sgd, momentum, nesterov, rmsprop, adam, adamw")
    tr.add_argument("--lr", type=float, default=0.01)
    tr.add_argument("--momentum", type=float, default=None)
    tr.add_argument("--weight-decay", type=float, default=None, help="AdamW's decoupled decay")
    tr.add_argument("--l1", type=float, default=None, help="L1 decay added to the gradient")
    tr.add_argument("--l2", type=float, default=None, help="L2 decay added to the gradient")
    tr.add_argument("--backend", default="cpu")
    tr.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--validation", type=float, default=0.0, help="fraction of rows held out")
    tr.add_argument("--checkpoint", help=".npz checkpoint written after every epoch")
    tr.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    tr.add_argument("--save", help="write the trained parameters to this .npz")
    tr.add_argument("--history", help="write the per-epoch history to this .json")
    tr.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    tr.set_defaults(func=cmd_train)
    demo = sub.add_parser("demo", help="the main job on the embedded default network")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from derive.errors import SymPropError

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    try:
        return args.func(args)
    except (SymPropError, ValueError) as e:  # bad input: spec, formula, data file, option
        print(f"symprop: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0
    except KeyboardInterrupt:  # pragma: no cover
        print("symprop: interrupted", file=sys.stderr)
        return 130
