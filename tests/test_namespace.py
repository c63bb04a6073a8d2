"""One import namespace: symprop installs as ``symprop.derive``/``.kernels``/``.reports``, so a
user project with its own ``derive``, ``kernels`` or ``reports`` package keeps them, and its pytest
runs load symprop's plugin without touching them."""

import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_TEST = '''
import derive, kernels, reports

def test_own_packages():
    assert (derive.MINE, kernels.MINE, reports.MINE) == ("derive", "kernels", "reports")

def test_symprop_is_there(request):
    import symprop
    assert symprop.derive.__name__ == "symprop.derive"
    assert callable(request.getfixturevalue("assert_gradients"))   # symprop's pytest plugin loaded
    assert symprop.mlp([2, 3, 1]).number_of_nodes() == 10
'''


def _user_project(folder: Path) -> Path:
    for name in ("derive", "kernels", "reports"):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(f"MINE = {name!r}\n")
    (folder / "test_user.py").write_text(USER_TEST)
    (folder / "pytest_plugin.py").write_text("raise RuntimeError('a user module named pytest_plugin was imported')\n")
    return folder


def _run_user_tests(python: str, folder: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)


def test_user_project_keeps_its_packages(tmp_path):
    proc = _run_user_tests(sys.executable, _user_project(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 passed" in proc.stdout


def test_import_symprop_is_light():
    code = ("import sys, symprop; import symprop.kernels.check.pytest_plugin; "
            "heavy = [m for m in ('sympy', 'numba', 'numpy', 'networkx', 'symprop.derive', 'derive', 'kernels') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_short_names():
    import symprop
    from symprop import derive, kernels, reports

    assert symprop.mlp is derive.mlp and symprop.compile is kernels.compile and symprop.report is reports.write
    assert set(symprop.__all__) <= set(dir(symprop))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        symprop.nope  # noqa: B018


@pytest.mark.slow
def test_wheel_installs_one_namespace(tmp_path):
    """The wheel holds only ``symprop``; installed in a fresh environment (its dependencies taken from
    this one), a user project with its own ``derive``/``kernels``/``reports`` still passes its tests."""
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(wheels.glob("symprop-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"symprop"}
    sources = {f"symprop/{p.relative_to(ROOT).as_posix()}" for folder in ("derive", "kernels", "reports")
               for p in (ROOT / folder).rglob("*.py")}
    assert sources - set(names) == set()            # every module, sub-packages included
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    # the venv sees this environment's packages (numpy, sympy, ...) and symprop's editable finder;
    # the wheel installed into the venv comes first on its path.
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    probe = subprocess.run([python, "-c", "import symprop.derive as d; print(d.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).is_relative_to(site), probe.stdout
    project = tmp_path / "project"
    project.mkdir()
    proc = _run_user_tests(python, _user_project(project))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_package_folder_is_listed_for_the_wheel():
    """pyproject.toml lists the packages by hand (package-dir maps them under symprop): a new
    sub-package must be added there, or the wheel ships without it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"symprop." + ".".join(p.parent.relative_to(ROOT).parts)
               for folder in ("derive", "kernels", "reports") for p in (ROOT / folder).rglob("__init__.py")}
    assert folders - listed == set()
