r"""The report as a LaTeX document (article, amsmath), assembled from derive's printers.

Sections, in order: the network (a TikZ drawing of the graph and a table of nodes, shapes and
parameter counts), the forward equations, each node's derived backward equations, the layer
recursion (δ equations), the optimizer's update rule, each activation with its derived
derivative (figures), and, when given, training curves, the decision boundary and the gradient
verification table.

All user text (node names, titles, data set names, notes) goes through :func:`text`
(``derive.printing.latex_escape``): a node named ``\input{/etc/passwd}`` prints as those
characters. The preamble maps the escaped specials to typewriter glyphs, so the PDF's text
(``pdftotext``) gives them back verbatim. The document has no date, no absolute path and
nothing unordered: the same inputs give the same bytes.

Examples
--------
>>> print(text(r"\input{/etc/passwd}"))
\textbackslash{}input\{/etc/passwd\}
>>> print(name("a_b"))
\texttt{a\_b}
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from symprop.derive.ops import get_op
from symprop.derive.printing import SympropLatexPrinter, latex_escape, latex_sides

__all__ = ["text", "name", "document", "Figure", "graph_tikz", "node_table", "PREAMBLE"]

PREAMBLE = r"""\documentclass[10pt,a4paper]{article}
\usepackage[utf8]{inputenc}
\input{glyphtounicode}\pdfgentounicode=1
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{booktabs,longtable,array}
\usepackage{tikz}
\usetikzlibrary{arrows.meta}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{4pt}
% user text is escaped; its special characters print as typewriter glyphs (copy-paste as typed)
\DeclareTextCommand{\textunderscore}{OT1}{{\ttfamily\char95}}
\DeclareTextCommand{\textbackslash}{OT1}{{\ttfamily\char92}}
\DeclareTextCommand{\textasciicircum}{OT1}{{\ttfamily\char94}}
\DeclareTextCommand{\textasciitilde}{OT1}{{\ttfamily\char126}}
\DeclareTextCommand{\textbraceleft}{OT1}{{\ttfamily\char123}}
\DeclareTextCommand{\textbraceright}{OT1}{{\ttfamily\char125}}
\DeclareTextCommand{\textless}{OT1}{{\ttfamily\char60}}
\DeclareTextCommand{\textgreater}{OT1}{{\ttfamily\char62}}
"""

_GREEK = {c: n for c, n in (("α", "alpha"), ("β", "beta"), ("γ", "gamma"), ("δ", "delta"), ("ε", "epsilon"),
                            ("η", "eta"), ("θ", "theta"), ("λ", "lambda"), ("μ", "mu"), ("π", "pi"), ("ρ", "rho"),
                            ("σ", "sigma"), ("τ", "tau"), ("φ", "phi"), ("ω", "omega"), ("Σ", "Sigma"),
                            ("Δ", "Delta"), ("Ω", "Omega"))}
_SYMBOLS = {"·": r"\ensuremath{\cdot}", "≤": r"\ensuremath{\le}", "≥": r"\ensuremath{\ge}",
            "←": r"\ensuremath{\leftarrow}", "→": r"\ensuremath{\to}", "∂": r"\ensuremath{\partial}",
            "⊙": r"\ensuremath{\odot}", "√": r"\ensuremath{\surd}", "…": r"\ldots{}", "–": "--", "—": "---",
            "‘": "`", "’": "'", "“": "``", "”": "''", "±": r"\ensuremath{\pm}", "°": r"\ensuremath{^\circ}",
            "ᵀ": r"\ensuremath{^\top}"}
_ACCENTS = {"\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u0327", "\u030a", "\u030c"}


# ASCII that OT1 roman prints as something else (|, quotes) or joins into ligatures (--, ``, !`):
# typewriter glyphs, so the PDF's text gives back what was typed
_VERBATIM = {"|": r"{\ttfamily\char124}", "'": r"{\ttfamily\char13}", "`": r"{\ttfamily\char18}",
             '"': r"{\ttfamily\char34}", "-": "{-}"}


def text(value) -> str:
    """User text, escaped for LaTeX text mode."""
    out = latex_escape(str(value))
    for c, tt in _VERBATIM.items():
        out = out.replace(c, tt)
    return out


def name(value) -> str:
    """A node or parameter name: escaped, in typewriter type."""
    return rf"\texttt{{{text(value)}}}"


def _unicode_declarations(body: str) -> str:
    """``\\DeclareUnicodeCharacter`` for every non-ASCII character pdfLaTeX's OT1 fonts lack:
    Greek as math letters, others as ``[U+XXXX]``, so any name compiles."""
    lines = []
    for c in sorted({c for c in body if ord(c) > 127}):
        base = unicodedata.normalize("NFD", c)
        if ord(c) <= 0x17F and len(base) == 2 and base[0].isascii() and base[1] in _ACCENTS:
            continue  # accented Latin letters: inputenc composes them
        if c in _SYMBOLS:
            value = _SYMBOLS[c]
        elif c in _GREEK:
            value = rf"\ensuremath{{\{_GREEK[c]}}}"
        else:
            value = rf"{{\ttfamily[U+{ord(c):04X}]}}"
        lines.append(rf"\DeclareUnicodeCharacter{{{ord(c):04X}}}{{{value}}}")
    return "\n".join(lines) + ("\n" if lines else "")


@dataclass(frozen=True)
class Figure:
    """A figure file (relative to the .tex) and its caption (LaTeX, already escaped)."""

    path: str
    caption: str
    width: str = r"0.6\textwidth"


# --- the network -------------------------------------------------------------------------------

def _describe(bp, v) -> str:
    """The node's op with its numeric attributes, as its form puts it (``activation leaky_relu (alpha 0.2)``)."""
    op = get_op(bp.graph.nodes[v]["op"])
    return op.form.describe(op, bp.graph.nodes[v], detailed=True)


def _shape(bp, v) -> str:
    dims = (["N"] if bp.info.batched[v] else []) + [str(d) for d in bp.info.shapes[v]]
    return r" $\times$ ".join(dims) if dims else "scalar"


def parameter_count(bp, v) -> int:
    return int(np.prod(bp.info.shapes[v])) if v in bp.info.parameters else 0


def _columns(bp) -> dict[str, int]:
    """Drawing column of each node: its longest path from an input; parameters and targets one
    column left of their first consumer; penalties next to the loss."""
    g = bp.graph
    col: dict[str, int] = {}
    leaves = {*bp.info.parameters, *bp.info.targets}
    penalties = set(bp.info.penalties)
    for v in bp.info.order:
        if v in leaves or v in penalties:
            continue
        preds = [u for u in g.predecessors(v) if u not in leaves]
        col[v] = 1 + max((col[u] for u in preds), default=-1)
    for v in penalties:
        col[v] = col.get(bp.info.loss, 1)
    for v in leaves:
        consumers = [col[w] for w in g.successors(v) if w in col and w not in penalties]
        col[v] = max(0, min(consumers, default=1) - 1)
    return col


def graph_tikz(bp) -> str:
    """The graph as a TikZ picture: one column per depth, names escaped; shrunk to the text width."""
    g = bp.graph
    col = _columns(bp)
    index = {v: i for i, v in enumerate(bp.info.order)}
    by_col: dict[int, list[str]] = {}
    for v in bp.info.order:
        by_col.setdefault(col[v], []).append(v)
    styles = {"input": "fill=blue!10", "target": "fill=blue!10", "parameter": "fill=orange!15",
              "loss": "fill=red!12", "penalty": "fill=red!12"}
    out = [r"\begin{center}", r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
           r"\begin{tikzpicture}[x=3.1cm,y=1.25cm,every node/.style={draw,rounded corners=2pt,align=center,"
           r"inner sep=3pt,font=\small},>={Stealth[length=5pt]}]"]
    for c in sorted(by_col):
        vs = by_col[c]
        for r, v in enumerate(vs):
            y = (len(vs) - 1) / 2 - r
            style = styles.get(g.nodes[v]["op"], "fill=green!8")
            out.append(rf"\node[{style}] (n{index[v]}) at ({c},{y:.2f}) {{{name(v)}\\[-1pt]"
                       rf"{{\scriptsize {text(_describe(bp, v))}}}}};")
    for v in bp.info.order:
        for u in sorted(g.predecessors(v), key=index.__getitem__):
            out.append(rf"\draw[->] (n{index[u]}) -- (n{index[v]});")
    out += [r"\end{tikzpicture}}", r"\end{center}"]
    return "\n".join(out)


def node_table(bp) -> str:
    """Name, op, inputs, shape (batch dimension N) and parameter count of every node; the total."""
    rows = []
    for v in bp.info.order:
        args = bp.info.args.get(v, {})
        inputs = ", ".join(f"{text(a)}: {name(src)}" for a, src in sorted(args.items()))
        count = parameter_count(bp, v)
        rows.append(rf"{name(v)} & {text(_describe(bp, v))} & {inputs or '--'} & {_shape(bp, v)} & "
                    rf"{count if count else ''} \\")
    total = sum(parameter_count(bp, v) for v in bp.info.order)
    head = r"node & op & inputs (argument: node) & shape & parameters \\"
    return "\n".join([
        r"\begin{longtable}{>{\raggedright}p{0.2\textwidth}>{\raggedright}p{0.22\textwidth}"
        r">{\raggedright}p{0.25\textwidth}lr}",
        r"\toprule", head, r"\midrule", r"\endhead",
        *rows,
        r"\midrule",
        rf"\multicolumn{{4}}{{l}}{{total}} & {total} \\",
        r"\bottomrule", r"\end{longtable}"])


# --- equations ---------------------------------------------------------------------------------

def _align(rows: list[tuple[str, str, str]]) -> str:
    """``lhs &= rhs && \\text{label}`` rows as one align* block."""
    body = []
    for lhs, rhs, label in rows:
        tag = rf" && \text{{\small {label}}}" if label else ""
        body.append(rf"{lhs} &= {rhs}{tag}")
    return "\\begin{align*}\n" + " \\\\\n".join(body) + "\n\\end{align*}"


def forward_section(bp) -> str:
    rows = []
    for v, nd in bp.nodes.items():
        if nd.forward is not None:
            lhs, rhs = latex_sides(nd.forward)
            rows.append((lhs, rhs, f"{name(v)}, {text(_describe(bp, v))}, {_shape(bp, v)}"))
    return _align(rows) if rows else "No forward equations."


def backward_section(bp) -> str:
    parts = []
    for v in reversed(list(bp.nodes)):
        nd = bp.nodes[v]
        if not nd.vjps:
            continue
        parts.append(rf"\paragraph{{Node {name(v)} ({text(_describe(bp, v))}).}}")
        rows = []
        for a, eq in nd.vjps.items():
            lhs, rhs = latex_sides(eq)
            rows.append((lhs, rhs, rf"argument {text(a)} $\leftarrow$ {name(bp.info.args[v][a])}"))
        parts.append(_align(rows))
    totals = {v: cs for v, cs in bp.gradients.items() if len(cs) > 1}
    if totals:
        parts.append(r"\paragraph{Gradients summed over consumers.}")
        items = [rf"\item {name(v)}: " + " + ".join(f"[from {name(c.consumer)}]" for c in cs)
                 for v, cs in totals.items()]
        parts.append("\\begin{itemize}\n" + "\n".join(items) + "\n\\end{itemize}")
    return "\n".join(parts) if parts else "No backward equations (nothing to differentiate)."


def layer_section(bp) -> str:
    if not bp.layers:
        return "The network has no dense layers: there is no layer recursion."
    parts = [r"Substituting the derived vector-Jacobian products into each other gives the textbook "
             r"recursion, with $\delta^{(l)} = \partial L / \partial z^{(l)}$ for the dense output of layer $l$:"]
    for layer in bp.layers:
        title = f"layer {layer.number}: {name(layer.dense)}"
        if layer.activation:
            title += rf" $\to$ {name(layer.activation)}"
        rows = [(*latex_sides(layer.delta), title)]
        for eq in (layer.weight_grad, layer.bias_grad):
            if eq is not None:
                rows.append((*latex_sides(eq), ""))
        parts.append(_align(rows))
    return "\n".join(parts)


_HYPER_TEX = {"lr": r"\eta", "beta1": r"\beta_1", "beta2": r"\beta_2", "eps": r"\epsilon", "rho": r"\rho",
              "momentum": r"\mathrm{momentum}", "weight_decay": r"\mathrm{weight\_decay}", "l1": r"l_1", "l2": r"l_2"}


def optimizer_section(optimizer, note: str = "") -> str:
    hyper = {k: v for k, v in optimizer.hyperparameters().items() if v or k not in ("l1", "l2")}
    symbols = {k: _HYPER_TEX.get(k, r"\mathrm{%s}" % text(k)) for k in hyper}
    values = ", ".join(rf"${symbols[k]} = {_number(v)}$" for k, v in sorted(hyper.items()))
    intro = (rf"{text(type(optimizer).__name__)} ({values}), applied to every element $w$ of every parameter with "
             r"gradient $g$ at step $t$; the rules run in this order:")
    intro = note + intro
    rows = _optimizer_rows(optimizer)
    return intro + "\n\\begin{align*}\n" + rows + "\n\\end{align*}\n" + (
        "These rules are SymPy expressions: the compiled training step is generated from them.")


def _number(v: float) -> str:
    """A number for math mode: ``1e-08`` prints as ``10^{-8}``."""
    m, _, e = f"{v:g}".partition("e")
    if not e:
        return m
    power = rf"10^{{{int(e)}}}"
    return power if m == "1" else rf"{m} \cdot {power}"


def _optimizer_rows(optimizer) -> str:
    """The update rules as ``align*`` rows, printed in the order they were written (``w - ...``)."""
    names = {sp.Symbol(k, positive=True): sp.Symbol(_HYPER_TEX.get(k, k), positive=True)
             for k in optimizer.hyperparameters()}
    return " \\\\\n".join(rf"{sp.latex(lhs)} &\leftarrow {sp.latex(rhs.xreplace(names), order='none')}"
                          for lhs, rhs in optimizer.equations())


def verification_section(result) -> str:
    head = (rf"Compiled gradients of {name(result.name)} ({text(result.dtype)}, backend {name(result.backend)}, "
            rf"batch {int(result.batch)}, seed {int(result.seed)}, {int(result.n_values)} parameter values) compared "
            r"with references. "
            rf"Symbolic: {text(result.symbolic_note)}. Finite differences: {text(result.fd_note)}.")
    rows = []
    failed = r"\textbf{FAILED}"
    for r in result.rows:
        shape = "(" + ", ".join(map(str, r.shape)) + ("," if len(r.shape) == 1 else "") + ")"
        rows.append(rf"{name(r.parameter)} & {shape} & {text(r.reference)} & {r.max_abs_error:.2e} & "
                    rf"{r.max_rel_error:.2e} & {r.rtol:.0e} & {r.atol:.0e} & {'ok' if r.ok else failed} \\")
    verdict = ("All gradients agree within tolerance." if result.ok else
               rf"\textbf{{{len(result.failures())} of {len(result.rows)} rows FAILED.}}")
    notes = "".join(rf"\par Note: {text(n)}" for n in result.notes)
    return "\n".join([head, r"\begin{longtable}{llllllll}", r"\toprule",
                      r"parameter & shape & reference & max abs err & max rel err & rtol & atol & result \\",
                      r"\midrule", r"\endhead", *rows, r"\bottomrule", r"\end{longtable}", verdict + notes])


def training_text(history, data, optimizer) -> str:
    last = history.last
    parts = []
    if data is not None:
        features = int(data.n_features)
        parts.append(rf"Data: {name(data.name)}, {int(data.n_samples)} rows of {features} "
                     + ("feature" if features == 1 else "features")
                     + (rf", {int(data.n_classes)} classes." if getattr(data, "task", "") == "classification" else "."))
    opt = type(optimizer).__name__ if optimizer is not None else history.optimizer
    parts.append(rf"Optimizer {text(opt)}; {len(history.epochs)} epochs, {int(last.get('steps', 0))} steps.")
    metrics = [f"{text(k.replace('_', ' '))} {v:.4g}" for k, v in sorted(last.items())
               if k not in ("epoch", "steps", "seconds") and isinstance(v, (int, float))]
    if metrics:
        parts.append("Last epoch: " + ", ".join(metrics) + ".")
    if history.stopped:
        parts.append(rf"\textbf{{Training stopped early:}} {text(history.stopped)}")
    return " ".join(parts)


def _figure_env(fig: Figure) -> str:
    return "\n".join([r"\begin{figure}[htbp]", r"\centering", rf"\includegraphics[width={fig.width}]{{{fig.path}}}",
                      rf"\caption{{{fig.caption}}}", r"\end{figure}"])


def activation_caption(bp, nodes: list[str], deriv) -> str:
    fn = bp.graph.nodes[nodes[0]].get("function")
    label = text(fn) if isinstance(fn, str) else "formula"
    users = ", ".join(name(v) for v in nodes)
    tex = SympropLatexPrinter().doprint
    cap = (rf"Activation {label} (used by {users}): $f(x) = {tex(deriv.function)}$ and the derived "
           rf"$f'(x) = {tex(deriv.in_input)}$")
    if deriv.through_output is not None:
        cap += rf", through the output $y = f(x)$: $f' = {tex(deriv.through_output)}$"
    return cap + "."


@dataclass
class Parts:
    """What :func:`document` puts together (LaTeX fragments and figures)."""

    title: str
    activations: list[Figure] = field(default_factory=list)
    optimizer: str | None = None
    training: str | None = None
    training_figures: list[Figure] = field(default_factory=list)
    verification: str | None = None


def document(bp, parts: Parts) -> str:
    """The whole ``.tex`` text."""
    from symprop.derive.scalar import CONVENTIONS

    graph_name = bp.graph.graph.get("name", "network")
    total = sum(parameter_count(bp, v) for v in bp.info.order)
    body = [r"\begin{document}", r"\maketitle",
            rf"This report shows how symprop derived backpropagation for the network {name(graph_name)}: "
            rf"{bp.graph.number_of_nodes()} nodes, {len(bp.parameters)} parameter arrays, {total} parameter values. "
            r"Every backward equation was derived by SymPy from the forward definitions; none was written by hand. "
            r"Rows are examples ($N$ is the batch size), $z = x W^{\top} + \mathbf{1} b^{\top}$ with $W$ of shape "
            r"[units, inputs]; elementwise equations drop the indices and $\odot$ is the elementwise product.",
            rf"\par Conventions: {text(CONVENTIONS)}"]
    body += [rf"\par\textbf{{Warning:}} {text(w)}" for w in bp.warnings]
    body += [r"\section{The network}", graph_tikz(bp), node_table(bp),
             r"\section{Forward equations}", forward_section(bp),
             r"\section{Backward equations}",
             r"For each node, the vector-Jacobian product for each of its inputs: the node's contribution to the "
             r"gradient of the objective, given its own upstream gradient.", backward_section(bp),
             r"\section{Layer recursion}", layer_section(bp)]
    if parts.optimizer is not None:
        body += [r"\section{Optimizer}", parts.optimizer]
    if parts.activations:
        body += [r"\section{Activations and their derived derivatives}",
                 r"Each activation $f$ and the derivative $f'$ that SymPy derived for it, evaluated from the derived "
                 r"expression on $[-4, 4]$."]
        body += [_figure_env(f) for f in parts.activations]
    if parts.training is not None:
        body += [r"\clearpage", r"\section{Training}", parts.training]
        body += [_figure_env(f) for f in parts.training_figures]
    if parts.verification is not None:
        body += [r"\section{Gradient verification}", parts.verification]
    body.append(r"\end{document}")
    text_body = "\n".join(body) + "\n"
    head = PREAMBLE + rf"\title{{{parts.title}}}" + "\n\\author{symprop}\n\\date{}\n"
    return head + _unicode_declarations(head + text_body) + text_body
