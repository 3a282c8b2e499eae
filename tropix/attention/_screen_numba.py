"""numba kernels of screened attention (imported lazily by :mod:`tropix.attention.screen`).

``scan_block``: one block of screening scores (keys x queries, float32 or float64): running row maxima, the
candidate keys within a margin of them, and a bound on the mass of the others from level counts.
``plan_rows``: after the first block, the collection margin of each query for the other blocks.
``finalize_rows``: per query, the banded bound on the keys left out and the core of keys to score exactly.  ``finish_rows``: exact float64 scores of
the core, the softmax over them and the quantities of the certified bound.  See
:mod:`tropix.attention.screen` for the certificate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import _dot, _take_key, _write_row


@njit(cache=True, nogil=True)
def _down(x, like):
    """``x`` rounded to the dtype of ``like``, never upwards."""
    y = like.dtype.type(x)
    if np.float64(y) > x:
        y = np.nextafter(y, like.dtype.type(-np.inf))
    return y


@njit(cache=True, nogil=True)
def scan_block(S, j0, ridx, tauc, taul, cap, masked, smax, nfin, cidx, cval, cnt, dun):
    """Fold the block ``S`` (``(kb, nr)``: scores of keys ``j0 .. j0+kb-1`` for ``nr`` queries) into the state.

    Column ``r`` of ``S`` belongs to state row ``ridx[r]`` (the state arrays may hold more rows).

    ``smax[r]``: running maximum.  Keys with ``S >= smax - tauc[r]`` (at the time they are seen) are
    collected into ``cidx[r, :cnt[r]]`` / ``cval[r, :cnt[r]]`` (``cnt[r] = -1`` once more than ``cap``: the row
    is then no longer tracked).  Every other key is only counted against the levels
    ``tauc[r] < taul[0, r] < ... < taul[L-1, r]``: a key below ``smax - tauc`` but not below
    ``smax - taul[0]`` adds ``exp(-tauc)`` to ``dun[r]``, one below level ``l-1`` but not ``l`` adds
    ``exp(-taul[l-1])``, one below every level ``exp(-taul[L-1])``; as the running maximum never exceeds the
    final one, ``dun[r]`` bounds ``sum exp(s̃_j - max s̃)`` over the keys not collected.  ``nfin[r]`` counts
    the finite scores if ``masked`` (masked keys, ``-inf``, carry no mass and are not counted).
    """
    kb, nr = S.shape
    L = taul.shape[0]
    m = np.empty(nr, dtype=S.dtype)
    for r in range(nr):
        m[r] = smax[ridx[r]]
    for j in range(kb):
        row = S[j]
        for r in range(nr):
            x = row[r]
            if x > m[r]:
                m[r] = x
    tc = np.empty(nr, dtype=S.dtype)
    tl = np.empty((L, nr), dtype=S.dtype)
    for r in range(nr):
        q = ridx[r]
        smax[q] = m[r]
        if cnt[q] < 0 or not m[r] > -np.inf:
            tc[r] = np.inf if cnt[q] < 0 else -np.inf
            for l in range(L):
                tl[l, r] = tc[r]
            continue
        tc[r] = _down(np.float64(m[r]) - tauc[q], S)
        for l in range(L):
            tl[l, r] = _down(np.float64(m[r]) - taul[l, q], S)
    cb = np.zeros((L, nr), dtype=np.int32)  # per block: at most kb < 2**31
    nf = np.zeros(nr, dtype=np.int32)
    c0 = np.empty(nr, dtype=np.int64)
    for r in range(nr):
        c0[r] = cnt[ridx[r]]
    hit = np.empty(nr, dtype=np.uint8)
    for j in range(kb):
        row = S[j]
        for l in range(L):  # level counts (vectorised over the queries)
            tll = tl[l]
            cbl = cb[l]
            for r in range(nr):
                cbl[r] += np.int32(row[r] >= tll[r])
        if masked:
            for r in range(nr):
                nf[r] += np.int32(row[r] > -np.inf)
        tot = 0
        for r in range(nr):  # branch-free test of every query, then the rare hits
            h = np.uint8(row[r] >= tc[r])
            hit[r] = h
            tot += h
        if tot == 0:
            continue
        for r in range(nr):
            if hit[r] and row[r] > -np.inf:
                q = ridx[r]
                c = cnt[q]
                if c < 0:
                    continue
                if c == cap:
                    cnt[q] = -1
                    tc[r] = np.inf
                else:
                    cidx[q, c] = j0 + j
                    cval[q, c] = row[r]
                    cnt[q] = c + 1
    for r in range(nr):
        q = ridx[r]
        if cnt[q] < 0:
            continue
        if masked:
            nfin[q] += nf[r]
            nk = nf[r]
        else:
            nk = kb
        if not m[r] > -np.inf:
            continue
        got = cnt[q] - c0[r]
        acc = (cb[0, r] - got) * np.exp(-tauc[q])
        for l in range(1, L):
            acc += (cb[l, r] - cb[l - 1, r]) * np.exp(-taul[l - 1, q])
        acc += (nk - cb[L - 1, r]) * np.exp(-taul[L - 1, q])
        dun[q] += acc


@njit(cache=True, nogil=True)
def plan_rows(smax, cval, cnt, taufull, width, share, beta, scale, n, margin, tauc, est):
    """After the first block: per row the collection margin ``tauc[r]`` for the other blocks and the
    extrapolated number of keys it collects (``est[r]``), from the band histogram of the first block's
    candidates scaled by ``scale`` (= n / block size).  A heuristic: the certificate does not depend on it."""
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
            dsum += scale * bc[b] * np.exp(-b * width)
        zlo = 1.0 + (bc[0] - 1.0) * np.exp(-width)
        target = 0.5 * share * beta[r]
        bstar = 1
        while bstar < nb and dsum > target * zlo:
            dsum -= scale * bc[bstar] * np.exp(-bstar * width)
            zlo += bc[bstar] * np.exp(-(bstar + 1) * width)
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
def finalize_rows(smax, nfin, cidx, cval, cnt, dun, err, taufull, beta, width, share, ncore, dtil):
    """Per row: bin the collected keys in bands of ``width`` below ``smax`` and choose the smallest core of
    top bands whose left-out mass bound is within ``share`` of the budget.

    Writes the core in place, ``cidx[r, :ncore[r]]`` (key indices), and ``dtil[r]``, a bound on the sum over left-out keys of
    ``exp(ŝ_j - smax[r])`` (``ŝ`` the float64 scores, within ``err[r]`` of the screening scores):
    ``(dun[r] + sum_{b >= b*} count_b exp(-b width)) exp(e)``.  ``ncore[r] = -1`` for rows that overflowed
    (``cnt[r] < 0``); rows without a finite score get ``ncore = 0``.
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
        dsum = d_rest
        for b in range(1, nb):
            dsum += bc[b] * np.exp(-b * width + e)
        zlo = np.exp(-e) + (bc[0] - 1) * np.exp(-width - e)
        half = share * beta[r]
        bstar = 1
        while bstar < nb and dsum > half * zlo:
            dsum -= bc[bstar] * np.exp(-bstar * width + e)
            zlo += bc[bstar] * np.exp(-(bstar + 1) * width - e)
            bstar += 1
        # the bound itself: a fresh sum of positive terms (the running difference above may have cancelled)
        acc = d_rest
        for b in range(bstar, nb):
            acc += bc[b] * np.exp(-b * width + e)
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
