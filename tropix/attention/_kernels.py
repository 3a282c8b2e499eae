"""Compiled fast path of region-sparse attention (NumPy float64; no extra term or a key-only one), behind the generic path.

:func:`region_sparse_fast` does, per query and in one compiled pass, what the generic
:mod:`tropix.attention.region_sparse` path does with vectorised NumPy over groups of queries: it walks the
key blocks in decreasing order of their bounded mass ``n_b exp(U_b - m0)`` (``U_b`` the certified upper
bound of the block's scores from :func:`~tropix.attention.keytree.score_bounds`, ``m0`` the exact maximum of
the first two blocks), computes the exact scores of each block until the remaining bounded mass is at most
half the budget ``β`` times the computed mass, then drops the computed keys of weight below the threshold
the rest of the budget allows.  Returned are the output and the quantities of the certified bound (kept mass,
bound on the dropped mass, largest dropped ``|v|``); the caller forms the bound with
:func:`~tropix.attention.bounds.truncation_bound` exactly as the generic path does.

numba is imported (and the kernel compiled or loaded from its cache) on the first call only.
``region_sparse_fast`` returns ``None`` when numba is unavailable; the generic path then runs.
"""

from __future__ import annotations

import numpy as np

from .._compiled import compiled

__all__ = ["region_sparse_fast", "kernel_available"]

def _load():
    mod = compiled("tropix.attention._kernels_numba")
    return None if mod is None else mod.region_rows


def kernel_available() -> bool:
    """Whether the compiled kernel can run (numba importable)."""
    return _load() is not None


def region_sparse_fast(rows, qs, kp, v, perm, vn, starts, counts, U, first2, beta, threshold=True, cap=None,
                       cand_cap=None, ext=None, causal=False, bias=None, btop=None, mask=None):
    """Run the compiled region-sparse kernel for the queries ``rows``; ``None`` if numba is missing.

    Parameters
    ----------
    rows : int array
        Query indices (into ``qs``).
    qs, kp, v : float64 arrays
        Scaled queries ``(n_q, d)``, keys in tree order ``(n, d)``, values in original order ``(n, d_v)``.
    perm, vn : arrays
        Tree order of the keys and the value norms (original order).
    starts, counts : int arrays
        Leaf blocks: contiguous slices of the keys in tree order.
    U : float64 array ``(len(rows), n_blocks)``
        Certified upper bounds of every block's scores (``-inf``: block carries no mass).
    first2 : int array ``(len(rows), 2)``
        The two blocks computed first (their exact maximum is the reference ``m0``).
    beta : float64 array ``(len(rows),)``
        Dropped-mass budget relative to the kept mass.
    threshold : bool
        Drop computed keys of negligible weight (key-level support).
    cap : int, optional
        A row stops (flagged ``Z = -1``) once it has computed more than ``cap`` keys (default: no limit).
    cand_cap : int, optional
        A row stops at once (flagged) when the blocks its bounds cannot drop at once hold more than
        ``cand_cap`` keys (default: no limit).
    ext : float64 array ``(n,)``, optional
        A key-only extra term in tree order (a key-padding mask as ``-inf``, or a per-key bias), added to
        every exact score; ``U`` must already include it (default: none).
    bias : float64 array ``(n_q or 1, n)``, optional
        An additive bias in original key order (row ``i`` for query ``i``; one row: the same for every query),
        added to every exact score; ``U`` must not include it (default: none).
    btop : float64 array ``(len(rows),)``, optional
        With ``bias``: an upper bound of each row's bias (its largest finite ``|b|``, say).  A block's bound
        adds it, or the largest bias over the block's keys when that first bound is too loose to drop it.
    mask : bool array ``(n_q or 1, n)``, optional
        Keys a query sees (``True``), in original key order (row ``i`` for query ``i``; one row: the same for
        every query); the others are hidden.  ``U`` may bound all keys (default: every key visible).
    causal : bool
        Query ``i`` (``rows[r] = i``) sees the keys of original index ``<= i`` only (the causal mask, top-left
        aligned); ``U`` must be ``-inf`` on the blocks it hides wholly (default: every key visible).

    Returns
    -------
    dict or None
        ``out, Z, D, VD, support, nkeys, kept_blocks, kept_n`` per row (``Z = -1``: non-finite scores or
        stopped at ``cap``: to be recomputed).
    """
    kern = _load()
    if kern is None:
        return None
    nr, nb = len(rows), len(starts)
    res = {
        "out": np.zeros((nr, v.shape[1])), "Z": np.zeros(nr), "D": np.zeros(nr), "VD": np.zeros(nr),
        "support": np.zeros(nr, dtype=np.int64), "nkeys": np.zeros(nr, dtype=np.int64),
        # (row r's first kept_n[r] entries are written, the rest is never read)
        "kept_blocks": np.empty((nr, nb), dtype=np.int64), "kept_n": np.zeros(nr, dtype=np.int64),
    }
    ext = np.zeros(len(kp)) if ext is None else np.ascontiguousarray(ext, dtype=np.float64)
    kern(np.ascontiguousarray(rows, dtype=np.int64), np.ascontiguousarray(qs, dtype=np.float64),
         np.ascontiguousarray(kp, dtype=np.float64), ext, np.ascontiguousarray(v, dtype=np.float64),
         np.ascontiguousarray(perm, dtype=np.int64), np.ascontiguousarray(vn, dtype=np.float64),
         np.ascontiguousarray(starts, dtype=np.int64), np.ascontiguousarray(counts, dtype=np.int64),
         np.ascontiguousarray(U, dtype=np.float64), np.ascontiguousarray(first2, dtype=np.int64),
         np.ascontiguousarray(beta, dtype=np.float64), bool(threshold), int(len(kp) if cap is None else cap),
         int(len(kp) if cand_cap is None else cand_cap),
         res["out"], res["Z"], res["D"], res["VD"], res["support"], res["nkeys"], res["kept_blocks"], res["kept_n"],
         np.ascontiguousarray(rows, dtype=np.int64) if causal else np.full(nr, len(kp), dtype=np.int64),
         np.zeros((1, 1)) if bias is None else np.ascontiguousarray(bias, dtype=np.float64), bias is not None,
         np.zeros(nr) if btop is None else np.ascontiguousarray(btop, dtype=np.float64),
         np.ones((1, 1), dtype=np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_),
         mask is not None)
    return res
