"""Op forms: how an op's forward is written, with every rule that follows from it in one class.

=============  ==============================================  ================================
form           forward                                         ops
=============  ==============================================  ================================
leaf           supplied from outside                           input, target, parameter
matrix         matrix expression (SymPy matrix calculus)      dense
elementwise    ``f`` of one element of each argument,          activation, add, mul
               broadcast as in NumPy
rowwise        index form over one row along an axis           softmax
view           index identity under another shape              flatten, reshape
loss           mean of an elementwise or row term              loss
penalty        ``Σ weight·φ(w)`` over a parameter              penalty
=============  ==============================================  ================================

:class:`~derive.forms.base.Form` lists what a form answers; each op of :data:`derive.ops.OPS`
points to its form, and the graph walkers ask it. A new form is one new class here.

Examples
--------
>>> from symprop.derive.ops import OPS
>>> sorted({str(op.form) for op in OPS.values()})
['elementwise', 'leaf', 'loss', 'matrix', 'penalty', 'rowwise', 'view']
"""

from .base import Arg, Form, Node
from .elementwise import Elementwise
from .leaf import Leaf
from .loss import Loss
from .matrix import Matrix
from .penalty import Penalty
from .rowwise import Rowwise
from .view import View

__all__ = ["Form", "Arg", "Node", "Leaf", "Matrix", "Elementwise", "Rowwise", "View", "Loss", "Penalty"]
