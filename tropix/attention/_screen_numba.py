"""numba kernels of screened attention (imported lazily by :mod:`tropix.attention.screen`).

``col_maxima``: each query's largest screening score (scores laid out keys x queries, float32 or float64).
``advance_maxima``: the running maxima over the key blocks seen so far, and the counted mass rescaled to them.
``scan_block``: one block of keys: the candidate keys within a margin of each query's maximum, and a bound on
the mass of the others (each key's weight bounded through the bits of a float32).
``plan_rows``: after the first block, the collection margin of each query for the other blocks.
``finalize_rows``: per query, the banded bound on the keys left out and the core of keys to score exactly.
``finish_rows``: exact float64 scores of the core, the softmax over them and the quantities of the certified
bound, query by query (the screen uses the key-ordered ``_rescore_numba.finish_rows_by_key``).
``fused_inputs`` / ``absorb_block`` / ``fused_blocks``: the blocks screened by the fused bfloat16 kernel of
:mod:`tropix.attention._bf16` (its inputs per block, its hits and counted weights folded into the state, the
loop over the blocks).  ``core_keys``: the cores concatenated.  See :mod:`tropix.attention.screen` for the
certificate.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._bf16_numba import screen_args
from ._kernels_numba import _call_address, _dot_row, _key_threshold, _prefetch_row, _take_keys, _write_row, visible_stat


@njit(cache=True, nogil=True)
def _down(x, like):
    """``x`` rounded to the dtype of ``like``, never upwards."""
    y = like.dtype.type(x)
    if np.float64(y) > x:
        y = np.nextafter(y, like.dtype.type(-np.inf))
    return y


_AHEAD = 8  # core keys fetched ahead in finish_rows


@njit(cache=True, nogil=True, fastmath={"nnan"})
def col_maxima(S, out):
    """``out[r] = max(S[:, r])`` for every column (``-inf`` for an all-masked column); screening scores are
    never NaN, so the loop over the columns vectorises."""
    out[:] = -np.inf
    for j in range(S.shape[0]):
        row = S[j]
        for r in range(row.shape[0]):
            out[r] = max(out[r], row[r])


@njit(cache=True, nogil=True)
def advance_maxima(S, smax, dun):
    """Fold a block of screening scores ``S`` (keys x queries) into the running maxima ``smax``: each query's
    counted mass ``dun`` (relative to its old maximum) is rescaled to the new one, ``dun * exp(old - new)``
    rounded upwards (a factor ``1 + 2^-50`` covers the rounding of ``exp`` and of the difference)."""
    nr = S.shape[1]
    bm = np.empty(nr, dtype=S.dtype)
    col_maxima(S, bm)
    for r in range(nr):
        old = smax[r]
        if bm[r] > old:
            if dun[r] > 0.0 and old > -np.inf:
                dun[r] = dun[r] * np.exp(np.float64(old) - np.float64(bm[r])) * (1.0 + 2.0**-50)
            smax[r] = bm[r]


# The weight bound of a key that is only counted: with y = log2(e) (s - m) <= 0, the float32 whose bits are
# the integer part of (y + 127) 2^23 is 2^floor(y) (1 + frac(y)) >= 2^y = exp(s - m) (1 + f >= 2^f on [0, 1]),
# at most 6.2 % above it ((1 + f) / 2^f <= 1.0615, times at most 2^(|y| 2^-19 + 288 / 2^23) <= 1.0003 from
# the shrunk C and the slack below, |y| <= 127).  Computed as
# t = max(d C, -126 2^23) + BIAS, d = s - m rounded (to the scores' dtype), C = log2(e) 2^23 (1 - 2^-20),
# with one rounding of d C + BIAS to float32 (an FMA in the fused kernel; here the exact product of the two
# float32 in float64, the sum in float64, then rounded to float32: the same float32 for every float32 d <= 0
# with |d C| <= 2^31, checked exhaustively over all 1.1e9 of them: no double rounding lands on a midpoint):
# the factor (1 - 2^-20) covers the rounding of s - m and of C itself (relative 2^-24 each: d C is never
# below y 2^23, as y <= 0), the 256 units added to BIAS the rounding of the sum (at most 32 units below 2^30)
# and the truncation to an integer; y is clamped at -126 (normal float32).
SELECT_ESTIMATE = True
EXP_C = np.float32(1.4426950408889634 * (1.0 - 2.0**-20) * 2.0**23)
EXP_LO = np.float32(-126.0 * 2.0**23)
EXP_BIAS = np.float32(127 * 2**23 + 256)
_C64, _LO64, _BIAS64 = float(EXP_C), float(EXP_LO), float(EXP_BIAS)


@njit(cache=True, nogil=True)
def exp_bits(d):
    """The weight bits of a difference ``d = s - m`` (float32 or float64, see above): the integer part of
    ``float32(max(d C, LO) + BIAS)``, the product and sum in float64 (the fused kernel's FMA, bit for bit)."""
    return np.int32(np.float32(max(np.float64(d) * _C64, _LO64) + _BIAS64))


@njit(cache=True, nogil=True)
def scan_block(S, j0, j1, joff, tauc, cap, masked, smax, nfin, cidx, cval, cnt, dun):
    """Fold the keys ``j0 .. j1-1`` (rows of ``S``, screening scores, keys x queries) into the state of the
    ``nr`` queries (key ``j`` of ``S`` is key ``j + joff`` of the head).

    ``smax[r]``: the running maximum of query ``r``, at least every score of this block.  Keys with
    ``S >= smax - tauc[r]`` are collected into ``cidx[r, :cnt[r]]`` / ``cval[r, :cnt[r]]`` (``cnt[r] = -1``
    once more than ``cap``: the query is then no longer tracked).  Every other finite key adds a float32
    ``w >= exp(s - smax)``, at most 6.2 % above it (the exponent-bit construction of ``EXP_C``), to
    ``dun[r]``: so ``dun[r]`` bounds ``sum exp(s̃_j - smax)`` over the keys not collected.  The block's sums
    are accumulated in float32 and added to ``dun`` with the factor ``1 + (j1 - j0) 2^-23`` that bounds
    their rounding.  ``nfin[r]`` counts the finite scores if ``masked`` (masked keys, ``-inf``, carry no
    mass and are not counted).  The collection thresholds ``smax - tauc`` are rounded down to the dtype of
    ``S``.  Two loops over the queries per key, both vectorised; the collection visits only flagged queries.
    """
    nr = S.shape[1]
    inf = S.dtype.type(np.inf)
    tc = np.empty(nr, dtype=S.dtype)
    mm = np.empty(nr, dtype=S.dtype)
    live = np.zeros(nr, dtype=np.bool_)
    for r in range(nr):
        m = smax[r]
        mm[r] = m
        if cnt[r] < 0 or not m > -np.inf:
            tc[r] = inf  # not tracked (or no finite score): nothing is collected or counted
            mm[r] = 0.0
            continue
        live[r] = True
        tc[r] = _down(np.float64(m) - tauc[r], S)
    acc = np.zeros(nr, dtype=np.float32)
    bits = np.zeros(nr, dtype=np.int32)
    wts = bits.view(np.float32)
    hit = np.zeros(8 * ((nr + 7) // 8), dtype=np.uint8)  # padded to whole 64-bit words
    words = hit.view(np.uint64)
    nf = np.zeros(nr, dtype=np.int64)
    for j in range(j0, j1):
        row = S[j]
        for r in range(nr):  # the bits of each key's weight bound (a masked key, -inf, is clamped)
            bits[r] = exp_bits(row[r] - mm[r])
        h = 0
        for r in range(nr):  # the weights of the keys not collected, and the collection test
            x = row[r]
            b = x >= tc[r]
            acc[r] += wts[r] if (x > -inf and not b) else np.float32(0.0)
            hit[r] = np.uint8(b)
            h += np.int32(b)
        if masked:
            for r in range(nr):
                nf[r] += row[r] > -inf
        if h == 0:
            continue
        for w in range(words.shape[0]):  # the hit flags eight at a time: most words are zero
            if words[w] == 0:
                continue
            for r in range(8 * w, min(8 * w + 8, nr)):
                if hit[r] and row[r] > -inf:
                    c = cnt[r]
                    if c == cap:
                        cnt[r] = -1
                        tc[r] = inf
                        live[r] = False
                    else:
                        cidx[r, c] = j + joff
                        cval[r, c] = row[r]
                        cnt[r] = c + 1
    grow = 1.0 + (j1 - j0) * 2.0**-23
    for r in range(nr):
        if masked and cnt[r] >= 0:
            nfin[r] += nf[r]
        if live[r]:
            dun[r] += np.float64(acc[r]) * grow


@njit(cache=True, nogil=True)
def plan_rows(smax, cval, cnt, taufull, width, share, beta, scale, dun, margin, tauc, est, ew):
    """After the first block: per row the collection margin ``tauc[r]`` for the other blocks and the
    extrapolated number of keys it collects (``est[r]``), from the band histogram of the first block's
    candidates (collected within ``taufull[r]`` of the maximum) and the mass ``dun[r]`` it counted, both scaled
    by ``scale`` (= n / block size); ``ew[b] = exp(-b width)``.  A heuristic: the certificate does not depend
    on it."""
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
            b = int((m - np.float64(cval[r, t])) * (1.0 / width))
            if b >= nb:
                b = nb - 1
            bc[b] += 1.0
        dsum = scale * dun[r]
        for b in range(1, nb):
            dsum += scale * bc[b] * ew[b]
        # the kept mass: the maximum key (weight 1) and the extrapolated bands above the cut
        zlo = 1.0 + scale * max(bc[0] - 1.0, 0.0) * ew[1]
        target = 0.5 * share * beta[r]
        bstar = 1
        while bstar < nb and dsum > target * zlo:
            dsum -= scale * bc[bstar] * ew[bstar]
            zlo += scale * bc[bstar] * ew[bstar + 1]
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

    Writes the core in place, ``cidx[r, :ncore[r]]`` (key indices), and ``dtil[r]``, a bound on the sum over
    left-out keys of
    ``exp(ŝ_j - smax[r])`` (``ŝ`` the float64 scores, within ``err[r]`` of the screening scores):
    ``(dun[r] + sum_{b >= b*} count_b exp(-b width)) exp(e)``.  ``ncore[r] = -1`` for rows that overflowed
    (``cnt[r] < 0``); rows without a finite score get ``ncore = 0``.  ``ew[b] = exp(-b width)`` for
    ``b <= 4097``.
    """
    nr = smax.shape[0]
    inv = (1.0 - 1e-15) / width
    bc = np.zeros(4097, dtype=np.int64)
    band = np.empty(cidx.shape[1], dtype=np.int32)
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
        bc[:nb] = 0
        for t in range(c):
            # never above the true band: inv is 1 / width rounded down by far more than the rounding here
            b = int((m - np.float64(cval[r, t])) * inv)
            if b >= nb:
                b = nb - 1
            band[t] = b
            bc[b] += 1
        # the thresholds m - tau were rounded: the 1e-15 relative slack covers it
        # (no key is counted when the margin is infinite, eps = 0: then dun = 0 and exp(...) may overflow)
        d_rest = dun[r] * np.exp(e + 1e-15 * (abs(m) + tf)) if dun[r] > 0 else 0.0
        # smallest bstar with  D(bstar) <= share beta Z(bstar):  D = d_rest + sum_{b >= bstar} bc[b] exp(-b width + e)
        # bounds the left-out mass, Z = exp(-e) + sum_{b < bstar} (bc[b] - [b = 0]) exp(-(b + 1) width - e)
        # the kept mass (the maximum key, of screening score m, is in band 0), both relative to exp(m)
        # exp(-b width) from the table ew (exp(-b width +- e) = ew[b] exp(+-e): a few ulps, within the final slack)
        ep = np.exp(e)
        # the kept mass is estimated from the screening scores themselves (not bounded below by exp(-e)): the
        # choice of the core is a heuristic, the certificate uses the exact kept mass (finish), and a row whose
        # final bound misses the request is computed densely
        em = 1.0 if SELECT_ESTIMATE else np.exp(-e)
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
        for t in range(c):  # (the same clipped band as in the histogram: every collected key is in D or the core)
            if band[t] < bstar:
                cidx[r, k] = cidx[r, t]  # in place: k <= t
                k += 1
        ncore[r] = k
        dtil[r] = acc * (1.0 + 1e-12)


@njit(cache=True, nogil=True)
def finish_rows(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold,
                out, Z, D, VD, support):
    """Exact softmax over the core keys of each query; dropped mass ``dtil[r] exp(smax[r] - m)``.

    The per-query walk: the screen itself uses the key-ordered
    :func:`tropix.attention._rescore_numba.finish_rows_by_key` (same contract); this one is kept as the
    baseline of ``benchmarks/bench_rescore.py`` and as a second reference in its tests.

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
            s = _dot_row(q, k, core[r, t], d)
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
        theta = _key_threshold(threshold, beta[r], z, dd, c)
        for e in range(dv):
            acc[e] = 0.0
        za, kc, x, vd = _take_keys(sbuf, core[r], c, theta, v, vn, acc, vd)
        _write_row(r, acc, za, dd + x, vd, kc, out, Z, D, VD, support)


@njit(cache=True, nogil=True)
def absorb_block(nh, hit_key, hit_query, hit_val, acc, bmax, nkeys, cap, smax, cidx, cval, cnt, dun):
    """Fold the outputs of the fused bfloat16 screen of one block (:func:`tropix.attention._bf16.screen_block`,
    run against the reference maxima ``smax``) into the state of the queries: the ``nh`` hits (key, query,
    score) are collected (a query overflowing ``cap`` stops being tracked, ``cnt = -1``), the block's counted
    weights ``acc`` (relative to ``smax``, float32 sums of ``nkeys`` terms: the factor ``1 + nkeys 2^-23``
    bounds their rounding) are added to ``dun``, and then the maxima advance to ``bmax`` with ``dun`` rescaled
    as in :func:`advance_maxima`.  A query no longer tracked keeps its maximum up to date (nothing else): by
    it the screen tells a query stopped against a maximum far below its own
    (:data:`tropix.attention.screen.MISS_GAP`)."""
    for t in range(nh):
        r = hit_query[t]
        c = cnt[r]
        if c < 0:
            continue
        if c == cap:
            cnt[r] = -1
            continue
        cidx[r, c] = hit_key[t]
        cval[r, c] = hit_val[t]
        cnt[r] = c + 1
    grow = 1.0 + nkeys * 2.0**-23
    for r in range(smax.shape[0]):
        if cnt[r] < 0:
            if bmax[r] > smax[r]:
                smax[r] = bmax[r]
            continue
        dun[r] += np.float64(acc[r]) * grow
        old = smax[r]
        if bmax[r] > old:
            if dun[r] > 0.0 and old > -np.inf:
                dun[r] = dun[r] * np.exp(np.float64(old) - np.float64(bmax[r])) * (1.0 + 2.0**-50)
            smax[r] = bmax[r]


@njit(cache=True, nogil=True)
def fused_inputs(smax, tauc, cnt, thr, acc, bmax, mref):
    """The per-query inputs of a fused block screen: the reference maxima ``mref`` (``smax``) and collection
    thresholds ``thr = smax - tauc`` rounded down to float32 (never above ``smax``: ``tauc >= 0``; ``smax``
    itself for a query no longer tracked, ``cnt < 0``: it is hit only by keys above its maximum, and its hits
    are ignored), zero counted weights ``acc``, block maxima ``bmax = -inf``.  A query that has seen no finite
    score yet (``smax = -inf``: every key so far hidden by ``-inf`` terms) gets the finite reference and
    threshold ``-FLT_MAX``: every finite score of the block is a hit (collected, as the unfused scan collects
    the keys near the block's maximum), a ``-inf`` one is counted at the clamped weight (an upper bound of 0).
    False if a maximum is ``+inf`` (never, for screening scores)."""
    lo = np.float32(-np.finfo(np.float32).max)
    for r in range(smax.shape[0]):
        m = smax[r]
        if not m < np.inf:
            return False
        if not m > -np.inf:
            mref[r] = lo
            thr[r] = lo if cnt[r] >= 0 else -lo  # (a query no longer tracked: no hits)
        else:
            mref[r] = m
            if cnt[r] < 0:
                thr[r] = m
            else:
                t = _down(np.float64(m) - tauc[r], thr)
                thr[r] = t if t < m else m
        acc[r] = 0.0
        bmax[r] = -np.inf
    return True


@njit(cache=True, nogil=True)
def fused_blocks(fnaddr, A, kbits, qbits, b0, n, step, kblock, gw, tauc, thr, acc, bmax, hk, hq, hv, cap,
                 smax, cidx, cval, cnt, dun, bias, bsrc, tileaddr, T, stg, ldg=64):
    """Screen the keys ``b0 .. n-1`` in blocks of ``step`` with the fused bfloat16 kernel at address ``fnaddr``
    (:func:`tropix.attention._bf16.screen_block`'s compiled ``bf16_screen``; ``A`` its int64 argument array,
    ``kbits`` / ``qbits`` the packed keys and queries, ``kblock``, ``gw`` its cache blocking), each block
    against the maxima of the blocks before (:func:`fused_inputs`), folded in by :func:`absorb_block`.
    ``bias``: ``(0, 0)`` for none, else the float32 bias of the keys x these queries (rows of unit stride;
    ``fnaddr`` then the kernel variant with a bias tile, whose thresholds are kept finite: a ``-inf`` score
    is never a hit, it only adds the clamped weight); ``ldg`` the bytes from one group of 16 queries to the
    next (64 for such a table; validation's query-blocked bias, :func:`bias_stats_blocked`, is passed as the
    ``(keys, 16)`` rows of its first group with ``ldg`` its group stride); or, when ``bsrc`` (float64, these
    queries x the keys) has rows, a buffer of at least ``step`` rows that :func:`bias_block` fills block by
    block from ``bsrc`` (``tileaddr``, ``T``, ``stg`` its transposer, argument array and staging buffer).
    Returns the first key not screened: ``n``, or the start of a block whose hits overflowed ``hk`` (nothing
    of that block was folded in; the caller screens it the unfused way).  A query with no finite maximum yet
    is screened against the reference ``-FLT_MAX`` (:func:`fused_inputs`)."""
    nb = len(A) - 4  # the index of the hit count; the bias arguments follow it
    lo = np.float32(-np.finfo(np.float32).max)
    mref = np.empty(smax.shape[0], dtype=np.float32)
    for a in range(b0, n, step):
        b = min(a + step, n)
        if not fused_inputs(smax, tauc, cnt, thr, acc, bmax, mref):
            return a
        if bias.shape[0] > 0:
            for r in range(thr.shape[0]):
                if thr[r] < lo:
                    thr[r] = lo
            if bsrc.shape[0] > 0:  # the block's tile, in the L2 cache
                bias_block(tileaddr, T, bsrc, a, b, stg, bias)
                A[nb + 1] = bias.ctypes.data
            else:
                A[nb + 1] = bias.ctypes.data + a * bias.strides[0]
            A[nb + 2] = bias.strides[0]
            A[nb + 3] = ldg
        screen_args(A, kbits[a:b], qbits, mref, thr, acc, bmax, hk, hq, hv, b - a, kblock, gw, 0, 0, 0, 0, a)
        nh = _call_address(fnaddr, A.ctypes.data)
        if nh < 0:
            return a
        absorb_block(nh, hk, hq, hv, acc, bmax, b - a, cap, smax, cidx, cval, cnt, dun)
    return n


@njit(cache=True, nogil=True)
def core_keys(core, ncore):
    """The cores ``core[r, :ncore[r]]`` (rows with ``ncore < 0`` count as empty) concatenated, as int64."""
    tot = 0
    for r in range(ncore.shape[0]):
        if ncore[r] > 0:
            tot += ncore[r]
    out = np.empty(tot, dtype=np.int64)
    p = 0
    for r in range(ncore.shape[0]):
        for t in range(max(ncore[r], 0)):
            out[p] = core[r, t]
            p += 1
    return out


@njit(cache=True, nogil=True)
def crowded_pairs(S, tau, near=None):
    """``(near, finite)``: the number of finite (key, query) pairs of the scores ``S`` (keys x queries) within
    ``tau[r]`` of their query's maximum over ``S`` (``S[j, r] >= max(S[:, r]) - tau[r]`` in ``S``'s precision;
    see ``screen._crowded``) and of all finite pairs; with ``near`` also the first count per query.  A ``-inf``
    score (a key hidden from the query) is neither."""
    nr = S.shape[1]
    thr = np.empty(nr, dtype=S.dtype)
    col_maxima(S, thr)
    for r in range(nr):
        thr[r] = thr[r] - S.dtype.type(tau[r])
    cr = np.zeros(nr, dtype=np.int64)
    fin = 0
    for j in range(S.shape[0]):
        for r in range(nr):
            x = S[j, r]
            if x > -np.inf:
                fin += 1
                if x >= thr[r]:
                    cr[r] += 1
    if near is not None:
        near[:] = cr
    return cr.sum(), fin


@njit(cache=True, nogil=True)
def _norm(x):
    """Euclidean norm of ``x`` as ``dense._rownorm`` computes it: ``sqrt(x . x)``, recomputed scaled by the
    largest entry where that underflows (below 1e-150) or overflows (from 1e150)."""
    s = 0.0
    for t in range(x.shape[0]):
        s += x[t] * x[t]
    n = np.sqrt(s)
    if n < 1e-150 or not n < 1e150:
        m = 0.0
        for t in range(x.shape[0]):
            m = max(m, abs(x[t]))
        if m > 0.0:
            s = 0.0
            for t in range(x.shape[0]):
                y = x[t] / m
                s += y * y
            n = m * np.sqrt(s)
        else:
            n = 0.0
    return n


@njit(cache=True, nogil=True)
def row_bounds(out, Z, D, VD, ncore, rho, bound):
    """The certified bound of every screened row, in ``bound``: ``truncation_bound(D, VD, |out[r]|, Z)``
    (:func:`tropix.attention.bounds.truncation_bound` with no aggregation terms, NaN anywhere gives inf) times
    ``1 + 1e-9``, plus ``rho[r]``.  Rows not screened (``Z < 0``) get inf; rows with an empty core
    (``ncore == 0``: every key hidden) get 0 and a zero output."""
    for r in range(out.shape[0]):
        if not Z[r] >= 0.0:  # (also a NaN mass: never a finite bound)
            bound[r] = np.inf
            continue
        if ncore[r] == 0:
            bound[r] = 0.0
            out[r, :] = 0.0
            continue
        on = _norm(out[r])
        d, vd, z = D[r], VD[r], Z[r]
        f = 0.0
        if d > 0.0:
            f = d * (vd + on) / (z + d)  # (NaN for inf / inf: caught below)
            if not f >= 0.0 and not np.isnan(f):
                f = 0.0
        if np.isnan(d) or np.isnan(vd) or np.isnan(on) or np.isnan(f):
            bound[r] = np.inf
        else:
            bound[r] = f * (1 + 1e-9) + rho[r]


@njit(cache=True, nogil=True)
def bias_table(b, out, cnt, absmax):
    """One pass over a bias ``b`` (``(n_q, n_k)`` float64, any strides): its transpose rounded to float32 into
    ``out`` (``(n_k, n_q)``, keys x queries as the screen lays out its scores; ``-inf`` stays ``-inf``;
    skipped if ``out`` has no rows), per query the number of entries above ``-inf`` (``cnt``) and the largest
    ``|b|`` among them (``absmax``, 0 if none).  Returns 0, or 1 on a NaN, 2 on ``+inf`` (then the outputs
    are incomplete).  The queries go sixteen at a time (sixteen read streams, 64-byte writes)."""
    nq, nk = b.shape
    if out.shape[0] == 0:
        return bias_stats(b, cnt, absmax)
    for r in range(nq):
        cnt[r] = 0
        absmax[r] = 0.0
    for r0 in range(0, nq, 16):
        r1 = min(r0 + 16, nq)
        for j in range(nk):
            for r in range(r0, r1):
                x = b[r, j]
                if x > -np.inf:
                    if x == np.inf:
                        return 2
                    cnt[r] += 1
                    ax = abs(x)
                    if ax > absmax[r]:
                        absmax[r] = ax
                elif x != x:
                    return 1
                out[j, r] = np.float32(x)
    return 0


@njit(cache=True, nogil=True)
def _row_stats(row, o=None):
    """``(entries above -inf, largest |x| among them, any NaN or +inf)`` of one row, on the bits (integer
    operations only: the loop vectorises); given ``o`` (float32, the row's length), also ``o = fl32(row)`` in
    the same loop (``-inf`` kept).  (``o`` None: numba compiles the loop without the copy.)"""
    c = 0
    hi = np.uint64(0)
    bad = np.uint64(0)
    u = row.view(np.uint64)
    inf = np.uint64(0x7FF0000000000000)
    for j in range(row.shape[0]):  # integers only: the bits of |x| order as the values (x not NaN)
        x = u[j]
        if o is not None:
            o[j] = np.float32(row[j])
        ab = x & np.uint64(0x7FFFFFFFFFFFFFFF)
        fin = ab < inf
        bad |= np.uint64((ab > inf) | (x == inf))  # NaN, +inf
        c += np.int64(fin)
        hi = max(hi, ab if fin else np.uint64(0))
    return c, np.array([hi]).view(np.float64)[0], bad != 0


@njit(cache=True, nogil=True)
def bias_stats(b, cnt, absmax, out=None):
    """:func:`bias_table` without the table: one pass over the rows of ``b`` (``(n_q, n_k)`` float64).  Given
    ``out`` (C-contiguous float32, rows at least ``n_k`` long; ``b`` then C-contiguous), also the bias rounded
    to float32 into ``out[:, :n_k]`` (``-inf`` kept), row by row (each row is read from memory once, then
    again from the cache).  Returns 0, or 1 if some entry is NaN or ``+inf`` (which of the two, the caller
    tells; the outputs are then incomplete)."""
    m = b.shape[1]
    for r in range(b.shape[0]):
        if out is not None:
            c, hi, bad = _row_stats(b[r], out[r, :m])
        elif b.strides[1] == 8:
            c, hi, bad = _row_stats(b[r])
        else:
            c, hi, bad = _row_stats(np.ascontiguousarray(b[r]))
        cnt[r] = c
        absmax[r] = hi
        if bad:
            return 1
    return 0


@njit(cache=True, nogil=True)
def mask_bias(mask, bias, hasb, out, cnt, absmax):
    """A mask (``True``: the key takes part) and an optional bias (``hasb``) as one additive term: ``out[r, j] =
    bias[r, j]`` where ``mask[r, j]``, else ``-inf`` (``(n_q, n_k)``; ``mask`` and ``bias`` 2-D, a dimension of
    length 1 broadcast), with per row the finite entries ``cnt[r]`` and their largest ``|b|``, ``absmax[r]``.
    One pass."""
    for r in range(out.shape[0]):
        _mask_bias_row(mask, bias, hasb, r, out, cnt, absmax)


@njit(cache=True, nogil=True)
def mask_bias_rows(mask, bias, hasb, rows, out, cnt, absmax):
    """:func:`mask_bias` for the rows ``rows`` only (the others of ``out``, ``cnt``, ``absmax`` untouched)."""
    for r in rows:
        _mask_bias_row(mask, bias, hasb, r, out, cnt, absmax)


@njit(inline="always")
def _mask_bias_row(mask, bias, hasb, r, out, cnt, absmax):
    """Row ``r`` of :func:`mask_bias`."""
    mrow = mask[r if mask.shape[0] > 1 else 0]
    brow = bias[r if bias.shape[0] > 1 else 0]
    mc, bc = mask.shape[1] > 1, bias.shape[1] > 1
    orow = out[r]
    c = 0
    hi = 0.0
    for j in range(out.shape[1]):
        x = (brow[j if bc else 0] if hasb else 0.0) if mrow[j if mc else 0] else -np.inf
        orow[j] = x
        c, hi = visible_stat(x, c, hi)
    cnt[r] = c
    absmax[r] = hi


@njit(cache=True, nogil=True)
def bias_block(fnaddr, T, src, b0, b1, stg, out):
    """The float32 bias tile of keys ``b0 .. b1-1``: ``out[j, r] = fl32(src[r, b0 + j])`` (``src`` float64
    ``(queries, keys)``, unit column stride; ``out`` ``(>= b1 - b0, queries)``), ``-inf`` kept.  The rows are
    rounded into the staging buffer ``stg`` (``(queries, >= b1 - b0)``, float32, a row stride that is not a
    power of two), then transposed sixteen by sixteen by the compiled ``bias_tile`` at ``fnaddr`` (``T``
    its int64 argument array, 6 entries); the edges (fewer than sixteen queries or keys) here.  A float32
    ``src`` (validation's rounded copy, :func:`bias_stats` with ``out``) is transposed directly: ``stg`` then has no
    rows."""
    nq = src.shape[0]
    nk = b1 - b0
    staged = stg.shape[0] > 0
    if staged:
        for r in range(nq):
            s = src[r, b0:b1]  # (slices from 0: the conversion loop vectorises)
            g = stg[r, :nk]
            for j in range(nk):
                g[j] = np.float32(s[j])
    nq16 = nq - nq % 16
    nk16 = nk - nk % 16
    if nq16 > 0 and nk16 > 0:
        if staged:
            T[0] = stg.ctypes.data
            T[1] = stg.strides[0]
        else:  # float32 rows already (validation's copy, a row stride that is no power of two)
            T[0] = src.ctypes.data + b0 * src.itemsize
            T[1] = src.strides[0]
        T[2] = nq16
        T[3] = nk16
        T[4] = out.ctypes.data
        T[5] = out.strides[0]
        _call_address(fnaddr, T.ctypes.data)
    for j in range(nk):
        r0 = nq16 if j < nk16 else 0
        for r in range(r0, nq):
            out[j, r] = stg[r, j] if staged else np.float32(src[r, b0 + j])


@njit(cache=True, nogil=True)
def bias_stats_blocked(b, out, cnt, absmax, fnaddr, T, stg):
    """:func:`bias_stats` plus the bias rounded to float32 in the layout the fused kernel reads: blocked by 16
    queries, ``out[g, j, t] = fl32(b[16 g + t, j])`` (``out`` ``((n_q + 15) // 16, n_k, 16)``, keys 64 bytes
    apart: a score vector's bias is one aligned 64-byte load from a sequential stream; the lanes of missing
    queries of the last group are 0; ``-inf`` kept; ``out`` 64-byte aligned: ``fnaddr`` may be the transposer
    with non-temporal stores, ``bias_tile_nt``).  ``b`` is C-contiguous.  Per group and chunk of
    ``stg.shape[1] - 16`` keys, the sixteen row pieces are validated and rounded into the staging buffer
    ``stg`` (``(16, chunk + 16)`` float32, in the L1/L2 cache), which the compiled ``bias_tile`` at ``fnaddr``
    (``T`` its int64 argument array, 6 entries) transposes into ``out``; the last keys of a chunk (fewer
    than sixteen) here.  Returns 0, or 1 on a NaN or ``+inf`` (then the outputs are incomplete)."""
    nq, nk = b.shape
    kc = stg.shape[1] - 16
    for r in range(nq):
        cnt[r] = 0
        absmax[r] = 0.0
    for g in range(out.shape[0]):
        r0 = 16 * g
        nr = min(16, nq - r0)
        for c0 in range(0, nk, kc):
            c1 = min(c0 + kc, nk)
            w = c1 - c0
            for t in range(16):
                if t < nr:
                    c, hi, bad = _row_stats(b[r0 + t, c0:c1], stg[t, :w])
                    if bad:
                        return 1
                    cnt[r0 + t] += c
                    if hi > absmax[r0 + t]:
                        absmax[r0 + t] = hi
                else:
                    stg[t, :w] = 0.0
            w16 = w - w % 16
            if w16 > 0:
                T[0] = stg.ctypes.data
                T[1] = stg.strides[0]
                T[2] = 16
                T[3] = w16
                T[4] = out.ctypes.data + g * out.strides[0] + c0 * out.strides[1]
                T[5] = out.strides[1]
                _call_address(fnaddr, T.ctypes.data)
            for j in range(w16, w):
                for t in range(16):
                    out[g, c0 + j, t] = stg[t, j]
    return 0
