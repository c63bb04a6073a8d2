"""Tests of the command line (symprop.cli.main): exit codes 0 / 2 and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from symprop.cli import main

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_equations_mlp(capsys):
    code, out, err = run(capsys, "equations", str(EX / "mlp.toml"))
    assert code == 0 and err == ""
    assert "Layer recursion" in out
    assert "δ⁽¹⁾ = " in out and "(δ⁽²⁾·W2)" in out and "(1 - a1²)" in out
    assert "∂L/∂W1 = δ⁽¹⁾ᵀ·x" in out
    assert "∂L/∂b1 = Σₙ δ⁽¹⁾" in out
    assert "Conventions:" in out


def test_equations_latex(capsys):
    code, out, err = run(capsys, "equations", "--latex", str(EX / "mlp.toml"))
    assert code == 0 and err == ""
    assert r"\frac{\partial L}{\partial W_{1}}" in out
    assert r"\delta^{(1)}" in out and r"\odot" in out
    assert r"\begin{align*}" in out


def test_equations_ascii(capsys):
    code, out, _ = run(capsys, "equations", "--ascii", str(EX / "mlp.toml"))
    assert code == 0
    assert out.isascii()
    assert "dL/dW1 = delta^(1)^T*x" in out


def test_equations_swish(capsys):
    code, out, err = run(capsys, "equations", str(EX / "swish.toml"))
    assert code == 0 and err == ""
    assert "activation x*sigmoid(x)" in out
    assert "∂L/∂z1 = " in out
    assert "exp(z1)" in out  # swish' has no form through the output: it uses the input


@pytest.mark.parametrize("name", ["mlp", "classifier", "swish", "mish"])
def test_check_spec_examples(capsys, name):
    code, out, err = run(capsys, "check-spec", str(EX / f"{name}.toml"))
    assert code == 0 and err == ""
    assert out.startswith(f"{EX / name}.toml: ok (")


def test_check_spec_mlp_counts(capsys):
    code, out, _ = run(capsys, "check-spec", str(EX / "mlp.toml"))
    assert code == 0
    assert "14 nodes, 6 parameters, 337 parameter values, loss L" in out


def test_check_spec_bad(capsys):
    code, out, err = run(capsys, "check-spec", str(EX / "bad.toml"))
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("symprop: error: ")
    assert "node 'y'" in lines[0] and "bad.toml" in lines[0]


def test_unknown_file(capsys, tmp_path):
    code, out, err = run(capsys, "check-spec", str(tmp_path / "missing.toml"))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "no such file" in err
    code, _, err = run(capsys, "equations", str(tmp_path / "missing.json"))
    assert code == 2 and len(err.splitlines()) == 1


def test_unsafe_formula_spec(capsys, tmp_path):
    spec = tmp_path / "evil.toml"
    spec.write_text("input = 2\n[[layers]]\nunits = 3\n"
                    "activation = \"__import__('os').system('touch pwned')\"\n[[layers]]\nunits = 1\n")
    for command in ("check-spec", "equations"):
        code, out, err = run(capsys, command, str(spec))
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1, err
        assert "evil.toml" in err and "node 'a1'" in err and "not allowed" in err
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_text_for_a_number_in_a_spec_exits_2_without_running_it(capsys, tmp_path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.toml"
    spec.write_text("input = 2\n[[layers]]\nunits = 3\nactivation = \"leaky_relu\"\n"
                    f"alpha = \"__import__('pathlib').Path('{marker.as_posix()}').touch()\"\n[[layers]]\nunits = 1\n")
    for command in ("check-spec", "verify", "kernels", "train"):
        code, out, err = run(capsys, command, str(spec))
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1, err
        assert "evil.toml" in err and "node 'a1'" in err and "'alpha' must be a finite number" in err
    assert not marker.exists()


def test_a_network_too_big_for_memory_is_one_line(capsys, tmp_path):
    spec = tmp_path / "big.toml"
    spec.write_text("input = 2\n[[layers]]\nunits = 1000000000000\n[[layers]]\nunits = 1\n")
    code, out, err = run(capsys, "verify", str(spec))
    assert code == 1 and err.strip() == ("symprop: error: out of memory: the network or data set is too large "
                                         "for this machine")


def test_malformed_spec(capsys, tmp_path):
    spec = tmp_path / "broken.toml"
    spec.write_text("name = \n")
    code, _, err = run(capsys, "check-spec", str(spec))
    assert code == 2 and len(err.splitlines()) == 1 and "invalid TOML" in err


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["equations"]) == 2
    capsys.readouterr()


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "check-spec" in capsys.readouterr().out


@pytest.mark.slow
def test_demo(capsys, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo-out"
    have_tex = bool(shutil.which("latexmk") or shutil.which("pdflatex"))
    code, stdout, err = run(capsys, "demo", "--out", str(out), "--epochs", "20")
    assert code == 0, stdout + err
    assert "2-8-8-1 tanh MLP" in stdout and "'moons'" in stdout
    assert "δ⁽¹⁾ = " in stdout and "∂L/∂W1 = δ⁽¹⁾ᵀ·x" in stdout          # the derived equations
    assert "epoch 20/20: loss " in stdout                              # trained by the compiled kernel
    assert "gradients verified" in stdout and "MISMATCH" not in stdout  # verified
    for p in ("W1", "b1", "W2", "b2", "W3", "b3"):
        assert any(line.startswith(p) and line.rstrip().endswith("ok") for line in stdout.splitlines()), p
    report = out / ("demo.pdf" if have_tex else "demo.tex")
    assert stdout.rstrip().splitlines()[-1] == f"report: {report}"
    assert report.exists() and (out / "demo.tex").exists()
    assert sorted(p.name for p in (out / "demo-figures").iterdir()) == ["activation-1.pdf", "decision.pdf", "training.pdf"]


@pytest.mark.slow
def test_demo_default_out_is_in_the_current_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(capsys, "demo", "--epochs", "1", "--no-pdf")
    assert code == 0, stdout + err
    assert stdout.rstrip().splitlines()[-1] == f"report: {Path('symprop-demo') / 'demo.tex'}"
    assert (tmp_path / "symprop-demo" / "demo.tex").exists()


def test_python_dash_m_check_spec_bad():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "symprop", "check-spec", "examples/bad.toml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "node 'y'" in proc.stderr


@pytest.mark.slow
def test_train_mnist_like_example_on_cpu(capsys):
    code, out, err = run(capsys, "train", str(EX / "mnist_like.toml"), "--data", "mnist_like", "--backend", "cpu",
                         "--epochs", "1", "--samples", "64", "--batch-size", "32", "--dtype", "float32",
                         "--lr", "0.001", "--no-progress")
    assert code == 0, out + err
    assert "training 'mnist_like' on mnist_like (64 rows)" in out and "epoch 1/1: loss " in out
