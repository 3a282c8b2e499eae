"""Key-ordered float64 rescoring of the screened cores (numba; the drop-in alternative to
:func:`tropix.attention._screen_numba.finish_rows`, same signature and outputs).

``finish_rows`` walks each query's core keys in turn: the keys are scattered over ``k`` and ``v``, so every
(query, key) pair waits on memory (60-140 ns a pair inside a screened call), and keys shared by many queries
(clustered keys) are fetched again for each of them.  :func:`finish_rows_by_key` transposes the (query, key)
pairs into a key-major list (ordered by key, then query) and makes two passes over the needed keys in
increasing order: the first loads each key's row of ``k`` once and scores it against every query that needs
it, the second loads its row of ``v`` once and adds it to the sums of the queries that keep it; the
per-query state (maximum, masses, accumulators ``rows x d_v``) stays in cache.  When most keys are needed
(``DENSE_KEYS``) a pass streams over every row in the range (the hardware prefetcher then runs at full
speed), otherwise it visits only the needed rows, fetching them ahead in software.

The results are those of ``finish_rows`` up to the order of the sums (the scores' dot products, ``z``, the
kept and dropped masses, the weighted sums of the values), which the rounding bound of
:func:`tropix.attention.bounds.rounding_bound` covers ("any summation order, with or without FMA").  The
key-level drop threshold ``theta`` is computed from ``z``, so a weight within rounding of ``theta`` may be
kept by one kernel and dropped by the other; both outcomes are certified.

Ordering the pairs costs ``O(n_k + P)`` (counting sort) for ``P`` pairs, or ``O(P log P)`` (a comparison
sort, when ``P < n_k / SORT_BELOW``): with a handful of pairs the kernel costs about what the per-query walk
does (measured: within 20 % below 100 pairs, faster above; benchmarks/bench_rescore.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import _key_threshold, _prefetch_row, _write_row

__all__ = ["finish_rows_by_key", "finish_rows_by_key_bias", "pair_count"]

_AHEAD = 16  # keys fetched ahead in the key passes
DENSE_KEYS = 0.45
"""When at least this fraction of the keys is needed, the passes stream over every row of ``k`` / ``v`` in
the range (the hardware prefetcher runs at full bandwidth on a gap-free stream); below it they visit only the
needed rows, fetching them ahead in software.  The measured crossover; either way the passes cost within
about 10 % of each other near it."""


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


SORT_BELOW = 16
"""With fewer than ``n_k / SORT_BELOW`` pairs they are ordered by a comparison sort (``O(P log P)``) rather
than the counting sort (``O(n_k + P)``)."""


@njit(cache=True, nogil=True)
def _by_key(core, ncore, n):
    """The pairs ``(r, core[r, t])``, ``t < ncore[r]``, ordered by key, then by ``r``: ``prow[ustart[i] ..
    ustart[i+1]-1]`` are the rows of the pairs of key ``ukeys[i]``, ``ukeys[:nu]`` the keys with at least one
    pair in increasing order.  Returns ``(prow, ukeys, ustart, nu, npairs)``."""
    nr = ncore.shape[0]
    npairs = pair_count(ncore)
    prow = np.empty(npairs, dtype=np.int32)
    if npairs * SORT_BELOW < n:  # few pairs: sort their codes key * nr + r (no work proportional to n)
        code = np.empty(npairs, dtype=np.int64)
        p = 0
        for r in range(nr):
            for t in range(ncore[r]):  # (empty for ncore[r] <= 0)
                code[p] = np.int64(core[r, t]) * nr + r
                p += 1
        code.sort()
        ukeys = np.empty(npairs, dtype=np.int64)
        ustart = np.empty(npairs + 1, dtype=np.int64)
        nu = 0
        last = -1
        for p in range(npairs):
            j = code[p] // nr
            prow[p] = code[p] - j * nr
            if j != last:
                ukeys[nu] = j
                ustart[nu] = p
                nu += 1
                last = j
        ustart[nu] = npairs
        return prow, ukeys, ustart, nu, npairs
    # counting sort: start[j + 2] counts key j's pairs, then start[j + 1] becomes the first pair of key j
    start = np.zeros(n + 2, dtype=np.int64)
    for r in range(nr):
        cr = core[r]
        for t in range(ncore[r]):
            start[cr[t] + 2] += 1
    ukeys = np.empty(min(npairs, n), dtype=np.int64)
    nu = 0
    for j in range(n):
        cj = start[j + 2]
        if cj:
            ukeys[nu] = j
            nu += 1
        start[j + 2] = start[j + 1] + cj
    for r in range(nr):
        cr = core[r]
        for t in range(ncore[r]):
            j = cr[t] + 1
            prow[start[j]] = r
            start[j] += 1
    # now start[j] is the first pair of key j (and start[j + 1] the end of its pairs)
    ustart = np.empty(nu + 1, dtype=np.int64)
    for i in range(nu):
        ustart[i] = start[ukeys[i]]
    ustart[nu] = npairs
    return prow, ukeys, ustart, nu, npairs


@njit(inline="always")
def _score_key(qg, kj, d, p0, p1, prow, sw, m):
    """The scores of key ``kj`` with the rows ``prow[p0:p1]`` into ``sw[p0:p1]``; the rows' maxima ``m``."""
    for p in range(p0, p1):
        r = prow[p]
        s = _dotv(qg[r], kj, d)
        sw[p] = s
        if s > m[r]:
            m[r] = s


@njit(inline="always")
def _take_pairs(vj, vnj, p0, p1, prow, sw, theta, acc, za, kc, x, vd):
    """The pairs ``p0 .. p1-1`` of one key (value ``vj``, norm ``vnj``), weights ``sw``: the logic of
    ``_take_keys`` per row (a weight above ``theta[r]`` enters ``acc[r]``, ``za[r]``, ``kc[r]``, the others the
    dropped mass ``x[r]`` and the largest dropped ``|v|``, ``vd[r]``)."""
    for p in range(p0, p1):
        r = prow[p]
        w = sw[p]
        if w > theta[r]:  # (a branch: after the screen nearly every core key is kept)
            ar = acc[r]
            for e in range(vj.shape[0]):
                ar[e] += w * vj[e]
            za[r] += w
            kc[r] += 1
        else:
            x[r] += w
            vd[r] = max(vd[r], vnj)


@njit(cache=True, nogil=True)
def _pass_scores(qg, k, ukeys, ustart, nu, prow, sw, m, dense):
    """Pass 1: the float64 scores of every pair, key by key (the pairs ``ustart[i] .. ustart[i+1]-1`` of key
    ``ukeys[i]``), and each row's maximum.  ``dense``: every row of ``k`` from the first needed key to the
    last is fetched ahead (one sequential stream); else only the needed ones."""
    d = qg.shape[1]
    if nu == 0:
        return
    if dense:
        j0 = ukeys[0]
        j1 = ukeys[nu - 1] + 1
        i = 0
        for j in range(j0, j1):
            if j + _AHEAD < j1:
                _prefetch_row(k, j + _AHEAD)
            if ukeys[i] == j:
                _score_key(qg, k[j], d, ustart[i], ustart[i + 1], prow, sw, m)
                i += 1
    else:
        for i in range(nu):
            if i + _AHEAD < nu:
                _prefetch_row(k, ukeys[i + _AHEAD])
            _score_key(qg, k[ukeys[i]], d, ustart[i], ustart[i + 1], prow, sw, m)


@njit(cache=True, nogil=True)
def _pass_values(v, vn, ukeys, ustart, nu, prow, sw, theta, acc, za, kc, x, vd, dense):
    """Pass 2: the pairs of every key (as in :func:`_pass_scores`), their weights ``sw`` split by the
    thresholds ``theta`` into the kept sums and the dropped mass (:func:`_take_pairs`); ``dense`` as in
    :func:`_pass_scores`."""
    if nu == 0:
        return
    if dense:
        j0 = ukeys[0]
        j1 = ukeys[nu - 1] + 1
        i = 0
        for j in range(j0, j1):
            if j + _AHEAD < j1:
                _prefetch_row(v, j + _AHEAD)
            if ukeys[i] == j:
                _take_pairs(v[j], vn[j], ustart[i], ustart[i + 1], prow, sw, theta, acc, za, kc, x, vd)
                i += 1
    else:
        for i in range(nu):
            if i + _AHEAD < nu:
                _prefetch_row(v, ukeys[i + _AHEAD])
            j = ukeys[i]
            _take_pairs(v[j], vn[j], ustart[i], ustart[i + 1], prow, sw, theta, acc, za, kc, x, vd)


@njit(cache=True, nogil=True)
def finish_rows_by_key(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                       out, Z, D, VD, support):
    """See :func:`_finish_by_key` (no bias)."""
    _finish_by_key(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                   out, Z, D, VD, support, np.zeros((1, 1)), False)


@njit(cache=True, nogil=True)
def finish_rows_by_key_bias(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                            out, Z, D, VD, support, bias):
    """:func:`finish_rows_by_key` with an additive bias: the score of query ``r`` and key ``j`` is
    ``qs[rows[r]] . k[j] + bias[rows[r], j]`` in float64 (``bias`` 2-D, a dimension of length 1 broadcast)."""
    _finish_by_key(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                   out, Z, D, VD, support, bias, True)


@njit(cache=True, nogil=True)
def _add_bias(bias, rows, ukeys, ustart, nu, prow, sw, m):
    """``sw[p] += bias[rows[r], j]`` for every pair ``p`` (row ``r = prow[p]``, key ``j``) and the rows' maxima
    ``m`` of the sums."""
    for r in range(m.shape[0]):
        m[r] = -np.inf
    r1 = bias.shape[0] > 1
    j1 = bias.shape[1] > 1
    for i in range(nu):
        j = ukeys[i] if j1 else 0
        for p in range(ustart[i], ustart[i + 1]):
            r = prow[p]
            s = sw[p] + bias[rows[r] if r1 else 0, j]
            sw[p] = s
            m[r] = max(m[r], s)  # (no branch on the loaded value: the scattered loads overlap)


@njit(cache=True, nogil=True)
def _finish_by_key(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                   out, Z, D, VD, support, bias, hasb):
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

    Work ``O(n_k + pairs)`` (``O(pairs log pairs)`` for few pairs): a sequential pass over the needed rows of
    ``k``, then one over those of ``v``; memory ``O(n_k + pairs + len(rows) (d + d_v))``.
    """
    nr = rows.shape[0]
    n = k.shape[0]
    d = qs.shape[1]
    dv = v.shape[1]
    prow, ukeys, ustart, nu, npairs = _by_key(core, ncore[:nr], n)  # (rows beyond len(rows) ignored, as in finish_rows)
    qg = np.empty((nr, d))  # the queries gathered: they stay in cache
    for r in range(nr):
        if ncore[r] > 0:
            q = qs[rows[r]]
            for t in range(d):
                qg[r, t] = q[t]
    # pass 1: scores, each key loaded once; each row's maximum
    m = np.full(nr, -np.inf)
    sw = np.empty(npairs)
    _pass_scores(qg, k, ukeys, ustart, nu, prow, sw, m, nu >= DENSE_KEYS * n)
    if hasb:
        _add_bias(bias, rows, ukeys, ustart, nu, prow, sw, m)
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
    # pass 2: the values, each key's row of v loaded once
    x = np.zeros(nr)
    acc = np.zeros((nr, dv))
    za = np.zeros(nr)
    kc = np.zeros(nr, dtype=np.int64)
    _pass_values(v, vn, ukeys, ustart, nu, prow, sw, theta, acc, za, kc, x, vd, nu >= DENSE_KEYS * n)
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
