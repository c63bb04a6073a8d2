"""Reports compiled to real PDFs and read back (pdftotext, pdffonts, pdftoppm); escaping of hostile
names; LaTeX failures summarised; the no-TeX path; deterministic output; the CLI's report command.

Compiled reports are shared between tests through module-scoped fixtures (each compilation costs
a second or two). Tests that need TeX or poppler skip with the reason when they are missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from symprop import derive
from symprop import reports
from symprop.reports import build
from symprop.reports.latex import text as latex_text

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples"
HAVE_TEX = build.find_tex() is not None
HAVE_POPPLER = all(shutil.which(t) for t in ("pdftotext", "pdffonts", "pdftoppm"))
needs_tex = pytest.mark.skipif(not HAVE_TEX, reason="no latexmk/pdflatex: install texlive-latex-base, "
                               "texlive-latex-recommended, texlive-pictures and latexmk (.ci/run does)")
needs_pdf_tools = pytest.mark.skipif(not (HAVE_TEX and HAVE_POPPLER),
                                     reason="needs TeX and poppler-utils (pdftotext, pdffonts, pdftoppm)")

HOSTILE = {"x": r"\input{/etc/passwd}", "z1": "$x^2$", "a1": "a_b&c%#~", "z2": "{oops} ^_^ <b>|",
           "a2": r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ -- ``x'' ?` fi"""}
HOSTILE_TITLE = r"""Title \input{/etc/passwd} $\x$ 100% {unbalanced #1 ~ 'q' -- "x" ``fi'' ?` !` |a|"""


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("symprop-cache-reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMPROP_CACHE", str(path))
        yield path


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def pages(pdf: Path) -> int:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", out).group(1))


# --- the derivation report of examples/mlp.toml -------------------------------------------------

@pytest.fixture(scope="module")
def mlp_report(tmp_path_factory):
    if not HAVE_TEX:
        pytest.skip("no TeX")
    out = tmp_path_factory.mktemp("mlp") / "mlp.pdf"
    return reports.write(derive.load(EX / "mlp.toml"), out)


@needs_pdf_tools
def test_mlp_report_pdf_has_sections_and_equations(mlp_report):
    assert mlp_report.pdf is not None and mlp_report.pdf.exists()
    assert mlp_report.pdf == mlp_report.tex.with_suffix(".pdf")
    txt = pdf_text(mlp_report.pdf)
    flat = squash(txt)
    order = ["The network", "Forward equations", "Backward equations", "Layer recursion", "Optimizer",
             "Activations and their derived derivatives"]
    positions = [txt.index(title) for title in order]
    assert positions == sorted(positions), "sections out of order"
    for node in ("W1", "b1", "z1", "a1", "W3", "z3"):
        assert node in txt
    assert "tanh" in txt and "loss mse" in txt
    assert "δ(1)=δ(2)W2⊙1−a21" in flat          # δ⁽¹⁾ = (δ⁽²⁾·W2) ⊙ (1 − a1²), as pdftotext lays it out
    assert "∂L" in txt and "∂W1" in txt
    assert "total" in txt and "337" in txt       # the node table's parameter total
    assert "m←g(1−β1)+mβ1" in flat               # Adam's rule, from kernels.training.optim's SymPy rules
    assert "f'(x), derived" in txt               # the activation figure's legend (matplotlib text)


@needs_pdf_tools
def test_mlp_report_embeds_figures(mlp_report):
    tex = mlp_report.tex.read_text()
    assert [p.name for p in mlp_report.figures] == ["activation-1.pdf"]
    assert r"\includegraphics[width=0.48\textwidth]{mlp-figures/activation-1.pdf}" in tex
    assert r"\begin{tikzpicture}" in tex
    fonts = subprocess.run(["pdffonts", str(mlp_report.pdf)], capture_output=True, text=True, check=True).stdout
    assert "DejaVuSans" in fonts  # matplotlib's font: the vector figure is in the PDF
    # the last page holds the activation figure: rendered, it is far from blank
    n = pages(mlp_report.pdf)
    assert n >= 3
    ink = page_ink(mlp_report.pdf, n)
    assert ink > 0.02, ink


def page_ink(pdf: Path, page: int) -> float:
    """Fraction of non-white pixels of one rendered page (pdftoppm, greyscale PGM)."""
    out = subprocess.run(["pdftoppm", "-r", "40", "-gray", "-f", str(page), "-l", str(page), str(pdf)],
                         capture_output=True, check=True, timeout=60).stdout
    header = out.split(b"\n", 3)  # P5, width height, maxval, data
    w, h = map(int, header[1].split())
    pixels = np.frombuffer(header[3][: w * h], dtype=np.uint8)
    return float(np.mean(pixels < 200))


def test_report_is_deterministic(tmp_path):
    net = derive.load(EX / "swish.toml")
    a = reports.write(net, tmp_path / "a" / "r.tex", pdf=False)
    b = reports.write(net, tmp_path / "b" / "r.tex", pdf=False)
    assert a.tex.read_bytes() == b.tex.read_bytes()
    assert [p.name for p in a.figures] == [p.name for p in b.figures] == ["activation-1.pdf"]
    for fa, fb in zip(a.figures, b.figures):
        assert fa.read_bytes() == fb.read_bytes(), fa.name
    tex = a.tex.read_text()
    assert str(tmp_path) not in tex and "\\today" not in tex and "\\date{}" in tex
    assert "(PDF not requested)" in a.message and a.pdf is None


def test_reports_in_one_folder_keep_their_own_figures(tmp_path):
    tanh = reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / "a.tex", pdf=False)
    relu = reports.write(derive.mlp([2, 3, 1], activation="relu"), tmp_path / "b b.tex", pdf=False)
    assert [p.relative_to(tmp_path).as_posix() for p in tanh.figures + relu.figures] == [
        "a-figures/activation-1.pdf", "b_b-32b857b3-figures/activation-1.pdf"]
    assert "{b_b-32b857b3-figures/activation-1.pdf}" in relu.tex.read_text()
    assert tanh.figures[0].read_bytes() != relu.figures[0].read_bytes()
    # a rewrite without training leaves no stale training figure behind
    (tmp_path / "a-figures" / "training.pdf").write_bytes(b"stale")
    reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / "a.tex", pdf=False)
    assert sorted(p.name for p in (tmp_path / "a-figures").iterdir()) == ["activation-1.pdf"]


@needs_tex
def test_pdf_is_reproducible(tmp_path, mlp_report):
    copy = tmp_path / "mlp.tex"
    shutil.copy(mlp_report.tex, copy)
    shutil.copytree(mlp_report.tex.parent / "mlp-figures", tmp_path / "mlp-figures")
    again = build.compile_pdf(copy)
    assert again.read_bytes() == mlp_report.pdf.read_bytes()


VARIANTS = {
    "classifier": lambda: derive.load(EX / "classifier.toml"),
    "mish": lambda: derive.load(EX / "mish.toml"),
    "gelu-penalty": lambda: derive.mlp([3, 4, 2], activation="gelu", loss="softmax_cross_entropy", penalty="l2"),
    "softmax-node": lambda: derive.Builder("sm").input("x", 3).dense(4, activation="elu").dense(3).softmax()
    .loss("mse").build(),
    "step-mae": lambda: derive.mlp([2, 3, 1], activation="step", loss="mae"),
    "formula-loss": lambda: derive.mlp([2, 3, 3, 1], activation="softsign", loss="(y-t)**4/4", output_activation="sigmoid"),
}


@needs_pdf_tools
@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_reports_compile_for_every_kind_of_network(tmp_path, kind):
    result = reports.write(VARIANTS[kind](), tmp_path / f"{kind}.pdf", pdf=True)
    txt = pdf_text(result.pdf)
    assert "Layer recursion" in txt and "Activations and their derived derivatives" in txt
    if kind == "gelu-penalty":
        assert "π" in txt and "penalty l2" in txt   # sqrt(pi) of gelu', printed as a symbol
    if kind == "step-mae":
        assert squash("no gradient flows through a step") in squash(txt)
        assert "H(x)" in squash(txt)  # the step printed as derive prints Heaviside


# --- escaping --------------------------------------------------------------------------------------

def hostile_net():
    net = derive.mlp([2, 3, 3, 1], activation="tanh", loss="mse", name="evil \\name{} $")
    return nx.relabel_nodes(net, HOSTILE)


@needs_pdf_tools
def test_hostile_names_and_title_print_as_text(tmp_path):
    result = reports.write(hostile_net(), tmp_path / "evil.pdf", title=HOSTILE_TITLE, pdf=True)
    txt = pdf_text(result.pdf)
    for name in HOSTILE.values():
        assert name in txt, name
    assert squash(HOSTILE_TITLE) in squash(txt)  # the long title wraps
    assert "root:x:0:0" not in txt and "/bin/" not in txt
    tex = result.tex.read_text()
    assert "\\input{/etc/passwd}" not in tex.replace(r"\input{glyphtounicode}", "")


def test_hostile_names_are_escaped_in_the_tex(tmp_path):
    result = reports.write(hostile_net(), tmp_path / "evil.tex", title=HOSTILE_TITLE, pdf=False)
    tex = result.tex.read_text()
    assert latex_text(HOSTILE_TITLE) in tex
    assert r"\textbackslash{}input\{/etc/passwd\}" in tex
    for line in tex.splitlines():  # no user text opens a math group or a comment
        assert "$x^2$" not in line and "a_b&c%#~" not in line


@needs_tex
def test_unicode_names_compile(tmp_path):
    net = nx.relabel_nodes(derive.mlp([2, 3, 1], activation="tanh"), {"a1": "αctivé 中", "z2": "out·put"})
    result = reports.write(net, tmp_path / "u.pdf", title="Ünïcode → report", pdf=True)
    assert result.pdf.exists()


# --- compilation failures and the no-TeX path ---------------------------------------------------------

@needs_tex
def test_failing_compilation_shows_the_error_lines(tmp_path):
    broken = tmp_path / "broken.tex"
    filler = "\n".join(f"line {k} of harmless text" for k in range(200))
    broken.write_text("\\documentclass{article}\n\\begin{document}\n" + filler + "\n\\undefinedmacro{x}\n"
                      + filler + "\n\\end{document}\n")
    with pytest.raises(build.ReportError) as info:
        build.compile_pdf(broken)
    message = str(info.value)
    assert "! Undefined control sequence." in message
    assert re.search(r"^l\.203 ", message, re.M), message
    assert len(message.splitlines()) < 20
    assert "harmless text 5" not in message
    assert not (tmp_path / "broken.pdf").exists()


@needs_tex
def test_shell_escape_is_off(tmp_path):
    tex = tmp_path / "shell.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\n\\immediate\\write18{touch pwned}\n"
                   "x\\end{document}\n")
    build.compile_pdf(tex)
    assert not (tmp_path / "pwned").exists()


@needs_tex
def test_a_file_name_like_an_option_is_never_passed_to_latex(tmp_path):
    """A name starting with "-" reached latexmk's command line, where "-pdflatex=CMD" runs CMD in a
    shell; LaTeX now runs on a fixed name in its temporary folder."""
    name = "-pdflatex=touch PWNED;false.pdf"
    result = reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / name, pdf=True)
    assert result.pdf == tmp_path / name and result.pdf.read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


@pytest.mark.parametrize("setup,name,needle", [
    (lambda d: (d / "r.pdf").mkdir(), "r.pdf", "r.pdf: is a folder, not a file"),
    (lambda d: (d / "r.tex").mkdir(), "r.pdf", "r.tex: is a folder, not a file"),
    (lambda d: (d / "r-figures").write_text(""), "r.pdf", "(the report's figures folder) is a file"),
    (lambda d: (d / "afile").write_text(""), "afile/r.pdf", "afile is a file, not a folder"),
    (lambda d: None, ".pdf", "a report path must be a file name ending in .tex or .pdf"),
    (lambda d: None, "r.txt", "a report path must be a file name ending in .tex or .pdf"),
])
def test_a_bad_report_path_is_refused_before_any_work(tmp_path, setup, name, needle):
    setup(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError) as info:
        reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / name, pdf=False)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before          # nothing written, nothing removed


def test_names_that_fold_alike_keep_their_own_figures(tmp_path):
    """"a b" and "a_b" once shared a_b-figures/: the second report replaced the first's plots."""
    first = reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / "a_b.tex", pdf=False)
    second = reports.write(derive.mlp([2, 3, 1], activation="relu"), tmp_path / "a b.tex", pdf=False)
    assert {f.parent for f in first.figures}.isdisjoint({f.parent for f in second.figures})
    assert all(f.exists() for f in first.figures + second.figures)
    assert first.figures[0].parent.name in first.tex.read_text()
    assert second.figures[0].parent.name in second.tex.read_text()


def test_the_name_asked_for_is_the_name_written(tmp_path):
    result = reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / "T.TEX", pdf=False)
    assert result.tex == tmp_path / "T.TEX" and result.tex.exists()
    if HAVE_TEX:
        result = reports.write(derive.mlp([2, 3, 1], activation="tanh"), tmp_path / "Net.PDF", pdf=True)
        assert result.pdf == tmp_path / "Net.PDF" and result.pdf.read_bytes().startswith(b"%PDF")


@needs_tex
def test_tex_cannot_read_absolute_paths(tmp_path):
    tex = tmp_path / "read.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\n\\input{/etc/passwd}\n\\end{document}\n")
    with pytest.raises(build.ReportError) as info:
        build.compile_pdf(tex)
    assert "root:" not in str(info.value) and "/etc/passwd" in str(info.value)


def test_summarize_log_is_short():
    log = "\n".join(["(./a.tex", *[f"noise {k}" for k in range(500)], "! LaTeX Error: File `missing.sty' not found.",
                     "", "Type X to quit or <RETURN> to proceed,", "l.3 \\usepackage", "           {missing}", "",
                     *[f"noise {k}" for k in range(500)]])
    summary = build.summarize_log(log)
    assert summary.splitlines()[0] == "! LaTeX Error: File `missing.sty' not found."
    assert "l.3 \\usepackage" in summary and "noise" not in summary


def test_without_tex_the_tex_and_figures_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    result = reports.write(derive.load(EX / "mlp.toml"), tmp_path / "out" / "mlp.pdf")
    assert result.pdf is None and not (tmp_path / "out" / "mlp.pdf").exists()
    assert result.tex == tmp_path / "out" / "mlp.tex" and result.tex.exists()
    assert all(p.exists() and p.parent.name == "mlp-figures" for p in result.figures) and result.figures
    assert "install TeX Live" in result.message and "latexmk -pdf mlp.tex" in result.message
    assert build.compile_pdf(result.tex) is None
    with pytest.raises(build.ReportError, match="install TeX Live"):
        reports.write(derive.load(EX / "mlp.toml"), tmp_path / "out" / "mlp.pdf", pdf=True)


def test_import_is_light():
    code = ("import sys, reports; bad = [m for m in ('matplotlib', 'numba', 'kernels') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([__import__("sys").executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- a trained report ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from symprop import kernels
    from symprop.kernels.training.data import make

    net = derive.mlp([2, 6, 1], activation="tanh", loss="bce_logits", name="moons-net")
    data = make("moons", n_samples=128, seed=0)
    model = kernels.compile(net, seed=0)
    optimizer = kernels.Adam(lr=0.05)
    history = kernels.train(model, data.X, data.targets(1), epochs=30, batch_size=16, optimizer=optimizer,
                            seed=0, validation=0.25, progress=False)
    result = kernels.verify(net, model=model, batch=2, seed=0)
    out = tmp_path_factory.mktemp("trained") / "trained.pdf"
    rep = reports.write(net, out, history=history, verification=result, optimizer=optimizer, data=data,
                        model=model, pdf=None if HAVE_TEX else False)
    return rep, history, result


@pytest.mark.slow
def test_trained_report_has_curves_boundary_and_table(trained):
    rep, history, result = trained
    assert [p.name for p in rep.figures] == ["activation-1.pdf", "training.pdf", "decision.pdf"]
    tex = rep.tex.read_text()
    for needle in (r"\section{Training}", r"\section{Gradient verification}", "{trained-figures/training.pdf}",
                   "{trained-figures/decision.pdf}", latex_text("finite-diff"), "symbolic", "All gradients agree within tolerance."):
        assert needle in tex, needle
    assert tex.index(r"\section{Training}") < tex.index(r"\section{Gradient verification}")
    assert tex.count(r" & ok \\") == len(result.rows)
    assert f"{history.last['loss']:.4g}" in tex
    assert "seconds" not in tex  # timings would make the .tex differ from run to run


@needs_pdf_tools
@pytest.mark.slow
def test_trained_report_pdf(trained):
    rep, _, result = trained
    txt = pdf_text(rep.pdf)
    for needle in ("Training", "Gradient verification", "training loss", "validation loss", "accuracy",
                   "moons", "max abs err", "finite-diff"):
        assert needle in txt, needle
    assert all(r.parameter in txt for r in result.rows)


# --- the command line ------------------------------------------------------------------------------------

def run_cli(capsys, *argv):
    from symprop.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@needs_tex
def test_cli_report(capsys, tmp_path):
    out = tmp_path / "r" / "mlp.pdf"
    code, stdout, err = run_cli(capsys, "report", str(EX / "classifier.toml"), "-o", str(out), "--title", "My % report")
    assert code == 0, err
    assert out.exists() and (tmp_path / "r" / "mlp.tex").exists()
    assert stdout.rstrip().endswith(f"report: {out}")


@pytest.mark.slow
def test_cli_report_train_no_pdf(capsys, tmp_path):
    out = tmp_path / "t.tex"
    code, stdout, err = run_cli(capsys, "report", str(EX / "swish.toml"), "-o", str(out), "--train", "--epochs", "3",
                                "--samples", "64", "--no-pdf", "--no-progress")
    assert code == 0, err
    assert "gradients verified" in stdout and stdout.rstrip().endswith(f"report: {out}")
    tex = out.read_text()
    assert r"\section{Gradient verification}" in tex and "{t-figures/decision.pdf}" in tex


def test_cli_report_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(EX / "mlp.toml"), "-o", str(tmp_path / "x.docx"))
    assert code == 2 and len(err.splitlines()) == 1 and "must be a file name ending in .tex or .pdf" in err
    code, _, err = run_cli(capsys, "report", str(EX / "bad.toml"), "-o", str(tmp_path / "x.pdf"))
    assert code == 2 and "node 'y'" in err
    code, _, err = run_cli(capsys, "report", str(EX / "mlp.toml"), "-o", str(tmp_path / "x.pdf"), "--train",
                           "--data", "sine")
    assert code == 2 and "features" in err
    code, _, err = run_cli(capsys, "report", str(EX / "mlp.toml"), "-o", str(tmp_path / "x.pdf"), "--epochs", "3")
    assert code == 2 and err.strip() == "symprop: error: --epochs applies only with --train"
    (tmp_path / "busy.pdf").mkdir()
    code, out, err = run_cli(capsys, "report", str(EX / "mlp.toml"), "-o", str(tmp_path / "busy.pdf"), "--train")
    assert code == 2 and "busy.pdf: is a folder, not a file" in err and "training" not in out
    (tmp_path / "demofile").write_text("")
    code, out, err = run_cli(capsys, "demo", "--out", str(tmp_path / "demofile"))
    assert code == 2 and "demofile is a file, not a folder" in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy.pdf", "demofile"]
