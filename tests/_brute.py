"""Brute-force references shared by several test files (pure Python, straight from the definitions)."""

from __future__ import annotations


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
