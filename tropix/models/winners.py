"""Which keys can ever be the argmax of a head, for any query: the vertices of conv(K), by LP.

Key ``k_j`` is the strict argmax of ``q·k`` for some query ``q`` exactly when it is a vertex of the
convex hull of the keys (its normal cone has an interior).  In head dimension 32 the hull is far too
large to enumerate, so each key gets one linear programme (HiGHS via SciPy):
maximise ``t`` subject to ``q·(k_i − k_j) + t ≤ 0`` for all ``i ≠ j``, ``q ∈ [−1, 1]^d``, ``t ≤ 1``;
the key can win iff ``t* > 0`` (up to a tolerance relative to the key scale), and the optimal ``q``
is a witness query.  The witnesses ``q = k_j`` and ``q = k_j − mean(K)`` are tried first; keys that already win strictly for a real query are vertices without an LP.
A repeated key never wins strictly (it ties with its twin), so it is not counted.

Examples
--------
>>> import numpy as np
>>> K = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.25, 0.25], [1.0, 0.0]])
>>> keys_that_can_win(K).tolist()             # the interior point and the repeated vertex cannot win
[True, False, True, False, False]
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ..errors import EmptyInputError

__all__ = ["keys_that_can_win"]


def keys_that_can_win(keys, queries=None, rtol: float = 1e-9) -> np.ndarray:
    """Boolean mask: can key ``j`` be the strict argmax of ``q·k`` for some ``q``?

    Parameters
    ----------
    keys : array (n, d)
    queries : array (m, d), optional
        Real queries; keys they select strictly are accepted without solving an LP.
    rtol : float
        ``t*`` must exceed ``rtol`` times the largest key coordinate.
    """
    K = np.asarray(keys, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] == 0:
        raise EmptyInputError(f"keys must be a non-empty (n, d) array, got shape {K.shape}")
    n, d = K.shape
    if n == 1:
        return np.array([True])
    scale = float(np.abs(K).max()) or 1.0
    Kn = K / scale
    out = np.zeros(n, dtype=bool)
    if queries is not None:
        s = np.asarray(queries, dtype=np.float64) @ Kn.T
        top = np.sort(s, axis=1)
        strict = top[:, -1] > top[:, -2] + 1e-9 * np.abs(top[:, -1]).clip(1)
        out[np.argmax(s, axis=1)[strict]] = True
    # cheap witnesses first: q = k_j and q = k_j - centroid certify most vertices without an LP
    for Qc in (Kn, Kn - Kn.mean(0)):
        s = Qc @ Kn.T
        diag = np.diag(s).copy()
        np.fill_diagonal(s, -np.inf)
        out |= diag > s.max(axis=1) + 1e-12
    bounds = [(-1.0, 1.0)] * d + [(None, 1.0)]
    c = np.zeros(d + 1)
    c[-1] = -1.0
    for j in np.flatnonzero(~out):
        others = np.delete(Kn, j, axis=0)
        if np.any(np.all(others == Kn[j], axis=1)):
            continue  # a repeated key ties with its twin for every query
        A = np.hstack([others - Kn[j], np.ones((n - 1, 1))])
        res = linprog(c, A_ub=A, b_ub=np.zeros(n - 1), bounds=bounds, method="highs")
        out[j] = bool(res.status == 0 and -res.fun > rtol)
    return out
