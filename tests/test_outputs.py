"""Outputs never destroy inputs or special files (issue 18, item 2): every output path is compared
with every input and every other output, through symlinks and hard links, before any work; the
atomic writer writes through a symlink and refuses FIFOs, devices and sockets."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.derive.atomic import atomic_file, check_outputs_distinct, check_writable

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "mlp.toml"


def _one_line_error(capsys, code: int, *needles: str) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture
def data(tmp_path):
    """A small regression data set on disk and its bytes before the run."""
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(16, 2)), y=rng.normal(size=16))
    return path, path.read_bytes()


@pytest.mark.parametrize("option", ["--save", "--checkpoint", "--history"])
def test_train_output_on_the_data_is_refused(capsys, tmp_path, data, option):
    path, before = data
    code = main(["train", str(SPEC), "--data", str(path), "--epochs", "1", option, str(path)])
    _one_line_error(capsys, code, option, "--data")
    assert path.read_bytes() == before


def test_train_history_on_the_spec_is_refused(capsys, tmp_path):
    spec = tmp_path / "net.toml"
    spec.write_bytes(SPEC.read_bytes())
    code = main(["train", str(spec), "--epochs", "1", "--history", str(spec)])
    _one_line_error(capsys, code, "--history", "the spec")
    assert spec.read_bytes() == SPEC.read_bytes()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_an_output_linked_to_an_input_is_refused(capsys, tmp_path, data, link):
    path, before = data
    alias = tmp_path / "alias.npz"
    (os.symlink if link == "symlink" else os.link)(path, alias)
    code = main(["train", str(SPEC), "--data", str(path), "--epochs", "1", "--save", str(alias)])
    _one_line_error(capsys, code, "--save", "--data")
    assert path.read_bytes() == before


def test_two_outputs_through_a_link_are_refused(capsys, tmp_path):
    a = tmp_path / "a.npz"
    os.symlink(a, tmp_path / "b.npz")
    code = main(["train", str(SPEC), "--epochs", "1", "--save", str(a), "--checkpoint", str(tmp_path / "b.npz")])
    _one_line_error(capsys, code, "--save", "--checkpoint", "same file")


def test_report_output_on_the_spec_is_refused(capsys, tmp_path):
    """-o r.tex where r.tex is a symlink to the spec: the spec is not overwritten."""
    toml = tmp_path / "n.toml"
    toml.write_bytes(SPEC.read_bytes())
    os.symlink(toml, tmp_path / "r.tex")
    code = main(["report", str(toml), "-o", str(tmp_path / "r.tex"), "--no-pdf"])
    _one_line_error(capsys, code, "the spec")
    assert toml.read_bytes() == SPEC.read_bytes()


def test_resume_reads_and_writes_its_own_checkpoint(tmp_path):
    """--resume with --checkpoint names one file for both on purpose: allowed."""
    check_outputs_distinct({"--checkpoint": tmp_path / "c.npz"}, {"the spec": SPEC})


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_is_refused_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for check in (check_writable, lambda p: atomic_file(p).__enter__()):
        with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
            check(fifo)
    assert fifo.is_fifo()


def test_a_device_is_refused_not_replaced():
    null = Path("/dev/null")
    if not null.exists():
        pytest.skip("no /dev/null")
    with pytest.raises(ValueError, match="is a device, not a regular file"):
        check_writable(null)
    assert null.is_char_device()


def test_the_cli_refuses_a_device_as_history(capsys):
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    code = main(["train", str(SPEC), "--epochs", "1", "--history", "/dev/null"])
    _one_line_error(capsys, code, "/dev/null", "device")
    assert Path("/dev/null").is_char_device()


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(ValueError, match="is a socket"):
            check_writable(path)


def test_a_symlink_is_written_through(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    os.symlink(real, link)
    with atomic_file(link, "w") as f:
        f.write("new")
    assert link.is_symlink() and real.read_text() == "new"
