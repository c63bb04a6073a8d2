"""The kernel cache is trusted only when no other user can change it (issue: code must never run
from a cache another user could write: Numba's index files are pickles, generated modules are
Python). Each test works in a cache folder of its own."""

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symprop import kernels
from symprop.kernels import cache
from symprop.kernels.cache import UntrustedCache

import nets

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")

COMPILE_AND_CALL = """
import numpy as np
from symprop import derive, kernels
model = kernels.compile(derive.mlp([2, 3, 1], activation="softsign", loss="mse"))
print(model.loss_and_grads(np.ones((2, 2)), np.zeros((2, 1)))[0])
"""


class _Payload:
    """Unpickling this creates the marker file: what an attacker's index file would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _run(cache_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYMPROP_CACHE=str(cache_dir))
    return subprocess.run([sys.executable, "-c", COMPILE_AND_CALL], env=env, capture_output=True, text=True,
                          timeout=300)


@posix_only
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_cache_folder_others_can_write_is_refused(monkeypatch, tmp_path, mode):
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(mode)
    monkeypatch.setenv("SYMPROP_CACHE", str(folder))
    with pytest.raises(UntrustedCache) as info:
        kernels.compile(nets.tanh_mse())
    message = str(info.value)
    assert str(folder) in message and "SYMPROP_CACHE" in message and "\n" not in message
    assert list(folder.iterdir()) == []           # nothing written into it either


@posix_only
def test_the_cli_refuses_it_with_exit_2(monkeypatch, tmp_path, capsys):
    from symprop.cli import main

    folder = tmp_path / "cache"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    monkeypatch.setenv("SYMPROP_CACHE", str(folder))
    assert main(["verify", str(Path(__file__).resolve().parents[1] / "examples" / "mlp.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(folder) in err[0] and "writable by other users" in err[0]


@posix_only
@pytest.mark.slow
def test_a_replaced_index_file_runs_nothing(tmp_path):
    """A Numba index replaced by a pickle that would create a marker file, made writable by others:
    the next process refuses the cache and the marker never appears."""
    folder = tmp_path / "cache"
    first = _run(folder)
    assert first.returncode == 0, first.stderr[-2000:]
    indexes = sorted((folder / "__pycache__").glob("*.nbi"))
    assert indexes
    marker = tmp_path / "pwned"
    for index in indexes:
        index.write_bytes(pickle.dumps(_Payload(marker)))
        index.chmod(0o666)
    second = _run(folder)
    assert second.returncode != 0
    assert "UntrustedCache" in second.stderr and "writable by other users" in second.stderr
    assert not marker.exists()
    # the same payload with private permissions is the owner's own file: the check is about others
    assert (stat.S_IMODE(indexes[0].stat().st_mode) & 0o022) != 0


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_file_owned_by_another_user_is_refused(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SYMPROP_CACHE", str(folder))
    model = kernels.compile(nets.tanh_mse())          # writes the module into the private folder
    module_file = Path(model.path)
    os.chown(module_file, 65534, 65534)
    cache.clear_memory()
    with pytest.raises(UntrustedCache, match="owned by another user"):
        kernels.compile(nets.tanh_mse())


@posix_only
def test_a_derived_index_entry_others_can_write_is_refused(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SYMPROP_CACHE", str(folder))
    net = nets.tanh_mse()
    kernels.compile(net)
    name = cache.generated_name(net, "loss_and_grads", "float64")
    entry = folder / "derived" / f"{name}.json"
    assert entry.is_file() and cache.recall(name) is not None
    entry.chmod(0o646)
    with pytest.raises(UntrustedCache, match="derived"):
        cache.recall(name)


@posix_only
def test_the_default_cache_is_created_owner_only(monkeypatch, tmp_path):
    monkeypatch.delenv("SYMPROP_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    old = os.umask(0o002)                           # a permissive umask must not leak into the cache
    try:
        model = kernels.compile(nets.tanh_mse())
        model.loss_and_grads(np.ones((2, 2)), np.zeros((2, 1)))     # Numba compiles and saves its index
        root = tmp_path / ".cache" / "symprop"
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        for path in root.rglob("*"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o022 == 0, path
    finally:
        os.umask(old)
