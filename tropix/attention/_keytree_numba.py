"""numba kernels of :func:`tropix.attention.keytree.build_key_tree` (imported lazily by the keytree module).

The split rule is the one of the NumPy reference build (``keytree._build_key_tree_reference``), applied node
by node instead of one global ``argsort`` of all n keys per level: a level only touches the nodes it splits,
plus one stable sort of every node when it first takes part in a level that splits (what the global sort did
to it), so the trees are the same (up to ties broken by rounding).  Only the permutation moves (the rotated
keys are read through it); a node is sorted by a stable bucket sort of its coordinate (about linear for
spread-out values); rows read through the permutation are prefetched a few steps ahead.  Variances are
one-pass sums shifted by the node's first key.  The geometry (centres,
radii, boxes, representatives) is one pass over the leaves and one over the nodes of each level, children
being contiguous in the next level.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import _prefetch_at as _prefetch, rescaled_norm

_U = 2.0**-53


@njit(cache=True, nogil=True)
def _stats(X, P, a, c, sq):
    """Sums ``sq[0]`` and sums of squares ``sq[1]`` of the coordinates of rows ``P[a:a + c]`` of ``X``, shifted
    by the first row (the one-pass variance is then accurate to ~ c u relative: every shifted value is within
    the node's diameter, and the variance at least diameter^2 / (2c))."""
    dd = X.shape[1]
    sq[:] = 0.0
    r0 = P[a]
    e = a + c
    for i in range(a + 1, e):
        if i + 12 < e:
            _prefetch(X, P[i + 12], 0)
            _prefetch(X, P[i + 12], dd - 1)
        r = P[i]
        for t in range(dd):
            z = X[r, t] - X[r0, t]
            sq[0, t] += z
            sq[1, t] += z * z


@njit(cache=True, nogil=True)
def _widest(sq, c):
    """Largest variance over the coordinates (from the shifted sums ``sq``) and its first index."""
    best = -np.inf
    ax = 0
    for t in range(sq.shape[1]):
        v = max(sq[1, t] - sq[0, t] * sq[0, t] / c, 0.0) / c
        if v > best:
            best = v
            ax = t
    return best, ax


@njit(cache=True, nogil=True)
def _insertion_sort_pairs(sv, idx, a, b):
    """Stable insertion sort of the pairs ``(sv, idx)[a:b]`` by ``sv``."""
    for i in range(a + 1, b):
        v = sv[i]
        j = idx[i]
        p = i - 1
        while p >= a and sv[p] > v:
            sv[p + 1] = sv[p]
            idx[p + 1] = idx[p]
            p -= 1
        sv[p + 1] = v
        idx[p + 1] = j


@njit(cache=True, nogil=True)
def _argsort_stable(vals, c, sv, idx, bkt, cnt):
    """Stable argsort of ``vals[:c]`` into ``idx[:c]`` (ties keep their order, as ``np.argsort(kind="stable")``),
    and the sorted values into ``sv[:c]``.

    A counting sort into ``c`` buckets of equal width between the extremes (bucket index monotone in the value,
    so buckets are in order and each keeps the original order), then each bucket sorted stably: insertion sort
    when small, merge sort when a cluster fills one bucket.  About linear for spread-out values.
    """
    lo = vals[0]
    hi = vals[0]
    for i in range(1, c):
        v = vals[i]
        lo = min(lo, v)
        hi = max(hi, v)
    w = hi - lo
    if c <= 32 or w == 0.0 or not w < np.inf:
        for i in range(c):
            sv[i] = vals[i]
            idx[i] = i
        if c <= 32:
            _insertion_sort_pairs(sv, idx, 0, c)
        elif w != 0.0:  # a span beyond float64
            o = np.argsort(vals[:c], kind="mergesort")
            for i in range(c):
                idx[i] = o[i]
                sv[i] = vals[o[i]]
        return
    nb = c
    scale = min(nb / w, np.finfo(np.float64).max)
    cnt[:nb + 1] = 0
    for i in range(c):
        b = int(min((vals[i] - lo) * scale, nb - 1.0))
        bkt[i] = b
        cnt[b + 1] += 1
    for t in range(nb):
        cnt[t + 1] += cnt[t]
    for i in range(c):
        b = bkt[i]
        p = cnt[b]
        idx[p] = i
        sv[p] = vals[i]
        cnt[b] = p + 1
    # cnt[t] is now the end of bucket t
    a = 0
    for t in range(nb):
        e = cnt[t]
        m = e - a
        if m > 32:
            o = np.argsort(sv[a:e], kind="mergesort")
            keep = idx[a:e].copy()
            kv = sv[a:e].copy()
            for i in range(m):
                idx[a + i] = keep[o[i]]
                sv[a + i] = kv[o[i]]
        elif m > 1:
            _insertion_sort_pairs(sv, idx, a, e)
        a = e


@njit(cache=True, nogil=True)
def _order(X, P, a, c, ax, vals, sv, idx, bkt, cnt):
    """Coordinate ``ax`` of rows ``P[a:a + c]`` into ``vals``; if it is not sorted, its stable order into ``idx``
    and the sorted values into ``sv``.  Returns whether the permutation must change."""
    done = True
    vals[0] = X[P[a], ax]
    for i in range(1, c):
        if i + 16 < c:
            _prefetch(X, P[a + i + 16], ax)
        x = X[P[a + i], ax]
        vals[i] = x
        if x < vals[i - 1]:
            done = False
    if done:
        return False
    _argsort_stable(vals, c, sv, idx, bkt, cnt)
    return True


@njit(cache=True, nogil=True)
def _gather(P, a, c, idx, pbuf):
    """``P[a:a + c]`` put in the order ``idx``."""
    for i in range(c):
        pbuf[i] = P[a + idx[i]]
    for i in range(c):
        P[a + i] = pbuf[i]


@njit(cache=True, nogil=True)
def _split_at(vals, c):
    """Size of the first child: one past the largest gap of the sorted ``vals[:c]`` within the middle 3/4."""
    lo = c // 8
    hi = min((7 * c) // 8, c - 1)
    best = -1.0
    first = -1
    for p in range(lo, hi):
        g = vals[p + 1] - vals[p]
        if g > best:
            best = g
            first = p
    half = first + 1 if first >= 0 else c // 2
    return min(max(half, 1), max(c - 1, 1))


@njit(cache=True, nogil=True)
def split_levels(X, leaf, min_leaf):
    """Split the rows of ``X`` (the rotated keys, ``(n, d')``; not modified) level by level.

    Returns ``perm``, the flat ``starts``, ``counts``, ``parents`` of all levels and the level offsets into them.
    Only the permutation moves: node ``b`` holds the rows ``X[perm[starts[b]:starts[b] + count[b]]]``.  A node
    is sorted (stably, by its widest coordinate) once, when it first takes part in a level that splits.
    """
    n, dd = X.shape
    P = np.arange(n)
    pbuf = np.empty(n, dtype=np.int64)
    vals = np.empty(n)
    sv = np.empty(n)
    idx = np.empty(n, dtype=np.int64)
    bkt = np.empty(n, dtype=np.int64)
    cnt = np.empty(n + 1, dtype=np.int64)
    sq1 = np.empty((2, dd))
    sq2 = np.empty((2, dd))
    cap = 64
    f_st = np.empty(cap, dtype=np.int64)
    f_ct = np.empty(cap, dtype=np.int64)
    f_par = np.empty(cap, dtype=np.int64)
    lvl_ptr = [0]
    st = np.zeros(1, dtype=np.int64)
    ct = np.full(1, n, dtype=np.int64)
    par = np.zeros(1, dtype=np.int64)
    vmx = np.empty(1)
    axs = np.empty(1, dtype=np.int64)
    srt = np.zeros(1, dtype=np.bool_)  # node already in the order of its coordinate
    _stats(X, P, 0, n, sq1)
    vmx[0], axs[0] = _widest(sq1, n)
    fat = np.inf
    total = 0
    while True:
        m = st.shape[0]
        # record this level
        if total + m > cap:
            while total + m > cap:
                cap *= 2
            g_st = np.empty(cap, dtype=np.int64)
            g_ct = np.empty(cap, dtype=np.int64)
            g_par = np.empty(cap, dtype=np.int64)
            g_st[:total] = f_st[:total]
            g_ct[:total] = f_ct[:total]
            g_par[:total] = f_par[:total]
            f_st, f_ct, f_par = g_st, g_ct, g_par
        f_st[total:total + m] = st
        f_ct[total:total + m] = ct
        f_par[total:total + m] = par
        total += m
        lvl_ptr.append(total)
        nsmall = 0
        for b in range(m):
            if ct[b] <= leaf:
                nsmall += 1
        if fat == np.inf and nsmall >= max(4, m // 2):
            small = np.empty(nsmall)
            j = 0
            for b in range(m):
                if ct[b] <= leaf:
                    small[j] = vmx[b]
                    j += 1
            fat = 16.0 * np.median(small)  # 4x the typical spread of a leaf
        split = np.zeros(m, dtype=np.bool_)
        nsplit = 0
        for b in range(m):
            if ct[b] > leaf or (ct[b] > min_leaf and vmx[b] > fat):
                split[b] = True
                nsplit += 1
        if nsplit == 0:
            break
        m2 = m + nsplit
        st2 = np.empty(m2, dtype=np.int64)
        ct2 = np.empty(m2, dtype=np.int64)
        par2 = np.empty(m2, dtype=np.int64)
        vmx2 = np.empty(m2)
        axs2 = np.empty(m2, dtype=np.int64)
        srt2 = np.zeros(m2, dtype=np.bool_)
        j = 0
        for b in range(m):
            a, c, ax = st[b], ct[b], axs[b]
            move = False
            if split[b] or not srt[b]:
                if srt[b]:
                    for i in range(c):
                        vals[i] = X[P[a + i], ax]
                else:
                    move = _order(X, P, a, c, ax, vals, sv, idx, bkt, cnt)
            if split[b]:
                h = _split_at(sv if move else vals, c)
                if move:
                    _gather(P, a, c, idx, pbuf)
                _stats(X, P, a, h, sq1)
                _stats(X, P, a + h, c - h, sq2)
                st2[j], ct2[j], par2[j] = a, h, b
                vmx2[j], axs2[j] = _widest(sq1, h)
                st2[j + 1], ct2[j + 1], par2[j + 1] = a + h, c - h, b
                vmx2[j + 1], axs2[j + 1] = _widest(sq2, c - h)
                j += 2
            else:
                if move:
                    _gather(P, a, c, idx, pbuf)
                st2[j], ct2[j], par2[j] = a, c, b
                vmx2[j], axs2[j], srt2[j] = vmx[b], ax, True
                j += 1
        st, ct, par, vmx, axs, srt = st2, ct2, par2, vmx2, axs2, srt2
    ptr = np.empty(len(lvl_ptr), dtype=np.int64)
    for i in range(len(lvl_ptr)):
        ptr[i] = lvl_ptr[i]
    return P, f_st[:total].copy(), f_ct[:total].copy(), f_par[:total].copy(), ptr


@njit(cache=True, nogil=True)
def _norm(x, d):
    """Euclidean norm of ``x[:d]``, rescaled by the largest entry when the sum of squares under- or overflows."""
    s = 0.0
    for t in range(d):
        s += x[t] * x[t]
    r = np.sqrt(s)
    if r < 1e-150 or r >= 1e150:  # (NaN stays NaN)
        r = rescaled_norm(x, d)
    return r


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _sumsq(x, y, d):
    """``sum (x - y)^2`` (any summation order: the radius slack covers it) and ``sum x^2``."""
    s = 0.0
    s0 = 0.0
    for t in range(d):
        e = x[t] - y[t]
        s += e * e
        s0 += x[t] * x[t]
    return s, s0


@njit(cache=True, nogil=True)
def geometry(k, perm, f_st, f_ct, f_par, ptr, kp, cen, rad, lo, hi, rep):
    """Keys in tree order ``kp`` and the centres, radii, boxes and representatives of all nodes (flat over
    levels; ``cen`` and ``rad`` zero on entry); returns the largest key norm.

    ``k`` are the keys in original order.  The outputs are allocated by the caller (NumPy's large allocations
    are backed by huge pages: fewer page faults than the compiled allocator's).
    """
    n, d = k.shape
    tot = f_st.shape[0]
    nl = ptr.shape[0] - 1
    grow = 1.0 + 4 * (d + 4) * _U
    diff = np.empty(d)
    kmax = 0.0
    # leaves: exact statistics
    for b in range(ptr[nl - 1], ptr[nl]):
        a, c = f_st[b], f_ct[b]
        cb = cen[b]
        lb = lo[b]
        hb = hi[b]
        k0 = k[perm[a]]
        for t in range(d):
            lb[t] = k0[t]
            hb[t] = k0[t]
        for i in range(a, a + c):
            if i + 4 < n:
                for t in range(0, d, 8):  # the row four ahead, one cache line per 8 entries
                    _prefetch(k, perm[i + 4], t)
            ki = k[perm[i]]
            kpi = kp[i]
            for t in range(d):
                x = ki[t]
                kpi[t] = x
                cb[t] += x
                lb[t] = min(lb[t], x)
                hb[t] = max(hb[t], x)
        for t in range(d):
            cb[t] /= c
        best = np.inf
        bi = a
        rmax = 0.0
        for i in range(a, a + c):
            s, s0 = _sumsq(kp[i], cb, d)
            r = np.sqrt(s)
            if r < 1e-150 or not r < 1e150:  # under- or overflow: rescaled
                for t in range(d):
                    diff[t] = kp[i, t] - cb[t]
                r = _norm(diff, d)
            r0 = np.sqrt(s0)
            if r0 < 1e-150 or not r0 < 1e150:
                r0 = _norm(kp[i], d)
            if r0 > kmax:
                kmax = r0
            if r < best:
                best = r
                bi = i
            if r > rmax:
                rmax = r
        rad[b] = rmax * grow
        rep[b] = perm[bi]
    # inner nodes bottom-up: weighted mean centres, triangle-inequality radii, box hulls
    nch = np.zeros(tot, dtype=np.int64)
    for lvl in range(nl - 2, -1, -1):
        p0, c0, c1 = ptr[lvl], ptr[lvl + 1], ptr[lvl + 2]
        for j in range(c0, c1):
            nch[p0 + f_par[j]] += 1
        for b in range(p0, c0):
            if nch[b] > 1:
                for t in range(d):
                    lo[b, t] = np.inf
                    hi[b, t] = -np.inf
        for j in range(c0, c1):
            b = p0 + f_par[j]
            if nch[b] == 1:  # a node carried over unchanged
                for t in range(d):
                    cen[b, t] = cen[j, t]
                    lo[b, t] = lo[j, t]
                    hi[b, t] = hi[j, t]
                rad[b] = rad[j]
                rep[b] = rep[j]
                continue
            cn = float(f_ct[j])
            for t in range(d):
                cen[b, t] += cen[j, t] * cn
                lo[b, t] = min(lo[b, t], lo[j, t])
                hi[b, t] = max(hi[b, t], hi[j, t])
        best = np.full(c0 - p0, np.inf)
        for j in range(c1 - 1, c0 - 1, -1):  # ties go to the first child
            b = p0 + f_par[j]
            if nch[b] > 1:
                rep[b] = rep[j]
        for b in range(p0, c0):
            if nch[b] > 1:
                for t in range(d):
                    cen[b, t] /= f_ct[b]
        for j in range(c0, c1):
            b = p0 + f_par[j]
            if nch[b] == 1:
                continue
            for t in range(d):
                diff[t] = cen[j, t] - cen[b, t]
            reach = _norm(diff, d) + rad[j]
            if reach > rad[b]:
                rad[b] = reach
            cr = rep[j]
            for t in range(d):
                diff[t] = k[cr, t] - cen[b, t]
            dd = _norm(diff, d)
            if dd < best[b - p0]:
                best[b - p0] = dd
                rep[b] = cr
        for b in range(p0, c0):
            rad[b] *= grow
    return kmax


@njit(cache=True, nogil=True)
def upper_first(qc, box, qn, rad, slack, up, first):
    """The upper bounds of :func:`tropix.attention.keytree.upper_bounds_first` from its products, in one
    pass: ``up[i, b] = min(qc[i, b] + qn[i] rad[b], box[i, b]) + slack[i]`` (the ball bound and the box
    bound ``qs . mid + |qs| . half``), and per query the first largest ``up`` and the first largest ``qc``
    (``first[i] = (argmax up[i], argmax qc[i])``, as ``np.argmax``)."""
    g, nb = qc.shape
    for i in range(g):
        a = qn[i]
        s = slack[i]
        bu = 0
        bc = 0
        mu = -np.inf
        mc = -np.inf
        for b in range(nb):
            x = qc[i, b] + a * rad[b]
            y = box[i, b]
            u = (x if x <= y else y) + s
            up[i, b] = u
            if u > mu:
                mu = u
                bu = b
            c = qc[i, b]
            if c > mc:
                mc = c
                bc = b
        first[i, 0] = bu
        first[i, 1] = bc
