"""The CUDA backend (kernels.cuda.codegen, kernels.cuda.model).

CI has no GPU, so the backend's numerical tests (``tests/cuda_sim``: loss, gradients and whole
epochs against the CPU backend, divergence, verify, train) run under Numba's CUDA simulator.
The simulator has to be switched on before Numba is imported, which this process has done
already, so :func:`simulated` runs that folder once in a second pytest process with
``NUMBA_ENABLE_CUDASIM=1`` and every test there is mirrored here by one test that fails with the
simulated test's own report. The rest (code generation, the messages without a GPU) runs here.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from symprop import derive

pytestmark = pytest.mark.slow   # the CUDA simulator run and the PTX compiles take minutes

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
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT),
           "SYMPROP_CUDA_SIGNATURES": str(base / "signatures.json")}
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
    signatures = base / "signatures.json"
    results["signatures"] = json.loads(signatures.read_text(encoding="utf-8")) if signatures.exists() else []
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


def test_simulated_kernels_compile_for_a_gpu(simulated, monkeypatch):
    """Every kernel the simulator launched, compiled to PTX for sm_90 with the argument types
    it was launched with: the real CUDA compiler's typing, which the simulator skips. Needs
    NVVM (pip packages nvidia-cuda-nvcc-cu12 and nvidia-cuda-nvrtc-cu12, in the test extras on
    Linux), not a GPU."""
    import importlib.util
    import types as pytypes

    import numba
    import numba.cuda.api
    import numba.cuda.dispatcher
    from numba import cuda, types

    def trivial(a):
        a[0] = 1.0

    try:
        cuda.compile_ptx(trivial, (types.float64[:],), cc=(9, 0))
    except Exception as e:  # NVVM/NVRTC missing: not installable everywhere
        pytest.skip(f"no CUDA compiler libraries to compile PTX with ({type(e).__name__}): "
                    f"pip install nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12")
    # device functions are compiled for the current device's compute capability: pretend one
    device = lambda: pytypes.SimpleNamespace(compute_capability=(9, 0))  # noqa: E731
    monkeypatch.setattr(numba.cuda.api, "get_current_device", device)
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device", device)

    def numba_type(d):
        if d[0] == "array":
            return types.Array(numba.from_dtype(np.dtype(d[1])), d[2], d[3])
        return getattr(types, d[0])

    signatures = simulated["signatures"]
    assert len(signatures) > 30, "the simulator run recorded too few kernel launches"
    modules, failures = {}, []
    for path, name, args in signatures:
        if path not in modules:
            spec = importlib.util.spec_from_file_location(f"_ptx_check_{len(modules)}", path)
            modules[path] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(modules[path])
        kernel = getattr(modules[path], name)
        try:
            cuda.compile_ptx(kernel.py_func, tuple(numba_type(a) for a in args), cc=(9, 0))
        except Exception as e:
            failures.append(f"{name}{tuple(args)} in {path}:\n{str(e)[:1500]}")
    assert not failures, f"{len(failures)} of {len(signatures)} kernels do not compile:\n\n" + "\n\n".join(failures[:5])


# --- code generation (no GPU, no simulator needed) --------------------------------------------

def test_generated_source_shows_the_equations():
    from symprop.kernels.cuda.codegen import generate_cuda

    src = generate_cuda(derive.mlp([2, 3, 1], activation="tanh", loss="mse"), "float32")
    compile(src, "<cuda module>", "exec")
    for text in ("#   a1 = tanh(z1)", "#   ∂L/∂z1 = ∂L/∂a1 ⊙ (1 - a1²)", "#   ∂L/∂W1 = ∂L/∂z1ᵀ·x",
                 "#   ∂L/∂b1 = Σₙ ∂L/∂z1", "#   z1 = x·W1ᵀ + 𝟙·b1ᵀ"):
        assert src.count(text) >= 1, text
    assert "v_a1_" in src and "_tanh(" in src and "_tanh = math.tanh" in src   # CUDA's own tanh
    assert "DTYPE = np.float32" in src
    # one kernel per elementwise statement, the products through the one tiled GEMM
    assert src.count("_launch_gemm(") >= 5 and src.count("def _gemm(") == 1
    assert "_launch_colsum(N, " in src


def test_generated_rowwise_and_reduction_kernels():
    from symprop.kernels.cuda.codegen import generate_cuda

    src = generate_cuda(derive.mlp([2, 3, 3], activation="relu", loss="softmax_cross_entropy"))
    assert "# one thread per row" in src          # softmax cross-entropy's gradient
    assert "cuda.shared.array(TPB, numba.float64)" in src   # the loss: block sums
    assert "_max" in src and "math.log(" in src   # log-sum-exp with the row maximum


def test_generated_optimizer_from_its_rules():
    from symprop.kernels.cuda.codegen import generate_optimizer
    from symprop.kernels.training.optim import SGD

    src = generate_optimizer(SGD(lr=0.1, momentum=0.9), "float32", sizes=(12, 4))
    compile(src, "<cuda optimizer>", "exec")
    assert "# buf ← " in src and "def update(p0_w, p0_g, p0_buf, p1_w, p1_g, p1_buf," in src
    assert "elif e < 16:" in src and "e -= 12" in src   # one launch for both parameters
    assert "np.float32(" in src


# --- no GPU, no numba-cuda: clear one-line errors ---------------------------------------------

@pytest.fixture
def no_simulator(monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "ENABLE_CUDASIM", 0)


def test_no_gpu_message(monkeypatch, no_simulator):
    from symprop import kernels
    from symprop.derive.errors import SymPropError
    from numba import cuda

    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(SymPropError, match=r"backend 'cuda' needs an NVIDIA GPU with a working driver: "
                                           r"numba.cuda.is_available\(\) is False \(check with `nvidia-smi`"):
        kernels.compile(derive.mlp([2, 3, 1]), backend="cuda", dtype="float32")


def test_no_numba_cuda_message(monkeypatch):
    import importlib.util

    from symprop import kernels
    from symprop.derive.errors import SymPropError

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
