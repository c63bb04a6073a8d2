"""Training: shuffled mini-batches through the fused compiled epoch, metrics, checkpoints.

Each epoch is one call into compiled code (:meth:`CompiledModel.epoch_function`): forward,
backward and the optimizer update for every mini-batch, with no Python per step. Python only
shuffles (deterministically from the seed and the epoch number), computes metrics, shows a
progress bar (tqdm; quiet when not on a terminal or with ``progress=False``) and writes
checkpoints.

Checkpoints are ``.npz`` files (never pickle) written atomically (temporary file, then
``os.replace``): parameters, optimizer state, step and epoch counters and the history so far.
``resume=True`` continues from one. A step whose loss, any gradient, or any updated parameter or
optimizer-state value is not finite stops training with a clear message: that update is not
applied (the parameters and state are those after the last good step) and the checkpoint on
disk holds the last good epoch (the starting point when the first epoch fails: it is written
then).

Examples
--------
>>> from symprop import derive, kernels
>>> from symprop.kernels.training.data import make
>>> data = make("moons", n_samples=256, seed=0)
>>> model = kernels.compile(derive.mlp([2, 8, 1], activation="tanh", loss="bce_logits"))  # doctest: +SKIP
>>> history = kernels.training.loop(model, data.X, data.targets(1), epochs=5, progress=False)       # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import numbers
import os
import sys
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from symprop.derive.atomic import atomic_file, check_writable

__all__ = ["train", "History", "save_checkpoint", "load_checkpoint", "save_parameters", "predict", "accuracy"]

CHECKPOINT_VERSION = 1


@dataclass
class History:
    """Per-epoch metrics. ``stopped`` says why training ended early (None: ran all epochs)."""

    epochs: list[dict] = field(default_factory=list)
    stopped: str | None = None
    optimizer: str = ""
    seconds: float = 0.0

    def column(self, key: str) -> list:
        return [e.get(key) for e in self.epochs]

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_json(self) -> str:
        """Strict JSON: a NaN or infinite value (a diverged epoch's loss) is written as null."""
        return json.dumps(_finite_or_none(asdict(self)), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "History":
        data = json.loads(text)
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the history as JSON (atomically)."""
        with atomic_file(path, "w") as f:
            f.write(self.to_json() + "\n")


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` as the uncompressed ``.npz`` that ``np.savez`` makes (one
    ``<name>.npy`` member each, no pickle), atomically. Names are archive members, never keyword
    arguments: ``np.savez(f, **arrays)`` lost a parameter named ``allow_pickle`` and failed on
    one named ``file``."""
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


# --- predictions and metrics -----------------------------------------------------------------------

def output_node(model) -> str:
    """The node whose value the loss compares with the target (the network's prediction)."""
    info = model.info
    return info.args[info.loss]["y"]


def predict(model, X) -> np.ndarray:
    """The network's output (the loss's ``y`` argument) for the rows of ``X``, float64.

    Computed by the derived forward equations (:func:`derive.evaluation.forward_values`) with the
    model's current parameters.
    """
    from symprop.derive.evaluation import forward_values

    bp = model.backprop
    sig = model.signature
    values = {sig.inputs[0]: np.asarray(X, dtype=np.float64)}
    values.update({p: np.asarray(v, dtype=np.float64) for p, v in model.parameters.items()})
    out = output_node(model)
    return np.asarray(forward_values(bp, values, until=out)[out], dtype=np.float64)


def accuracy(model, X, T) -> float | None:
    """Classification accuracy, or None for regression-looking targets.

    Classes are the argmax of the output for several outputs; for one output the threshold is
    0 for logits (``bce_logits``) and 0.5 otherwise, with targets that are all 0 or 1.
    """
    T = np.asarray(T)
    if T.ndim != 2:
        return None
    y = predict(model, X)
    if T.shape[1] > 1:
        if not np.all((T == 0) | (T == 1)) or not np.allclose(T.sum(axis=1), 1):
            return None
        return float(np.mean(np.argmax(y, axis=1) == np.argmax(T, axis=1)))
    if not np.all((T == 0) | (T == 1)):
        return None
    loss_fn = model.net.nodes[model.info.loss].get("function")
    threshold = 0.0 if loss_fn == "bce_logits" else 0.5
    return float(np.mean((y[:, 0] > threshold) == (T[:, 0] == 1)))


# --- checkpoints -------------------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model, state: Mapping[str, Mapping[str, np.ndarray]],
                    step: int, epoch: int, history: History,
                    parameters: Mapping[str, np.ndarray] | None = None) -> None:
    """Write parameters (``model.parameters`` unless ``parameters`` is given), optimizer state and
    counters to ``path`` (``.npz``) atomically."""
    path = Path(path)
    parameters = model.parameters if parameters is None else parameters
    arrays = {f"param/{p}": v for p, v in parameters.items()}
    for p, slots in state.items():
        for s, v in slots.items():
            arrays[f"state/{p}/{s}"] = v
    arrays["meta"] = np.array(json.dumps({"version": CHECKPOINT_VERSION, "step": int(step), "epoch": int(epoch),
                                          "dtype": model.dtype.name, "history": json.loads(history.to_json())}))
    _write_npz(path, arrays)


def save_parameters(path: str | os.PathLike, parameters: Mapping[str, np.ndarray]) -> None:
    """Write ``name -> array`` to an ``.npz`` file atomically (no pickle)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: parameters are saved as .npz")
    _write_npz(path, {p: np.asarray(v) for p, v in parameters.items()})


def load_checkpoint(path: str | os.PathLike, model) -> tuple[dict, int, int, History]:
    """Read a checkpoint into ``model.parameters``; returns (state, step, epoch, history).

    Raises ValueError naming the file and the problem for a missing, corrupt or mismatched file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz checkpoint ({e})") from None
    step, epoch, history, dtype = _checkpoint_meta(path, arrays.pop("meta", None))
    if dtype != model.dtype.name:
        raise ValueError(f"{path}: the checkpoint holds {dtype} values; this model is {model.dtype.name}")
    params, state = {}, {}
    for key, value in arrays.items():
        kind, _, rest = key.partition("/")
        if kind == "param":
            params[rest] = value
        elif kind == "state":
            p, _, slot = rest.rpartition("/")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{path}: optimizer state {slot!r} of parameter {p!r} holds NaN or Inf")
            state.setdefault(p, {})[slot] = np.ascontiguousarray(value, dtype=model.dtype)
    expected = set(model.parameters)
    if set(params) != expected:
        raise ValueError(f"{path}: checkpoint parameters {sorted(params)} do not match the network's {sorted(expected)}")
    for p, value in params.items():
        if value.shape != model.parameters[p].shape:
            raise ValueError(f"{path}: parameter {p!r} has shape {value.shape} in the checkpoint, "
                             f"{model.parameters[p].shape} in the network")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{path}: parameter {p!r} holds NaN or Inf")
        model.parameters[p] = np.ascontiguousarray(value, dtype=model.dtype)
    return state, step, epoch, history


def _checkpoint_meta(path: Path, meta) -> tuple[int, int, History, str]:
    """``(step, epoch, history, dtype)`` from a checkpoint's metadata array; ValueError naming the file
    and the problem for anything :func:`save_checkpoint` would not have written."""
    try:
        meta = json.loads(str(meta)) if meta is not None and meta.shape == () else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: not a symprop checkpoint (no metadata)")
    if meta.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint format {meta.get('version')!r}; this symprop reads {CHECKPOINT_VERSION}")
    counters = [meta.get("step"), meta.get("epoch")]
    for key, value in zip(("step", "epoch"), counters):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{path}: the checkpoint's {key!r} must be a whole number >= 0, got {value!r}")
    try:
        history = History(**meta["history"])
        ok = (isinstance(history.epochs, list) and all(isinstance(e, dict) for e in history.epochs)
              and isinstance(history.stopped, (str, type(None))) and isinstance(history.optimizer, str)
              and isinstance(history.seconds, (int, float)))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{path}: the checkpoint's history is missing or malformed")
    return counters[0], counters[1], history, meta.get("dtype")


# --- the loop ---------------------------------------------------------------------------------------

def _count(name: str, value, least: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _check_data(model, X, T, what: str) -> tuple[np.ndarray, np.ndarray]:
    sig = model.signature
    X = model._finite(f"{what} input", sig.inputs[0], X, model._batch_array(f"{what} input", sig.inputs[0], X))
    T = model._finite(f"{what} target", sig.targets[0], T, model._batch_array(f"{what} target", sig.targets[0], T))
    if X.shape[0] != T.shape[0]:
        raise ValueError(f"{what} data: {X.shape[0]} input rows but {T.shape[0]} target rows")
    return X, T


def train(model, X, T, *, epochs: int = 10, batch_size: int = 32, optimizer=None, seed: int = 0,
          validation: float = 0.0, X_val=None, T_val=None, progress: bool | None = None,
          checkpoint: str | os.PathLike | None = None, resume: bool = False,
          metrics: bool = True) -> History:
    """Train ``model`` in place on rows ``X`` with targets ``T``; returns the :class:`History`.

    ``optimizer`` defaults to ``kernels.training.optim.Adam(lr=1e-3)``. ``validation`` is the fraction of
    rows held out (shuffled with ``seed``) unless ``X_val``/``T_val`` are given. ``checkpoint``
    names an ``.npz`` file written after every epoch; with ``resume=True`` training continues
    from it when it exists. Deterministic under ``seed``.
    """
    from symprop.kernels.training.optim import Adam, Optimizer

    optimizer = Adam(lr=1e-3) if optimizer is None else optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a kernels.training.optim.Optimizer, got {type(optimizer).__name__}")
    epochs = _count("epochs", epochs, 0)
    batch_size = _count("batch_size", batch_size, 1)
    if (not isinstance(validation, numbers.Real) or isinstance(validation, bool)
            or not (validation == 0 or 0 < validation < 1)):
        raise ValueError(f"validation must be 0 or a fraction in (0, 1), got {validation!r}")
    if resume and checkpoint is None:
        raise ValueError("resume needs a checkpoint to resume from")
    if checkpoint is not None:
        check_writable(checkpoint)
    X, T = _check_data(model, X, T, "training")
    if X_val is None and validation:
        order = np.random.default_rng([seed, 0x5EED]).permutation(X.shape[0])
        n_val = max(1, int(round(validation * X.shape[0])))
        if n_val >= X.shape[0]:
            raise ValueError("validation split leaves no training rows")
        X_val, T_val = X[order[:n_val]], T[order[:n_val]]
        X, T = X[order[n_val:]], T[order[n_val:]]
    if X_val is not None:
        X_val, T_val = _check_data(model, X_val, T_val, "validation")

    for w in model.warnings:
        warnings.warn(w, RuntimeWarning, stacklevel=2)

    state = model.init_state(optimizer)
    step, start_epoch, history = 0, 0, History(optimizer=type(optimizer).__name__)
    kept = None   # (epoch, step) the checkpoint file holds from this run: resumed from, or written
    if checkpoint is not None and resume and Path(checkpoint).exists():
        loaded_state, step, start_epoch, history = load_checkpoint(checkpoint, model)
        slots = {tuple(sorted(slots)) for slots in loaded_state.values()} or {()}
        if history.optimizer != type(optimizer).__name__ or slots != {tuple(sorted(optimizer.state))}:
            raise ValueError(f"{checkpoint}: written by {history.optimizer or 'another'} training (state "
                             f"{', '.join(next(iter(slots))) or 'none'}); resume it with the same optimizer, "
                             f"not {type(optimizer).__name__}")
        for p, slots in loaded_state.items():
            state.setdefault(p, {}).update(slots)
        kept = (start_epoch, step)
    # not resumed: the starting point, written as the checkpoint if the first epoch fails (a copy
    # kept until the first checkpoint is written, rather than one more file write per run)
    start = None if checkpoint is None or kept is not None else (
        {p: v.copy() for p, v in model.parameters.items()},
        {p: {s: v.copy() for s, v in slots.items()} for p, slots in state.items()})

    run = model.epoch_function(optimizer)
    from tqdm import tqdm

    bar = tqdm(range(start_epoch, epochs), disable=(None if progress is None else not progress),
               desc="training", unit="epoch", file=sys.stderr, leave=False)
    began = time.perf_counter()
    n = X.shape[0]
    n_batches = math.ceil(n / batch_size)
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
            losses, done = run(X, T, order, batch_size, state, step)
            step += done
            row: dict = {"epoch": epoch + 1, "steps": step, "seconds": time.perf_counter() - t0}
            if done < n_batches:
                bad = float(losses[done])
                where = f"epoch {epoch + 1}, batch {done + 1}"
                if math.isfinite(bad):   # run found a gradient or a new value not finite and undid the update
                    what = (f"at {where} a gradient or an updated parameter or optimizer state was NaN or Inf "
                            f"(the loss was {bad:.6g}); the update was not applied")
                else:
                    what = f"the loss became {bad} at {where}; its update was not applied"
                if checkpoint is not None and kept is None:   # the first epoch failed: the starting point
                    save_checkpoint(checkpoint, model, start[1], 0, 0, History(optimizer=history.optimizer),
                                    parameters=start[0])
                    kept = (0, 0)
                held = (f"; the checkpoint {checkpoint} holds the last good epoch ({kept[0]}, step {kept[1]}"
                        + (": the starting point)" if kept[1] == 0 else ")") if checkpoint is not None else "")
                history.stopped = f"diverged: {what}; parameters are those of the last good step ({step}){held}"
                history.epochs.append({**row, "loss": bad})
                break
            sizes = np.minimum(batch_size, n - np.arange(n_batches) * batch_size)
            row["loss"] = float(np.dot(losses[:done], sizes) / n)
            if metrics:
                acc = accuracy(model, X, T)
                if acc is not None:
                    row["accuracy"] = acc
                if X_val is not None:
                    row["val_loss"] = model.loss_and_grads(X_val, T_val)[0]
                    val_acc = accuracy(model, X_val, T_val)
                    if val_acc is not None:
                        row["val_accuracy"] = val_acc
            history.epochs.append(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("loss", "val_loss", "accuracy")})
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, state, step, epoch + 1, history)
                kept, start = (epoch + 1, step), None
    finally:
        bar.close()
    history.seconds += time.perf_counter() - began
    return history
