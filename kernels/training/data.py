"""Training data for symprop: embedded toy generators and ``.npz``/``.csv`` loaders.

Everything here depends on numpy and the standard library only, so the module
imports fast and can be used without compiling any kernels.

A :class:`Dataset` holds a feature matrix ``X`` (``(n, d)`` float64,
C-contiguous) and targets ``y``: ``(n,)`` int64 class labels for
classification, ``(n, k)`` float64 values for regression.
:meth:`Dataset.targets` turns ``y`` into the ``T`` matrix a network with a
given number of outputs trains on.

Data come from three places:

* :func:`make` -- deterministic toy problems (``xor``, ``moons``, ``circles``,
  ``spirals``, ``spirals3``, ``sine``), see :data:`GENERATORS`, and a synthetic
  MNIST-sized image problem (``mnist_like``: 784 features, 10 classes), see
  :data:`IMAGE_GENERATORS`;
* :func:`load` -- ``.npz`` archives (never unpickled) and ``.csv`` files with a
  header row;
* :func:`resolve` -- what a command-line ``--data`` argument means: a
  generator name, else a file path.

Every problem with user data raises :class:`DataError` with a one-line
message naming the file, row and column involved.

Examples
--------
>>> from symprop.kernels.training.data import make
>>> ds = make("xor", n_samples=100, seed=1)
>>> ds
Dataset(name='xor', task='classification', n_samples=100, n_features=2, n_classes=2)
>>> train, val = ds.split(0.2, seed=0)
>>> train.n_samples, val.n_samples
(80, 20)
>>> train.targets(1).shape
(80, 1)
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "GENERATORS",
    "IMAGE_GENERATORS",
    "make",
    "load",
    "resolve",
]

_TASKS = ("classification", "regression")
_EXTENSIONS = (".npz", ".csv")
_DEFAULT_TARGETS = ("label", "y", "target")


class DataError(ValueError):
    """Bad training data: unreadable file, malformed contents or a misuse.

    The message is always a single line naming the file, row and column
    involved (where there is one) and what is wrong.

    Examples
    --------
    >>> from symprop.kernels.training.data import DataError, make
    >>> try:
    ...     make("nope")
    ... except DataError as exc:
    ...     print(exc)
    unknown dataset generator 'nope'; known generators: circles, mnist_like, moons, sine, spirals, spirals3, xor
    """


def _one_line(text: object, limit: int = 200) -> str:
    """Collapse ``text`` to a single line of at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _short_repr(value: object, limit: int = 40) -> str:
    r = repr(value)
    return r if len(r) <= limit else r[: limit - 4] + "...'"


# ---------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A feature matrix with classification labels or regression targets.

    Arrays are normalised on construction: ``X`` becomes a C-contiguous
    ``(n, d)`` float64 array; classification ``y`` a C-contiguous ``(n,)``
    int64 array of labels in ``0 .. n_classes - 1``; regression ``y`` a
    C-contiguous ``(n, k)`` float64 array (a 1-D regression ``y`` is taken as
    one column).  All values must be finite.

    Parameters
    ----------
    X : numpy.ndarray
        Features, shape ``(n, d)``.
    y : numpy.ndarray
        Labels ``(n,)`` (classification) or targets ``(n, k)`` (regression).
    task : {"classification", "regression"}
        What ``y`` holds.
    n_classes : int
        Number of classes (at least 1) for classification, ``0`` for
        regression.
    name : str
        A label for messages and reports.

    Raises
    ------
    DataError
        If shapes, dtypes, values or ``n_classes`` are inconsistent.

    Examples
    --------
    >>> import numpy as np
    >>> from symprop.kernels.training.data import Dataset
    >>> ds = Dataset(np.zeros((3, 2)), np.array([0, 1, 1]), "classification", 2, "tiny")
    >>> ds.n_samples, ds.n_features, ds.X.dtype, ds.y.dtype
    (3, 2, dtype('float64'), dtype('int64'))
    """

    X: np.ndarray
    y: np.ndarray
    task: str
    n_classes: int
    name: str

    def __post_init__(self) -> None:
        name = str(self.name)
        if self.task not in _TASKS:
            raise DataError(
                f"dataset {name!r}: task must be 'classification' or 'regression', "
                f"not {_short_repr(self.task)}"
            )
        X = np.asarray(self.X)
        if X.ndim != 2:
            raise DataError(f"dataset {name!r}: X must be 2-D (n, d), got shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise DataError(f"dataset {name!r}: X must be numeric, got dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=np.float64)
        if not np.all(np.isfinite(X)):
            r, c = np.argwhere(~np.isfinite(X))[0]
            raise DataError(f"dataset {name!r}: X[{r}, {c}] is {X[r, c]}, values must be finite")

        y = np.asarray(self.y)
        if y.dtype.kind not in "biuf":
            raise DataError(f"dataset {name!r}: y must be numeric, got dtype {y.dtype}")
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, numbers.Integral):
            raise DataError(f"dataset {name!r}: n_classes must be an int, not {_short_repr(self.n_classes)}")
        n_classes = int(self.n_classes)

        if self.task == "classification":
            if y.ndim != 1:
                raise DataError(
                    f"dataset {name!r}: classification y must be 1-D (n,) labels, got shape {y.shape}"
                )
            if n_classes < 1:
                raise DataError(f"dataset {name!r}: classification needs n_classes >= 1, got {n_classes}")
            bad = ~np.isfinite(y) | (y != np.round(y)) | (y < 0) | (y >= n_classes) if y.size else None
            if bad is not None and bad.any():
                r = int(np.argmax(bad))
                raise DataError(
                    f"dataset {name!r}: y[{r}] = {y[r]} is not a class label in 0..{n_classes - 1}"
                )
            y = np.ascontiguousarray(y, dtype=np.int64)
        else:
            if n_classes != 0:
                raise DataError(f"dataset {name!r}: regression needs n_classes == 0, got {n_classes}")
            if y.ndim == 1:
                y = y.reshape(-1, 1)
            if y.ndim != 2:
                raise DataError(
                    f"dataset {name!r}: regression y must be 2-D (n, k), got shape {y.shape}"
                )
            y = np.ascontiguousarray(y, dtype=np.float64)
            if not np.all(np.isfinite(y)):
                r, c = np.argwhere(~np.isfinite(y))[0]
                raise DataError(f"dataset {name!r}: y[{r}, {c}] is {y[r, c]}, values must be finite")

        if y.shape[0] != X.shape[0]:
            raise DataError(
                f"dataset {name!r}: X has {X.shape[0]} rows but y has {y.shape[0]}"
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "n_classes", n_classes)
        object.__setattr__(self, "name", name)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_samples={self.n_samples}, "
            f"n_features={self.n_features}, n_classes={self.n_classes})"
        )

    @property
    def n_samples(self) -> int:
        """Number of rows ``n``.

        Examples
        --------
        >>> from symprop.kernels.training.data import make
        >>> make("sine", n_samples=7).n_samples
        7
        """
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns ``d``.

        Examples
        --------
        >>> from symprop.kernels.training.data import make
        >>> make("moons").n_features
        2
        """
        return int(self.X.shape[1])

    def targets(self, n_outputs: int) -> np.ndarray:
        """Return the target matrix ``T`` for a network with ``n_outputs`` outputs.

        Parameters
        ----------
        n_outputs : int
            Width of the network's output layer.

        Returns
        -------
        numpy.ndarray
            A new C-contiguous float64 array of shape ``(n, n_outputs)``:

            * classification, ``n_outputs == 1`` and 2 classes: the labels as
              a 0/1 column;
            * classification, ``n_outputs == n_classes``: one-hot rows;
            * regression, ``n_outputs == y.shape[1]``: a copy of ``y``.

        Raises
        ------
        DataError
            For any other combination, saying which output widths would fit.

        Examples
        --------
        >>> import numpy as np
        >>> from symprop.kernels.training.data import Dataset
        >>> ds = Dataset(np.zeros((3, 1)), np.array([0, 2, 1]), "classification", 3, "abc")
        >>> ds.targets(3)
        array([[1., 0., 0.],
               [0., 0., 1.],
               [0., 1., 0.]])
        >>> ds.targets(1)
        Traceback (most recent call last):
        ...
        symprop.kernels.training.data.DataError: dataset 'abc' has 3 classes: a network for it needs 3 outputs (one-hot), not 1
        """
        if isinstance(n_outputs, bool) or not isinstance(n_outputs, numbers.Integral) or n_outputs < 1:
            raise DataError(f"n_outputs must be a positive int, not {_short_repr(n_outputs)}")
        n_outputs = int(n_outputs)
        if self.task == "regression":
            k = self.y.shape[1]
            if n_outputs == k:
                return self.y.copy()
            cols = "column" if k == 1 else "columns"
            raise DataError(
                f"dataset {self.name!r} has {k} regression target {cols}: "
                f"a network for it needs {k} output{'s' if k != 1 else ''}, not {n_outputs}"
            )
        if n_outputs == 1 and self.n_classes <= 2:   # a 0/1 column (a file may hold one class only)
            return self.y.astype(np.float64).reshape(-1, 1)
        if n_outputs == self.n_classes:
            T = np.zeros((self.n_samples, self.n_classes), dtype=np.float64)
            T[np.arange(self.n_samples), self.y] = 1.0
            return T
        if self.n_classes == 2:
            fits = "1 output (0/1 column) or 2 outputs (one-hot)"
        else:
            fits = f"{self.n_classes} output{'s' if self.n_classes != 1 else ''} (one-hot)"
        plural = "class" if self.n_classes == 1 else "classes"
        raise DataError(
            f"dataset {self.name!r} has {self.n_classes} {plural}: "
            f"a network for it needs {fits}, not {n_outputs}"
        )

    def split(self, validation: float, seed: int) -> tuple["Dataset", "Dataset"]:
        """Shuffle deterministically and split into training and validation sets.

        Parameters
        ----------
        validation : float
            Fraction of rows for the validation set, in ``[0, 1)``.  The
            validation set gets ``round(n * validation)`` rows, capped so the
            training set keeps at least one row; with ``0`` it is empty.
        seed : int
            Seed for ``numpy.random.default_rng`` that draws the permutation.

        Returns
        -------
        (Dataset, Dataset)
            ``(train, validation)``, disjoint, together holding every row once.
            Both keep ``task`` and ``n_classes``.

        Raises
        ------
        DataError
            If ``validation`` is outside ``[0, 1)`` or ``seed`` is not a
            non-negative int.

        Examples
        --------
        >>> from symprop.kernels.training.data import make
        >>> train, val = make("circles", n_samples=10).split(0.3, seed=4)
        >>> train.n_samples, val.n_samples, val.name
        (7, 3, 'circles:validation')
        """
        if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
            raise DataError(f"validation must be a fraction in [0, 1), not {_short_repr(validation)}")
        validation = float(validation)
        if not (0.0 <= validation < 1.0):
            raise DataError(f"validation must be a fraction in [0, 1), not {validation!r}")
        seed = _check_seed(seed)
        n = self.n_samples
        n_val = min(int(round(n * validation)), max(n - 1, 0))
        perm = np.random.default_rng(seed).permutation(n)
        tr, va = perm[: n - n_val], perm[n - n_val:]
        return (
            Dataset(self.X[tr], self.y[tr], self.task, self.n_classes, f"{self.name}:train"),
            Dataset(self.X[va], self.y[va], self.task, self.n_classes, f"{self.name}:validation"),
        )


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"seed must be a non-negative int, not {_short_repr(seed)}")
    return int(seed)


def _check_args(name: str, n_samples: object, noise: object, default_noise: float, seed: object):
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise DataError(f"{name}: n_samples must be a positive int, not {_short_repr(n_samples)}")
    if noise is None:
        noise = default_noise
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise DataError(f"{name}: noise must be a finite number >= 0, not {_short_repr(noise)}")
    return int(n_samples), float(noise), np.random.default_rng(_check_seed(seed))


def _counts(n: int, k: int) -> list[int]:
    """Split ``n`` into ``k`` counts as evenly as possible."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _finish(name, rng, parts_X, parts_y, n_classes) -> Dataset:
    X = np.concatenate(parts_X, axis=0)
    y = np.concatenate(parts_y, axis=0)
    perm = rng.permutation(X.shape[0])
    return Dataset(X[perm], y[perm], "classification", n_classes, name)


def _xor(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """XOR: four Gaussian blobs (std ``noise``, default 0.25) at ``(+-1, +-1)``.

    Blobs at ``(1, 1)`` and ``(-1, -1)`` are class 0, the other two class 1.
    """
    n, noise, rng = _check_args("xor", n_samples, noise, 0.25, seed)
    centres = [(1.0, 1.0, 0), (-1.0, 1.0, 1), (-1.0, -1.0, 0), (1.0, -1.0, 1)]
    Xs, ys = [], []
    for (cx, cy, label), m in zip(centres, _counts(n, 4)):
        Xs.append(np.array([cx, cy]) + noise * rng.standard_normal((m, 2)))
        ys.append(np.full(m, label, dtype=np.int64))
    return _finish("xor", rng, Xs, ys, 2)


def _moons(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Two interleaving half circles as in scikit-learn's ``make_moons``.

    Class 0 is the upper half circle of radius 1 about the origin, class 1 the
    lower one about ``(1, 0.5)``; the whole picture is shifted by
    ``(-0.5, -0.25)`` so that it is centred, and Gaussian noise of std
    ``noise`` (default 0.1) is added to every coordinate.
    """
    n, noise, rng = _check_args("moons", n_samples, noise, 0.1, seed)
    m0, m1 = _counts(n, 2)
    t0 = rng.uniform(0.0, np.pi, m0)
    t1 = rng.uniform(0.0, np.pi, m1)
    X0 = np.column_stack([np.cos(t0), np.sin(t0)])
    X1 = np.column_stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)])
    Xs = [X0, X1]
    Xs = [x - np.array([0.5, 0.25]) + noise * rng.standard_normal(x.shape) for x in Xs]
    ys = [np.zeros(m0, dtype=np.int64), np.ones(m1, dtype=np.int64)]
    return _finish("moons", rng, Xs, ys, 2)


def _circles(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Two concentric circles: class 0 of radius 1.5, class 1 of radius 0.75.

    Angles are uniform; Gaussian noise of std ``noise`` (default 0.1) is
    added to every coordinate.
    """
    n, noise, rng = _check_args("circles", n_samples, noise, 0.1, seed)
    Xs, ys = [], []
    for label, (radius, m) in enumerate(zip((1.5, 0.75), _counts(n, 2))):
        t = rng.uniform(0.0, 2.0 * np.pi, m)
        Xs.append(radius * np.column_stack([np.cos(t), np.sin(t)]) + noise * rng.standard_normal((m, 2)))
        ys.append(np.full(m, label, dtype=np.int64))
    return _finish("circles", rng, Xs, ys, 2)


def _spiral_arms(name: str, k: int, n_samples, noise, seed) -> Dataset:
    n, noise, rng = _check_args(name, n_samples, noise, 0.1, seed)
    Xs, ys = [], []
    for label, m in enumerate(_counts(n, k)):
        t = rng.uniform(0.0, 1.0, m)
        r = 0.25 + 2.25 * t
        theta = 3.0 * np.pi * t + 2.0 * np.pi * label / k
        Xs.append(r[:, None] * np.column_stack([np.cos(theta), np.sin(theta)])
                  + noise * rng.standard_normal((m, 2)))
        ys.append(np.full(m, label, dtype=np.int64))
    return _finish(name, rng, Xs, ys, k)


def _spirals(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Two interleaved spirals (1.5 turns, radius 0.25 to 2.5), 2 classes.

    Gaussian noise of std ``noise`` (default 0.1) is added to every coordinate.
    """
    return _spiral_arms("spirals", 2, n_samples, noise, seed)


def _spirals3(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Three interleaved spirals (1.5 turns, radius 0.25 to 2.5), 3 classes.

    Gaussian noise of std ``noise`` (default 0.1) is added to every coordinate.
    """
    return _spiral_arms("spirals3", 3, n_samples, noise, seed)


def _sine(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Regression: ``x ~ U[-pi, pi]``, ``y = sin(x) + noise * N(0, 1)`` (default noise 0.1).

    ``X`` has shape ``(n, 1)`` and ``y`` shape ``(n, 1)``.
    """
    n, noise, rng = _check_args("sine", n_samples, noise, 0.1, seed)
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    y = np.sin(x) + noise * rng.standard_normal((n, 1))
    return Dataset(x, y, "regression", 0, "sine")


def _box_blur(images: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a ``(2 radius + 1)``-wide square around each pixel of ``(k, h, w)`` images (edges wrap)."""
    out = images.copy()
    for axis in (1, 2):
        acc = np.zeros_like(out)
        for shift in range(-radius, radius + 1):
            acc += np.roll(out, shift, axis=axis)
        out = acc / (2 * radius + 1)
    return out


def _mnist_like(*, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Synthetic 28x28 "digits": 784 features in ``[0, 1]``, 10 classes.

    Each class has a prototype: a blurred random image (values rescaled to ``[0, 1]``, drawn
    from ``seed``) on a 32x32 canvas. An example is its class prototype cropped at a random
    offset of up to 4 pixels in each direction (so examples of a class differ by shifts), plus
    Gaussian noise of std ``noise`` (default 0.3), clipped to ``[0, 1]`` and flattened row by
    row. The same sizes as MNIST, for benchmarks and the ``examples/mnist_like.toml`` network;
    not a substitute for real data.
    """
    n, noise, rng = _check_args("mnist_like", n_samples, noise, 0.3, seed)
    side, margin, k = 28, 4, 10
    protos = _box_blur(rng.random((k, side + margin, side + margin)), 3)
    lo = protos.min(axis=(1, 2), keepdims=True)
    hi = protos.max(axis=(1, 2), keepdims=True)
    protos = (protos - lo) / (hi - lo)
    Xs, ys = [], []
    pixels = np.arange(side)
    for label, m in enumerate(_counts(n, k)):
        dy, dx = rng.integers(0, margin + 1, (2, m))
        rows = (dy[:, None] + pixels)[:, :, None]
        cols = (dx[:, None] + pixels)[:, None, :]
        images = protos[label][rows, cols] + noise * rng.standard_normal((m, side, side))
        Xs.append(np.clip(images, 0.0, 1.0).reshape(m, side * side))
        ys.append(np.full(m, label, dtype=np.int64))
    return _finish("mnist_like", rng, Xs, ys, k)


#: Generator name -> ``generator(n_samples=..., noise=..., seed=...) -> Dataset``.
#: ``noise=None`` means the generator's default noise level.
GENERATORS: dict[str, Callable[..., Dataset]] = {
    "xor": _xor,
    "moons": _moons,
    "circles": _circles,
    "spirals": _spirals,
    "spirals3": _spirals3,
    "sine": _sine,
}

#: Generators of image-sized problems (not 2-D toys): the same interface as :data:`GENERATORS`,
#: known to :func:`make` and :func:`resolve` too.
IMAGE_GENERATORS: dict[str, Callable[..., Dataset]] = {
    "mnist_like": _mnist_like,
}


def _generator(key) -> Callable[..., Dataset] | None:
    if not isinstance(key, str):
        return None
    return GENERATORS.get(key) or IMAGE_GENERATORS.get(key)


def _known() -> str:
    return ", ".join(sorted({**GENERATORS, **IMAGE_GENERATORS}))


def make(name: str, n_samples: int = 512, noise: float | None = None, seed: int = 0) -> Dataset:
    """Generate one of the embedded toy datasets.

    Parameters
    ----------
    name : str
        One of the keys of :data:`GENERATORS`:

        * ``"xor"`` -- four Gaussian blobs at the corners ``(+-1, +-1)``,
          2 classes (opposite corners share a class);
        * ``"moons"`` -- two interleaving half circles, 2 classes;
        * ``"circles"`` -- two concentric circles (radii 1.5 and 0.75), 2 classes;
        * ``"spirals"`` / ``"spirals3"`` -- 2 / 3 interleaved spirals;
        * ``"sine"`` -- regression, ``y = sin(x) + noise``, ``x`` in
          ``[-pi, pi]``; ``X`` and ``y`` are ``(n, 1)``;
        * ``"mnist_like"`` -- 784 features (28x28 synthetic images in
          ``[0, 1]``), 10 classes (:data:`IMAGE_GENERATORS`).
    n_samples : int, default 512
        Number of rows.  Classes get counts differing by at most one.
    noise : float or None, default None
        Standard deviation of the Gaussian noise; ``None`` uses the
        generator's default.
    seed : int, default 0
        Seed for ``numpy.random.default_rng``; equal seeds give equal data.

    Returns
    -------
    Dataset
        Features have magnitude of at most about 3; rows are shuffled.

    Raises
    ------
    DataError
        For an unknown name (the message lists the known ones) or bad
        ``n_samples``, ``noise`` or ``seed``.

    Examples
    --------
    >>> from symprop.kernels.training.data import make
    >>> ds = make("spirals3", n_samples=30, seed=2)
    >>> ds.X.shape, ds.n_classes, [int(c) for c in np.bincount(ds.y)]
    ((30, 2), 3, [10, 10, 10])
    >>> make("sine", n_samples=5).y.shape
    (5, 1)
    >>> ds = make("mnist_like", n_samples=20)
    >>> ds.X.shape, ds.n_classes, bool(ds.X.min() >= 0 and ds.X.max() <= 1)
    ((20, 784), 10, True)
    """
    key = name.strip().lower() if isinstance(name, str) else name
    gen = _generator(key)
    if gen is None:
        raise DataError(f"unknown dataset generator {_short_repr(name)}; known generators: {_known()}")
    return gen(n_samples=n_samples, noise=noise, seed=seed)


# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------


#: The largest class label a data file may hold.
_MAX_LABEL = 2 ** 31 - 1


def _labels_from(values: np.ndarray, where: Callable[[int], str], origin: str) -> tuple[np.ndarray, int]:
    """Check 1-D ``values`` are non-negative integers; return (int64 labels, n_classes).

    ``where(i)`` describes row index ``i`` for messages.
    """
    if values.dtype.kind == "b":
        values = values.astype(np.int64)
    if values.dtype.kind == "f":
        bad = (values < 0) | (values != np.floor(values))
    else:
        bad = values < 0
    bad |= values > _MAX_LABEL      # (a float such as 1e300 would overflow int64)
    if bad.any():
        i = int(np.argmax(bad))
        v = values[i]
        v = v.item() if hasattr(v, "item") else v
        raise DataError(
            f"{where(i)}: label {v!r} is not an integer in 0..{_MAX_LABEL} ({origin})"
        )
    labels = values.astype(np.int64)
    return labels, int(labels.max()) + 1


def _load_npz(path: str, target: str | None) -> Dataset:
    ykey = "y" if target is None else target
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as .npz ({_one_line(exc)})") from None
    except Exception as exc:  # BadZipFile, EOFError, OSError, ...
        raise DataError(f"{path}: cannot read as .npz archive ({type(exc).__name__}: {_one_line(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive (it holds a single .npy array); save with np.savez(path, X=..., y=...)")
    with archive:
        keys = list(archive.files)
        found = ", ".join(repr(k) for k in keys) if keys else "none"
        arrays = {}
        for key in ("X", ykey):
            if key not in keys:
                raise DataError(f"{path}: missing array {key!r} (arrays found: {found})")
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "pickle" in str(exc).lower():
                    raise DataError(
                        f"{path}: array {key!r} is a pickled object array; refusing to unpickle it "
                        f"(save plain numeric arrays)"
                    ) from None
                raise DataError(f"{path}: cannot read array {key!r} ({_one_line(exc)})") from None
            except Exception as exc:
                raise DataError(f"{path}: cannot read array {key!r} ({type(exc).__name__}: {_one_line(exc)})") from None
    X, y = arrays["X"], arrays[ykey]

    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: array 'X' has dtype {X.dtype}; expected a numeric array")
    if X.ndim != 2:
        raise DataError(f"{path}: array 'X' has shape {X.shape}; expected 2-D (n_samples, n_features)")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{path}: array {ykey!r} has dtype {y.dtype}; expected a numeric array")
    if y.ndim not in (1, 2):
        raise DataError(
            f"{path}: array {ykey!r} has shape {y.shape}; expected 1-D labels (n,) or 2-D regression targets (n, k)"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: array 'X' is empty (shape {X.shape})")
    if y.ndim == 2 and y.shape[1] == 0:
        raise DataError(f"{path}: array {ykey!r} is empty (shape {y.shape})")
    if y.shape[0] != X.shape[0]:
        raise DataError(f"{path}: row-count mismatch: 'X' has {X.shape[0]} rows but {ykey!r} has {y.shape[0]}")

    Xf = np.ascontiguousarray(X, dtype=np.float64)
    if not np.all(np.isfinite(Xf)):
        r, c = (int(v) for v in np.argwhere(~np.isfinite(Xf))[0])
        raise DataError(f"{path}: X[{r}, {c}] (row {r}, column {c}, counted from 0) is {Xf[r, c]}; values must be finite")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        bad = np.argwhere(~np.isfinite(y))[0]
        idx = ", ".join(str(int(v)) for v in bad)
        raise DataError(f"{path}: {ykey}[{idx}] (row {int(bad[0])}, counted from 0) is {y[tuple(bad)]}; values must be finite")

    name = os.path.splitext(os.path.basename(path))[0] or path
    if y.ndim == 1:
        labels, n_classes = _labels_from(
            y, lambda i: f"{path}: {ykey}[{i}] (row {i}, counted from 0)",
            "a 1-D y holds class labels 0, 1, 2, ...; store regression targets as a 2-D (n, k) float array",
        )
        return Dataset(Xf, labels, "classification", n_classes, name)
    return Dataset(Xf, y.astype(np.float64), "regression", 0, name)


def _load_csv(path: str, target: str | None) -> Dataset:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = None
            header_line = 0
            rows: list[tuple[int, list[str]]] = []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank line
                if header is None:
                    header, header_line = [cell.strip() for cell in row], reader.line_num
                else:
                    rows.append((reader.line_num, row))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({_one_line(exc)})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({_one_line(exc)})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({_one_line(exc.strerror or exc)})") from None

    if header is None:
        raise DataError(f"{path}: empty file; expected a header row naming the columns, then data rows")
    if all(_is_float(cell) for cell in header):
        raise DataError(
            f"{path}: row {header_line} looks like data; a header row naming the columns is required"
        )
    for j, col in enumerate(header):
        if not col:
            raise DataError(f"{path}: header row {header_line}: column {j + 1} has an empty name")
    seen = set()
    for col in header:
        if col in seen:
            raise DataError(f"{path}: header row {header_line}: duplicate column name {col!r}")
        seen.add(col)
    columns = ", ".join(repr(c) for c in header)
    if target is None:
        target_col = next((c for c in _DEFAULT_TARGETS if c in seen), None)
        if target_col is None:
            raise DataError(
                f"{path}: no label column named 'label', 'y' or 'target'; pick one with target= "
                f"(columns: {columns})"
            )
    else:
        target_col = str(target)
        if target_col not in seen:
            raise DataError(f"{path}: missing target column {target_col!r} (columns: {columns})")
    if len(header) < 2:
        raise DataError(f"{path}: only the target column {target_col!r}; at least one feature column is required")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")

    width = len(header)
    data = np.empty((len(rows), width), dtype=np.float64)
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{path}: row {line} has {len(row)} cells but the header has {width} (ragged rows)"
            )
        for j, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                what = "empty cell" if not cell.strip() else f"non-numeric cell {_short_repr(cell)}"
                raise DataError(f"{path}: row {line}, column {header[j]!r}: {what}") from None
            if not math.isfinite(value):
                raise DataError(f"{path}: row {line}, column {header[j]!r}: {value} is not a finite number")
            data[i, j] = value

    t = header.index(target_col)
    yv = data[:, t]
    X = np.ascontiguousarray(np.delete(data, t, axis=1))
    name = os.path.splitext(os.path.basename(path))[0] or path
    lines = [line for line, _ in rows]
    if np.all(yv == np.floor(yv)):
        labels, n_classes = _labels_from(
            yv, lambda i: f"{path}: row {lines[i]}, column {target_col!r}",
            "an integer-valued target column holds class labels 0, 1, 2, ...",
        )
        return Dataset(X, labels, "classification", n_classes, name)
    return Dataset(X, yv.reshape(-1, 1), "regression", 0, name)


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def load(path: str | os.PathLike, target: str | None = None) -> Dataset:
    """Load a dataset from a ``.npz`` archive or a ``.csv`` file.

    ``.npz``
        Read with ``np.load(path, allow_pickle=False)``: object arrays are
        refused, never unpickled.  Arrays ``"X"`` (2-D numeric, ``(n, d)``)
        and ``"y"`` (or the array named by ``target``) are required.  A 1-D
        ``y`` holds class labels, which must be non-negative integers
        (``n_classes = max + 1``); a 2-D ``y`` holds regression targets
        ``(n, k)``.
    ``.csv``
        A header row naming the columns is required.  ``target`` names the
        label column; by default the first of ``"label"``, ``"y"``,
        ``"target"`` that exists.  Every other column is a feature.  Row
        numbers in messages are file line numbers (the header is row 1).
        An all-integer target column means classification (labels must be
        non-negative), anything else regression with ``y`` of shape
        ``(n, 1)``.

    Parameters
    ----------
    path : str or os.PathLike
        File to read; the extension (case-insensitive) picks the format.
    target : str, optional
        Label column (``.csv``) or label array (``.npz``, default ``"y"``).

    Returns
    -------
    Dataset
        Named after the file's stem.

    Raises
    ------
    DataError
        For a missing or unreadable file, an unknown extension, an empty
        file, missing arrays or columns, non-numeric cells, NaN or Inf
        values, ragged rows, shape or row-count mismatches, pickled arrays
        and bad labels.  The message names the file, and the row and column
        where there is one.

    Examples
    --------
    >>> import os, tempfile
    >>> from symprop.kernels.training.data import load
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "points.csv")
    >>> with open(p, "w") as fh:
    ...     _ = fh.write("a,b,label\\n0.5,1.5,1\\n-1,2,0\\n")
    >>> ds = load(p)
    >>> ds
    Dataset(name='points', task='classification', n_samples=2, n_features=2, n_classes=2)
    >>> ds.X.tolist(), ds.y.tolist()
    ([[0.5, 1.5], [-1.0, 2.0]], [1, 0])
    >>> with open(p, "w") as fh:
    ...     _ = fh.write("a,b,label\\n0.5,oops,1\\n")
    >>> load(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symprop.kernels.training.data.DataError: ...points.csv: row 2, column 'b': non-numeric cell 'oops'
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise DataError(f"path must be a str or os.PathLike, not {type(path).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        shown = repr(ext) if ext else "no extension"
        raise DataError(f"{path}: unknown file type ({shown}); expected a .npz or .csv file")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a {ext} file")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({_one_line(exc.strerror or exc)})") from None
    if size == 0:
        raise DataError(f"{path}: empty file")
    if ext == ".npz":
        return _load_npz(path, target)
    return _load_csv(path, target)


def resolve(spec: str, n_samples: int = 512, seed: int = 0) -> Dataset:
    """Interpret a command-line ``--data`` argument.

    A generator name (see :data:`GENERATORS`, case-insensitive) wins; anything
    else is taken as the path of a ``.npz`` or ``.csv`` file.

    Parameters
    ----------
    spec : str
        Generator name or file path.
    n_samples : int, default 512
        Rows to generate (ignored for files).
    seed : int, default 0
        Generator seed (ignored for files).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        If ``spec`` is neither a generator name nor a loadable file; when it
        does not look like a file at all the message lists the generators.

    Examples
    --------
    >>> from symprop.kernels.training.data import resolve
    >>> resolve("moons", n_samples=64)
    Dataset(name='moons', task='classification', n_samples=64, n_features=2, n_classes=2)
    >>> resolve("mooons")
    Traceback (most recent call last):
    ...
    symprop.kernels.training.data.DataError: unknown dataset 'mooons': not a generator (circles, mnist_like, moons, sine, spirals, spirals3, xor) and not a .npz or .csv file
    """
    if isinstance(spec, os.PathLike):
        return load(spec)
    if not isinstance(spec, str):
        raise DataError(f"dataset spec must be a str, not {type(spec).__name__}")
    key = spec.strip().lower()
    if _generator(key) is not None:
        return make(key, n_samples=n_samples, seed=seed)
    ext = os.path.splitext(spec)[1].lower()
    if ext not in _EXTENSIONS and not os.path.exists(spec):
        raise DataError(
            f"unknown dataset {_short_repr(spec)}: not a generator ({_known()}) "
            f"and not a .npz or .csv file"
        )
    return load(spec)
