"""Lowering: derived equations to Python/Numba source, shared by every backend.

* :mod:`.printer`: :class:`~.printer.KernelPrinter` (scalar element expressions), array names,
  the scalar helpers every generated module defines;
* :mod:`.stable`: row reductions made safe before printing (the row maximum of log-sum-exp) and
  the elementwise stable rewrites of :mod:`symprop.derive.stable` applied to element expressions;
* :mod:`.walker`: :class:`~.walker.EquationWalker`, the one walk over a network's equations that
  prints each one as NumPy array code or loop nests (backends subclass it);
* :mod:`.signature`: the generated function's arguments and dtypes;
* :mod:`.optimizer`: an optimizer's update equations as element statements;
* :mod:`.chunks`, :mod:`.outline`: what the data-parallel epoch may split, and moving a loop body
  into a function of its own.
"""
