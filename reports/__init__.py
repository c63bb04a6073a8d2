r"""LaTeX/PDF reports: the derived equations, figures, training and verification of a network.

:func:`write` puts a ``.tex`` file and its figures folder (``<name>-figures/``) where you ask and
compiles the PDF with the real TeX toolchain (``latexmk``/``pdflatex``, never with shell escape) when it is
installed; without TeX it says how to get the PDF. Importing this package is light: matplotlib
and the compiled kernels are imported only when a report is written.

Examples
--------
>>> import tempfile, os
>>> from symprop import derive, reports
>>> out = os.path.join(tempfile.mkdtemp(), "mlp.tex")
>>> result = reports.write(derive.mlp([2, 3, 1], activation="tanh"), out, pdf=False)
>>> [p.name for p in result.figures]
['activation-1.pdf']
>>> r"\section{Layer recursion}" in result.tex.read_text()
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from symprop.derive.atomic import atomic_file

from .build import ReportError, compile_pdf, figures_dir, find_tex, install_hint, report_paths

__all__ = ["write", "ReportResult", "ReportError", "compile_pdf", "figures_dir", "find_tex", "report_paths"]


@dataclass
class ReportResult:
    """What :func:`write` wrote: the ``.tex``, the figures, the PDF (None when not compiled) and a
    one-line message for the user."""

    tex: Path
    figures: list[Path] = field(default_factory=list)
    pdf: Path | None = None
    message: str = ""

    @property
    def path(self) -> Path:
        """The PDF when there is one, else the ``.tex``."""
        return self.pdf or self.tex


def _activation_groups(bp) -> list[tuple[list[str], object]]:
    """Activation nodes grouped by their function (same scalar function: one figure)."""
    groups: dict[str, tuple[list[str], object]] = {}
    for v in bp.info.order:
        nd = bp.nodes[v]
        if nd.op != "activation" or "x" not in nd.derivatives:
            continue
        d = nd.derivatives["x"]
        key = str(d.function)
        groups.setdefault(key, ([], d))[0].append(v)
    return list(groups.values())


def write(net, path: str | os.PathLike, *, history=None, verification=None, optimizer=None, data=None,
          parameters=None, model=None, title: str | None = None, pdf: bool | None = None) -> ReportResult:
    """Write the report of ``net`` (a network graph or a spec file path) to ``path`` (``.tex`` or ``.pdf``).

    ``history`` (:class:`kernels.training.loop.History`) adds the training curves; ``data`` (a
    :class:`kernels.training.data.Dataset`) and the trained ``parameters`` (or a compiled ``model``, whose
    parameters are used) add the decision boundary for 2-D inputs (the fitted curve for 1-D);
    ``verification`` (:class:`kernels.check.verify.VerifyResult`) adds its table; ``optimizer``
    (:class:`kernels.training.optim.Optimizer`) gives the update rule shown (default: the trainer's Adam).
    ``pdf``: None compiles when TeX is installed, True requires it (:class:`ReportError`
    otherwise), False writes only the ``.tex`` and figures. Figures go to ``<name>-figures/`` next
    to the ``.tex`` (:func:`figures_dir`); figures of an earlier write there that this one does not
    make are removed. The same inputs give the same ``.tex`` and figure bytes.
    """
    from symprop import derive
    from symprop.kernels.training.optim import OPTIMIZERS, Adam, get_optimizer

    from . import figures as F
    from . import latex as L

    tex_path, pdf_path = report_paths(path)   # before any work: a bad name or a folder in the way
    if isinstance(net, (str, os.PathLike)):
        net = derive.load(net)
    fig_dir = figures_dir(tex_path)
    for old in (*fig_dir.glob("activation-*.pdf"), fig_dir / "training.pdf", fig_dir / "decision.pdf"):
        old.unlink(missing_ok=True)  # only what a report writes: nothing stale survives a rewrite
    bp = derive.backprop(net)
    graph_name = str(net.graph.get("name", "network"))
    doc_title = L.text(title) if title is not None else rf"Backpropagation of {L.name(graph_name)}"
    parts = L.Parts(title=doc_title)
    written: list[Path] = []

    for k, (nodes, deriv) in enumerate(_activation_groups(bp), start=1):
        rel = f"{fig_dir.name}/activation-{k}.pdf"
        written.append(F.activation_figure(deriv, tex_path.parent / rel))
        parts.activations.append(L.Figure(rel, L.activation_caption(bp, nodes, deriv), r"0.48\textwidth"))

    if optimizer is not None:
        parts.optimizer = L.optimizer_section(optimizer)
    elif history is not None and history.optimizer and history.optimizer.lower() in OPTIMIZERS:
        parts.optimizer = L.optimizer_section(
            get_optimizer(history.optimizer), rf"Training used {L.text(history.optimizer)}; its hyperparameters "
            r"were not given, so the rule is shown with the defaults. ")
    else:
        parts.optimizer = L.optimizer_section(
            Adam(lr=1e-3), r"No optimizer was given; the rule of \texttt{kernels.train}'s default is shown. ")

    if model is not None and parameters is None:
        parameters = model.parameters
    if history is not None:
        parts.training = L.training_text(history, data, optimizer)
        if history.epochs:
            rel = f"{fig_dir.name}/training.pdf"
            written.append(F.training_figure(history, tex_path.parent / rel))
            shown = "Loss and accuracy" if any("accuracy" in e for e in history.epochs) else "Loss"
            parts.training_figures.append(L.Figure(rel, f"{shown} per epoch.", r"0.9\textwidth"))
    if data is not None and parameters is not None:
        labels = data.y
        rel = f"{fig_dir.name}/decision.pdf"
        fig = F.decision_figure(bp, parameters, data.X, labels, tex_path.parent / rel)
        if fig is not None:
            written.append(fig)
            what = ("Decision boundary of the trained network over the training data (the black line is the "
                    "decision level)" if data.n_features == 2 else "The trained network's output over the data")
            if parts.training is None:
                parts.training = L.training_text(history, data, optimizer) if history is not None else (
                    rf"Data: {L.name(data.name)}, {int(data.n_samples)} rows.")
            parts.training_figures.append(L.Figure(rel, what + ".", r"0.55\textwidth"))
    if verification is not None:
        parts.verification = L.verification_section(verification)

    with atomic_file(tex_path, "w") as f:
        f.write(L.document(bp, parts))
    result = ReportResult(tex=tex_path, figures=written)
    if pdf is False:
        result.message = f"wrote {tex_path} and {len(written)} figures (PDF not requested)"
        return result
    if find_tex() is None:
        if pdf:
            raise ReportError(install_hint(tex_path))
        result.message = install_hint(tex_path)
        return result
    result.pdf = compile_pdf(tex_path, target=pdf_path)
    result.message = f"wrote {result.pdf}"
    return result
