"""Hierarchical attention: top-down traversal of a key tree with certified pruning and far-field aggregation.

For a group of queries the key hierarchy of :mod:`tropix.attention.keytree` is walked from the root.  At each
node the ball/box bounds give, for every query of the group, an upper bound ``U`` and a lower bound ``L`` on
the scores of all keys of the node; with ``m`` a lower bound on the query's maximum score, the node is

* **pruned** if ``exp(U - m) <= β_p / n`` for every query (its keys together weigh at most ``β_p`` times
  ``n_node / n`` of the maximum),
* **aggregated** (far field) if ``(exp(U - m) - exp(L - m)) / 2 <= β_a / n`` for every query: all its keys
  get the common weight ``(exp(U - m) + exp(L - m)) / 2`` and contribute ``weight * sum_j v_j`` (the node's
  value sum is precomputed), with a per-key weight error of at most half the spread,
* otherwise **expanded** into its children, or computed exactly (a dense block GEMM) at the leaves.

The error bound is :func:`tropix.attention.bounds.truncation_bound` with the pruned mass ``D`` and the
aggregation errors ``A`` and ``B``, plus the rounding bound; a row whose bound would exceed the request is
recomputed densely, so the guarantee ``|o_i - o_i^dense| <= eps * max|v|`` always holds.
"""

from __future__ import annotations

import numpy as np

from .bounds import truncation_bound, pruning_budget
from ._inputs import check_eps, prepare
from .keytree import score_bounds
from .region_sparse import _fallback_rows, _groups, _Head, _plan, _run_per_head
from .result import AttentionResult

__all__ = ["hierarchical"]


def hierarchical(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, tree=None,
                 leaf: int = 64, group: int = 32, aggregate: bool = True, check: bool = False) -> AttentionResult:
    """Attention over a key hierarchy with certified block pruning and optional far-field aggregation.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense` (leading batch/head dims are looped over).
    eps : float
        ``|o_i - o_i^dense|_2 <= eps * max_j |v_j|_2`` for every row, guaranteed; 0 = exact.
    tree : KeyTree, optional
        Prebuilt hierarchy of the keys (2-D ``k`` only).
    leaf, group : int
        Keys per leaf, queries traversing the tree together.
    aggregate : bool
        Allow far-field aggregation of whole nodes.
    check : bool
        Also compute dense attention; raise BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult
        ``counters`` has ``score_evals``, ``bound_evals``, ``nodes_pruned``, ``nodes_aggregated``,
        ``keys_aggregated`` and ``dense_fallback_rows``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> k = rng.normal(size=(3000, 4)); v = rng.normal(size=(3000, 2)); q = 6 + rng.normal(size=(20, 4))
    >>> r = hierarchical(q, k, v, eps=1e-2, check=True)
    >>> bool(np.all(r.relative_bound <= 1e-2)), r.counters["score_evals"] < 20 * 3000
    (True, True)
    """
    P = prepare(q, k, v, mask, bias, scale, causal, fname="hierarchical")
    eps = check_eps(eps, "hierarchical")

    def fn(arrays, hidx, tr):
        H = _Head(P, arrays, hidx, tr, leaf)
        out, bound, support, kept, counters = _hier_head(H, eps, group, aggregate)
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        counters["dense_fallback_rows"] = nfb
        counters["score_evals"] += nfb * H.n_k
        counters["_rho"] = H.rho
        return out, bound, support, kept, counters, H.vmax, "hierarchical"

    return _run_per_head(P, eps, "hierarchical", check, tree, fn)


def _children(tree):
    """Per level, [start, end) ranges of each node's children in the next level."""
    ch = []
    for lvl in range(tree.depth - 1):
        par = tree.parent[lvl + 1]
        n = len(tree.starts[lvl])
        ch.append((np.searchsorted(par, np.arange(n), side="left"), np.searchsorted(par, np.arange(n), side="right")))
    return ch


def _hier_head(H: _Head, eps, group, aggregate):
    t = H.tree
    Lf = t.depth - 1
    rows_all = np.arange(H.n_q)
    # lower bound on each query's maximum: exact scores of the leaf representatives
    keep, U_leaf, m_lo, best, _ = _plan(H, eps)
    # query groups: queries that keep similar leaves in the flat plan traverse the tree together
    qgroups = [rows for rows, _heavy in _groups(best, keep, group, t.count[Lf], heavy_group=group)]
    rho_rel = H.rho / H.vmax if H.vmax > 0 else np.zeros(H.n_q)
    beta = pruning_budget(eps, rho_rel) if H.vmax > 0 else np.zeros(H.n_q)
    beta_p = beta / 2 if aggregate else beta
    beta_a = beta / 2 if aggregate else np.zeros(H.n_q)
    logn = np.log(max(H.n_k, 1))
    with np.errstate(divide="ignore"):
        lp = np.log(beta_p) - logn  # prune if U - m_lo <= lp (per key)
        la = np.log(beta_a) - logn
    children = _children(t)
    vp = H.v[t.perm]
    vnp = H.vn[t.perm]
    vsum_cache, vmax_cache = {}, {}

    def node_vsum(lvl, nodes):
        if lvl not in vsum_cache:
            vsum_cache[lvl] = np.add.reduceat(vp, t.starts[lvl], axis=0)
        return vsum_cache[lvl][nodes]

    def node_vmax(lvl, nodes):
        if lvl not in vmax_cache:
            vmax_cache[lvl] = np.maximum.reduceat(vnp, t.starts[lvl])
        return vmax_cache[lvl][nodes]

    out = np.zeros((H.n_q, H.v.shape[1]))
    bound = np.zeros(H.n_q)
    support = np.zeros(H.n_q, dtype=np.int64)
    kept = []
    ctr = {"score_evals": 2 * H.n_q * int(t.count[Lf].max()), "bound_evals": int(U_leaf.size), "nodes_pruned": 0, "nodes_aggregated": 0,
           "keys_aggregated": 0}
    u = 2.0**-53
    for rows in qgroups:
        if len(rows) == 0:
            continue
        ml = m_lo[rows]
        fin_m = np.isfinite(ml)
        mls = np.where(fin_m, ml, 0.0)
        frontier = np.array([0])
        exact_leaves = []
        pruned = []  # (lvl, nodes, U)
        aggd = []  # (lvl, nodes, U, L)
        for lvl in range(t.depth):
            if len(frontier) == 0:
                break
            qs = H.qs[rows]
            U, Lo = score_bounds(t, lvl, qs, frontier, lower=True)
            ctr["bound_evals"] += U.size * 2
            EU = H.level_extra_ub(lvl, rows, frontier)
            if EU is not None:
                U = U + EU
                Lo = Lo + H.level_extra_lb(lvl, rows, frontier)
            rel_u = U - mls[:, None]
            rel_l = Lo - mls[:, None]
            can_prune = np.all((rel_u <= lp[rows, None]) & fin_m[:, None] | ~np.isfinite(U), axis=0)
            if aggregate:
                with np.errstate(over="ignore", invalid="ignore"):
                    spread = 0.5 * (np.exp(np.minimum(rel_u, 700.0)) - np.exp(np.minimum(rel_l, 700.0)))
                can_agg = ~can_prune & np.all(fin_m[:, None] & np.isfinite(Lo) & (spread <= np.exp(la[rows])[:, None]),
                                              axis=0)
            else:
                can_agg = np.zeros(len(frontier), dtype=bool)
            if np.any(can_prune):
                pruned.append((lvl, frontier[can_prune], U[:, can_prune]))
                ctr["nodes_pruned"] += int(can_prune.sum())
            if np.any(can_agg):
                aggd.append((lvl, frontier[can_agg], U[:, can_agg], Lo[:, can_agg]))
                ctr["nodes_aggregated"] += int(can_agg.sum())
                ctr["keys_aggregated"] += int(t.count[lvl][frontier[can_agg]].sum()) * len(rows)
            rest = frontier[~can_prune & ~can_agg]
            if lvl == t.depth - 1:
                exact_leaves = rest
            else:
                cs, ce = children[lvl]
                frontier = np.concatenate([np.arange(a, b) for a, b in zip(cs[rest], ce[rest])]) if len(rest) else \
                    np.zeros(0, dtype=np.int64)
        st, ct = t.starts[Lf], t.count[Lf]
        if len(exact_leaves):
            idx = t.perm[np.concatenate([np.arange(st[b], st[b] + ct[b]) for b in exact_leaves])]
        else:
            idx = np.zeros(0, dtype=np.int64)
        kept.append((rows, idx))
        S = H.qs[rows] @ H.k[idx].T
        ctr["score_evals"] += int(S.size)
        if H.extra is not None and len(idx):
            S = S + H.extra_rows(rows, idx)
        m_ex = S.max(axis=1) if len(idx) else np.full(len(rows), -np.inf)
        m = np.maximum(m_ex, ml)
        fin = np.isfinite(m)
        ms = np.where(fin, m, 0.0)
        W = np.exp(S - ms[:, None])
        Zs = W.sum(axis=1)
        N = W @ H.v[idx]
        Zlo = Zs.copy()
        A = np.zeros(len(rows))
        B = np.zeros(len(rows))
        agg_mass = np.zeros(len(rows))
        for lvl, nodes, U, Lo in aggd:
            cnt = t.count[lvl][nodes].astype(np.float64)
            eu = np.exp(np.minimum(U - ms[:, None], 700.0))
            el = np.exp(np.minimum(Lo - ms[:, None], 700.0))
            w = 0.5 * (eu + el)
            E = cnt[None, :] * 0.5 * (eu - el)
            N = N + w @ node_vsum(lvl, nodes)
            Zs = Zs + w @ cnt
            Zlo = Zlo + el @ cnt
            B += E.sum(axis=1)
            A += E @ node_vmax(lvl, nodes)
            agg_mass += w @ (cnt * node_vmax(lvl, nodes))
        D = np.zeros(len(rows))
        VD = np.zeros(len(rows))
        for lvl, nodes, U in pruned:
            cnt = t.count[lvl][nodes].astype(np.float64)
            with np.errstate(over="ignore"):
                D += (cnt[None, :] * np.exp(np.minimum(U - ms[:, None], 700.0))).sum(axis=1)
            VD = np.maximum(VD, np.where(np.isfinite(U), node_vmax(lvl, nodes)[None, :], 0.0).max(axis=1))
        D = np.where(fin, D, 0.0)
        o = N / np.where(Zs > 0, Zs, 1.0)[:, None]
        o[~fin] = 0.0
        onorm = np.linalg.norm(o, axis=1)
        A = A + 4 * (H.n_k + H.d + 8) * u * agg_mass  # rounding of the aggregated sums
        tb = truncation_bound(D, VD, onorm, np.where(fin, Zlo, 1.0), A, B) * (1 + 1e-9)
        out[rows] = o
        bound[rows] = np.where(fin, tb, 0.0) + H.rho[rows]
        support[rows] = np.isfinite(S).sum(axis=1) if len(idx) else 0
    return out, bound, support, tuple(kept), ctr
