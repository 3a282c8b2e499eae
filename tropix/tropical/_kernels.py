"""Compiled CPU kernels behind the generic array code (placeholder: returns None = use the generic path)."""

from __future__ import annotations


def maxplus_matmul_fast(A, B, sense):
    """Return the tropical product from a compiled kernel, or None when no fast path applies."""
    return None
