"""Key-ordered float64 rescoring of the screened cores (numba; the drop-in alternative to
:func:`tropix.attention._screen_numba.finish_rows`).

``finish_rows`` walks each query's core keys in turn: the keys are scattered over ``k`` and ``v``, so every
(query, key) pair waits on memory (about 150-200 ns a pair), and keys shared by many queries (clustered keys)
are fetched again for each of them.  :func:`finish_rows_by_key` transposes the (query, key) pairs into a
key-major list (a counting sort over the key index) and makes two sequential passes over the keys, each key's
row of ``k`` (first pass) and of ``v`` (second pass) loaded once for all the queries that need it; the
per-query state (maximum, mass, accumulators ``rows x d_v``) stays in cache.

The results are those of ``finish_rows`` up to the order of the sums (the scores' dot products, ``z``, the
kept and dropped masses, the weighted sums of the values), which the rounding bound of
:func:`tropix.attention.bounds.rounding_bound` covers ("any summation order, with or without FMA").  The key-level drop threshold
``theta`` is computed from ``z``, so a weight within rounding of ``theta`` may be kept by one kernel and
dropped by the other; both outcomes are certified.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import _key_threshold, _prefetch_row, _write_row

__all__ = ["finish_rows_by_key", "pair_count"]

_AHEAD = 16  # keys fetched ahead in the key passes
DENSE_KEYS = 0.4
"""When at least this fraction of the keys is needed, the passes stream over every row of ``k`` / ``v`` (the
hardware prefetcher then runs at full bandwidth, about twice the rate of a gapped walk); below it they visit
only the needed rows, fetching them ahead in software."""


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dotv(a, b, d):
    """``a[:d] . b[:d]`` in any order (vectorised; the rounding bound covers any order, with or without FMA)."""
    s = 0.0
    for t in range(d):
        s += a[t] * b[t]
    return s


@njit(cache=True, nogil=True)
def pair_count(ncore):
    """Number of (query, key) pairs to rescore: ``sum(max(ncore, 0))``."""
    p = 0
    for r in range(ncore.shape[0]):
        if ncore[r] > 0:
            p += ncore[r]
    return p


@njit(cache=True, nogil=True)
def _by_key(core, ncore, n):
    """The pairs ``(r, core[r, t])``, ``t < ncore[r]``, sorted by key (counting sort, stable in ``r``):
    key ``j``'s pairs are ``start[j] .. start[j+1]-1``, their rows ``prow[...]``; ``ukeys[:nu]`` lists the keys
    with at least one pair in increasing order."""
    nr = ncore.shape[0]
    start = np.zeros(n + 2, dtype=np.int64)
    npairs = 0
    for r in range(nr):
        c = ncore[r]
        if c > 0:
            cr = core[r]
            for t in range(c):
                start[cr[t] + 2] += 1
            npairs += c
    ukeys = np.empty(min(npairs, n), dtype=np.int64)
    nu = 0
    for j in range(n):  # start[j + 2]: pairs with key <= j; start[j + 1]: the first pair of key j
        cj = start[j + 2]
        if cj:
            ukeys[nu] = j
            nu += 1
        start[j + 2] = start[j + 1] + cj
    prow = np.empty(npairs, dtype=np.int32)
    for r in range(nr):
        c = ncore[r]
        if c > 0:
            cr = core[r]
            for t in range(c):
                j = cr[t] + 1
                prow[start[j]] = r
                start[j] += 1
    # now start[j + 1] is the end of key j's pairs = the first of key j + 1
    return start, prow, ukeys, nu, npairs


@njit(cache=True, nogil=True)
def finish_rows_by_key(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                       out, Z, D, VD, support):
    """Exact softmax over the core keys of each query, computed key by key; the same contract as
    :func:`tropix.attention._screen_numba.finish_rows`.

    Per query ``r`` (``rows[r]`` its row of ``qs``): the float64 scores ``s = qs[rows[r]] . k[j]`` of its core
    keys ``core[r, :ncore[r]]``, ``m = max s``, weights ``w = exp(s - m)``, ``z = sum w``; the dropped mass of
    the keys left out by the screen ``dd = dtil[r] exp(smax[r] - m) (1 + 1e-12)`` if ``nfin[r] > ncore[r]``
    (then ``VD`` starts at ``vmax``); with ``threshold`` the keys of weight ``<= theta``
    (:func:`~tropix.attention._kernels_numba._key_threshold`) are dropped too.  Writes ``out[r]`` (the
    normalised weighted sum of the kept values), ``Z[r]`` (kept mass), ``D[r]`` (dropped-mass bound),
    ``VD[r]`` (largest dropped ``|v|``, from ``vn``) and ``support[r]``.  ``ncore[r] < 0``: only
    ``Z[r] = -1`` (the row was not screened); ``ncore[r] == 0``: zeros.

    Work ``O(n_k + pairs)`` and two sequential passes over the needed rows of ``k`` and ``v``; memory
    ``O(n_k + pairs + len(rows) (d + d_v))``.
    """
    nr = rows.shape[0]
    n = k.shape[0]
    d = qs.shape[1]
    dv = v.shape[1]
    start, prow, ukeys, nu, npairs = _by_key(core, ncore, n)
    qg = np.empty((nr, d))  # the queries gathered: they stay in cache
    for r in range(nr):
        if ncore[r] > 0:
            q = qs[rows[r]]
            for t in range(d):
                qg[r, t] = q[t]
    # the keys visited: every key from the first needed to the last (a sequential stream), or only the
    # needed ones (fetched ahead in software)
    dense = nu >= DENSE_KEYS * n
    j0 = ukeys[0] if nu > 0 else 0
    nit = (ukeys[nu - 1] + 1 - j0 if nu > 0 else 0) if dense else nu
    # pass 1: scores, each key loaded once; each row's maximum
    m = np.full(nr, -np.inf)
    sw = np.empty(npairs)
    for i in range(nit):
        if dense:
            j = j0 + i
            if i + _AHEAD < nit:
                _prefetch_row(k, j + _AHEAD)
        else:
            j = ukeys[i]
            if i + _AHEAD < nit:
                _prefetch_row(k, ukeys[i + _AHEAD])
        kj = k[j]
        for p in range(start[j], start[j + 1]):
            r = prow[p]
            s = _dotv(qg[r], kj, d)
            sw[p] = s
            if s > m[r]:
                m[r] = s
    # the weights exp(s - m) and the masses
    z = np.zeros(nr)
    for p in range(npairs):
        r = prow[p]
        w = np.exp(sw[p] - m[r])
        sw[p] = w
        z[r] += w
    # per row: the screen's dropped mass and the key-level threshold
    dd = np.zeros(nr)
    vd = np.zeros(nr)
    theta = np.empty(nr)
    for r in range(nr):
        c = ncore[r]
        if c <= 0:
            continue
        if nfin[r] > c:
            dd[r] = dtil[r] * np.exp(np.float64(smax[r]) - m[r]) * (1.0 + 1e-12)
            vd[r] = vmax
        theta[r] = _key_threshold(threshold, beta[r], z[r], dd[r], c)
    # pass 2: the values, each key loaded once
    acc = np.zeros((nr, dv))
    za = np.zeros(nr)
    x = np.zeros(nr)
    kc = np.zeros(nr, dtype=np.int64)
    for i in range(nit):
        if dense:
            j = j0 + i
            if i + _AHEAD < nit:
                _prefetch_row(v, j + _AHEAD)
        else:
            j = ukeys[i]
            if i + _AHEAD < nit:
                _prefetch_row(v, ukeys[i + _AHEAD])
        vj = v[j]
        for p in range(start[j], start[j + 1]):
            r = prow[p]
            w = sw[p]
            if w > theta[r]:  # as _take_key
                ar = acc[r]
                for e in range(dv):
                    ar[e] += w * vj[e]
                za[r] += w
                kc[r] += 1
            else:
                x[r] += w
                vd[r] = max(vd[r], vn[j])
    for r in range(nr):
        c = ncore[r]
        if c < 0:
            Z[r] = -1.0
        elif c == 0:
            for e in range(dv):
                out[r, e] = 0.0
            Z[r] = 0.0
            D[r] = 0.0
            VD[r] = 0.0
            support[r] = 0
        else:
            _write_row(r, acc[r], za[r], dd[r] + x[r], vd[r], kc[r], out, Z, D, VD, support)
