"""A whole training epoch in one generated Numba function: batches, forward, backward, optimizer.

:func:`generate_epoch` prints a module with one function ::

    train_epoch(X, T, order, batch_size, <parameters...>, <optimizer state...>, hyper, step0, losses_out)
        -> steps_done

* ``X``, ``T``: every row of the input and the target (C-contiguous, the model's dtype);
  ``order``: int64 row indices (the shuffled permutation); batch ``b`` is the rows
  ``order[b*batch_size : (b+1)*batch_size]`` (the last batch may be smaller; the loss is a mean
  over the rows the batch actually has).
* ``<parameters...>``: the parameter arrays in :func:`kernels.lower.signature.signature` order, updated in
  place; ``<optimizer state...>``: for each parameter in that order, one array per state slot in
  ``optimizer.state`` order (``m`` then ``v`` for Adam), shaped like the parameter, updated in place.
* ``hyper``: float64 array of the hyperparameters, **in sorted order of their names**
  (:func:`hyper_names`; Adam: ``beta1, beta2, eps, l1, l2, lr``); ``step0``: the number of steps
  taken before this epoch (the optimizer's ``t`` is ``step0 + b + 1`` in batch ``b``).
* ``losses_out``: float64, one entry per batch, receives each batch's objective.
* Returns the number of batches whose update was applied: all of them, or ``b`` when the
  objective of batch ``b`` is not finite (its update is then not applied, so the parameters are
  the last good ones, and ``losses_out[b]`` holds the non-finite value), or ``-(b + 1)`` when
  the objective of batch ``b`` is finite but its update read a gradient element that is not
  finite or wrote a parameter or optimizer-state element that is not finite. That update *has*
  been applied (``b + 1`` updates, the last one bad; ``losses_out[b]`` holds its finite
  objective): :meth:`kernels.model.CompiledModel.epoch_function` keeps a copy of the parameters
  and state from before the call, puts it back and runs the first ``b`` batches again
  (deterministic: the same values), so its caller gets the last good step.

The check costs one test per element of the update loop that exists anyway: ``o - o`` is 0 for
a finite ``o`` and NaN for NaN or ±inf, so ``nonfinite |= (o_g - o_g) + (o_w - o_w) + ... != 0``
over the gradient and every value written (a flag, not a float sum: LLVM keeps the loop
vectorised; no pass of its own over the gradients, no copy of the parameters per step).

The forward and backward statements are printed by the same walk over the derived equations as
``loss_and_grads`` (:class:`kernels.lower.walker.EquationWalker` in workspace mode): every intermediate
array is allocated once before the batch loop, sized for a full batch, and viewed as
``buf[:N]`` for the current batch; products are ``np.dot(a, b, out)`` (``Gᵀ·X`` as
``np.dot(G.T, X, out)``: Numba passes the transposed, F-ordered view to BLAS with a transpose
flag, no copy); ``tanh``/``exp`` are :mod:`kernels.cpu.vecmath`'s, which LLVM vectorises (SIMD).
The optimizer's update is printed from ``optimizer.equations()``: one loop over each parameter's
elements, one statement per equation under a comment with the rule; every subexpression of
hyperparameters and ``t`` alone is computed once per step, before the loops, in the model's dtype.

Compilation flags: ``cache=True, nogil=True, error_model="numpy", fastmath=False`` (fastmath
would let LLVM assume no NaN/inf, which the divergence check relies on, and reassociate sums,
which the float64 reference tests compare to 1e-9). ``nogil``: the function never takes the GIL.

Backends
--------
``"cpu"``: ``numba.njit``; the matrix products are BLAS calls, threaded by OpenBLAS.

``"parallel"``, data-parallel form (``CHUNKED = True`` in the module): each batch is split into
one chunk of rows per Numba thread (``n_threads``, an extra last argument: calling
``numba.get_num_threads()`` inside would keep Numba from caching the function). Inside one
``prange`` region every chunk gathers its rows and runs every forward and backward statement on
them, into its own slab of each workspace (``buf[chunk, :Nc]``) and its own partial parameter
gradients; loops run to the chunk's ``Nc`` rows while formulas keep the batch's ``N``. After the
region the chunks' loss parts are summed; then a second ``prange`` region splits every
parameter's elements into one slice per thread, adds the chunks' partial gradients there and
applies the optimizer's update to the slice. Statements that read no batched array (penalties) run
once, outside the region: their values before it, their gradient terms after the partials are
added. Each ``prange`` body is printed as a serial function of its own with an explicit
signature, which ``train_epoch`` receives as a last argument (``FUNCTION_ARGUMENTS`` in the
module) and calls through that first-class function pointer (:mod:`kernels.lower.outline`): Numba's
parfor passes see one call, and the body is compiled once instead of again in each gufunc,
wrapper and ``train_epoch``. Each chunk's slab of every batched array is a view of one array
``work[chunk]``, each partial gradient one of ``grads[chunk]``, and the update of one
parameter is one function called per parameter, because every array a ``prange`` body reads
costs Numba about 40 ms of compilation.

A big input layer (a weight of :data:`~kernels.cpu.epoch_keys.SPLIT_MIN_WEIGHTS` elements or more,
``z = x·Wᵀ``) is split by output features instead in batches of at most ``features /``
:data:`~kernels.cpu.epoch_keys.SPLIT_ROWS_PER_FEATURE` rows (a runtime ``split`` flag): a region
gathers each chunk's rows into one array ``xs`` for the batch, a second computes
``zT[f] = W[f]·xsᵀ`` for each thread's features ``f``, the chunks copy their rows of ``zT`` into
``z`` and their rows of ``z``'s gradient into ``gzT``, and each part of the update region
computes its features' rows ``gW[f] = gzT[f]·xs`` whole into the first row of ``grads`` and
updates them (reading no partial; that parameter is sliced in whole rows). Split by rows, every
thread's BLAS call packs all of ``W`` for a few rows; by features, each packs its share.
:mod:`kernels.lower.chunks` checks
that every statement is row-local, a sum over rows or row-independent; a network with any
other statement gets the ``prange`` form below. The chunks
call BLAS from every thread, so :meth:`kernels.model.CompiledModel.epoch_function` limits
BLAS to one thread for the call (:mod:`kernels.cpu.blas_threads`) and runs this form from
:data:`CHUNK_MIN` of work per batch (rows times the trained parameters plus the widest layer):
for the 784-256-128-10 net from batch 2 on.

``"parallel"``, ``prange`` form: the outer loop of each elementwise index statement and of each
optimizer loop is ``numba.prange`` when the statement has at least :data:`PARALLEL_MIN`
elements (a runtime branch: smaller ones stay serial), never over a loop that accumulates into
a shared gradient. OpenBLAS already threads the products, so on few cores this form seldom
beats the serial function: the thresholds keep it from running where it was measured slower.

Numba's threading layer (unless ``NUMBA_THREADING_LAYER`` is set) is OpenMP when the process's
first parallel function is the data-parallel form (BLAS is single-threaded there), else
``workqueue``: in the ``prange`` form the OpenMP layer's spinning threads fight OpenBLAS's. Below
the thresholds the serial function runs. Tests check both forms against the serial function
(1e-12 in float64). The measurements behind every threshold and choice here are in
``bench/RESULTS.md``.

Examples
--------
>>> from symprop import derive
>>> from symprop.kernels.training.optim import Adam
>>> hyper_names(Adam(lr=1e-3))
('beta1', 'beta2', 'eps', 'l1', 'l2', 'lr')
>>> optimizer_key(Adam(lr=1e-3)) == optimizer_key(Adam(lr=0.5))
True
>>> src = generate_epoch(derive.mlp([2, 3, 1], activation="tanh"), Adam())
>>> "def train_epoch(X, T, order, batch_size," in src and "np.dot(" in src
True
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import sympy as sp

from symprop.derive import symbols as S

from symprop.kernels.lower import chunks
from symprop.kernels.cpu.loss import IMPORTS
from symprop.kernels.lower.optimizer import OptimizerRules
from symprop.kernels.lower.printer import HELPERS, INDENT, KernelPrinter
from symprop.kernels.lower.signature import DTYPES, dtype_name
from symprop.kernels.lower.walker import EquationWalker
from symprop.kernels.cpu import epoch_keys
from symprop.kernels.cpu.epoch_keys import (CHUNK_MIN, EPOCH_FUNCTION_NAME, PARALLEL_MIN, SPLIT_MIN_WEIGHTS, SPLIT_ROWS_PER_FEATURE,
                         hyper_names, hyper_vector, optimizer_key)
from symprop.kernels.lower.outline import module_level_names, outline

__all__ = ["generate_epoch", "optimizer_key", "hyper_names", "hyper_vector", "OptimizerRules",
           "EPOCH_FUNCTION_NAME", "PARALLEL_MIN", "CHUNK_MIN", "NotChunkable"]

#: Numba flags of every generated epoch function (``parallel=True`` added for the parallel forms).
_FLAGS = 'cache=True, nogil=True, fastmath=False, error_model="numpy"'

#: Names the generated module binds at its top level (imports, helpers, constants).
_MODULE_NAMES = module_level_names("\n".join([*IMPORTS, *HELPERS])) | {"PARALLEL_MIN", "CHUNKED",
                                                                       "FUNCTION_ARGUMENTS"}


def _array_type(dtype: str, ndim: int, readonly: bool = False) -> str:
    """Numba's signature text of a C-contiguous array.

    >>> _array_type("float32", 3), _array_type("int64", 1, readonly=True)
    ('float32[:, :, ::1]', "Array(int64, 1, 'C', readonly=True)")
    """
    if readonly:   # the caller's X, T and order may be read-only; a writeable array converts
        return f"Array({dtype}, {ndim}, 'C', readonly=True)"
    return f"{dtype}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"


def _pointer_argument(function: str) -> str:
    """The epoch function's argument through which it calls ``function``: ``chunk_pass_fn``."""
    return function.lstrip("_") + "_fn"

#: A chunk's rows in the data-parallel epoch: loops over the batch run to ``Nc``, formulas keep ``N``.
CHUNK_ROWS = sp.Symbol("Nc", integer=True, positive=True)


class NotChunkable(ValueError):
    """A statement couples the batch's rows beyond a sum (see :mod:`kernels.lower.chunks`)."""


class _EpochGenerator(EquationWalker):
    """``chunked``: the data-parallel form of the ``parallel`` backend (module docstring)."""

    def __init__(self, net, dtype: str, optimizer, parallel: bool, parallel_min: int = PARALLEL_MIN,
                 chunked: bool = False):
        super().__init__(net, dtype, workspace=True, parallel=parallel and not chunked)
        self.opt = optimizer
        self.parallel_min = int(parallel_min)
        self.chunked = chunked
        self.outlined: dict[str, list[str]] = {}   # name -> lines of the functions prange bodies call
        self.pointers: list[str] = []         # those called through a FunctionPointer argument
        self.types: dict[str, str] = {}       # Numba type of each value a prange body may read
        self.before_chunks: list[str] = []    # chunked: row-independent values (penalties)
        self.after_chunks: list[str] = []     # chunked: row-independent gradient terms
        self.const_scalars: list[str] = []
        self.split: dict | None = None          # chunked: the input layer split by features, if any
        if chunked:
            self.emit.loop_rows = CHUNK_ROWS

    # --- chunked mode: every statement checked; row-independent ones (penalties) move out of the
    # parallel region: values before it, gradient contributions after the chunks' partials are added
    def _chunk_statement(self, emit, eq, target: str, kind: str, accumulate: bool, redo=None):
        start, views = len(self.body), dict(self.views)
        result = emit()
        if not self.chunked:
            return result
        role = chunks.role(eq, self.batched)
        allowed = {"batched": ("row",), "grad": ("sum", "const"), "scalar": ("sum", "const")}.get(kind, ())
        if role not in allowed:
            raise NotChunkable(f"statement for {target!r} is not row-local or a sum over rows")
        if role != "const":
            return result
        lines = self.body[start:]
        del self.body[start:]
        if self.views != views or any(re.search(r"\w+_m\b", x) for x in lines):
            raise NotChunkable(f"row-independent statement for {target!r} uses a reshaped view")
        if kind == "scalar":
            self.before_chunks += lines
            self.const_scalars.append(target)
            self.body.append("# reads no batched array: computed once a step, before the chunks")
            return result
        if not accumulate:
            self.body.append(f"{target}.fill(0.0)  # its row-independent term is added after the chunks")
        else:
            self.body.append("# reads no batched array: added once, after the chunks' partials")
        mark = len(self.body)
        redo()   # the same statement, accumulating into the summed gradient
        total = re.sub(rf"\b{target}\b", f"{target}_total", "\n".join(self.body[mark:])).split("\n")
        del self.body[mark:]
        self.after_chunks += total
        return result

    def _target_kind(self, name: str) -> str:
        if self.batched(name):
            return "batched"
        kind, node = S.parse_name(name)
        return "grad" if kind == "grad" and node in self.sig.parameters else "other"

    def _array_statement(self, base, name, eq, accumulate, output):
        return self._chunk_statement(lambda: base(name, eq, accumulate, output), eq, self.array(name),
                                     self._target_kind(name), accumulate, lambda: base(name, eq, True, output))

    def matrix_statement(self, name, eq, accumulate, output):
        return self._array_statement(super().matrix_statement, name, eq, accumulate, output)

    def index_statement(self, name, eq, accumulate, output):
        return self._array_statement(super().index_statement, name, eq, accumulate, output)

    def scalar_statement(self, v, eq):
        return self._chunk_statement(lambda: super(_EpochGenerator, self).scalar_statement(v, eq),
                                     eq, self.array(v), "scalar", False)

    def optimizer_lines(self, step: str) -> tuple[list[str], list[str], list[tuple], Callable]:
        """(prologue lines, the step's scalar lines, one ``(parameter, flats)`` per parameter,
        ``body``) of the update: ``flats`` maps ``w``, ``g`` and each state slot to its flat array
        (the chunked form reads ``g`` from ``grads`` instead, see :meth:`sliced_region`),
        ``body(flats, plus=None)`` prints the per-element statements for element ``e`` of the
        arrays (with ``plus``, an array whose element is added to the gradient's as it is read)."""
        opt, sig = self.opt, self.sig
        printer = KernelPrinter(self.names)
        r = OptimizerRules(opt, step)
        names, rules, pretty = r.names, r.rules, r.pretty

        pro = ["", f"# optimizer {type(opt).__name__}: hyper = [{', '.join(names)}] (sorted names)"]
        pro += [f"h_{k} = hyper[{q}]" for q, k in enumerate(names)]
        step_lines = ["", f"# ---- optimizer {type(opt).__name__}: t = step0 + b + 1 ----",
                      f"{step} = step0 + b + 1"]
        for e, sym in r.scalars.items():
            scalar = printer.doprint(sym)
            step_lines.append(f"{scalar} = {self.dt}({printer.doprint(e)})")
            self.types[scalar] = self.dtype
        rule_lines = [(f"# {text}", f"{printer.doprint(lhs)} = {printer.doprint(rhs)}", lhs.name[2:])
                      for (lhs, rhs), text in zip(rules, pretty)]

        written = list(dict.fromkeys(k for *_, k in rule_lines))
        checked = " + ".join(f"(o_{k} - o_{k})" for k in dict.fromkeys(["g", *written]))

        def body(flats, plus=None, flag="nonfinite |="):
            out = [f"o_{k} = {flat}[e]" for k, flat in flats.items()]
            if plus is not None:   # the gradient read as the sum of two arrays' elements
                out[list(flats).index("g")] = f"o_g = {flats['g']}[e] + {plus}[e]"
            for comment, line, _ in rule_lines:
                out += [comment, line]
            return out + [f"{flats[k]}[e] = o_{k}" for k in written] + [
                "# x - x is 0 for a finite x, NaN for NaN or ±inf: the gradient or a new value not finite",
                f"{flag} {checked} != 0"]

        params = []
        for p in sig.parameters:
            w = self.array(p)
            gname = self.array(S.GRAD_PREFIX + p)
            flats = {"w": f"{w}_f", "g": f"{gname}_f"}
            pro.append(f"{w}_f = {w}.reshape({w}.size)")
            if not self.chunked:   # chunked: the region takes the gradient's slices of `grads`
                pro.append(f"{gname}_f = {gname}.reshape({w}.size)")
            for s in opt.state:
                arr = f"s_{w}_{s}"
                flats[s] = f"{arr}_f"
                pro.append(f"{arr}_f = {arr}.reshape({arr}.size)")
            params.append((p, flats))
            self.types.update({f: _array_type(self.dtype, 1) for k, f in flats.items() if k != "g"})
        return pro, step_lines, params, body

    def update_loops(self, params, body) -> list[str]:
        """The serial and ``prange`` forms' update: one loop over each parameter's elements,
        each raising ``nonfinite`` where the gradient or a value written is not finite (a bool
        ``|=`` serially; an int ``+=`` in the ``prange`` form, a reduction Numba's parfors take)."""
        flag = "nonfinite +=" if self.parallel else "nonfinite |="
        lines = ["nonfinite = 0" if self.parallel else "nonfinite = False"]
        for p, flats in params:
            size = f"{flats['w']}.shape[0]"
            loop = [f"for e in range({size}):", *[INDENT + x for x in body(flats, flag=flag)]]
            lines.append(f"# parameter {p!r}")
            if self.parallel:
                lines += [f"if {size} >= PARALLEL_MIN:", f"{INDENT}for e in numba.prange({size}):",
                          *[INDENT * 2 + x for x in body(flats, flag=flag)], "else:", *[INDENT + x for x in loop]]
            else:
                lines += loop
        return lines

    def sliced_region(self, params, body, add: bool, update: bool, name: str) -> list[str]:
        """The data-parallel form's update: one ``prange`` region in which part ``q`` of ``C``
        takes elements ``[e_lo, e_hi)`` of every parameter, adds the chunks' partial gradients
        there (``add``) and applies the update rules to them (``update``). Slices, not
        ``range(e_lo, e_hi)``: indices that Numba cannot prove non-negative get a wraparound check
        on every access, which kept the loops from vectorising (measured: 15% of a step).

        With both, the second chunk's partial is added as the update reads the gradient instead
        of in a pass of its own (one write and one read of the slice fewer: 1.5-3% of a batch-32
        step of the 784 net, within noise at batch 1024); chunks from the third on are added
        first. The partials have at least two slabs, the second zeroed when a batch has one
        chunk.

        The work on one parameter is printed once, as the function ``name`` without its final
        ``s`` (``_add_and_update_slice``), which the region calls for each parameter with its
        arrays and the place of its gradient in ``grads`` (``at``, ``size``: every parameter's
        gradient and partials are slices of that one array, :meth:`_gradient_layout`). Each
        array a ``prange`` body reads costs Numba about 40 ms of compilation and each printed
        copy of the rules about 0.2 s (measured), so the bodies read few arrays and the rules
        are compiled once."""
        I = INDENT
        _, some_flats = params[0]
        generic = {k: ("g_f" if k == "g" else "w_f" if k == "w" else f"s_{k}_f") for k in some_flats}
        arrays = generic if update else {"g": "g_f"}
        sl = {k: f"{v}_sl" for k, v in arrays.items()}
        lines = ["# elements [e_lo, e_hi) of a parameter's `size`, at `at` in the rows of grads, in whole",
                 "# `unit`s (a row of the weight whose gradient this region computes, else one element)",
                 "e_lo = unit * (size // unit * q // C)",
                 "e_hi = unit * (size // unit * (q + 1) // C)",
                 *[f"{sl[k]} = grads[0, at + e_lo:at + e_hi]" if k == "g" else f"{sl[k]} = {v}[e_lo:e_hi]"
                   for k, v in arrays.items()]]
        if add:
            first = 2 if update else 1   # with the update: chunk 1's partial is added as it reads
            lines += ["# n_parts: the rows of grads holding a partial (1: the first holds the whole gradient)",
                      f"for chunk in range({first}, n_parts):",
                      f"{I}part_sl = grads[chunk, at + e_lo:at + e_hi]",
                      f"{I}for e in range({sl['g']}.size):",
                      f"{I * 2}{sl['g']}[e] += part_sl[e]"]
        loop = f"for e in range({sl['g']}.size):"
        if update:
            lines.append("nonfinite = False")
        if add and update:
            lines += ["if n_parts > 1:",
                      f"{I}part_1_sl = grads[1, at + e_lo:at + e_hi]",
                      f"{I}{loop}", *[I * 2 + x for x in body(sl, "part_1_sl")],
                      "else:  # a one-row batch, or a gradient computed whole (an input layer split by features)",
                      f"{I}{loop}", *[I * 2 + x for x in body(sl)]]
        elif update:
            lines += [loop, *[I + x for x in body(sl)]]
        if update:   # part q's flag: read after the region (only ever set: the epoch returns once it is)
            lines += ["if nonfinite:", f"{I}nonfinite_parts[q] = 1"]
        one = name[:-1]
        made = outline(one, lines, "q", module_names=_MODULE_NAMES | self.outlined.keys())
        # compiled for what it gets if a rule reads a value not typed here
        self._add_function(made, {"at": "int64", "size": "int64", "n_parts": "int64", "unit": "int64",
                                  "nonfinite_parts": _array_type("int64", 1),
                                  **{v: _array_type(self.dtype, 1) for k, v in arrays.items() if k != "g"}})
        layout = self._gradient_layout()
        calls = []
        for p, flats in params:
            at, size = layout[p]
            split = self.split is not None and p == self.split["param"]
            actual = {"at": str(at), "size": str(size), "n_parts": "(1 if split else n_chunks)" if split else "n_chunks",
                      "unit": str(self.split["inputs"]) if split else "1",
                      **{v: flats[k] for k, v in arrays.items() if k != "g"}}
            calls.append(f"# parameter {p!r}")
            if split and add:
                calls += self._split_weight_gradient()
            calls.append(f"{one}({', '.join(actual.get(a, a) for a in made.params)})")
        return self._region("for q in numba.prange(C):", calls, name)

    def _region(self, header: str, body: list[str], name: str) -> list[str]:
        """The ``prange`` loop ``header`` over ``body`` (unindented lines). The body moves into a
        serial function ``name`` of its own, kept in :attr:`outlined` for the module
        (:mod:`kernels.lower.outline`: Numba's parfor passes took 14-18 s over the inline bodies of the
        784 net's data-parallel epoch); a body that cannot move stays inline. When every value
        it reads has a type in :attr:`types`, the function gets that signature and the loop calls
        it through a function-pointer argument of the epoch function (compiled once); else by
        name (linked, and compiled again into the caller)."""
        var = header.split()[1]
        made = outline(name, body, var, module_names=_MODULE_NAMES | self.outlined.keys())
        if made is None:
            return [header, *[(INDENT + line) if line else "" for line in body]]
        # the loop variable passed as int64: the parfor's own index is unsigned, which would
        # compile the function a second time for it (2 s measured)
        loop_arg = f"np.int64({var})"
        if not self._add_function(made):   # reads a value not typed here: linked into the caller
            return [header, INDENT + made.call(loop_arg)]
        self.pointers.append(name)
        return [header, INDENT + made.call(loop_arg, callee=_pointer_argument(name))]

    def _add_function(self, made, types: dict[str, str] | None = None) -> bool:
        """Print the outlined function ``made`` into the module; its loop variable is int64, its
        other parameters take their types from ``types`` or :attr:`types`. With all of them known
        it gets that explicit signature (compiled once, at import) and True is returned; else
        Numba compiles it for what it is called with."""
        known = [(types or {}).get(p) or self.types.get(p) for p in made.params[1:]]
        if None in known:
            self.outlined[made.name] = made.function(f"@numba.njit({_FLAGS})")
            return False
        self.outlined[made.name] = made.function(f'@numba.njit("void({", ".join(["int64", *known])})", {_FLAGS})')
        return True

    def _gather(self, copies: list[tuple[str, str, str]], first_row: str) -> list[str]:
        """Lines copying the batch's rows (``order[first_row + r]``) of each ``(variable, source,
        destination)`` in ``copies`` (source ``X`` or ``T``) into the destination array."""
        lines = [f"for r in range({'Nc' if self.chunked else 'N'}):",
                 f"{INDENT}row = order[{first_row} + r]"]
        for v, src, dest in copies:
            if len(self.api_shape(v)) == 2:
                lines += [f"{INDENT}for c in range({src}.shape[1]):",
                          f"{INDENT * 2}{dest}[r, c] = {src}[row, c]"]
            else:
                lines.append(f"{INDENT}{dest}[r] = {src}[row]")
        return lines

    def _input_split(self, x: str, body: list[str]) -> dict | None:
        """The input layer whose product ``np.dot(x, W.T, z)`` and weight gradient
        ``np.dot(gz.T, x, gW)`` the data-parallel form can split by output features (see
        :data:`kernels.cpu.epoch_keys.SPLIT_MIN_WEIGHTS`): a weight of that size or more, each
        statement printed once, and nothing else writing ``W``'s gradient; else None."""
        xa = self.array(x)
        if len(self.api_shape(x)) != 2:
            return None
        for p in self.sig.parameters:
            shape = self.api_shape(p)
            if len(shape) != 2 or self._static_size(shape) < SPLIT_MIN_WEIGHTS:
                continue
            w, gw = self.array(p), self.array(S.GRAD_PREFIX + p)
            fwd = [(i, m) for i, line in enumerate(body) if (m := re.fullmatch(rf"np\.dot\({xa}, {w}\.T, (\w+)\)", line))]
            bwd = [(i, m) for i, line in enumerate(body) if (m := re.fullmatch(rf"np\.dot\((\w+)\.T, {xa}, {gw}\)", line))]
            if len(fwd) != 1 or len(bwd) != 1 or sum(bool(re.search(rf"\b{gw}\b", line)) for line in body) != 1:
                continue
            return {"param": p, "w": w, "gw": gw, "z": fwd[0][1].group(1), "gz": bwd[0][1].group(1),
                    "forward": fwd[0][0], "backward": bwd[0][0],
                    "features": int(shape[0]), "inputs": int(shape[1])}
        return None

    def _split_chunk_lines(self, body: list[str]) -> list[str]:
        """``body`` (the chunk's statements) with the split layer's two products made conditional:
        with ``split``, the chunk copies its rows of the product from ``zT`` and its rows of the
        gradient ``gz`` into ``gzT``, which the regions before and after the chunks fill and read."""
        sp_, I = self.split, INDENT
        out_ = sp_["features"]

        def transposed(comment, buffer, copy, statement):   # with split the copy, else the product
            return [f"if split:  # {comment}", f"{I}{buffer} = {buffer}_f[:{out_} * N].reshape({out_}, N)",
                    f"{I}for i in range({out_}):", f"{I * 2}for n in range(Nc):", f"{I * 3}{copy}",
                    "else:", I + body[statement]]

        forward = transposed("the product was computed by features (_input_product): this chunk's rows of it",
                             "zT", f"{sp_['z']}[n, i] = zT[i, lo + n]", sp_["forward"])
        backward = transposed("its rows of the gradient, for the weight gradient by features (computed with the update)",
                              "gzT", f"gzT[i, lo + n] = {sp_['gz']}[n, i]", sp_["backward"])
        out = []
        for i, line in enumerate(body):
            out += forward if i == sp_["forward"] else backward if i == sp_["backward"] else [line]
        return out

    def _split_weight_gradient(self) -> list[str]:
        """Lines of part ``q`` of the region that adds the chunks' partial gradients: with
        ``split``, its features' rows of the split layer's weight gradient, ``gW[f] = gzT[f]·xs``,
        written whole into the first row of ``grads``; the same part then updates those rows
        (the parameter is sliced in whole rows, ``unit``) while they are in its cache."""
        out_ = self.split["features"]
        return ["if split:  # its gradient by features, whole (the input layer split by features)",
                *[INDENT + line for line in self._split_features()],
                f"{INDENT}gzT = gzT_f[:{out_} * N].reshape({out_}, N)",
                f"{INDENT}np.dot(gzT[f_lo:f_hi], xs, {self.split['gw']}_total[f_lo:f_hi])"]

    def _split_features(self) -> list[str]:
        """Part ``q``'s features ``[f_lo, f_hi)`` of the split layer, and the batch's rows ``xs``."""
        out_, inp = self.split["features"], self.split["inputs"]
        return [f"f_lo = {out_} * q // C", f"f_hi = {out_} * (q + 1) // C", f"xs = xs_f[:N * {inp}].reshape(N, {inp})"]

    def _split_regions(self, x: str) -> list[str]:
        """Lines before the chunks of a batch whose input layer is split by features: the rows
        gathered into ``xs`` by chunk, then ``zT = W·xsᵀ`` by features."""
        sp_, I = self.split, INDENT
        out_, inp, w = sp_["features"], sp_["inputs"], sp_["w"]
        xa = self.array(x)
        gather = ["lo = chunk * N // n_chunks",
                  "Nc = (chunk + 1) * N // n_chunks - lo",
                  f"{xa} = xs_f[lo * {inp}:(lo + Nc) * {inp}].reshape(Nc, {inp})",
                  *self._gather([(x, "X", xa)], "start + lo")]
        product = [*self._split_features(), f"zT = zT_f[:{out_} * N].reshape({out_}, N)",
                   f"np.dot({w}[f_lo:f_hi], xs.T, zT[f_lo:f_hi])"]
        return [f"split = 1 if C > 1 and N * {SPLIT_ROWS_PER_FEATURE} <= {out_} else 0  "
                  f"# input layer {sp_['param']!r} split by features (kernels.cpu.epoch_keys.SPLIT_ROWS_PER_FEATURE)",
                  "if split:",
                  *[I + line for line in self._region("for chunk in numba.prange(n_chunks):", gather, "_gather_rows")],
                  *[I + line for line in self._region("for q in numba.prange(C):", product, "_input_product")]]

    def _static_size(self, shape) -> int:
        """The number of elements of ``shape`` (batch axis excluded by the caller); the chunked
        form's flat layouts need it as a number."""
        try:
            return int(np.prod([int(d) for d in shape], dtype=np.int64))
        except TypeError:
            raise NotChunkable(f"shape {shape} is not static") from None

    def _gradient_layout(self) -> dict[str, tuple[int, int]]:
        """``parameter -> (offset, size)`` of its gradient in a row of ``grads``, in signature order."""
        layout, at = {}, 0
        for p in self.sig.parameters:
            size = self._static_size(self.api_shape(p))
            layout[p], at = (at, size), at + size
        return layout

    def _chunk_slabs(self, x: str, tgt: str) -> tuple[list[str], list[str]]:
        """(prologue lines, the chunk's view lines) of the data-parallel form's workspaces: every
        batched array's slab of ``R`` rows lies in ``work[chunk]``, every kept row reduction's in
        ``work_rows[chunk]``, every parameter's partial gradient in ``grads[chunk]``."""
        dt = self.dtype
        pro, views, at = [], [], 0
        if self.split:   # the input's rows in one array for the whole batch: the split product reads them all
            inp, out_ = self.split["inputs"], self.split["features"]
            pro += [f"xs_f = np.empty(N * {inp}, dtype={self.dt})  # the batch's input rows, the chunks' one after another",
                    f"zT_f = np.empty(N * {out_}, dtype={self.dt})  # the split layer's product, by features",
                    f"gzT_f = np.empty(N * {out_}, dtype={self.dt})  # its output's gradient, by features"]
            views.append(f"{self.array(x)} = xs_f[lo * {inp}:(lo + Nc) * {inp}].reshape(Nc, {inp})")
            self.types.update({k: _array_type(dt, 1) for k in ("xs_f", "zT_f", "gzT_f")})
            self.types.update({"split": "int64", f"{self.split['gw']}_total": _array_type(dt, 2)})
        slabs = [(tgt, self.api_shape(tgt)), *self.buffers.items()]
        if not self.split:
            slabs.insert(0, (x, self.api_shape(x)))
        for v, shape in slabs:
            width = self._static_size(shape[1:])
            rest = "".join(f", {self.printer.doprint(sp.sympify(d))}" for d in shape[1:])
            span = f"{'R * ' + str(at) if at else '0'}:R * {at + width}"
            views.append(f"{self.array(v)} = work_c[{span}]{f'.reshape(R{rest})' if len(shape) > 1 else ''}[:Nc]")
            at += width
        pro.append(f"work = np.empty((C, R * {at}), dtype={self.dt})  # each chunk's slab of every batched array")
        views.insert(0, "work_c = work[chunk]")
        self.types["work"] = _array_type(dt, 2)
        if self.row_buffers:
            pro.append(f"work_rows = np.empty((C, R * {len(self.row_buffers)}))  # row reductions kept for "
                       "later statements")
            self.types["work_rows"] = _array_type("float64", 2)
            views += [f"{name} = work_rows[chunk, {f'R * {j}' if j else '0'}:R * {j + 1}]"
                      for j, name in enumerate(self.row_buffers)]
        layout = self._gradient_layout()
        total = sum(size for _, size in layout.values())
        pro.append(f"grads = np.empty((max(C, 2), {total}), dtype={self.dt})  # each chunk's partial gradients")
        self.types["grads"] = _array_type(dt, 2)
        for p, (at, size) in layout.items():
            g = self.array(S.GRAD_PREFIX + p)
            shape = self.api_shape(p)
            shaped = f".reshape{self.shape_text(shape)}" if len(shape) > 1 else ""
            pro.append(f"{g}_total = grads[0, {at}:{at + size}]{shaped}  # their sum, after each batch's chunks")
            views.append(f"{g} = grads[chunk, {at}:{at + size}]{shaped}")
        return pro, views

    def generate_epoch(self) -> str:
        sig = self.sig
        if len(sig.inputs) != 1 or len(sig.targets) != 1:
            raise ValueError(f"train_epoch needs a network with one input and one target; this one has "
                             f"inputs {list(sig.inputs)} and targets {list(sig.targets)}")
        x, tgt = sig.inputs[0], sig.targets[0]
        params = [self.array(p) for p in sig.parameters]
        state = [f"s_{self.array(p)}_{s}" for p in sig.parameters for s in self.opt.state]
        total = self.walk()
        loop_body = list(self.body)
        self.body = []
        if self.chunked and any(not self.batched(n) for n in self.buffers):
            raise NotChunkable("an intermediate array is not batched")
        if self.chunked:
            self.split = self._input_split(x, loop_body)
            if self.split:
                loop_body = self._split_chunk_lines(loop_body)
        opt_pro, opt_step, opt_params, opt_body = self.optimizer_lines("t_step")
        chunked = self.chunked

        pro = ["n_rows = order.shape[0]",
               "n_batches = (n_rows + batch_size - 1) // batch_size",
               "N = min(batch_size, n_rows)  # buffers are sized for a full batch"]
        if chunked:
            pro += ["C = max(1, n_threads)  # one chunk of each batch's rows per thread",
                    "R = (N + C - 1) // C  # rows of the largest chunk",
                    "", "# ---- workspaces: allocated once, one slab per chunk, viewed as [:Nc] of its R rows ----"]
            # the types of what a prange body may read (see _region)
            dt = self.dtype
            self.types.update({"X": _array_type(dt, len(self.api_shape(x)), readonly=True),
                               "T": _array_type(dt, len(self.api_shape(tgt)), readonly=True),
                               "order": _array_type("int64", 1, readonly=True),
                               "loss_parts": _array_type("float64", 1),
                               "nonfinite_parts": _array_type("int64", 1),
                               **{k: "int64" for k in ("N", "start", "n_chunks", "C", "R")},
                               **{self.array(p): _array_type(dt, len(self.api_shape(p))) for p in sig.parameters}})
            slabs, views = self._chunk_slabs(x, tgt)
            pro += [*slabs, "loss_parts = np.empty(C)",
                    "nonfinite_parts = np.zeros(C, dtype=np.int64)  # part q of the update found a non-finite value"]
        else:
            pro += ["", "# ---- workspaces: allocated once, viewed as buf[:N] in each batch ----"]
            views = []
            for v in (x, tgt):
                pro.append(f"{self.array(v)}_buf = np.empty({self.shape_text(self.api_shape(v))}, dtype={self.dt})")
            for name, shape in self.buffers.items():
                arr = self.array(name)
                pro.append(f"{arr}_buf = np.empty({self.shape_text(shape)}, dtype={self.dt})")
                if self.batched(name):
                    views.append(f"{arr} = {arr}_buf[:N]")
                else:
                    pro.append(f"{arr} = {arr}_buf")
            for p in sig.parameters:
                g = self.array(S.GRAD_PREFIX + p)
                pro.append(f"{g} = np.empty({self.shape_text(self.api_shape(p))}, dtype={self.dt})")
            for name in self.row_buffers:
                pro.append(f"{name} = np.empty(N)  # a row reduction kept for later statements")
        pro += opt_pro

        loop = ["", "for b in range(n_batches):", f"{INDENT}start = b * batch_size",
                f"{INDENT}N = min(batch_size, n_rows - start)"]
        ind = INDENT
        if chunked:
            if self.before_chunks:
                loop += ["", f"{ind}# row-independent values (they read no batched array)",
                         *[ind + x for x in self.before_chunks]]
            rows = [t for t in self.scalars if t not in self.const_scalars]
            xa, ta = self.array(x), self.array(tgt)
            if self.split:
                gather = [*self._gather([(tgt, "T", ta)], "start + lo"),
                          "if not split:", *[INDENT + line for line in self._gather([(x, "X", xa)], "start + lo")]]
                split_before = self._split_regions(x)
            else:
                gather = self._gather([(x, "X", xa), (tgt, "T", ta)], "start + lo")
                split_before = []
            region = ["lo = chunk * N // n_chunks",
                      "Nc = (chunk + 1) * N // n_chunks - lo",
                      *views,
                      "# this chunk's rows of the batch",
                      *gather,
                      *loop_body,
                      f"loss_parts[chunk] = {' + '.join(rows) or '0.0'}"]
            loop += ["", f"{ind}n_chunks = min(C, N)",
                     *[ind + line for line in split_before],
                     *[ind + line if line else "" for line in
                       self._region("for chunk in numba.prange(n_chunks):", region, "_chunk_pass")],
                     f"{INDENT}loss = {' + '.join(self.const_scalars) or '0.0'}",
                     f"{INDENT}for chunk in range(n_chunks):",
                     f"{INDENT * 2}loss += loss_parts[chunk]"]
        else:
            loop.append(f"{ind}# gather the batch's rows")
            gather = self._gather([(v, src, f"{self.array(v)}_buf") for v, src in ((x, "X"), (tgt, "T"))], "start")
            inputs = [f"{self.array(v)} = {self.array(v)}_buf[:N]" for v in (x, tgt)]
            loop += [ind + line for line in gather + inputs + views]
            loop += [(ind + line) if line else "" for line in loop_body]
            loop += [f"{INDENT}loss = {total}"]
        loop += [f"{INDENT}losses_out[b] = loss",
                 f"{INDENT}if not math.isfinite(loss):",
                 f"{INDENT * 2}return b  # this batch's update is not applied"]
        step = [(INDENT + line) if line else "" for line in opt_step]
        undo = [f"{INDENT * 2}return -(b + 1)  # applied with a non-finite gradient or value: the caller undoes it"]
        if not chunked:
            loop += [*step, *[INDENT + x for x in self.update_loops(opt_params, opt_body)],
                     f"{INDENT}if nonfinite:", *undo]
        elif self.after_chunks:
            loop += ["", f"{INDENT}# the chunks' partial gradients, added into the first chunk's, in parallel",
                     *[INDENT + x for x in self.sliced_region(opt_params, opt_body, add=True, update=False,
                                                               name="_add_slices")],
                     "", f"{INDENT}# row-independent gradient terms (penalties), once",
                     *[INDENT + x for x in self.after_chunks], *step,
                     *[INDENT + x for x in self.sliced_region(opt_params, opt_body, add=False, update=True,
                                                               name="_update_slices")]]
        else:
            loop += [*step, f"{INDENT}# in parallel: the chunks' partial gradients added, then the update",
                     *[INDENT + x for x in self.sliced_region(opt_params, opt_body, add=True, update=True,
                                                               name="_add_and_update_slices")]]
        if chunked:
            loop += [f"{INDENT}for q in range(C):", f"{INDENT * 2}if nonfinite_parts[q]:", INDENT + undo[0]]
        loop.append("return n_batches")
        body = pro + loop

        name = self.bp.graph.graph.get("name", "network")
        args = ["X", "T", "order", "batch_size", *params, *state, "hyper", "step0", "losses_out"]
        if chunked:   # numba.get_num_threads() inside would keep Numba from caching the function
            args.append("n_threads")
        args += [_pointer_argument(f) for f in self.pointers]
        flags = _FLAGS + (", parallel=True" if self.parallel or chunked else "")
        doc = [f"#   {a}: parameter {p!r}, shape {self.shape_doc(p)}, updated in place"
               for a, p in zip(params, sig.parameters)]
        doc += [f"#   s_{self.array(p)}_{s}: optimizer state {s!r} of {p!r}, updated in place"
                for p in sig.parameters for s in self.opt.state]
        form = ("data-parallel: each batch's rows split into one chunk per thread" if chunked
                else "prange over large elementwise loops" if self.parallel else "serial")
        header = [
            f"# Generated by symprop (kernels.cpu.epoch) for network {str(name)!r}, dtype {self.dtype}, "
            f"backend {'parallel' if self.parallel or chunked else 'cpu'} ({form}), optimizer {type(self.opt).__name__}.",
            "# Forward and backward statements are printed from the equations derived by derive.backprop",
            "# (the same walk as loss_and_grads), the update from the optimizer's equations; each is",
            "# repeated in a comment. Do not edit: the file name is a hash of its content.",
            "",
            *IMPORTS,
            "",
            f"PARALLEL_MIN = {self.parallel_min}",
            f"CHUNKED = {chunked}",
            *(["# functions train_epoch takes as its last arguments (kernels.lower.outline.FunctionPointer)",
               f"FUNCTION_ARGUMENTS = {tuple(self.pointers)!r}"] if self.pointers else []),
            "",
            "",
            *HELPERS,
            *[line for function in self.outlined.values() for line in [*function, "", ""]],
            "# One epoch of mini-batch training; returns the number of updates applied, or -(b + 1) when the",
            "# update of batch b read a gradient or wrote a value that is not finite (applied: the caller undoes it).",
            "# Arguments:",
            f"#   X: every input row {x!r}, shape (rows, {', '.join(map(str, self.api_shape(x)[1:]))}); "
            f"T: every target row {tgt!r}",
            "#   order: int64 row indices, batch b = order[b*batch_size:(b+1)*batch_size]",
            *doc,
            f"#   hyper: float64 [{', '.join(hyper_names(self.opt))}]; step0: steps taken before this epoch",
            "#   losses_out: float64 (n_batches,), each batch's objective",
            *(["#   n_threads: Numba's thread count (numba.get_num_threads()): the chunks of a batch"] if chunked else []),
            *[f"#   {_pointer_argument(f)}: {f} above, as a kernels.lower.outline.FunctionPointer (compiled once, not "
              "linked in here)" for f in self.pointers],
            f"@numba.njit({flags})",
            f"def {EPOCH_FUNCTION_NAME}({', '.join(args)}):",
        ]
        return "\n".join(header + [(INDENT + line) if line else "" for line in body]) + "\n"


def generate_epoch(net, optimizer, dtype="float64", backend: str = "cpu", parallel_min: int | None = None,
                   chunked: bool | None = None) -> str:
    """Python source of a module with the ``@numba.njit`` function ``train_epoch`` (see the module
    docstring); ``net`` is a network graph or its :class:`derive.Backprop`.

    Backend ``"parallel"``: the data-parallel form (``chunked``, module-level ``CHUNKED = True``)
    when every statement allows it (:mod:`kernels.lower.chunks`), else ``prange`` over elementwise
    loops of at least ``parallel_min`` elements (default :data:`PARALLEL_MIN`). ``chunked=False``
    forces the latter; ``chunked=True`` raises :class:`NotChunkable` when it cannot be had."""
    if backend not in ("cpu", "parallel"):
        raise ValueError(f"unknown backend {backend!r} (available: cpu, parallel)")
    name = dtype_name(dtype)
    threshold = epoch_keys.PARALLEL_MIN if parallel_min is None else parallel_min
    if backend == "parallel" and chunked is not False:
        try:
            return _EpochGenerator(net, name, optimizer, True, threshold, chunked=True).generate_epoch()
        except NotChunkable:
            if chunked:
                raise
    return _EpochGenerator(net, name, optimizer, backend == "parallel", threshold).generate_epoch()


assert set(DTYPES) == {"float64", "float32"}
