"""Compiling a report's ``.tex`` to PDF with the real TeX toolchain, safely.

``latexmk -pdf`` (or ``pdflatex`` twice when latexmk is missing) runs in a temporary folder
holding a copy of the ``.tex`` and its figures folder (:func:`figures_dir`); only the PDF is copied back. Shell escape
is always off (``-no-shell-escape``), TeX may neither write nor read outside that folder and
the TeX tree (``openout_any=p``, ``openin_any=p``: defence in depth, escaping is the real
defence) and the PDF is reproducible (``SOURCE_DATE_EPOCH``). A failing run raises
:class:`ReportError` with the log's error lines (``! ...`` and the ``l.<n>`` context), not the
whole log. Without TeX, :func:`compile_pdf` returns None and :func:`install_hint` says what to do.

Examples
--------
>>> summarize_log("(./r.tex\\n! Undefined control sequence.\\nl.7 \\\\foo\\n\\n!  ==> Fatal error occurred, no output PDF file produced!\\n")
'! Undefined control sequence.\\nl.7 \\\\foo'
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from symprop.derive.atomic import atomic_file, check_writable
from symprop.derive.errors import SymPropError

__all__ = ["ReportError", "compile_pdf", "figures_dir", "find_tex", "summarize_log", "install_hint", "TEX_PACKAGES"]

#: The Debian packages a report needs (TikZ is in texlive-pictures).
TEX_PACKAGES = ("texlive-latex-base", "texlive-latex-recommended", "texlive-pictures", "latexmk")
#: A fixed date for pdfTeX (reproducible PDFs: same .tex, same bytes).
SOURCE_DATE_EPOCH = "946684800"
_MAX_LINES = 16
#: The name LaTeX runs on in its temporary folder (see compile_pdf).
_JOB = "document.tex"


class ReportError(SymPropError):
    """A report could not be written or compiled; the message holds the LaTeX errors."""


def find_tex() -> tuple[str, str] | None:
    """``("latexmk", path)`` or ``("pdflatex", path)``; None without TeX."""
    for tool in ("latexmk", "pdflatex"):
        path = shutil.which(tool)
        if path and (tool != "latexmk" or shutil.which("pdflatex")):
            return tool, path
    return None


def install_hint(tex_path: str | os.PathLike) -> str:
    name = Path(tex_path).name
    return (f"wrote {tex_path}; install TeX Live (apt-get install {' '.join(TEX_PACKAGES)}) and run "
            f"`latexmk -pdf {name}` in {Path(tex_path).parent or '.'} to get the PDF")


def summarize_log(log: str) -> str:
    """The error lines of a LaTeX log: each ``! ...`` message and its ``l.<n>`` context line(s)."""
    lines = log.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines) and len(out) < _MAX_LINES:
        line = lines[i]
        if line.startswith("!") and "==> Fatal error occurred" not in line and "Emergency stop" not in line:
            out.append(line.rstrip())
            # the context: up to the ``l.<n>`` line and the line after it (the rest of the source line)
            for j in range(i + 1, min(i + 12, len(lines))):
                if lines[j].startswith("l."):
                    out.append(lines[j].rstrip())
                    if j + 1 < len(lines) and lines[j + 1].strip():
                        out.append(lines[j + 1].rstrip())
                    i = j
                    break
                if lines[j].startswith("!"):
                    break
        elif "LaTeX Error" in line and not line.startswith("!"):
            out.append(line.rstrip())
        i += 1
    if not out:  # no error message found: the last lines of the log tell what happened
        out = [ln.rstrip() for ln in lines if ln.strip()][-6:]
    return "\n".join(out[:_MAX_LINES])


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"openout_any": "p", "openin_any": "p", "shell_escape": "f", "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
                "FORCE_SOURCE_DATE": "1", "TEXINPUTS": "", "max_print_line": "1000"})
    return env


def figures_dir(tex_path: str | os.PathLike) -> Path:
    r"""The folder of a report's figures: ``<stem>-figures`` next to its ``.tex``.

    One folder per report, so two reports written to one folder keep their own figures. Characters
    of the stem outside ``[A-Za-z0-9_-]`` become ``_``, so the name is safe inside
    ``\includegraphics``, and such a stem also gets 8 hex digits of its hash, so ``a b`` and
    ``a_b`` do not share a folder.

    >>> figures_dir("out/report.tex").as_posix()
    'out/report-figures'
    >>> figures_dir("out/my report.tex").as_posix()
    'out/my_report-9110ab62-figures'
    """
    tex_path = Path(tex_path)
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", tex_path.stem)
    if safe != tex_path.stem:
        safe += "-" + hashlib.sha256(tex_path.stem.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return tex_path.parent / (safe + "-figures")


def report_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(tex, pdf)`` of a report asked for as ``path`` (``NAME.tex`` or ``NAME.pdf``, in any case:
    the name given is the one written); ValueError when it is not such a name, or when a folder
    or file is in the way of the ``.tex``, the PDF or the figures (checked before any work).

    >>> [p.as_posix() for p in report_paths("out/Net.PDF")]
    ['out/Net.tex', 'out/Net.PDF']
    """
    p = Path(path)
    if p.suffix.lower() not in (".tex", ".pdf") or not p.stem:
        raise ValueError(f"{path}: a report path must be a file name ending in .tex or .pdf")
    tex = p if p.suffix.lower() == ".tex" else p.with_suffix(".tex")
    pdf = p if p.suffix.lower() == ".pdf" else p.with_suffix(".pdf")
    for target in (tex, pdf):
        check_writable(target)
    figures = figures_dir(tex)
    if figures.exists() and not figures.is_dir():
        raise ValueError(f"{path}: {figures} (the report's figures folder) is a file")
    return tex, pdf


def compile_pdf(tex_path: str | os.PathLike, timeout: float = 120.0, target: str | os.PathLike | None = None
                ) -> Path | None:
    """Compile ``tex_path`` to the PDF next to it (or to ``target``); returns its path, or None
    when TeX is missing.

    Raises :class:`ReportError` with the relevant log lines when compilation fails.
    """
    tex_path = Path(tex_path)
    tool = find_tex()
    if tool is None:
        return None
    if not tex_path.is_file():
        raise ReportError(f"{tex_path}: no such file")
    with tempfile.TemporaryDirectory(prefix="symprop-tex-") as tmp:
        work = Path(tmp)
        # LaTeX runs on a fixed name: a user's file name never reaches the command line (one
        # starting with "-" would be read as an option, and latexmk's -pdflatex=... runs a shell)
        source = work / _JOB
        shutil.copy2(tex_path, source)
        figures = figures_dir(tex_path)
        if figures.is_dir():
            shutil.copytree(figures, work / figures.name)
        flags = ["-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape"]
        if tool[0] == "latexmk":
            runs = [[tool[1], "-pdf", "-quiet", *flags, source.name]]
        else:
            runs = [[tool[1], *flags, source.name]] * 2
        for cmd in runs:
            try:
                proc = subprocess.run(cmd, cwd=work, env=_environment(), stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True, errors="replace", timeout=timeout)
            except subprocess.TimeoutExpired:
                raise ReportError(f"{tex_path}: LaTeX did not finish within {timeout:.0f} s") from None
            log_file = source.with_suffix(".log")
            log = log_file.read_text(errors="replace") if log_file.exists() else proc.stdout + proc.stderr
            if proc.returncode != 0:
                raise ReportError(f"LaTeX failed on {tex_path}:\n{summarize_log(log)}")
        pdf = source.with_suffix(".pdf")
        if not pdf.exists():
            raise ReportError(f"LaTeX produced no PDF for {tex_path}:\n{summarize_log(log)}")
        target = Path(target) if target is not None else tex_path.with_suffix(".pdf")
        with pdf.open("rb") as src, atomic_file(target) as dst:
            shutil.copyfileobj(src, dst)
    return target
