"""Tropical matrix powers ``A^k = A ⊗ A ⊗ … ⊗ A`` (``k`` factors; ``A^0`` is the tropical identity).

``(A^k)[i, j]`` is the best weight of a walk of exactly ``k`` edges from ``i`` to ``j``.  Computed by
repeated squaring (``O(n^3 log k)``) with :func:`tropix.tropical.matmul`, so the numba kernel is used for
large NumPy float/int64 matrices.  For exact input the result is exact.  For float input the sums are
associated differently from the left-to-right product ``((A ⊗ A) ⊗ A) ⊗ …``, so entries can differ from
it in the last bits (each entry is a sum of ``k`` floats).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._repr import summary
from ..errors import ToleranceError
from ._square import is_exact_array, prepare_square, tropical_semiring
from .matmul import matmul
from .semiring import Semiring

__all__ = ["matrix_power"]


def matrix_power(A: Any, k: int, *, semiring: Semiring | str | None = None):
    """The ``k``-th tropical power of a square matrix.

    Parameters
    ----------
    A : array_like
        Shape (n, n).
    k : int
        A non-negative integer.  ``k = 0`` gives the tropical identity (``one`` on the diagonal, ``zero``
        elsewhere).
    semiring : MaxPlus or MinPlus, default MaxPlus

    Returns
    -------
    array
        Shape (n, n).
        Same library as ``A``; exact input gives exact output (an object array).

    Raises
    ------
    ToleranceError
        If ``k`` is negative or not an integer (tropical matrices are generally not invertible).
    ShapeError, EmptyInputError, NaNError, ConventionError
        For a non-square or empty matrix, NaN, or the opposite convention's infinity.

    Examples
    --------
    >>> from tropix import MaxPlus
    >>> matrix_power([[0, 1], [2, float("-inf")]], 3, semiring=MaxPlus)
    array([[3, 4],
           [5, 3]], dtype=object)
    >>> matrix_power([[5]], 0, semiring=MaxPlus)
    array([[0]], dtype=object)
    """
    S = tropical_semiring(semiring, "matrix_power")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ToleranceError(f"the exponent k must be a non-negative integer, got {summary(k)}")
    k = int(k)
    if k < 0:
        raise ToleranceError(f"the exponent k must be non-negative, got {k}; tropical matrices are not invertible")
    A, xp, n = prepare_square(A, S)
    if k == 0:
        return S.identity(n, like=A)
    result = None
    base = A
    while True:
        if k & 1:
            result = base if result is None else matmul(result, base, semiring=S)
        k >>= 1
        if not k:
            break
        base = matmul(base, base, semiring=S)
    if is_exact_array(result):
        return np.asarray(result, dtype=object)
    return result
