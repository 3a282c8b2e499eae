"""Screened attention: every score once in low precision, exact float64 softmax over the keys that can matter.

Block bounds cannot prune keys that have no geometry to exploit (i.i.d. keys in 32 or 64 dimensions: every
ball or box around a group of keys contains directions that score high).  Screening needs no geometry:

1. every score is computed once in low precision, ``s̃ = q̂ · k̂``: an int8 GEMM with exact integer
   products (:mod:`tropix.attention._int8`, on CPUs with AVX512-VNNI: each scaled query quantised to 8 bits
   with its own scale, each key to two codes of 8 bits), a bfloat16 GEMM with float32 accumulation
   (:mod:`tropix.attention._bf16`, on CPUs with AVX512-BF16) or a float32 ``sgemm``, the first the CPU has
   (``precision="auto"``; ``q̂``, ``k̂`` the quantised or rounded scaled query and key);
2. one pass over the keys, block by block, per chunk of queries: each query keeps a running maximum ``m̃``
   and *collects* the keys with ``s̃ >= m̃ - τ_c`` (thresholds rounded down); every other key is only
   *counted*, by a float32 ``w >= exp(s̃ - m̃)`` built from the exponent bits of ``log2(e) (s̃ - m̃)``
   (at most 6.2 % above it; :func:`tropix.attention._screen_numba.scan_block`), and the counted mass is
   rescaled whenever the maximum rises.  The first block (a quarter of ``kblock`` keys) collects within a
   wider margin (never below ``τ_f = log(FLOOR_KEYS / β)``, ``FLOOR_KEYS = 32``, ``β`` the dropped-mass
   budget); its band histogram and counted mass then set each query's own margin ``τ_c >= τ_f`` for the
   other blocks; a query whose first block extrapolates to far more candidates than a rescoring could
   afford stops and is computed densely, unless its maximum over all keys (which the fused kernel keeps
   tracking) turns out ``MISS_GAP`` (2) above the one it was stopped against, and few of the keys that
   stopped it lie near the new one: its first block then missed the keys near its maximum (tight clusters
   rarer than one per block), and it is screened again from that maximum (clustered keys at T = 0.25,
   65 536 keys: 97 of 256 queries were computed densely; now none, 84 -> 27 ms).
   With the int8 or bfloat16 GEMM the later blocks are screened by a fused kernel
   (:func:`tropix.attention._bf16.screen_block`, :func:`tropix.attention._int8.screen_block`) that compares,
   counts and collects while the scores are still in registers (they are never stored), against the maxima
   of the blocks before; the first block too, in two passes (its exact maxima, then the screen against them:
   what the scan of its stored scores does);
3. at the end the collected keys are binned in bands of width ``w`` below the final maximum, and the
   smallest core of top bands whose left-out mass bound fits the budget (against the kept mass estimated
   from the screening scores) is scored again in float64, key by key in key order
   (:func:`tropix.attention._rescore_numba.finish_rows_by_key`: each row of ``k`` and ``v`` read once); the
   softmax over the core is exact and, as in :func:`~tropix.attention.region_sparse`, keys of negligible
   weight among them are dropped while the budget allows.

Certificate.  For every key the screening score differs from the float64 one the method would otherwise use by
at most ``e_i``: for float32, ``c |q_i| max_j |k_j| + a`` (:func:`screen_error`: the rounding of ``q`` and
``k`` to float32 contributes ``(2u + u²) Σ_l |q_l k_l|``, the float32 dot product, any summation order, with
or without FMA, ``γ_d (1 + u)² Σ_l |q_l k_l|`` (Higham, Lemma 3.3 / §3.1), the float64 evaluation ``γ_d`` with
``u = 2^-53``; ``Σ_l |q_l k_l| <= |q| |k|``; ``a`` covers float32 underflow); for int8,
:func:`tropix.attention._int8.error_bound` from the actual quantisation residuals of the query and of the keys
(``ρ_q (max|k| + ρ_k) + |q| ρ_k`` plus the float32 scaling, about ``0.6 % |q| max|k|`` at d = 64), plus the
float64 evaluation; for bfloat16, the smaller of
:func:`tropix.attention._bf16.error_bound` and :func:`~tropix.attention._bf16.error_bound_residual` (from the
actual rounding errors of the query and of the keys, which validation measures while it packs them: about half
as large) plus the float64 evaluation. A key with ``s̃ < m̃ - t`` has ``exp(ŝ - m̃) <= exp(-t + e)``: a
counted key carries at most ``w exp(e)``, a collected key in band ``b`` at most ``exp(-b w + e)`` (relative to
``exp(m̃)``).  Their sum ``D̃`` bounds the left-out mass; with ``m`` the exact float64 maximum of the core,
``D = D̃ exp(m̃ - m)``.  This ``D`` and the largest dropped ``|v|`` enter
:func:`~tropix.attention.bounds.truncation_bound` with the *exact* kept mass of the core, exactly as in the
other methods, plus the rounding bound of dense evaluation.  A row that overflows ``cap`` candidates, or whose
bound would exceed ``eps * max|v|``, is computed densely, so the guarantee always holds.  Assumed: IEEE
arithmetic, no overflow (inputs with ``|q| max|k|`` above ``1e36`` are not screened but computed densely).

Cost (``benchmarks/bench_attention.py``, i.i.d. keys at T = 0.1, 16 384 keys, 256 queries): with the
bfloat16 GEMM on AMD Zen 4, 0.20-0.21 of float64 dense attention at d = 32 and 64 (about 7.0 / 4.6 ms), of
which the fused screen is about half (3.4 / 2.2 ms: a GEMM that must look at every key in this way caps the
gain), the float64 rescoring of the cores 1.2 / 0.8 ms, validation with the packing of the keys 1.0 / 0.5 ms,
core selection 0.3 ms and Python about 0.5 ms.  On an Intel Xeon of the Emerald Rapids generation, where
the bfloat16 product is slow, 0.35-0.39 with it and 0.29-0.32 with the int8 GEMM (d = 64: 8.1-8.6 ms, of
which the fused int8 screen 3.4, validation with the packing of the keys 1.4, of the queries and values 0.4,
the rescoring 1.2, core selection 0.3).  On flat scores the rows stop after the first block and are
computed densely.

Masks.  A key-padding mask (the same keys masked for every query of a head, no bias, not causal) is screened
as the head of its visible keys, on the unmasked path (:func:`_visible_keys_only`).  A causal term alone
costs no extra term either: a chunk of queries only looks at the keys up to its last query; its first block
holds the diagonal part (hidden keys set to ``-inf``: neither collected nor counted, so no core holds one)
and the keys just before it, which every query of the chunk sees; all keys before those go through the
fused kernel.  Any other mask without a causal term (one that depends on the query, or a key-padding mask
together with a bias) is first made one bias with it, ``-inf`` where masked, in one compiled pass
(:func:`tropix.attention.region_sparse._mask_as_bias`), and screened as a bias alone (below): a random mask of
query and key on clustered keys at T = 0.25, 16384 keys, measured 0.26 of dense (0.96 on the masked path),
with a bias 0.40-0.44 (0.96).  A causal term together with a mask or a bias adds the extra term to every
block of screening scores and rescores the cores in NumPy (the masked path, no fused kernel): correct and
certified, but often about as slow as dense attention.

Biases.  A bias alone (any shape broadcasting to ``(n_q, n_k)``, ``-inf`` entries allowed, no mask, not
causal; finite entries up to ``_F32_LIMIT``) is screened on the fused path: the screening score is
``σ = fl32(s̃ + β)``, ``β = fl32(b)`` (rounded to nearest; ``-inf`` stays ``-inf``), added by the kernel
variant with a bias (:func:`tropix.attention._bf16.screen_block` with ``bias=``, which prefetches the bias
of the keys ten rows ahead) and by the unfused blocks in NumPy, the same float32 sum.  A full ``(n_q, n_k)``
NumPy bias is rounded by validation into a copy blocked by 16 queries (per group of 16 queries, keys x 16
float32: a score vector's bias is one aligned 64-byte load from a sequential stream,
:func:`tropix.attention._screen_numba.bias_stats_blocked`); chunks of queries that do not start at a
multiple of 16, and biases validation did not copy, get their tile per block of keys, rounded and transposed
into the L2 cache right before it (:func:`tropix.attention._screen_numba.bias_block`); a bias per key or per
query is a ``(n_k, n_q)`` table, that vector repeated.  The rescoring adds the exact float64 ``b`` to each exact
core score (:func:`tropix.attention._rescore_numba.finish_rows_by_key_bias`), ``x̂ = fl64(ŝ + b)``.  With
``u = 2^-24``, ``u' = 2^-53``, ``e`` the bound on ``|s̃ - ŝ|`` and ``B`` the head's largest finite ``|b|``:
``|σ - x̂| <= |σ - (s̃ + β)| + |β - b| + |s̃ - ŝ| + |ŝ + b - x̂|
<= u |s̃ + β| + (u B + t) + e + u' |ŝ + b|``, with ``|s̃ + β| <= |q| max|k| + 2e + (1 + u) B`` and
``|ŝ + b| <= |q| max|k| + e + B``; ``t = 2^-124`` covers the underflow of ``β`` and of the sum (also with
denormals flushed): :func:`_bias_error`, used as ``e`` by every step above.  A ``-inf`` score is never
collected (the kernel's thresholds are kept finite) and is counted at the clamped weight ``2^-126``, an upper
bound of its weight 0; each query's number of finite keys (``nfin``, from validation's row statistics) tells
the rescoring when the core holds every key the query sees (then nothing is left out).  Validation reads a
large float64 bias once (NaN / ``+inf`` check, per-row count and largest ``|b|``:
:func:`tropix.attention._screen_numba.bias_stats`, or with the blocked copy ``bias_stats_blocked``: sixteen
whole rows rounded into an L2-resident staging buffer, then transposed 16 x 16 with non-temporal stores; a
read of sixteen rows side by side, or in short pieces, costs about twice a sequential read here).  Rows that
stop (flat scores) are computed densely with the bias rows added block by block
(:func:`tropix.attention.region_sparse._dense_rows`: slices, no gather)."""

from __future__ import annotations

import copy
import ctypes
from functools import lru_cache

import numpy as np

from .._compiled import compiled
from ..errors import OptionError
from .bounds import pruning_budget, truncation_bound, unit_roundoff
from .dense import _rownorm
from ._inputs import check_count, check_eps, prepare
from .region_sparse import _fallback_rows, _HeadData, _mask_as_bias, _Prefixed, _RowKept, _run_per_head
from .result import AttentionResult

__all__ = ["screened", "screen_error"]

_F32_LIMIT = 1e36  # |q| max|k| above this could overflow float32 scores: such heads are not screened
_TINY32 = 2.0**-149  # float32 underflow unit (smallest subnormal)
PLAN_MARGIN = 0.5  # added to the first block's estimate of the collection margin
EST_SLACK = 4.0  # a row whose first block extrapolates to this many times the abort limit stops there
FLOOR_KEYS = 32.0  # the collection margin is never below log(FLOOR_KEYS / beta)
FUSED_KEYS = 1024  # keys per fused block (the reference maxima advance between blocks)
FUSED_HITS = 16  # hit buffer of the fused screen: this many per key and 64 queries (overflow: unfused)
FIRST_DIV = 4
BLOCK_SCORES = 2**18  # scores per block (1 MB of float32: the L2 cache)
FIRST_EXTRA = 1.5  # the first block collects within the floor of the margin plus this
FIRST_FUSED = True  # the first block of a chunk through the fused kernel too (two passes: see _FusedScreen.first)


def _kernels():
    """The numba kernels (advance_maxima, scan_block, plan_rows, finalize_rows, finish_rows_by_key), compiled
    or loaded on first use; None without numba."""
    sn, rn = compiled("tropix.attention._screen_numba"), compiled("tropix.attention._rescore_numba")
    if sn is None or rn is None:  # pragma: no cover - numba is a dependency
        return None
    return sn.advance_maxima, sn.scan_block, sn.plan_rows, sn.finalize_rows, rn.finish_rows_by_key


def screen_error(qnorm, kmax, kabsmax, qabsmax, d: int):
    """Bound on ``|fl32(q̂·k̂) - ŝ|`` for every key, ``ŝ`` the float64 score (see the module docstring).

    Parameters
    ----------
    qnorm : array
        ``|q_i|`` of the scaled queries.
    kmax : float
        Largest ``|k_j|``.
    kabsmax, qabsmax : float
        Largest absolute entry of the keys / of the scaled queries (for the underflow term).
    d : int
        Head dimension.

    Examples
    --------
    >>> e = screen_error(np.array([10.0]), 5.0, 3.0, 4.0, 32)
    >>> 1e-5 < float(e[0]) < 2e-4
    True
    """
    u = unit_roundoff(np.float32)
    u64 = unit_roundoff(np.float64)
    gd = d * u / (1 - d * u)
    gd64 = (d + 2) * u64 / (1 - (d + 2) * u64)
    c = (2 * u + u * u) + gd * (1 + u) ** 2 + gd64 * (1 + u) ** 2
    # underflow: each rounded entry and each product may lose up to the smallest subnormal
    a = d * _TINY32 * (2.0 + float(kabsmax) + float(qabsmax)) * (1 + gd) + _TINY32
    return (c * np.asarray(qnorm, dtype=np.float64) * float(kmax) + a) * (1 + 1e-6)


def _advance_maxima_numpy(S, smax, dun):
    """Reference implementation of the kernel ``advance_maxima``."""
    bm = S.max(axis=0, initial=-np.inf)
    up = bm > smax
    rescale = up & (dun > 0) & (smax > -np.inf)
    f = np.exp(smax[rescale].astype(np.float64) - bm[rescale].astype(np.float64)) * (1.0 + 2.0**-50)
    dun[rescale] = dun[rescale] * f
    smax[up] = bm[up]


def _scan_block_numpy(S, j0, j1, joff, tauc, cap, masked, smax, nfin, cidx, cval, cnt, dun):
    """Reference implementation of the kernel ``scan_block`` (same state updates)."""
    from ._screen_numba import EXP_BIAS, EXP_C, EXP_LO
    for r in range(S.shape[1]):
        if cnt[r] < 0:
            continue
        col = S[j0:j1, r]
        fin = col > -np.inf
        if masked:
            nfin[r] += int(fin.sum())
        if not smax[r] > -np.inf:
            continue
        tc = _down(float(smax[r]) - tauc[r], S.dtype)
        j = np.flatnonzero((col >= tc) & fin)
        c = int(cnt[r])
        if c + len(j) > cap:
            cnt[r] = -1
            continue
        cidx[r, c:c + len(j)] = joff + j0 + j
        cval[r, c:c + len(j)] = col[j]
        cnt[r] = c + len(j)
        x = col[fin & (col < tc)]
        t = np.maximum((x - smax[r]).astype(np.float64) * float(EXP_C), float(EXP_LO)) + float(EXP_BIAS)
        w = t.astype(np.float32).astype(np.int32).view(np.float32)  # as _screen_numba.exp_bits
        acc = np.float32(0.0)
        for t in w:  # sequential float32 sums: the kernel's rounding is within the same factor
            acc = np.float32(acc + t)
        dun[r] += float(acc) * (1.0 + (j1 - j0) * 2.0**-23)


def _down(x, dtype):
    y = np.asarray(x, dtype=np.float64).astype(dtype)
    if float(y) > x:
        y = np.nextafter(y, dtype.type(-np.inf))
    return y


def _bands(m, vals, width, nb, slack=1.0 - 1e-15):
    return np.minimum(((m - vals.astype(np.float64)) * (slack / width)).astype(np.int64), nb - 1)


def _nbands(tf, width):
    return int(min(np.ceil(tf / width) + 2, 4096))


def _plan_numpy(smax, cval, cnt, taufull, width, share, beta, scale, dun, margin, tauc, est, ew=None):
    """Reference implementation of the kernel ``plan_rows``."""
    for r in range(len(smax)):
        c, tf = int(cnt[r]), float(taufull[r])
        tauc[r], est[r] = tf, 0.0
        if c < 0 or not smax[r] > -np.inf:
            continue
        nb = _nbands(tf, width)
        bc = np.bincount(_bands(float(smax[r]), cval[r, :c], width, nb, 1.0), minlength=nb).astype(np.float64)
        dsum = scale * dun[r] + sum(scale * bc[b] * np.exp(-b * width) for b in range(1, nb))
        zlo = 1.0 + scale * max(bc[0] - 1.0, 0.0) * np.exp(-width)
        bstar = 1
        while bstar < nb and dsum > 0.5 * share * beta[r] * zlo:
            dsum -= scale * bc[bstar] * np.exp(-bstar * width)
            zlo += scale * bc[bstar] * np.exp(-(bstar + 1) * width)
            bstar += 1
        tauc[r] = min(bstar * width + margin, tf)
        est[r] = scale * bc[np.arange(nb) * width <= tauc[r]].sum()


def _finalize_numpy(smax, nfin, cidx, cval, cnt, dun, err, taufull, beta, width, share, ncore, dtil, ew=None):
    """Reference implementation of the kernel ``finalize_rows`` (same outputs)."""
    from . import _screen_numba
    for r in range(len(smax)):
        c = int(cnt[r])
        if c < 0:
            ncore[r] = -1
            continue
        m = float(smax[r])
        if not m > -np.inf:
            ncore[r], dtil[r] = 0, 0.0
            continue
        e, tf = float(err[r]), float(taufull[r])
        nb = _nbands(tf, width)
        band = _bands(m, cval[r, :c], width, nb)
        bc = np.bincount(band, minlength=nb)
        d_rest = dun[r] * np.exp(e + 1e-15 * (abs(m) + tf)) if dun[r] > 0 else 0.0
        dsum = d_rest + sum(bc[bb] * np.exp(-bb * width + e) for bb in range(1, nb))
        em = 0.0 if _screen_numba.SELECT_ESTIMATE else e  # (see _screen_numba.finalize_rows)
        zlo = np.exp(-em) + (bc[0] - 1) * np.exp(-width - em)
        bstar = 1
        while bstar < nb and dsum > share * beta[r] * zlo:
            dsum -= bc[bstar] * np.exp(-bstar * width + e)
            zlo += bc[bstar] * np.exp(-(bstar + 1) * width - em)
            bstar += 1
        acc = d_rest + sum(bc[bb] * np.exp(-bb * width + e) for bb in range(bstar, nb))
        sel = cidx[r, :c][band < bstar]
        cidx[r, :len(sel)] = sel  # the core, in place
        ncore[r] = len(sel)
        dtil[r] = acc * (1.0 + 1e-12)


def _finish_numpy(rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta, threshold, cx,
                  out, Z, D, VD, support):
    """Reference implementation of the kernel ``finish_rows``, plus the extra term ``cx`` of the core keys."""
    for r in range(len(rows)):
        c = int(ncore[r])
        if c < 0:
            Z[r] = -1.0
            continue
        if c == 0:
            out[r], Z[r], D[r], VD[r], support[r] = 0.0, 0.0, 0.0, 0.0, 0
            continue
        j = core[r, :c]
        s = k[j] @ qs[rows[r]]
        if cx is not None:
            s = s + cx[r, :c]
        m = s.max()
        w = np.exp(s - m)
        z = w.sum()
        dd = dtil[r] * np.exp(float(smax[r]) - m) * (1 + 1e-12) if nfin[r] > c else 0.0
        vd = vmax if nfin[r] > c else 0.0
        theta = max(beta[r] * z - dd, 0.0) / ((1 + beta[r]) * c) if threshold else -1.0
        act = w > theta
        za = w[act].sum()
        out[r] = (w[act] @ v[j[act]]) / (za if za > 0 else 1.0)
        Z[r] = za
        D[r] = dd + w[~act].sum()
        VD[r] = max(vd, vn[j[~act]].max(initial=0.0))
        support[r] = int(act.sum())


_ScreenHead = _HeadData  # a head needs no key tree to be screened


@lru_cache(maxsize=8)
def _band_weights(width: float) -> np.ndarray:
    """The band weights ``exp(-b width)``, ``b = 0 .. 4097`` (read-only)."""
    ew = np.exp(-width * np.arange(4098.0))
    ew.flags.writeable = False
    return ew


def _row_bounds_numpy(o, Zr, Dr, VDr, ncore, rho):
    """NumPy reference of :func:`tropix.attention._screen_numba.row_bounds` (``o`` updated in place)."""
    ok = Zr >= 0
    with np.errstate(over="ignore", invalid="ignore"):
        b = truncation_bound(Dr, VDr, _rownorm(o), np.where(ok, Zr, 1.0)) * (1 + 1e-9) + rho
    b[~ok] = np.inf
    dead = ok & (ncore == 0)
    b[dead], o[dead] = 0.0, 0.0
    return b


def _row_bounds():
    from ._screen_numba import row_bounds

    return row_bounds


def _score_buffer(n: int, m: int) -> np.ndarray:
    """An ``(n, m)`` float32 buffer for a block of screening scores, 64-byte aligned (whole cache lines per
    row when ``m`` is a multiple of 16: the bfloat16 kernel's stores then never straddle two lines)."""
    buf = np.empty(n * m + 16, dtype=np.float32)
    off = (-buf.ctypes.data % 64) // 4
    return buf[off:off + n * m].reshape(n, m)

KEY_COST = 6.0
"""A key rescored in float64 costs about this many dense score evaluations (measured with the key-ordered
rescoring: 25-45 ns per (query, key) pair at d = 32, less when queries share their keys, against about
6.5 ns per score of dense attention; 90 ns at d = 64 on i.i.d. keys, against 9)."""
SCREEN_ROW_COST = 0.15
"""The screen of one query (its share of the fused bfloat16 screen, the first block and the core selection)
costs about this fraction of a dense query (measured: 0.13-0.14 at d = 32-64, 16384 keys)."""

BF16_MIN_KEYS = 2048  # fewer keys: the float32 sgemm (packing the bfloat16 operands would not pay)
BF16_MIN_ROWS = 32  # fewer queries: the float32 sgemm (packing all keys would not pay)
BF16_MAX_ERROR = 2.0  # a larger bfloat16 screening error widens the margins more than the faster GEMM saves


def head_packed_keys(H, low):
    """The keys of head ``H`` packed for the low-precision screen ``low`` (the module
    :mod:`tropix.attention._bf16` or :mod:`tropix.attention._int8`) with their rounding or quantisation errors:
    validation's packing or an earlier screen's, kept on ``H`` (``H.kbf16``, ``H.ki8``), else packed now and
    kept (and on the head's key tree, if it has one: the next call with that tree finds them there)."""
    attr = _PACKED[low.KIND]
    pk = getattr(H, attr, None)
    if not (pk is not None and pk.n == H.n_k and pk.d == H.d):
        # a head with a key tree (whose fingerprint validation matched against these keys): packed once per
        # tree, a key bank's quantised keys kept with its index (1.2 ms at 16384 x 64 for int8)
        tree = getattr(H, "tree", None)
        make = lambda: low.pack_keys(H.k, residual=True)  # noqa: E731
        pk = make() if tree is None or tree.n != H.n_k else tree._memo(("packed", low.KIND), make)
        setattr(H, attr, pk)
    return pk


_PACKED = {"bf16": "kbf16", "int8": "ki8"}  # the head attributes of the packed keys of each screening GEMM


class _Gemm:
    """The screening GEMM of one head: ``gemm(rows)`` gives the ``(keys, queries)`` float32 scores of the
    scaled queries ``rows``; ``err`` is the per-query bound on their error against the float64 scores."""

    def __init__(self, H, err, low=None):
        self.H, self.err, self.low = H, err, low
        self.packed = None  # (rows, their packed queries) when packed already (the int8 bound packs them)
        # the keys in float32 or packed in bfloat16 / int8 (by validation, prepare's pack_bf16, or here), kept
        # on the head for its other screens (auto screens a sample of queries, then the others)
        if low is None:
            k32 = getattr(H, "k32", None)
            if k32 is None:
                k32 = H.k32 = H.k.astype(np.float32)
            self.k32 = k32
        else:
            self.pk = head_packed_keys(H, low)

    def queries(self, rr):
        """The scaled queries ``rr`` in the form :meth:`block` takes."""
        if self.low is None:
            return np.ascontiguousarray(self.H.qs[rr].T, dtype=np.float32)
        if self.packed is not None and self.packed[0] is rr:
            return self.packed[1]
        return self.low.pack_queries(self.H.qs[rr])

    def block(self, qp, b0, b1, out):
        """The ``(b1 - b0, queries)`` float32 scores of keys ``b0 .. b1-1`` with the queries ``qp``, in ``out``
        (a block small enough to stay in the L2 cache for the scans that follow)."""
        if self.low is None:  # (keys, queries): the faster sgemm layout here
            return np.matmul(self.k32[b0:b1], qp, out=out)
        return self.low.scores(self.low.key_rows(self.pk, b0, b1), qp, out=out, stream=False)

    def fused(self, bias=None, rows=False):
        """The fused screen of a later block (:meth:`_FusedScreen.__call__`), or None without a low-precision kernel;
        ``bias``: the float32 bias of the keys x the chunk's queries (the kernel variant with a bias tile), or
        with ``rows`` the bias of the chunk's queries x the keys (float64 or float32), tiled block by block."""
        return None if self.low is None else _FusedScreen(self, bias, rows)

    def __call__(self, rr):
        """All scores of the queries ``rr`` at once, ``(keys, queries)``."""
        n = self.H.n_k
        out = np.empty((n, len(rr)), dtype=np.float32)
        return self.block(self.queries(rr), 0, n, out)


class _FusedScreen:
    """Screening of blocks of keys by the kernel of :func:`tropix.attention._bf16.screen_block` (or its int8
    twin, :func:`tropix.attention._int8.screen_block`): the low-precision scores are compared, counted and
    collected in the registers of the GEMM (never stored), against the maxima of the blocks before (hits at
    ``s >= smax - tauc``, a superset of what the unfused scan collects against the updated maxima; the others
    counted relative to the old maxima, then rescaled by :func:`~tropix.attention._screen_numba.absorb_block`).
    The loop over the blocks is compiled (:func:`~tropix.attention._screen_numba.fused_blocks`)."""

    def __init__(self, gemm, bias=None, rows=False):
        self.gemm = gemm
        self.rows = rows
        # the bias: a (keys, queries) float32 table (rows of unit stride), validation's copy blocked by 16
        # queries ((groups, keys, 16) float32), or float64 / float32 (queries, keys) rows whose tiles are made
        # block by block (_screen_numba.bias_block), or None
        self.bias = bias
        self.bbuf = self.stg = None
        self.hk = self.hq = self.hv = None
        self.thr = self.acc = self.bmax = None

    def run(self, qp, b0, n, step, tauc, cap, smax, cidx, cval, cnt, dun) -> int:
        """Blocks ``b0, b0 + step, ...`` up to ``n`` in one compiled loop (no Python per block); returns the
        first key not screened (``n``, or a block the caller screens the unfused way)."""
        return self._blocks(qp, b0, n, step, tauc, cap, smax, cidx, cval, cnt, dun)

    def _blocks(self, qp, b0, n, step, tauc, cap, smax, cidx, cval, cnt, dun) -> int:
        """:meth:`run` (also the maxima pass of :meth:`maxima`, which collects nothing)."""
        from . import _screen_numba

        g, bf = self.gemm, self.gemm.low
        fn = bf._compile_screen(self.bias is not None)
        c_n = len(smax)
        if fn is None or c_n == 0:
            return b0
        if self.thr is None or len(self.thr) != c_n:
            self.thr, self.acc, self.bmax = (np.empty(c_n, np.float32) for _ in range(3))
        room = max(FUSED_HITS * step * max(c_n // 64, 1), 64)
        if self.hk is None or len(self.hk) < room:
            self.hk, self.hq = np.empty(room, np.int32), np.empty(room, np.int32)
            self.hv = np.empty(room, np.float32)
        kbits, qbits = np.ascontiguousarray(g.pk.bits), np.ascontiguousarray(qp.bits)
        dp = kbits.shape[1] // 2
        w = 16 * bf._NV
        gw = max(w, bf.GROUP_BYTES // (4 * max(dp, 1)) // w * w)
        A = bf._screen_buffer()[0]
        addr = ctypes.cast(fn, ctypes.c_void_p).value
        bias, bsrc, taddr, T, stg, ldg = _NO_BIAS, _NO_SRC, 0, _NO_T, _NO_BIAS, 64
        if self.bias is not None and self.rows:  # tiles made block by block
            bsrc, taddr, T = self.bias, bf._state["bias_tile"], np.zeros(6, np.int64)
            w = min(step, n - b0)
            if self.bbuf is None or self.bbuf.shape[0] < w:
                self.bbuf = _score_buffer(w, c_n)
                # float64 rows are rounded into a staging buffer first (a row stride that is no power of two)
                self.stg = np.empty((c_n, w + 16) if bsrc.dtype == np.float64 else (0, 0), np.float32)
            bias, stg = self.bbuf, self.stg
        elif self.bias is not None and self.bias.ndim == 3:  # blocked by 16 queries: the rows of the first group
            bias, ldg = self.bias[0], (self.bias.strides[0] if self.bias.shape[0] > 1 else 0)
        elif self.bias is not None:
            bias = self.bias
        # (a hit buffer of exactly `room`: whether a block overflows does not depend on the calls before)
        return int(_screen_numba.fused_blocks(addr, A, kbits, qbits, b0, n, step, bf.KBLOCK, gw, tauc, self.thr,
                                              self.acc, self.bmax, self.hk[:room], self.hq[:room],
                                              self.hv[:room], cap, smax, cidx, cval, cnt, dun,
                                              bias, bsrc, taddr, T, stg, ldg))

    def maxima(self, qp, b0, n, out) -> bool:
        """The exact maxima per query of the screening scores of keys ``b0 .. n-1`` into ``out`` (float32), by
        one pass of the fused kernel with reference and thresholds at the largest float32 (no key is a hit,
        the counted weights are thrown away); False if the kernel refused (then ``out`` is unchanged)."""
        c_n = len(out)
        top = np.full(c_n, np.finfo(np.float32).max, np.float32)
        zero = np.zeros(c_n)
        none = np.empty((c_n, 0), dtype=np.int32)
        stop = self._blocks(qp, b0, n, n - b0, zero, 0, top, none, none.view(np.float32),
                            np.zeros(c_n, np.int64), zero.copy())
        if stop != n:
            return False
        out[:] = self.bmax  # (the maxima of the one block screened)
        return True

    def first(self, qp, f0, f1, tauc, cap, smax, cidx, cval, cnt, dun) -> int:
        """The first block ``f0 .. f1-1`` of a chunk, on a fresh state (``smax = -inf``, nothing collected or
        counted), screened in two passes of the fused kernel: its exact maxima (:meth:`maxima`), then the
        collection within ``tauc`` of them and the count of the other keys relative to them, as one block.
        The same keys are collected and the same weights counted as by ``advance_maxima`` and ``scan_block``
        on the stored scores (the counted sums differ by rounding only, within the same bound).  Returns the
        first key not screened: ``f1``, or ``f0`` if the kernel refused (hits overflowing its buffer: the
        caller then scans the block unfused; ``smax`` may already hold the block's maxima, nothing else is
        changed)."""
        if not self.maxima(qp, f0, f1, smax):
            return f0
        return self.run(qp, f0, f1, f1 - f0, tauc, cap, smax, cidx, cval, cnt, dun)


_NO_BIAS = np.zeros((0, 0), dtype=np.float32)
_NO_SRC = np.zeros((0, 0))
_NO_T = np.zeros(6, dtype=np.int64)

FIRST_PROBE = 128  # keys whose scores tell a crowded first block (see _crowded)
CROWDED = 0.5  # share of (key, query) pairs near the maxima above which the first block is not fused


def _crowded(block_scores, f0, f1, tau0, floor):
    """Whether the first ``FIRST_PROBE`` keys of the first block ``f0 .. f1-1`` have more than ``CROWDED`` of
    their finite (key, query) pairs within ``tau0`` of each query's maximum over them (flat or clustered scores): the
    fused collection pass would then emit hits for a large share of the block (slow) or overflow its hit
    buffer (wasted), so the block is scanned unfused.  A lower maximum than the block's only over-counts.
    Returns None if not crowded, else per query the number of those keys within ``floor`` (the smallest
    collection margin) of its maximum over them, from which a row of flat scores is told before the first
    block is scanned (a heuristic, as is the plan's: a row that stops is computed densely), that maximum and
    a copy of the scores."""
    from ._screen_numba import crowded_pairs

    p1 = min(f0 + FIRST_PROBE, f1)
    S = block_scores(f0, p1)
    near, finite = crowded_pairs(S, tau0)
    if not near > CROWDED * finite:  # (pairs hidden by a -inf bias count as neither)
        return None
    near = np.empty(S.shape[1], dtype=np.int64)
    crowded_pairs(S, floor, near)
    return near, S.max(axis=0), S.copy()


def _not_flat(rows, smax, floor, sample, cnt0, cval, nfirst, n, limit):
    """Which of the stopped ``rows`` of a chunk would not have stopped against their final maxima ``smax``: the
    keys that told each one (the probe's scores for a row stopped by :func:`_crowded`, ``sample = (scores,
    stopped)``; else its candidates of the first block, ``cval[r, :cnt0[r]]``, ``nfirst`` keys) within
    ``floor`` of that maximum, extrapolated to the ``n`` keys, stay within ``limit``.  A row that overflowed
    its first block's candidates tells nothing: it counts as flat."""
    keep = np.zeros(len(rows), dtype=bool)
    for t, r in enumerate(rows):
        lo = smax[r] - floor[r]
        if sample is not None and sample[1][r]:
            near, m = np.count_nonzero(sample[0][:, r] >= lo), sample[0].shape[0]
        elif cnt0[r] >= 0:
            near, m = np.count_nonzero(cval[r, :cnt0[r]] >= lo), nfirst
        else:
            continue
        keep[t] = near * (n / max(m, 1)) <= limit
    return keep


def _check_precision(precision):
    if precision not in ("auto", "int8", "bf16", "float32"):
        raise OptionError(f"screened: precision must be 'auto', 'int8', 'bf16' or 'float32', got {precision!r}")


def _int8_first(d: int, precision) -> bool:
    """Whether the screen tries the int8 GEMM first (``precision`` "auto" or "int8", the CPU has the kernel,
    ``d <= _int8.MAX_D``)."""
    if precision not in ("auto", "int8"):
        return False
    from . import _int8
    return d <= _int8.MAX_D and _int8.available()


def _screen_gemm(H, rows, precision, use_kernel):
    """The screening GEMM (``precision="auto"``): int8 (:mod:`tropix.attention._int8`, AVX512-VNNI), else
    bfloat16 (:mod:`tropix.attention._bf16`, AVX512-BF16), where the CPU has the kernel, the head has at least
    ``BF16_MIN_KEYS`` keys, ``BF16_MIN_ROWS`` queries are screened (or its keys are packed already) and the
    GEMM's error bound stays below ``BF16_MAX_ERROR``; else a float32 ``sgemm`` (its error bound
    :func:`screen_error`).  ``precision`` may force ``"int8"``, ``"bf16"`` or ``"float32"`` (a forced low
    precision the CPU lacks falls back to the next: int8, bfloat16, float32)."""
    _check_precision(precision)
    qn = H.qn[rows]
    qmax = float(qn.max(initial=0.0))
    if precision != "float32" and use_kernel:
        from . import _bf16, _int8
        # |s̃ - ŝ| <= |s̃ - s| + |s - ŝ|: the low-precision GEMM's bound plus the float64 evaluation of ŝ
        u64 = unit_roundoff(np.float64)
        g64 = (H.d + 2) * u64 / (1 - (H.d + 2) * u64)

        def bound(b, qn=qn):
            return (b + g64 * qn * H.kmax) * (1 + 1e-12)

        def enough(attr):
            packed = getattr(H, attr, None) is not None  # (then a few queries pay too)
            return H.n_k >= BF16_MIN_KEYS and (len(rows) >= BF16_MIN_ROWS or packed)

        if _int8_first(H.d, precision) and (precision == "int8" or enough("ki8")):
            pq = _int8.pack_queries(H.qs[rows], residual=True)  # (the residuals come from the packing itself)
            qres = pq.res
            pk = getattr(H, "ki8", None)
            # the decision before packing the keys: their residuals taken as relatively those of the queries
            # over 256 (the keys carry two codes of 8 bits)
            kres = pk.resmax if pk is not None else H.kmax * float(np.max(qres / np.maximum(qn, 1e-300))) / 256
            if precision == "int8" or float(bound(_int8.error_bound(qn, qres, H.kmax, kres, H.d)).max(
                    initial=0.0)) <= BF16_MAX_ERROR:
                G = _Gemm(H, None, _int8)
                G.err = bound(_int8.error_bound(qn, qres, H.kmax, G.pk.resmax, H.d))
                G.packed = (rows, pq)
                return G
        forced = precision == "bf16" or (precision == "int8" and not _int8_first(H.d, precision))
        if _bf16.available() and (forced or enough("kbf16")):
            # the decision: the largest a-priori bound, that of the longest query (every term grows with |q|)
            if forced or float(bound(_bf16.error_bound(qmax, H.kmax, H.d), qmax)) <= BF16_MAX_ERROR:
                G = _Gemm(H, None, _bf16)
                if G.pk.resmax is not None:  # the bound from the actual rounding errors: about half as large
                    # (error_bound_residual is never above error_bound)
                    G.err = bound(_bf16.error_bound_residual(qn, _bf16.residual_norms(H.qs[rows]), H.kmax,
                                                             G.pk.resmax, H.d))
                else:
                    G.err = bound(_bf16.error_bound(qn, H.kmax, H.d))
                return G
    # largest entries for the underflow term: a vector's entries are at most its norm
    return _Gemm(H, screen_error(qn, H.kmax, H.kmax, qmax, H.d))


def _fused_kernel(q, k, precision) -> bool:
    """Whether a fused low-precision screen (int8 or bfloat16) will likely run on these inputs: a single head
    of NumPy keys large enough, the CPU has a kernel (validation then prepares for it)."""
    if precision == "float32" or not (isinstance(q, np.ndarray) and isinstance(k, np.ndarray)):
        return False
    if q.ndim != 2 or k.ndim != 2 or k.shape[0] < BF16_MIN_KEYS or q.shape[0] < BF16_MIN_ROWS:
        return False
    from . import _bf16
    return _int8_first(k.shape[1], precision) or _bf16.available()


def _packs_int8(q, k, precision) -> bool:
    """Whether validation should pack the keys for the int8 screen (as :func:`_fused_kernel`, and the int8
    GEMM is tried first)."""
    return _fused_kernel(q, k, precision) and _int8_first(np.shape(k)[-1], precision)


def _packs_bf16(q, k, precision) -> bool:
    """Whether validation should pack the keys for the bfloat16 screen (:func:`_screen_gemm` will likely take
    it: as :func:`_fused_kernel`, and the int8 GEMM is not tried first)."""
    return (_fused_kernel(q, k, precision) and precision != "int8"
            and not _int8_first(np.shape(k)[-1], precision))


def screen_rows(H, eps, rows, *, threshold=True, cap=None, qchunk=None, kblock=4096, width=0.25,
                share=0.75, use_kernel=True, abort=1.0, precision="auto"):
    """Screened evaluation of the queries ``rows`` of one head: ``(out, bound, support, kept, evals)``.

    ``H`` provides ``qs`` (scaled queries), ``k``, ``v``, ``vn``, ``vmax``, ``qn``, ``kmax``, ``rho``,
    ``extra`` (or None), ``n_k``, ``d``.  A key-padding mask (or keys hidden by a causal mask from every
    query) is screened on the head of the visible keys (:func:`_visible_keys_only`).  Rows that cannot be
    screened (more than ``cap`` candidates, default ``max(n_k // 4, 64)``), or whose candidates among the
    first block of keys extrapolate to more
    than ``abort * n_k / KEY_COST`` (rescoring them would cost more than a dense row: they stop being
    screened after the first block), get an infinite bound: the caller recomputes them densely.
    Queries are screened in chunks of ``qchunk`` (default: ``qchunk * n_k <= 2**22``): one ``sgemm`` gives
    the chunk's scores with every key (memory ``O(qchunk * n_k)``) and their row maxima; the collection then
    runs over blocks of ``kblock`` keys, the first of which sets the collection margins;
    ``width`` is the band width of the left-out mass bound.
    ``evals`` counts the float64 score evaluations (the float32 screen scores every key once).
    """
    G, idx = _visible_keys_only(H)
    kw = dict(threshold=threshold, cap=cap, qchunk=qchunk, kblock=kblock, width=width, share=share,
              use_kernel=use_kernel, abort=abort, precision=precision)
    missed = []
    out, bound, support, kept, evals = _screen_rows(G, eps, rows, missed=missed, **kw)
    if missed:  # rows stopped against a maximum far below their true one: screened again against the latter
        mr = np.concatenate([m[0] for m in missed])
        o2, b2, s2, k2, e2 = _screen_rows(G, eps, mr, hint=np.concatenate([m[1] for m in missed]), **kw)
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        pos = order[np.searchsorted(rows[order], mr)]
        out[pos], bound[pos], support[pos] = o2, b2, s2
        # their keys in their places (a stopped row kept none): `kept` stays in the order of `rows`
        c = np.diff(kept.offsets)
        c[pos] = np.diff(k2.offsets)
        keys = np.insert(kept.keys, np.repeat(kept.offsets[pos], np.diff(k2.offsets)), k2.keys)
        kept, evals = _RowKept(kept.rows, keys, np.concatenate([[0], np.cumsum(c)]).astype(np.int64)), evals + e2
        H.rescreened = getattr(H, "rescreened", 0) + len(mr)  # (for screen_evals)
    return out, bound, support, _kept_in(kept, idx), evals


def screen_evals(H, n_rows: int) -> int:
    """The screening scores of ``n_rows`` queries of head ``H`` screened by :func:`screen_rows`: every key per
    query, twice for the queries screened again (see :data:`MISS_GAP`)."""
    return (n_rows + getattr(H, "rescreened", 0)) * H.n_k


MISS_GAP = 2.0
"""A query the screen stopped after its first block (its candidates there extrapolated to too many keys) is
screened again when its maximum over all keys, which the fused kernel keeps tracking, turns out this much
above the maximum it was stopped against: its first block (or probe) missed the keys near its true maximum
(e.g. tight clusters of keys, rarer than one per first block), so its estimate was far too large.  The second
screen starts from that maximum (``hint`` of :func:`_screen_rows`)."""


def _screen_rows(H, eps, rows, *, threshold, cap, qchunk, kblock, width, share, use_kernel, abort, precision,
                 hint=None, missed=None):
    """:func:`screen_rows` on a head whose extra term, if any, is not a key-padding mask.

    ``hint``: per row a screening score of it (its maximum over all keys, from an earlier screen) that starts
    its running maximum (any reference is valid: the weights are counted relative to the running maximum); the
    first block then goes the unfused way.  ``missed``: a list that receives, on the fused path, ``(rows,
    maxima)`` of the rows stopped against a maximum ``MISS_GAP`` below their final one (see
    :data:`MISS_GAP`)."""
    rows = np.asarray(rows, dtype=np.int64)
    nr, n = len(rows), H.n_k
    cap = min(max(n // 4, 64) if cap is None else int(cap), n)
    limit = min(cap, max(abort * n / KEY_COST, 64))  # extrapolated candidates above which a row stops
    out = np.zeros((nr, H.v.shape[1]))
    bound = np.full(nr, np.inf)
    support = np.zeros(nr, dtype=np.int64)
    empty = _RowKept(rows, np.zeros(0, dtype=np.int64), np.zeros(nr + 1, dtype=np.int64))
    if nr == 0 or n == 0:
        return out, np.zeros(nr), support, empty, 0
    qmax = H.qn[rows].max(initial=0.0)
    # also a scaled query or a key beyond float32's range on its own (|q| = 1e150, |k| = 1e-150): its float32
    # rounding is inf, the screening scores NaN, and no key would be collected (the row would pass as fully masked)
    if qmax > _F32_LIMIT or H.kmax > _F32_LIMIT or qmax * H.kmax > _F32_LIMIT:  # (no overflow in the product)
        return out, bound, support, empty, 0
    rho_rel = H.rho[rows] / H.vmax if H.vmax > 0 else np.zeros(nr)
    beta = np.broadcast_to(pruning_budget(eps, rho_rel) if H.vmax > 0 else np.zeros(nr), (nr,))
    kern = _kernels() if use_kernel else None
    advance, scan, plan, finalize, finish = (kern if kern is not None else
                                             (_advance_maxima_numpy, _scan_block_numpy, _plan_numpy,
                                              _finalize_numpy, None))
    if qchunk is None:  # the scores are computed block by block: memory O(qchunk * (kblock + cap))
        qchunk = 256
    gemm = _screen_gemm(H, rows, precision, use_kernel)
    err = gemm.err
    u64 = unit_roundoff(np.float64)
    ew = _band_weights(float(width))
    # a causal term alone is no extra term for the screen: per chunk of queries the hidden keys are cut off
    # (see the first block below), and the cores never hold a hidden key
    causal = H.extra is not None and getattr(H, "causal_only", False)
    masked = H.extra is not None and not causal
    # a bias alone (no mask, not causal) is screened on float32 scores plus its float32 rounding, through the
    # fused kernel's variant with a bias tile (see _bias_table); other extra terms take the masked path
    table = _bias_table(H) if (masked and kern is not None) else None
    biased = table is not None
    masked = masked and not biased
    keys, counts = [], []
    for a in range(0, nr, qchunk):
        rr = rows if (a == 0 and nr <= qchunk) else rows[a:a + qchunk]  # (the whole: its packed queries reused)
        sl = slice(a, a + len(rr))
        c_n = len(rr)
        e = err[sl].copy()
        if masked:
            # the float64 addition of the extra term errs by at most u64 |s̃ + b| <= u64 (|q| kmax + e + |b|);
            # a finite extra term is a bias entry (masks only add -inf), so |b| <= H.bmax
            e = e + 2 * u64 * (H.qn[rr] * H.kmax + e + H.bmax) * (1 + 1e-6)
        if biased:
            e = _bias_error(e, H.qn[rr] * H.kmax, H.bmax)
            btile = _bias_columns(table, rr, H)
            # validation's query-blocked float32 copy and the (keys, queries) tables are read by the kernel as
            # they are; bias rows (queries x keys) are tiled block by block
            tiles = None if (btile.ndim == 3 or table is getattr(H, "bias_t32", None)) else btile
        bsl = np.ascontiguousarray(beta[sl])
        nfull = np.full(c_n, float(n))
        with np.errstate(divide="ignore"):
            # clamped at 0: a budget beta > 8 n (eps near 2) would make the margin negative (nothing collected)
            tau = np.where(bsl > 0, np.maximum(np.log(8.0 * nfull / np.where(bsl > 0, bsl, 1.0)), 0.0), 1e300) + 2 * e
        nfin = np.zeros(c_n, dtype=np.int64) if masked else np.full(c_n, n, dtype=np.int64)
        if biased:  # the keys each query sees (the scan counts none: -inf keys are never collected)
            nfin = np.ascontiguousarray(H.bias_nfin[rr], dtype=np.int64)
        cidx = np.empty((c_n, cap), dtype=np.int32 if n < 2**31 else np.int64)
        cval = np.empty((c_n, cap), dtype=np.float64 if masked else np.float32)
        cnt = np.zeros(c_n, dtype=np.int64)
        dun = np.zeros(c_n)
        smax = np.full(c_n, -np.inf, dtype=np.float64 if masked else np.float32)
        if hint is not None:
            smax[:] = hint[sl]
        # one pass over the keys, block by block (each block's scores stay in the L2 cache): the running
        # maximum of each query is updated first (the mass counted so far is rescaled to it), then the block is
        # scanned against it.  The first block collects every key within tau of the maximum; its band
        # histogram then sets each query's (smaller) collection margin tauc for the other blocks, whose other
        # keys are only counted, each by a float32 at most 6.2 % above its weight (see _screen_numba.scan_block).
        # Keys collected against a lower running maximum than the final one are only extra candidates:
        # finalize_rows bins them against the final maximum.
        # the floor of the collection margin: a later block may hold a cluster near a higher maximum that the
        # first block did not show; below the floor even FLOOR_KEYS such keys would exhaust the budget
        with np.errstate(divide="ignore"):
            # (never negative: the maximum key itself is always collected)
            floor = np.minimum(np.maximum(np.log(FLOOR_KEYS / np.where(bsl > 0, bsl, 1e-300)), 0.0), tau)
        tau0 = np.minimum(tau, floor + FIRST_EXTRA)  # the first block's margin
        tauc = tau0.copy()
        step = int(min(max(BLOCK_SCORES // max(c_n, 1), 256), kblock))  # keys per block (L2-resident scores)
        qp = gemm.queries(rr)
        fused = None
        if use_kernel and not masked and kern is not None:
            fused = (gemm.fused(btile, tiles is not None) if biased else gemm.fused())
        # a small first block; unfused, the whole of a small head (its scores are stored once anyway), while the
        # fused kernel screens the first block in two passes (see _FusedScreen.first)
        first = min(n, kblock if (n <= 2 * kblock and fused is None) else max(kblock // FIRST_DIV, 256))
        buf = _score_buffer(max(first, step) + (c_n if causal else 0), c_n)
        if fused is not None:  # its scores are never stored: the blocks only pace the reference maxima
            step = max(step, FUSED_KEYS)
        # the first block [f0, f1), then the other keys [0, f0) and [f1, n_c)
        n_c, f0, f1 = n, 0, first
        rmin = int(rr.min())
        if causal:
            # keys beyond the chunk's last query are hidden from all of it; the first block ends there and
            # holds the diagonal part (each query's hidden keys set to -inf: neither collected nor counted)
            # and the `first` keys before it, which every query of the chunk sees (its sample for the plan);
            # the keys before those are visible to every query too (the unmasked, fused path).  (Queries
            # spread over more keys than the buffer holds: the first ones may see no key of the first block,
            # their maxima stay -inf and the blocks before it go the unfused way.)
            n_c = min(int(rr.max()) + 1, n)
            f1 = n_c
            f0 = max(0, n_c - buf.shape[0], min(rmin + 1, n_c) - first)
            nfin = np.minimum(rr + 1, n).astype(np.int64)  # the keys each query sees

        def block_scores(b0, b1):
            Sb = gemm.block(qp, b0, b1, buf[:b1 - b0])
            if masked:
                Sb = Sb.astype(np.float64) + H.extra(rr, np.arange(b0, b1)).T
            elif biased:  # the fused kernel's scores: fl32(s + fl32(b))
                if tiles is not None:
                    Sb += btile[:, b0:b1].T.astype(np.float32)
                elif btile.ndim == 3:  # groups of 16 queries
                    Sb += _bf16_mod().blocked_bias_table(btile[:, b0:b1], c_n)
                else:
                    Sb += btile[b0:b1]
            elif causal and b1 - 1 > rmin:  # some key of the block hidden from some query
                Sb[np.arange(b0, b1)[:, None] > rr[None, :]] = -np.inf
            return Sb

        g0 = f0  # the first key of the first block not screened yet
        qref = sample = None
        if fused is not None and not causal and FIRST_FUSED and hint is None:
            crowd = _crowded(block_scores, f0, f1, tau0, floor)
            if crowd is None:
                g0 = fused.first(qp, f0, f1, tauc, cap, smax, cidx, cval, cnt, dun)
            else:  # flat scores: a row whose probe extrapolates to more keys than the abort limit stops here
                near, pmax, pscores = crowd
                stop = near * (n_c / min(FIRST_PROBE, f1 - f0)) > limit * EST_SLACK
                cnt[stop] = -1
                qref = np.where(stop, pmax, np.inf).astype(smax.dtype)  # (stopped against the probe's maxima)
                sample = pscores, stop  # (the keys that told it)
        if g0 < f1 and (cnt >= 0).any():  # (the fused kernel refused a block: the rest of the first block unfused)
            Sb = block_scores(g0, f1)
            advance(Sb, smax, dun)
            scan(Sb, 0, f1 - g0, g0, tauc, cap, masked, smax, nfin, cidx, cval, cnt, dun)
        # the other keys; with causal the fused kernel (no mask) only takes the keys every query sees
        vis = min(f0, rmin + 1) if causal else f0
        rest = [(a0, a1, fz) for a0, a1, fz in ((0, vis, True), (vis, f0, False), (f1, n_c, True)) if a1 > a0]
        if rest:
            est = np.zeros(c_n)
            plan(smax, cval, cnt, tau0, float(width), float(share), bsl, n_c / (f1 - f0), dun,
                 PLAN_MARGIN, tauc, est, ew)
            np.maximum(tauc, floor, out=tauc)
            # rows that would collect too many keys would cost more than dense rows: they stop here
            quit_ = (cnt < 0) | (est > limit * EST_SLACK)
            cnt0 = cnt.copy()  # (the first block's candidates of the rows stopped here stay in cval)
            cnt[quit_] = -1
            if quit_.all():
                rest = []
        s_quit = None
        if missed is not None and fused is not None and rest:  # the maxima the stopped rows were stopped against
            s_quit = smax.copy() if qref is None else np.minimum(smax, qref)
        for a0, a1, fz in rest:
            b0 = a0
            while b0 < a1:
                if fused is not None and fz:
                    # screened without storing the scores (the bfloat16 kernel fused with the scan), block
                    # after block, until the end or a block whose hits overflow (that one is screened below)
                    b0 = fused.run(qp, b0, a1, step, tauc, cap, smax, cidx, cval, cnt, dun)
                    if b0 >= a1:
                        break
                b1 = min(b0 + step, a1)
                Sb = block_scores(b0, b1)
                advance(Sb, smax, dun)
                scan(Sb, 0, b1 - b0, b0, tauc, cap, masked, smax, nfin, cidx, cval, cnt, dun)
                b0 = b1
        if s_quit is not None:
            gone = np.flatnonzero((cnt < 0) & (smax > s_quit + MISS_GAP))
            if len(gone):
                gone = gone[_not_flat(gone, smax, floor, sample, cnt0, cval, f1 - f0, n_c, limit * EST_SLACK)]
                missed.append((rr[gone], smax[gone].copy()))
        ncore = np.zeros(c_n, dtype=np.int64)
        dtil = np.zeros(c_n)
        finalize(smax, nfin, cidx, cval, cnt, dun, e, tau, bsl, float(width), float(share), ncore, dtil, ew)
        core = cidx
        o = np.zeros((c_n, H.v.shape[1]))
        Zr, Dr, VDr = np.zeros(c_n), np.zeros(c_n), np.zeros(c_n)
        sp = np.zeros(c_n, dtype=np.int64)
        smax64 = smax.astype(np.float64)
        if biased:
            from ._rescore_numba import finish_rows_by_key_bias

            finish_rows_by_key_bias(rr, H.qs, H.k, H.v, H.vn, core, ncore, smax64, dtil, H.vmax, nfin, bsl,
                                    bool(threshold), o, Zr, Dr, VDr, sp, H.bias2d)
        elif finish is not None and not masked:
            finish(rr, H.qs, H.k, H.v, H.vn, core, ncore, smax64, dtil, H.vmax, nfin, bsl, bool(threshold),
                   o, Zr, Dr, VDr, sp)
        else:
            cx = None
            if masked:
                cx = np.zeros((c_n, cap))
                for t in range(c_n):
                    c = max(int(ncore[t]), 0)
                    if c:
                        cx[t, :c] = H.extra(rr[t:t + 1], core[t, :c])[0]
            _finish_numpy(rr, H.qs, H.k, H.v, H.vn, core, ncore, smax64, dtil, H.vmax, nfin, bsl, threshold, cx,
                          o, Zr, Dr, VDr, sp)
        # Z_lo = 0 is legitimate (every core key thresholded away: the bound is then V_D + |õ|); the rows flagged
        # Z < 0 (not screened) get an infinite bound, those with an empty core (every key hidden) 0
        if kern is not None:
            b = np.empty(c_n)
            _row_bounds()(o, Zr, Dr, VDr, ncore, H.rho[rr], b)
        else:
            b = _row_bounds_numpy(o, Zr, Dr, VDr, ncore, H.rho[rr])
        out[sl], bound[sl], support[sl] = o, b, sp
        if kern is not None:
            from ._screen_numba import core_keys

            keys.append(core_keys(core, ncore))
        else:
            keys.extend(core[t, :max(int(c), 0)].astype(np.int64) for t, c in enumerate(ncore))
        counts.append(np.maximum(ncore, 0))
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts) if counts else [])]).astype(np.int64)
    kept = _RowKept(rows, np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64), offsets)
    evals = int(offsets[-1])
    return out, bound, support, kept, evals


def _bias_source(H) -> bool:
    """Whether the screen takes the bias tiles of head ``H`` from its float64 rows block by block (a full
    ``(n_q, n_k)`` bias of unit column stride, the bias-tile transposer compiled) rather than from a table."""
    b = H.bias2d
    if b.shape != (H.n_q, H.n_k) or b.strides[1] != 8:
        return False
    from . import _bf16
    return "bias_tile" in _bf16._state or (_bf16._compile_screen(True) is not None and "bias_tile" in _bf16._state)


def _bias_table(H):
    """The bias of a head whose only extra term is a bias (no mask, not causal) as a float32 ``(n_k, n_q)``
    table, keys x queries as the screen lays out its scores (each entry rounded to nearest, ``-inf`` kept),
    built once per head (:func:`tropix.attention._screen_numba.bias_table`); None for other heads, and for
    biases beyond ``_F32_LIMIT`` (float32 would overflow: the masked path)."""
    b = getattr(H, "bias2d", None)
    if b is None or not getattr(H, "bias_only", False) or not H.bmax <= _F32_LIMIT:
        return None
    if _bias_source(H):  # the rows (queries x keys): _bias_columns takes them, the tiles are made per block
        b32 = getattr(H, "bias32", None)  # validation's float32 copy: blocked by 16 queries, or rows
        ok = b32 is not None and b32.shape in (((H.n_q + 15) // 16, H.n_k, 16), (H.n_q, H.n_k))
        return b32 if ok else b
    T = getattr(H, "bias_t32", None)
    if T is None and 1 in b.shape:  # a bias per key or per query: the table is that vector repeated
        with np.errstate(over="ignore"):
            T = np.ascontiguousarray(np.broadcast_to(b.T.astype(np.float32), (H.n_k, H.n_q)))
        H.bias_t32 = T
    elif T is None:
        from ._screen_numba import bias_table

        T = np.empty((H.n_k, H.n_q), dtype=np.float32)
        cnt, am = np.empty(H.n_q, dtype=np.int64), np.empty(H.n_q)
        bias_table(np.broadcast_to(b, (H.n_q, H.n_k)), T, cnt, am)
        H.bias_t32 = T
    return T


def _bf16_mod():
    from . import _bf16
    return _bf16


def _bias_columns(table, rr, H):
    """The bias of the queries ``rr``: columns of the float32 table (keys x queries), the groups of 16 queries
    of validation's query-blocked float32 copy (``rr`` consecutive from a multiple of 16), or rows of the bias
    (queries x keys, float64 or validation's float32 rows: :func:`_bias_source`); views when ``rr`` are
    consecutive."""
    r0 = int(rr[0])
    run = int(rr[-1]) - r0 + 1 == len(rr) and bool(np.all(np.diff(rr) == 1))
    if table.ndim == 3:
        if run and r0 % 16 == 0:
            return table[r0 // 16:(r0 + len(rr) + 15) // 16]
        table = H.bias2d  # (other queries: their float64 rows, tiled block by block)
    if table.shape == (H.n_q, H.n_k) and table is not getattr(H, "bias_t32", None):
        return table[r0:r0 + len(rr)] if run else np.ascontiguousarray(table[rr])
    return table[:, r0:r0 + len(rr)] if run else np.ascontiguousarray(table[:, rr])


def _bias_error(e, qk, bmax):
    """The screening error with a bias (see the module docstring, "Biases"): the fused kernel's score
    ``σ = fl32(s̃ + fl32(b))`` against the float64 score ``fl64(ŝ + b)`` of the rescoring, for screening
    error ``e`` of ``s̃``, ``qk = |q| max|k|`` and ``bmax`` the largest finite ``|b|``."""
    u32, u64 = unit_roundoff(np.float32), unit_roundoff(np.float64)
    return e + ((u32 + u64) * (qk + 2 * e + 2 * bmax) + u32 * bmax) * (1 + 1e-6) + 2.0**-124


def _padding(H):
    """The visible keys (boolean) of a head whose only extra term is a key-padding mask (the same keys masked
    for every query, no bias, not causal), else None."""
    ko = H.key_only
    if H.extra is None or ko is None or H.causal:
        return None
    vis = ko > -np.inf
    return None if np.any(ko[vis] != 0) else vis  # (a finite nonzero entry: a key-only bias, not a mask)


def unmasked_path(H) -> bool:
    """Whether the screen of head ``H`` runs on its unmasked (fused) path: no extra term, a key-padding mask
    (:func:`_visible_keys_only`) or a causal term alone; other masks and biases take the slower masked path."""
    return H.extra is None or getattr(H, "causal_only", False) or _padding(H) is not None


def _visible_keys_only(H):
    """A head whose only extra term is a key-padding mask (:func:`_padding`) as the head of its visible keys
    without an extra term, and those keys' indices; a causal head with more keys than queries as the head of
    its first ``n_q`` keys (the others are hidden from every query), indices unchanged; else ``(H, None)``.
    The screen then takes its fast path (the fused kernel, the key-ordered rescoring).  Norms and the
    rounding bound ``rho`` stay those of the whole head (``vmax`` the largest of all values, ``rho`` computed
    for all keys: an upper bound for fewer), so the tolerance means what it does without the mask."""
    if getattr(H, "causal_only", False) and H.n_k > H.n_q:  # keys past the last query are hidden from all
        G = copy.copy(H)
        G.k, G.v, G.vn = H.k[:H.n_q], H.v[:H.n_q], H.vn[:H.n_q]
        _packed_rows(H, G, slice(0, H.n_q))
        G.n_k = H.n_q
        return G, None
    vis = _padding(H)
    if vis is None:
        return H, None
    idx = np.flatnonzero(vis)
    G = copy.copy(H)
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # one run of visible keys: views
        G.k, G.v, G.vn = (x[idx[0]:idx[-1] + 1] for x in (H.k, H.v, H.vn))
        _packed_rows(H, G, slice(idx[0], idx[-1] + 1))
    else:  # (np.compress: a third of the time of fancy indexing here)
        G.k, G.v, G.vn = (np.compress(vis, x, axis=0) for x in (H.k, H.v, H.vn))
        _packed_rows(H, G, vis)
    G.n_k = len(idx)
    G.extra = G.key_only = None
    return G, idx


def _packed_rows(H, G, sel):
    """On ``G``, the keys ``sel`` (a slice or a boolean mask) of the head's prepacked bfloat16 and int8 keys (or
    None); the largest rounding error of all keys bounds that of these."""
    for attr in _PACKED.values():
        pk = getattr(H, attr, None)
        if pk is not None:
            pk = type(pk)(pk.bits[sel] if isinstance(sel, slice) else np.compress(sel, pk.bits, axis=0),
                          pk.d, pk.resmax)
        setattr(G, attr, pk)


def _kept_in(kept, idx):
    """Kept keys (a :class:`_RowKept` or ``(rows, keys)`` pairs) of a head of the keys ``idx`` (see
    :func:`_visible_keys_only`) as indices of the whole head."""
    if idx is None:
        return kept
    if isinstance(kept, _RowKept):
        return _RowKept(kept.rows, idx[kept.keys], kept.offsets)
    if isinstance(kept, _Prefixed):
        r, kk = kept.first
        return _Prefixed((r, idx[np.asarray(kk, dtype=np.int64)]), _kept_in(kept.rest, idx))
    return tuple((r, idx[np.asarray(kk, dtype=np.int64)]) for r, kk in kept)


def screened(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, threshold: bool = True,
             cap: int | None = None, precision: str = "auto", check: bool = False) -> AttentionResult:
    """Certified attention by float32 screening of every score and exact float64 softmax of the survivors.

    See the module docstring for the algorithm and the certificate.  Needs no key tree, and pays off
    whatever the geometry of the keys when the scores are peaked (few keys within ``log(32/β)`` or so of
    the maximum); on flat scores the rows stop after the first key block and are computed densely.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense` (leading batch/head dims are looped over).
    eps : float
        ``|o_i - o_i^dense|_2 <= eps * max_j |v_j|_2`` for every row, guaranteed; 0 = exact.
    threshold : bool
        Also drop selected keys of negligible weight while the budget allows (smaller support).
    cap : int, optional
        Candidates per query above which the row is computed densely (default ``max(n_k // 4, 64)``).
    precision : {"auto", "int8", "bf16", "float32"}
        The screening GEMM.  ``"int8"``: every query and key quantised to int8 with its own scale, exact
        integer products (:mod:`tropix.attention._int8`; needs a CPU with AVX512-VNNI), with a screening
        error of about ``1.4 % |q| max|k|`` at d = 64 (from the actual quantisation residuals);
        ``"bf16"``: a bfloat16 GEMM with float32 accumulation (:mod:`tropix.attention._bf16`; needs
        AVX512-BF16), with an error of up to ``2^-7 |q| max|k|`` (about half of it from the actual rounding
        errors of the operands); a forced precision the CPU lacks falls back to the next (int8, bfloat16,
        float32).  ``"auto"`` takes int8, else bfloat16, where available for at least ``BF16_MIN_KEYS`` keys
        and ``BF16_MIN_ROWS`` queries when the error is at most ``BF16_MAX_ERROR``; a larger error widens
        the margins.  The certificate accounts for each.
    check : bool
        Also compute dense attention and raise BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult
        ``method == "screened"``; ``kept_keys(i)`` are the keys scored in float64 for query ``i``;
        ``counters["score_evals"]`` counts float64 scores, ``counters["screen_evals"]`` float32 ones.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = 10 * rng.normal(size=(64, 32)), rng.normal(size=(4096, 32)), rng.normal(size=(4096, 8))
    >>> r = screened(q, k, v, eps=1e-3, check=True)
    >>> bool(np.all(r.relative_bound <= 1e-3)), int(np.median(r.support)) < 40
    (True, True)
    """
    _check_precision(precision)
    if cap is not None:
        cap = check_count(cap, "cap", "screened")
    P = prepare(q, k, v, mask, bias, scale, causal, fname="screened", pack_bf16=_packs_bf16(q, k, precision),
                pack_i8=_packs_int8(q, k, precision),
                pack_bias=mask is None and not causal and _fused_kernel(q, k, precision))
    eps = check_eps(eps, "screened")

    def fn(arrays, hidx, tree):
        H = _ScreenHead(P, arrays, hidx)
        H, idx = _visible_keys_only(H)
        H = _mask_as_bias(H)  # (a mask left: it depends on the query)
        rows = np.arange(H.n_q)
        out, bound, support, kept, evals = screen_rows(H, eps, rows, threshold=threshold, cap=cap,
                                                       precision=precision)
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        counters = {"score_evals": evals + nfb * H.n_k, "bound_evals": 0,
                    "screen_evals": screen_evals(H, H.n_q),
                    "dense_fallback_rows": nfb, "_rho": H.rho}
        return out, bound, support, _kept_in(kept, idx), counters, H.vmax, "screened"

    return _run_per_head(P, eps, "screened", check, None, fn)
