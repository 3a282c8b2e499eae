"""Brute-force references shared by several test files (pure Python, straight from the definitions)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def semiring_matmul(A, B, S):
    """``(A ⊗ B)_ij = ⊕_t A_it ⊗ B_tj`` by the triple loop, on nested lists, for a tropical semiring ``S``."""
    m, k, n = len(A), len(B), len(B[0])
    out = [[S.zero] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            acc = S.zero
            for t in range(k):
                if A[i][t] != S.zero and B[t][j] != S.zero:
                    acc = S.add(acc, A[i][t] + B[t][j])
            out[i][j] = acc
    return out


def fractions(a):
    """The exact values of a float array, as an object array of Fraction."""
    return np.vectorize(Fraction, otypes=[object])(np.asarray(a, dtype=np.float64))


def exact_ttmatrix_dense(T):
    """The dense matrix the stored cores of a TTMatrix represent, exactly (object array of Fraction)."""
    cores = [fractions(c) for c in T.cores]
    d = len(cores)
    out = cores[0]
    for c in cores[1:]:
        out = np.tensordot(out, c, axes=1)
    out = out.reshape(tuple(x for m, n in zip(T.row_dims, T.col_dims) for x in (m, n)))
    perm = tuple(range(0, 2 * d, 2)) + tuple(range(1, 2 * d, 2))
    return out.transpose(perm).reshape(T.shape)
