"""The report's figures, drawn with matplotlib (Agg) as vector PDFs with reproducible bytes.

* :func:`activation_figure`: an activation ``f`` and the derivative ``f'`` that derive derived
  for it (``Derivative.in_input``, evaluated with :func:`sympy.lambdify`: no hand formula);
* :func:`training_figure`: loss and accuracy per epoch from a :class:`kernels.training.loop.History`;
* :func:`decision_figure`: the trained network's output over the plane of 2-D data (decision
  boundary for classifiers), or its curve over 1-D data (regression).

Figures hold no user text (node names and titles go into the LaTeX captions, escaped there),
so a name such as ``$x^2$`` cannot reach matplotlib's mathtext. Every figure is drawn with
matplotlib's default style whatever the user's ``matplotlibrc``, and saved without a creation
date, so the same inputs give the same bytes.

Examples
--------
>>> import sympy as sp, tempfile, os
>>> from symprop.derive.ops import X
>>> from symprop.derive.scalar import derivative
>>> path = os.path.join(tempfile.mkdtemp(), "tanh.pdf")
>>> activation_figure(derivative(sp.tanh(X)), path).name
'tanh.pdf'
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["activation_curves", "activation_figure", "network_output", "training_figure", "decision_figure", "evaluate_scalar", "PDF_METADATA"]

#: No creation date, fixed producer: the same figure gives the same bytes.
PDF_METADATA = {"CreationDate": None, "Producer": "symprop", "Creator": "symprop"}
_RC = {"pdf.fonttype": 42, "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 8, "svg.hashsalt": "symprop",
       "path.simplify": False, "text.usetex": False}


@contextmanager
def _style():
    import matplotlib

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_RC)
        yield


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="pdf", metadata=PDF_METADATA)
    return path


def evaluate_scalar(expr, x: np.ndarray, symbol=None) -> np.ndarray:
    """Evaluate a SymPy expression of ``x`` (derive's ``X``) on an array, as derive's evaluator does."""
    import sympy as sp

    from symprop.derive.evaluation import NUMERIC_FUNCTIONS
    from symprop.derive.ops import X

    symbol = X if symbol is None else symbol
    fn = sp.lambdify(symbol, expr, modules=[NUMERIC_FUNCTIONS, "numpy"])
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(fn(x), dtype=np.float64), x.shape)


def activation_curves(deriv, lo: float = -4.0, hi: float = 4.0, n: int = 801):
    """``(x, f(x), f'(x))`` with ``f'`` the derived expression (:class:`derive.scalar.Derivative`)."""
    x = np.linspace(lo, hi, n)
    return x, evaluate_scalar(deriv.function, x), evaluate_scalar(deriv.in_input, x)


def activation_figure(deriv, path: str | os.PathLike, lo: float = -4.0, hi: float = 4.0) -> Path:
    """``f`` and its derived ``f'`` (a :class:`derive.scalar.Derivative`) over ``[lo, hi]``."""
    x, f, df = activation_curves(deriv, lo, hi)
    with _style():
        fig = _figure(3.2, 2.3)
        ax = fig.add_subplot()
        ax.axhline(0, color="0.8", lw=0.6)
        ax.axvline(0, color="0.8", lw=0.6)
        ax.plot(x, f, color="C0", lw=1.6, label="f(x)")
        ax.plot(x, df, color="C3", lw=1.4, ls="--", label="f'(x), derived")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("x")
        ax.legend(loc="best", frameon=False)
        return _save(fig, path)


def training_figure(history, path: str | os.PathLike) -> Path:
    """Loss (log scale when positive) and, when recorded, accuracy per epoch."""
    epochs = np.array(history.column("epoch"), dtype=float)
    loss = np.array([np.nan if v is None else v for v in history.column("loss")], dtype=float)
    keys = {k for e in history.epochs for k in e}
    has_acc = "accuracy" in keys
    with _style():
        fig = _figure(6.4 if has_acc else 3.4, 2.5)
        axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
        ax = axes[0]
        ax.plot(epochs, loss, color="C0", lw=1.4, label="training loss")
        if "val_loss" in keys:
            ax.plot(epochs, [np.nan if v is None else v for v in history.column("val_loss")], color="C1",
                    lw=1.2, ls="--", label="validation loss")
        finite = loss[np.isfinite(loss)]
        if finite.size and np.all(finite > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(frameon=False)
        if has_acc:
            ax = axes[1]
            ax.plot(epochs, [np.nan if v is None else v for v in history.column("accuracy")], color="C2", lw=1.4,
                    label="training accuracy")
            if "val_accuracy" in keys:
                ax.plot(epochs, [np.nan if v is None else v for v in history.column("val_accuracy")], color="C4",
                        lw=1.2, ls="--", label="validation accuracy")
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("epoch")
            ax.set_ylabel("accuracy")
            ax.legend(frameon=False, loc="lower right")
        return _save(fig, path)


def network_output(bp, parameters, X: np.ndarray) -> np.ndarray:
    """The output the loss compares with the target, for rows ``X``, by derive's forward equations."""
    from symprop.derive.evaluation import forward_values

    out = bp.info.args[bp.info.loss]["y"]
    values = {bp.info.inputs[0]: np.asarray(X, dtype=np.float64)}
    values.update({p: np.asarray(v, dtype=np.float64) for p, v in parameters.items()})
    return np.asarray(forward_values(bp, values, until=out)[out], dtype=np.float64)


def _probability(loss_fn, y: np.ndarray) -> tuple[np.ndarray, float]:
    """The displayed value and its decision level for a one-output network."""
    if loss_fn == "bce_logits":
        return 0.5 * (1 + np.tanh(0.5 * y)), 0.5  # sigmoid, overflow-free
    return y, 0.5


def decision_figure(bp, parameters, X: np.ndarray, labels: np.ndarray | None, path: str | os.PathLike,
                    resolution: int = 150) -> Path | None:
    """The trained network over its data: the plane of 2-D inputs (decision boundary) or the curve
    of 1-D inputs; None for other input sizes."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] not in (1, 2) or X.shape[0] == 0:
        return None
    loss_fn = bp.graph.nodes[bp.info.loss].get("function")
    with _style():
        fig = _figure(3.6, 3.0)
        ax = fig.add_subplot()
        if X.shape[1] == 1:
            grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 400)[:, None]
            y = network_output(bp, parameters, grid)
            if labels is not None:
                ax.scatter(X[:, 0], np.asarray(labels, dtype=float).reshape(len(X), -1)[:, 0], s=6, color="0.5",
                           lw=0, label="data")
            ax.plot(grid[:, 0], y[:, 0], color="C3", lw=1.6, label="network")
            ax.set_xlabel("x")
            ax.legend(frameon=False)
            return _save(fig, path)
        pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-9
        lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
        g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
        y = network_output(bp, parameters, np.column_stack([g0.ravel(), g1.ravel()]))
        if y.shape[1] == 1:
            value, level = _probability(loss_fn, y[:, 0])
            value = value.reshape(g0.shape)
            cs = ax.contourf(g0, g1, value, levels=20, cmap="RdBu_r", alpha=0.75)
            if np.nanmin(value) < level < np.nanmax(value):
                ax.contour(g0, g1, value, levels=[level], colors="k", linewidths=1.2)
            fig.colorbar(cs, ax=ax, shrink=0.85)
        else:
            classes = np.argmax(y, axis=1).reshape(g0.shape)
            k = y.shape[1]
            ax.contourf(g0, g1, classes, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=-0.5, vmax=9.5, alpha=0.35)
            ax.contour(g0, g1, classes, levels=np.arange(k) + 0.5, colors="k", linewidths=0.8)
        if labels is not None:
            lab = np.asarray(labels)
            if lab.ndim == 1 and np.issubdtype(lab.dtype, np.integer):
                ax.scatter(X[:, 0], X[:, 1], c=lab, cmap="tab10", vmin=-0.5, vmax=9.5, s=7, lw=0.2, edgecolors="k")
            else:
                ax.scatter(X[:, 0], X[:, 1], s=5, color="k", lw=0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        return _save(fig, path)
