"""Checking: compiled gradients against SymPy and finite differences (:mod:`.verify`) and the
pytest plugin users load it through (:mod:`.pytest_plugin`, which imports only pytest)."""
