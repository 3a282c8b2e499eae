"""Compiled helper of hierarchical attention (numba, loaded lazily), behind the NumPy path it replaces.

:func:`leaf_reference` computes, per query, the exact scores of up to two candidate leaves and returns the
larger maximum ``m``, ``z = sum_j exp(s_j - m)`` over that leaf, and the leaf: what
:func:`tropix.attention.hierarchical._reference` does with a gathered batched product.  Only for scores
without mask, bias or causal term.  Returns ``None`` when numba is unavailable (the NumPy path then runs).
The values are not part of any certificate: they only choose which leaves are computed exactly (any
summation order will do).
"""

from __future__ import annotations

import numpy as np

__all__ = ["leaf_reference"]

_kernel = None
_unavailable = False


def _build():
    from numba import njit

    @njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def reference_rows(qs, rows, kp, st, ct, c1, c2, m_out, z_out, leaf_out):  # pragma: no cover - compiled
        d = qs.shape[1]
        width = 0
        for b in range(ct.shape[0]):
            if ct[b] > width:
                width = ct[b]
        buf = np.empty(width)
        for r in range(rows.shape[0]):
            q = qs[rows[r]]
            bm = -np.inf
            bz = 0.0
            bl = c1[r]
            for ci in range(2):
                b = c1[r] if ci == 0 else c2[r]
                if ci == 1 and b == c1[r]:
                    continue
                mx = -np.inf
                s0 = st[b]
                for j in range(ct[b]):
                    s = 0.0
                    kj = kp[s0 + j]
                    for e in range(d):
                        s += q[e] * kj[e]
                    buf[j] = s
                    if s > mx:
                        mx = s
                if mx > bm:
                    z = 0.0
                    for j in range(ct[b]):
                        z += np.exp(buf[j] - mx)
                    bm, bz, bl = mx, z, b
            m_out[r] = bm
            z_out[r] = bz
            leaf_out[r] = bl

    return reference_rows


def _load():
    global _kernel, _unavailable
    if _kernel is None and not _unavailable:
        try:
            _kernel = _build()
        except ImportError:  # pragma: no cover - numba is a dependency
            _unavailable = True
    return _kernel


def leaf_reference(qs, rows, kp, starts, counts, cand1, cand2):
    """``(m, z, leaf)`` per row of ``rows`` (see module docstring), or ``None`` without numba.

    Examples
    --------
    >>> import numpy as np
    >>> kp = np.array([[1.0], [2.0], [0.0], [5.0]]); qs = np.array([[1.0]])
    >>> m, z, leaf = leaf_reference(qs, np.array([0]), kp, np.array([0, 2]), np.array([2, 2]),
    ...                             np.array([0]), np.array([1]))
    >>> float(m[0]), int(leaf[0]), bool(abs(z[0] - (1 + np.exp(-5.0))) < 1e-12)
    (5.0, 1, True)
    """
    kern = _load()
    if kern is None:
        return None
    nr = len(rows)
    m, z, leaf = np.empty(nr), np.empty(nr), np.empty(nr, dtype=np.int64)
    kern(np.ascontiguousarray(qs, dtype=np.float64), np.ascontiguousarray(rows, dtype=np.int64),
         np.ascontiguousarray(kp, dtype=np.float64), np.ascontiguousarray(starts, dtype=np.int64),
         np.ascontiguousarray(counts, dtype=np.int64), np.ascontiguousarray(cand1, dtype=np.int64),
         np.ascontiguousarray(cand2, dtype=np.int64), m, z, leaf)
    return m, z, leaf
