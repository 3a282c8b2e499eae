"""Semiring matrix product: ``(A ⊗ B)_ij = ⊕_k A_ik ⊗ B_kj`` for any :class:`~tropix.tropical.semiring.Semiring`.

The generic path works on every array-API library (and keeps torch's autograd); it processes row
blocks so that the broadcast temporary stays small.  The log-semiring is reduced to one ordinary
matrix product with per-row and per-column shifts (exactly the log-sum-exp trick).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import asarray, check_nonempty, namespace
from ..errors import ShapeError
from .semiring import LogSemiring, RealSemiring, Semiring, TropicalSemiring, get_semiring

__all__ = ["matmul"]

_BLOCK_ELEMS = 1 << 22  # entries of the (rows, k, cols) broadcast temporary per block


def matmul(A: Any, B: Any, *, semiring: Semiring | str | None = None):
    """Semiring matrix product of ``A`` (m×k) and ``B`` (k×n); vectors are treated as in ``numpy.matmul``.

    Parameters
    ----------
    A, B : array_like
        Matrices (or vectors) of one array library; ``-inf`` (max-plus) / ``+inf`` (min-plus) entries are
        the tropical zero.
    semiring : Semiring or str, default MaxPlus

    Returns
    -------
    array
        Same library as the inputs; exact (int/object) input gives exact output.

    Raises
    ------
    ShapeError
        If the inner dimensions differ or an operand is not 1- or 2-dimensional.
    NaNError, ConventionError
        If an operand holds NaN, or the infinity of the opposite convention.

    Examples
    --------
    >>> import numpy as np
    >>> from tropix import MaxPlus, MinPlus
    >>> A = np.array([[0., 1.], [2., -np.inf]])
    >>> matmul(A, A, semiring=MaxPlus)
    array([[3., 1.],
           [2., 3.]])
    >>> matmul([[0, 1], [2, 3]], [[1], [0]], semiring=MinPlus)
    array([[1],
           [3]], dtype=object)
    """
    S = get_semiring(semiring)
    A = S.validate(asarray(A) if not hasattr(A, "shape") else A, "A")
    B = S.validate(asarray(B) if not hasattr(B, "shape") else B, "B")
    xp = namespace(A, B)
    if A.ndim not in (1, 2) or B.ndim not in (1, 2):
        raise ShapeError(f"matmul takes vectors or matrices, got shapes {tuple(A.shape)} and {tuple(B.shape)}")
    va, vb = A.ndim == 1, B.ndim == 1
    A2 = xp.reshape(A, (1, A.shape[0])) if va else A
    B2 = xp.reshape(B, (B.shape[0], 1)) if vb else B
    if A2.shape[1] != B2.shape[0]:
        raise ShapeError(
            f"inner dimensions differ: A is {tuple(A.shape)} and B is {tuple(B.shape)} "
            f"({A2.shape[1]} != {B2.shape[0]})"
        )
    if isinstance(S, RealSemiring):
        C = A2 @ B2
    elif isinstance(S, LogSemiring):
        C = _log_matmul(A2, B2, S, xp)
    else:
        C = _tropical_matmul(A2, B2, S, xp)
    if va and vb:
        return C[0, 0]
    if va:
        return C[0, :]
    if vb:
        return C[:, 0]
    return C


def _tropical_matmul(A, B, S: TropicalSemiring, xp):
    from . import _kernels

    fast = _kernels.maxplus_matmul_fast(A, B, S.sense)
    if fast is not None:
        return fast
    return _generic_tropical_matmul(A, B, S, xp)


def _generic_tropical_matmul(A, B, S: TropicalSemiring, xp):
    """Reference path: blocks of rows of ``max_k (A[i, k] + B[k, j])`` by broadcasting."""
    m, k = A.shape
    n = B.shape[1]
    if k == 0:
        return S.zeros((m, n), A if _is_float(A, xp) else None)
    rows = max(1, _BLOCK_ELEMS // max(1, k * n))
    reduce = xp.max if S.sense == 1 else xp.min
    if isinstance(A, np.ndarray) and (A.dtype == object or B.dtype == object):
        A = A.astype(object)
        B = B.astype(object)
        reduce = np.max if S.sense == 1 else np.min
    blocks = []
    for i0 in range(0, m, rows):
        i1 = min(m, i0 + rows)
        blk = xp.expand_dims(A[i0:i1, :], axis=2) + xp.expand_dims(B, axis=0)
        blocks.append(reduce(blk, axis=1))
    if len(blocks) == 1:
        return blocks[0]
    return xp.concat(blocks, axis=0) if hasattr(xp, "concat") else np.concatenate(blocks, axis=0)


def _is_float(x, xp):
    return not (isinstance(x, np.ndarray) and x.dtype == object) and xp.isdtype(x.dtype, "real floating")


def _log_matmul(A, B, S: LogSemiring, xp):
    """``T·log(exp(A/T) @ exp(B/T))`` with max-shifts per row of A and column of B, so it never overflows."""
    T = S.T
    from .semiring import _as_float

    a = _as_float(A, xp) / T
    b = _as_float(B, xp) / T
    if a.shape[1] == 0:
        return S.zeros((a.shape[0], b.shape[1]), a)
    ma = xp.max(a, axis=1, keepdims=True)
    mb = xp.max(b, axis=0, keepdims=True)
    ma = xp.where(xp.isinf(ma), xp.zeros_like(ma), ma)
    mb = xp.where(xp.isinf(mb), xp.zeros_like(mb), mb)
    from .semiring import _log0

    prod = xp.exp(a - ma) @ xp.exp(b - mb)
    return T * (_log0(prod, xp) + ma + mb)
