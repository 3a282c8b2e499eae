"""numba kernels of screened attention (imported lazily by :mod:`tropix.attention.screen`).

``scan_block``: one block of screening scores (queries x keys, float32 or float64): running row maxima, the
candidate keys within a margin of them, and a bound on the mass of the others from level counts.
``plan_rows``: after the first block, the collection margin of each query for the other blocks.
``finalize_rows``: per query, the banded bound on the keys left out and the core of keys to score exactly.  ``finish_rows``: exact float64 scores of
the core, the softmax over them and the quantities of the certified bound.  See
:mod:`tropix.attention.screen` for the certificate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import _dot, _prefetch_row, _take_key, _write_row


@njit(cache=True, nogil=True)
def _down(x, like):
    """``x`` rounded to the dtype of ``like``, never upwards."""
    y = like.dtype.type(x)
    if np.float64(y) > x:
        y = np.nextafter(y, like.dtype.type(-np.inf))
    return y


@njit(cache=True, nogil=True, fastmath={"nnan"})
def _row_max(row, m):
    """``max(m, max(row))``; screening scores are never NaN, so eight running maxima vectorise the loop."""
    n = row.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = m
    j = 0
    while j + 8 <= n:
        m0 = max(m0, row[j])
        m1 = max(m1, row[j + 1])
        m2 = max(m2, row[j + 2])
        m3 = max(m3, row[j + 3])
        m4 = max(m4, row[j + 4])
        m5 = max(m5, row[j + 5])
        m6 = max(m6, row[j + 6])
        m7 = max(m7, row[j + 7])
        j += 8
    for t in range(j, n):
        m = max(m, row[t])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, max(m7, m))))


_AHEAD = 8  # core keys fetched ahead in finish_rows
_CHUNK = 64  # keys per chunk: the collection test runs vectorised per chunk, the rare hits element by element


@njit(cache=True, nogil=True)
def scan_block(S, j0, ridx, tauc, taul, cap, masked, smax, nfin, cidx, cval, cnt, dun):
    """Fold the block ``S`` (``(nr, kb)``: scores of ``nr`` queries with keys ``j0 .. j0+kb-1``) into the state.

    Row ``r`` of ``S`` belongs to state row ``ridx[r]`` (the state arrays may hold more rows).

    ``smax[q]``: running maximum (updated with the whole block first).  Keys with ``S >= smax - tauc[q]``
    are collected into ``cidx[q, :cnt[q]]`` / ``cval[q, :cnt[q]]`` (``cnt[q] = -1`` once more than ``cap``: the
    row is then no longer tracked).  Every other key is only counted against the four levels
    ``tauc[q] < taul[0, q] < ... < taul[3, q]``: a key below ``smax - tauc`` but not below
    ``smax - taul[0]`` adds ``exp(-tauc)`` to ``dun[q]``, one below level ``l-1`` but not ``l`` adds
    ``exp(-taul[l-1])``, one below every level ``exp(-taul[3])``; as the running maximum never exceeds the
    final one, ``dun[q]`` bounds ``sum exp(s̃_j - max s̃)`` over the keys not collected.  ``nfin[q]`` counts
    the finite scores if ``masked`` (masked keys, ``-inf``, carry no mass and are not counted).
    The thresholds ``smax - t`` are rounded down to the dtype of ``S``.
    """
    nr, kb = S.shape
    for rc in range(nr):
        q = ridx[rc]
        row = S[rc]
        m = _row_max(row, smax[q])
        smax[q] = m
        if cnt[q] < 0:
            continue
        nk = kb
        if masked:
            nk = 0
            for j in range(kb):
                nk += row[j] > -np.inf
            nfin[q] += nk
        if not m > -np.inf:
            continue
        m64 = np.float64(m)
        tc = _down(m64 - tauc[q], S)
        t0 = _down(m64 - taul[0, q], S)
        t1 = _down(m64 - taul[1, q], S)
        t2 = _down(m64 - taul[2, q], S)
        t3 = _down(m64 - taul[3, q], S)
        a0 = 0
        a1 = 0
        a2 = 0
        a3 = 0
        c0 = cnt[q]
        for s in range(0, kb, _CHUNK):
            ch = row[s:s + _CHUNK]
            h = 0
            for j in range(ch.shape[0]):  # vectorised: the level counts and the collection test of the chunk
                x = ch[j]
                a0 += x >= t0
                a1 += x >= t1
                a2 += x >= t2
                a3 += x >= t3
                h += x >= tc
            if h == 0 or cnt[q] < 0:
                continue
            for j in range(ch.shape[0]):
                x = ch[j]
                if x >= tc and x > -np.inf:
                    c = cnt[q]
                    if c == cap:
                        cnt[q] = -1
                        break
                    cidx[q, c] = j0 + s + j
                    cval[q, c] = x
                    cnt[q] = c + 1
        if cnt[q] < 0:
            continue
        got = cnt[q] - c0
        dun[q] += ((a0 - got) * np.exp(-tauc[q]) + (a1 - a0) * np.exp(-taul[0, q])
                   + (a2 - a1) * np.exp(-taul[1, q]) + (a3 - a2) * np.exp(-taul[2, q])
                   + (nk - a3) * np.exp(-taul[3, q]))


@njit(cache=True, nogil=True)
def plan_rows(smax, cval, cnt, taufull, width, share, beta, scale, n, margin, tauc, est, ew):
    """After the first block: per row the collection margin ``tauc[r]`` for the other blocks and the
    extrapolated number of keys it collects (``est[r]``), from the band histogram of the first block's
    candidates scaled by ``scale`` (= n / block size); ``ew[b] = exp(-b width)``.  A heuristic: the certificate does not depend on it."""
    nr = smax.shape[0]
    for r in range(nr):
        c = cnt[r]
        tf = taufull[r]
        tauc[r] = tf
        est[r] = 0.0
        if c < 0 or not smax[r] > -np.inf:
            continue
        m = np.float64(smax[r])
        nbf = np.ceil(tf / width) + 2.0
        nb = 4096 if nbf > 4096.0 else int(nbf)
        bc = np.zeros(nb)
        for t in range(c):
            b = int((m - np.float64(cval[r, t])) / width)
            if b >= nb:
                b = nb - 1
            bc[b] += 1.0
        dsum = n * np.exp(-tf)
        for b in range(1, nb):
            dsum += scale * bc[b] * ew[b]
        zlo = 1.0 + (bc[0] - 1.0) * ew[1]
        target = 0.5 * share * beta[r]
        bstar = 1
        while bstar < nb and dsum > target * zlo:
            dsum -= scale * bc[bstar] * ew[bstar]
            zlo += bc[bstar] * ew[bstar + 1]
            bstar += 1
        tc = bstar * width + margin
        if tc > tf:
            tc = tf
        tauc[r] = tc
        k = 0.0
        for b in range(nb):
            if b * width <= tc:
                k += bc[b]
        est[r] = scale * k


@njit(cache=True, nogil=True)
def finalize_rows(smax, nfin, cidx, cval, cnt, dun, err, taufull, beta, width, share, ncore, dtil, ew):
    """Per row: bin the collected keys in bands of ``width`` below ``smax`` and choose the smallest core of
    top bands whose left-out mass bound is within ``share`` of the budget.

    Writes the core in place, ``cidx[r, :ncore[r]]`` (key indices), and ``dtil[r]``, a bound on the sum over left-out keys of
    ``exp(ŝ_j - smax[r])`` (``ŝ`` the float64 scores, within ``err[r]`` of the screening scores):
    ``(dun[r] + sum_{b >= b*} count_b exp(-b width)) exp(e)``.  ``ncore[r] = -1`` for rows that overflowed
    (``cnt[r] < 0``); rows without a finite score get ``ncore = 0``.  ``ew[b] = exp(-b width)`` for
    ``b <= 4097``.
    """
    nr = smax.shape[0]
    for r in range(nr):
        c = cnt[r]
        if c < 0:
            ncore[r] = -1
            continue
        m = np.float64(smax[r])
        if not m > -np.inf:
            ncore[r] = 0
            dtil[r] = 0.0
            continue
        e = err[r]
        tf = taufull[r]
        nbf = np.ceil(tf / width) + 2.0
        nb = 4096 if nbf > 4096.0 else int(nbf)
        bc = np.zeros(nb, dtype=np.int64)
        for t in range(c):
            b = int((m - np.float64(cval[r, t])) * (1.0 - 1e-15) / width)  # never above the true band
            if b >= nb:
                b = nb - 1
            bc[b] += 1
        # the thresholds m - tau were rounded: the 1e-15 relative slack covers it
        d_rest = dun[r] * np.exp(e + 1e-15 * (abs(m) + tf))
        # smallest bstar with  D(bstar) <= share beta Z(bstar):  D = d_rest + sum_{b >= bstar} bc[b] exp(-b width + e)
        # bounds the left-out mass, Z = exp(-e) + sum_{b < bstar} (bc[b] - [b = 0]) exp(-(b + 1) width - e)
        # the kept mass (the maximum key, of screening score m, is in band 0), both relative to exp(m)
        # exp(-b width) from the table ew (exp(-b width +- e) = ew[b] exp(+-e): a few ulps, within the final slack)
        ep = np.exp(e)
        em = np.exp(-e)
        dsum = 0.0
        for b in range(1, nb):
            dsum += bc[b] * ew[b]
        dsum = d_rest + dsum * ep
        zlo = em + (bc[0] - 1) * ew[1] * em
        half = share * beta[r]
        bstar = 1
        while bstar < nb and dsum > half * zlo:
            dsum -= bc[bstar] * ew[bstar] * ep
            zlo += bc[bstar] * ew[bstar + 1] * em
            bstar += 1
        # the bound itself: a fresh sum of positive terms (the running difference above may have cancelled)
        acc = 0.0
        for b in range(bstar, nb):
            acc += bc[b] * ew[b]
        acc = d_rest + acc * ep
        k = 0
        for t in range(c):
            b = int((m - np.float64(cval[r, t])) * (1.0 - 1e-15) / width)
            if b >= nb:  # the same clipped band as in the histogram: every collected key is in D or the core
                b = nb - 1
            if b < bstar:
                cidx[r, k] = cidx[r, t]  # in place: k <= t
                k += 1
        ncore[r] = k
        dtil[r] = acc * (1.0 + 1e-12)


@njit(cache=True, nogil=True)
def finish_rows(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                out, Z, D, VD, support):
    """Exact softmax over the core keys of each query; dropped mass ``dtil[r] exp(smax[r] - m)``.

    Then keys of weight ``<= theta`` among the core are dropped while the total stays within the budget,
    as in the region-sparse kernel.  ``Z[r] = -1`` flags a row that was not screened (``ncore[r] < 0``).
    """
    d = qs.shape[1]
    dv = v.shape[1]
    sbuf = np.empty(core.shape[1])
    acc = np.empty(dv)
    for r in range(rows.shape[0]):
        c = ncore[r]
        if c < 0:
            Z[r] = -1.0
            continue
        if c == 0:
            for e in range(dv):
                out[r, e] = 0.0
            Z[r] = 0.0
            D[r] = 0.0
            VD[r] = 0.0
            support[r] = 0
            continue
        q = qs[rows[r]]
        m = -np.inf
        for t in range(c):
            if t + _AHEAD < c:  # the core keys are scattered: fetch the rows a few keys ahead
                _prefetch_row(k, core[r, t + _AHEAD])
                _prefetch_row(v, core[r, t + _AHEAD])
            s = _dot(q, k[core[r, t]], d)
            sbuf[t] = s
            if s > m:
                m = s
        z = 0.0
        for t in range(c):
            w = np.exp(sbuf[t] - m)
            sbuf[t] = w
            z += w
        dd = 0.0
        vd = 0.0
        if nfin[r] > c:
            dd = dtil[r] * np.exp(np.float64(smax[r]) - m) * (1.0 + 1e-12)
            vd = vmax
        theta = -1.0
        bt = beta[r]
        if threshold:
            theta = max(bt * z - dd, 0.0) / ((1.0 + bt) * c)
        for e in range(dv):
            acc[e] = 0.0
        za = 0.0
        x = 0.0
        kc = 0
        for t in range(c):
            za, kc, x, vd = _take_key(sbuf[t], core[r, t], theta, v, vn, acc, za, kc, x, vd)
        _write_row(r, acc, za, dd + x, vd, kc, out, Z, D, VD, support)
