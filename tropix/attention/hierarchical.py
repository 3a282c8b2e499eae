"""Hierarchical attention: a coarse-to-fine descent over the key tree with certified pruning of whole
subtrees, far-field aggregation of whole nodes at any level, query groups, and exact block GEMMs.

All steps work on arrays over all queries, or over lists of (query, node) pairs, at once (Python loops only
over tree levels and over the query groups of the exact GEMMs):

1. **Reference.**  One GEMM of the queries with the leaf centres of the key hierarchy
   (:mod:`tropix.attention.keytree`) gives every (query, leaf) centre score and ball bound.  The exact
   scores of the query's most promising leaf (largest ball bound or best-scoring centre; compiled loop,
   :mod:`tropix.attention._hier_kernels`) give ``m_lo`` (a lower bound on its maximum score) and ``z``,
   that leaf's mass relative to ``exp(m_lo)``.  This leaf is always computed exactly, so ``z exp(m_lo)`` is
   at most the softmax mass and every budget below is relative to it.  On the leaf-level path (step 2) a
   query for which pruning on the leaf ball bounds would leave more than half of the keys open (not
   counting leaves whose scores are known within ``1e-2``, which the far field may take) is done densely
   at once: on flat scores the method costs dense plus one small GEMM.  The descent finds such queries
   itself (step 4).
2. **Descent or leaf level** (``descent="auto"``).  The descent visits the coarsest tree level with at
   least 16 nodes, then each level with at least 3x as many nodes as the previous one visited, then the
   leaves (levels in between split only a few nodes each).  It pays when coarse nodes can be dropped whole,
   i.e. when the keys have low intrinsic dimension or a cluster hierarchy; in 32–64 dimensions without one
   (a node's ball is then nearly as wide as the data) almost every coarse node survives and the descent
   only adds work.  The cheap statistic: for up to 32 sampled queries, the (query, node) pairs the descent
   would bound, counted with the ball bounds alone; the descent is used when this is at most a quarter of
   the (query, leaf) pairs (``counters["descent_estimate_pairs"]``), otherwise (and always for trees of
   fewer than 64 leaves) every leaf is bounded for every query at once (the leaf-level path: steps 4–5 on
   dense (query, leaf) arrays).
3. **Descent.**  *Query groups*: queries are ordered by their best leaf and grouped (at most 16 per group)
   by the ancestor of that leaf at the deepest visited level with at most (queries / 16) nodes: a query
   hierarchy induced by the key tree.  A (group, node) pair is bounded with both balls,
   ``q.k <= c_q.c_k + |c_q| r_k + r_q |c_k| + r_q r_k`` (plus a rounding slack and the node's maximum of a
   key-only mask/bias), and pruned for all members at once when the bound is within every member's
   per-key allowance (what is left of its budget over ``n`` per key, so the total stays within it); an
   unpruned pair goes on to the node's children as a group pair while the key node's radius is the larger source of
   slack, and is expanded into its members' (query, node) pairs once the group's radius is (the per-query
   bounds are then tighter).  With a mask, bias or causal term that depends on the query, every query
   descends alone, and so does every query when there are fewer than 1024 (measured on hierarchically
   clustered keys: with 2048 queries the groups save up to a fifth of the bounded pairs and a few per cent
   of the time, with 256 queries their bookkeeping costs more than it saves).  *Query pairs*: a (query,
   node) pair gets the ball and box bounds (``U``, ``L``; masks and biases through their node-wise
   extremes), computed by GEMMs over the rows and nodes involved; the
   pairs of smallest bounded mass ``n_b exp(U - m_lo)`` are pruned while their total stays within half of
   the remaining pruning budget, then pairs whose per-key weight is known within a small spread are
   aggregated (far field, below) within half of the remaining aggregation budget, and the rest are
   replaced by their children at the next level.  The node holding the query's reference leaf is never
   dropped.  A node's bounds come from its own ball and box, so a node that is far away as a whole is
   decided with one bound, whatever its size.
4. **Pruning at the leaves.**  The open leaves are dropped in increasing bounded mass while the total
   (with what coarser levels dropped) stays within the pruning budget (a few threshold rounds instead of a
   sort); a leaf whose keys are all masked is dropped at no cost.  A query whose remaining leaves (not
   counting those the far field can take) still hold more than half of the keys goes dense.
5. **Far field** (``aggregate=True``).  Nodes (whole blocks of keys, at any visited level) whose weights
   are known within a small spread get the common weight ``(exp(U - m_lo) + exp(L - m_lo)) / 2`` and
   contribute ``weight * sum_j v_j`` (node value sums); the weight error per key is at most half the
   spread plus the floating-point error of both exponentials, and the total error stays within the
   aggregation budget (smallest errors first).
6. **Query groups for the exact part.**  Queries are ordered by their best leaf and cut into runs, either
   of equal length (a power of two up to ``group``) or by equal best leaf merged greedily, whichever
   minimises the modelled cost ``|union of open leaves| (gather + rows) + overhead`` (in units of one
   score).  A group whose modelled cost exceeds ``rows * n`` joins the dense rows instead: gathering many
   keys for few queries costs more than one dense pass over contiguous keys shared by all dense rows.
7. **Exact part.**  Each group computes the exact scores of the union of its members' open leaves as one
   dense block GEMM, each query using only its own leaves.
8. **Dense rows** (``counters["dense_rows"]``): one streamed dense pass.

Work counters: ``level{l}_bounded`` / ``_pruned`` / ``_aggregated`` / ``_descended`` count (query, node)
pairs at tree level ``l`` (``_open``: leaf pairs computed exactly), ``level{l}_group_bounded`` /
``_group_pruned`` / ``_group_descended`` / ``_group_expanded`` the (query group, node) pairs.

The bound is :func:`tropix.attention.bounds.truncation_bound` with the pruned mass ``D``, the aggregation
errors ``A`` (weighted by node ``max|v|``) and ``B`` (plus the floating-point error of the aggregated sums),
and the rounding bound of dense evaluation.  The budgets satisfy ``D + (1 + β) B <= β z``, which keeps the
bound within ``eps``; a row whose bound would exceed the request anyway is recomputed densely, so
``|o_i - o_i^dense| <= eps * max|v|`` always holds.
"""

from __future__ import annotations

import numpy as np

from .bounds import truncation_bound, pruning_budget
from .dense import _rownorm
from ..errors import ArgumentTypeError
from ._inputs import check_count, check_eps, check_tree, prepare
from .keytree import score_bounds
from .region_sparse import _dense_rows, _fallback_rows, _Head, _run_per_head
from .result import AttentionResult
from ._hier_kernels import leaf_reference

__all__ = ["hierarchical"]

_U = 2.0**-53
_GROUP_MIN_ROWS = 1024  # query groups in the descent from this many queries on (measured: below, they cost)


def hierarchical(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, tree=None,
                 leaf: int = 64, group: int = 64, aggregate: bool = True, descent="auto",
                 check: bool = False) -> AttentionResult:
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
    descent : bool or "auto"
        Coarse-to-fine descent over the key tree (True), only the leaf level (False), or the descent where a
        sampled estimate says it pays (``"auto"``; see the module docstring).
    check : bool
        Also compute dense attention; raise BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult
        ``counters`` has ``score_evals``, ``bound_evals``, ``nodes_pruned`` / ``nodes_aggregated`` (nodes of
        any level pruned / aggregated, summed over the queries not done densely; a group pair counts once
        per member), ``keys_aggregated``, the per-level counters ``level{l}_...`` of the module docstring,
        ``dense_rows``
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

    Keys in a cluster hierarchy (8 super-clusters of 8 clusters, d = 3): the descent drops whole subtrees
    above the leaves.

    >>> from tropix.attention import build_key_tree
    >>> S = 10 * rng.normal(size=(8, 3)); C2 = (S[:, None] + rng.normal(size=(8, 8, 3))).reshape(64, 3)
    >>> k2 = C2[rng.integers(0, 64, 6000)] + 0.05 * rng.normal(size=(6000, 3)); v2 = rng.normal(size=(6000, 2))
    >>> r2 = hierarchical(4 * C2[:10], k2, v2, eps=1e-3, descent=True, check=True)
    >>> Lf = build_key_tree(k2).depth - 1  # the leaf level
    >>> coarse = [key for key in r2.counters if key.startswith("level") and key.endswith("_pruned")]
    >>> sum(r2.counters[key] for key in coarse if int(key[5:].split("_")[0]) < Lf) > 0
    True
    """
    check_tree(tree, "hierarchical")
    leaf, group = check_count(leaf, "leaf", "hierarchical"), check_count(group, "group", "hierarchical")
    if not (isinstance(descent, (bool, np.bool_)) or (isinstance(descent, str) and descent == "auto")):
        # (descent="False" ran the descent: bool("False") is True)
        raise ArgumentTypeError(f"hierarchical: descent must be True, False or 'auto', got {descent!r}")
    P = prepare(q, k, v, mask, bias, scale, causal, fname="hierarchical", hash_keys=tree is not None)
    eps = check_eps(eps, "hierarchical")
    descent = descent if isinstance(descent, str) else bool(descent)

    def fn(arrays, hidx, tr):
        H = _Head(P, arrays, hidx, tr, leaf)
        out, bound, support, kept, counters = _hier_head(H, eps, group, aggregate, descent=descent)
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
    used = open_.any(axis=0)  # leaves open for no query change no union: drop them from every product
    if not used.all():
        open_, ctL = open_[:, used], ctL[used]
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
    is not key-only; None with a causal mask alone, which the keys' positions give).  Without extra term the
    compiled :func:`~tropix.attention._hier_kernels.leaf_reference` does the same (``use_kernel=False``:
    NumPy).
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
            if H.key_only is not None:
                S = S + H.key_only[t.perm[pos]]
            elif full is not None:
                S = S + np.take_along_axis(full[ri], pos, axis=1)
            else:  # a causal mask alone (the caller passes no full term): keys after the query are hidden
                S = np.where(t.perm[pos] <= ri[:, None], S, -np.inf)
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
        # (the term depends on the query: per-query descent, no query groups)
        self.query_dependent = H.extra is not None and H.key_only is None
        # a causal mask alone: a node's term is 0 for a query at or after its first key, -inf before (its
        # maximum), 0 at or after its last key (its minimum), from the keys' positions, without the term
        self.causal = self.query_dependent and bool(getattr(H, "causal_only", False))
        if self.query_dependent and not self.causal:
            self.full = H.extra(np.arange(H.n_q), t.perm)  # (n_q, n) in tree order
            self.inv = np.empty(t.n, dtype=np.int64)
            self.inv[t.perm] = np.arange(t.n)
        self.cache = {}

    def level(self, lvl):
        """``(ub, lb)`` of the extra term over the nodes of ``lvl``: ``(nodes,)`` (key-only term) or
        ``(n_q, nodes)``; a coarser level is reduced from the leaf level (levels nest)."""
        if lvl not in self.cache:
            t = self.H.tree
            Lf = t.depth - 1
            st = t.starts[lvl]  # levels tile [0, n) with increasing starts
            ax = 0 if self.ko is not None else 1
            if self.causal:
                qi = np.arange(self.H.n_q)[:, None]
                first, last = np.minimum.reduceat(t.perm, st), np.maximum.reduceat(t.perm, st)
                self.cache[lvl] = (np.where(first[None, :] <= qi, 0.0, -np.inf),
                                   np.where(last[None, :] <= qi, 0.0, -np.inf))
            elif lvl == Lf or self.ko is not None:
                x = self.ko if self.ko is not None else self.full
                self.cache[lvl] = (np.maximum.reduceat(x, st, axis=ax), np.minimum.reduceat(x, st, axis=ax))
            else:
                ubL, lbL = self.level(Lf)
                pos = np.searchsorted(t.starts[Lf], st)
                self.cache[lvl] = (np.maximum.reduceat(ubL, pos, axis=ax), np.minimum.reduceat(lbL, pos, axis=ax))
        return self.cache[lvl]

    def bounds(self, lvl, rows, cols):
        """``(ub, lb)`` of shape broadcasting to ``(len(rows), len(cols))``; ``(None, None)`` without extras."""
        if self.H.extra is None:
            return None, None
        ub, lb = self.level(lvl)
        if self.ko is not None:
            return ub[None, cols], lb[None, cols]
        return ub[np.ix_(rows, cols)], lb[np.ix_(rows, cols)]

    def pair_bounds(self, lvl, qi, b):
        """``(ub, lb)`` for the pairs (global query ``qi``, node ``b`` of ``lvl``); ``qi`` is not used for a
        key-only term."""
        ub, lb = self.level(lvl)
        if self.ko is not None:
            return ub[b], lb[b]
        return ub[qi, b], lb[qi, b]


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


def _descent_levels(t, first: int = 16, factor: float = 3.0):
    """Levels visited by the descent: the coarsest level with at least ``first`` nodes, then each next level
    with at least ``factor`` times as many nodes as the previous one visited, and always the leaves.

    (Levels in between split only a few nodes each: bounding them would cost a pass for little news.)
    """
    Lf = t.depth - 1
    out = []
    for lvl in range(t.depth):
        nn = len(t.starts[lvl])
        if (not out and nn >= first) or (out and nn >= factor * len(t.starts[out[-1]])):
            out.append(lvl)
    if not out or out[-1] != Lf:
        out.append(Lf)
    return out


def _query_groups_by_tree(t, best, levels, size: int):
    """A hierarchy over the queries induced by the key tree: queries ordered by their best leaf and cut into
    groups of at most ``size`` queries sharing the ancestor of their best leaf at the deepest visited level
    with at most ``len(best) / size`` nodes (at least ``size`` queries per node on average).  Returns
    ``(order, starts, counts)`` (local row indices)."""
    nr = len(best)
    Lf = t.depth - 1
    lg = levels[0]
    for lvl in levels:
        if len(t.starts[lvl]) * size <= nr:
            lg = lvl
    anc = np.searchsorted(t.starts[lg], t.starts[Lf][best], side="right") - 1
    order = np.lexsort((best, anc))
    a = anc[order]
    starts = np.flatnonzero(np.concatenate([[True], a[1:] != a[:-1]]))
    counts = np.diff(np.append(starts, nr))
    nch = -(-counts // size)  # runs longer than `size` are cut into chunks
    starts = np.repeat(starts, nch) + size * _ranges(np.zeros(len(nch), dtype=np.int64), nch)
    counts = np.diff(np.append(starts, nr))
    return order, starts, counts


class _Acc:
    """Per-row accumulators of the pruned mass and of the far field (relative to ``exp(m_lo)``), and the
    per-level work counters."""

    def __init__(self, H, nr, ml, vnp):
        self.H, self.nr, self.ml, self.vnp = H, nr, ml, vnp
        dv = H.v.shape[1]
        self.D, self.VD, self.dmag, self.dcnt = (np.zeros(nr) for _ in range(4))
        self.NA = np.zeros((nr, dv))
        self.ZA, self.ZAlo, self.A, self.B, self.AM = (np.zeros(nr) for _ in range(5))
        self.npr, self.nag, self.kag = (np.zeros(nr, dtype=np.int64) for _ in range(3))
        self.work = {}
        self.vmx = {}

    def count(self, lvl, what, x):
        key = f"level{lvl}_{what}"
        self.work[key] = self.work.get(key, 0) + int(x)

    def node_vmax(self, lvl):
        if lvl not in self.vmx:
            self.vmx[lvl] = np.maximum.reduceat(self.vnp, self.H.tree.starts[lvl])
        return self.vmx[lvl]

    def prune(self, lvl, pi, b, U, eu):
        """Drop the keys of node ``b`` (level ``lvl``) for local row ``pi``: mass ``count * eu``."""
        if len(pi) == 0:
            return
        nr = self.nr
        ct = self.H.tree.count[lvl][b]
        self.D += np.bincount(pi, weights=ct * eu, minlength=nr)
        fin = np.isfinite(U)
        np.maximum.at(self.VD, pi[fin], self.node_vmax(lvl)[b[fin]])
        np.maximum.at(self.dmag, pi[fin], np.abs(U[fin]))
        self.dcnt += np.bincount(pi, minlength=nr)
        self.npr += np.bincount(pi, minlength=nr)

    def aggregate(self, lvl, pi, b, eu, el, E):
        """Far field: node ``b`` of level ``lvl`` enters row ``pi`` with weight ``(eu + el) / 2`` per key and
        weight error ``E`` in total."""
        if len(pi) == 0:
            return
        t, nr = self.H.tree, self.nr
        st, ct = t.starts[lvl], t.count[lvl]
        mark = np.zeros(len(st), dtype=bool)
        mark[b] = True
        ub = np.flatnonzero(mark)
        ib = (np.cumsum(mark) - 1)[b]
        pos = _ranges(st[ub], ct[ub])
        vsum = np.add.reduceat(self.H.v[t.perm[pos]], np.concatenate([[0], np.cumsum(ct[ub])[:-1]]), axis=0)
        cnt = ct[b].astype(np.float64)
        vm = self.node_vmax(lvl)[b]
        w = 0.5 * (eu + el)
        np.add.at(self.NA, pi, w[:, None] * vsum[ib])
        self.ZA += np.bincount(pi, weights=w * cnt, minlength=nr)
        self.ZAlo += np.bincount(pi, weights=el * cnt, minlength=nr)
        self.B += np.bincount(pi, weights=E, minlength=nr)
        self.A += np.bincount(pi, weights=E * vm, minlength=nr)
        self.AM += np.bincount(pi, weights=w * cnt * vm, minlength=nr)
        self.nag += np.bincount(pi, minlength=nr)
        self.kag += np.bincount(pi, weights=cnt, minlength=nr).astype(np.int64)

    def pruned_mass(self, nL):
        """The pruned mass, widened by the floating-point error of the exponentials and of the sums."""
        mag = self.dmag + np.abs(self.ml)
        return self.D * (1.0 + _U * (8.0 * (mag + 4.0) + 2.0 * (self.dcnt + nL)))


def _spread(U, Lo, ml, eu):
    """``(el, sp)``: ``exp(Lo - m_lo)`` and the half spread of a key's weight plus the floating-point error of
    both exponentials (their arguments are sums and differences of numbers of magnitude up to |U|, |Lo|,
    |m_lo|); ``inf`` where the weight is not known."""
    dl = Lo - ml
    with np.errstate(over="ignore", invalid="ignore"):
        el = np.exp(np.minimum(dl, 700.0))
        sp = 0.5 * (eu - el) + 8.0 * _U * (np.abs(U) + np.abs(Lo) + 2.0 * np.abs(ml) + 4.0) * eu
    sp = np.where(np.isfinite(dl) & (U - ml <= 700.0), sp, np.inf)
    return el, sp


def _greedy_prune_pairs(pi, mass, cand, budget, passes: int = 3):
    """:func:`_greedy_prune` on a list of (row ``pi``, node) pairs: each row's dropped total stays within its
    ``budget``."""
    nr = len(budget)
    drop = np.zeros(len(pi), dtype=bool)
    left = np.maximum(budget, 0.0)
    live = cand.copy()
    for _ in range(passes):
        k = np.bincount(pi[live], minlength=nr)
        thr = np.where(k > 0, left / np.maximum(k, 1), 0.0)
        new = live & (mass <= thr[pi])
        if not new.any():
            break
        left = np.maximum(left - np.bincount(pi[new], weights=mass[new], minlength=nr), 0.0)
        drop |= new
        live &= ~new
    return drop


def _mark_index(idx, size):
    """``(unique, inverse)`` of integer indices in ``[0, size)`` without a sort."""
    mark = np.zeros(size, dtype=bool)
    mark[idx] = True
    return np.flatnonzero(mark), (np.cumsum(mark) - 1)[idx]


def _children(t, a, c, b):
    """Pairs of a node list ``b`` at level ``a`` with their descendants at level ``c``: ``(repeat, nodes)``."""
    first = np.searchsorted(t.starts[c], t.starts[a])
    nch = np.diff(np.append(first, len(t.starts[c])))
    cnt = nch[b]
    return cnt, _ranges(first[b], cnt)


def _descend(H, ext, rows, ml, bl, qcL, budget_p, budget_a, levels, qgroups, aggregate, acc):
    """Coarse-to-fine descent over the key tree for the local rows ``0..len(rows)-1``.

    At each level of ``levels`` the live (query group, node) pairs are bounded with both balls (pruned
    when the bound is within every member's per-key allowance, ``(budget_p - pruned so far) / n`` per key;
    expanded into per-query pairs when the group's radius is the larger source of slack, else passed on to
    the children), then the live (query, node) pairs with the ball and box bounds: the pairs of smallest
    bounded mass are pruned within half of what is left of ``budget_p``, then pairs of small weight spread
    are taken by the far field within half of what is left of ``budget_a``, and the rest are replaced by
    their children at the next level.  Every step keeps the totals within the budgets.  The node holding the
    row's reference
    leaf is never dropped.  Returns the leaf pairs ``(pi, pl, U, Lo)`` still open.
    """
    t = H.tree
    Lf = t.depth - 1
    nr = len(rows)
    qs = H.qs[rows]
    qn = H.qn[rows]
    slack_q = (16.0 * (H.d + 4) * _U * (t.kmax + 1e-300) + 1e-300) * 4.0
    l0 = levels[0]
    N0 = len(t.starts[l0])
    # initial pairs: groups x nodes (when grouping), the other rows x nodes
    gp_g = gp_b = np.zeros(0, dtype=np.int64)
    grouped = np.zeros(nr, dtype=bool)
    if qgroups is not None:
        order, gst, gct = qgroups
        multi = np.flatnonzero(gct > 1)
        if len(multi):
            gst, gct = gst[multi], gct[multi]
            memb = order[_ranges(gst, gct)]
            grouped[memb] = True
            gid = np.repeat(np.arange(len(gst)), gct)
            goff = np.concatenate([[0], np.cumsum(gct)[:-1]])
            # group balls (scaled queries), radius widened for the rounding of the distances
            cG = np.add.reduceat(qs[memb], goff, axis=0) / gct[:, None]
            dist = _rownorm(qs[memb] - cG[gid])  # scaled: no underflow of tiny distances (radius 0)
            rG = np.maximum.reduceat(dist, goff) * (1 + 4 * (H.d + 4) * _U)
            nG = _rownorm(cG)
            gp_g = np.repeat(np.arange(len(gst)), N0)
            gp_b = np.tile(np.arange(N0), len(gst))
    solo = np.flatnonzero(~grouped)
    qp_i = np.repeat(solo, N0)
    qp_b = np.tile(np.arange(N0), len(solo))
    for j, lvl in enumerate(levels):
        leaf = lvl == Lf
        c, r = t.center[lvl], t.radius[lvl]
        anc = np.searchsorted(t.starts[lvl], t.starts[Lf][bl], side="right") - 1  # node of the reference leaf
        # group pairs
        if len(gp_g):
            cn = _rownorm(c)
            gu, gi = _mark_index(gp_g, len(gct))
            bu, bi = _mark_index(gp_b, len(c))
            UG = (cG[gu] @ c[bu].T)[gi, bi]
            UG += nG[gp_g] * r[gp_b] + rG[gp_g] * (cn[gp_b] + r[gp_b])
            UG += slack_q * (nG[gp_g] + rG[gp_g])
            if ext.ko is not None:
                UG = UG + ext.pair_bounds(lvl, None, gp_b)[0]
            acc.count(lvl, "group_bounded", len(gp_g))
            # per-key allowance of what is left of each member's budget (the group total stays within it)
            with np.errstate(divide="ignore"):
                tau = np.minimum.reduceat(ml[memb] + np.log(np.maximum(budget_p - acc.D, 0.0)[memb] / H.n_k
                                                             * (1 - 1e-6)), goff)
            prn = UG <= tau[gp_g]
            if prn.any():
                pidx = np.flatnonzero(prn)
                reps = gct[gp_g[pidx]]
                mi = order[_ranges(gst[gp_g[pidx]], reps)]
                mb = np.repeat(gp_b[pidx], reps)
                owner = np.repeat(np.arange(len(pidx)), reps)
                # never drop a member's reference leaf (a guard: the bound is above that member's maximum)
                bad = np.bincount(owner[mb == anc[mi]], minlength=len(pidx)) > 0
                if bad.any():
                    prn[pidx[bad]] = False
                    keep = ~bad[owner]
                    mi, mb, owner = mi[keep], mb[keep], owner[keep]
                mU = UG[pidx][owner]
                with np.errstate(over="ignore"):
                    eu = np.exp(np.minimum(mU - ml[mi], 700.0))
                acc.prune(lvl, mi, mb, mU, eu)
                acc.count(lvl, "group_pruned", int((~bad).sum()))
            rest = ~prn
            expand = rest & (leaf | (rG[gp_g] * (cn[gp_b] + r[gp_b]) > nG[gp_g] * r[gp_b]))
            if expand.any():
                eidx = np.flatnonzero(expand)
                reps = gct[gp_g[eidx]]
                mi = order[_ranges(gst[gp_g[eidx]], reps)]
                qp_i = np.concatenate([qp_i, mi])
                qp_b = np.concatenate([qp_b, np.repeat(gp_b[eidx], reps)])
                acc.count(lvl, "group_expanded", len(eidx))
            down = rest & ~expand
            gp_g, gp_b = gp_g[down], gp_b[down]
            if len(gp_g):
                acc.count(lvl, "group_descended", len(gp_g))
                cnt, gp_b = _children(t, lvl, levels[j + 1], gp_b)
                gp_g = np.repeat(gp_g, cnt)
        if len(qp_i) == 0:
            continue
        # query pairs: ball and box bounds through GEMMs over the rows and nodes involved
        ru, ri = _mark_index(qp_i, nr)
        bu, bi = _mark_index(qp_b, len(c))
        if leaf:
            qc = qcL[qp_i, qp_b]
        else:
            qc = (qs[ru] @ c[bu].T)[ri, bi]
        mid = 0.5 * (t.lo[lvl][bu] + t.hi[lvl][bu])
        half = 0.5 * (t.hi[lvl][bu] - t.lo[lvl][bu])
        qm = (qs[ru] @ mid.T)[ri, bi]
        aq = (np.abs(qs[ru]) @ half.T)[ri, bi]
        qnr = qn[qp_i] * r[qp_b]
        sl = slack_q * qn[qp_i]
        U = np.minimum(qc + qnr, qm + aq) + sl
        Lo = np.maximum(qc - qnr, qm - aq) - sl
        if ext.H.extra is not None:
            EU, EL = ext.pair_bounds(lvl, rows[qp_i], qp_b)
            U = U + EU
            Lo = Lo + EL
        acc.count(lvl, "bounded", len(qp_i))
        if leaf:
            return qp_i, qp_b, U, Lo
        forced = qp_b == anc[qp_i]
        with np.errstate(over="ignore", invalid="ignore"):
            eu = np.exp(np.minimum(U - ml[qp_i], 700.0))
        prn = _greedy_prune_pairs(qp_i, t.count[lvl][qp_b] * eu, ~forced, 0.5 * (budget_p - acc.D), passes=2)
        if prn.any():
            acc.prune(lvl, qp_i[prn], qp_b[prn], U[prn], eu[prn])
            acc.count(lvl, "pruned", prn.sum())
        rest = ~forced & ~prn
        if aggregate and rest.any():
            el, sp = _spread(U, Lo, ml[qp_i], eu)
            E = t.count[lvl][qp_b] * sp
            agg = _greedy_prune_pairs(qp_i, E, rest & (E < np.inf), 0.5 * (budget_a - acc.B), passes=1)
            if agg.any():
                acc.aggregate(lvl, qp_i[agg], qp_b[agg], eu[agg], el[agg], t.count[lvl][qp_b[agg]] * sp[agg])
                acc.count(lvl, "aggregated", agg.sum())
                rest &= ~agg
        down = rest | forced
        qp_i, qp_b = qp_i[down], qp_b[down]
        acc.count(lvl, "descended", len(qp_i))
        cnt, qp_b = _children(t, lvl, levels[j + 1], qp_b)
        qp_i = np.repeat(qp_i, cnt)
    z = np.zeros(0, dtype=np.int64)
    return z, z, np.zeros(0), np.zeros(0)


def _descent_estimate(H, ext, rows, ml, budget, levels, limit=np.inf):
    """Number of (query, node) pairs the descent would bound for ``rows``, estimated with the ball bounds
    alone and each row's per-key allowance (``budget / n`` per key): the cheap statistic that chooses
    between the descent and the leaf-level path.  Stops counting once ``limit`` is exceeded."""
    t = H.tree
    qs, qn = H.qs[rows], H.qn[rows]
    with np.errstate(divide="ignore"):
        thr = ml + np.log(budget / H.n_k)
    alive = np.ones((len(rows), len(t.starts[levels[0]])), dtype=bool)
    pairs = alive.size
    for a, c in zip(levels[:-1], levels[1:]):
        U = qs @ t.center[a].T + qn[:, None] * t.radius[a][None, :]
        EU, _ = ext.bounds(a, rows, np.arange(len(t.starts[a])))
        if EU is not None:
            U = U + EU
        alive &= ~(U <= thr[:, None])
        first = np.searchsorted(t.starts[c], t.starts[a])
        nch = np.diff(np.append(first, len(t.starts[c])))
        pairs += int((alive @ nch).sum())
        if pairs > limit:  # enough to decide
            break
        alive = np.repeat(alive, nch, axis=1)
    return pairs


def _descent_rows(H, ext, rows, qc, m_lo, zb, best, beta_p, beta_a, levels, qgroup, aggregate, exit_frac):
    """Steps 3–5 of the descent path for ``rows`` (local index ``i`` = ``rows[i]``; ``qc``: their leaf centre
    scores).  Returns ``(live, pi, pl, openp, acc)``: the rows not sent to the dense pass, the leaf pairs of
    the live rows with those computed exactly (``openp``), and the accumulators (all rows)."""
    t = H.tree
    Lf = t.depth - 1
    n = H.n_k
    ctL = t.count[Lf]
    nr = len(rows)
    ml, z, bl = m_lo[rows], zb[rows], best[rows]
    bp, ba = beta_p[rows] * z, beta_a[rows] * z  # budgets of pruned mass and far-field weight error
    # 3. coarse-to-fine descent over the key tree, query groups first where the query hierarchy pays
    qgroups = None
    if qgroup > 1 and not ext.query_dependent and nr >= _GROUP_MIN_ROWS:
        qgroups = _query_groups_by_tree(t, bl, levels, qgroup)
    acc = _Acc(H, nr, ml, H.vn[t.perm])
    pi, pl, U, Lo = _descend(H, ext, rows, ml, bl, qc, bp, ba, levels, qgroups, aggregate, acc)
    # 4. pruning at the leaves with what is left of the budget: the leaves of smallest bounded mass while
    #    their total fits; a leaf whose keys are all masked is dropped at no cost
    forced = pl == bl[pi]
    ctp = ctL[pl].astype(np.float64)
    mlp = ml[pi]
    with np.errstate(over="ignore", invalid="ignore"):
        eu = np.exp(np.minimum(U - mlp, 700.0))
    mass = ctp * eu
    free = ~forced & (U == -np.inf)
    prune = _greedy_prune_pairs(pi, mass, ~forced & ~free, bp - acc.D) | free
    # queries whose bounds leave most keys open, even counting the leaves the far field could take, are
    # done densely (nothing else is computed for them); first without the lower bounds: only leaves of
    # scores known within 1e-2 can be taken by the far field
    opn = ~prune & ~forced
    nopen = np.bincount(pi, weights=ctp * opn, minlength=nr) + ctL[bl]
    heavy = nopen > exit_frac * n
    maybe = np.zeros_like(heavy)  # heavy unless the far field takes enough leaves
    if aggregate and heavy.any():
        with np.errstate(invalid="ignore"):  # -inf - -inf: a masked leaf, not tight
            ntight = np.bincount(pi, weights=ctp * (opn & ((U - Lo) <= 1e-2)), minlength=nr)
        maybe = heavy & (nopen - ntight <= exit_frac * n)
        heavy &= ~maybe
    el, sp = _spread(U, Lo, mlp, eu)
    if maybe.any():
        sel = opn & maybe[pi]
        take = _greedy_prune_pairs(pi, ctp * sp, sel, ba - acc.B)
        heavy |= maybe & (np.bincount(pi, weights=ctp * (sel & ~take), minlength=nr) + ctL[bl] > exit_frac * n)
    live = ~heavy
    if heavy.any():
        kp = live[pi]
        pi, pl, U, forced, ctp, eu, el, sp, prune = (x[kp] for x in (pi, pl, U, forced, ctp, eu, el, sp, prune))
    acc.prune(Lf, pi[prune], pl[prune], U[prune], eu[prune])
    acc.count(Lf, "pruned", prune.sum())
    openp = ~prune
    # 5. far field at the leaves: leaves whose weights are known within a small spread get one common
    #    weight; the total weight error stays within what is left of the budget (smallest errors first)
    if aggregate and len(pi):
        left = ba - acc.B
        E = ctp * sp  # inf where the leaf cannot be aggregated
        cand = openp & ~forced & (E <= left[pi])
        if cand.any():
            agg = _greedy_prune_pairs(pi, E, cand, left, passes=1)
            acc.aggregate(Lf, pi[agg], pl[agg], eu[agg], el[agg], E[agg])
            acc.count(Lf, "aggregated", agg.sum())
            openp &= ~agg
    acc.count(Lf, "open", openp.sum())
    return live, pi, pl, openp, acc


def _hier_head(H: _Head, eps, group, aggregate, exit_frac=0.5, gather=12.0, overhead=4000.0, descent="auto",
               qgroup=16):
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
    levels = _descent_levels(t) if descent and (nL >= 64 or descent is True) else [Lf]
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
        ml = m_lo[rows]
        fin = np.isfinite(ml)
        # the descent or the leaf-level path (a sampled estimate of the descent's work, see the docstring)
        if len(levels) > 1 and descent == "auto" and fin.any():
            smp = rows[fin]
            smp = smp if len(smp) <= 32 else smp[np.linspace(0, len(smp) - 1, 32).astype(np.int64)]
            lim = 0.25 * len(smp) * nL
            pairs = _descent_estimate(H, ext, smp, m_lo[smp], beta_p[smp] * zb[smp], levels, lim)
            ctr["descent_estimate_pairs"] = int(pairs * fin.sum() / len(smp))  # a lower bound above the limit
            if pairs > lim:
                levels = [Lf]
        if len(levels) > 1:
            keep = fin  # the descent itself finds the queries that pruning cannot help
        else:
            # quick test on the ball bounds (no certificate involved): if pruning against the reference
            # would leave most keys open, the query is done densely and nothing more is computed for it
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
    npr, nag, kag = (np.zeros(nq, dtype=np.int64) for _ in range(3))  # nodes pruned / aggregated, keys aggregated
    open_ = np.zeros((0, nL), dtype=bool)
    if len(rows) and len(levels) > 1:
        # 3.-5. the descent, pruning and far field at the leaves (_descent_rows)
        live, pi, pl, openp, acc = _descent_rows(H, ext, rows, qc, m_lo, zb, best, beta_p, beta_a, levels, qgroup,
                                                 aggregate, exit_frac)
        dense_rows[rows[~live]] = True
        for key, val in acc.work.items():
            ctr[key] = ctr.get(key, 0) + val
        ctr["bound_evals"] += 2 * sum(v for k_, v in acc.work.items() if k_.endswith("bounded"))
        rows = rows[live]
        newi = np.cumsum(live) - 1
        open_ = np.zeros((len(rows), nL), dtype=bool)
        open_[newi[pi[openp]], pl[openp]] = True
        D[rows] = acc.pruned_mass(nL)[live]
        for dst, src in ((VD, acc.VD), (NA, acc.NA), (ZA, acc.ZA), (ZAlo, acc.ZAlo), (A, acc.A), (B, acc.B),
                         (AM, acc.AM), (npr, acc.npr), (nag, acc.nag), (kag, acc.kag)):
            dst[rows] = src[live]
    elif len(rows):
        # the leaf-level path: certified ball/box bounds of every leaf for every remaining query
        U, Lo = score_bounds(t, Lf, H.qs[rows], lower=True)
        ctr["bound_evals"] += 2 * int(U.size)
        ctr[f"level{Lf}_bounded"] = int(U.size)
        if EU is not None:
            U = U + EU
            Lo = Lo + EL
        vnp = H.vn[t.perm]
        open_ = np.ones((len(rows), nL), dtype=bool)
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
        for what, x in (("pruned", npr[rows].sum()), ("aggregated", nag[rows].sum()), ("open", open_.sum())):
            ctr[f"level{Lf}_{what}"] = int(x)
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
        onorm = _rownorm(o)  # |o| of tiny values must not underflow to 0 (it would halve the bound)
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
