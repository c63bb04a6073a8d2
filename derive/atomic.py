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

Targets: a symlink is written through (the file it points at is replaced, the link stays, as the
user who made the link meant); a FIFO, a device or a socket is refused (it would be replaced by a
regular file and nothing would reach it), as is a folder.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Mapping

__all__ = ["atomic_file", "check_writable", "same_file", "check_outputs_distinct"]

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


def _target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` replaces: ``path`` with symlinks followed; a ValueError for a
    folder or for something that is not a regular file (FIFO, device, socket)."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return real   # missing (made on write) or unreadable (the write names the error)
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        shown = f"{path} (-> {real})" if real != path.absolute() else str(path)
        raise ValueError(f"{shown}: is {kind}, not a regular file: symprop writes only regular files")
    return real


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: the same inode (through symlinks and hard links)
    when both exist, else the same path once symlinks are followed.

    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "a").write_text("x")
    1
    >>> os.link(d / "a", d / "b"); same_file(d / "a", d / "b"), same_file(d / "a", d / "c")
    (True, False)
    """
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs_distinct(outputs: Mapping[str, object], inputs: Mapping[str, object]) -> None:
    """Refuse, in one line naming both, an output that is an input or another output.

    ``outputs`` and ``inputs`` map what names a file (an option such as ``--save``) to its path
    (None or empty: not given). Runs before any work, so nothing the user did not name as an output
    is overwritten.

    >>> check_outputs_distinct({"--save": "d.npz"}, {"--data": "d.npz"})
    Traceback (most recent call last):
    ...
    ValueError: --save d.npz is the file --data reads (d.npz): give another output path
    """
    given_out = [(k, v) for k, v in outputs.items() if v]
    given_in = [(k, v) for k, v in inputs.items() if v]
    for q, (option, path) in enumerate(given_out):
        for other, other_path in given_in:
            if same_file(path, other_path):
                raise ValueError(f"{option} {path} is the file {other} reads ({other_path}): give another output path")
        for other, other_path in given_out[:q]:
            if same_file(path, other_path):
                raise ValueError(f"{other} and {option} name the same file ({path})")


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
    path = _target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as e:
        raise _refuse_unwritable(path, e) from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file for writing (``"wb"`` or ``"w"``, UTF-8) that replaces ``path``
    when the block ends without an exception; the target's folders are made if missing. A
    symlink is written through; a FIFO, device or socket is refused (see the module docstring)."""
    path = _target(path)
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
