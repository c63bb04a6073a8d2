"""The CUDA backend (kernels.cuda_codegen, kernels.cuda_model).

CI has no GPU, so the backend's numerical tests (``tests/cuda_sim``: loss, gradients and whole
epochs against the CPU backend, divergence, verify, train) run under Numba's CUDA simulator.
The simulator has to be switched on before Numba is imported, which this process has done
already, so :func:`simulated` runs that folder once in a second pytest process with
``NUMBA_ENABLE_CUDASIM=1`` and every test there is mirrored here by one test that fails with the
simulated test's own report. The rest (code generation, the messages without a GPU) runs here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import derive

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tests" / "cuda_sim"


def _simulated_names() -> list[str]:
    names = []
    for path in sorted(SIM.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names += [f"{path.stem}::{f.name}" for f in tree.body
                  if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")]
    return names


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """``{(module, test name): [(case, outcome, message)]}`` of the simulator run (once per session)."""
    import importlib.util

    if importlib.util.find_spec("numba_cuda") is None:
        pytest.fail("numba-cuda is not installed (it is in the test extras: pip install -e '.[test]')")
    base = tmp_path_factory.mktemp("cuda-sim")
    report = base / "report.xml"
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           f"--basetemp={base / 'tmp'}", f"--junitxml={report}", str(SIM)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    if not report.exists():
        pytest.fail(f"the simulator run produced no report (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    results: dict = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "")
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = child.tag, (child.text or child.get("message") or "")
            elif child.tag == "skipped":
                outcome, message = "skipped", child.get("message") or ""
        results.setdefault(f"{module}::{name.split('[')[0]}", []).append((name, outcome, message))
    return results


@pytest.mark.parametrize("name", _simulated_names())
def test_simulated(simulated, name):
    """One simulated test (all its parametrized cases) passed under NUMBA_ENABLE_CUDASIM=1."""
    __tracebackhide__ = True
    cases = simulated.get(name)
    assert cases, f"{name} did not run in the simulator run"
    bad = [(case, outcome, message) for case, outcome, message in cases if outcome != "passed"]
    if bad:
        pytest.fail("\n\n".join(f"{case}: {outcome} under the CUDA simulator\n{message[-3000:]}"
                                for case, outcome, message in bad), pytrace=False)


# --- code generation (no GPU, no simulator needed) --------------------------------------------

def test_generated_source_shows_the_equations():
    from kernels.cuda_codegen import generate_cuda

    src = generate_cuda(derive.mlp([2, 3, 1], activation="tanh", loss="mse"), "float32")
    compile(src, "<cuda module>", "exec")
    for text in ("#   a1 = tanh(z1)", "#   ∂L/∂z1 = ∂L/∂a1 ⊙ (1 - a1²)", "#   ∂L/∂W1 = ∂L/∂z1ᵀ·x",
                 "#   ∂L/∂b1 = Σₙ ∂L/∂z1", "#   z1 = x·W1ᵀ + 𝟙·b1ᵀ"):
        assert src.count(text) >= 1, text
    assert "v_a1_" in src and "math.tanh(" in src
    assert "DTYPE = np.float32" in src
    # one kernel per elementwise statement, the products through the one tiled GEMM
    assert src.count("_launch_gemm(") >= 5 and src.count("def _gemm(") == 1
    assert "_launch_colsum(N, " in src


def test_generated_rowwise_and_reduction_kernels():
    from kernels.cuda_codegen import generate_cuda

    src = generate_cuda(derive.mlp([2, 3, 3], activation="relu", loss="softmax_cross_entropy"))
    assert "# one thread per row" in src          # softmax cross-entropy's gradient
    assert "cuda.shared.array(TPB, numba.float64)" in src   # the loss: block sums
    assert "_max" in src and "math.log(" in src   # log-sum-exp with the row maximum


def test_generated_optimizer_from_its_rules():
    from kernels.cuda_codegen import generate_optimizer
    from kernels.optim import SGD

    src = generate_optimizer(SGD(lr=0.1, momentum=0.9), "float32")
    compile(src, "<cuda optimizer>", "exec")
    assert "# buf ← " in src and "def update(o_w_f, o_g_f, o_buf_f," in src
    assert "np.float32(" in src


# --- no GPU, no numba-cuda: clear one-line errors ---------------------------------------------

@pytest.fixture
def no_simulator(monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", 0)


def test_no_gpu_message(monkeypatch, no_simulator):
    import kernels
    from derive.errors import SymPropError
    from numba import cuda

    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(SymPropError, match=r"backend 'cuda' needs an NVIDIA GPU with a working driver: "
                                           r"numba.cuda.is_available\(\) is False \(check with `nvidia-smi`"):
        kernels.compile(derive.mlp([2, 3, 1]), backend="cuda", dtype="float32")


def test_no_numba_cuda_message(monkeypatch):
    import importlib.util

    import kernels
    from derive.errors import SymPropError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    with pytest.raises(SymPropError, match=r"backend 'cuda' needs numba-cuda: pip install -e '\.\[cuda\]'"):
        kernels.compile(derive.mlp([2, 3, 1]), backend="cuda")


def test_cli_without_gpu_is_a_one_line_error(monkeypatch, no_simulator, capsys):
    from numba import cuda

    from symprop.cli import main

    monkeypatch.setattr(cuda, "is_available", lambda: False)
    code = main(["verify", str(ROOT / "examples" / "mlp.toml"), "--backend", "cuda"])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "needs an NVIDIA GPU" in err
