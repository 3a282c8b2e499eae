"""Automatic choice between dense and certified sparse attention, from cheap statistics of the scores.

``auto`` never gives up the bound: whichever path it takes, the result carries the certified per-row bound
``<= eps * max|v|``.  It takes the sparse path only when pruning is likely to pay:

1. few keys (``n_k < min_keys``, 2048) or little work (``n_q n_k (d + d_v) < min_work`` multiply-adds per
   head, 2^25, about 2.5 ms of dense attention: the statistics below would cost too large a part of it;
   with a causal term ``n_k`` counts the keys up to the last query only): dense (decision 0);
2. few queries (``n_q < min_queries_for_tree``) and no prebuilt key tree (building one costs about as much
   as dense attention for a few hundred queries), or a prebuilt tree over fewer than ``4 * min_keys`` keys
   (the block walk's own sample would cost more than what follows, and pays less often), or a causal or
   query-dependent mask or bias whatever the queries and tree (on a query-dependent bias the compiled walk
   measured 0.42x dense against the screen's 0.32x; on a causal mask alone 0.37x dense on clustered keys
   against the screen's 0.33x, and 1.2x on i.i.d. keys against 0.29x) -- but for a mask of query and key
   alone with a prebuilt tree, which the compiled walk reads as it is (step 4; 0.23x dense on the
   benchmark's clustered keys at T = 0.25, against the screen's 0.65x): screening
   (:mod:`.screen`) or dense, from ``PROBE_QUERIES`` = 8 sampled queries per head (16 above 8192 keys).
   Up to 8192 keys, their scores with ``max(FLAT_KEYS, n_k / 32)`` sampled keys first (``FLAT_KEYS`` =
   128): for the median of them half the keys within the margin of step 3 (flat scores, the usual case of
   real heads) means dense (decision 2) at once.
   Otherwise their exact float64 scores with a sample of ``max(1024, n_k / 8)`` keys predict what the
   screen would do with each, by its own rules (keys within its collection margin, more than a quarter of
   the keys: the query is given up and computed densely; else the core of top bands of width 0.25 whose
   left-out mass bound fits its budget, with the query's screening error for the GEMM it would use; one
   compiled pass per query): a given-up query costs ``GIVEUP_COST`` dense rows, a screened one
   ``KEY_COST`` dense scores per core key, plus the fixed cost of the screen (:func:`_screen_fixed_cost`,
   relatively larger for fewer keys and smaller ``d``).  If this estimate is at most ``7 * max_work`` of
   dense in every head, every query is screened (decision 5), else dense (decision 2).  Measured on the
   benchmark inputs (2048-16384 keys): the estimate is within about 0.1 of the screen's measured cost
   relative to dense (the key sample errs towards dense), and costs 0.2 ms or so at 4096 keys.  A
   key-padding mask (estimated on each head's visible keys) or a causal term alone is screened on the
   screen's unmasked path; a bias alone (no mask, not causal) is estimated with the sampled queries' bias
   (plus ``BIAS_COST`` per query) and screened on the fused path (the bias read by the kernel) if it pays; so
   is any other mask without a causal term (a query-dependent mask, or a mask with a bias), as one bias,
   ``-inf`` where masked (:func:`~tropix.attention.region_sparse._mask_as_bias`; measured on clustered keys
   at T = 0.25, 16384 keys: 0.32 of dense with a random mask of query and key, 0.44 with a bias as well,
   both dense before); a causal term with a mask or a bias goes dense (decision 2);
3. (many queries, no prebuilt tree) a sample of ``sample`` keys estimates, for a sample of ``sample``
   queries, the fraction of keys within the margin ``τ = log(n_k / β)`` of the sampled maximum (an
   over-estimate of the τ-active fraction, since the sampled maximum is at most the true one); if the median
   over those queries exceeds ``max_support``: dense (decision 1); else a key tree is built;
4. the region-sparse plan (block bounds, no exact scores yet) of a sample of 16 queries, then of all
   queries, gives the planned number of exact score evaluations; if it exceeds ``max_work`` times dense
   (planning and grouping cost about as much again): dense; else the plan is executed.
   With the compiled kernel (NumPy float input; no extra term or a key-only one) the sample of 16 queries is instead
   run by the kernel itself (its results are kept; half of it first, and the other half only if the kernel
   certified one of the first 8: keys the block bounds cannot use defeat all of them): queries that hit the
   kernel's key cap count as dense
   rows, kernel keys as ``KERNEL_KEY_COST`` dense score evaluations, and if that estimate exceeds
   ``7 * max_work`` of dense, the capped sample queries are screened instead (a screened query counted as
   ``SCREEN_ROW_COST`` dense rows plus ``KEY_COST`` dense scores per key it rescores, a failed one as a
   dense row more: :mod:`tropix.attention.screen`); if the estimate is still above: dense;
   else the other queries follow, with the capped ones screened if that was needed (decision 6); when at
   least ``SCREEN_ALL_SHARE`` (half) of the sample was capped, the other queries are all screened without a
   block walk (keys with no geometry the tree can use, e.g. i.i.d. Gaussian keys, defeat the walk of nearly
   every query; the probe's vector of 16 queries is filled with other queries, screened with it).
   When the estimate is within ``7 * max_work`` but the walk gives up on enough sampled queries that
   :func:`_walk_estimate` (a capped query costing ``WALK_CAPPED_COST`` = 1.5 dense rows: its walk and a dense
   row computed on its own) reaches ``SCREEN_CONSIDER`` (0.3) of dense, the capped sample queries and the
   other sampled ones are screened together (one vector of 16), and if the screen's estimate over the sample
   is at most ``SCREEN_PREFERENCE`` (0.9) of the walk's, every query is screened (decision 6, method
   ``"screened"``; measured on clustered keys at T = 0.25, d = 32, 16384 keys, where the walk gives up on 70
   of 256 queries: 0.57 -> 0.43-0.51 of dense).  With a mask of query and key the screen takes the mask as
   one bias, made for the rows it screens only (the probe's first: :func:`~tropix.attention.region_sparse.
   _mask_as_bias` with ``rows``), and is priced ``MASK_BIAS_COST`` dense rows per query more.

The statistics cost a few percent of dense attention, so on inputs where pruning does not pay ``auto`` stays
within a small factor of dense (the benchmark ``benchmarks/bench_attention.py`` measures it: at most about
1.15 on every row, flat ones included, and 0.4-0.75 of dense at 4096 keys where the screen pays).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._array import to_numpy
from ..errors import ShapeError
from .bounds import pruning_budget, rounding_bound
from .dense import _dense, _rownorm, as_float64, dense_rounding_bound, verify_against_dense
from ..tropical._args import check_real
from ._inputs import (Prepared, bias_row_stats, check_count, check_eps, check_tree, extra_numpy, prepare,
                      visible_counts)
from .region_sparse import (_SCREEN_CAP, _cast_floor, _execute, _fallback_rows, _fast_applicable, _fast_rows, _groups,
                            _Head, _fill_mask_rows, _is_float64, _mask_as_bias, _out_dtype, _plan, _query_mask, _RowKept,
                            _run_per_head, _screen_flagged)
from .result import AttentionResult, capped

__all__ = ["auto"]


def auto(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, tree=None, check: bool = False,
         min_keys: int = 2048, min_work: float = 2.0**25, sample: int = 256, max_support: float = 0.05,
         min_queries_for_tree: int = 2048, max_work: float = 0.1, leaf: int = 64) -> AttentionResult:
    """Certified attention that picks dense, screened or region-sparse evaluation from cheap statistics.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense`.
    eps : float
        ``|o_i - o_i^dense|_2 <= eps * max_j |v_j|_2`` for every row, guaranteed (0 = exact: dense).
    tree : KeyTree, optional
        Prebuilt key hierarchy (2-D keys), e.g. of a key bank queried many times.
    check : bool
        Also compute dense attention (in float64) and raise BoundViolationError if an error exceeds its bound.
        The dense route itself evaluates inputs narrower than float64 in their own dtype when its rounding
        bound there meets ``eps``, else in float64, rounding the output to the input's dtype once.
    min_keys, min_work, sample, max_support, min_queries_for_tree, max_work, leaf
        Decision thresholds (see the module docstring).

    Returns
    -------
    AttentionResult
        ``method`` is ``"dense"``, ``"region_sparse"`` or ``"screened"``; ``counters["decision"]`` codes
        the reason (0 dense: few keys, little work or eps = 0, 1 dense: large sampled support, 2 dense: few
        queries and no tree (or a tree over few keys), and screening would not pay (flat scores, the estimate
        of step 2 above ``7 * max_work``, or a mask/bias/causal term), 3 dense: planned work too large,
        4 region-sparse, 5 screened: few queries and no tree (or a tree over few keys), 6 region-sparse with
        the rows the block bounds cannot decide screened, or ``"screened"`` when half the walked sample was
        such rows and every query was screened).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(8, 16)), rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    >>> r = auto(q, k, v, eps=1e-3, check=True)
    >>> r.method, int(r.counters["decision"])
    ('dense', 0)
    """
    # the decision thresholds (a string raised TypeError deep inside, sample=0 NumPy's empty-reduction error)
    check_tree(tree, "auto")
    min_keys, min_queries_for_tree = (check_count(x, n, "auto", minimum=0) for x, n in
                                      ((min_keys, "min_keys"), (min_queries_for_tree, "min_queries_for_tree")))
    sample, leaf = check_count(sample, "sample", "auto"), check_count(leaf, "leaf", "auto")
    min_work, max_work, max_support = (  # (max_support above 1: never dense)
        x if type(x) is float and x >= 0 else float(check_real(x, f"auto: {n}", minimum=0))
        for x, n in ((min_work, "min_work"), (max_work, "max_work"), (max_support, "max_support")))
    # a query-dependent bias alone: validation also rounds it to float32 for the screen (decision 5)
    pack_bias = (mask is None and not causal and isinstance(bias, np.ndarray) and bias.ndim == 2
                 and bias.shape[0] > 1 and isinstance(q, np.ndarray) and q.ndim == 2)
    P = prepare(q, k, v, mask, bias, scale, causal, fname="auto", hash_keys=tree is not None, pack_bias=pack_bias,
                norms=True)
    eps = check_eps(eps, "auto")
    if tree is not None and len(P.batch_shape):
        raise ShapeError("auto: a prebuilt tree needs 2-D keys (one head)")
    n_k = min(P.n_k, P.n_q) if P.causal else P.n_k  # (a causal mask hides the keys past the last query)
    if eps == 0 or n_k < min_keys or P.n_q == 0 or P.n_q * n_k * (P.d + P.d_v) < min_work:
        return _dense_result(P, eps, check, 0)
    walk = _key_only_extra(P) or (tree is not None and _query_mask_alone(P))
    if (P.n_q < min_queries_for_tree and (tree is None or P.n_k < 4 * min_keys)) or not walk:
        # (with a prebuilt tree but few keys, the block walk's sample costs more than the estimate of the
        # screen, and it would not pay more often than the screen does; with a query-dependent bias the
        # screen measured faster than the compiled walk (0.32 against 0.42 of dense at 16384 keys), as with
        # a causal mask alone; a mask of query and key alone the compiled walk reads as it is: with a
        # prebuilt tree 0.23 of dense against the screen's 0.65)
        return _screen_or_dense(P, eps, check, max_work)
    if tree is None:
        code = _sampled_support_check(P, eps, sample, max_support)
        if code:
            return _dense_result(P, eps, check, code)
    return _planned(P, eps, check, tree, leaf, max_work)


PROBE_QUERIES = 8
"""Sampled queries whose exact scores predict the cost of screening (decisions 2 and 5); twice as many above
``2 * SCREEN_KBLOCK`` keys (dense attention is then expensive enough for a closer look)."""
FLAT_KEYS = 128
"""Keys sampled (at least; ``n_k / 32`` if more) to tell flat scores up to ``2 * SCREEN_KBLOCK`` keys (for
the median sampled query, half of them within the margin ``log(n_k / β)`` of their maximum: dense at once,
without the estimate)."""
SCREEN_KBLOCK = 4096
"""The key block of :func:`tropix.attention.screen.screen_rows` (its default ``kblock``)."""
GIVEUP_COST = 1.3
"""A query the screen gives up on (too many candidates) costs about this many dense rows (its screen, then
a dense row; measured 1.3-1.6 on flat scores at 2048-4096 keys)."""


def _screen_fixed_cost(n_k: int, d: int) -> float:
    """The part of a dense row the screen of one query costs whatever it keeps (the GEMM in low precision,
    packing, the scan, the core selection): ``SCREEN_ROW_COST`` at 16384 keys and d = 64, relatively larger
    for fewer keys (fixed costs per call and per query) and for smaller d (dense attention is cheaper per
    key; measured about 0.3 at 4096 keys and d = 64, 0.4 at d = 32)."""
    from .screen import SCREEN_ROW_COST

    return SCREEN_ROW_COST * np.sqrt(16384.0 / max(n_k, 1)) * np.sqrt(64.0 / max(d, 1))


RESIDUAL_SHARE = 0.5
"""The bfloat16 screening error the screen certifies with (:func:`tropix.attention._bf16.error_bound_residual`)
relative to the a-priori :func:`~tropix.attention._bf16.error_bound`, as :func:`_screen_estimate` assumes it
(measured 0.46-0.48 on Gaussian keys and queries at d = 32-64)."""


BIAS_COST = 0.1
"""With a query-dependent bias the screen costs about this much more per query, in dense rows (the bias read
and rounded to float32 by validation, blocked by 16 queries, read again by the fused kernel, its rows gathered
for the rescoring: measured 0.06-0.1 at 16384 keys, about 0.1 with the blocked copy)."""


def _screen_estimate(qs, k, kmax, vmax, rho, eps, n_rows, width=0.25, share=0.75, n_k=None, bias=None) -> float:
    """Estimated cost of screening ``n_rows`` queries of a head, in dense-row units, from the exact float64
    scores of a sample of them (scaled queries ``qs``, with rounding bounds ``rho``) with every key ``k``
    (largest norms ``kmax`` of the keys and ``vmax`` of the values).

    Per sampled query it predicts what :func:`tropix.attention.screen.screen_rows` would do: the keys within
    the first collection margin (more than ``max(n_k / 4, 64)``: the query is given up and computed densely,
    ``GIVEUP_COST``) and the core (the fewest top bands of width ``width`` whose left-out mass bound, with
    the largest screening error ``e`` of the GEMM it would use, is within ``share * β`` of the kept mass),
    each core key rescored at ``KEY_COST`` dense scores; plus :func:`_screen_fixed_cost`.  ``inf`` (do not
    screen) when nothing can be pruned (``β = 0``, all values zero) or the scores are too large for a float32
    screen.  An estimate only: whatever it says, the screen certifies every row or computes it densely.
    """
    from .screen import (BF16_MAX_ERROR, BF16_MIN_KEYS, BF16_MIN_ROWS, FIRST_EXTRA, FLOOR_KEYS, KEY_COST,
                         _F32_LIMIT, screen_error)

    d, ns = qs.shape[1], k.shape[0]
    n = ns if n_k is None else n_k  # (k may be a sample of the n_k keys: its counts stand for n_k / ns each)
    qn = np.sqrt(np.einsum("ij,ij->i", qs, qs))  # (an estimate: no care for under/overflowing squares)
    qmax = float(qn.max(initial=0.0))
    if not vmax > 0 or not qmax * kmax <= _F32_LIMIT:
        return np.inf
    ee = max(float(eps) - float(np.max(rho)) / vmax, 0.0) * (1 - 1e-9)  # (pruning_budget, for a scalar)
    # the smallest budget of the rows (eps >= 2 allows any output: a finite huge budget, log(8 n / beta) then
    # clamps the margins to 0 as the screen does; inf made log(0) a math domain error)
    beta = min(ee / max(2.0 - ee, 1e-300), 1e300)
    if not beta > 0:
        return np.inf
    e = None  # the screening error of each row, of the GEMM the screen would use
    if n >= BF16_MIN_KEYS and n_rows >= BF16_MIN_ROWS:
        from . import _bf16, _int8
        from .screen import _int8_first

        if _int8_first(d, "auto"):  # the queries' quantisation residuals (the keys' 15 bits: negligible)
            e = _int8.error_bound(qn, _int8.residual_norms(qs), kmax, 0.0, d)
            if not float(e.max(initial=0.0)) <= BF16_MAX_ERROR:
                e = None
        if e is None and _bf16.available():
            e = _bf16.error_bound(qn, kmax, d)
            if not float(e.max(initial=0.0)) <= BF16_MAX_ERROR:
                e = None
            else:  # the screen certifies with the bound from the actual rounding errors, about half of this
                # one on keys and queries with full float64 entries (not computed here: an estimate only)
                e = e * RESIDUAL_SHARE
    if e is None:
        e = screen_error(qn, kmax, kmax, qmax, d)
    e = np.ascontiguousarray(e, dtype=np.float64)
    tau = max(math.log(8.0 * n / beta), 0.0) + 2 * e  # the widest margin of the screen (clamped as there)
    # its collection margin: that of the first block, which is every key up to 2 * SCREEN_KBLOCK keys; beyond,
    # the later blocks collect within a narrower margin (at least the floor) that the first block sets
    floor = max(math.log(FLOOR_KEYS / beta), 0.0) + 2 * e
    tau0 = np.minimum(tau, floor + FIRST_EXTRA if n <= 2 * SCREEN_KBLOCK else floor)
    nb = int(min(math.ceil(float(tau.max()) / width) + 2, 4096))  # bands of width `width` below the maximum;
    # the last one holds every key beyond the widest margin (the screen counts each at most at its weight)
    # -s / width, in one GEMM (finite: |q| max|k| <= _F32_LIMIT); then per row its core and collected keys
    if bias is None:
        B = (qs * (-1.0 / width)) @ k.T
    else:  # (the bias of these queries and keys; -inf, a masked key, as a far one: an estimate)
        B = (qs @ k.T + np.maximum(bias, -1e30)) * (-1.0 / width)
    core, collected = _core_sizes(B, nb, width, e, share * beta,
                                  np.minimum((tau0 / width).astype(np.int64), nb - 1))
    per_row = np.where(collected * (n / ns) > max(n // 4, 64), GIVEUP_COST, KEY_COST * core / ns)
    return _screen_fixed_cost(n, d) + (0.0 if bias is None else BIAS_COST) + float(per_row.mean())


def _estimate_keys(n_k: int) -> int:
    """Keys sampled for :func:`_screen_estimate`: ``max(1024, n_k / 8)`` (all of them up to 1024).  The sampled
    maximum is below the true one, so the sample over-estimates the keys near it: the estimate errs towards
    dense (measured on the benchmark inputs at 2048-8192 keys: the same decisions as with every key, except
    i.i.d. keys at d = 32 and 2048 keys, where the screen's gain is marginal)."""
    return min(n_k, max(1024, n_k // 8))


def _band_counts_numpy(B, nb):
    """``cnt[i, b]``: the number of ``j`` with ``floor(B[i, j] - min_j B[i, j]) == b`` for ``b < nb - 1``, the
    others in ``cnt[i, nb - 1]``."""
    r, n = B.shape
    B = B - B.min(axis=1)[:, None]
    near = np.flatnonzero(B < nb - 1)  # few keys on peaked scores: only they are binned
    cnt = np.bincount(B.ravel()[near].astype(np.intp) + nb * (near // n), minlength=r * nb).reshape(r, nb)
    cnt[:, -1] += n - cnt.sum(axis=1)
    return cnt


def _core_sizes_numpy(B, nb, width, e, thr, jc):
    """Per row ``i`` of ``B`` (scores divided by ``-width``): ``core``, the keys in the fewest bands
    ``0 .. j`` below the maximum (:func:`_band_counts_numpy`) such that the bands after ``j`` carry a mass
    bound (a key of band ``b`` at most ``exp(-b width + e_i)``) of at most ``thr`` times the kept mass bound
    from below (``exp(-(b + 1) width - e_i)`` a key, at least ``exp(-e_i)``); and ``collected``, the keys in
    the bands ``0 .. jc_i``.  The reference of the compiled :func:`_core_sizes_loop`."""
    cnt = _band_counts_numpy(B, nb)
    r = cnt.shape[0]
    b = np.arange(nb)
    e = np.asarray(e, dtype=np.float64)[:, None]
    up = cnt * np.exp(-b * width + e)
    cu = np.cumsum(up, axis=1)
    left = cu[:, -1:] - cu  # mass bound of the bands after j (the loop's running difference)
    kept = np.maximum(np.cumsum(cnt * np.exp(-(b + 1) * width - e), axis=1), np.exp(-e))
    ok = left <= thr * kept
    ok[:, -1] = True
    ccnt = np.cumsum(cnt, axis=1)
    return ccnt[np.arange(r), np.argmax(ok, axis=1)], ccnt[np.arange(r), np.asarray(jc)]


def _core_sizes_loop(B, nb, width, e, thr, jc, core, collected):
    """Loop form of :func:`_core_sizes_numpy`, into ``core`` and ``collected`` (compiled with numba: one pass
    over a row for its minimum, one for its band counts, then the bands; NumPy needs several passes and
    temporaries, and small-array calls whose overhead is most of the cost here)."""
    r, n = B.shape
    cnt = np.zeros(nb, dtype=np.int64)
    for i in range(r):
        cnt[:] = 0
        m = np.inf
        for j in range(n):
            if B[i, j] < m:
                m = B[i, j]
        for j in range(n):
            x = B[i, j] - m
            if x < nb - 1:
                cnt[int(x)] += 1
            else:
                cnt[nb - 1] += 1
        ei = e[i]
        tot = 0.0
        for t in range(nb):
            tot += cnt[t] * np.exp(-t * width + ei)
        part = 0.0
        kept = 0.0
        cc = 0
        core[i] = -1
        for t in range(nb):
            part += cnt[t] * np.exp(-t * width + ei)
            kept += cnt[t] * np.exp(-(t + 1) * width - ei)
            cc += cnt[t]
            if t == jc[i]:
                collected[i] = cc
            if core[i] < 0 and (t == nb - 1 or tot - part <= thr * max(kept, np.exp(-ei))):
                core[i] = cc


_core_kernel = None


def _core_sizes(B, nb, width, e, thr, jc):
    """:func:`_core_sizes_numpy` (``e`` and ``jc`` per row, or one for all), by the compiled loop when numba
    is there (compiled or loaded from its cache on first use)."""
    global _core_kernel
    if _core_kernel is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency
            _core_kernel = False
        else:
            _core_kernel = numba.njit(cache=True, nogil=True)(_core_sizes_loop)
    if not _core_kernel:  # pragma: no cover
        r = B.shape[0]
        return _core_sizes_numpy(B, nb, width, np.broadcast_to(e, (r,)), thr, np.broadcast_to(jc, (r,)))
    core = np.zeros(B.shape[0], dtype=np.int64)
    collected = np.zeros(B.shape[0], dtype=np.int64)
    r = B.shape[0]
    _core_kernel(np.ascontiguousarray(B, dtype=np.float64), int(nb), float(width),
                 np.ascontiguousarray(np.broadcast_to(e, (r,)), dtype=np.float64), float(thr),
                 np.ascontiguousarray(np.broadcast_to(jc, (r,)), dtype=np.int64), core, collected)
    return core, collected


def _screen_or_dense(P, eps, check, max_work):
    """Without a key tree and with few queries: screen every query (decision 5) if it pays, else dense
    (decision 2).  ``PROBE_QUERIES`` sampled queries per head: their scores with ``FLAT_KEYS`` sampled keys
    tell flat scores (dense at once), then their exact float64 scores with a sample of :func:`_estimate_keys`
    keys predict the cost of screening (:func:`_screen_estimate`); screened if it is at most
    ``7 * max_work`` of dense attention in every head.  Only where the screen keeps its unmasked path (no
    extra term, a key-padding mask, a causal term alone: :func:`_screen_unmasked`) or its fused path with a
    bias (a bias alone, or any mask without a causal term made one bias: :func:`_screen_mask_bias`), else
    dense."""
    from .screen import _ScreenHead

    biased = _screen_biased(P)
    masked = _screen_mask_bias(P)  # a mask (with or without a bias) made one bias for the screen
    if not (_screen_unmasked(P) or biased or masked):  # the screen's masked path costs about dense attention
        return _dense_result(P, eps, check, 2)
    q = np.asarray(to_numpy(P.q), dtype=np.float64)
    k = np.asarray(to_numpy(P.k), dtype=np.float64)
    v = np.asarray(to_numpy(P.v), dtype=np.float64)
    rows = _query_sample(P.n_q, PROBE_QUERIES * (2 if P.n_k > 2 * SCREEN_KBLOCK else 1))
    hs = list(np.ndindex(*P.batch_shape)) if P.batch_shape else [()]
    one = not P.batch_shape
    qsr = [q[h][rows] * P.scale for h in hs]
    # the keys the screen looks at: with a key-padding mask the visible ones of each head (a causal term is
    # estimated as if absent: each query sees fewer keys, dense attention costs about as much less)
    # (as indices: a copy of the visible keys, 6 MB at 12288 x 64, cost more than the whole estimate)
    kv = []
    for h in hs:
        ko = extra_numpy(P, h)[1] if (P.mask is not None and not masked) else None
        kv.append(None if ko is None else np.flatnonzero(ko > -np.inf))
    bv = [None] * len(hs)  # with a bias alone: each head's bias of the sampled queries (all keys)
    if masked:  # the mask and the bias of the sampled queries as one bias, -inf where masked
        for i, h in enumerate(hs):
            f = extra_numpy(P, h)[0]
            bv[i] = f(rows, np.arange(P.n_k))
    elif biased:
        b = np.asarray(to_numpy(P.bias))
        b = b.reshape((1,) * (len(P.batch_shape) + 2 - b.ndim) + b.shape)
        for i, h in enumerate(hs):
            bh = b[tuple(0 if b.shape[t] == 1 else h[t] for t in range(len(h)))]
            bv[i] = np.asarray(np.broadcast_to(bh, (P.n_q, P.n_k))[rows], dtype=np.float64)
    # flat scores (the usual case of real heads: every sampled query given up by the screen) are told from a
    # few keys first, at a fraction of the cost of the estimate; only up to 2 * SCREEN_KBLOCK keys, where
    # that cost matters (beyond, the estimate costs a few percent of dense attention at most, and a sample
    # of 1/32 of the keys misses the top cluster of a query too often: 64 keys of 16384, in 40 % of queries)
    for h, qs, kh, bh in zip(hs, qsr, kv, bv):
        n_v = P.n_k if kh is None else len(kh)
        if not 0 < n_v <= 2 * SCREEN_KBLOCK:
            continue
        ee = eps * (1 - 1e-9)
        tau = math.log(n_v * max(2.0 - ee, 1e-300) / ee)  # the margin of _near_fraction (eps > 0 here)
        fk = _key_sample(n_v, max(FLAT_KEYS, n_v // 32))
        S = qs @ k[h][fk if kh is None else kh[fk]].T
        if bh is not None:
            S = S + bh[:, fk]
        near = np.count_nonzero(S >= S.max(axis=1, keepdims=True) - tau, axis=1)
        if np.sort(near)[len(near) // 2] > 0.5 * S.shape[1]:
            return _dense_result(P, eps, check, 2)
    for h, qs, kh, bh in zip(hs, qsr, kv, bv):
        n_v = P.n_k if kh is None else len(kh)
        if n_v == 0:  # every key masked: nothing to screen
            continue
        kmax = float((P.knorm if one and P.knorm is not None else _rownorm(k[h])).max())
        vmax = float((P.vnorm if one and P.vnorm is not None else _rownorm(v[h])).max())
        est_keys = _key_sample(n_v, _estimate_keys(n_v))
        if kh is None:
            ks = k[h] if len(est_keys) == n_v else k[h][est_keys]
        else:
            ks = k[h][kh if len(est_keys) == n_v else kh[est_keys]]
        # (the rounding floor is left out of the budget: far below any eps worth pruning for, and a row whose
        # budget it exhausts is computed densely by the screen)
        bs = None if bh is None else (bh if len(est_keys) == n_v else bh[:, est_keys])
        if not _screen_estimate(qs, ks, kmax, vmax, 0.0, eps, P.n_q, n_k=n_v, bias=bs) <= 7 * max_work:
            return _dense_result(P, eps, check, 2)
    return _screened_all(P, eps, check, {h: _ScreenHead(P, (q[h], k[h], v[h]), h) for h in hs})


def _query_dim(x, P) -> int:
    """Length of the query axis of a mask or bias as it broadcasts against ``batch + (n_q, n_k)``."""
    return int(x.shape[-2]) if x.ndim >= 2 else 1


def _key_only_extra(P) -> bool:
    """No extra term, or one that depends on the key only (a key-padding mask, a per-key bias): the compiled
    block walk (:func:`~tropix.attention.region_sparse._fast_rows`) takes it."""
    return not P.causal and all(x is None or _query_dim(x, P) == 1 for x in (P.mask, P.bias))


def _query_mask_alone(P) -> bool:
    """The extra term is a mask alone (no bias, not causal) of query and key (neither dimension of length 1):
    the compiled block walk reads it as it is (:func:`tropix.attention.region_sparse._query_mask`)."""
    m = P.mask
    return (m is not None and P.bias is None and not P.causal and m.ndim >= 2
            and int(m.shape[-2]) > 1 and int(m.shape[-1]) > 1)


def _screen_biased(P) -> bool:
    """The extra term is a bias alone (no mask, not causal): the screen's fused path with a bias tile
    (:func:`tropix.attention.screen._bias_table`)."""
    return P.bias is not None and P.mask is None and not P.causal


def _screen_mask_bias(P) -> bool:
    """A mask without a causal term that the screen does not take on its unmasked path (a mask of query and
    key, or any mask with a bias): the screen makes it one bias, ``-inf`` where masked
    (:func:`tropix.attention.region_sparse._mask_as_bias`), and takes its fused path with a bias."""
    return P.mask is not None and not P.causal and not _screen_unmasked(P)


def _screen_unmasked(P) -> bool:
    """The screen takes its unmasked (fused) path for every head: no extra term, a key-padding mask (no bias),
    or a causal term alone (:func:`tropix.attention.screen.unmasked_path`)."""
    if P.bias is not None:
        return False
    return P.mask is None or (not P.causal and _query_dim(P.mask, P) == 1)


@functools.lru_cache(maxsize=64)
def _query_sample(n_q, size, seed=11):
    """A fixed random sample of ``size`` query indices (sorted, read-only; cached: drawing it costs as much
    as the statistic it feeds on small inputs)."""
    out = np.arange(n_q) if n_q <= size else np.sort(np.random.default_rng(seed).choice(n_q, size=size,
                                                                                            replace=False))
    out.setflags(write=False)
    return out


SCREEN_SAMPLE = 4
"""Capped sample queries screened to decide whether screening the capped queries pays (decision 6)."""


def _screen_sample(H, eps, rows, fill=()):
    """Screen the queries ``rows`` of head ``H``, and ``fill`` after them; return the part and the estimated
    cost per query of ``rows`` and of ``fill`` (0 if empty) in dense-row units: a certified row costs the
    screen (``SCREEN_ROW_COST``) plus its rescored keys (``KEY_COST`` dense scores each), a row the screen
    gives up on a dense row more."""
    from .screen import KEY_COST, SCREEN_ROW_COST, screen_rows

    part = screen_rows(H, eps, np.concatenate([rows, fill]).astype(np.int64))
    ok = np.isfinite(part[1])
    per_row = np.diff(part[3].offsets)  # keys rescored per row (0 for rows given up)
    cost = [(SCREEN_ROW_COST * (b - a) + KEY_COST * per_row[a:b][ok[a:b]].sum() / max(H.n_k, 1)
             + (~ok[a:b]).sum()) / max(b - a, 1) for a, b in ((0, len(rows)), (len(rows), len(ok)))]
    return part, cost[0], cost[1]


def _walk_estimate(capped, evals, n_sample, n_k):
    """The cost of the compiled block walk relative to dense, from a sample of ``n_sample`` walked queries:
    ``capped`` of them given up (``WALK_CAPPED_COST`` dense rows each), ``evals`` keys computed by the kernel
    (``KERNEL_KEY_COST`` dense scores each)."""
    return (WALK_CAPPED_COST * capped * n_k + KERNEL_KEY_COST * evals) / (n_sample * n_k)


WALK_CAPPED_COST = 1.5
"""A query the block walk gives up on costs its walk up to the cap and a dense row computed on its own (a
few rows at a time cost 1.1-1.6 dense rows each, measured at 16384 keys)."""
SCREEN_CONSIDER = 0.3
"""Decision 6 also asks the screen when the walk, estimated by :func:`_walk_estimate`, would cost at least
this part of dense attention, ..."""
SCREEN_PREFERENCE = 0.9
"""... if the screen's fixed cost (:func:`_screen_fixed_cost`) is at most this part of it, and screens every
query when the screen's estimate is at most this part of the walk's."""


def _screened_all(P, eps, check, heads):
    """Screened evaluation of every head (decision 5); ``heads`` maps a head index to its prepared data."""
    from .screen import screen_evals, screen_rows

    def fn(arrays, hidx, tree):
        H = _mask_as_bias(heads[hidx])  # (a mask the screen's unmasked path does not take, as one bias)
        out, bound, support, kept, evals = screen_rows(H, eps, np.arange(H.n_q))
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        counters = {"score_evals": evals + nfb * H.n_k, "bound_evals": 0,
                    "screen_evals": screen_evals(H, H.n_q),
                    "dense_fallback_rows": nfb, "_rho": H.rho,
                    "decision": 5 if not any(hidx) else 0}  # (counters are summed over the heads)
        return out, bound, support, kept, counters, H.vmax, "screened"

    return _run_per_head(P, eps, "auto", check, None, fn)


@functools.lru_cache(maxsize=64)
def _key_sample(n_k, sample):
    """The fixed random sample of keys the cheap statistics look at (sorted, read-only, cached)."""
    out = np.sort(np.random.default_rng(12345).choice(n_k, size=min(sample, n_k), replace=False))
    out.setflags(write=False)
    return out


def _near_fraction(S, n_k, eps) -> float:
    """Median over the queries (rows of the sampled scores ``S``) of the fraction of sampled keys within the
    margin ``log(n_k / β)`` of the sampled maximum; rows without a finite score are ignored."""
    m = S.max(axis=1)
    fin = np.isfinite(m)
    if not fin.any():
        return 0.0
    tau = np.log(n_k / max(float(pruning_budget(eps, 0.0)), 1e-300))
    frac = (S[fin] >= (m[fin] - tau)[:, None]).mean(axis=1)
    return float(np.median(frac))


def _flat_rows(H, rows, eps, sample=256) -> bool:
    """Whether the key sample puts, for the median query of ``rows``, half the keys within the margin
    (flat scores: screening them would not pay)."""
    return _near_fraction(H.qs[rows] @ H.k[_key_sample(H.n_k, sample)].T, H.n_k, eps) > 0.5


def _sampled_support_check(P, eps, sample, max_support) -> int:
    """1 if a key sample shows a large τ-active fraction in some head (dense will do), else 0.  The median is
    taken over a sample of ``sample`` queries as well (the statistic then costs ``sample² d`` per head, a
    small part of dense attention whatever the number of queries)."""
    qn = np.asarray(to_numpy(P.q), dtype=np.float64)
    kn = np.asarray(to_numpy(P.k), dtype=np.float64)
    idx = _key_sample(P.n_k, sample)
    rows = _query_sample(P.n_q, sample)
    for h in np.ndindex(*P.batch_shape) if P.batch_shape else [()]:
        S = (qn[h][rows] * P.scale) @ kn[h][idx].T
        f, _ = extra_numpy(P, h)
        if f is not None:
            S = S + f(rows, idx)
        if _near_fraction(S, P.n_k, eps) > max_support:
            return 1
    return 0


def _planned(P, eps, check, tree, leaf, max_work, sample_queries=16):
    """Plan region-sparse evaluation from block bounds; execute it, or fall back to dense if it would not pay."""
    decision = {"code": 4}

    def fn(arrays, hidx, tr):
        H = _Head(P, arrays, hidx, tr, leaf)
        cnt = H.tree.count[-1]
        if _fast_applicable(H):
            return _fast(H)
        if H.n_q > 2 * sample_queries:  # plan a sample of queries first: a cheap estimate of the work
            rows = np.random.default_rng(7).choice(H.n_q, size=sample_queries, replace=False)
            keep_s = _plan(H, eps, rows)[0]
            if float((keep_s @ cnt).mean()) > max_work * H.n_k:
                decision["code"] = 3
                raise _Fallback
        keep, U, m_lo, best, beta = _plan(H, eps)
        groups = _groups(best, keep, 256, cnt)
        planned = sum(len(r) * (H.n_k if heavy else cnt[np.any(keep[r], axis=0)].sum()) for r, heavy in groups)
        if planned > max_work * H.n_q * H.n_k:
            decision["code"] = 3
            raise _Fallback
        out, bound, support, kept, evals = _execute(H, eps, keep, U, beta, groups, True, m_lo)
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        nb = len(H.tree.rep[-1])
        counters = {"score_evals": evals + nfb * H.n_k + H.n_q * nb, "bound_evals": H.n_q * nb,
                    "dense_fallback_rows": nfb, "decision": 4, "_rho": H.rho}
        return out, bound, support, kept, counters, H.vmax, "region_sparse"

    def _fast(H):
        # compiled path: a sample of queries first; rows that would compute too many keys stop early
        # (_default_cap) and count as dense rows.  If the sample's cost, in dense-row units (a key computed
        # by the kernel costs about KERNEL_KEY_COST dense score evaluations), exceeds 7 * max_work: dense.
        if H.n_q > 2 * sample_queries:
            samp = np.sort(np.random.default_rng(7).choice(H.n_q, size=sample_queries, replace=False))
            # half of the sample first: when the block bounds give up on every one of them (keys without a
            # geometry they can use, e.g. i.i.d. keys, each walked up to its cap: 0.4 ms for 8 queries at
            # 16384 keys, d = 64), the other half is not walked (the decisions below take the 8 as the sample)
            part = _fast_rows(H, eps, True, samp[::2])
            if np.isfinite(part[1]).any():
                more = _fast_rows(H, eps, True, samp[1::2])
                part = tuple(np.concatenate([a, b]) for a, b in zip(part[:3], more[:3])) + (
                    _RowKept.join(part[3], more[3]), part[4] + more[4])
                samp = np.concatenate([samp[::2], samp[1::2]])  # (the order of `part`'s rows)
            else:
                samp = samp[::2]
        else:
            samp = np.arange(H.n_q)
            part = _fast_rows(H, eps, True, samp)
        capped = int(np.count_nonzero(~np.isfinite(part[1])))
        est = (capped * H.n_k + KERNEL_KEY_COST * part[4]) / (len(samp) * H.n_k)
        screen = screen_all = False
        flagged = samp[~np.isfinite(part[1])]
        done = samp  # the queries with a result in `part`
        # a mask of query and key: the screen takes it as one bias (-inf where masked), made when first
        # screened, and pays for making it (MASK_BIAS_COST per query)
        masked = _query_mask(H) is not None
        extra = MASK_BIAS_COST if masked else 0.0
        SH = []
        made = np.zeros(H.n_q, dtype=bool)

        def sh(rows):  # the head the screen takes for the queries `rows` (the mask's bias made for them)
            if not masked:
                return H
            rows = np.asarray(rows, dtype=np.int64)
            need = rows[~made[rows]]
            if not SH:
                SH.append(_mask_as_bias(H, need))
            else:
                _fill_mask_rows(SH[0], need)
            made[need] = True
            return SH[0]

        if est > 7 * max_work and capped and not _flat_rows(H, flagged, eps):
            # many queries defeat the block bounds: does screening certify them cheaply?  (Asked of at most
            # SCREEN_SAMPLE of them: the answer must cost a small part of dense attention.)  When most sampled
            # queries defeat them (no geometry the tree can use, e.g. i.i.d. keys), every query will likely be
            # screened: the keys packed now serve the probe's screen too (bfloat16, no float32 copy)
            probe = flagged[:SCREEN_SAMPLE]
            screen_all = capped >= SCREEN_ALL_SHARE * len(samp)
            fill = np.zeros(0, dtype=np.int64)
            if screen_all:
                _pack_keys(H)
                # the kernel screens queries in vectors of 16: other queries fill the probe's (screened now
                # rather than with the rest)
                fill = np.setdiff1d(np.arange(H.n_q), probe)[:-len(probe) % 16]
            spart, scost, _ = _screen_sample(sh(np.concatenate([probe, fill])), eps, probe, fill)
            est = (KERNEL_KEY_COST * part[4] + scost * capped * H.n_k) / (len(samp) * H.n_k) + extra
            if est <= 7 * max_work:
                screen = True
                if screen_all:  # every query but the probe is screened below, without a walk (the sampled
                    # walk's rows too: their results are replaced, their work counted)
                    done, part = np.concatenate([probe, fill]), spart[:4] + (part[4] + spart[4],)
                else:
                    if len(flagged) > len(probe):  # the other capped sample queries are screened as well
                        from .screen import screen_rows

                        more = screen_rows(sh(flagged[len(probe):]), eps, flagged[len(probe):])
                        spart = tuple(np.concatenate([a, b]) for a, b in zip(spart[:3], more[:3])) + (
                            _RowKept.join(spart[3], more[3]), spart[4] + more[4])
                    pos = np.flatnonzero(~np.isfinite(part[1]))  # (the positions of `flagged` in `samp`)
                    part[0][pos], part[1][pos], part[2][pos] = spart[0], spart[1], spart[2]
                    part = part[:3] + (_RowKept.join(spart[3], part[3]), part[4] + spart[4])
        elif est <= 7 * max_work and capped and len(samp) < H.n_q and \
                (walk := _walk_estimate(capped, part[4], len(samp), H.n_k)) >= SCREEN_CONSIDER and \
                _screen_fixed_cost(H.n_k, H.d) + extra <= SCREEN_PREFERENCE * walk:
            # the walk would pay, but it gives up on enough queries (each then costs a walk and a dense row)
            # that screening every query may cost less: the capped sample queries and the others, filling the
            # probe's vector of 16, are screened, and the cheaper way is taken (the probe's rows kept if it is
            # the screen).  (No flatness test: the capped queries are the hard ones, the probe prices them.)
            from .screen import SCREEN_ROW_COST

            _pack_keys(H)
            probe = flagged[:SCREEN_SAMPLE]
            fill = samp[np.isfinite(part[1])][:-len(probe) % 16]
            spart, scost, fcost = _screen_sample(sh(np.concatenate([probe, fill])), eps, probe, fill)
            # (the screen's fixed part per query for this size in place of _screen_sample's SCREEN_ROW_COST)
            per_query = (capped * scost + (len(samp) - capped) * fcost) / len(samp) - SCREEN_ROW_COST
            if per_query + _screen_fixed_cost(H.n_k, H.d) + extra <= SCREEN_PREFERENCE * walk:
                screen = screen_all = True
                done, part = np.concatenate([probe, fill]), spart[:4] + (part[4] + spart[4],)
        if est > 7 * max_work:
            decision["code"] = 3
            raise _Fallback
        screen_all = screen and screen_all
        out = np.zeros((H.n_q, H.v.shape[1]))
        bound = np.zeros(H.n_q)
        support = np.zeros(H.n_q, dtype=np.int64)
        out[done], bound[done], support[done] = part[0], part[1], part[2]
        kept, evals = part[3], part[4]
        nsc = len(done) if screen_all else (len(flagged) if screen else 0)
        if len(done) < H.n_q:
            rest = np.setdiff1d(np.arange(H.n_q), done)
            if screen_all:
                from .screen import screen_rows

                o, b, sp, kp, ev = screen_rows(sh(rest), eps, rest, cap=_SCREEN_CAP(H.n_k))
                nsc += len(rest)
            else:
                o, b, sp, kp, ev = _fast_rows(H, eps, True, rest)
                if screen:
                    n2, kp, sev = _screen_flagged(sh(rest), eps, o, b, sp, kp, rows=rest)
                    nsc, ev = nsc + n2, ev + sev
            out[rest], bound[rest], support[rest] = o, b, sp
            kept, evals = _RowKept.join(kept, kp), evals + ev
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        nb = len(H.tree.rep[-1])
        counters = {"score_evals": evals + nfb * H.n_k, "bound_evals": (len(samp) if screen_all else H.n_q) * nb,
                    "dense_fallback_rows": nfb, "screened_rows": nsc, "decision": 6 if screen else 4, "_rho": H.rho}
        return out, bound, support, kept, counters, H.vmax, "screened" if screen_all else "region_sparse"

    try:
        return _run_per_head(P, eps, "auto", check, tree, fn)
    except _Fallback:
        return _dense_result(P, eps, check, decision["code"])


def _pack_keys(H):
    """The head's keys packed for the int8 or else the bfloat16 screen (kept on ``H``), if the CPU has the
    kernel and the head enough keys for it (:func:`tropix.attention.screen._screen_gemm`)."""
    from . import _bf16, _int8
    from .screen import BF16_MIN_KEYS, _int8_first, head_packed_keys

    if H.n_k >= BF16_MIN_KEYS:
        if _int8_first(H.d, "auto"):
            head_packed_keys(H, _int8)
        elif _bf16.available():
            head_packed_keys(H, _bf16)


MASK_BIAS_COST = 0.15
"""A mask of query and key costs the screen about this many dense rows per query more than none: it is made
one float64 bias, ``-inf`` where masked (:func:`tropix.attention.region_sparse._mask_as_bias`: 6 ms for 256 x
16384, about 0.17 of a dense row of d = 64 per query), whose rows the fused kernel and the rescoring read."""

SCREEN_ALL_SHARE = 0.5
"""When at least this share of the sampled queries defeats the block bounds and screening them pays (decision
6), every other query is screened too, without a block walk."""

KERNEL_KEY_COST = 6.0
"""A key scored by the compiled kernel costs about this many dense (BLAS) score evaluations."""


class _Fallback(Exception):
    pass


def _dense_bound(P: Prepared, bias_stats=None):
    """:func:`~tropix.attention.dense.dense_rounding_bound` (with the largest value norm) of one NumPy float64
    head without bias, from the row norms of ``k`` and ``v`` that validation computed when it did (else
    their largest squared norm, when it neither under- nor overflows: the same value as the largest of
    :func:`~tropix.attention.dense._rownorm`); other input: that function itself."""
    if (P.bias is not None or P.batch_shape or not isinstance(P.q, np.ndarray) or P.q.dtype != np.float64
            or P.k.dtype != np.float64 or P.v.dtype != np.float64):
        return dense_rounding_bound(P, with_vmax=True, bias_stats=bias_stats)
    kmax, vmax = _max_norm(P.k, P.knorm), _max_norm(P.v, P.vnorm)
    qn = P.qnorm if P.qnorm is not None else _rownorm(P.q)
    rb = rounding_bound(qn, kmax, 0.0, P.n_k, P.d, vmax, P.scale, np.float64, d_v=P.d_v, out_dtype=np.float64)
    return rb, np.asarray(vmax)


def _max_norm(x, norms):
    if norms is not None:
        return float(norms.max())
    m = float(np.einsum("ij,ij->i", x, x).max())
    return math.sqrt(m) if 1e-300 <= m <= 1e300 else float(_rownorm(x).max())


def _dense_result(P: Prepared, eps, check, code) -> AttentionResult:
    stats = bias_row_stats(P) if P.bias is not None else None  # (one pass over the bias for both)
    rb, vmax = _dense_bound(P, stats)
    slack = rb  # (a reference computed in the input's precision errs by this much)
    if _is_float64(P.q.dtype) or np.all(rb <= eps * vmax[..., None]):
        out = _dense(P)
    else:
        # the input's precision cannot meet the request (float32 scores of a large |q||k|, float16, bfloat16):
        # evaluated in float64 (the inputs convert exactly) and rounded to the input's dtype once, as the other
        # methods do; the bound is float64's plus that rounding
        P64 = as_float64(P)
        odt = _out_dtype(P)
        out = P.xp.astype(_dense(P64), odt)
        rb64, _ = _dense_bound(P64, stats)
        rb = rb64 + np.asarray(_cast_floor(odt, vmax, P.d_v))[..., None]  # (0.0 for a float64 output)
    sup = visible_counts(P, stats)
    if P.mask is not None or P.bias is not None:  # (otherwise every query sees a key)
        rb = np.where(sup > 0, rb, 0.0)
    nh = int(np.prod(P.batch_shape)) if P.batch_shape else 1
    counters = {"score_evals": nh * P.n_q * P.n_k, "bound_evals": 0, "dense_fallback_rows": 0, "decision": code}
    res = AttentionResult(out, capped(rb, out, vmax), eps, vmax, sup, "dense", counters, (), slack)
    if check:
        verify_against_dense(res, P)
    return res

