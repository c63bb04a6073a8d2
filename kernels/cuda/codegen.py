"""Generate numba-cuda kernels for a network's forward pass, loss, gradients and optimizer update.

The CUDA backend prints the same derived equations as :mod:`kernels.lower.walker` (the same walk,
:meth:`kernels.lower.walker.EquationWalker.walk`, the same :class:`~kernels.lower.printer.KernelPrinter`, the
same stabilising rewrites and the same loop emitter), but every statement becomes a kernel launch:

* ``index`` equations (activations and their derivatives, softmax cross-entropy's gradient):
  one ``@cuda.jit`` kernel per statement. Without a reduction in the right-hand side, one thread
  per element (all indices of the statement); with one (a row max, ``Σ_l exp``), one thread per
  row (its first index), the row's reductions computed once and the remaining indices looped.
* ``matrix`` equations: products ``x·Wᵀ``, ``G·W``, ``Gᵀ·X`` are one generic shared-memory
  tiled matrix product (:data:`GEMM`: transpose flags, ``C = α·op(A)·op(B) + β·C``, an optional
  bias row, so ``x·Wᵀ + 𝟙·bᵀ`` is one launch; 32x32 tiles of C, 2x2 elements a thread; a
  hand-written kernel rather than cuBLAS, which numba-cuda does not bind); ``Gᵀ·𝟙`` (a bias gradient ``Σₙ G``) is a column
  sum, one thread block per 32 columns with a shared-memory reduction over rows.
* ``scalar`` equations (the loss, penalties): every outermost ``Σ`` becomes a reduction kernel
  (one thread per term, a block-wise tree sum in shared memory into one float64 partial sum per
  block); one single-thread ``_objective`` kernel adds the partial sums (in a fixed order: the
  result is deterministic), finishes each scalar, writes the objective into ``losses[b]`` and,
  if it is not finite, sets the stop flag ``stop[0] = b + 1``.
* the optimizer (:func:`generate_optimizer`, from ``optimizer.equations()``): one elementwise
  kernel over the flat parameters, their gradients and state slots: one launch a step for all
  parameters (each thread picks its parameter by its element's offset).
  It does nothing when the stop flag is set, so a batch whose objective is not finite changes
  nothing, as on the CPU. A thread that reads a gradient element or writes a value that is not
  finite sets ``stop[0] = -(b + 1)``: that update is applied (in part), and the host
  (:mod:`kernels.cuda.model`) discards the epoch's device state and runs the good batches again.

Host-side functions in the generated module launch the kernels in order (``forward_backward``,
``gather``) and allocate the device workspace (``workspace(N)``: every intermediate sized for a
batch of ``N`` rows; a smaller batch uses the first rows, the kernels get ``N``). The launch
geometry (threads per block ``TPB``, the matrix product's tiles) is read when the module is imported:
smaller blocks under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), which runs every CUDA
thread as a Python thread; the kernel text is the same.

Every kernel is ``@cuda.jit(cache=True)``: Numba keeps the compiled kernels next to the generated
file, so a second process does not compile them again.

Numerics: accumulators of sums are float64 in both dtypes (as the CPU kernels: Numba types
``0.0`` as float64); the matrix product accumulates in the model's dtype (as BLAS does).

Examples
--------
>>> from symprop import derive
>>> src = generate_cuda(derive.mlp([2, 3, 1], activation="tanh"))
>>> "@cuda.jit" in src and "def forward_backward(N, b, stop, losses, ws):" in src
True
>>> "#   a1 = tanh(z1)" in src
True
"""

from __future__ import annotations

import re

import sympy as sp

from symprop.derive import symbols as S

from symprop.kernels.lower.printer import HELPERS, INDENT, KernelPrinter, maximal_reductions
from symprop.kernels.lower.signature import dtype_name
from symprop.kernels.lower.stable import stabilize_rows
from symprop.kernels.lower.walker import EquationWalker, Level

__all__ = ["generate_cuda", "generate_optimizer", "GEMM"]

_I = INDENT

#: The module prologue: launch geometry, helpers and the fixed kernels (matrix product, column
#: sum, gather, fill). ``{dt}`` is the NumPy dtype name.
_PROLOGUE = '''\
import math

import numba
import numpy as np
from numba import cuda

DTYPE = np.{dt}
DT = numba.{dt}
#: threads per block of 1-D kernels, tile width of the matrix product (the simulator runs one
#: Python thread per CUDA thread: small blocks there, same kernels)
SIM = bool(numba.config.ENABLE_CUDASIM)
TPB = 16 if SIM else 256
# the matrix product's tiles (block BM x BN of C, BK of K; TM x TN elements a thread); constants,
# as shared and local array shapes must be (not tuned on a GPU yet)
BM, BN, BK, TM, TN = (8, 8, 4, 2, 2) if SIM else (32, 32, 16, 2, 2)
TX, TY = BN // TN, BM // TM
NT = TX * TY
BMP, BNP = BM + 1, BN + 1
CS_COLS = 4 if SIM else 32
CS_ROWS = 4 if SIM else 8


def _blocks(n):
    return max(1, (n + TPB - 1) // TPB)
'''

#: The generic tiled matrix product (written once; every product of every network launches it).
GEMM = '''\
# C[M, P] = alpha * op(A) @ op(B) + beta * C (+ bias[j] on every row when has_bias);
# op(A) is A (M, K), or A.T for ta (A stored (K, M)); op(B) is B (K, P), or B.T for tb (B (P, K)).
# A block computes a BM x BN tile of C with TX x TY threads, TM x TN elements each (rows
# ty + i*TY, columns tx + j*TX of the tile: shared-memory reads without bank conflicts, coalesced
# writes); K advances BK at a time through shared memory, every load coalesced along the
# stored rows of A and B whatever the transposes (tiles padded by one column against conflicts).
@cuda.jit(device=True, cache=True)
def _load_tile(S, X, kmajor, base, R, BR, k0, K, tid):
    # S[k, r] = X[k0 + k, base + r] (kmajor: X stored (K, R)), else X[base + r, k0 + k]; zero
    # outside X; consecutive threads read consecutive addresses in both layouts
    for q in range(tid, BR * BK, NT):
        if kmajor:
            k = q // BR
            r = q - k * BR
        else:
            r = q // BK
            k = q - r * BK
        if base + r < R and k0 + k < K:
            S[k, r] = X[k0 + k, base + r] if kmajor else X[base + r, k0 + k]
        else:
            S[k, r] = DT(0.0)


@cuda.jit(cache=True)
def _gemm(M, P, K, A, ta, B, tb, C, alpha, beta, bias, has_bias):
    sA = cuda.shared.array((BK, BMP), DT)   # sA[k, r] = op(A)[row0 + r, k0 + k]
    sB = cuda.shared.array((BK, BNP), DT)   # sB[k, c] = op(B)[k0 + k, col0 + c]
    acc = cuda.local.array((TM, TN), DT)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * TX + tx
    row0 = cuda.blockIdx.y * BM
    col0 = cuda.blockIdx.x * BN
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = DT(0.0)
    for k0 in range(0, K, BK):
        _load_tile(sA, A, ta, row0, M, BM, k0, K, tid)          # op(A) rows
        _load_tile(sB, B, not tb, col0, P, BN, k0, K, tid)      # op(B) columns
        cuda.syncthreads()
        for k in range(BK):
            for i in range(TM):
                a = sA[k, ty + i * TY]
                for j in range(TN):
                    acc[i, j] += a * sB[k, tx + j * TX]
        cuda.syncthreads()
    for i in range(TM):
        r = row0 + ty + i * TY
        for j in range(TN):
            c = col0 + tx + j * TX
            if r < M and c < P:
                value = alpha * acc[i, j]
                if beta != 0:
                    value += beta * C[r, c]
                if has_bias:
                    value += bias[c]
                C[r, c] = value


def _launch_gemm(M, P, K, A, ta, B, tb, C, alpha, beta, bias=None):
    grid = ((P + BN - 1) // BN, (M + BM - 1) // BM)
    has_bias = bias is not None
    _gemm[grid, (TX, TY)](M, P, K, A, ta, B, tb, C, DTYPE(alpha), DTYPE(beta),
                              bias if has_bias else C[0], has_bias)


# out[i] = alpha * sum_n G[n, i] + beta * out[i] for n < rows: CS_COLS columns a block, CS_ROWS
# threads a column summing every CS_ROWS-th row, then a tree sum over those in shared memory
@cuda.jit(cache=True)
def _colsum(rows, G, out, alpha, beta):
    sh = cuda.shared.array((CS_ROWS, CS_COLS), numba.float64)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    i = cuda.blockIdx.x * CS_COLS + tx
    acc = 0.0
    if i < G.shape[1]:
        for n in range(ty, rows, CS_ROWS):
            acc += G[n, i]
    sh[ty, tx] = acc
    cuda.syncthreads()
    s = CS_ROWS // 2
    while s > 0:
        if ty < s:
            sh[ty, tx] += sh[ty + s, tx]
        cuda.syncthreads()
        s //= 2
    if ty == 0 and i < G.shape[1]:
        value = alpha * sh[0, tx]
        if beta != 0:
            value += beta * out[i]
        out[i] = value


def _launch_colsum(rows, G, out, alpha, beta):
    _colsum[(G.shape[1] + CS_COLS - 1) // CS_COLS, (CS_COLS, CS_ROWS)](rows, G, out, float(alpha), float(beta))


# C = alpha * A + beta * C, elementwise over the first M rows (a matrix term without a product)
@cuda.jit(cache=True)
def _axpy(M, A, C, alpha, beta):
    e = cuda.grid(1)
    if e < M * C.shape[1]:
        r = e // C.shape[1]
        c = e % C.shape[1]
        value = alpha * A[r, c]
        if beta != 0:
            value += beta * C[r, c]
        C[r, c] = value


@cuda.jit(cache=True)
def _fill(a, value):
    e = cuda.grid(1)
    if e < a.shape[0]:
        a[e] = value


# out[r, :] = X[order[start + r], :] for r < N (does nothing once the epoch has stopped)
@cuda.jit(cache=True)
def _gather2(N, start, X, order, out, stop):
    e = cuda.grid(1)
    if stop[0] == 0 and e < N * X.shape[1]:
        r = e // X.shape[1]
        out[r, e % X.shape[1]] = X[order[start + r], e % X.shape[1]]


@cuda.jit(cache=True)
def _gather1(N, start, X, order, out, stop):
    r = cuda.grid(1)
    if stop[0] == 0 and r < N:
        out[r] = X[order[start + r]]
'''


def _cuda_helpers() -> list[str]:
    """:data:`kernels.lower.printer.HELPERS` (the stable sigmoid, softplus, ...) as CUDA device functions,
    after ``_exp``/``_tanh`` bound to CUDA's own ``math.exp``/``math.tanh``."""
    device = [("@cuda.jit(device=True, cache=True)" if line.startswith("@numba.njit") else line) for line in HELPERS]
    return ["_exp = math.exp", "_tanh = math.tanh", "", "", *device]


def _reduction_sum_ok(red) -> bool:
    """A ``Sum`` whose limits are independent of each other: its terms can be one thread each."""
    if not isinstance(red, sp.Sum):
        return False
    variables = {v for v, _, _ in red.limits}
    return all(not ((lo.free_symbols | hi.free_symbols) & variables) for _, lo, hi in red.limits)


class _CudaGenerator(EquationWalker):
    """The walk of :class:`kernels.lower.walker.EquationWalker`, statements printed as CUDA kernels.

    :attr:`body` collects the host function ``forward_backward``'s launches (and the equations
    as comments), :attr:`kernels` the kernel definitions, :attr:`objective` the lines of the
    single-thread kernel that finishes the scalars.
    """

    ROW_MEMO = False   # each statement is its own kernel: row reductions are recomputed there

    def __init__(self, net, dtype: str):
        super().__init__(net, dtype, workspace=True)
        self.kernels: list[str] = []
        self.objective: list[str] = []
        self.objective_levels = [Level(None)]
        self.partials: dict[str, str] = {}     # partial-sum array -> printed number of blocks (of N)
        self.scalar_ids: set[str] = set()     # scalars: locals of the objective kernel
        self.nkernels = 0
        self._comment: list[str] = []

    # --- helpers -----------------------------------------------------------------------------
    def comment(self, title: str, eq) -> None:
        start = len(self.body)
        super().comment(title, eq)
        self._comment = [line for line in self.body[start:] if line]

    def p(self, expr) -> str:
        return self.printer.doprint(sp.sympify(expr))

    def arrays_in(self, lines: list[str]) -> list[str]:
        """The array identifiers (generated names, partial sums) used in ``lines``, sorted."""
        known = (set(self.names._ids.values()) | set(self.partials)) - self.scalar_ids
        words = set(re.findall(r"\b\w+\b", "\n".join(lines)))
        return sorted(words & known)

    def kernel(self, stem: str, body: list[str], extra_args: tuple[str, ...] = ()) -> tuple[str, str]:
        """Define a kernel (under the current equation's comment); returns (name, argument list)."""
        self.nkernels += 1
        name = f"_k{self.nkernels}_{re.sub(r'[^0-9A-Za-z_]', '_', stem)[:30]}"
        args = ", ".join(["N", *self.arrays_in(body), *extra_args])
        self.kernels += ["", *self._comment, "@cuda.jit(cache=True)", f"def {name}({args}):",
                         *[(_I + line) if line else "" for line in body], ""]
        return name, args

    def thread_indices(self, bound: list[Level]) -> tuple[str, list[str]]:
        """(number of threads, lines binding each index of ``bound`` from the thread's ``_tid``)."""
        idx = [lev for lev in bound if lev.index is not None]
        extents = [sp.simplify(lev.hi - lev.lo + 1) for lev in idx]
        count = self.p(sp.Mul(*extents)) if extents else "1"
        lines = ["_r = _tid"]
        for q, (lev, ext) in reversed(list(enumerate(zip(idx, extents)))):
            offset = "" if lev.lo == 0 else f"{self.p(lev.lo)} + "
            lines.append(f"{self.p(lev.index)} = {offset}_r % ({self.p(ext)})")
            if q:
                lines.append(f"_r = _r // ({self.p(ext)})")
        return count, lines

    def threaded(self, levels: list[Level], nbound: int, final: list[str]) -> tuple[str, list[str]]:
        """(thread count, lines): the first ``nbound`` levels (after the statement level) are one
        thread each; their preambles run in that thread, the rest are loops as on the CPU."""
        bound, inner = levels[:1 + nbound], levels[1 + nbound:]
        count, lines = self.thread_indices(bound)
        for lev in bound:
            lines += lev.stmts
        return count, lines + self.emit.render(inner, final)

    # --- statements --------------------------------------------------------------------------
    def index_statement(self, name: str, eq, accumulate: bool, output: bool) -> None:
        if not accumulate and not output:
            self.buffer(name)
        levels = [Level(None)] + [Level(idx, sp.S.Zero, ext - 1) for idx, ext in zip(eq.indices, eq.extents)]
        rhs = stabilize_rows(eq.rhs)
        rowwise = bool(maximal_reductions(rhs))
        code = self.emit.expr(rhs, levels)
        op = "+=" if accumulate else "="
        final = [f"{self.printer.doprint(eq.lhs)} {op} {code}"]
        count, lines = self.threaded(levels, 1 if rowwise else len(eq.indices), final)
        body = ["_tid = cuda.grid(1)", f"if _tid >= {count}:", f"{_I}return", *lines]
        kname, args = self.kernel(S.parse_name(name)[1], body)
        what = "one thread per row" if rowwise else "one thread per element"
        self.body.append(f"{kname}[_blocks({count}), TPB]({args})  # {what}")

    def _operand(self, f) -> tuple[str, bool] | None:
        """(array, transposed) of a 2-D matrix operand ``X`` or ``Xᵀ``, else None."""
        trans = isinstance(f, sp.Transpose)
        arg = f.arg if trans else f
        if isinstance(arg, sp.MatrixSymbol) and len(self.api_shape(self.node_of(arg.name))) == 2:
            return self.array(arg.name), trans
        return None

    def matrix_statement(self, name: str, eq, accumulate: bool, output: bool) -> None:
        if not output and not accumulate:
            self.buffer(name)
        target = self.array(name)
        one_d = len(self.api_shape(self.node_of(name))) == 1
        rhs = eq.rhs
        terms = list(rhs.args) if isinstance(rhs, sp.MatAdd) else [rhs]
        M, P = (self.p(d) for d in eq.lhs.shape)
        launches, bias = [], None
        for term in terms:
            coeff, factors = term.as_coeff_matrices() if isinstance(term, sp.MatMul) else (sp.S.One, [term])
            factors, alpha = list(factors), self.p(coeff)
            ones_right = len(factors) == 2 and isinstance(factors[1], sp.OneMatrix) and factors[1].shape[1] == 1
            ones_left = len(factors) == 2 and isinstance(factors[0], sp.OneMatrix) and factors[0].shape[1] == 1
            if one_d and ones_right and isinstance(factors[0], sp.Transpose) and self._operand(factors[0].arg):
                src, trans = self._operand(factors[0].arg)
                if not trans:   # Gᵀ·𝟙: the column sums of G
                    launches.append(("colsum", f"_launch_colsum({self.p(factors[0].arg.shape[0])}, {src}, "
                                               f"{target}, {alpha}, {{beta}})"))
                    continue
            if (not one_d and ones_left and coeff == 1 and isinstance(factors[1], sp.Transpose)
                    and isinstance(factors[1].arg, sp.MatrixSymbol) and bias is None
                    and len(self.api_shape(self.node_of(factors[1].arg.name))) == 1):
                bias = self.array(factors[1].arg.name)   # 𝟙·bᵀ: a bias row, added by the product
                continue
            if not one_d and len(factors) == 2 and all(self._operand(f) for f in factors):
                (a, ta), (b, tb) = (self._operand(f) for f in factors)
                K = self.p(factors[0].shape[1])
                launches.append(("gemm", f"_launch_gemm({M}, {P}, {K}, {a}, {ta}, {b}, {tb}, {target}, "
                                         f"{alpha}, {{beta}}{{bias}})"))
                continue
            if not one_d and len(factors) == 1 and self._operand(factors[0]) and not self._operand(factors[0])[1]:
                src = self._operand(factors[0])[0]
                launches.append(("axpy", f"_axpy[_blocks({M} * {P}), TPB]({M}, {src}, {target}, "
                                         f"DTYPE({alpha}), DTYPE({{beta}}))"))
                continue
            raise ValueError(f"backend 'cuda': no kernel for the matrix term {term} of {eq.lhs} "
                             f"(supported: X·Wᵀ, G·W, Gᵀ·X products, 𝟙·bᵀ bias rows, Gᵀ·𝟙 column sums)")
        if bias is not None:
            gemms = [q for q, (kind, _) in enumerate(launches) if kind == "gemm"]
            if not gemms:
                raise ValueError(f"backend 'cuda': a bias row without a product in {eq.lhs}")
            launches.insert(0, launches.pop(gemms[0]))
        for q, (kind, text) in enumerate(launches):
            beta = "1.0" if (accumulate or q) else "0.0"
            extra = f", {bias}" if (kind == "gemm" and q == 0 and bias is not None) else ""
            self.body.append(text.format(beta=beta, bias=extra))

    def scalar_statement(self, v: str, eq) -> str:
        """Reduction kernels for the outermost sums; the rest is finished in ``_objective``."""
        rhs = stabilize_rows(eq.rhs)
        replacements = {}
        comment = self._comment
        target = self.array(v)
        self.scalar_ids.add(target)
        for red in maximal_reductions(rhs):
            if not _reduction_sum_ok(red):
                continue   # evaluated serially by the objective kernel
            part = f"_part{len(self.partials) + 1}"
            levels = [Level(None)] + [Level(var, lo, hi) for var, lo, hi in reversed(red.limits)]
            value = self.emit.expr(red.function, levels)
            count, lines = self.threaded(levels, len(red.limits), [f"_acc = {value}"])
            self.partials[part] = f"_blocks({count})"
            body = ["_sh = cuda.shared.array(TPB, numba.float64)", "_tid = cuda.grid(1)", "_acc = 0.0",
                    f"if _tid < {count}:", *[_I + line for line in lines],
                    "_sh[cuda.threadIdx.x] = _acc", "cuda.syncthreads()", "_s = TPB // 2", "while _s > 0:",
                    f"{_I}if cuda.threadIdx.x < _s:", f"{_I * 2}_sh[cuda.threadIdx.x] += _sh[cuda.threadIdx.x + _s]",
                    f"{_I}cuda.syncthreads()", f"{_I}_s //= 2",
                    "if cuda.threadIdx.x == 0:", f"{_I}{part}[cuda.blockIdx.x] = _sh[0]"]
            self._comment = comment + [f"# partial sums of {sp.sstr(red)[:200]}"]
            kname, args = self.kernel(f"{v}_sum", body)
            self.body.append(f"{kname}[_blocks({count}), TPB]({args})  # one thread per term, a sum per block")
            sym = self.emit.fresh("_sum")
            self.objective += [f"{self.p(sym)} = 0.0", f"for _q in range(max(1, ({count} + TPB - 1) // TPB)):",
                               f"{_I}{self.p(sym)} += {part}[_q]"]
            replacements[red] = sym
        levels = [Level(None)]
        code = self.emit.expr(rhs.xreplace(replacements), levels)
        self._comment = comment
        self.objective += [f"# {line[2:].strip()}" for line in comment[1:]]
        self.objective += self.emit.render(levels, [f"{target} = {code}"])
        return target

    # --- the module --------------------------------------------------------------------------
    def generate_module(self) -> str:
        sig, info = self.sig, self.info
        for v in (*sig.inputs, *sig.targets):
            self.buffer(v)
        total = self.walk()
        body = []
        for line in self.body:   # "g[:] = 0.0" (a parameter no gradient reaches) as a fill kernel
            m = re.fullmatch(r"(\w+)\[:\] = 0\.0", line)
            body.append(f"_fill[_blocks({m[1]}.size), TPB]({m[1]}.reshape({m[1]}.size), 0.0)" if m else line)
        scalars = {v for v in info.order if self.bp.nodes[v].forward is not None
                   and self.bp.nodes[v].forward.form == "scalar"}
        used = set(re.findall(r"\b\w+\b", "\n".join(self.kernels + body)))
        for v in scalars:
            if self.array(v) in used:
                raise ValueError(f"backend 'cuda': the scalar {v!r} is used by another equation (not supported)")
        objective = ["if stop[0] != 0:", f"{_I}return", *self.objective, f"loss = {total}", "losses[b] = loss",
                     "if not math.isfinite(loss):", f"{_I}stop[0] = b + 1  # the update of batch b is not applied"]
        self._comment = ["", "# the objective: sums of the partial sums (fixed order), scalars, the total",
                         f"#   loss {info.loss!r}" + (f", penalties {', '.join(map(repr, info.penalties))}"
                                                      if info.penalties else "")]
        kname, args = self.kernel("objective", objective, ("losses", "b", "stop"))
        body += ["", "# the objective into losses[b]; stop[0] = b + 1 when it is not finite",
                 f"{kname}[1, 1]({args})"]

        grads = {p: self.array(S.GRAD_PREFIX + p) for p in sig.parameters}
        names = sorted(set(self.arrays_in(body)) | set(grads.values()))
        fb = ["def forward_backward(N, b, stop, losses, ws):",
              f'{_I}"""Launch the forward and backward kernels of a batch of N rows (the first N rows',
              f"{_I}of the workspace ws), write its objective into losses[b], the gradients into ws.",
              f'{_I}Asynchronous: returns once everything is queued."""',
              *[f"{_I}{n} = ws[{n!r}]" for n in names],
              *[(_I + line) if line else "" for line in body]]
        ws = ["def workspace(N):", f'{_I}"""Device arrays for batches of up to N rows (inputs, targets,',
              f'{_I}intermediates, gradients, partial sums); parameters are added by the caller."""',
              f"{_I}return {{"]
        for n, shape in self.buffers.items():
            ws.append(f"{_I * 2}{self.array(n)!r}: cuda.device_array({self.shape_text(shape)}, DTYPE),")
        for p, g in grads.items():
            ws.append(f"{_I * 2}{g!r}: cuda.device_array({self.shape_text(self.api_shape(p))}, DTYPE),")
        for part, count in self.partials.items():
            ws.append(f"{_I * 2}{part!r}: cuda.device_array({count}, np.float64),")
        ws.append(f"{_I}}}")
        x, t = sig.inputs[0], sig.targets[0]
        gather = ["def gather(N, start, X, T, order, stop, ws):",
                  f'{_I}"""The batch rows order[start:start + N] of X and T into the workspace."""']
        for v, src in ((x, "X"), (t, "T")):
            arr = self.array(v)
            if len(self.api_shape(v)) == 2:
                gather.append(f"{_I}_gather2[_blocks(N * {src}.shape[1]), TPB](N, start, {src}, order, ws[{arr!r}], stop)")
            else:
                gather.append(f"{_I}_gather1[_blocks(N), TPB](N, start, {src}, order, ws[{arr!r}], stop)")

        name = self.bp.graph.graph.get("name", "network")
        maps = [f"INPUTS = {dict((v, self.array(v)) for v in sig.inputs)!r}",
                f"TARGETS = {dict((v, self.array(v)) for v in sig.targets)!r}",
                f"PARAMETERS = {dict((p, self.array(p)) for p in sig.parameters)!r}",
                f"GRADIENTS = {grads!r}"]
        header = [f"# Generated by symprop (kernels.cuda.codegen) for network {str(name)!r}, dtype {self.dtype},",
                  "# backend cuda. Every kernel is printed from an equation derived by derive.backprop; the",
                  "# equation is repeated in the comment above it (and above its launch in forward_backward).",
                  "# Do not edit: the file name is a hash of its content.", ""]
        parts = [*header, _PROLOGUE.format(dt=self.dtype), "", *_cuda_helpers(), GEMM, *maps, "", "# ---- kernels, one per statement ----",
                 *self.kernels, "", *ws, "", "", *gather, "", "", *fb]
        return "\n".join(parts) + "\n"


def generate_cuda(net, dtype="float64") -> str:
    """Python source of the CUDA module of ``net`` (a network graph or its :class:`derive.Backprop`):
    ``@cuda.jit`` kernels and the host functions ``workspace(N)``, ``gather(...)`` and
    ``forward_backward(N, b, stop, losses, ws)`` (see the module docstring). Importing the module
    needs numba-cuda, not a GPU; compilation happens on the first launch."""
    gen = _CudaGenerator(net, dtype_name(dtype))
    if len(gen.sig.inputs) != 1 or len(gen.sig.targets) != 1:
        raise ValueError(f"backend 'cuda' needs a network with one input and one target; this one has "
                         f"inputs {list(gen.sig.inputs)} and targets {list(gen.sig.targets)}")
    return gen.generate_module()


def generate_optimizer(optimizer, dtype="float64", sizes=(1,)) -> str:
    """Python source of the CUDA module of ``optimizer``'s update, printed from its SymPy rules.

    ``update(<parameter 0: w, g, state slots...>, <parameter 1: ...>, ..., <per-step scalars...>,
    b, stop)``: one launch for every parameter (``sizes``: their numbers of elements, in order),
    one thread per element of the flat arrays (state slots in ``optimizer.state`` order); nothing
    when ``stop[0]`` is set. A thread whose gradient element, or any value it writes, is not
    finite sets ``stop[0] = -(b + 1)`` (``b``: the batch). ``scalars(hyper, t)``: the per-step scalars (subexpressions of the
    hyperparameters and the step ``t`` alone, as in :mod:`kernels.cpu.epoch`) in the model's dtype,
    ``hyper`` in :func:`kernels.cpu.epoch_keys.hyper_names` order.

    >>> from symprop.kernels.training.optim import Adam
    >>> src = generate_optimizer(Adam(), sizes=(6, 3))
    >>> "def update(p0_w, p0_g, p0_m, p0_v, p1_w," in src and "def scalars(hyper, t_step):" in src
    True
    """
    from symprop.kernels.lower.optimizer import OptimizerRules

    dt = dtype_name(dtype)
    r = OptimizerRules(optimizer)
    names, rules = r.names, r.rules
    slots = ("w", "g", *optimizer.state)
    printer = KernelPrinter(lambda n: n)
    consts = [printer.doprint(sym) for sym in r.scalars.values()]
    arrays = [f"p{q}_{s}" for q in range(len(sizes)) for s in slots]
    # pick the parameter of this thread's element, then one body for all
    body = ["e = cuda.grid(1)", "if stop[0] != 0:", f"{_I}return"]
    offset = 0
    for q, size in enumerate(sizes):
        body.append(f"{'if' if q == 0 else 'elif'} e < {offset + int(size)}:")
        body += [f"{_I}o_{s}_f = p{q}_{s}" for s in slots] + [f"{_I}e -= {offset}" if offset else f"{_I}pass"]
        offset += int(size)
    body += ["else:", f"{_I}return", *[f"o_{s} = o_{s}_f[e]" for s in slots]]
    for (lhs, rhs), text in zip(rules, r.pretty):
        body += [f"# {text}", f"{printer.doprint(lhs)} = {printer.doprint(rhs)}"]
    written = list(dict.fromkeys(lhs.name[2:] for lhs, _ in rules))
    body += [f"o_{s}_f[e] = o_{s}" for s in written]
    checked = " + ".join(f"(o_{s} - o_{s})" for s in dict.fromkeys(["g", *written]))
    body += ["# x - x is 0 for a finite x, NaN for NaN or ±inf: the gradient or a new value not finite",
             f"if {checked} != 0:",
             f"{_I}stop[0] = -(b + 1)  # applied: the host discards this epoch's device state and redoes batches < b"]
    lines = [f"# Generated by symprop (kernels.cuda.codegen): the update of {type(optimizer).__name__}, dtype {dt},",
             "# printed from its SymPy rules. Do not edit: the file name is a hash of its content.", "",
             "import math", "", "import numba", "import numpy as np", "from numba import cuda", "", "",
             f"SIZES = {tuple(int(n) for n in sizes)!r}", "", "",
             *_cuda_helpers(),
             f"# hyper = [{', '.join(names)}] (sorted names); t_step: the optimizer's step t",
             "def scalars(hyper, t_step):",
             *[f"{_I}h_{k} = float(hyper[{q}])" for q, k in enumerate(names)],
             f"{_I}return ({''.join(f'np.{dt}({printer.doprint(e)}), ' for e in r.scalars)})",
             "", "",
             "# one thread per element of every parameter (batch b); nothing once the epoch has stopped",
             "# (stop[0] != 0); stop[0] = -(b + 1) when a gradient or a new value is not finite",
             "@cuda.jit(cache=True)",
             f"def update({', '.join([*arrays, *consts, 'b', 'stop'])}):",
             *[_I + line for line in body]]
    return "\n".join(lines) + "\n"
