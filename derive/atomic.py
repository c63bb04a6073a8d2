"""Files written whole or not at all: a fresh temporary file beside the target, renamed over it.

A reader never sees half a file, a failed write leaves the old file as it was and no temporary
file behind, and the temporary name is unpredictable (``tempfile.mkstemp``). Errors name the
file in one line (a ValueError): a folder where the file should be, no permission, a full disk.
:mod:`derive.spec` saves networks and :mod:`kernels.training.loop` checkpoints, parameters and
histories through it.

>>> import pathlib, tempfile
>>> target = pathlib.Path(tempfile.mkdtemp()) / "new folder" / "a.txt"
>>> with atomic_file(target, "w") as f:
...     _ = f.write("hello")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('hello', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_file", "check_writable"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def _refuse_unwritable(path: Path, e: OSError | None = None):
    """The one-line ValueError for a path :func:`atomic_file` cannot write."""
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():
                return ValueError(f"{path}: {folder} is a file, not a folder")
            break
    reason = f" ({e.strerror or e})" if e is not None else ""
    return ValueError(f"{path}: cannot write there{reason}")


def check_writable(path: str | os.PathLike) -> None:
    """Refuse now, in one line, a path :func:`atomic_file` could not write later (a folder in
    the way, a file where a folder should be, no permission), by making its folders and a
    temporary file beside it: a long job checks its outputs before it starts.

    >>> import pathlib, tempfile
    >>> check_writable(pathlib.Path(tempfile.mkdtemp()))
    Traceback (most recent call last):
    ...
    ValueError: ...: is a folder, not a file
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as e:
        raise _refuse_unwritable(path, e) from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file for writing (``"wb"`` or ``"w"``, UTF-8) that replaces ``path``
    when the block ends without an exception; the target's folders are made if missing."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _refuse_unwritable(path, e) from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; the target gets the usual mode
        os.replace(tmp, path)
    except OSError as e:
        raise _refuse_unwritable(path, e) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
