"""Training: convergence, determinism, validation, checkpoints and resume, divergence, bad data, CLI."""

import json

import numpy as np
import pytest

from symprop import derive
from symprop import kernels
from symprop.kernels.training.data import make
from symprop.kernels.training.optim import SGD, Adam
from symprop.kernels.training.loop import History, load_checkpoint, save_checkpoint, train
from symprop.cli import main


@pytest.fixture(scope="module")
def moons():
    data = make("moons", n_samples=256, seed=0)
    return data.X, data.targets(1)


@pytest.fixture(scope="module")
def net():
    return derive.mlp([2, 8, 1], activation="tanh", loss="bce_logits")


def fresh(net, seed=0, dtype="float64"):
    return kernels.compile(net, dtype=dtype, seed=seed)


def test_training_learns_moons(net, moons):
    model = fresh(net)
    history = train(model, *moons, epochs=40, batch_size=16, optimizer=Adam(lr=0.05), progress=False)
    losses = history.column("loss")
    assert len(losses) == 40 and history.stopped is None
    assert losses[-1] < 0.5 * losses[0]
    assert history.last["accuracy"] > 0.85


@pytest.mark.slow
def test_float32_trains_too(net, moons):
    model = fresh(net, dtype="float32")
    history = train(model, *moons, epochs=20, batch_size=16, optimizer=Adam(lr=0.05), progress=False)
    assert model.parameters["W1"].dtype == np.float32
    assert history.column("loss")[-1] < history.column("loss")[0]


def test_deterministic_under_seed(net, moons):
    runs = []
    for _ in range(2):
        model = fresh(net, seed=3)
        h = train(model, *moons, epochs=3, batch_size=32, optimizer=SGD(lr=0.1, momentum=0.9), seed=5,
                  progress=False)
        runs.append((h.column("loss"), {k: v.copy() for k, v in model.parameters.items()}))
    assert runs[0][0] == runs[1][0]
    for p in runs[0][1]:
        np.testing.assert_array_equal(runs[0][1][p], runs[1][1][p])
    other = fresh(net, seed=3)
    h = train(other, *moons, epochs=3, batch_size=32, optimizer=SGD(lr=0.1, momentum=0.9), seed=6, progress=False)
    assert h.column("loss") != runs[0][0]


@pytest.mark.slow
def test_validation_split_reports_metrics(net, moons):
    model = fresh(net)
    h = train(model, *moons, epochs=2, batch_size=32, validation=0.25, progress=False)
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(h.last)
    with pytest.raises(ValueError, match="validation"):
        train(model, *moons, epochs=1, validation=1.5, progress=False)


def test_checkpoint_resume_equals_uninterrupted(net, moons, tmp_path):
    opt = Adam(lr=0.02)
    full = fresh(net, seed=1)
    h_full = train(full, *moons, epochs=6, batch_size=32, optimizer=opt, progress=False)

    ck = tmp_path / "ck.npz"
    part = fresh(net, seed=1)
    train(part, *moons, epochs=3, batch_size=32, optimizer=opt, progress=False, checkpoint=ck)
    assert ck.exists() and not list(tmp_path.glob(".*tmp*"))
    resumed = fresh(net, seed=99)  # different init: everything must come from the checkpoint
    h = train(resumed, *moons, epochs=6, batch_size=32, optimizer=opt, progress=False, checkpoint=ck, resume=True)
    assert len(h.epochs) == 6
    assert h.column("loss") == pytest.approx(h_full.column("loss"), rel=1e-12)
    for p in full.parameters:
        np.testing.assert_allclose(resumed.parameters[p], full.parameters[p], rtol=1e-12, atol=1e-14)
    with np.load(ck, allow_pickle=False) as data:  # never pickle
        assert "param/W1" in data.files


def test_divergence_stops_with_last_good_parameters(tmp_path):
    data = make("sine", n_samples=64, seed=0)
    net = derive.mlp([1, 4, 1], activation="identity", loss="mse")
    model = fresh(net)
    ck = tmp_path / "ck.npz"
    h = train(model, data.X, data.targets(1), epochs=50, batch_size=8, optimizer=SGD(lr=1e3), progress=False,
              checkpoint=ck)
    assert h.stopped is not None and "diverged" in h.stopped
    assert len(h.epochs) < 50
    for p, v in model.parameters.items():
        assert np.all(np.isfinite(v)), p
    if ck.exists():  # the last good epoch, if one finished
        state, step, epoch, history = load_checkpoint(ck, fresh(net))
        assert epoch == len(history.epochs) and history.stopped is None


@pytest.mark.parametrize("bad,match", [("nan", r"training input 'x' at index \[3, 1\]: nan is not finite"),
                                       ("shape", "shape")])
def test_bad_training_data(net, moons, bad, match):
    X, T = moons[0].copy(), moons[1]
    if bad == "nan":
        X[3, 1] = np.nan
    else:
        X = X[:, :1]
    with pytest.raises(ValueError, match=match):
        train(fresh(net), X, T, epochs=1, progress=False)


def test_step_activation_warns(moons):
    net = derive.mlp([2, 3, 1], activation="step", loss="mse")
    with pytest.warns(RuntimeWarning, match="zero derivative"):
        train(fresh(net), *moons, epochs=1, progress=False)


def test_corrupt_checkpoint_is_a_clear_error(net, tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="bad.npz"):
        load_checkpoint(path, fresh(net))
    other = fresh(derive.mlp([2, 5, 1], activation="tanh", loss="bce_logits"))
    save_checkpoint(tmp_path / "other.npz", other, {}, 0, 0, History())
    with pytest.raises(ValueError, match="shape"):
        load_checkpoint(tmp_path / "other.npz", fresh(net))


def _rewrite_meta(path, edit):
    """Rewrite a checkpoint's metadata through ``edit(meta) -> new meta`` (a crafted file)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["meta"] = np.array(json.dumps(edit(json.loads(str(arrays["meta"])))))
    np.savez(path, **arrays)


@pytest.mark.parametrize("edit,needle", [
    (lambda m: [m], "no metadata"),
    (lambda m: {k: v for k, v in m.items() if k != "history"}, "history is missing or malformed"),
    (lambda m: {**m, "history": {**m["history"], "extra": 1}}, "history is missing or malformed"),
    (lambda m: {**m, "history": {**m["history"], "epochs": [3]}}, "history is missing or malformed"),
    (lambda m: {**m, "step": "7"}, "'step' must be a whole number >= 0, got '7'"),
    (lambda m: {**m, "epoch": -1}, "'epoch' must be a whole number >= 0, got -1"),
    (lambda m: {**m, "version": 99}, "checkpoint format 99"),
])
def test_crafted_checkpoint_metadata_is_a_clear_error(net, tmp_path, edit, needle):
    path = tmp_path / "crafted.npz"
    model = fresh(net)
    save_checkpoint(path, model, {}, 3, 1, History(epochs=[{"epoch": 1, "loss": 0.5}]))
    _rewrite_meta(path, edit)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path, model)
    assert str(info.value).startswith(f"{path}: ") and needle in str(info.value), str(info.value)


def test_parameters_named_like_savez_arguments_are_saved(tmp_path):
    """np.savez(f, **arrays) dropped a parameter named allow_pickle and failed on one named file."""
    from symprop.kernels.training.loop import save_parameters

    arrays = {"allow_pickle": np.arange(3.0), "file": np.ones((2, 2)), "W/1": np.zeros(1)}
    save_parameters(tmp_path / "p.npz", arrays)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as data:
        assert sorted(data.files) == sorted(arrays)
        for k, v in arrays.items():
            np.testing.assert_array_equal(data[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_writing_onto_a_folder_is_a_clear_error_and_leaves_nothing(tmp_path):
    from symprop.kernels.training.loop import save_parameters

    folder = tmp_path / "taken.npz"
    folder.mkdir()
    with pytest.raises(ValueError, match="taken.npz: is a folder, not a file"):
        save_parameters(folder, {"W": np.zeros(2)})
    with pytest.raises(ValueError, match="h.json: is a folder"):
        (tmp_path / "h.json").mkdir()
        History().save(tmp_path / "h.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.json", "taken.npz"]


def test_history_json_round_trip(tmp_path):
    h = History(epochs=[{"epoch": 1, "loss": 0.5}], optimizer="Adam")
    h.save(tmp_path / "h.json")
    assert History.from_json((tmp_path / "h.json").read_text()) == h


def test_cli_train_saves_parameters_and_history(tmp_path, capsys):
    out = tmp_path / "out" / "params.npz"
    hist = tmp_path / "out" / "history.json"
    code = main(["train", "examples/mlp.toml", "--data", "moons", "--epochs", "3", "--optimizer", "adam",
                 "--lr", "0.01", "--backend", "parallel", "--save", str(out), "--history", str(hist),
                 "--no-progress", "--samples", "128"])
    assert code == 0, capsys.readouterr().err
    with np.load(out, allow_pickle=False) as data:
        assert set(data.files) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    assert len(json.loads(hist.read_text())["epochs"]) == 3


def test_cli_train_bad_data_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,0\n3,x,1\n")
    assert main(["train", "examples/mlp.toml", "--data", str(bad), "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv" in err


def test_cli_train_feature_mismatch(capsys):
    assert main(["train", "examples/mlp.toml", "--data", "sine", "--epochs", "1", "--no-progress"]) == 2
    assert "features" in capsys.readouterr().err


def test_cli_kernels_prints_source(capsys):
    assert main(["kernels", "examples/swish.toml"]) == 0
    out = capsys.readouterr().out
    assert "def loss_and_grads(" in out and "node 'a1'" in out


# --- bad inputs found by an audit: each a one-line error naming the culprit --------------------------

@pytest.fixture(scope="module")
def adam_checkpoint(net, moons, tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "adam.npz"
    train(fresh(net), *moons, epochs=1, optimizer=Adam(lr=0.01), progress=False, checkpoint=path)
    return path


@pytest.mark.parametrize("optimizer,dtype,needle", [
    (SGD(lr=0.1), "float64", "written by Adam training (state m, v); resume it with the same optimizer, not SGD"),
    (SGD(lr=0.1, momentum=0.9), "float64", "resume it with the same optimizer, not SGD"),
    (Adam(lr=0.01), "float32", "the checkpoint holds float64 values; this model is float32"),
])
def test_resuming_with_another_optimizer_or_dtype_is_refused(net, moons, adam_checkpoint, optimizer, dtype, needle):
    before = adam_checkpoint.read_bytes()
    with pytest.raises(ValueError) as info:
        train(fresh(net, dtype=dtype), *moons, epochs=3, optimizer=optimizer, progress=False,
              checkpoint=adam_checkpoint, resume=True)
    assert str(info.value).startswith(str(adam_checkpoint)) and needle in str(info.value)
    assert adam_checkpoint.read_bytes() == before          # the checkpoint is left as it was


def test_truncated_checkpoint_and_nan_state_are_clear_errors(net, adam_checkpoint, tmp_path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(adam_checkpoint.read_bytes()[:300])
    with pytest.raises(ValueError, match="cut.npz: not a readable .npz checkpoint"):
        load_checkpoint(cut, fresh(net))
    with np.load(adam_checkpoint, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["state/W1/v"] = np.full_like(arrays["state/W1/v"], np.nan)
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(ValueError, match="nan.npz: optimizer state 'v' of parameter 'W1' holds NaN or Inf"):
        load_checkpoint(tmp_path / "nan.npz", fresh(net))


def test_history_is_strict_json_after_divergence(tmp_path):
    data = make("sine", n_samples=64, seed=0)
    model = fresh(derive.mlp([1, 4, 1], activation="identity", loss="mse"))
    h = train(model, data.X, data.targets(1), epochs=50, batch_size=8, optimizer=SGD(lr=1e3), progress=False)
    assert "diverged" in h.stopped
    h.save(tmp_path / "h.json")
    text = (tmp_path / "h.json").read_text()
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert parsed["epochs"][-1]["loss"] is None


@pytest.mark.parametrize("kwargs,needle", [
    ({"epochs": True}, "epochs must be an integer >= 0, got True"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"validation": "0.2"}, "validation must be 0 or a fraction in (0, 1), got '0.2'"),
    ({"resume": True}, "resume needs a checkpoint"),
])
def test_bad_train_arguments(net, moons, kwargs, needle):
    with pytest.raises(ValueError) as info:
        train(fresh(net), *moons, progress=False, **kwargs)
    assert needle in str(info.value)


def test_numpy_integers_are_counts(net, moons):
    h = train(fresh(net), *moons, epochs=np.int64(2), batch_size=np.int32(64), progress=False)
    assert len(h.epochs) == 2


@pytest.mark.parametrize("extra,needle", [
    (["--save", "{folder}"], "is a folder, not a file"),
    (["--history", "{file}/h.json"], "is a file, not a folder"),
    (["--checkpoint", "{tmp}/c.npz", "--save", "{tmp}/./c.npz"], "--save and --checkpoint name the same file"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--save", "{tmp}/p.txt"], "parameters are saved as .npz"),
    (["--momentum", "0.9"], "optimizer 'adam' has no option 'momentum'"),
])
def test_cli_refuses_bad_outputs_before_training(tmp_path, capsys, extra, needle):
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "afile").write_text("")
    args = [a.format(folder=tmp_path / "folder.npz", file=tmp_path / "afile", tmp=tmp_path) for a in extra]
    code = main(["train", "examples/mlp.toml", "--epochs", "1", "--no-progress", *args])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert "training" not in out                      # refused before compiling or training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder.npz"]


@pytest.mark.parametrize("option,value", [("--seed", "-1"), ("--epochs", "x"), ("--batch-size", "0"),
                                          ("--validation", "1.5")])
def test_cli_bad_counts_are_usage_errors(capsys, option, value):
    assert main(["train", "examples/mlp.toml", option, value]) == 2
    assert f"argument {option}: must be" in capsys.readouterr().err
