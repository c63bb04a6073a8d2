"""Fixtures shared by the test modules, and the suite's house rules.

Two speeds: tests that compile many kernels, run the CUDA simulator, build a wheel or train in
subprocesses carry ``@pytest.mark.slow`` (or ``pytestmark`` for a whole module);
``python -m pytest -m "not slow"`` leaves them out for a quick loop, and CI runs everything.
Shared networks come from ``tests/nets.py`` (the zoo), not from per-module tables.

Every test in ``tests/`` runs with ``SYMPROP_CACHE`` pointing at one temporary kernel cache for
the whole session. The cache is content-addressed (a file's name is the hash of its source and
the versions), so a kernel compiled by one module is exactly the kernel another module would
compile: sharing it saves Numba compile time without changing what is tested. Tests that need an
empty cache make their own with ``tmp_path`` and ``monkeypatch.setenv``.
"""

import pytest


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """The session's kernel cache folder (``SYMPROP_CACHE``)."""
    path = tmp_path_factory.getbasetemp() / "symprop-cache"
    path.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMPROP_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def compiled_model():
    """``compiled_model(make_net, dtype="float64", backend="cpu")``: ``kernels.compile(make_net(), ...)``,
    compiled once per session for each ``(make_net, dtype, backend)``.

    >>> model = compiled_model(lambda: derive.mlp([2, 3, 1]), "float32")   # doctest: +SKIP
    """
    from symprop.kernels.backends import compile

    models: dict = {}

    def get(make_net, dtype: str = "float64", backend: str = "cpu"):
        key = (make_net, dtype, backend)
        if key not in models:
            models[key] = compile(make_net(), backend=backend, dtype=dtype)
        return models[key]

    return get
