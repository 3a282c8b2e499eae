"""numba kernel of region-sparse attention (imported lazily by :mod:`tropix.attention._kernels`).

One pass per query over the key blocks in decreasing order of their bounded mass: exact scores of the
blocks it cannot certify away, the softmax over them, and the certified dropped mass.  See
:func:`tropix.attention._kernels.region_sparse_fast` for the contract.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


# the intrinsic's name carries the pointer type: opaque pointers from LLVM 15 on
_PREFETCH = "llvm.prefetch.p0" if llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch_row(typingctx, arr, j):
    """Hint the CPU to fetch row ``j`` of the 2-D array ``arr`` into cache (``llvm.prefetch`` of each
    64-byte line of the row; a hint only: it never faults and does not change any result)."""
    sig = types.void(arr, j)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [row, context.get_constant(types.intp, 0)])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
        line = context.get_constant(types.intp, 64)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(aryty.dtype)))
        nbytes = builder.mul(builder.extract_value(ary.shape, 1), itemsize)
        nlines = builder.udiv(builder.add(nbytes, context.get_constant(types.intp, 63)), line)
        with cgutils.for_range(builder, nlines) as loop:
            p = builder.gep(i8p, [builder.mul(loop.index, line)])
            builder.call(fn, [p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _prefetch_at(typingctx, arr, i, t):
    """Hint: fetch the cache line of ``arr[i, t]`` (never faults, changes no result)."""
    sig = types.void(arr, i, t)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, args[1], signature.args[1], types.intp),
               context.cast(builder, args[2], signature.args[2], types.intp)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx)
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot_row(a, K, j, d):
    """``a . K[j]`` over the first ``d`` entries, indexing the 2-D ``K`` (no row view per call: 14-20 against
    25-27 ns per key at d = 32-64, measured).  Any summation order, with or without FMA, is covered by the
    rounding bound's gamma_{d+2} (:func:`tropix.attention.bounds.rounding_bound`), so the compiler may
    reassociate and vectorise the sum."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    t = 0
    while t + 4 <= d:
        s0 += a[t] * K[j, t]
        s1 += a[t + 1] * K[j, t + 1]
        s2 += a[t + 2] * K[j, t + 2]
        s3 += a[t + 3] * K[j, t + 3]
        t += 4
    while t < d:
        s0 += a[t] * K[j, t]
        t += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, nogil=True)
def _score_block(q, kp, ext, j0, j1, d, sbuf, pbuf, ns, m, perm, lim, brow, hasb, mrow, hasm):
    """Exact scores of the keys ``j0 .. j1-1`` (tree order), plus their key-only extra term ``ext`` (zeros
    without one; ``-inf`` masks a key) and, with ``hasb``, the query's bias row ``brow`` (original key order),
    appended to ``sbuf``/``pbuf`` from ``ns``; a key whose original index ``perm[j]`` exceeds ``lim`` is
    hidden (score ``-inf``: the causal mask of query ``lim``), and with ``hasm`` a key the query's mask row
    ``mrow`` (original key order, boolean) leaves out.  Returns the new length and ``max(m, scores)``."""
    for j in range(j0, j1):
        hidden = perm[j] > lim or (hasm and not mrow[perm[j]])
        s = -np.inf if hidden else _dot_row(q, kp, j, d) + ext[j]
        if hasb:
            s += brow[perm[j]]
        sbuf[ns] = s
        pbuf[ns] = j
        ns += 1
        if s > m:
            m = s
    return ns, m


FAR = -16.0
"""Below this exponent :func:`region_rows` weighs a block by :func:`exp_upper` rather than ``exp`` (a leaf of
a few dozen keys there carries at most about 1e-5 of the first block's mass: it is dropped or stays a far
candidate, and a bound within 6.2 % of its mass changes neither)."""
_L2E_DOWN = 1.4426950408889634 * (1.0 - 2.0**-40)  # log2(e) rounded well down: y below is never too small
_EXP_BITS_BIAS = 1023.0 * 2.0**52 + 2.0**20  # the exponent bias plus a margin (2^-32 in log2) for rounding


@njit(inline="always")
def exp_upper(x):
    """An upper bound of ``exp(x)`` for ``x <= 0``, at most 6.2 % above it (and about 2^-1022 for ``x`` below
    -708, where ``exp`` underflows), in a few instructions instead of a libm call: with ``y = x log2(e)``
    (rounded up), the float64 of bits ``trunc(2^52 (y + 1023))`` is ``2^e (1 + f)`` for ``y = e + f``,
    ``0 <= f < 1``, the chord of the convex ``2^y`` between the powers of two, never below it.  The
    rounding of the float64 products and the truncation move the bits by at most a few thousand units
    (2^-40 of an exponent); the margin of 2^20 units and the constant rounded down cover them."""
    y = x * _L2E_DOWN
    if y < -1022.0:
        y = -1022.0
    return np.int64(y * 4503599627370496.0 + _EXP_BITS_BIAS).view(np.float64)


@njit(inline="always")
def block_exp(x):
    """``exp(x)`` for a block's bounded exponent ``x``, or below ``FAR`` its upper bound :func:`exp_upper`."""
    return exp_upper(x) if x < FAR else np.exp(x)


@njit(cache=True, nogil=True)
def _take_keys(w, keys, n, theta, v, vn, acc, vd):
    """Key-level threshold for the keys ``keys[:n]`` (original order) of weights ``w[:n]``, in order: a key of
    weight above ``theta`` enters the output sums ``acc`` (added to), the kept mass and the kept count,
    otherwise the dropped mass and the largest dropped ``|v|`` (from ``vd``).  Returns ``(kept mass, kept
    count, dropped mass, largest dropped |v|)``.  One call per query: a call per key, passing the arrays,
    cost 48-56 ns against 9-12 ns inline (measured at d_v = 64)."""
    za = 0.0
    cnt = 0
    x = 0.0
    for t in range(n):
        wt = w[t]
        j = keys[t]
        if wt > theta:
            for e in range(acc.shape[0]):
                acc[e] += wt * v[j, e]
            za += wt
            cnt += 1
        else:
            x += wt
            if vn[j] > vd:
                vd = vn[j]
    return za, cnt, x, vd


@njit(cache=True, nogil=True)
def _key_threshold(threshold, beta, z, dd, count):
    """The weight ``theta`` at or below which a computed key may be dropped (``-1``: none): with dropped mass
    ``dd`` already bounded, dropping up to ``count`` keys of weight ``<= theta`` keeps ``D + X <= beta (Z - X)``."""
    if not threshold:
        return -1.0
    return max(beta * z - dd, 0.0) / ((1.0 + beta) * count)


@njit(cache=True, nogil=True)
def _write_row(r, acc, za, dd, vd, cnt, out, Z, D, VD, support):
    """Row ``r`` of the outputs: the normalised sums, kept mass, dropped-mass bound, largest dropped
    ``|v|`` and support."""
    zs = za if za > 0 else 1.0
    for e in range(acc.shape[0]):
        out[r, e] = acc[e] / zs
    Z[r] = za
    D[r] = dd
    VD[r] = vd
    support[r] = cnt


@njit(cache=True, nogil=True)
def region_rows(rows, qs, kp, ext, v, perm, vn, st, ct, U, first2, beta, threshold, cap, cand_cap,
                out, Z, D, VD, support, nkeys, kept_blocks, kept_n, lim, bias, hasb, btop, mask, hasm):
    """Per query ``rows[r]``: walk the blocks by bounded mass, exact softmax over the computed ones; the keys
    of original index above ``lim[r]`` are hidden from it (a causal mask; ``lim[r] >= n_k``: none).  With
    ``hasb`` the bias ``bias[rows[r]]`` (``(n_q, n_k)``, original key order; one row: the same for every
    query) is added to every exact score; ``U`` then bounds the scores without it, and a block's bound adds
    ``btop[r]`` (at least the row's largest bias) or, when that leaves the block too heavy to drop at once,
    the largest bias over the block's own keys.  With ``hasm`` the boolean ``mask[rows[r]]`` (``(n_q, n_k)``,
    original key order; one row: the same for every query) hides the keys it leaves out (``U`` bounds the
    visible keys as it bounds all: a mask only removes mass).  A hidden key (score ``-inf``) carries no
    mass: it is neither kept nor dropped.

    Writes ``out[r]``, ``Z[r]`` (kept mass), ``D[r]`` (bound on the dropped mass), ``VD[r]`` (max |v| of
    dropped keys), ``support[r]``, ``nkeys[r]`` (computed keys) and the computed blocks
    ``kept_blocks[r, :kept_n[r]]`` (shape ``(len(rows), len(st))``); all relative to ``exp(m)``, ``m`` the
    largest computed score.  ``Z[r] = -1`` flags a row whose scores are not finite, or that stopped after
    computing more than ``cap`` keys or whose candidate blocks (those not dropped at once by their bound)
    hold more than ``cand_cap`` keys (to be recomputed).
    """
    nb = st.shape[0]
    d = qs.shape[1]
    dv = v.shape[1]
    n = kp.shape[0]
    sbuf = np.empty(n)
    pbuf = np.empty(n, dtype=np.int64)
    wbuf = np.empty(n)  # exp(s - m_b), m_b the running maximum when the key's block was computed
    bstart = np.empty(nb + 1, dtype=np.int64)
    bmax = np.empty(nb)
    mark = np.zeros(nb, dtype=np.int64)
    vleaf = np.zeros(nb)
    for b in range(nb):
        mx = 0.0
        for j in range(st[b], st[b] + ct[b]):
            x = vn[perm[j]]
            if x > mx:
                mx = x
        vleaf[b] = mx
    wc = np.empty(nb)
    cand = np.empty(nb, dtype=np.int64)
    acc = np.empty(dv)
    for r in range(rows.shape[0]):
        i = rows[r]
        stamp = r + 1
        q = qs[i]
        brow = bias[i if bias.shape[0] > 1 else 0]
        mrow = mask[i if mask.shape[0] > 1 else 0]
        if r + 1 < rows.shape[0]:  # the next query's bias or mask row, read at random below: streamed in now
            if hasb and bias.shape[0] > 1:
                _prefetch_row(bias, rows[r + 1])
            if hasm and mask.shape[0] > 1:
                _prefetch_row(mask, rows[r + 1])
        ns = 0
        nkb = 0
        m = -np.inf
        # 1. the two first blocks (largest upper bound, best-scoring centre): their maximum is m0
        for c in range(2):
            b = first2[r, c]
            if mark[b] == stamp:
                continue
            mark[b] = stamp
            kept_blocks[r, nkb] = b
            nkb += 1
            ns, m = _score_block(q, kp, ext, st[b], st[b] + ct[b], d, sbuf, pbuf, ns, m, perm, lim[r], brow, hasb, mrow, hasm)
        if not np.isfinite(m):
            Z[r] = -1.0
            nkeys[r] = ns
            kept_n[r] = nkb
            continue
        for t in range(ns):
            _prefetch_row(v, perm[pbuf[t]])  # (the values of these keys are summed last: fetched meanwhile)
            wbuf[t] = np.exp(sbuf[t] - m)
        bstart[0] = 0
        bstart[1] = ns
        bmax[0] = m
        nseg = 1
        m0 = m
        bt = beta[r]
        # 2. bounded masses exp(U - m0) * count; the tiny ones are dropped at once (sum <= beta / 4)
        cut = bt / (4.0 * nb)
        dsmall = 0.0
        vd = 0.0
        nc = 0
        ckeys = 0
        for b in range(nb):
            if mark[b] == stamp:
                continue
            u = U[r, b]
            if u == -np.inf:
                continue
            if hasb:  # the row's largest bias first; the block's own only if needed
                w = ct[b] * block_exp(np.nextafter(u + btop[r], np.inf) - m0)
                if w > cut:
                    ub = -np.inf
                    for j in range(st[b], st[b] + ct[b]):
                        x = brow[perm[j]]
                        if x > ub:
                            ub = x
                    if ub == -np.inf:  # every key of the block masked by the bias: no mass
                        continue
                    w = ct[b] * np.exp(np.nextafter(u + ub, np.inf) - m0)
            else:
                w = ct[b] * block_exp(u - m0)
            if w <= cut:
                dsmall += w
                if vleaf[b] > vd:
                    vd = vleaf[b]
            else:
                cand[nc] = b
                wc[nc] = w
                nc += 1
                ckeys += ct[b]
        if ckeys > cand_cap:  # the bounds exclude almost nothing: not worth a walk
            Z[r] = -1.0
            nkeys[r] = ns
            kept_n[r] = nkb
            continue
        z = 0.0
        for t in range(ns):
            z += wbuf[t]
        # 3. exact blocks in decreasing bounded mass until the rest is certified small: D <= beta Z / 2.
        # Each step scans the remaining candidates for the largest mass and sums the rest (no sort, and
        # the sum of what is dropped is formed directly, without cancellation).
        while True:
            rest = 0.0
            cbest = -1
            wbest = -1.0
            for c in range(nc):
                w = wc[c]
                if w >= 0.0:
                    rest += w
                    if w > wbest:
                        wbest = w
                        cbest = c
            if cbest < 0 or (dsmall + rest) * np.exp(m0 - m) <= 0.5 * bt * z:
                break
            if ns > cap:
                m = np.inf  # give up this row
                break
            b = cand[cbest]
            wc[cbest] = -1.0
            mark[b] = stamp
            kept_blocks[r, nkb] = b
            nkb += 1
            t0 = ns
            ns, mb = _score_block(q, kp, ext, st[b], st[b] + ct[b], d, sbuf, pbuf, ns, m, perm, lim[r], brow, hasb, mrow, hasm)
            if mb > m:
                z *= np.exp(m - mb)
                m = mb
            for t in range(t0, ns):
                w = np.exp(sbuf[t] - m)
                wbuf[t] = w
                z += w
            bmax[nseg] = m
            nseg += 1
            bstart[nseg] = ns
        if not np.isfinite(m):
            Z[r] = -1.0
            nkeys[r] = ns
            kept_n[r] = nkb
            continue
        dd = 0.0
        for c in range(nc):
            if wc[c] >= 0.0:
                dd += wc[c]
                b = cand[c]
                if vleaf[b] > vd:
                    vd = vleaf[b]
        dd = (dsmall + dd) * np.exp(m0 - m)
        # 4. key level: keys of weight <= theta are dropped while D + X <= beta (Z - X)
        theta = _key_threshold(threshold, bt, z, dd, max(ns, 1))
        for t in range(dv):
            acc[t] = 0.0
        nk = 0  # the weights and original indices of the visible computed keys, packed in place (nk <= t)
        for g in range(nseg):
            same = bmax[g] == m  # then wbuf holds exactly exp(s - m)
            for t in range(bstart[g], bstart[g + 1]):
                if sbuf[t] == -np.inf:  # hidden: no mass, and its value plays no part
                    continue
                wbuf[nk] = wbuf[t] if same else np.exp(sbuf[t] - m)
                pbuf[nk] = perm[pbuf[t]]
                nk += 1
        za, cnt, x, vd = _take_keys(wbuf, pbuf, nk, theta, v, vn, acc, vd)
        _write_row(r, acc, za, dd + x, vd, cnt, out, Z, D, VD, support)
        nkeys[r] = ns
        kept_n[r] = nkb


@njit(cache=True, nogil=True)
def bias_rows(b, cnt, absmax):
    """Per row of the 2-D float64 bias ``b``: the entries above ``-inf`` (``cnt``, the keys a bias leaves
    visible) and the largest ``|b|`` among them (``absmax``, 0 when there is none), in one pass (``+inf`` and
    NaN entries were rejected by validation)."""
    n, m = b.shape
    for i in range(n):
        c = 0
        hi = 0.0
        for j in range(m):
            c, hi = visible_stat(b[i, j], c, hi)
        cnt[i] = c
        absmax[i] = hi


@njit(inline="always")
def visible_stat(x, c, hi):
    """One entry of a bias row into its statistics: the count ``c`` of entries above ``-inf`` and their largest
    ``|x|``, ``hi``."""
    if x > -np.inf:
        c += 1
        a = abs(x)
        if a > hi:
            hi = a
    return c, hi


@njit(cache=True, nogil=True)
def _row_hash(b, i, c):
    """The hash term of row ``i`` of the bits ``b``: ``(2 i + 1) sum_t b[i, t] c[t]`` modulo 2^64 (integer
    arithmetic: the same value in any order of the sums, vectorised or not)."""
    h = np.uint64(0)
    for t in range(b.shape[1]):
        h += b[i, t] * c[t]
    return h * np.uint64(2 * i + 1)


@njit(cache=True, nogil=True)
def key_hash(b, c):
    """``sum_i`` :func:`_row_hash` of the rows of the uint64 bits ``b`` (modulo 2^64): the keys' fingerprint of
    :mod:`tropix.attention.keytree` (``c``: its odd constants, :func:`tropix.attention._inputs.hash_consts`)."""
    h = np.uint64(0)
    for i in range(b.shape[0]):
        h += _row_hash(b, i, c)
    return h


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def rownorms_finite(x, out, b=None, c=None, h=None):
    """Euclidean norms of the rows of the 2-D float64 array ``x`` into ``out``, and whether every entry is
    finite (one pass over ``x``, which validation and norms would otherwise read twice).  Given the bits
    ``b = x.view(uint64)`` and hash constants ``c``, also the keys' fingerprint :func:`key_hash` into
    ``h[0]`` (in the same pass: the key tree's check that it was built from these keys).

    An entry that is inf or NaN makes ``e * 0`` NaN, which the per-row check sees (the sums may be
    reassociated, NaN still propagates).  Rows whose sum of squares leaves ``[1e-300, 1e300]`` are computed
    again scaled by their largest entry, as :func:`tropix.attention.dense._rownorm` does."""
    n, d = x.shape
    finite = True
    for i in range(n):
        s = 0.0
        z = 0.0
        hh = np.uint64(0)
        for t in range(d):  # (x[i, t], no row view per row: the view cost about a tenth of the pass)
            e = x[i, t]
            s += e * e
            z += e * 0.0
            if b is not None:  # (the term of _row_hash, in the same loop; integer sums: any order)
                hh += b[i, t] * c[t]
        if b is not None:
            h[0] += hh * np.uint64(2 * i + 1)
        nv = plain_norm(s, z)
        out[i] = nv if nv >= 0.0 else finish_norm(x[i], d, s, z)
        if z != 0.0:  # an inf or NaN entry
            finite = False
    return finite


@njit(inline="always")
def plain_norm(s, z):
    """``sqrt(s)`` where :func:`finish_norm` needs no more than the sum of squares ``s`` (``z`` is 0 and ``s``
    within ``[1e-300, 1e300]``), else -1: the common case without a call that passes the row."""
    return np.sqrt(s) if (z == 0.0 and 1e-300 <= s <= 1e300) else -1.0


@njit(cache=True, nogil=True, inline="always")
def finish_norm(row, d, s, z):
    """The norm of ``row`` from its sum of squares ``s`` and ``z``, the sum of its entries times 0: NaN if ``z``
    is not 0 (an inf or NaN entry), the rescaled norm when ``s`` leaves ``[1e-300, 1e300]``, else ``sqrt(s)``."""
    if z != 0.0:  # NaN: never equal to 0
        return np.nan
    return rescaled_norm(row, d) if (s < 1e-300 or s > 1e300) else np.sqrt(s)


@njit(cache=True, nogil=True)
def rescaled_norm(x, d):
    """``|x[:d]|`` computed with the entries divided by the largest one (no squares under- or overflow); 0 for a
    zero vector."""
    m = 0.0
    for t in range(d):
        a = abs(x[t])
        if a > m:
            m = a
    if m == 0.0:
        return 0.0
    s = 0.0
    for t in range(d):
        y = x[t] / m
        s += y * y
    return m * np.sqrt(s)


@intrinsic
def _call_address(typingctx, fnaddr, arg):
    """Call the compiled function at address ``fnaddr`` (signature ``i64 f(ptr)``, e.g. the bfloat16 screening
    kernel of :mod:`tropix.attention._bf16`) with the pointer ``arg``; returns its ``int64`` result.  Lets a
    numba loop drive a kernel that llvmlite compiled at run time, without a Python call per block."""
    sig = types.int64(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(64), [i8p])
        fptr = builder.inttoptr(args[0], fnty.as_pointer())
        return builder.call(fptr, [builder.inttoptr(args[1], i8p)])

    return sig, codegen


@njit(cache=True, nogil=True)
def visible_row_max(s, hidden, out):
    """``out[r]``: the largest ``s[r, j]`` over the pairs not ``hidden`` (``-inf`` for a row with none; ``s`` and
    ``hidden`` 2-D of one shape, any strides)."""
    for r in range(s.shape[0]):
        m = -np.inf
        for j in range(s.shape[1]):
            x = s[r, j]
            if x > m and not hidden[r, j]:
                m = x
        out[r] = m


@njit(cache=True, nogil=True)
def count_true(m, out):
    """``out[r]``: the number of ``True`` entries of row ``r`` of the 2-D boolean ``m`` (NumPy's
    ``count_nonzero(m, axis=-1)`` casts to integers first: 4-5x slower on a 512 x 8192 mask)."""
    for r in range(m.shape[0]):
        c = 0
        for j in range(m.shape[1]):
            c += m[r, j]
        out[r] = c


@njit(cache=True, nogil=True)
def set_where(s, where, value):
    """``s[where] = value`` in place (2-D, one shape; the loop NumPy's ``copyto(where=)`` takes 15x longer on)."""
    for r in range(s.shape[0]):
        for j in range(s.shape[1]):
            if where[r, j]:
                s[r, j] = value


@njit(cache=True, nogil=True)
def neginf_to(s, value, hid):
    """The ``-inf`` entries of ``s`` (2-D) replaced by ``value`` in place, their positions in ``hid`` (boolean,
    the same shape); returns whether there was any."""
    anyh = False
    for r in range(s.shape[0]):
        for j in range(s.shape[1]):
            h = s[r, j] == -np.inf
            hid[r, j] = h
            if h:
                s[r, j] = value
                anyh = True
    return anyh


@njit(cache=True, nogil=True)
def hide_after(s, rows, a):
    """The causal mask on a block of scores: ``s[r, j] = -inf`` where key ``a + j`` comes after query
    ``rows[r]`` (``s`` 2-D: the queries ``rows`` by the keys ``a, a + 1, ...``)."""
    for r in range(s.shape[0]):
        for j in range(max(rows[r] + 1 - a, 0), s.shape[1]):
            s[r, j] = -np.inf
