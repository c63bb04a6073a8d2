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
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _load(path: str):
    from symprop import derive
    return derive.load(path)


def cmd_equations(args) -> int:
    from symprop import derive
    bp = derive.backprop(_load(args.spec))
    sys.stdout.write(bp.latex() if args.latex else bp.pretty(unicode=not args.ascii))
    return 0


def cmd_check_spec(args) -> int:
    import numpy as np

    from symprop import derive
    net = _load(args.spec)
    info = derive.validate(net)
    params = derive.parameters(net)
    count = sum(int(np.prod(info.shapes[p])) for p in params)
    print(f"{args.spec}: ok ({net.number_of_nodes()} nodes, {len(params)} parameters, "
          f"{count} parameter values, loss {info.loss})")
    return 0


def cmd_kernels(args) -> int:
    from symprop import kernels
    net = _load(args.spec)
    sys.stdout.write(kernels.generate(net, args.dtype))
    return 0


def cmd_verify(args) -> int:
    from symprop.kernels.check.verify import verify

    net = _load(args.spec)
    result = verify(net, backend=args.backend, dtype=args.dtype, batch=args.batch, seed=args.seed)
    print(result.table())
    print("gradients verified" if result.ok else "MISMATCH: compiled gradients disagree with the references")
    return 0 if result.ok else 1


def _dataset(net, spec: str, samples: int, seed: int):
    """The data set named ``spec`` for ``net`` and its target array; ValueError when sizes disagree."""
    from symprop import derive
    from symprop.kernels.training.data import resolve

    info = derive.validate(net)
    data = resolve(spec, n_samples=samples, seed=seed)
    n_inputs = info.shapes[info.inputs[0]][0]
    if data.n_features != n_inputs:
        raise ValueError(f"data {data.name!r} has {data.n_features} features but the network's input has {n_inputs}")
    n_outputs = info.shapes[info.args[info.loss]["y"]][0]
    return data, data.targets(n_outputs)


def _optimizer(args):
    from symprop.kernels.training.optim import get_optimizer

    return get_optimizer(args.optimizer, lr=args.lr, momentum=getattr(args, "momentum", None),
                         weight_decay=getattr(args, "weight_decay", None), l1=getattr(args, "l1", None),
                         l2=getattr(args, "l2", None))


def cmd_train(args) -> int:
    from symprop import kernels
    from symprop.kernels.training.loop import train

    net = _load(args.spec)
    _check_outputs(args)
    data, T = _dataset(net, args.data, args.samples, args.seed)
    optimizer = _optimizer(args)
    print(f"training {net.graph.get('name', 'network')!r} on {data.name} ({data.n_samples} rows) with "
          f"{type(optimizer).__name__}, backend {args.backend}, {args.dtype}")
    model = kernels.compile(net, backend=args.backend, dtype=args.dtype, seed=args.seed)
    history = train(model, data.X, T, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                    seed=args.seed, validation=args.validation, progress=None if args.progress else False,
                    checkpoint=args.checkpoint, resume=args.resume)
    _summary(history, args.epochs)
    if args.history:
        history.save(args.history)
        print(f"history written to {args.history}")
    if args.save:
        from symprop.kernels.training.loop import save_parameters

        save_parameters(args.save, model.parameters)
        print(f"parameters written to {args.save}")
    if history.stopped:
        print(f"symprop: training stopped: {history.stopped}", file=sys.stderr)
        return 1
    return 0


def _check_outputs(args) -> None:
    """Refuse bad output options before the compilation and training, not after them."""
    from symprop.derive.atomic import check_outputs_distinct, check_writable

    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint (the file to resume from)")
    if args.save and not args.save.endswith(".npz"):
        raise ValueError(f"{args.save}: parameters are saved as .npz")
    outputs = {"--save": args.save, "--checkpoint": args.checkpoint, "--history": args.history}
    inputs = {"the spec": args.spec, "--data": args.data if Path(args.data).exists() else None}
    # with --resume the checkpoint is read and then written: the same file on purpose
    check_outputs_distinct(outputs, inputs)
    for path in outputs.values():
        if path:
            check_writable(path)


def _summary(history, epochs: int) -> None:
    last = history.last
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("epoch", "steps", "seconds"))
    if history.stopped:   # the last row is the failed batch's, not an epoch's: history.stopped says why
        summary = "stopped"
    print(f"epoch {last.get('epoch', 0)}/{epochs}: {summary} ({history.seconds:.2f} s)")


def _write_report(net, out, **kw) -> tuple[int, object]:
    """``reports.write``; a LaTeX failure is printed (its log's error lines) and gives exit code 1."""
    from symprop import reports
    try:
        result = reports.write(net, out, **kw)
    except reports.ReportError as e:
        print(f"symprop: error: {e}", file=sys.stderr)
        return 1, None
    print(result.message)
    return 0, result


#: ``symprop report``'s training options, which apply only with ``--train``, and their defaults.
REPORT_TRAINING = {"data": "moons", "samples": 512, "epochs": 100, "batch_size": 32, "optimizer": "adam",
                   "lr": 0.01, "dtype": "float64"}


def cmd_report(args) -> int:
    from symprop.reports import report_paths

    from symprop.derive.atomic import check_outputs_distinct

    tex, pdf = report_paths(args.output)   # a bad name or a folder in the way: refused before any work
    check_outputs_distinct({"the report's .tex": tex, "the report's PDF": pdf},
                           {"the spec": args.spec, "--data": args.data if args.data and Path(args.data).exists() else None})
    given = [k for k in REPORT_TRAINING if getattr(args, k) is not None]
    if given and not args.train:
        raise ValueError(f"--{given[0].replace('_', '-')} applies only with --train")
    for k, default in REPORT_TRAINING.items():
        if getattr(args, k) is None:
            setattr(args, k, default)
    net = _load(args.spec)
    kw: dict = {"title": args.title, "pdf": False if not args.pdf else None}
    status = 0
    if args.train:
        from symprop import kernels
        from symprop.kernels.training.loop import train
        from symprop.kernels.check.verify import verify

        data, T = _dataset(net, args.data, args.samples, args.seed)
        optimizer = _optimizer(args)
        print(f"training {net.graph.get('name', 'network')!r} on {data.name} ({data.n_samples} rows) with "
              f"{type(optimizer).__name__}")
        model = kernels.compile(net, dtype=args.dtype, seed=args.seed)
        history = train(model, data.X, T, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                        seed=args.seed, progress=None if args.progress else False)
        _summary(history, args.epochs)
        result = verify(net, model=model, seed=args.seed)
        print("gradients verified" if result.ok else "MISMATCH: compiled gradients disagree with the references")
        kw.update(history=history, verification=result, optimizer=optimizer, data=data, model=model)
        if history.stopped or not result.ok:
            status = 1
    code, written = _write_report(net, args.output, **kw)
    if written is not None:
        print(f"report: {written.path}")
    return code or status


#: The embedded default of ``symprop demo``: a small classifier on a built-in 2-D data set.
DEMO = {"sizes": [2, 8, 8, 1], "activation": "tanh", "loss": "bce_logits", "data": "moons", "samples": 512,
        "epochs": 200, "batch_size": 32, "lr": 0.01, "seed": 0, "verify_batch": 2}


def cmd_demo(args) -> int:
    import time

    from symprop import derive
    from symprop import kernels
    from symprop.kernels.training.data import make
    from symprop.kernels.training.loop import train
    from symprop.kernels.check.verify import verify
    from symprop.reports import report_paths

    began = time.perf_counter()
    out = Path(args.out)
    report_paths(out / "demo.pdf")   # a file where the folder should be: refused before any work
    d = DEMO
    net = derive.mlp(d["sizes"], activation=d["activation"], loss=d["loss"], name="demo")
    sizes = "-".join(map(str, d["sizes"]))
    print(f"symprop demo: a {sizes} {d['activation']} MLP, {d['loss']} loss, on the built-in "
          f"{d['data']!r} data set (the embedded default)\n")
    sys.stdout.write(derive.backprop(net).pretty())
    data = make(d["data"], n_samples=d["samples"], seed=d["seed"])
    optimizer = kernels.Adam(lr=d["lr"])
    epochs = args.epochs if args.epochs is not None else d["epochs"]
    print(f"\ntraining the compiled kernel: {data.n_samples} rows, {epochs} epochs, batch {d['batch_size']}, "
          f"Adam(lr={d['lr']})")
    model = kernels.compile(net, seed=d["seed"])
    history = train(model, data.X, data.targets(1), epochs=epochs, batch_size=d["batch_size"],
                    optimizer=optimizer, seed=d["seed"], progress=None)
    _summary(history, epochs)
    print("\nverifying the compiled gradients against SymPy's derivative of the whole expanded loss and "
          "central finite differences:\n")
    result = verify(net, model=model, batch=d["verify_batch"], seed=d["seed"])
    print(result.table())
    print("gradients verified" if result.ok else "MISMATCH: compiled gradients disagree with the references")
    code, written = _write_report(net, out / "demo.pdf", history=history, verification=result, optimizer=optimizer,
                                  data=data, model=model, title=f"symprop demo: a {sizes} {d['activation']} MLP on "
                                  f"{d['data']}", pdf=False if not args.pdf else None)
    print(f"\ndone in {time.perf_counter() - began:.1f} s")
    if written is not None:
        print(f"report: {written.path}")
    if code:
        return code
    return 0 if result.ok and not history.stopped else 1


def _at_least(least: int):
    """An argparse type: an integer >= ``least``."""
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < least:
            raise argparse.ArgumentTypeError(f"must be an integer >= {least}, got {text!r}")
        return value
    return count


def _fraction(text: str) -> float:
    """An argparse type: 0 or a fraction in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not (value == 0 or 0 < value < 1):
        raise argparse.ArgumentTypeError(f"must be 0 or a fraction in (0, 1), got {text!r}")
    return value


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
    ve.add_argument("--backend", default="cpu", help="cpu, parallel or cuda (default cpu)")
    ve.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ve.add_argument("--batch", type=_at_least(1), default=3)
    ve.add_argument("--seed", type=_at_least(0), default=0)
    ve.set_defaults(func=cmd_verify)
    tr = sub.add_parser("train", help="train the compiled network on a data set")
    tr.add_argument("spec")
    tr.add_argument("--data", default="moons",
                    help="xor, moons, circles, spirals, spirals3, sine, mnist_like (784 features, 10 classes), "
                    "or a .npz/.csv file")
    tr.add_argument("--samples", type=_at_least(1), default=512, help="rows drawn from a built-in generator")
    tr.add_argument("--epochs", type=_at_least(0), default=100)
    tr.add_argument("--batch-size", type=_at_least(1), default=32)
    tr.add_argument("--optimizer", default="adam", help="sgd, momentum, nesterov, rmsprop, adam, adamw")
    tr.add_argument("--lr", type=float, default=0.01)
    tr.add_argument("--momentum", type=float, default=None)
    tr.add_argument("--weight-decay", type=float, default=None, help="AdamW's decoupled decay")
    tr.add_argument("--l1", type=float, default=None, help="L1 decay added to the gradient")
    tr.add_argument("--l2", type=float, default=None, help="L2 decay added to the gradient")
    tr.add_argument("--backend", default="cpu", help="cpu, parallel or cuda (default cpu)")
    tr.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    tr.add_argument("--seed", type=_at_least(0), default=0)
    tr.add_argument("--validation", type=_fraction, default=0.0, help="fraction of rows held out")
    tr.add_argument("--checkpoint", help=".npz checkpoint written after every epoch")
    tr.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    tr.add_argument("--save", help="write the trained parameters to this .npz")
    tr.add_argument("--history", help="write the per-epoch history to this .json")
    tr.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    tr.set_defaults(func=cmd_train)
    rp = sub.add_parser("report", help="write a LaTeX/PDF report of the derivation (and, with --train, of training)")
    rp.add_argument("spec")
    rp.add_argument("-o", "--output", required=True, help="the report: OUT.pdf or OUT.tex (figures go to OUT-figures/ next to it)")
    rp.add_argument("--title", help="the report's title (default: 'Backpropagation of <name>')")
    rp.add_argument("--no-pdf", dest="pdf", action="store_false", help="write the .tex and figures only")
    rp.add_argument("--train", action="store_true", help="train the compiled network, verify its gradients, report both")
    rp.add_argument("--data", help="with --train: a built-in data set or a .npz/.csv file (default moons)")
    rp.add_argument("--samples", type=_at_least(1), help="with --train (default 512)")
    rp.add_argument("--epochs", type=_at_least(0), help="with --train (default 100)")
    rp.add_argument("--batch-size", type=_at_least(1), help="with --train (default 32)")
    rp.add_argument("--optimizer", help="with --train (default adam)")
    rp.add_argument("--lr", type=float, help="with --train (default 0.01)")
    rp.add_argument("--dtype", choices=["float32", "float64"], help="with --train (default float64)")
    rp.add_argument("--seed", type=_at_least(0), default=0)
    rp.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    rp.set_defaults(func=cmd_report)
    demo = sub.add_parser("demo", help="the main job: derive, print, train, verify and report the embedded default")
    demo.add_argument("--out", default="symprop-demo", help="folder for the report (default: ./symprop-demo)")
    demo.add_argument("--epochs", type=_at_least(0), default=None, help=f"training epochs (default {DEMO['epochs']})")
    demo.add_argument("--no-pdf", dest="pdf", action="store_false", help="write the .tex and figures only")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from symprop.derive.errors import SymPropError

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
    except MemoryError:  # a network or data set too big for this machine (derive.mlp([2, 10**12, 1]))
        print("symprop: error: out of memory: the network or data set is too large for this machine", file=sys.stderr)
        return 1
    except OSError as e:  # a file the system refused (the writers name theirs as ValueErrors)
        print(f"symprop: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0
    except KeyboardInterrupt:  # pragma: no cover
        print("symprop: interrupted", file=sys.stderr)
        return 130
