"""Feature shapes of any rank: broadcasting, axes and flat offsets (plain Python, no SymPy).

A node's shape is its *feature* shape, a tuple of positive integers of any length: ``(3,)`` for a
row of 3 features, ``(2, 3)`` for a 2×3 matrix per example, ``(C, H, W)`` for an image. Values
computed from inputs carry one more axis in front, the batch axis (symbolic ``N``); parameters
do not. The rules here say how shapes combine:

* **broadcasting** (elementwise ops with several inputs): feature shapes are aligned from the
  right and an axis of size 1 stretches, as in NumPy; the batch axis is shared by the batched
  operands and stretches over a parameter (:func:`broadcast_shapes`, :func:`alignment`);
* **axes** given by the user count feature axes from 0, or from the end when negative
  (:func:`feature_axis`);
* **flat offsets** number a shape's elements in row-major (C) order, as ``numpy.reshape`` does
  (:func:`strides`).

Examples
--------
>>> broadcast_shapes([(2, 3), (3,)])
(2, 3)
>>> alignment((3,), (2, 3))
(None, 0)
>>> alignment((2, 1), (2, 3))
(0, 'stretched')
>>> feature_axis(-1, (2, 3)), strides((2, 3, 4))
(1, (12, 4, 1))
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

__all__ = ["broadcast_shapes", "alignment", "feature_axis", "strides", "size", "shape_attribute", "STRETCHED"]

#: Marks an operand axis of size 1 that stretches over a longer output axis (see :func:`alignment`).
STRETCHED = "stretched"


def size(shape: Sequence[int]) -> int:
    """The number of elements of a feature shape.

    >>> size((2, 3)), size(())
    (6, 1)
    """
    return math.prod(shape)


def shape_attribute(shape) -> tuple[int, ...]:
    """A feature shape given as a node attribute (``input``'s, ``reshape``'s): a non-empty list of
    positive integers. ValueError saying so otherwise.

    >>> shape_attribute([2, 3])
    (2, 3)
    >>> shape_attribute([2, 0])
    Traceback (most recent call last):
    ...
    ValueError: 'shape' must be a non-empty list of positive integers, got [2, 0]
    """
    if (not isinstance(shape, (list, tuple)) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise ValueError(f"'shape' must be a non-empty list of positive integers, got {shape!r}")
    return tuple(shape)


def broadcast_shapes(shapes: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The feature shape of an elementwise result: NumPy's rule on the feature axes (aligned
    from the right; sizes equal, or one of them 1). ValueError naming the shapes otherwise.

    >>> broadcast_shapes([(4, 1), (3,)])
    (4, 3)
    >>> broadcast_shapes([(2, 3), (2,)])
    Traceback (most recent call last):
    ...
    ValueError: shapes [2, 3] and [2] do not broadcast (feature axes are aligned from the right; sizes must agree or be 1)
    """
    out: tuple[int, ...] = ()
    for shape in shapes:
        shape = tuple(shape)
        rank = max(len(out), len(shape))
        a, b = (1,) * (rank - len(out)) + out, (1,) * (rank - len(shape)) + shape
        if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
            raise ValueError(f"shapes {list(out)} and {list(shape)} do not broadcast (feature axes are aligned "
                             "from the right; sizes must agree or be 1)")
        out = tuple(max(x, y) for x, y in zip(a, b))
    return out


def alignment(shape: Sequence[int], out: Sequence[int]) -> tuple:
    """For every axis of the output feature shape ``out``: the operand axis (of ``shape``,
    broadcast to ``out``) that it reads, :data:`STRETCHED` where the operand's axis has size 1
    and the output's does not, None where the operand has no such axis.

    >>> alignment((2, 3), (2, 3)), alignment((1, 3), (4, 3)), alignment((), (2,))
    ((0, 1), ('stretched', 1), (None,))
    """
    lead = len(out) - len(shape)
    if lead < 0:
        raise ValueError(f"shape {list(shape)} has more axes than {list(out)}")
    result: list = [None] * lead
    for q, (d, e) in enumerate(zip(shape, out[lead:])):
        result.append(STRETCHED if d == 1 and e != 1 else q)
    return tuple(result)


def feature_axis(axis, shape: Sequence[int], what: str = "axis") -> int:
    """``axis`` (an int, negative counting from the end) as a feature-axis number of ``shape``;
    ValueError saying the allowed range otherwise.

    >>> feature_axis(-1, (4,))
    0
    >>> feature_axis(2, (2, 3))
    Traceback (most recent call last):
    ...
    ValueError: 'axis' 2 is out of range for feature shape [2, 3] (allowed: -2 to 1)
    """
    rank = len(shape)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"{what!r} must be an integer feature axis, got {axis!r}")
    if not -rank <= axis < rank:
        raise ValueError(f"{what!r} {axis} is out of range for feature shape {list(shape)} "
                         f"(allowed: {-rank} to {rank - 1})")
    return int(axis) % rank


def strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major strides in elements: the flat offset of index ``(a, b, c)`` is
    ``a*s0 + b*s1 + c*s2`` (``numpy.reshape``'s order).

    >>> strides((2, 3))
    (3, 1)
    """
    out, step = [], 1
    for d in reversed(tuple(shape)):
        out.append(step)
        step *= d
    return tuple(reversed(out))
