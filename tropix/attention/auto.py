"""Automatic choice between dense and certified sparse attention, from cheap statistics of the scores.

``auto`` never gives up the bound: whichever path it takes, the result carries the certified per-row bound
``<= eps * max|v|``.  It takes the sparse path only when pruning is likely to pay:

1. few keys (``n_k < min_keys``) or little work (``n_q n_k (d + d_v) < min_work`` multiply-adds per head,
   about 10 ms of dense attention: the statistics below would cost too large a part of it): dense;
2. without a prebuilt key tree, building one costs about as much as dense attention for a few hundred
   queries, so it is built only when ``n_q >= min_queries_for_tree``; otherwise, unless a key sample (as in
   step 3) puts half the keys within the margin (flat scores), 8 sampled queries are screened
   (:mod:`.screen`: float32 scores, exact float64 core) and, if that costs less than dense by the margin of
   step 4, every query is screened (decision 5), else dense;
3. (without a prebuilt tree) a sample of ``sample`` keys estimates, per query, the fraction of keys within
   the margin ``τ = log(n_k / β)`` of the sampled maximum (an over-estimate of the τ-active fraction, since
   the sampled maximum is at most the true one); if the median over queries exceeds ``max_support``: dense;
4. the region-sparse plan (block bounds, no exact scores yet) of a sample of 16 queries, then of all
   queries, gives the planned number of exact score evaluations; if it exceeds ``max_work`` times dense
   (planning and grouping cost about as much again): dense; else the plan is executed.
   With the compiled kernel (NumPy float input, no mask/bias/causal) the sample of 16 queries is instead
   run by the kernel itself (its results are kept): queries that hit the kernel's key cap count as dense
   rows, kernel keys as ``KERNEL_KEY_COST`` dense score evaluations, and if that estimate exceeds
   ``7 * max_work`` of dense, the capped sample queries are screened instead (a screened query counted as
   ``SCREEN_ROW_COST`` dense rows plus ``KEY_COST`` dense scores per key it rescores, a failed one as a
   dense row more: :mod:`tropix.attention.screen`); if the estimate is still above: dense;
   else the other queries follow, with the capped ones screened if that was needed (decision 6).

The statistics cost a few percent of dense attention, so on inputs where pruning does not pay ``auto`` stays
within a small factor of dense (the benchmark ``benchmarks/bench_attention.py`` measures it).
"""

from __future__ import annotations

import numpy as np

from .._array import to_numpy
from ..errors import ShapeError
from .bounds import pruning_budget
from .dense import _dense, dense_rounding_bound
from ._inputs import Prepared, block_extra, check_eps, extra_numpy, prepare
from .region_sparse import (_execute, _fallback_rows, _fast_applicable, _fast_rows, _groups, _Head, _plan,
                            _RowKept, _run_per_head, _screen_flagged)
from .result import AttentionResult

__all__ = ["auto"]


def auto(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, tree=None, check: bool = False,
         min_keys: int = 8192, min_work: float = 2.0**27, sample: int = 256, max_support: float = 0.05,
         min_queries_for_tree: int = 2048, max_work: float = 0.1, leaf: int = 64) -> AttentionResult:
    """Certified attention that picks dense or region-sparse evaluation from cheap statistics.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense`.
    eps : float
        ``|o_i - o_i^dense|_2 <= eps * max_j |v_j|_2`` for every row, guaranteed (0 = exact: dense).
    tree : KeyTree, optional
        Prebuilt key hierarchy (2-D keys), e.g. of a key bank queried many times.
    check : bool
        Also compute dense attention and raise BoundViolationError if an error exceeds its bound.
    min_keys, min_work, sample, max_support, min_queries_for_tree, max_work, leaf
        Decision thresholds (see the module docstring).

    Returns
    -------
    AttentionResult
        ``method`` is ``"dense"``, ``"region_sparse"`` or ``"screened"``; ``counters["decision"]`` codes
        the reason (0 dense: few keys, little work or eps = 0, 1 dense: large sampled support, 2 dense: no tree, few
        queries and screening would not pay, 3 dense: planned work too large, 4 region-sparse,
        5 screened: no tree and few queries, 6 region-sparse with the rows the block bounds cannot decide
        screened).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(8, 16)), rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    >>> r = auto(q, k, v, eps=1e-3, check=True)
    >>> r.method, int(r.counters["decision"])
    ('dense', 0)
    """
    P = prepare(q, k, v, mask, bias, scale, causal, fname="auto")
    eps = check_eps(eps, "auto")
    if tree is not None and len(P.batch_shape):
        raise ShapeError("auto: a prebuilt tree needs 2-D keys (one head)")
    if eps == 0 or P.n_k < min_keys or P.n_q == 0 or P.n_q * P.n_k * (P.d + P.d_v) < min_work:
        return _dense_result(P, eps, check, 0)
    if tree is None:
        if P.n_q < min_queries_for_tree:
            # flat scores (a key sample puts half the keys within the margin) cannot be screened cheaply
            if not _sampled_support_check(P, eps, sample, 0.5) and _screen_pays(P, eps, max_work):
                return _screened_all(P, eps, check)
            return _dense_result(P, eps, check, 2)
        code = _sampled_support_check(P, eps, sample, max_support)
        if code:
            return _dense_result(P, eps, check, code)
    return _planned(P, eps, check, tree, leaf, max_work)


SCREEN_SAMPLE = 4
"""Capped sample queries screened to decide whether screening the capped queries pays (decision 6)."""


def _screen_sample(H, eps, rows):
    """Screen the queries ``rows`` of head ``H``; return the part and its estimated cost per query in dense-row
    units: a certified row costs the screen (``SCREEN_ROW_COST``) plus its rescored keys (``KEY_COST`` dense
    scores each), a row the screen gives up on a dense row more."""
    from .screen import KEY_COST, SCREEN_ROW_COST, screen_rows

    part = screen_rows(H, eps, rows)
    ok = np.isfinite(part[1])
    per_row = np.diff(part[3].offsets)  # keys rescored per row (0 for rows given up)
    cost = (SCREEN_ROW_COST * len(rows) + KEY_COST * per_row[ok].sum() / max(H.n_k, 1)
            + (~ok).sum()) / max(len(rows), 1)
    return part, cost


def _screen_pays(P, eps, max_work, n_sample=8) -> bool:
    """Without a key tree: does float32 screening (:func:`~tropix.attention.screened`) beat dense on a sample
    of ``n_sample`` queries of every head?  Only for NumPy-convertible input without extra terms."""
    from .screen import _ScreenHead

    if P.mask is not None or P.bias is not None or P.causal:
        return False
    q = np.asarray(to_numpy(P.q), dtype=np.float64)
    k = np.asarray(to_numpy(P.k), dtype=np.float64)
    v = np.asarray(to_numpy(P.v), dtype=np.float64)
    rows = np.sort(np.random.default_rng(11).choice(P.n_q, size=min(n_sample, P.n_q), replace=False))
    for h in np.ndindex(*P.batch_shape) if P.batch_shape else [()]:
        H = _ScreenHead(P, (q[h], k[h], v[h]), h)
        if _screen_sample(H, eps, rows)[1] > 7 * max_work:
            return False
    return True


def _screened_all(P, eps, check):
    """Screened evaluation of every head (decision 5)."""
    from .screen import _ScreenHead, screen_rows

    def fn(arrays, hidx, tree):
        H = _ScreenHead(P, arrays, hidx)
        out, bound, support, kept, evals = screen_rows(H, eps, np.arange(H.n_q))
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        counters = {"score_evals": evals + nfb * H.n_k, "screen_evals": H.n_q * H.n_k, "bound_evals": 0,
                    "dense_fallback_rows": nfb, "decision": 5, "_rho": H.rho}
        return out, bound, support, kept, counters, H.vmax, "screened"

    return _run_per_head(P, eps, "auto", check, None, fn)


def _key_sample(n_k, sample):
    """The fixed random sample of keys the cheap statistics look at."""
    return np.sort(np.random.default_rng(12345).choice(n_k, size=min(sample, n_k), replace=False))


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
    """1 if a key sample shows a large τ-active fraction in some head (dense will do), else 0."""
    qn = np.asarray(to_numpy(P.q), dtype=np.float64)
    kn = np.asarray(to_numpy(P.k), dtype=np.float64)
    idx = _key_sample(P.n_k, sample)
    for h in np.ndindex(*P.batch_shape) if P.batch_shape else [()]:
        S = (qn[h] * P.scale) @ kn[h][idx].T
        f, _ = extra_numpy(P, h)
        if f is not None:
            S = S + f(np.arange(P.n_q), idx)
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
        else:
            samp = np.arange(H.n_q)
        part = _fast_rows(H, eps, True, samp)
        capped = int(np.count_nonzero(~np.isfinite(part[1])))
        est = (capped * H.n_k + KERNEL_KEY_COST * part[4]) / (len(samp) * H.n_k)
        screen = False
        flagged = samp[~np.isfinite(part[1])]
        if est > 7 * max_work and capped and not _flat_rows(H, flagged, eps):
            # many queries defeat the block bounds: does screening certify them cheaply?  (Asked of at most
            # SCREEN_SAMPLE of them: the answer must cost a small part of dense attention.)
            probe = flagged[:SCREEN_SAMPLE]
            spart, scost = _screen_sample(H, eps, probe)
            est = (KERNEL_KEY_COST * part[4] + scost * capped * H.n_k) / (len(samp) * H.n_k)
            if est <= 7 * max_work:
                screen = True
                if len(flagged) > len(probe):  # the other capped sample queries are screened as well
                    from .screen import screen_rows

                    more = screen_rows(H, eps, flagged[len(probe):])
                    spart = tuple(np.concatenate([a, b]) for a, b in zip(spart[:3], more[:3])) + (
                        _RowKept.join(spart[3], more[3]), spart[4] + more[4])
                pos = np.searchsorted(samp, flagged)
                part[0][pos], part[1][pos], part[2][pos] = spart[0], spart[1], spart[2]
                part = part[:3] + (_RowKept.join(spart[3], part[3]), part[4] + spart[4])
        if est > 7 * max_work:
            decision["code"] = 3
            raise _Fallback
        out = np.zeros((H.n_q, H.v.shape[1]))
        bound = np.zeros(H.n_q)
        support = np.zeros(H.n_q, dtype=np.int64)
        out[samp], bound[samp], support[samp] = part[0], part[1], part[2]
        kept, evals = part[3], part[4]
        nsc = len(flagged) if screen else 0
        if len(samp) < H.n_q:
            rest = np.setdiff1d(np.arange(H.n_q), samp)
            o, b, sp, kp, ev = _fast_rows(H, eps, True, rest)
            if screen:
                n2, kp, sev = _screen_flagged(H, eps, o, b, sp, kp, rows=rest)
                nsc, ev = nsc + n2, ev + sev
            out[rest], bound[rest], support[rest] = o, b, sp
            kept, evals = _RowKept.join(kept, kp), evals + ev
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        nb = len(H.tree.rep[-1])
        counters = {"score_evals": evals + nfb * H.n_k, "bound_evals": H.n_q * nb,
                    "dense_fallback_rows": nfb, "screened_rows": nsc, "decision": 6 if screen else 4, "_rho": H.rho}
        return out, bound, support, kept, counters, H.vmax, "region_sparse"

    try:
        return _run_per_head(P, eps, "auto", check, tree, fn)
    except _Fallback:
        return _dense_result(P, eps, check, decision["code"])


KERNEL_KEY_COST = 6.0
"""A key scored by the compiled kernel costs about this many dense (BLAS) score evaluations."""


class _Fallback(Exception):
    pass


def _visible_counts(P: Prepared) -> np.ndarray:
    if P.mask is None and P.bias is None and not P.causal:
        return np.full(P.batch_shape + (P.n_q,), P.n_k, dtype=np.int64)
    out = np.zeros(P.batch_shape + (P.n_q,), dtype=np.int64)
    step = max(1, 2**22 // max(P.n_k, 1))
    for s in range(0, P.n_q, step):
        qs = slice(s, min(P.n_q, s + step))
        E = block_extra(P, qs, slice(0, P.n_k), P.q.dtype)
        E = np.asarray(to_numpy(E), dtype=np.float64)
        E = np.broadcast_to(E, P.batch_shape + (qs.stop - qs.start, P.n_k))
        out[..., qs] = np.isfinite(E).sum(axis=-1)
    return out


def _dense_result(P: Prepared, eps, check, code) -> AttentionResult:
    out = _dense(P)
    rb, vmax = dense_rounding_bound(P, with_vmax=True)
    sup = _visible_counts(P)
    rb = np.where(sup > 0, rb, 0.0)
    nh = int(np.prod(P.batch_shape)) if P.batch_shape else 1
    counters = {"score_evals": nh * P.n_q * P.n_k, "bound_evals": 0, "dense_fallback_rows": 0, "decision": code}
    res = AttentionResult(out, rb, eps, vmax, sup, "dense", counters, (), rb)
    if check:
        res.verify(out)
    return res

