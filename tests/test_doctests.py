"""The docstring examples of every module under ``symprop``, run as tests.

The modules are imported by their installed names (``symprop.derive.ops``), never from the
repository's folders as top-level packages, so what is tested is what a user imports.
"""

import doctest
import importlib
import pkgutil

import pytest

import symprop

#: Modules whose import needs what CI lacks (none today); kept as a table so one is added on purpose.
SKIP: set[str] = set()


def _modules() -> list[str]:
    names = ["symprop"]
    for sub in ("derive", "kernels", "reports"):
        package = importlib.import_module(f"symprop.{sub}")
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    names += ["symprop.cli"]
    return sorted(set(names) - SKIP)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    tests = finder.find(module, name, globs=vars(module).copy())
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see the output above)"
