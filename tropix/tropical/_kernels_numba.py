"""Numba kernels for the max-plus matrix product (imported lazily by :mod:`tropix.tropical._kernels`).

Only max-plus is compiled: min-plus is obtained exactly by negation, ``min_k (a + b) = -max_k ((-a) + (-b))``
(IEEE negation is exact and rounding to nearest is symmetric in sign).

Layout of the computation (all arrays C-contiguous)::

    for a block of NC columns of B and C
      for a block of KC rows of B: pack it contiguously (once, shared by the threads)
        parallel over blocks of MR rows of A        (prange: the threads never share a row of C)
          for pairs of rows i, i+1 and groups of 4 k's:
            C[i, j] = max(C[i, j], A[i, k] + B[k, j], ..., A[i, k+3] + B[k+3, j])   for contiguous j

The innermost loop runs over contiguous ``j`` and is written as ``c = x if x > c else c`` so that LLVM
turns it into packed add / max instructions.  fastmath is off: ``-inf`` (the tropical zero) flows
through ``+`` and ``>`` exactly as in the generic path, which the tests check.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

KC = 128  # rows of B per packed block
NC = 2048  # columns of B / C per packed block
MR = 16  # rows of A (and C) per parallel task


@njit(cache=True, boundscheck=False)
def _row1(ci, bk, a):  # pragma: no cover - compiled
    for j in range(ci.shape[0]):
        x = a + bk[j]
        c = ci[j]
        ci[j] = x if x > c else c


@njit(cache=True, boundscheck=False)
def _row4(ci, b0, b1, b2, b3, a0, a1, a2, a3):  # pragma: no cover - compiled
    for j in range(ci.shape[0]):
        c = ci[j]
        x = a0 + b0[j]
        c = x if x > c else c
        x = a1 + b1[j]
        c = x if x > c else c
        x = a2 + b2[j]
        c = x if x > c else c
        x = a3 + b3[j]
        c = x if x > c else c
        ci[j] = c


@njit(cache=True, boundscheck=False)
def _row4x2(ci, di, b0, b1, b2, b3, a0, a1, a2, a3, e0, e1, e2, e3):  # pragma: no cover - compiled
    for j in range(ci.shape[0]):
        c = ci[j]
        d = di[j]
        y = b0[j]
        x = a0 + y
        c = x if x > c else c
        x = e0 + y
        d = x if x > d else d
        y = b1[j]
        x = a1 + y
        c = x if x > c else c
        x = e1 + y
        d = x if x > d else d
        y = b2[j]
        x = a2 + y
        c = x if x > c else c
        x = e2 + y
        d = x if x > d else d
        y = b3[j]
        x = a3 + y
        c = x if x > c else c
        x = e3 + y
        d = x if x > d else d
        ci[j] = c
        di[j] = d


@njit(cache=True, boundscheck=False)
def _rows(A, Bb, C, i0, i1, j0, j1, k0):  # pragma: no cover - compiled
    """Rows ``i0:i1`` of C, columns ``j0:j1``, against the packed block ``Bb = B[k0:k0+kb, j0:j1]``."""
    kb = Bb.shape[0]
    i = i0
    while i + 2 <= i1:
        ci = C[i, j0:j1]
        di = C[i + 1, j0:j1]
        k = 0
        while k + 4 <= kb:
            _row4x2(
                ci, di, Bb[k], Bb[k + 1], Bb[k + 2], Bb[k + 3],
                A[i, k0 + k], A[i, k0 + k + 1], A[i, k0 + k + 2], A[i, k0 + k + 3],
                A[i + 1, k0 + k], A[i + 1, k0 + k + 1], A[i + 1, k0 + k + 2], A[i + 1, k0 + k + 3],
            )  # fmt: skip
            k += 4
        while k < kb:
            _row1(ci, Bb[k], A[i, k0 + k])
            _row1(di, Bb[k], A[i + 1, k0 + k])
            k += 1
        i += 2
    if i < i1:
        ci = C[i, j0:j1]
        k = 0
        while k + 4 <= kb:
            _row4(ci, Bb[k], Bb[k + 1], Bb[k + 2], Bb[k + 3],
                  A[i, k0 + k], A[i, k0 + k + 1], A[i, k0 + k + 2], A[i, k0 + k + 3])  # fmt: skip
            k += 4
        while k < kb:
            _row1(ci, Bb[k], A[i, k0 + k])
            k += 1


@njit(parallel=True, cache=True, boundscheck=False)
def maxplus_matmul(A, B, C, zero):  # pragma: no cover - compiled
    """Write ``C[i, j] = max_k (A[i, k] + B[k, j])``, threads over blocks of MR rows."""
    m, K = A.shape
    n = B.shape[1]
    nib = (m + MR - 1) // MR
    C[:, :] = zero
    for j0 in range(0, n, NC):
        j1 = min(n, j0 + NC)
        for k0 in range(0, K, KC):
            Bb = np.ascontiguousarray(B[k0 : min(K, k0 + KC), j0:j1])  # packed once, shared by the threads
            for ib in prange(nib):
                _rows(A, Bb, C, ib * MR, min(m, ib * MR + MR), j0, j1, k0)
    return C


@njit(cache=True, boundscheck=False)
def maxplus_matmul_serial(A, B, C, zero):  # pragma: no cover - compiled
    """The same product on one thread (few rows: waking threads would cost more than it saves)."""
    m, K = A.shape
    n = B.shape[1]
    C[:, :] = zero
    for j0 in range(0, n, NC):
        j1 = min(n, j0 + NC)
        for k0 in range(0, K, KC):
            Bb = np.ascontiguousarray(B[k0 : min(K, k0 + KC), j0:j1])
            _rows(A, Bb, C, 0, m, j0, j1, k0)
    return C


@njit(cache=True, nogil=True, boundscheck=False)
def log_matmul_entries(a, bT, T, rows, cols, shift, out):  # pragma: no cover - compiled
    """Entries ``(rows[p], cols[p])`` of the log-semiring product: ``out[p] = shift[p] + T log(s)`` with
    ``s = sum_k exp((a[i, k] + bT[j, k] - shift[p]) / T)`` (``bT`` the transpose of the right factor).  With
    ``shift`` the entry's best term every exponent is ``<= 0``; terms whose exponent is below ``-746`` are
    skipped: their ``exp`` is exactly 0 in IEEE double (``exp(-745.14)`` is below half the smallest
    subnormal), so the sum is that of all terms, in another order.  ``s = 0`` (every term the tropical zero)
    gives ``T log 0``, the semiring's zero."""
    K = a.shape[1]
    for p in range(rows.shape[0]):
        ai = a[rows[p]]
        bj = bT[cols[p]]
        m = shift[p]
        s = 0.0
        for k in range(K):
            t = (ai[k] + bj[k] - m) / T
            if t >= -746.0:
                s += np.exp(t)
        out[p] = m + T * np.log(s) if s > 0.0 else T * -np.inf
