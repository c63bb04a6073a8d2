"""The one walk over a network's derived equations, printing each as Python for Numba.

:class:`EquationWalker` walks the equations that :func:`symprop.derive.backprop` derived (the same
ones that :func:`symprop.derive.evaluate` interprets) and prints each one:

* ``matrix`` equations (``x·W1ᵀ + 𝟙·b1ᵀ``, ``∂L/∂z1ᵀ·x``, ``∂L/∂z2·W2``) become NumPy array
  expressions: products ``@``, ``𝟙·bᵀ`` a broadcast row, ``Gᵀ·𝟙`` a column sum;
* ``index`` equations become explicit loops over their free indices, the right-hand side printed
  by :class:`~symprop.kernels.lower.printer.KernelPrinter` after :func:`sympy.cse`;
  every ``Sum`` becomes an accumulator loop, placed outside the loops it does not depend on;
* ``scalar`` equations (the loss, penalties) become accumulator loops without outer loops.

It prints in two modes: ``loss_and_grads`` (:mod:`symprop.kernels.cpu.loss`), where every
intermediate is allocated where it is computed, and the body of the training epoch's batch loop
(:mod:`symprop.kernels.cpu.epoch`), in workspace mode: every intermediate written into a buffer
allocated once, products as ``np.dot(a, b, out)``, no temporaries. The CUDA backend
(:mod:`symprop.kernels.cuda.codegen`) subclasses it and overrides the three statement printers.

No derivative and no per-op formula is written here: every statement is printed from an
equation, and the equation is repeated as a comment above it. Kernels dispatch only on an
equation's form (matrix, index, scalar), never on op names.

>>> from symprop import derive
>>> w = EquationWalker(derive.mlp([2, 3, 1], activation="tanh"), "float64")
>>> total = w.walk()
>>> any("_tanh(" in line for line in w.body)
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from symprop import derive
from symprop.derive import symbols as S
from symprop.derive.ops import BATCH

from .printer import INDENT, KernelPrinter, Names, RowCached, RowMax, maximal_reductions
from .signature import DTYPES, signature
from .stable import stabilize_rows

__all__ = ["EquationWalker", "Emitter", "Level"]


_ROW = sp.Symbol("_row_index", integer=True)   # the batch row, in canonical row-reduction keys


@dataclass
class Level:
    """One loop of a nest (``index`` None: the statement's own level), with its preamble."""

    index: sp.Symbol | None
    lo: sp.Expr = sp.S.Zero
    hi: sp.Expr = sp.S.Zero
    stmts: list[str] = field(default_factory=list)


class Emitter:
    """Turns scalar SymPy expressions into loop nests, hoisting reductions and temporaries."""

    def __init__(self, printer: KernelPrinter, row_buffer=None):
        self.p = printer
        self.counter = 0
        self.cache: dict = {}
        #: ``row_buffer(name)`` makes a float64 (N,) array named ``name`` available; None: no
        #: reuse of row reductions across statements (see :meth:`reduction`)
        self.row_buffer = row_buffer
        self.rows: dict = {}   # canonical row reduction -> buffer symbol
        self.rows_read: set[str] = set()   # buffers a later statement reads
        #: loops over the batch's rows run to this symbol instead of ``N`` (a chunk's rows)
        self.loop_rows: sp.Symbol | None = None

    def fresh(self, prefix: str) -> sp.Symbol:
        self.counter += 1
        return sp.Symbol(f"{prefix}{self.counter}")

    def range_text(self, lo, hi) -> str:
        stop = sp.simplify(hi + 1)
        if self.loop_rows is not None:
            stop = stop.xreplace({BATCH: self.loop_rows})
        return f"range({self.p.doprint(stop)})" if lo == 0 else f"range({self.p.doprint(lo)}, {self.p.doprint(stop)})"

    def expr(self, expr: sp.Expr, levels: list[Level], cse: bool = True) -> str:
        """Code for ``expr`` evaluated in the innermost of ``levels``; preambles added to levels."""
        replacements = {}
        for red in maximal_reductions(expr):
            replacements[red] = self.reduction(red, levels)
        if replacements:
            expr = expr.xreplace(replacements)
        if cse and expr.count_ops() > 3:
            temps, (reduced,) = sp.cse(expr, symbols=self._temp_symbols(), optimizations=None)
            for sym, value in temps:
                levels[-1].stmts.append(f"{self.p.doprint(sym)} = {self.p.doprint(value)}")
            expr = reduced
        return self.p.doprint(expr)

    def _temp_symbols(self):
        while True:
            yield self.fresh("_t")

    def _row_key(self, red, levels: list[Level], depth: int):
        """The reduction with its row index made canonical, when an earlier statement's result for
        the same row can stand in for it: it depends on the batch row (the first loop, over all N
        rows) and on no other loop, and reads no gradient array (forward values are written once
        a step; gradients may still be accumulating). Else None."""
        if self.row_buffer is None or depth != 1:
            return None
        row = levels[1]
        if row.lo != 0 or row.hi != BATCH - 1:
            return None
        if any(S.parse_name(str(a.base.label))[0] == "grad" for a in red.atoms(sp.Indexed)):
            return None
        return red.xreplace({row.index: _ROW})

    def reduction(self, red, levels: list[Level]) -> sp.Expr:
        """The symbol (or kept row value) standing for reduction ``red``, its loop added to the
        preamble of the outermost level it depends on. A row reduction already computed by an
        earlier statement (say the softmax's ``max`` and ``Σ exp`` of the loss, needed again by its
        gradient) is read back from the per-row buffer that statement filled."""
        indices = [lev.index for lev in levels]
        deps = red.free_symbols
        depth = max([q for q, idx in enumerate(indices) if idx is not None and idx in deps], default=0)
        key = red
        if key in self.cache:
            sym, level = self.cache[key]
            if any(level is lev for lev in levels[:depth + 1]):
                return sym
        row_key = self._row_key(red, levels, depth)
        if row_key is not None and row_key in self.rows:
            self.rows_read.add(self.rows[row_key].name)
            return RowCached(self.rows[row_key], levels[1].index)
        target = levels[depth]
        if isinstance(red, RowMax):
            body, var, lo, hi = red.args
            limits = [(var, lo, hi)]
            sym = self.fresh("_max")
            init, update = "-math.inf", "{acc} = max({acc}, {value})"
        else:
            body, limits = red.function, list(red.limits)
            sym = self.fresh("_sum")
            init, update = "0.0", "{acc} += {value}"
        # Sum(f, (a, ..), (b, ..)): a innermost
        private = [Level(v, lo, hi) for v, lo, hi in reversed(limits)]
        nest = levels[:depth + 1] + private
        value = self.expr(body, nest)
        acc = self.p.doprint(sym)
        lines = [f"{acc} = {init}"]
        lines += self.render(private, [update.format(acc=acc, value=value)])
        if row_key is not None:
            buf = self.fresh("_rowmax" if isinstance(red, RowMax) else "_rowsum")
            self.row_buffer(buf.name)
            lines.append(f"{buf.name}[{self.p.doprint(levels[1].index)}] = {acc}")
            self.rows[row_key] = buf
        target.stmts.extend(lines)
        self.cache[key] = (sym, target)
        return sym

    def render(self, levels: list[Level], final: list[str], prange: bool = False) -> list[str]:
        """Lines of a loop nest (relative indentation); levels with index None add no loop.

        ``prange``: the outermost loop is ``numba.prange`` (only for nests whose iterations write
        distinct elements; accumulators of inner reductions are assigned inside, so private)."""
        out: list[str] = []
        depth = 0
        for lev in levels:
            if lev.index is not None:
                rng = self.range_text(lev.lo, lev.hi)
                if prange and depth == 0:
                    rng = "numba.p" + rng
                out.append(INDENT * depth + f"for {self.p.doprint(lev.index)} in {rng}:")
                depth += 1
            out += [INDENT * depth + s for s in lev.stmts]
        out += [INDENT * depth + s for s in final]
        return out


# --- the generator -------------------------------------------------------------------------------

class EquationWalker:
    """One walk over the derived equations, printed in one of two modes.

    ``workspace=False`` (``loss_and_grads``): every intermediate array is allocated where it is
    computed. ``workspace=True`` (the body of ``train_epoch``'s batch loop): every intermediate is a
    preallocated buffer (recorded in :attr:`buffers`, allocated once before the loop by the
    caller, viewed as ``buf[:N]`` per batch) and every statement writes into it: products are
    ``np.dot(a, b, out)``, bias rows and column sums are loops (``tanh``/``exp`` in them vectorised
    by :mod:`kernels.cpu.vecmath`). ``parallel=True`` adds ``numba.prange``
    over the outer loop of elementwise index statements of at least :data:`PARALLEL_MIN` elements.
    """

    #: keep row reductions (softmax's max and Σ exp) for later statements (see Emitter.reduction)
    ROW_MEMO = True

    def __init__(self, net, dtype: str, workspace: bool = False, parallel: bool = False):
        self.bp = net if isinstance(net, derive.Backprop) else derive.backprop(net)
        self.workspace = workspace
        self.parallel = parallel
        self.buffers: dict[str, tuple] = {}   # sympy name -> api shape (workspace mode)
        self.info = self.bp.info
        self.dtype = dtype
        self.dt = DTYPES[dtype]
        self.names = Names()
        self.printer = KernelPrinter(self.names)
        self.emit = Emitter(self.printer, self.row_buffer if self.ROW_MEMO else None)
        self.row_buffers: list[str] = []      # float64 (N,) arrays of kept row reductions (workspace mode)
        self.scalars: list[str] = []          # the objective's terms (loss, penalties), set by walk()
        self.sig = signature(self.bp)
        self.body: list[str] = []
        self.views: dict[str, str] = {}        # sympy name -> 2-D view identifier (1-D arrays)
        self.defined: set[str] = set()        # sympy names bound to arrays so far

    # shapes
    def api_shape(self, v: str) -> tuple:
        shape = tuple(self.info.shapes[v])
        return ((BATCH,) if self.info.batched[v] else ()) + shape

    def shape_text(self, shape) -> str:
        """``(N, 4)``: a shape in code; ``N`` is :attr:`Emitter.loop_rows` when that is set."""
        rows = {BATCH: self.emit.loop_rows} if self.emit.loop_rows is not None else {}
        parts = [self.printer.doprint(sp.sympify(d).xreplace(rows)) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def node_of(self, name: str) -> str:
        """The node whose value or gradient the SymPy name ``name`` stands for."""
        kind, node = S.parse_name(name)
        if kind == "grad" and node in self.info.shapes:
            return node
        return name

    def array(self, name: str) -> str:
        return self.names(name)

    def matrix_view(self, name: str, shape: tuple) -> str:
        """The 2-D identifier of a matrix symbol: the array itself, or a reshaped view of a 1-D one."""
        if len(self.api_shape(self.node_of(name))) == 2:
            return self.array(name)
        if name not in self.views:
            view = self.array(name) + "_m"
            self.views[name] = view
            self.body.append(f"{view} = {self.array(name)}.reshape({self.shape_text(shape)})")
        return self.views[name]

    # matrix expressions: (code, kind) with kind "full" (the symbol's 2-D shape), "row" (a row that
    # broadcasts over the rows of the result) or "vec" (a 1-D array standing for an (r, 1) column)
    def mat(self, expr) -> tuple[str, str]:
        if isinstance(expr, sp.MatrixSymbol):
            return self.matrix_view(expr.name, expr.shape), "full"
        if isinstance(expr, sp.Transpose):
            arg = expr.arg
            if isinstance(arg, sp.MatrixSymbol) and arg.shape[1] == 1 and len(self.api_shape(self.node_of(arg.name))) == 1:
                return self.array(arg.name), "row"  # a 1-D (units,) array is the row bᵀ
            code, kind = self.mat(arg)
            return f"{self._paren(code)}.T", "full"
        if isinstance(expr, sp.OneMatrix):
            return f"np.ones({self.shape_text(expr.shape)}, dtype={self.dt})", "full"
        if isinstance(expr, sp.MatMul):
            coeff, factors = expr.as_coeff_matrices()
            factors = list(factors)
            code, kind = self._product(factors)
            if coeff != 1:
                code = f"{self.printer.doprint(coeff)} * {self._paren(code)}"
            return code, kind
        if isinstance(expr, sp.MatAdd):
            parts = [self.mat(a) for a in expr.args]
            # full terms first, so broadcast rows are added to a full matrix
            parts.sort(key=lambda p: p[1] != "full")
            kinds = {k for _, k in parts}
            if "vec" in kinds and len(kinds) > 1:
                shape = self.shape_text(expr.shape)
                parts = [(f"{c}.reshape({shape})" if k == "vec" else c, "full" if k == "vec" else k) for c, k in parts]
                kinds = {k for _, k in parts}
            kind = "full" if "full" in kinds else kinds.pop()
            return " + ".join(c for c, _ in parts), kind
        raise ValueError(f"cannot generate code for the matrix expression {expr}")

    def _product(self, factors: list) -> tuple[str, str]:
        if len(factors) >= 2 and isinstance(factors[0], sp.OneMatrix) and factors[0].shape[1] == 1:
            rest = factors[1:]
            code, kind = self._product(rest) if len(rest) > 1 else self.mat(rest[0])
            if kind == "row" or (kind == "full" and rest[0].shape[0] == 1):
                return code, "row"
            return f"np.ones({self.shape_text(factors[0].shape)}, dtype={self.dt}) @ {self._paren(code)}", "full"
        if len(factors) >= 2 and isinstance(factors[-1], sp.OneMatrix) and factors[-1].shape[1] == 1:
            rest = factors[:-1]
            if len(rest) == 1 and isinstance(rest[0], sp.Transpose):
                inner, _ = self.mat(rest[0].arg)
                return f"np.sum({inner}, axis=0)", "vec"
            code, _ = self._product(rest) if len(rest) > 1 else self.mat(rest[0])
            return f"np.sum({code}, axis=1)", "vec"
        codes = [self.mat(f) for f in factors]
        for c, k in codes:
            if k != "full":
                raise ValueError("internal: a broadcast row inside a matrix product")
        return " @ ".join(self._paren(c) for c, _ in codes), "full"

    @staticmethod
    def _paren(code: str) -> str:
        return code if re.fullmatch(r"[\w.]+(\[[^\]]*\])?", code) else f"({code})"

    # statements
    def comment(self, title: str, eq) -> None:
        self.body.append("")
        self.body.append(f"# {title}")
        for line in derive.pretty_equation(eq).splitlines():
            self.body.append(f"#   {line}")

    def allocate(self, name: str, shape: tuple) -> None:
        if self.workspace:
            self.buffer(name)
            return
        self.body.append(f"{self.array(name)} = np.empty({self.shape_text(shape)}, dtype={self.dt})")
        self.defined.add(name)

    def buffer(self, name: str) -> None:
        """Workspace mode: ``name`` lives in a buffer preallocated before the batch loop."""
        self.buffers[name] = self.api_shape(self.node_of(name))
        self.defined.add(name)

    def row_buffer(self, name: str) -> None:
        """A float64 array of one value per batch row, for a row reduction kept across statements."""
        if self.workspace:
            self.row_buffers.append(name)
        else:
            self.body.append(f"{name} = np.empty({self.printer.doprint(BATCH)})")

    def _drop_unread_rows(self) -> None:
        """Remove the buffers (and their stores) of row reductions no later statement read."""
        unread = {s.name for s in self.emit.rows.values()} - self.emit.rows_read
        if not unread:
            return
        pattern = re.compile(r"\s*(_row(?:max|sum)\d+)(\[\w+\] = \w+| = np\.empty\(N\))")
        self.body = [line for line in self.body
                     if not ((m := pattern.fullmatch(line)) and m.group(1) in unread)]
        self.row_buffers = [b for b in self.row_buffers if b not in unread]

    def batched(self, name: str) -> bool:
        shape = self.api_shape(self.node_of(name))
        return bool(shape) and shape[0] == BATCH

    # workspace mode: statements that write into preallocated arrays without temporaries
    def _dot_operand(self, f) -> str | None:
        """Code of a full 2-D operand of ``np.dot`` (an array or its transposed view), else None."""
        if isinstance(f, sp.MatrixSymbol) or (isinstance(f, sp.Transpose) and isinstance(f.arg, sp.MatrixSymbol)):
            code, kind = self.mat(f)
            if kind == "full" and re.fullmatch(r"\w+(\.T)?", code):
                return code
        return None

    def _dot_product(self, expr) -> tuple[str, str] | None:
        if not isinstance(expr, sp.MatMul):
            return None
        coeff, factors = expr.as_coeff_matrices()
        if coeff != 1 or len(factors) != 2:
            return None
        a, b = (self._dot_operand(f) for f in factors)
        return (a, b) if a is not None and b is not None else None

    def fast_matrix(self, name: str, eq, accumulate: bool) -> bool:
        """Print ``eq`` into the existing array of ``name`` without a temporary, if it has a known form."""
        target = self.array(name)
        ndim = len(self.api_shape(self.node_of(name)))
        rhs = eq.rhs
        # Gᵀ·𝟙 into a 1-D array: a column sum
        if ndim == 1 and isinstance(rhs, sp.MatMul):
            coeff, factors = rhs.as_coeff_matrices()
            if (coeff == 1 and len(factors) == 2 and isinstance(factors[1], sp.OneMatrix)
                    and factors[1].shape[1] == 1 and isinstance(factors[0], sp.Transpose)):
                src = self._dot_operand(factors[0].arg)
                if src is not None and not src.endswith(".T"):
                    # explicit loops (no array expression: under parallel=True it would be a parfor)
                    lines = [] if accumulate else [f"for i in range({target}.shape[0]):",
                                                   f"{INDENT}{target}[i] = 0.0"]
                    lines += [f"for n in range({src}.shape[0]):",
                              f"{INDENT}for i in range({src}.shape[1]):",
                              f"{INDENT * 2}{target}[i] += {src}[n, i]"]
                    self.body += lines
                    return True
            return False
        if ndim != 2 or accumulate:
            return False
        product = self._dot_product(rhs)
        if product is not None:
            self.body.append(f"np.dot({product[0]}, {product[1]}, {target})")
            return True
        if not isinstance(rhs, sp.MatAdd):
            return False
        products = [a for a in rhs.args if self._dot_product(a) is not None]
        if len(products) != 1:
            return False
        terms = []
        for a in rhs.args:
            if a is products[0]:
                continue
            code, kind = self.mat(a)
            if not re.fullmatch(r"\w+", code) or kind not in ("row", "full"):
                return False
            terms.append(f"{code}[i]" if kind == "row" else f"{code}[n, i]")
        x, y = self._dot_product(products[0])
        self.body += [f"np.dot({x}, {y}, {target})",
                      f"for n in range({target}.shape[0]):",
                      f"{INDENT}for i in range({target}.shape[1]):",
                      f"{INDENT * 2}{target}[n, i] += {' + '.join(terms)}"]
        return True

    def matrix_statement(self, name: str, eq, accumulate: bool, output: bool) -> None:
        if self.workspace:
            if not output and not accumulate:
                self.buffer(name)
            if self.fast_matrix(name, eq, accumulate):
                return
            output = True  # write into the buffer (a temporary remains: no fast form known)
        code, kind = self.mat(eq.rhs)
        shape = eq.lhs.shape
        one_d = len(self.api_shape(self.node_of(name))) == 1
        op = "+=" if accumulate else "="
        if output or accumulate:
            if one_d:
                if kind == "full":
                    code = f"{self._paren(code)}.reshape({self.shape_text(shape[:1])})"
                elif kind == "row":
                    code = f"{self._paren(code)}.ravel()" if shape[0] != 1 else code
                target = f"{self.array(name)}[:]"
            else:
                if kind == "vec":
                    code = f"{self._paren(code)}.reshape({self.shape_text(shape)})"
                target = f"{self.array(name)}[:, :]"
            self.body.append(f"{target} {op} {code}")
            return
        if kind == "vec":
            code = f"{self._paren(code)}.reshape({self.shape_text(shape)})"
        elif kind == "row":
            code = f"np.ones(({self.printer.doprint(shape[0])}, 1), dtype={self.dt}) * {self._paren(code)}"
        elif isinstance(eq.rhs, (sp.MatrixSymbol, sp.Transpose)):
            code = f"{self._paren(code)}.copy()"  # never alias another node's array
        self.body.append(f"{self.array(name)} = {code}")
        self.defined.add(name)

    def index_statement(self, name: str, eq, accumulate: bool, output: bool) -> None:
        if not accumulate and not output:
            self.allocate(name, tuple(eq.extents))
        levels = [Level(None)] + [Level(idx, sp.S.Zero, ext - 1) for idx, ext in zip(eq.indices, eq.extents)]
        rhs = stabilize_rows(eq.rhs)
        code = self.emit.expr(rhs, levels)
        op = "+=" if accumulate else "="
        final = [f"{self.printer.doprint(eq.lhs)} {op} {code}"]
        lines = self.emit.render(levels, final)
        if self.parallel and len(levels) > 1:
            size = self.printer.doprint(sp.Mul(*eq.extents))
            par = self.emit.render(levels, final, prange=True)
            lines = [f"if {size} >= PARALLEL_MIN:", *[INDENT + x for x in par],
                     "else:", *[INDENT + x for x in lines]]
        self.body += lines

    def scalar_statement(self, v: str, eq) -> str:
        target = self.array(v)
        levels = [Level(None)]
        code = self.emit.expr(stabilize_rows(eq.rhs), levels)
        self.body += self.emit.render(levels, [f"{target} = {code}"])
        return target

    def walk(self) -> str:
        """Print forward and backward statements into :attr:`body`; return the objective's code."""
        bp, info = self.bp, self.info
        sig = self.sig
        g = bp.graph

        self.body.append("")
        self.body.append("# ---- forward pass ----")
        scalars = self.scalars
        for v in info.order:
            eq = bp.nodes[v].forward
            if eq is None:
                continue
            self.comment(f"node {v!r} ({g.nodes[v]['op']}): forward", eq)
            if eq.form == "matrix":
                self.matrix_statement(v, eq, accumulate=False, output=False)
            elif eq.form == "index":
                self.index_statement(v, eq, accumulate=False, output=False)
            else:
                scalars.append(self.scalar_statement(v, eq))

        self.body.append("")
        self.body.append("# ---- backward pass: each node's gradient is the sum of its consumers' VJPs ----")
        params = set(sig.parameters)
        for v in reversed(info.order):
            contributions = bp.gradients.get(v) or []
            for q, c in enumerate(contributions):
                eq = c.equation
                name = S.GRAD_PREFIX + v
                self.comment(f"node {v!r}: contribution of consumer {c.consumer!r} (argument {c.arg!r})", eq)
                if eq.form == "matrix":
                    self.matrix_statement(name, eq, accumulate=q > 0, output=v in params)
                else:
                    self.index_statement(name, eq, accumulate=q > 0, output=v in params)
        for p in sig.parameters:
            if not bp.gradients.get(p):
                self.body.append("")
                self.body.append(f"# node {p!r}: no gradient flows into this parameter")
                self.body.append(f"{self.array(S.GRAD_PREFIX + p)}[:] = 0.0")

        self._drop_unread_rows()
        self.body.append("")
        total = " + ".join(scalars) if scalars else "0.0"
        self.body.append(f"# objective: loss {info.loss!r}" + (
            f" plus penalties {', '.join(map(repr, info.penalties))}" if info.penalties else ""))
        return total

    def shape_doc(self, v: str) -> str:
        dims = [str(d) for d in self.api_shape(v)]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
