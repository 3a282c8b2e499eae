"""Hierarchical attention: certified pruning over the key tree, far-field aggregation of whole nodes, and exact
block GEMMs for query groups.

All steps work on matrices over all queries at once (no Python loop over queries or nodes):

1. **Ball bounds.**  One GEMM of the queries with the leaf centres of the key hierarchy
   (:mod:`tropix.attention.keytree`) gives every (query, leaf) centre score and ball bound (about
   ``1/leaf`` of the dense score GEMM).
2. **Reference and quick test.**  The exact scores of the query's most promising leaf (largest ball bound or
   best-scoring centre; compiled loop, :mod:`tropix.attention._hier_kernels`) give ``m_lo`` (a lower bound
   on its maximum score) and ``z``, that leaf's mass relative to ``exp(m_lo)``.  This leaf is always
   computed exactly, so ``z exp(m_lo)`` is at most the softmax mass and every budget below is relative to
   it.  A query for which pruning on the ball bounds would leave more than half of the keys open (not
   counting leaves whose scores are known within ``1e-2``, which the far field may take) is done densely
   at once: on flat scores the method costs dense plus one small GEMM.
3. **Certified bounds.**  For the other queries, the ball/box bounds of
   :func:`~tropix.attention.keytree.score_bounds` (masks and biases added through their leaf-wise maxima and
   minima) give an upper bound ``U`` and a lower bound ``L`` on the scores of each leaf's keys.
4. **Pruning.**  Leaves are dropped in increasing bounded mass ``n_b exp(U - m_lo)`` while their total stays
   within the pruning budget (a few threshold rounds instead of a sort); a leaf whose keys are all masked
   is dropped at no cost.  A query whose remaining leaves (not counting those the far field can take) still
   hold more than half of the keys goes dense.
5. **Far field** (``aggregate=True``).  Leaves (whole blocks of keys) whose weights are known within a small
   spread get the common weight ``(exp(U - m_lo) + exp(L - m_lo)) / 2`` and contribute
   ``weight * sum_j v_j`` (block value sums); the weight error per key is at most half the spread plus the
   floating-point error of both exponentials, and the total error stays within the aggregation budget
   (smallest errors first).  Coarser nodes are not used: their bounds would come from their leaves, and a
   node's aggregation error is at least the sum of its leaves' errors.
6. **Query groups.**  Queries are ordered by their best leaf and cut into runs, either of equal length (a
   power of two up to ``group``) or by equal best leaf merged greedily, whichever minimises the modelled
   cost ``|union of open leaves| (gather + rows) + overhead`` (in units of one score).  A group whose modelled cost exceeds ``rows * n`` joins the dense
   rows instead: gathering many keys for few queries costs more than one dense pass over contiguous keys
   shared by all dense rows.
7. **Exact part.**  Each group computes the exact scores of the union of its members' open leaves as one
   dense block GEMM, each query using only its own leaves.
8. **Dense rows** (``counters["dense_rows"]``): one streamed dense pass.

The bound is :func:`tropix.attention.bounds.truncation_bound` with the pruned mass ``D``, the aggregation
errors ``A`` (weighted by node ``max|v|``) and ``B`` (plus the floating-point error of the aggregated sums),
and the rounding bound of dense evaluation.  The budgets satisfy ``D + (1 + β) B <= β z``, which keeps the
bound within ``eps``; a row whose bound would exceed the request anyway is recomputed densely, so
``|o_i - o_i^dense| <= eps * max|v|`` always holds.
"""

from __future__ import annotations

import numpy as np

from .bounds import truncation_bound, pruning_budget
from ._inputs import check_eps, prepare
from .keytree import score_bounds
from .region_sparse import _dense_rows, _fallback_rows, _Head, _run_per_head
from .result import AttentionResult
from ._hier_kernels import leaf_reference

__all__ = ["hierarchical"]

_U = 2.0**-53


def hierarchical(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, tree=None,
                 leaf: int = 64, group: int = 64, aggregate: bool = True, check: bool = False) -> AttentionResult:
    """Attention over a key hierarchy with certified block pruning and optional far-field aggregation.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense` (leading batch/head dims are looped over).
    eps : float
        ``|o_i - o_i^dense|_2 <= eps * max_j |v_j|_2`` for every row, guaranteed; 0 = exact.
    tree : KeyTree, optional
        Prebuilt hierarchy of the keys (2-D ``k`` only).
    leaf : int
        Keys per leaf (when the tree is built here).
    group : int
        Largest number of queries sharing one exact block GEMM.
    aggregate : bool
        Allow far-field aggregation of whole nodes.
    check : bool
        Also compute dense attention; raise BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult
        ``counters`` has ``score_evals``, ``bound_evals``, ``nodes_pruned`` / ``nodes_aggregated`` (leaves
        pruned / aggregated, summed over the queries not done densely), ``keys_aggregated``, ``dense_rows``
        (queries done by the dense pass because pruning would not pay) and ``dense_fallback_rows`` (rows
        recomputed because their bound exceeded the request; not expected).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> C = rng.normal(size=(300, 8)); k = C[rng.integers(0, 300, 20000)] + 0.05 * rng.normal(size=(20000, 8))
    >>> v = rng.normal(size=(20000, 2)); q = 15 * C[:20]
    >>> r = hierarchical(q, k, v, eps=1e-3, check=True)
    >>> bool(np.all(r.relative_bound <= 1e-3)), int(np.median(r.support)) < 2000  # of 20000 keys
    (True, True)
    """
    P = prepare(q, k, v, mask, bias, scale, causal, fname="hierarchical")
    eps = check_eps(eps, "hierarchical")
    group = max(1, int(group))

    def fn(arrays, hidx, tr):
        H = _Head(P, arrays, hidx, tr, leaf)
        out, bound, support, kept, counters = _hier_head(H, eps, group, aggregate)
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        counters["dense_fallback_rows"] = nfb
        counters["score_evals"] += nfb * H.n_k
        counters["_rho"] = H.rho
        return out, bound, support, kept, counters, H.vmax, "hierarchical"

    return _run_per_head(P, eps, "hierarchical", check, tree, fn)


def _query_groups(best, open_, ctL, n, group, gather, overhead):
    """Groups of queries (local indices) for the exact block GEMMs, and the queries better done densely.

    Queries are ordered by their best leaf (tree order: similar queries are adjacent).  The modelled cost
    of a group is ``|union of open leaves| (gather + rows) + overhead`` (in units of one score: gathering a
    key costs about ``gather`` scores, a group about ``overhead``), or ``rows * n`` for a dense pass if that
    is cheaper.  Two partitions into runs of consecutive queries are compared and the cheaper is used:
    runs of equal length (a power of two up to ``group``, the best one), and (when there are fewer than 64
    distinct best leaves) the runs of equal best leaf merged greedily with their neighbours while the cost
    does not grow (up to ``group`` rows).  Runs whose
    GEMM would cost more than the dense pass are returned in the dense mask.
    """
    nr = len(best)
    order = np.lexsort((np.arange(nr), best))
    ob = open_[order]
    cost = lambda u, r: u * (gather + r) + overhead  # noqa: E731
    # equal runs
    choice = None
    s = 1
    while True:
        starts = np.arange(0, nr, s)
        rr = np.diff(np.append(starts, nr))
        c = cost(np.logical_or.reduceat(ob, starts, axis=0) @ ctL, rr)
        total = np.minimum(c, rr * float(n)).sum()
        if choice is None or total < choice[0]:
            choice = (total, starts, rr, c)
        if s >= min(group, nr):
            break
        s = min(2 * s, group, nr)
    # runs of equal best leaf (cut at `group` rows), merged greedily (a Python loop: only for few runs)
    bb = best[order]
    if np.count_nonzero(np.diff(bb)) >= 64:
        bb = None
    runs = []
    cur = None
    if bb is not None:
        starts = np.concatenate([[0], np.flatnonzero(np.diff(bb)) + 1])
        ends = np.append(starts[1:], nr)
        starts = np.concatenate([np.arange(a, e, group) for a, e in zip(starts, ends)])
        ends = np.append(starts[1:], nr)
        unions = np.logical_or.reduceat(ob, starts, axis=0)
        usize = unions @ ctL
    else:
        starts = ends = unions = usize = ()
    for a, e, u, us in zip(starts, ends, unions, usize):
        if cur is not None and e - cur[0] <= group:
            mu = cur[2] | u
            ms = mu @ ctL
            r1, r2 = cur[1] - cur[0], e - a
            if cost(ms, r1 + r2) <= min(cost(cur[3], r1), r1 * n) + min(cost(us, r2), r2 * n):
                cur = (cur[0], e, mu, ms)
                continue
        if cur is not None:
            runs.append((cur[0], cur[1] - cur[0], cost(cur[3], cur[1] - cur[0])))
        cur = (a, e, u, us)
    if cur is not None:
        runs.append((cur[0], cur[1] - cur[0], cost(cur[3], cur[1] - cur[0])))
    if runs and sum(min(c, r * n) for _, r, c in runs) < choice[0]:
        parts = runs
    else:
        parts = list(zip(choice[1], choice[2], choice[3]))
    dense = np.zeros(nr, dtype=bool)
    out = []
    for a, r, c in parts:
        if c > r * n:
            dense[order[a:a + r]] = True
        else:
            out.append(order[a:a + r])
    return out, dense


def _reference(H: _Head, rows, U, qc, full=None, use_kernel=True):
    """Exact scores of each query's most promising leaf: ``(m_lo, z, leaf)`` per row of ``rows``.

    Candidates are the leaves of largest ``U`` and of largest ``qc`` (any score proxy, e.g. centre scores;
    ``U``, ``qc``: rows ``rows``); ``leaf`` is the candidate of larger exact maximum ``m_lo`` (a lower bound
    on the query's maximum score) and ``z = sum_j exp(s_j - m_lo)`` over that leaf (a lower bound on the
    softmax mass relative to ``exp(m_lo)``, as that leaf is always computed exactly).  ``m_lo = -inf``
    where both candidates are fully masked.  ``full``: the extra term of all queries in tree order (when it
    is not key-only).  Without extra term the compiled :func:`~tropix.attention._hier_kernels.leaf_reference`
    does the same (``use_kernel=False``: NumPy).
    """
    t = H.tree
    st, ct = t.starts[-1], t.count[-1]
    nr = len(rows)
    width = int(ct.max())
    off = np.arange(width)
    qs = H.qs[rows]
    m_lo = np.full(nr, -np.inf)
    z = np.zeros(nr)
    leaf = np.argmax(U, axis=1) if U.shape[1] else np.zeros(nr, dtype=np.int64)
    c2 = np.argmax(qc, axis=1) if U.shape[1] else leaf
    if H.extra is None and nr and use_kernel:
        res = leaf_reference(H.qs, rows, H.kp, st, ct, leaf, c2)
        if res is not None:
            return res
    for ci, cand in enumerate((leaf, c2)):
        sel = np.flatnonzero(cand != leaf) if ci else np.arange(nr)
        if len(sel) == 0:
            continue
        cb = cand[sel]
        valid = off[None, :] < ct[cb][:, None]
        pos = np.where(valid, st[cb][:, None] + off[None, :], st[cb][:, None])
        S = np.matmul(H.kp[pos], qs[sel][:, :, None])[:, :, 0]
        if H.extra is not None:
            ri = rows[sel]
            S = S + (H.key_only[t.perm[pos]] if H.key_only is not None else np.take_along_axis(full[ri], pos, axis=1))
        S = np.where(valid, S, -np.inf)
        mb = S.max(axis=1)
        fin = np.isfinite(mb)
        with np.errstate(invalid="ignore"):
            zz = np.exp(S - np.where(fin, mb, 0.0)[:, None]).sum(axis=1)
        better = fin & (mb > m_lo[sel])
        m_lo[sel] = np.where(better, mb, m_lo[sel])
        z[sel] = np.where(better, zz, z[sel])
        leaf[sel] = np.where(better, cb, leaf[sel])
    return m_lo, z, leaf


def _ranges(st, ct):
    """Concatenation of ``arange(s, s + c)`` over the pairs (vectorised)."""
    ct = np.asarray(ct, dtype=np.int64)
    ends = np.cumsum(ct)
    tot = int(ends[-1]) if len(ends) else 0
    return np.arange(tot, dtype=np.int64) + np.repeat(np.asarray(st, dtype=np.int64) - (ends - ct), ct)


class _Extra:
    """Node-wise maxima and minima of the additive term (mask/bias/causal) at each level, or None."""

    def __init__(self, H: _Head):
        self.H = H
        t = H.tree
        self.ko = H.key_only[t.perm] if (H.extra is not None and H.key_only is not None) else None
        self.full = self.inv = None
        if H.extra is not None and H.key_only is None:
            self.full = H.extra(np.arange(H.n_q), t.perm)  # (n_q, n) in tree order
            self.inv = np.empty(t.n, dtype=np.int64)
            self.inv[t.perm] = np.arange(t.n)
        self.cache = {}

    def bounds(self, lvl, rows, cols):
        """``(ub, lb)`` of shape broadcasting to ``(len(rows), len(cols))``; ``(None, None)`` without extras."""
        if self.H.extra is None:
            return None, None
        st = self.H.tree.starts[lvl]  # levels tile [0, n) with increasing starts
        if self.ko is not None:
            if lvl not in self.cache:
                self.cache[lvl] = (np.maximum.reduceat(self.ko, st), np.minimum.reduceat(self.ko, st))
            ub, lb = self.cache[lvl]
            return ub[None, cols], lb[None, cols]
        if lvl not in self.cache:
            self.cache[lvl] = (np.maximum.reduceat(self.full, st, axis=1), np.minimum.reduceat(self.full, st, axis=1))
        ub, lb = self.cache[lvl]
        return ub[np.ix_(rows, cols)], lb[np.ix_(rows, cols)]


def _greedy_prune(mass, cand, budget, passes: int = 3):
    """Drop candidate nodes of smallest mass while each row's dropped total stays within ``budget``.

    Instead of a sort, ``passes`` rounds each drop the remaining candidates of mass at most (remaining
    budget) / (number of remaining candidates): every round keeps the total within the budget.
    """
    drop = np.zeros_like(cand)
    left = np.maximum(budget, 0.0)
    live = cand.copy()
    for _ in range(passes):
        k = live.sum(axis=1)
        thr = np.where(k > 0, left / np.maximum(k, 1), 0.0)
        new = live & (mass <= thr[:, None])
        if not new.any():
            break
        spent = np.where(new, mass, 0.0).sum(axis=1)
        left = np.maximum(left - spent, 0.0)
        drop |= new
        live &= ~new
    return drop


def _hier_head(H: _Head, eps, group, aggregate, exit_frac=0.5, gather=12.0, overhead=4000.0):
    t = H.tree
    Lf = t.depth - 1
    n, nq, dv = H.n_k, H.n_q, H.v.shape[1]
    stL, ctL = t.starts[Lf], t.count[Lf]
    nL = len(stL)
    out = np.zeros((nq, dv))
    bound = np.zeros(nq)
    support = np.zeros(nq, dtype=np.int64)
    ctr = {"score_evals": 0, "bound_evals": 0, "nodes_pruned": 0, "nodes_aggregated": 0, "keys_aggregated": 0,
           "dense_rows": 0}
    if nq == 0:
        return out, bound, support, (), ctr
    ext = _Extra(H)
    rho_rel = H.rho / H.vmax if H.vmax > 0 else np.zeros(nq)
    beta = pruning_budget(eps, rho_rel) if H.vmax > 0 else np.zeros(nq)
    beta_a = beta / (4.0 * (1.0 + beta)) if aggregate else np.zeros(nq)
    beta_p = beta - (1.0 + beta) * beta_a  # D + (1 + beta) B <= beta: the bound stays within eps
    m_lo = np.full(nq, -np.inf)
    zb = np.zeros(nq)  # exact mass of the best leaf relative to exp(m_lo): at most the softmax mass
    best = np.zeros(nq, dtype=np.int64)
    # 1. ball bounds of the leaves for every query with something to save (eps above the rounding floor)
    rows = np.flatnonzero(beta > 0)
    allL = np.arange(nL)
    if len(rows):
        qc = H.qs[rows] @ t.center[Lf].T
        EU, EL = ext.bounds(Lf, rows, allL)
        # 2. the exact maximum and mass of each query's most promising leaf (largest ball bound or
        #    best-scoring centre)
        rq = H.qn[rows, None] * t.radius[Lf][None, :]
        Ub = qc + rq
        if EU is not None:
            Ub = Ub + EU
        m_lo[rows], zb[rows], best[rows] = _reference(H, rows, Ub, qc, ext.full)
        ctr["score_evals"] += 2 * len(rows) * int(ctL.max())
        # quick test on the ball bounds (no certificate involved): if pruning against the reference would
        # leave most keys open, the query is done densely and nothing more is computed for it
        ml = m_lo[rows]
        fin = np.isfinite(ml)
        with np.errstate(over="ignore", invalid="ignore"):
            mass = ctL[None, :] * np.exp(np.minimum(Ub - np.where(fin, ml, 0.0)[:, None], 700.0))
        opn = ~_greedy_prune(mass, np.isfinite(mass), beta_p[rows] * zb[rows], passes=2)
        if aggregate:  # leaves whose scores are known within 1e-2 may be taken by the far field
            with np.errstate(invalid="ignore"):  # -inf - -inf: a masked leaf, not tight
                opn &= ~(2.0 * rq + (0.0 if EU is None else EU - EL) <= 1e-2)
        keep = fin & (opn @ ctL <= exit_frac * n)
        rows, qc = rows[keep], qc[keep]
        if EU is not None and EU.shape[0] == len(keep):
            EU, EL = EU[keep], EL[keep]
        ctr["bound_evals"] += int(Ub.size)
        # 3. certified bounds of the remaining queries
        U, Lo = score_bounds(t, Lf, H.qs[rows], lower=True)
        ctr["bound_evals"] += 2 * int(U.size)
        if EU is not None:
            U = U + EU
            Lo = Lo + EL
    # rows without a finite reference (eps at the rounding floor, flat scores, masked best leaf) go dense
    dense_rows = np.ones(nq, dtype=bool)
    dense_rows[rows] = False
    # accumulators, relative to exp(m_lo)
    D = np.zeros(nq)
    VD = np.zeros(nq)
    NA = np.zeros((nq, dv))
    ZA = np.zeros(nq)
    ZAlo = np.zeros(nq)
    A = np.zeros(nq)
    B = np.zeros(nq)
    AM = np.zeros(nq)
    npr, nag, kag = (np.zeros(nq, dtype=np.int64) for _ in range(3))  # leaves pruned / aggregated, keys aggregated
    vnp = H.vn[t.perm]
    open_ = np.ones((len(rows), nL), dtype=bool)
    if len(rows):
        ml = m_lo[rows]
        z = zb[rows]
        forced = allL[None, :] == best[rows][:, None]
        du = U - ml[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            eu = np.exp(np.minimum(du, 700.0))
        # 4. pruning at the leaves: the leaves of smallest bounded mass while their total fits the budget
        mass = ctL[None, :] * eu
        prune = _greedy_prune(mass, ~forced, beta_p[rows] * z) | (~forced & (U == -np.inf))
        # queries whose bounds leave most keys open, even counting the leaves the far field could take, are
        # done densely (nothing else is computed for them); first without the lower bounds: only leaves of
        # scores known within 1e-2 can be taken by the far field
        opn = ~prune & ~forced
        nopen = opn @ ctL + ctL[best[rows]]
        heavy = nopen > exit_frac * n
        maybe = np.zeros_like(heavy)  # heavy unless the far field takes enough leaves
        if aggregate and heavy.any():
            with np.errstate(invalid="ignore"):  # -inf - -inf: a masked leaf, not tight
                ntight = (opn & ((U - Lo) <= 1e-2)) @ ctL
            maybe = heavy & (nopen - ntight <= exit_frac * n)
            heavy &= ~maybe
        if heavy.any():
            lt = ~heavy
            dense_rows[rows[heavy]] = True
            rows, U, Lo, ml, z, forced, du, eu, mass, prune, open_, maybe = (
                x[lt] for x in (rows, U, Lo, ml, z, forced, du, eu, mass, prune, open_, maybe))
        dl = Lo - ml[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            el = np.exp(np.minimum(dl, 700.0))
            # half spread per key, plus the floating-point error of both exponentials (their arguments are
            # sums and differences of numbers of magnitude up to |U|, |L|, |m_lo|)
            sp = 0.5 * (eu - el) + 8.0 * _U * (np.abs(U) + np.abs(Lo) + 2.0 * np.abs(ml)[:, None] + 4.0) * eu
        sp = np.where(np.isfinite(dl) & (du <= 700.0), sp, np.inf)
        if maybe.any():
            mr = np.flatnonzero(maybe)
            opn = ~prune[mr] & ~forced[mr]
            opn &= ~_greedy_prune(ctL[None, :] * sp[mr], opn, beta_a[rows[mr]] * z[mr])
            heavy = np.zeros(len(rows), dtype=bool)
            heavy[mr] = (opn @ ctL) + ctL[best[rows[mr]]] > exit_frac * n
            if heavy.any():
                dense_rows[rows[heavy]] = True
                lt = ~heavy
                rows, U, Lo, ml, z, forced, du, dl, eu, el, sp, mass, prune, open_ = (
                    x[lt] for x in (rows, U, Lo, ml, z, forced, du, dl, eu, el, sp, mass, prune, open_))
        if prune.any():
            # pruned mass, widened by the floating-point error of exp(U - m_lo) and of the sum
            with np.errstate(invalid="ignore"):
                mag = np.where(prune & np.isfinite(U), np.abs(U), 0.0).max(axis=1) + np.abs(ml)
            D[rows] = np.where(prune, mass, 0.0).sum(axis=1) * (1.0 + _U * (8.0 * (mag + 4.0) + 2.0 * nL))
            vmx = np.maximum.reduceat(vnp, stL)
            VD[rows] = np.where(prune & np.isfinite(U), vmx[None, :], 0.0).max(axis=1)
            npr[rows] = prune.sum(axis=1)
        open_ &= ~prune
        # 5. far field: leaves whose weights are known within a small spread get one common weight; the
        #    total weight error stays within the aggregation budget (smallest errors first).  (A coarser node
        #    is never better: its bounds come from its leaves, and its error is at least the sum of theirs.)
        if aggregate and len(rows):
            left = beta_a[rows] * z
            E = ctL[None, :] * sp  # inf where the leaf cannot be aggregated
            cand = open_ & ~forced & (E <= left[:, None])
            ar = np.flatnonzero(cand.any(axis=1))
            if len(ar):
                ac = np.flatnonzero(cand[ar].any(axis=0))
                sub = np.ix_(ar, ac)
                agg = _greedy_prune(E[sub], cand[sub], left[ar], passes=1)
                used = agg.any(axis=0)
                if used.any():
                    ac, agg = ac[used], agg[:, used]  # value sums only of the leaves taken
                    sub = np.ix_(ar, ac)
                    R = rows[ar]
                    pos = _ranges(stL[ac], ctL[ac])
                    vsum = np.add.reduceat(H.v[t.perm[pos]], np.concatenate([[0], np.cumsum(ctL[ac])[:-1]]), axis=0)
                    vmx = np.maximum.reduceat(vnp, stL)[ac]
                    w = np.where(agg, 0.5 * (eu[sub] + el[sub]), 0.0)
                    Eg = np.where(agg, E[sub], 0.0)
                    NA[R] += w @ vsum
                    wc = w * ctL[ac][None, :]
                    ZA[R] += wc.sum(axis=1)
                    ZAlo[R] += (np.where(agg, el[sub], 0.0) * ctL[ac][None, :]).sum(axis=1)
                    B[R] += Eg.sum(axis=1)
                    A[R] += Eg @ vmx
                    AM[R] += wc @ vmx
                    nag[R] = agg.sum(axis=1)
                    kag[R] = agg @ ctL[ac]
                    open_[sub] &= ~agg
    # 6. query groups for the exact GEMMs; a group that would cost more than a dense pass of its rows joins
    #    the dense rows
    groups = []
    if len(rows):
        groups, dense_local = _query_groups(best[rows], open_, ctL, n, group, gather, overhead)
        dense_rows[rows[dense_local]] = True
    # 7. exact block GEMMs over the union of the open leaves of each query group
    kept_groups = []
    if len(rows):
        nr = len(rows)
        M = np.empty(nr)
        ZS = np.empty(nr)
        NS = np.empty((nr, dv))
        if H.extra is None:
            support[rows] = open_ @ ctL
        M[:] = m_lo[rows]  # rows that joined the dense pass: any finite values (overwritten below)
        ZS[:] = 1.0
        NS[:] = 0.0
        for g in groups:
            r = rows[g]
            EX = open_[g]
            lv = np.flatnonzero(EX.any(axis=0))
            pos = _ranges(stL[lv], ctL[lv])
            idx = t.perm[pos]
            S = H.qs[r] @ H.kp[pos].T
            ctr["score_evals"] += int(S.size)
            if H.extra is not None:
                S += H.extra_rows(r, idx)
            own = EX[:, lv]
            if not own.all():
                S[~np.repeat(own, ctL[lv], axis=1)] = -np.inf  # each query uses only its own leaves
            if H.extra is not None:
                support[r] = np.isfinite(S).sum(axis=1)
            m = np.maximum(S.max(axis=1), m_lo[r])
            S -= m[:, None]
            np.exp(S, out=S)
            M[g] = m
            ZS[g] = S.sum(axis=1)
            NS[g] = S @ H.v[idx]
            kept_groups.append((r, EX))
        # combine with the far field, all rows at once; accumulators are relative to exp(m_lo): rescale
        # them by exp(m_lo - m) <= 1 (m: the largest computed score)
        sc = np.exp(m_lo[rows] - M)
        rel = 4.0 * _U * (np.abs(M) + np.abs(m_lo[rows]) + 4.0)  # relative error of sc
        N = NS + sc[:, None] * NA[rows]
        Zlo = ZS + sc * ZAlo[rows] * (1.0 - rel)
        Zt = ZS + sc * ZA[rows]
        o = N / np.where(Zt > 0, Zt, 1.0)[:, None]
        onorm = np.sqrt(np.einsum("ij,ij->i", o, o))
        # rounding of the aggregated sums (at most n terms each, then one rescaling)
        ga = 4.0 * (n + H.d + 8 + np.abs(M) + np.abs(m_lo[rows])) * _U  # with the rescaling by exp(m_lo - m)
        Ar = sc * (A[rows] + ga * AM[rows])
        Br = sc * (B[rows] + ga * ZA[rows])
        tb = truncation_bound(sc * D[rows] * (1.0 + rel), VD[rows], onorm, Zlo, Ar, Br) * (1 + 1e-9)
        out[rows] = o
        bound[rows] = tb + H.rho[rows]
    # 8. dense rows: a plain streamed dense pass
    drows = np.flatnonzero(dense_rows)
    if len(drows):
        out[drows], support[drows] = _dense_rows(H, drows)
        bound[drows] = H.rho[drows]
        ctr["score_evals"] += len(drows) * n
        kept_groups.insert(0, (drows, None))
    ctr["dense_rows"] = len(drows)
    sparse = ~dense_rows  # counts of the queries that were not finally done densely
    for key, x in (("nodes_pruned", npr), ("nodes_aggregated", nag), ("keys_aggregated", kag)):
        ctr[key] = int(x[sparse].sum())
    return out, bound, support, _Kept(t, kept_groups), ctr


class _Kept:
    """The keys computed exactly for each query (lazy): first ``(dense rows, all keys)``, then one
    ``(query index array, key indices)`` per query of the exact block GEMMs."""

    def __init__(self, tree, groups):
        self.tree = tree
        self.dense = [r for r, e in groups if e is None]
        sparse = [(r, e) for r, e in groups if e is not None]
        self.rows = np.concatenate([r for r, _ in sparse]) if sparse else np.zeros(0, dtype=np.int64)
        self.leaves = np.concatenate([e for _, e in sparse]) if sparse else np.zeros((0, len(tree.starts[-1])), bool)

    def __len__(self):
        return len(self.dense) + len(self.rows)

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i < len(self.dense):
            return self.dense[i], np.arange(self.tree.n)
        i -= len(self.dense)
        lv = np.flatnonzero(self.leaves[i])
        pos = _ranges(self.tree.starts[-1][lv], self.tree.count[-1][lv])
        return self.rows[i:i + 1], self.tree.perm[pos]

    def __iter__(self):
        return (self[i] for i in range(len(self)))
