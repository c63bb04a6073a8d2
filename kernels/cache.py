"""An on-disk cache of generated kernel modules, so Numba's own cache (``cache=True``) can work.

:func:`load` writes a generated module's source to ``<cache dir>/<key>.py``, where ``key`` is the
SHA-256 of the source, of the Python, NumPy and Numba versions and of the source of
:mod:`kernels.cpu.vecmath` (which the generated code inlines: Numba's cache would not notice it
change), and imports it. The cache directory is ``$SYMPROP_CACHE`` or ``~/.cache/symprop``. An existing file is never rewritten when
its content is right (Numba keys its compiled-code cache on the file's modification time); a file
whose content differs from the source, or that fails to import, is deleted and written again
once.

:func:`remember` and :func:`recall` keep a second, small index under ``<cache dir>/derived/``:
a name (the fingerprint of a network and of what was generated for it, see
:func:`kernels.model.compile`) -> the key of the module generated for it. A second process
finds the module by the network's fingerprint and skips the derivation and code generation.
An entry is trusted only when the module it names exists and still hashes to its key; anything
else (missing, unreadable, malformed, stale) reads as a miss, and the caller derives again and
overwrites the entry.

Trust: nothing is imported or unpickled from a cache another user could change. The cache folder
is created owner-only, and :func:`check_private` (owned by this user, no group or other write bit)
holds for the folder, the module, its ``__pycache__`` entries (Numba's pickled index and data) and
the derived-index entry before any of them is read; otherwise :class:`UntrustedCache`.

Examples
--------
>>> key = cache_key("VALUE = 1\\n")
>>> len(key), source_path("VALUE = 1\\n").name == key + ".py"
(64, True)
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["cache_dir", "cache_key", "source_path", "write_source", "load", "clear_memory",
           "generator_version", "remember", "recall", "UntrustedCache", "check_private"]

_LOCK = threading.Lock()
_LOADED: dict[str, ModuleType] = {}
MODULE_PREFIX = "_symprop_kernel_"


def cache_dir() -> Path:
    """``$SYMPROP_CACHE`` if set (and non-empty), else ``~/.cache/symprop``."""
    env = os.environ.get("SYMPROP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "symprop"


class UntrustedCache(ValueError):
    """The kernel cache, or a file in it, could be changed by another user: nothing in it is
    imported or loaded (Numba's index files are pickles, and a generated module is Python)."""


def check_private(path: Path, what: str = "the kernel cache") -> None:
    """Raise :class:`UntrustedCache` unless ``path`` (followed through links) is owned by this
    process's user and writable by nobody else (no group or other write bit). A missing path
    passes: nothing can be loaded from it. Windows (no POSIX modes) is not checked.

    >>> import tempfile
    >>> check_private(Path(tempfile.mkdtemp()))           # mkdtemp makes it 0o700
    >>> p = Path(tempfile.mkdtemp()); p.chmod(0o777)
    >>> check_private(p)                                    # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symprop.kernels.cache.UntrustedCache: ... is writable by other users (mode 777): ...
    """
    if os.name != "posix":   # pragma: no cover
        return
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise UntrustedCache(f"{what} {path} cannot be checked ({e.strerror or e}): "
                             "set SYMPROP_CACHE to a private folder") from None
    if st.st_uid != os.geteuid():
        problem = f"is owned by another user (uid {st.st_uid})"
    elif st.st_mode & 0o022:
        problem = f"is writable by other users (mode {st.st_mode & 0o777:o})"
    else:
        return
    root = cache_dir()
    where = f"{what} {path}" if path == root else f"{path} in the kernel cache {root}"
    raise UntrustedCache(f"{where} {problem}: symprop imports no code from it; make it private "
                         "(chmod go-w, owned by you) or set SYMPROP_CACHE to a private folder")


def private_cache_dir() -> Path:
    """:func:`cache_dir`, created owner-only (0o700) when missing, and checked with
    :func:`check_private` (:class:`UntrustedCache` when another user could change it)."""
    root = cache_dir()
    if not root.exists():
        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            root.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise ValueError(f"the kernel cache {root} cannot be written ({e.strerror or e}): "
                             "set SYMPROP_CACHE to a folder you can write") from None
    if not root.is_dir():
        raise ValueError(f"the kernel cache {root} cannot be written (it is not a folder): "
                         "set SYMPROP_CACHE to a folder you can write")
    check_private(root)
    return root


def _check_module_files(path: Path) -> None:
    """Check a generated module, its folder, and the Numba index and data files that importing and
    calling it would load (``__pycache__/<stem>.*``), before any of them is imported or unpickled."""
    check_private(path.parent)
    check_private(path)
    pycache = path.parent / "__pycache__"
    check_private(pycache)
    if pycache.is_dir():
        for entry in pycache.glob(glob.escape(path.stem) + ".*"):
            check_private(entry)


@functools.cache
def _versions() -> str:
    import numba
    import numpy

    from symprop.kernels.cpu import vecmath

    inlined = hashlib.sha256(Path(vecmath.__file__).read_bytes()).hexdigest()
    return (f"python {sys.version}\nnumpy {numpy.__version__}\nnumba {numba.__version__}\n"
            f"kernels.cpu.vecmath {inlined}\n")


@functools.cache
def generator_version() -> str:
    """SHA-256 of the ``kernels`` package's source files and of :func:`_versions`: what the
    generated code depends on besides the network's derivation (see :func:`derive.fingerprint`)."""
    from symprop.derive.fingerprint import sources_digest

    return sources_digest(Path(__file__).parent, _versions())


def cache_key(source: str) -> str:
    """SHA-256 (hex) of the source, the Python, NumPy and Numba versions and kernels.cpu.vecmath's source."""
    return hashlib.sha256((source + "\n" + _versions()).encode("utf-8")).hexdigest()


def source_path(source: str) -> Path:
    return cache_dir() / f"{cache_key(source)}.py"


def _content_ok(path: Path, source: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == source
    except (OSError, UnicodeDecodeError):
        return False


def write_source(source: str) -> Path:
    """The cache file for ``source``, written atomically if it is missing or wrong; never rewritten
    otherwise. A cache that cannot be written is a ValueError naming it and ``$SYMPROP_CACHE``."""
    private_cache_dir()
    path = source_path(source)
    if path.is_file() and _content_ok(path, source):
        return path
    try:
        _write_source(path, source)
    except OSError as e:
        raise ValueError(f"the kernel cache {cache_dir()} cannot be written ({e.strerror or e}): "
                         "set SYMPROP_CACHE to a folder you can write") from None
    return path


def _write_source(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():   # a folder in the way
        shutil.rmtree(path)
    elif path.exists():  # corrupt (truncated, edited): replace it
        _unlink(path)
    with _temporary_copy(path, source) as tmp:
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)  # atomic and never overwrites a file another process just wrote
        except FileExistsError:
            pass
        except OSError:  # file systems without hard links
            if not path.exists():
                os.replace(tmp, path)


@contextlib.contextmanager
def _temporary_copy(path: Path, text: str):
    """A temporary file holding ``text`` in ``path``'s folder (so it can be linked or renamed onto
    ``path`` atomically), removed on leaving the block if it is still there."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _import(path: Path) -> ModuleType:
    with contextlib.suppress(OSError):   # where Numba keeps the index files: owner-only from the start
        (path.parent / "__pycache__").mkdir(mode=0o700)
    _check_module_files(path)
    name = MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load(source: str) -> ModuleType:
    """Write (if needed) and import the module with this source; one module object per file per process."""
    with _LOCK:
        path = write_source(source)
        key = str(path)
        module = _LOADED.get(key)
        if module is not None and _content_ok(path, source):
            return module
        try:
            module = _import(path)
        except UntrustedCache:
            raise
        except Exception:
            # a corrupt file, or a corrupt Numba cache entry of a function compiled on import (those
            # with explicit signatures): delete them, rewrite, import once more
            _unlink(path)
            _remove_numba_files(path.parent / "__pycache__", path.stem)
            path = write_source(source)
            module = _import(path)
        for value in vars(module).values():
            _heal_numba_cache(value)
        _LOADED[key] = module
        return module


def _heal_numba_cache(dispatcher) -> None:
    """Make a corrupt Numba cache entry of ``dispatcher`` (a truncated or garbled index or data
    file, a folder in its place) a miss: Numba compiles again and overwrites it; a kernel that
    cannot be saved still runs. Numba itself raised UnpicklingError, EOFError, AttributeError or
    IsADirectoryError on every later call."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None or not hasattr(cache, "load_overload") or getattr(cache, "_symprop_healing", False):
        return
    load, save = cache.load_overload, cache.save_overload

    index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)

    def remove():
        if index is not None:   # <function's stem>.nbi and <function's stem>.<n>.nbc
            _remove_numba_files(Path(index).parent, Path(index).stem)

    def load_overload(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception:
            remove()
            return None

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception:   # (Numba reads a folder in place of a data file as a miss)
            remove()
            with contextlib.suppress(Exception):
                save(sig, data)
        if index is not None:   # Numba writes with the process's umask: none may be group-writable
            _make_private(Path(index).parent, Path(index).stem)

    cache.load_overload, cache.save_overload, cache._symprop_healing = load_overload, save_overload, True


def _make_private(folder: Path, stem: str) -> None:
    """Clear the group and other write bits of Numba's files ``<stem>.*`` in ``folder``."""
    for entry in folder.glob(glob.escape(stem) + ".*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            mode = entry.stat().st_mode
            if mode & 0o022 and entry.is_file():
                entry.chmod(mode & 0o755)


def _remove_numba_files(folder: Path, stem: str) -> None:
    """Delete Numba's index and data files ``<stem>.….nbi``/``.nbc`` in ``folder``, whatever
    they hold (a folder in the place of one too): a module's stem names all its functions' files."""
    for stale in folder.glob(glob.escape(stem) + ".*") if folder.is_dir() else ():
        if stale.suffix in (".nbi", ".nbc"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else _unlink(stale)


def _index_path(name: str) -> Path:
    if len(name) != 64 or any(c not in "0123456789abcdef" for c in name):
        raise ValueError(f"index names are SHA-256 hex digests, got {name!r}")
    return cache_dir() / "derived" / f"{name}.json"


def remember(name: str, source: str, **meta) -> None:
    """Record that ``source`` (already written by :func:`load`) was generated for ``name``, with
    JSON-native ``meta`` (returned by :func:`recall`). Written atomically; replaces any entry."""
    path = _index_path(name)
    entry = json.dumps({"source": cache_key(source), "meta": meta}, sort_keys=True)
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if path.is_dir():   # a folder in the way
            shutil.rmtree(path)
        with _temporary_copy(path, entry) as tmp:
            os.replace(tmp, path)
    except OSError:   # the index only saves a later process the derivation: train on without it
        pass


def recall(name: str) -> tuple[str, dict] | None:
    """``(source, meta)`` remembered for ``name``, or None when there is no sound entry: the
    entry must parse and name a cached module whose content still hashes to its key."""
    path = _index_path(name)
    check_private(private_cache_dir() / "derived")
    check_private(path)
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        key, meta = entry["source"], entry["meta"]
        if not isinstance(key, str) or not isinstance(meta, dict):
            return None
        source = (cache_dir() / f"{key}.py").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return (source, meta) if cache_key(source) == key else None


def clear_memory() -> None:
    """Forget the modules imported by this process (the files stay)."""
    with _LOCK:
        for module in _LOADED.values():
            sys.modules.pop(module.__name__, None)
        _LOADED.clear()


def generated_name(net, *what) -> str | None:
    """SHA-256 of the network's :func:`derive.fingerprint`, :func:`generator_version`
    and ``what`` (which function, for which dtype, optimizer, backend); None without a fingerprint."""
    from symprop.derive.fingerprint import fingerprint

    fp = fingerprint(net)
    if fp is None:
        return None
    text = "\n".join([fp, generator_version(), *map(str, what)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def remembered(name: str | None, make, valid=lambda meta: True) -> tuple[str, dict]:
    """``(source, meta)`` remembered under ``name`` (:func:`recall`) when ``valid(meta)``,
    else ``make()``, whose source is written to the cache and remembered. A warm process skips
    ``make``: the derivation (``derive.backprop``, about 0.3 s for a 784-256-128-10 net) and the
    code generation."""
    found = recall(name) if name is not None else None
    if found is not None and valid(found[1]):
        return found
    source, meta = make()
    if name is not None:
        write_source(source)
        remember(name, source, **meta)
    return source, meta
