"""Tests for kernels.training.data: generators, Dataset, and the .npz/.csv loaders."""

from __future__ import annotations

import csv
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from symprop.kernels.training.data import GENERATORS, DataError, Dataset, load, make, resolve

CLASSIFIERS = ["xor", "moons", "circles", "spirals", "spirals3"]


def raises_one_line(fn, *args, match: str, **kwargs) -> str:
    """Call fn, expect a DataError whose single-line message matches `match`."""
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def write_csv(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return path


# ---------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------


def test_generator_names():
    assert set(GENERATORS) == {"xor", "moons", "circles", "spirals", "spirals3", "sine"}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_shapes_and_dtypes(name):
    ds = make(name, n_samples=101, seed=5)
    assert ds.name == name
    assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert ds.X.shape[0] == ds.n_samples == 101
    assert np.all(np.isfinite(ds.X))
    if name == "sine":
        assert ds.task == "regression" and ds.n_classes == 0
        assert ds.X.shape == (101, 1) and ds.y.shape == (101, 1)
        assert ds.y.dtype == np.float64 and ds.y.flags.c_contiguous
    else:
        assert ds.task == "classification"
        assert ds.n_features == 2
        assert ds.y.shape == (101,) and ds.y.dtype == np.int64
        assert ds.n_classes == (3 if name == "spirals3" else 2)
        assert ds.y.min() >= 0 and ds.y.max() < ds.n_classes


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_deterministic_under_seed_and_different_across_seeds(name):
    a, b = make(name, n_samples=64, seed=11), make(name, n_samples=64, seed=11)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    c = make(name, n_samples=64, seed=12)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_scale_is_roughly_standardised(name):
    ds = make(name, n_samples=2000, seed=0)
    assert np.abs(ds.X).max() < 3.5
    assert np.all(ds.X.std(axis=0) > 0.3)
    assert np.all(np.abs(ds.X.mean(axis=0)) < 0.5)


@pytest.mark.parametrize("name", CLASSIFIERS)
@pytest.mark.parametrize("n", [1, 7, 100, 513])
def test_class_balance(name, n):
    ds = make(name, n_samples=n, seed=2)
    counts = np.bincount(ds.y, minlength=ds.n_classes)
    assert counts.sum() == n
    assert counts.max() - counts.min() <= (2 if name == "xor" else 1)


def test_rows_are_shuffled():
    y = make("moons", n_samples=200, seed=0).y
    assert np.count_nonzero(np.diff(y)) > 20  # not one block per class


def test_xor_geometry():
    ds = make("xor", n_samples=800, noise=0.1, seed=0)
    product_sign = np.sign(ds.X[:, 0] * ds.X[:, 1])
    # class 0: same-sign quadrants, class 1: opposite-sign quadrants
    assert np.mean(product_sign[ds.y == 0] > 0) > 0.99
    assert np.mean(product_sign[ds.y == 1] < 0) > 0.99


def test_moons_geometry():
    ds = make("moons", n_samples=1000, noise=0.0, seed=0)
    X0, X1 = ds.X[ds.y == 0], ds.X[ds.y == 1]
    # noiseless: class 0 on the unit circle about (-0.5, -0.25), class 1 about (0.5, 0.25)
    np.testing.assert_allclose(np.hypot(X0[:, 0] + 0.5, X0[:, 1] + 0.25), 1.0)
    np.testing.assert_allclose(np.hypot(X1[:, 0] - 0.5, X1[:, 1] - 0.25), 1.0)
    # upper moon above its centre, lower moon below its centre; upper moon higher on average
    assert np.all(X0[:, 1] >= -0.25 - 1e-12) and np.all(X1[:, 1] <= 0.25 + 1e-12)
    assert X0[:, 1].mean() > X1[:, 1].mean()
    # interleaving: each moon reaches into the other's horizontal range
    assert X0[:, 0].max() > X1[:, 0].min()


def test_circles_geometry():
    ds = make("circles", n_samples=1000, seed=0)
    r = np.hypot(ds.X[:, 0], ds.X[:, 1])
    r_outer, r_inner = r[ds.y == 0], r[ds.y == 1]
    assert r_inner.mean() < r_outer.mean()
    assert r_inner.mean() == pytest.approx(0.75, abs=0.05)
    assert r_outer.mean() == pytest.approx(1.5, abs=0.05)
    # centred on the origin
    assert np.all(np.abs(ds.X.mean(axis=0)) < 0.1)


@pytest.mark.parametrize("name,k", [("spirals", 2), ("spirals3", 3)])
def test_spirals_arms_are_rotations(name, k):
    ds = make(name, n_samples=900, noise=0.0, seed=0)
    # noiseless arm j: r = 0.25 + 2.25 t, theta = 3 pi t + 2 pi j / k
    for j in range(k):
        P = ds.X[ds.y == j]
        r = np.hypot(P[:, 0], P[:, 1])
        t = (r - 0.25) / 2.25
        theta = 3 * np.pi * t + 2 * np.pi * j / k
        np.testing.assert_allclose(P, r[:, None] * np.column_stack([np.cos(theta), np.sin(theta)]), atol=1e-12)


def test_sine_values():
    ds = make("sine", n_samples=500, noise=0.0, seed=0)
    assert np.all(np.abs(ds.X) <= np.pi)
    np.testing.assert_allclose(ds.y, np.sin(ds.X))
    noisy = make("sine", n_samples=5000, noise=0.2, seed=0)
    assert np.std(noisy.y - np.sin(noisy.X)) == pytest.approx(0.2, rel=0.1)


def test_noise_changes_spread():
    quiet = make("circles", n_samples=2000, noise=0.0, seed=1)
    loud = make("circles", n_samples=2000, noise=0.3, seed=1)
    r_q = np.hypot(*quiet.X[quiet.y == 0].T)
    r_l = np.hypot(*loud.X[loud.y == 0].T)
    assert r_q.std() < 1e-12 < r_l.std()


def test_make_unknown_name_lists_generators():
    msg = raises_one_line(make, "checkerboard", match="unknown dataset generator 'checkerboard'")
    for name in GENERATORS:
        assert name in msg


def test_make_is_case_insensitive():
    np.testing.assert_array_equal(make("XOR", 10).X, make("xor", 10).X)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_samples": 0}, "n_samples must be a positive int"),
        ({"n_samples": 2.5}, "n_samples must be a positive int"),
        ({"n_samples": True}, "n_samples must be a positive int"),
        ({"noise": -0.1}, "noise must be a finite number >= 0"),
        ({"noise": float("nan")}, "noise must be a finite number >= 0"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"seed": 1.5}, "seed must be a non-negative int"),
    ],
)
def test_make_bad_arguments(kwargs, match):
    raises_one_line(make, "moons", match=match, **kwargs)


def test_generators_called_directly():
    for name, gen in GENERATORS.items():
        ds = gen(n_samples=12, noise=None, seed=3)
        assert isinstance(ds, Dataset) and ds.n_samples == 12
        np.testing.assert_array_equal(ds.X, make(name, 12, seed=3).X)


# ---------------------------------------------------------------------------
# Dataset: construction, targets, split
# ---------------------------------------------------------------------------


def test_dataset_normalises_arrays():
    X = np.asfortranarray(np.arange(6, dtype=np.int32).reshape(3, 2))
    ds = Dataset(X, np.array([0.0, 1.0, 1.0]), "classification", 2, "t")
    assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 1]
    reg = Dataset(np.zeros((3, 1)), np.array([0.5, 1.5, 2.5]), "regression", 0, "r")
    assert reg.y.shape == (3, 1)


def test_dataset_is_frozen():
    ds = make("xor", 8)
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


def test_dataset_repr_is_short():
    assert repr(make("sine", 1000)) == (
        "Dataset(name='sine', task='regression', n_samples=1000, n_features=1, n_classes=0)"
    )


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.zeros(3), np.zeros(3), "classification", 2), "X must be 2-D"),
        ((np.zeros((3, 2)), np.zeros(2), "classification", 2), "X has 3 rows but y has 2"),
        ((np.zeros((3, 2)), np.array([0, 1, 2]), "classification", 2), r"y\[2\] = 2 is not a class label in 0..1"),
        ((np.zeros((3, 2)), np.array([0, -1, 0]), "classification", 2), r"y\[1\]"),
        ((np.zeros((3, 2)), np.zeros((3, 1)), "regression", 2), "regression needs n_classes == 0"),
        ((np.zeros((3, 2)), np.zeros(3), "clustering", 0), "task must be"),
        ((np.full((3, 2), np.nan), np.zeros(3), "classification", 1), r"X\[0, 0\] is nan"),
    ],
)
def test_dataset_validation(args, match):
    raises_one_line(Dataset, *args, "bad", match=match)


def test_targets_binary_column():
    ds = Dataset(np.zeros((4, 2)), np.array([0, 1, 1, 0]), "classification", 2, "b")
    T = ds.targets(1)
    assert T.shape == (4, 1) and T.dtype == np.float64
    assert T[:, 0].tolist() == [0.0, 1.0, 1.0, 0.0]


def test_targets_binary_column_of_a_file_with_one_class():
    """A file may hold only label 0: its 0/1 column is zeros (it was one-hot: all ones)."""
    ds = Dataset(np.zeros((3, 2)), np.array([0, 0, 0]), "classification", 1, "zeros")
    assert ds.targets(1)[:, 0].tolist() == [0.0, 0.0, 0.0]


def test_targets_one_hot():
    ds = make("spirals3", n_samples=30, seed=0)
    T = ds.targets(3)
    assert T.shape == (30, 3) and T.dtype == np.float64 and T.flags.c_contiguous
    np.testing.assert_array_equal(T.sum(axis=1), 1.0)
    np.testing.assert_array_equal(T.argmax(axis=1), ds.y)
    T2 = make("xor", 10).targets(2)
    np.testing.assert_array_equal(T2.argmax(axis=1), make("xor", 10).y)


def test_targets_regression_and_copy():
    ds = make("sine", 20)
    T = ds.targets(1)
    np.testing.assert_array_equal(T, ds.y)
    T[:] = 99.0
    assert not np.any(ds.y == 99.0)


@pytest.mark.parametrize(
    "name,n_out,match",
    [
        ("xor", 3, r"2 classes: .*1 output \(0/1 column\) or 2 outputs \(one-hot\), not 3"),
        ("spirals3", 1, r"3 classes: .*3 outputs \(one-hot\), not 1"),
        ("spirals3", 2, r"needs 3 outputs"),
        ("sine", 2, r"1 regression target column: .*1 output, not 2"),
        ("xor", 0, "n_outputs must be a positive int"),
    ],
)
def test_targets_mismatch(name, n_out, match):
    raises_one_line(make(name, 10).targets, n_out, match=match)


@pytest.mark.parametrize("validation", [0.0, 0.1, 0.25, 0.5, 0.9, 0.999])
def test_split_sizes_and_disjointness(validation):
    n = 97
    ds = make("moons", n_samples=n, seed=4)
    # make rows identifiable: append the row index as an extra feature
    tagged = Dataset(np.column_stack([ds.X, np.arange(n)]), ds.y, ds.task, ds.n_classes, ds.name)
    train, val = tagged.split(validation, seed=1)
    n_val = min(round(n * validation), n - 1)
    assert (train.n_samples, val.n_samples) == (n - n_val, n_val)
    ids_tr, ids_va = train.X[:, -1].astype(int), val.X[:, -1].astype(int)
    assert set(ids_tr).isdisjoint(ids_va)
    assert sorted(np.concatenate([ids_tr, ids_va]).tolist()) == list(range(n))
    # rows keep their labels
    np.testing.assert_array_equal(train.y, ds.y[ids_tr])
    np.testing.assert_array_equal(val.y, ds.y[ids_va])
    assert train.task == val.task == "classification" and train.n_classes == val.n_classes == 2
    assert (train.name, val.name) == ("moons:train", "moons:validation")


def test_split_deterministic_and_shuffled():
    ds = Dataset(np.arange(50.0).reshape(-1, 1), np.arange(50.0), "regression", 0, "r")
    a_tr, a_va = ds.split(0.2, seed=7)
    b_tr, b_va = ds.split(0.2, seed=7)
    np.testing.assert_array_equal(a_tr.X, b_tr.X)
    np.testing.assert_array_equal(a_va.X, b_va.X)
    c_tr, _ = ds.split(0.2, seed=8)
    assert not np.array_equal(a_tr.X, c_tr.X)
    assert not np.array_equal(a_tr.X[:, 0], np.sort(a_tr.X[:, 0]))  # shuffled
    assert a_va.y.shape == (10, 1)


@pytest.mark.parametrize("validation", [-0.1, 1.0, 1.5, float("nan"), "0.2"])
def test_split_bad_fraction(validation):
    raises_one_line(make("xor", 10).split, validation, 0, match="validation must be a fraction in")


# ---------------------------------------------------------------------------
# .npz round trip and bad files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_npz_round_trip(tmp_path, name):
    ds = make(name, n_samples=40, seed=1)
    path = tmp_path / f"{name}.npz"
    np.savez(path, X=ds.X, y=ds.y)
    back = load(path)
    assert (back.task, back.n_classes, back.name) == (ds.task, ds.n_classes, name)
    np.testing.assert_array_equal(back.X, ds.X)
    np.testing.assert_array_equal(back.y, ds.y)
    assert back.y.dtype == ds.y.dtype


def test_npz_labels_from_integer_valued_floats_and_custom_key(tmp_path):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, X=np.ones((4, 3), dtype=np.float32), labels=np.array([0.0, 3.0, 1.0, 3.0]))
    ds = load(path, target="labels")
    assert ds.task == "classification" and ds.n_classes == 4 and ds.y.tolist() == [0, 3, 1, 3]
    assert ds.X.dtype == np.float64


def test_npz_missing_array(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((2, 2)), labels=np.zeros(2))
    msg = raises_one_line(load, path, match=r"missing array 'y' \(arrays found: 'X', 'labels'\)")
    assert str(path) in msg
    np.savez(path, features=np.zeros((2, 2)), y=np.zeros(2))
    raises_one_line(load, path, match=r"missing array 'X' \(arrays found: 'features', 'y'\)")


class _Boom:
    """Unpickling this object would create the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_npz_pickled_object_array_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = _Boom(str(marker)), _Boom(str(marker))
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.zeros((2, 2)), y=obj)  # savez pickles object arrays by default
    # sanity: the payload really does run when unpickled
    with np.load(path, allow_pickle=True) as z:
        z["y"]
    assert marker.exists()
    marker.unlink()
    msg = raises_one_line(load, path, match=r"array 'y' is a pickled object array; refusing to unpickle")
    assert str(path) in msg
    assert not marker.exists()


def test_plain_pickle_with_npz_extension_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(_Boom(str(marker))))
    raises_one_line(load, path, match="cannot read as .npz")
    assert not marker.exists()


def test_npy_with_npz_extension(tmp_path):
    path = tmp_path / "single.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((2, 2)))
    raises_one_line(load, path, match="not an .npz archive")


@pytest.mark.parametrize(
    "X,y,match",
    [
        (np.zeros(5), np.zeros(5, dtype=int), r"array 'X' has shape \(5,\); expected 2-D"),
        (np.zeros((5, 2, 1)), np.zeros(5, dtype=int), r"array 'X' has shape \(5, 2, 1\)"),
        (np.zeros((5, 2)), np.zeros(4, dtype=int), r"row-count mismatch: 'X' has 5 rows but 'y' has 4"),
        (np.zeros((5, 2)), np.zeros((5, 2, 2)), r"array 'y' has shape \(5, 2, 2\)"),
        (np.array([["a", "b"]]), np.zeros(1, dtype=int), r"array 'X' has dtype <U1; expected a numeric array"),
        (np.zeros((2, 2)), np.array(["a", "b"]), r"array 'y' has dtype <U1"),
        (np.zeros((0, 2)), np.zeros(0, dtype=int), r"array 'X' is empty"),
        (np.zeros((3, 2)), np.array([0, -2, 1]), r"y\[1\] \(row 1, counted from 0\): label -2 is not an integer in 0..2147483647"),
        (np.zeros((3, 2)), np.array([0.0, 1.0, 0.5]), r"y\[2\] .*label 0.5 is not an integer in 0..2147483647"),
        (np.zeros((3, 2)), np.array([0.0, 1e300, 1.0]), r"y\[1\] .*label 1e\+300 is not an integer in 0..2147483647"),
        (np.array([[0.0, 1.0], [2.0, np.nan]]), np.zeros(2, dtype=int), r"X\[1, 1\] \(row 1, column 1, counted from 0\) is nan"),
        (np.array([[0.0, 1.0], [np.inf, 2.0]]), np.zeros(2, dtype=int), r"X\[1, 0\] .* is inf"),
        (np.zeros((3, 2)), np.array([0.0, np.nan, 1.0]), r"y\[1\] \(row 1, counted from 0\) is nan"),
        (np.zeros((3, 2)), np.array([[0.0], [1.0], [-np.inf]]), r"y\[2, 0\] .* is -inf"),
    ],
)
def test_npz_bad_contents(tmp_path, X, y, match):
    path = tmp_path / "bad.npz"
    np.savez(path, X=X, y=y)
    msg = raises_one_line(load, path, match=match)
    assert msg.startswith(str(path))


def test_npz_regression(tmp_path):
    path = tmp_path / "reg.npz"
    y = np.linspace(0, 1, 10).reshape(5, 2)
    np.savez(path, X=np.arange(15).reshape(5, 3), y=y)
    ds = load(path)
    assert ds.task == "regression" and ds.n_classes == 0 and ds.y.shape == (5, 2)
    assert ds.targets(2).shape == (5, 2)


def test_npz_corrupt(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    raises_one_line(load, path, match="cannot read")


# ---------------------------------------------------------------------------
# .csv round trip and bad files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_csv_round_trip(tmp_path, name):
    ds = make(name, n_samples=33, seed=9)
    header = [f"x{j}" for j in range(ds.n_features)] + ["label"]
    ys = ds.y.reshape(-1) if ds.task == "classification" else ds.y[:, 0]
    rows = [[repr(float(v)) for v in xr] + [repr(yv.item())] for xr, yv in zip(ds.X, ys)]
    path = write_csv(tmp_path / f"{name}.csv", header, rows)
    back = load(path)
    assert (back.task, back.n_classes, back.name) == (ds.task, ds.n_classes, name)
    np.testing.assert_array_equal(back.X, ds.X)
    np.testing.assert_array_equal(back.y, ds.y)
    assert back.y.dtype == ds.y.dtype


def test_csv_default_target_priority_and_explicit_target(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["target", "a", "y"], [["1", "2.5", "0"], ["0", "3.5", "1"]])
    ds = load(path)  # "y" preferred over "target"
    assert ds.y.tolist() == [0, 1]
    np.testing.assert_array_equal(ds.X, [[1.0, 2.5], [0.0, 3.5]])
    ds = load(path, target="target")
    assert ds.y.tolist() == [1, 0]
    np.testing.assert_array_equal(ds.X, [[2.5, 0.0], [3.5, 1.0]])
    ds = load(path, target="a")
    assert ds.task == "regression" and ds.y[:, 0].tolist() == [2.5, 3.5]


def test_csv_label_in_the_middle_and_whitespace(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(" a , label , b \n 1 , 2 , 3 \n\n4,0,6\n\n")
    ds = load(path)
    np.testing.assert_array_equal(ds.X, [[1.0, 3.0], [4.0, 6.0]])
    assert ds.y.tolist() == [2, 0] and ds.n_classes == 3


def test_csv_utf8_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx,label\n1,0\n2,1\n".encode("utf-8"))
    assert load(path).y.tolist() == [0, 1]


def test_csv_regression_target(tmp_path):
    path = write_csv(tmp_path / "r.csv", ["x", "y"], [["0", "0.5"], ["1", "1"], ["2", "-3.25"]])
    ds = load(path)
    assert ds.task == "regression" and ds.n_classes == 0 and ds.y.shape == (3, 1)
    assert ds.y[:, 0].tolist() == [0.5, 1.0, -3.25]


def test_csv_no_label_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "b", "class"], [["1", "2", "0"]])
    msg = raises_one_line(load, path, match=r"no label column named 'label', 'y' or 'target'")
    assert "'a', 'b', 'class'" in msg and str(path) in msg
    assert load(path, target="class").y.tolist() == [0]


def test_csv_missing_explicit_target(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "label"], [["1", "0"]])
    raises_one_line(load, path, target="cls", match=r"missing target column 'cls' \(columns: 'a', 'label'\)")


def test_csv_non_numeric_cell(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "b", "label"], [["1", "2", "0"], ["3", "4", "1"], ["5", "six", "0"]])
    msg = raises_one_line(load, path, match=r"row 4, column 'b': non-numeric cell 'six'")
    assert msg.startswith(str(path))


def test_csv_empty_cell(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "label"], [["1", "0"], ["", "1"]])
    raises_one_line(load, path, match=r"row 3, column 'a': empty cell")


def test_csv_row_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label\n1,0\n\n2,1\nx,0\n")
    raises_one_line(load, path, match=r"row 5, column 'a': non-numeric cell 'x'")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf"])
def test_csv_nan_or_inf(tmp_path, bad):
    path = write_csv(tmp_path / "d.csv", ["a", "b", "label"], [["1", "2", "0"], ["3", bad, "1"]])
    raises_one_line(load, path, match=r"row 3, column 'b': -?(nan|inf) is not a finite number")


def test_csv_nan_in_target(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "label"], [["1", "0"], ["3", "1"], ["4", "nan"]])
    raises_one_line(load, path, match=r"row 4, column 'label': nan is not a finite number")


def test_csv_negative_label(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "label"], [["1", "0"], ["2", "1"], ["3", "-1"]])
    msg = raises_one_line(load, path, match=r"row 4, column 'label': label -1.0 is not an integer in 0..2147483647")
    assert msg.startswith(str(path))


def test_csv_ragged_rows(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,1\n")
    raises_one_line(load, path, match=r"row 3 has 2 cells but the header has 3 \(ragged rows\)")
    path.write_text("a,b,label\n1,2,0,9\n")
    raises_one_line(load, path, match=r"row 2 has 4 cells")


def test_csv_header_required(tmp_path):
    path = write_csv(tmp_path / "d.csv", None, [["1", "2", "0"], ["3", "4", "1"]])
    raises_one_line(load, path, match=r"row 1 looks like data; a header row naming the columns is required")


def test_csv_header_only(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "label"], [])
    raises_one_line(load, path, match="no data rows after the header")


def test_csv_only_target_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["label"], [["0"], ["1"]])
    raises_one_line(load, path, match="at least one feature column is required")


def test_csv_duplicate_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "a", "label"], [["0", "1", "1"]])
    raises_one_line(load, path, match="duplicate column name 'a'")


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"a,label\n\xff\xfe,1\n")
    raises_one_line(load, path, match="not UTF-8 text")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_csv_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    raises_one_line(load, path, match="empty file")


def test_npz_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    raises_one_line(load, path, match="empty file")


finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    X=st.integers(1, 6).flatmap(
        lambda d: hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.just(d)), elements=finite_floats)
    ),
    data=st.data(),
)
def test_csv_float_round_trip_property(tmp_path_factory, X, data):
    n = X.shape[0]
    y = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)))
    path = tmp_path_factory.mktemp("prop") / "m.csv"
    header = [f"f{j}" for j in range(X.shape[1])] + ["label"]
    write_csv(path, header, [[repr(float(v)) for v in row] + [str(lab)] for row, lab in zip(X, y)])
    ds = load(path)
    np.testing.assert_array_equal(ds.X, X)
    assert np.array_equal(np.signbit(ds.X), np.signbit(X))  # -0.0 survives too
    np.testing.assert_array_equal(ds.y, y)
    assert ds.n_classes == y.max() + 1


@settings(max_examples=30, deadline=None)
@given(
    X=hnp.arrays(np.float64, st.tuples(st.integers(1, 10), st.integers(1, 4)), elements=finite_floats),
    data=st.data(),
)
def test_npz_regression_round_trip_property(tmp_path_factory, X, data):
    y = data.draw(hnp.arrays(np.float64, (X.shape[0], 2), elements=finite_floats))
    path = tmp_path_factory.mktemp("prop") / "m.npz"
    np.savez(path, X=X, y=y)
    ds = load(path)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.task == "regression"


# ---------------------------------------------------------------------------
# extensions, missing files, resolve
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fname", ["data.txt", "data.json", "data"])
def test_unknown_extension(tmp_path, fname):
    path = tmp_path / fname
    path.write_text("a,label\n1,0\n")
    raises_one_line(load, path, match=r"unknown file type .*; expected a .npz or .csv file")


@pytest.mark.parametrize("fname", ["absent.csv", "absent.npz"])
def test_missing_file(tmp_path, fname):
    path = tmp_path / fname
    msg = raises_one_line(load, path, match="no such file")
    assert str(path) in msg
    assert not isinstance(DataError("x"), FileNotFoundError)


def test_directory_with_csv_name(tmp_path):
    d = tmp_path / "dir.csv"
    d.mkdir()
    raises_one_line(load, d, match="is a directory")


def test_uppercase_extension_and_str_path(tmp_path):
    path = write_csv(tmp_path / "UP.CSV", ["a", "label"], [["1", "0"], ["2", "1"]])
    assert load(str(path)).n_samples == 2


def test_resolve_generator_and_files(tmp_path):
    ds = resolve("spirals", n_samples=50, seed=3)
    np.testing.assert_array_equal(ds.X, make("spirals", 50, seed=3).X)
    assert resolve(" Moons ", n_samples=8).name == "moons"
    src = make("xor", 20, seed=0)
    npz = tmp_path / "x.npz"
    np.savez(npz, X=src.X, y=src.y)
    np.testing.assert_array_equal(resolve(str(npz)).X, src.X)
    np.testing.assert_array_equal(resolve(npz).X, src.X)
    csvp = write_csv(tmp_path / "x.csv", ["a", "b", "label"], [[repr(float(a)), repr(float(b)), str(c)] for (a, b), c in zip(src.X, src.y)])
    np.testing.assert_array_equal(resolve(str(csvp), n_samples=3).X, src.X)


def test_resolve_unknown():
    msg = raises_one_line(resolve, "mooons", match=r"unknown dataset 'mooons': not a generator")
    for name in GENERATORS:
        assert name in msg
    raises_one_line(resolve, "nowhere/data.csv", match="nowhere/data.csv: no such file")


def test_messages_are_value_errors():
    assert issubclass(DataError, ValueError)


def test_module_imports_only_numpy():
    code = (
        "import sys; import symprop.kernels.training.data; "
        "bad = [m for m in ('numba', 'sympy', 'torch', 'scipy') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------------------
# mnist_like: the image-sized generator (IMAGE_GENERATORS)
# ---------------------------------------------------------------------------


def test_mnist_like_shapes_range_and_balance():
    from symprop.kernels.training.data import IMAGE_GENERATORS

    assert set(IMAGE_GENERATORS) == {"mnist_like"} and not set(IMAGE_GENERATORS) & set(GENERATORS)
    ds = make("mnist_like", n_samples=203, seed=4)
    assert (ds.name, ds.task, ds.n_features, ds.n_classes) == ("mnist_like", "classification", 784, 10)
    assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous and ds.y.dtype == np.int64
    assert ds.X.min() >= 0.0 and ds.X.max() <= 1.0 and 0.2 < ds.X.mean() < 0.8
    counts = np.bincount(ds.y, minlength=10)
    assert counts.sum() == 203 and counts.max() - counts.min() <= 1
    assert ds.targets(10).shape == (203, 10)


def test_mnist_like_deterministic_and_resolvable():
    a, b = make("mnist_like", n_samples=30, seed=1), resolve("MNIST_like", n_samples=30, seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, make("mnist_like", n_samples=30, seed=2).X)
    raises_one_line(make, "mnist_like", match="mnist_like: noise must be a finite number >= 0", noise=-1.0)
    assert "mnist_like" in raises_one_line(resolve, "mnistlike", match="unknown dataset 'mnistlike'")


def test_mnist_like_classes_are_separable():
    """Examples are nearer their own class mean than any other (the data can be learned)."""
    ds = make("mnist_like", n_samples=400, seed=0)
    means = np.stack([ds.X[ds.y == c].mean(axis=0) for c in range(10)])
    nearest = np.argmin(((ds.X[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == ds.y).mean() > 0.9
