"""Region-sparse attention: each query keeps only the keys whose score is within a margin of its maximum.

Geometry.  The key ``j`` is the argmax of ``q . k_j + b_j`` exactly on the normal cone of ``conv(K)`` at
``k_j`` (with per-key biases ``b_j``: the cells of the regular subdivision induced by the lifted points
``(k_j, b_j)``).  Softmax at finite temperature blurs the cells: the keys that matter for ``q`` are those in
the *τ-active set* ``S_τ(q) = { j : s_j >= max_l s_l - τ }``, i.e. the cells within distance ``τ`` of ``q``
in score.  A key outside ``S_τ`` carries weight at most ``exp(-τ)`` times the largest.

Algorithm (no dense score matrix is formed).

1. Blocks of keys from :func:`~tropix.attention.keytree.build_key_tree` give, per (query, block), an upper
   bound ``U`` on every score of the block (ball/box bounds); the exact maximum over two candidate blocks
   (largest ``U``, best-scoring center) is a lower bound ``m_lo`` on the query's maximum.
2. For each query, blocks are dropped in increasing order of their bounded mass ``n_b exp(U - m_lo)`` while
   the total stays below the budget ``β = e/(2 - e)`` (``e`` = ``eps`` minus the rounding floor).
3. Queries are grouped by their best representative block; each group computes the exact scores of the
   union of its kept blocks as one dense GEMM.
4. Within the computed keys, each query keeps its τ-active set with the largest margin τ the remaining
   budget allows; the output is the softmax over that set.
5. The bound :func:`~tropix.attention.bounds.truncation_bound` (dropped mass: exact for computed keys,
   bounded for pruned blocks) plus the rounding bound is reported per row; a row whose bound would exceed
   ``eps * max|v|`` (it cannot happen with exact arithmetic, but is checked) is recomputed densely.

Compiled path.  For NumPy float input without mask, bias or causal term, with one that depends on the
key only (a key-padding mask, a per-key bias: added to every exact score, its largest value per leaf to the
leaf bounds), with a bias alone that depends on the query and the key (``(n_q, n_k)``: each query's row is
added to its exact scores; a leaf's bound adds the row's largest ``|b|`` from validation, or, where that is
too loose to drop the leaf at once, the largest bias over the leaf's own keys, gathered from the row), with
a mask alone that depends on the query and the key (a key the query's row hides scores ``-inf``; the leaf
bounds stay those of all keys, since a mask only removes mass: read as it is, not made a ``(n_q, n_k)``
float64 bias first), or with a causal mask alone (a key after the query scores ``-inf``; a leaf whose keys
all come after it has bound ``-inf``), steps 1-4 run per query in one numba pass
(:mod:`tropix.attention._kernels`):
the blocks are visited in decreasing bounded mass ``n_b exp(U_b - m0)`` (``m0`` the exact maximum of the
block of largest ``U`` and of the best-scoring centre's block) and computed exactly until the rest is at most
half the budget times the computed mass; the other half drops computed keys of negligible weight.  A query that would compute more than
``max(n/32, 128)`` keys stops and is done densely (a BLAS row is cheaper than a long scalar walk).  With at
least ``4 * HOPELESS_SAMPLE`` queries and leaf balls wider than ``HOPELESS_RADIUS`` of the largest key norm,
an evenly spread sample of 32 walks first; when 90 % of it stops
(keys without geometry the bounds can use, e.g. i.i.d. Gaussian keys), the other queries are done densely
without their bounds or walk (i.i.d. keys at 16384: 1.14 -> 1.04-1.06 of dense; causal self-attention at
4096: 1.49 -> 0.99, the dense rows of a causal mask alone hiding only the keys after each query).  The
certificate is the same as in step 5.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from .._array import from_numpy, to_numpy
from .._compiled import compiled
from ..errors import ShapeError
from .bounds import pruning_budget, rounding_bound, truncation_bound
from .dense import _dense, _is_float64, _np_dtype, _rownorm, dense_rounding_bound, verify_against_dense
from ._inputs import (_gather2, Prepared, check_count, check_eps, check_tree, count_last, extra_numpy, prepare,
                      visible_counts)
from .keytree import build_key_tree, score_bounds, upper_bounds_first
from ._kernels import kernel_available, region_sparse_fast
from .result import AttentionResult, capped

__all__ = ["region_sparse"]


def region_sparse(q, k, v, eps=1e-3, mask=None, bias=None, scale=None, causal=False, *, tree=None,
                  leaf: int = 64, group: int = 256, threshold: bool = True, screen: bool = False,
                  check: bool = False) -> AttentionResult:
    """Attention restricted, per query, to the keys within a certified score margin of the maximum.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense` (leading batch/head dims are looped over).
    eps : float
        Tolerance: ``|o_i - o_i^dense|_2 <= eps * max_j |v_j|_2`` for every row, guaranteed; 0 = exact.
    tree : KeyTree, optional
        A prebuilt key hierarchy (only for 2-D ``k``); built on the fly otherwise.
    leaf, group : int
        Keys per block, queries per exact GEMM group.
    threshold : bool
        Apply step 4 (key-level τ-active sets).  If False every computed key is used.
    screen : bool
        Rows the compiled block walk gives up on are first tried by float32 screening
        (:func:`~tropix.attention.screened`) before being computed densely: worth it when the scores are
        peaked but the keys have no geometry the block bounds can use (``auto`` decides this from a sample).
    check : bool
        Also compute dense attention and raise BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> C = rng.normal(size=(40, 8)); k = C[rng.integers(0, 40, 2000)] + 0.05 * rng.normal(size=(2000, 8))
    >>> v = rng.normal(size=(2000, 4)); q = 10 * k[:5]
    >>> r = region_sparse(q, k, v, eps=1e-3, check=True)
    >>> bool(np.all(r.relative_bound <= 1e-3)), int(np.median(r.support)) < 200
    (True, True)
    """
    check_tree(tree, "region_sparse")
    leaf, group = check_count(leaf, "leaf", "region_sparse"), check_count(group, "group", "region_sparse")
    P = prepare(q, k, v, mask, bias, scale, causal, fname="region_sparse", hash_keys=tree is not None)
    eps = check_eps(eps, "region_sparse")
    return _run_per_head(P, eps, "region_sparse", check, tree,
                         _region_head_fn(P, eps, leaf, group, threshold, screen))


def _run_per_head(P: Prepared, eps, name, check, tree, head_fn):
    """Loop ``head_fn`` over the leading dims, assemble an AttentionResult in the input's library."""
    if tree is not None and len(P.batch_shape):
        raise ShapeError(f"{name}: a prebuilt tree needs 2-D keys (one head)")
    q = np.asarray(to_numpy(P.q), dtype=np.float64)
    k = np.asarray(to_numpy(P.k), dtype=np.float64)
    v = np.asarray(to_numpy(P.v), dtype=np.float64)
    batch = P.batch_shape
    out = np.zeros(batch + (P.n_q, P.d_v))
    bound = np.zeros(batch + (P.n_q,))
    support = np.zeros(batch + (P.n_q,), dtype=np.int64)
    vmax = np.zeros(batch)
    kept = []
    counters = {}
    methods = set()
    rhos = []
    for hidx in np.ndindex(*batch) if batch else [()]:
        o, b, s, kp, cnt, vm, meth = head_fn((q[hidx], k[hidx], v[hidx]), hidx, tree)
        rhos.append(cnt.pop("_rho"))
        out[hidx], bound[hidx], support[hidx], vmax[hidx] = o, b, s, vm
        kept.append(kp)
        methods.add(meth)
        for key, val in cnt.items():
            counters[key] = counters.get(key, 0) + int(val)
    odt = _out_dtype(P)
    output = from_numpy(out.astype(np.float64), P.q)
    if not isinstance(output, np.ndarray):
        output = P.xp.astype(output, odt) if output.dtype != odt else output
    elif output.dtype != _np_dtype(odt):
        output = output.astype(_np_dtype(odt))
    slack = np.zeros(batch + (P.n_q,))
    for hidx, rho in zip(np.ndindex(*batch) if batch else [()], rhos):
        slack[hidx] = rho  # the rounding bound of dense evaluation of this head
    if not _is_float64(P.q.dtype):
        # the reference of check/verify (dense attention in the input's narrower dtype) errs by its own rounding
        # bound (the rounding of the float64 output to that dtype is in every head's rho, see _HeadData)
        slack = np.maximum(slack, dense_rounding_bound(P))
    if P.mask is not None or P.bias is not None:  # a query that sees no key: output 0, exactly (bound 0)
        none = (visible_counts(P) == 0) & ~np.any(out != 0, axis=-1)  # (exact attention there is 0 by definition)
        if none.any():
            bound = np.where(none, 0.0, bound)
            slack = np.where(none, 0.0, slack)
    method = methods.pop() if len(methods) == 1 else name
    res = AttentionResult(output, capped(bound, output, vmax), eps, vmax, support, method, counters, tuple(kept),
                          slack)
    if check:
        verify_against_dense(res, P)
    return res


def _out_dtype(P: Prepared):
    """dtype of the output: that of ``q``, ``k`` and ``v`` promoted (as dense attention returns; float32 ``q``
    and ``k`` with float64 values of 1e300 must not be rounded to float32)."""
    return P.xp.result_type(P.q.dtype, P.k.dtype, P.v.dtype)


def _cast_floor(dtype, vmax: float, d_v: int) -> float:
    """Bound on ``|fl(o) - o|_2`` when a float64 output row (``|o| <= vmax``, up to rounding) is rounded to the
    input's narrower floating ``dtype`` (0 for float64): each entry errs by at most ``u |o_c| + u tiny``
    (``tiny`` the smallest normal number; subnormal spacing ``2 u tiny``)."""
    if _is_float64(dtype):
        return 0.0
    name = str(dtype).split(".")[-1]  # float32, torch.float32, array_api_strict.float32
    u, tiny = _roundoff_tiny(name)
    return (u * vmax * (1 + 1e-9) + u * tiny * np.sqrt(d_v)) * (1 + 1e-6)


@lru_cache(maxsize=16)
def _roundoff_tiny(name: str) -> tuple:
    """``(u, tiny)``: unit roundoff and smallest normal number of the floating dtype ``name``."""
    try:
        fi = np.finfo(np.dtype(name))
        return float(fi.eps) / 2, float(fi.tiny)
    except TypeError:  # no NumPy dtype of that name (e.g. bfloat16): 8 significand bits, float32's range
        return 2.0**-8, 2.0**-126


def _head_bias(P: Prepared, hidx):
    """The bias of head ``hidx`` as a 2-D float64 array ``(1 or n_q, 1 or n_k)`` and its row statistics
    ``(count of entries above -inf, largest |b| among them)`` per row (validation's when it computed them)."""
    nd = len(P.batch_shape) + 2
    b = np.asarray(to_numpy(P.bias), dtype=np.float64)
    b = b.reshape((1,) * (nd - b.ndim) + b.shape)
    idx = tuple(0 if b.shape[t] == 1 else hidx[t] for t in range(len(hidx)))
    b2 = b[idx]
    if P.bias_cnt is not None:
        return b2, P.bias_cnt[idx], P.bias_absmax[idx]
    from ._screen_numba import bias_stats

    cnt, am = np.empty(b2.shape[0], dtype=np.int64), np.empty(b2.shape[0])
    bias_stats(b2, cnt, am)
    return b2, cnt, am


class _HeadData:
    """NumPy data of one head: scaled queries, keys, values, extra term, norms, rounding bound."""

    def __init__(self, P: Prepared, arrays, hidx, kmax=None):
        q, k, v = arrays
        self.qs = q * P.scale
        self.k, self.v = k, v
        self.n_q, self.n_k, self.d = q.shape[0], k.shape[0], q.shape[1]
        self.extra, self.key_only = extra_numpy(P, hidx)
        self.causal = P.causal
        self.causal_only = P.causal and P.mask is None and P.bias is None  # the extra term is the causal mask
        self.bias_only = P.bias is not None and P.mask is None and not P.causal  # the extra term is a bias
        one = hidx == () or P.batch_shape == ()  # the norms validation computed are those of this head
        self.vn = P.vnorm if (one and P.vnorm is not None) else _rownorm(v)
        self.kbf16 = P.kbf16 if one else None  # the keys packed for the bfloat16 screen by validation
        self.ki8 = P.ki8 if one else None  # or for the int8 screen
        self.vmax = float(self.vn.max()) if self.n_k else 0.0
        self.qn = _rownorm(self.qs)
        if kmax is None and self.n_k:
            kmax = float((P.knorm if (one and P.knorm is not None) else _rownorm(k)).max())
        self.kmax = kmax or 0.0
        self.bias2d = self.bias_nfin = None
        self.bmax = 0.0
        if P.bias is not None:
            # this head's bias (2-D, (1 or n_q, 1 or n_k)), its largest finite |b| and, per query, the keys it
            # leaves visible, from validation's row statistics or one compiled pass over the head's bias
            self.bias2d, cnt, am = _head_bias(P, hidx)
            self.bias_absmax = am
            self.bmax = float(am.max()) if am.size else 0.0
            self.bias_nfin = np.broadcast_to(cnt * (self.n_k if self.bias2d.shape[1] == 1 else 1), (self.n_q,))
        # the bias rounded to float32 by validation (a 2-D bias, the same for every head), for the screen
        self.bias32 = P.bias32 if (P.bias is not None and P.bias32 is not None and P.bias.ndim == 2) else None
        self.rho = rounding_bound(_rownorm(q), self.kmax, self.bmax, self.n_k, self.d, self.vmax, P.scale,
                                  d_v=v.shape[1])
        # the float64 output is returned in the input's dtype: every bound (all add rho) covers that rounding
        self.rho = self.rho + _cast_floor(_out_dtype(P), self.vmax, v.shape[1])

    def extra_rows(self, rows, cols):
        if self.extra is None:
            return None
        return self.extra(rows, cols)


class _Head(_HeadData):
    """:class:`_HeadData` plus the key tree (built on the fly unless given) and the keys in tree order."""

    def __init__(self, P: Prepared, arrays, hidx, tree, leaf):
        k = arrays[1]
        if tree is not None:
            if tree.n != k.shape[0]:
                raise ShapeError(f"the prebuilt key tree has {tree.n} keys, but k has {k.shape[0]}")
            one = hidx == () or P.batch_shape == ()  # (validation's fingerprint is that of this head)
            if not tree.matches(k, P.khash if one else None):
                raise ShapeError("the prebuilt key tree was built from other keys (its fingerprint does not match k)")
        self.tree = tree if tree is not None else build_key_tree(k, leaf)
        super().__init__(P, arrays, hidx, kmax=self.tree.kmax)
        self.kp = self.tree.keys  # keys in tree order: every node is a contiguous slice
        self.full_extra = None

    def level_extra_ub(self, level, rows, nodes=None):
        """Upper bound of the extra term over the keys of each node (``(len(rows), nodes)``), or None."""
        if self.extra is None:
            return None
        t = self.tree
        st, ct = t.starts[level], t.count[level]
        if nodes is not None:
            st, ct = st[nodes], ct[nodes]
        if self.key_only is not None:
            ko = self.key_only[t.perm]
            ub = np.array([ko[s:s + c].max() for s, c in zip(st, ct)]) if len(st) < 64 else \
                _seg_max(ko, st, ct)
            return np.broadcast_to(ub[None, :], (len(rows), len(st)))
        if self.full_extra is None:
            self.full_extra = self.extra(np.arange(self.n_q), t.perm)
        E = self.full_extra[rows]
        return _seg_max_2d(E, st, ct)

    def level_extra_lb(self, level, rows, nodes):
        """Lower bound of the extra term over each node (-inf when some key is masked)."""
        if self.extra is None:
            return None
        t = self.tree
        st, ct = t.starts[level][nodes], t.count[level][nodes]
        if self.key_only is not None:
            ko = self.key_only[t.perm]
            lb = -_seg_max(-ko, st, ct)
            return np.broadcast_to(lb[None, :], (len(rows), len(st)))
        if self.full_extra is None:
            self.full_extra = self.extra(np.arange(self.n_q), t.perm)
        return -_seg_max_2d(-self.full_extra[rows], st, ct)


def _seg_max(x, st, ct):
    out = np.full(len(st), -np.inf)
    nz = ct > 0
    if np.all(nz) and len(st) and np.all(np.diff(st) > 0):
        return np.maximum.reduceat(x, st)
    for i in np.flatnonzero(nz):
        out[i] = x[st[i]:st[i] + ct[i]].max()
    return out


def _seg_max_2d(E, st, ct):
    if len(st) and np.all(ct > 0) and np.all(np.diff(st) > 0) and st[0] >= 0:
        # reduceat needs increasing starts; segments are contiguous but may not tile: gather then reduce
        idx = np.concatenate([np.arange(s, s + c) for s, c in zip(st, ct)])
        newst = np.concatenate([[0], np.cumsum(ct)[:-1]])
        return np.maximum.reduceat(E[:, idx], newst, axis=1)
    return np.stack([E[:, s:s + c].max(axis=1) for s, c in zip(st, ct)], axis=1)


def _max_lower_bound(H: _Head, U, qc=None, rows=None):
    """Exact maximum over two candidate leaves: a lower bound on each query's maximum score.

    The candidates are the leaf of largest upper bound ``U`` and the leaf whose center scores best
    (``qc``); ``U`` and ``qc`` hold the rows ``rows`` (default: all queries).  Returns ``(m_lo, best_leaf)``
    for those rows (``-inf`` where every candidate key is masked).
    """
    t = H.tree
    L = t.depth - 1
    st, ct = t.starts[L], t.count[L]
    rows = np.arange(H.n_q) if rows is None else rows
    nr = len(rows)
    if U.shape[1] == 0:
        return np.full(nr, -np.inf), np.zeros(nr, dtype=np.int64)
    qs = H.qs[rows]
    m_lo = np.full(nr, -np.inf)
    best = np.argmax(U, axis=1)
    cands = [best, np.argmax(qs @ t.center[L].T if qc is None else qc, axis=1)]
    kp = H.kp
    width = int(ct.max())
    off = np.arange(width)
    for c_i, cand in enumerate(cands):
        sel = np.flatnonzero(cand != best) if c_i else np.arange(nr)  # second candidate only where it differs
        if len(sel) == 0:
            continue
        cb = cand[sel]
        pos = st[cb][:, None] + off[None, :]
        valid = off[None, :] < ct[cb][:, None]
        pos = np.where(valid, pos, st[cb][:, None])
        S = np.matmul(kp[pos], qs[sel][:, :, None])[:, :, 0]  # (len(sel), width) exact scores
        if H.extra is not None:
            S = S + np.stack([H.extra(rows[sel[i]:sel[i] + 1], t.perm[pos[i]])[0] for i in range(len(sel))])
        S = np.where(valid, S, -np.inf)
        mb = S.max(axis=1)
        better = mb > m_lo[sel]
        m_lo[sel] = np.where(better, mb, m_lo[sel])
        best[sel] = np.where(better, cb, best[sel])
    return m_lo, best


def _plan(H: _Head, eps, rows=None):
    """Per (query, leaf) keep decisions from the bounds; returns (keep, U, m_lo, best_block, beta).

    ``rows`` restricts the plan to some queries (``auto`` plans a sample first).
    """
    t = H.tree
    L = t.depth - 1
    rows = np.arange(H.n_q) if rows is None else rows
    U, qc = score_bounds(t, L, H.qs[rows], centers=True)
    EU = H.level_extra_ub(L, rows)
    if EU is not None:
        U = U + EU
    m_lo, best_block = _max_lower_bound(H, U, qc, rows)
    rho_rel = H.rho[rows] / H.vmax if H.vmax > 0 else np.zeros(len(rows))
    beta = pruning_budget(eps, rho_rel) if H.vmax > 0 else np.zeros(len(rows))
    cnt = t.count[L].astype(np.float64)
    fin = np.isfinite(m_lo)
    with np.errstate(over="ignore", invalid="ignore"):
        w = cnt[None, :] * np.exp(np.minimum(U - np.where(fin, m_lo, 0.0)[:, None], 700.0))
    w = np.where(fin[:, None], w, np.where(np.isfinite(U), 1e300, 0.0))
    order = np.argsort(w, axis=1)
    with np.errstate(over="ignore"):
        cs = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
    drop_sorted = cs <= beta[:, None]
    keep = np.ones_like(w, dtype=bool)
    np.put_along_axis(keep, order, ~drop_sorted, axis=1)
    keep &= w > 0  # blocks whose every key is masked (U = -inf) carry no mass
    local = np.arange(len(rows))
    keep[local[fin], best_block[fin]] = True  # the block of the best representative is always computed
    return keep, U, m_lo, best_block, beta


def _groups(best_block, keep, group, cnt_per_block, heavy_frac=0.35, heavy_group=256, overhead=1000):
    """Query groups for the exact GEMMs.

    Queries that keep more than ``heavy_frac`` of the blocks go into plain dense groups (all blocks);
    the others are grouped by their best representative block, in chunks of at most ``group``.
    """
    frac = keep.mean(axis=1) if keep.shape[1] else np.zeros(len(best_block))
    heavy = np.flatnonzero(frac > heavy_frac)
    light = np.flatnonzero(frac <= heavy_frac)
    out = []
    for s in range(0, len(heavy), heavy_group):
        out.append((heavy[s:s + heavy_group], True))
    order = light[np.lexsort((light, best_block[light]))]
    bb = best_block[order]
    cuts = np.flatnonzero(np.diff(bb)) + 1
    # greedy merge of consecutive (tree-ordered, hence nearby) groups while it lowers the modelled cost
    # |rows| * |union keys| + overhead per group
    sizes = np.asarray(cnt_per_block, dtype=np.float64)
    cur_rows, cur_union, cur_size = None, None, 0.0
    if len(order):
        starts = np.concatenate([[0], cuts])
        unions = np.logical_or.reduceat(keep[order], starts, axis=0)
        usize = unions @ sizes
        ends = np.concatenate([cuts, [len(order)]])
        for c, (a, e) in enumerate(zip(starts, ends)):
            chunk = order[a:e]
            u, us = unions[c], usize[c]
            if cur_rows is None:
                cur_rows, cur_union, cur_size, nr = [chunk], u, us, len(chunk)
                continue
            if nr + len(chunk) <= group:
                merged = cur_union | u
                msize = merged @ sizes
                if (nr + len(chunk)) * msize <= nr * cur_size + len(chunk) * us + overhead:
                    cur_rows.append(chunk)
                    cur_union, cur_size, nr = merged, msize, nr + len(chunk)
                    continue
            out.append((np.concatenate(cur_rows), False))
            cur_rows, cur_union, cur_size, nr = [chunk], u, us, len(chunk)
    if cur_rows is not None:
        out.append((np.concatenate(cur_rows), False))
    final = []
    for rows, heavy in out:
        for s in range(0, len(rows), group if not heavy else heavy_group):
            final.append((rows[s:s + (group if not heavy else heavy_group)], heavy))
    return final


def _execute(H: _Head, eps, keep, U, beta, group_rows, threshold, m_lo):
    """Exact GEMMs over the union of kept leaves per query group, then bounds (vectorised over rows)."""
    t = H.tree
    L = t.depth - 1
    st, ct = t.starts[L], t.count[L]
    nb = len(st)
    out = np.zeros((H.n_q, H.v.shape[1]))
    support = np.zeros(H.n_q, dtype=np.int64)
    kept = []
    evals = 0
    vnp = H.vn[t.perm]
    vmax_leaf = np.maximum.reduceat(vnp, st) if nb else np.zeros(0)
    # 1. unions of kept leaves per group, and the bounded mass of the pruned leaves (relative to exp(m_lo))
    unions = []
    UM = np.zeros((H.n_q, nb), dtype=bool)
    for rows, heavy in group_rows:
        u = np.ones(nb, dtype=bool) if heavy else np.any(keep[rows], axis=0)
        unions.append(u)
        UM[rows] = u
    fin_lo = np.isfinite(m_lo)
    with np.errstate(over="ignore", invalid="ignore"):
        Wd = np.where(UM, 0.0, ct[None, :] * np.exp(U - np.where(fin_lo, m_lo, 0.0)[:, None]))  # inf: no bound
    D_lo = Wd.sum(axis=1)
    VD = np.where(~UM & np.isfinite(U), vmax_leaf[None, :], 0.0).max(axis=1, initial=0.0)
    Z = np.ones(H.n_q)
    D = np.zeros(H.n_q)
    # 2. exact scores of the kept keys, group by group
    for (rows, heavy), union in zip(group_rows, unions):
        if len(rows) == 0:
            continue
        lv = np.flatnonzero(union)
        if len(lv) == 0:
            kept.append((rows, np.zeros(0, dtype=np.int64)))
            continue
        if len(lv) == 1:
            sl = slice(st[lv[0]], st[lv[0]] + ct[lv[0]])
            pos = sl
        elif len(lv) == nb:
            pos = slice(0, H.n_k)
        else:
            pos = np.concatenate([np.arange(st[b], st[b] + ct[b]) for b in lv]) if len(lv) < 64 else \
                np.flatnonzero(np.repeat(union, ct))
        idx = t.perm[pos]
        kk, vv = H.kp[pos], H.v[idx]
        kept.append((rows, idx))
        S = H.qs[rows] @ kk.T
        evals += S.size
        if H.extra is not None:
            S = S + H.extra_rows(rows, idx)
        m = S.max(axis=1)
        fin = np.isfinite(m)
        ms = np.where(fin, m, 0.0)
        W = np.exp(S - ms[:, None])
        Zg = W.sum(axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            Dg = np.where(fin, D_lo[rows] * np.exp(np.where(fin_lo[rows], m_lo[rows], 0.0) - ms), 0.0)
        if threshold:
            bta = beta[rows]
            theta = np.maximum(bta * Zg - Dg, 0.0) / ((1 + bta) * max(len(idx), 1))
            # keys with W <= theta are dropped: their exact mass X satisfies D + X <= b (Z - X)
            act = W > theta[:, None]
            W = np.where(act, W, 0.0)
            X = Zg - W.sum(axis=1)
            if np.any(X > 0):
                VD[rows] = np.maximum(VD[rows], np.where(act, 0.0, vnp[pos][None, :]).max(axis=1))
            Zg = Zg - X
            Dg = Dg + X
            support[rows] = act.sum(axis=1)
        else:
            support[rows] = np.isfinite(S).sum(axis=1)
        o = (W @ vv) / np.where(Zg > 0, Zg, 1.0)[:, None]
        o[~fin] = 0.0
        out[rows] = o
        Z[rows] = np.where(fin, Zg, 1.0)
        D[rows] = Dg
    onorm = _rownorm(out)  # no underflow of tiny outputs (np.linalg.norm squares them)
    bound = truncation_bound(D, VD, onorm, Z) * (1 + 1e-9) + H.rho
    return out, bound, support, tuple(kept), evals


def _fallback_rows(H: _Head, eps, out, bound, support, kept):
    """Recompute densely every row whose bound exceeds the request (never expected; keeps the guarantee)."""
    target = eps * H.vmax
    # written so that a NaN bound (which every comparison passes) is recomputed too
    bad = np.flatnonzero(~(bound <= target) & (~(bound <= H.rho) | ~np.isfinite(bound)))
    if len(bad) == 0:
        return 0, kept
    out[bad], support[bad] = _dense_rows(H, bad)
    bound[bad] = H.rho[bad]
    return len(bad), _Prefixed((bad, np.arange(H.n_k)), kept)  # first, so that kept_keys finds the dense rows


def _dense_rows(H: _HeadData, rows):
    """Dense attention of the queries ``rows`` (streamed over key blocks with the online softmax, like
    :func:`tropix.attention.dense`): ``(output, support)``; a query that sees no key gets output 0.  With a
    causal term the rows go in chunks of ``CAUSAL_ROWS`` consecutive ones (in increasing order), each over
    the keys up to its last query only (the others are hidden from all of it)."""
    rows = np.asarray(rows, dtype=np.int64)
    causal = getattr(H, "causal", False)
    if causal and len(rows) > CAUSAL_ROWS:
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), H.v.shape[1]))
        sup = np.empty(len(rows), dtype=np.int64)
        for a in range(0, len(rows), CAUSAL_ROWS):
            sel = order[a:a + CAUSAL_ROWS]
            out[sel], sup[sel] = _dense_rows(H, rows[sel])
        return out, sup
    n = min(H.n_k, int(rows.max()) + 1) if (causal and len(rows)) else H.n_k
    block = n if len(rows) * n <= 2**22 else 2048
    qb = H.qs[rows]
    idx = np.arange(n)
    m = l = acc = None
    vis = np.zeros(len(rows), dtype=np.int64)
    # a bias alone or a term of the key only: added block by block from its rows (slices, no fancy indexing of
    # the whole term), the visible keys counted from validation's row statistics
    direct = _direct_extra(H, rows)
    if direct is not None:
        extra_block, vis = direct
    kern = compiled("tropix.attention._kernels_numba")
    # the causal mask alone, compiled: only the keys after a query's own position are hidden (-inf), in the
    # blocks that reach past the first query (no term array over the whole block)
    causal_only = direct is None and getattr(H, "causal_only", False) and kern is not None
    if causal_only:
        vis = np.minimum(rows + 1, H.n_k)
    # a mask of query and key alone, compiled: its rows as they are (no term array), hidden pairs left out of
    # the maxima and weighed 0
    qm = _query_mask(H) if (direct is None and kern is not None and H.extra is not None) else None
    if qm is not None:
        mr = qm[rows]
        vis = count_last(mr)
    rmin = int(rows.min()) if len(rows) else 0
    for a in range(0, n, block):
        S = qb @ H.k[a:min(a + block, n)].T
        hid = None
        if causal_only:
            if min(a + block, n) - 1 > rmin:
                kern.hide_after(S, rows, a)
        elif direct is not None:
            S += extra_block(a, min(a + block, n))
        elif qm is not None:
            hid = ~mr[:, a:min(a + block, n)]
        elif H.extra is not None:
            S += H.extra_rows(rows, idx[a:min(a + block, n)])
            vis += np.isfinite(S).sum(axis=1)
        if hid is not None:
            bm = np.empty(len(rows))
            kern.visible_row_max(S, hid, bm)
        else:
            bm = S.max(axis=1)
        mn = bm if m is None else np.maximum(m, bm)
        ms = np.where(np.isfinite(mn), mn, 0.0)
        S -= ms[:, None]
        if hid is not None:
            kern.set_where(S, hid, -1.0)
        elif (direct is not None or H.extra is not None) and kern is not None:  # -inf (hidden) entries go
            hid = np.empty(S.shape, dtype=bool)  # through exp as -1, then weigh 0 (NumPy's exp is 3-4x slower
            if not kern.neginf_to(S, -1.0, hid):  # on -inf)
                hid = None
        np.exp(S, out=S)
        if hid is not None:
            kern.set_where(S, hid, 0.0)
        if m is None:
            l, acc = S.sum(axis=1), S @ H.v[a:min(a + block, n)]
        else:
            with np.errstate(invalid="ignore"):
                alpha = np.where(np.isfinite(m), np.exp(m - ms), 0.0)
            l = l * alpha + S.sum(axis=1)
            acc *= alpha[:, None]
            acc += S @ H.v[a:min(a + block, n)]
        m = mn
    o = acc / np.where(l > 0, l, 1.0)[:, None]
    o[~np.isfinite(m)] = 0.0
    return o, (vis if H.extra is not None else np.full(len(rows), H.n_k, dtype=np.int64))


CAUSAL_ROWS = 256
"""Rows per chunk of :func:`_dense_rows` with a causal term."""


def _direct_extra(H: _HeadData, rows):
    """For :func:`_dense_rows`: ``(extra_block(a, b), visible)`` when the head's extra term is a bias alone or
    depends on the key only (``extra_block`` the term of the queries ``rows`` and keys ``a .. b-1``, a view or
    a copy of that block only, broadcasting to it; ``visible`` the keys each query sees), else None."""
    if H.extra is None:  # (no term: e.g. the head of the visible keys of a padding-like bias, which keeps the
        return None      # whole head's bias2d attributes)
    b = getattr(H, "bias2d", None)
    nr = len(rows)
    if b is not None and getattr(H, "bias_only", False) and getattr(H, "bias_nfin", None) is not None:
        vis = np.asarray(H.bias_nfin)[rows].astype(np.int64)
        if b.shape[0] == 1 or nr == 0:
            return (lambda a, c: b[:, a:c] if b.shape[1] != 1 else b[:1]), vis
        r0 = int(rows[0])
        if int(rows[-1]) - r0 + 1 == nr and bool(np.all(np.diff(rows) == 1)):  # consecutive rows: views
            br = b[r0:r0 + nr]
            return (lambda a, c: br[:, a:c] if br.shape[1] != 1 else br), vis
        return (lambda a, c: b[rows, a:c] if b.shape[1] != 1 else b[rows]), vis
    ko = getattr(H, "key_only", None)
    if H.extra is not None and ko is not None and not H.causal:
        vis = np.full(nr, int(np.count_nonzero(ko > -np.inf)), dtype=np.int64)
        return (lambda a, c: ko[a:c]), vis
    return None


def _screen_flagged(H: _Head, eps, out, bound, support, kept, threshold=True, rows=None):
    """Rows the block walk gave up on (infinite bound) are screened instead (:mod:`.screen`).

    ``out``, ``bound``, ``support`` hold the queries ``rows`` (default: all, in order) and are updated in
    place; returns ``(rows screened, kept, float64 evals)``.  Rows the screen cannot certify keep an infinite
    bound (the caller computes them densely).
    """
    from .screen import screen_rows, unmasked_path

    flagged = np.flatnonzero(~np.isfinite(bound))
    if len(flagged) == 0 or not unmasked_path(H):  # (the screen's masked path would cost more than dense)
        return 0, kept, 0

    qrows = flagged if rows is None else np.asarray(rows)[flagged]
    o, b, sp, kp, ev = screen_rows(H, eps, qrows, threshold=threshold, cap=_SCREEN_CAP(H.n_k))
    out[flagged], bound[flagged], support[flagged] = o, b, sp
    return len(flagged), _RowKept.join(kp, kept), ev


_SCREEN_CAP = lambda n: max(n // 4, 64)  # noqa: E731  candidates above which a flagged row is done densely


def _fast_applicable(H: _Head) -> bool:
    """The compiled kernel covers float scores without an extra term, with one that depends on the key
    only (a key-padding mask, a per-key bias; not causal), or with the causal mask alone."""
    key_only = H.extra is None or (H.key_only is not None and not H.causal) or H.causal_only
    return (key_only or _query_bias(H) or _query_mask(H) is not None) and H.n_q > 0 and \
        len(H.tree.starts[-1]) > 1 and kernel_available()


def _query_mask(H: _HeadData):
    """The head's extra term as a boolean ``(n_q, n_k)`` mask when it is a mask alone (no bias, not causal)
    that depends on the query and the key, else None: the compiled walk takes it as it is (a hidden key
    scores ``-inf``; the block bounds stay those of all keys)."""
    f = H.extra
    m = getattr(f, "mask2d", None)
    if m is None or H.causal or f.bias2d is not None or m.shape[0] == 1 or m.shape[1] == 1:
        return None
    return m


def _query_bias(H: _HeadData) -> bool:
    """The head's extra term is a bias alone that depends on the query and the key (``(n_q, n_k)``)."""
    b = H.bias2d
    return H.bias_only and b is not None and b.shape[0] > 1 and b.shape[1] > 1


def _mask_as_bias(H: _HeadData, rows=None) -> _HeadData:
    """A head whose extra term has a mask (not a key-padding mask alone) and is not causal as the head of one
    bias, ``-inf`` where masked (the mask's own bias, if any, elsewhere), made in one compiled pass that also
    counts each query's visible keys (:func:`._screen_numba.mask_bias`; ``(1, n_k)`` when neither term depends on the query): a mask of
    query and key then takes the compiled walk with a bias (:func:`_query_bias`) and the screen's fused path
    with a bias, instead of their generic and masked paths.  Norms, ``bmax`` and the rounding bound stay
    those of the head.  Other heads, and every head without numba, are returned as they are.

    ``rows``: only these queries' rows of the bias and of its statistics are made (the head serves them
    only; :func:`_fill_mask_rows` makes more of them later), e.g. a sample the screen is priced on."""
    f = H.extra
    m = getattr(f, "mask2d", None)
    if m is None or H.causal or H.n_q == 0 or H.n_k == 0:
        return H
    b = f.bias2d
    if b is None and m.shape[0] == 1:  # a key-padding mask alone: the screen takes the head of the visible keys
        return H
    try:
        from ._screen_numba import mask_bias
    except ImportError:  # pragma: no cover - numba missing: the generic paths
        return H
    nr = H.n_q if (m.shape[0] > 1 or (b is not None and b.shape[0] > 1)) else 1
    out = np.empty((nr, H.n_k))
    cnt, am = np.zeros(nr, dtype=np.int64), np.zeros(nr)
    if rows is None or nr == 1:
        mask_bias(m, np.zeros((1, 1)) if b is None else b, b is not None, out, cnt, am)
    else:
        from ._screen_numba import mask_bias_rows

        mask_bias_rows(m, np.zeros((1, 1)) if b is None else b, b is not None,
                       np.asarray(rows, dtype=np.int64), out, cnt, am)
    G = copy.copy(H)
    G.bias2d, G.bias_absmax, G.bias_only, G.bias32 = out, am, True, None
    G.bias_nfin = np.broadcast_to(cnt, (H.n_q,))
    G.key_only = out[0].copy() if nr == 1 else None
    G.full_extra = None

    def extra(r, c):
        r, c = np.asarray(r), np.asarray(c)
        return _gather2(out, r, c, (len(r), len(c)), np.float64)

    G.extra = extra
    G.mask_source = (m, b, cnt)  # (bias_nfin is a read-only view of cnt)
    return G


def _fill_mask_rows(G: _HeadData, rows) -> None:
    """Make the rows ``rows`` of the bias (and its statistics) of a head :func:`_mask_as_bias` made for other
    rows only (in place; rows made already are made again, with the same values)."""
    if G.bias2d.shape[0] == 1 or len(rows) == 0:
        return
    from ._screen_numba import mask_bias_rows

    m, b, cnt = G.mask_source
    mask_bias_rows(m, np.zeros((1, 1)) if b is None else b, b is not None, np.asarray(rows, dtype=np.int64),
                   G.bias2d, cnt, G.bias_absmax)


def _default_cap(n_k: int) -> int:
    """Keys a query may compute in the kernel before it is done densely (one BLAS row beats a long scalar walk)."""
    return max(n_k // 32, 128)


def _default_cand_cap(n_k: int) -> int:
    """A query whose bounds leave more keys than this as candidates is done densely without a walk."""
    return (9 * n_k) // 10


def _fast_rows(H: _Head, eps, threshold, rows, cap=None):
    """Compiled region-sparse evaluation of the queries ``rows``: (out, bound, support, kept, evals).

    Same certificate as the generic path: block bounds from :func:`score_bounds`, the dropped mass bounded
    per block and exact per computed key, bound = ``truncation_bound(D, V_D, |o|, Z) * (1 + 1e-9) + ρ``;
    rows whose scores are not finite, that would compute more than ``cap`` keys (default
    :func:`_default_cap`), or (with the default cap) whose bounds leave more than 90% of the keys as
    candidates get an infinite bound (they are recomputed by :func:`_fallback_rows`).
    """
    t = H.tree
    L = t.depth - 1
    qs = H.qs[rows]
    U, first2, qc = upper_bounds_first(t, L, qs)
    ext = None
    bias = btop = None
    mask = _query_mask(H)
    if _query_bias(H):  # a bias of query and key: the kernel adds it to U (the row's or the block's largest)
        bias = H.bias2d
        btop = np.asarray(H.bias_absmax, dtype=np.float64)[np.asarray(rows)]
    elif H.extra is not None and not H.causal_only and mask is None:  # a key-only term: its largest value per leaf raises U
        ext = np.ascontiguousarray(H.key_only[t.perm], dtype=np.float64)
        top = np.maximum.reduceat(ext, t.starts[L])
        with np.errstate(invalid="ignore"):
            U = np.nextafter(U + top[None, :], np.inf)  # (rounded up: still an upper bound)
        U[:, top == -np.inf] = -np.inf  # a leaf whose keys are all masked carries no mass
        qc = qc + top[None, :]
    if H.causal_only:  # a leaf whose keys all come after the query carries no mass for it
        hidden = np.minimum.reduceat(t.perm, t.starts[L])[None, :] > np.asarray(rows)[:, None]
        U = np.where(hidden, -np.inf, U)
        qc = np.where(hidden, -np.inf, qc)
    if ext is not None or H.causal_only:  # (the maxima of the bounds changed)
        first2 = np.stack([np.argmax(U, axis=1), np.argmax(qc, axis=1)], axis=1)
    rho_rel = H.rho[rows] / H.vmax if H.vmax > 0 else np.zeros(len(rows))
    beta = pruning_budget(eps, rho_rel) if H.vmax > 0 else np.zeros(len(rows))
    res = region_sparse_fast(rows, H.qs, H.kp, H.v, t.perm, H.vn, t.starts[L], t.count[L], U, first2,
                             np.broadcast_to(beta, (len(rows),)), threshold, _default_cap(H.n_k) if cap is None else cap,
                             _default_cand_cap(H.n_k) if cap is None else None, ext=ext, causal=H.causal_only,
                             bias=bias, btop=btop, mask=mask)
    out, Z = res["out"], res["Z"]
    bad = Z < 0
    onorm = _rownorm(out)
    with np.errstate(over="ignore", invalid="ignore"):
        bound = truncation_bound(res["D"], res["VD"], onorm, np.where(bad, 1.0, Z)) * (1 + 1e-9) + H.rho[rows]
    bound[bad] = np.inf
    kb, kn = res["kept_blocks"], res["kept_n"]
    st, ct = t.starts[L], t.count[L]
    fb = kb[np.arange(kb.shape[1])[None, :] < kn[:, None]]  # computed blocks, row after row
    lens = ct[fb]
    ends = np.cumsum(lens)
    pos = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(st[fb] - (ends - lens), lens)
    per_row = np.zeros(len(rows), dtype=np.int64)
    np.add.at(per_row, np.repeat(np.arange(len(rows)), kn), lens)
    kept = _RowKept(np.asarray(rows), t.perm[pos], np.concatenate([[0], np.cumsum(per_row)]))
    return out, bound, res["support"], kept, int(res["nkeys"].sum())


class _RowKept:
    """The keys computed exactly for each query, as a lazy sequence of ``(query index array, key indices)``."""

    def __init__(self, rows, keys, offsets):
        self.rows, self.keys, self.offsets = rows, keys, offsets

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, r):
        r = r + len(self.rows) if r < 0 else r
        if not 0 <= r < len(self.rows):
            raise IndexError(r)
        return self.rows[r:r + 1], self.keys[self.offsets[r]:self.offsets[r + 1]]

    def __iter__(self):
        return (self[r] for r in range(len(self.rows)))

    @staticmethod
    def join(a: "_RowKept", b: "_RowKept") -> "_RowKept":
        """The rows of ``a`` followed by those of ``b``."""
        return _RowKept(np.concatenate([a.rows, b.rows]), np.concatenate([a.keys, b.keys]),
                        np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]))


class _Prefixed:
    """The group ``first`` followed by the groups of ``rest`` (a :class:`_RowKept` or a tuple), as one lazy
    sequence: the dense rows of :func:`_fallback_rows` before the others without a tuple of every row's group
    (made row by row, 0.3 ms for 256 queries: 6 % of a region-sparse call on 16384 keys)."""

    def __init__(self, first, rest):
        self.first, self.rest = first, rest

    def __len__(self):
        return 1 + len(self.rest)

    def __getitem__(self, r):
        r = r + len(self) if r < 0 else r
        if not 0 <= r < len(self):
            raise IndexError(r)
        return self.first if r == 0 else self.rest[r - 1]

    def __iter__(self):
        yield self.first
        yield from self.rest


HOPELESS_SAMPLE = 32
"""Queries the compiled walk takes first when a head has at least four times as many (spread evenly)."""
HOPELESS_SHARE = 0.9
"""When at least this share of them stop (their bounds leave nearly every key a candidate, or the walk
exceeds its key cap), the other queries skip the walk: they are computed densely (or screened first, with
``screen=True``), as the walk would have sent them anyway."""
HOPELESS_RADIUS = 0.3
"""The sample is taken only when the median leaf ball is this wide relative to the largest key norm (i.i.d.
Gaussian keys in 32-64 dimensions: 0.7-0.85, the real MiniLM banks 0.4-0.63; clustered keys and keys near a
low-dimensional subspace about 0.04): elsewhere the walk pays, and a second call of the kernel would cost
its fixed part (about 0.5 ms at 16384 keys) for nothing."""


def _fast_all(H: _Head, eps, threshold):
    """The compiled walk of every query of ``H``: ``(out, bound, support, kept, evals, walked)``; where the leaf
    balls are wide (``HOPELESS_RADIUS``) a sample of ``HOPELESS_SAMPLE`` queries first: when ``HOPELESS_SHARE``
    of it stops (keys without geometry the bounds
    can use, e.g. i.i.d. Gaussian keys), the others are flagged at once (infinite bound, recomputed by the
    caller) without their bounds or walk; ``walked`` counts the queries whose block bounds were computed."""
    t = H.tree
    wide = t.median_leaf_radius() > HOPELESS_RADIUS * t.kmax
    if H.n_q < 4 * HOPELESS_SAMPLE or not wide:
        rows = np.arange(H.n_q)
        return _fast_rows(H, eps, threshold, rows) + (H.n_q,)
    samp = np.unique(np.linspace(0, H.n_q - 1, HOPELESS_SAMPLE).astype(np.int64))
    part = _fast_rows(H, eps, threshold, samp)
    rest = np.setdiff1d(np.arange(H.n_q), samp)
    out = np.zeros((H.n_q, H.v.shape[1]))
    bound = np.full(H.n_q, np.inf)
    support = np.zeros(H.n_q, dtype=np.int64)
    out[samp], bound[samp], support[samp] = part[0], part[1], part[2]
    if np.count_nonzero(~np.isfinite(part[1])) >= HOPELESS_SHARE * len(samp):
        return out, bound, support, part[3], part[4], len(samp)
    o, b, sp, kp, ev = _fast_rows(H, eps, threshold, rest)
    out[rest], bound[rest], support[rest] = o, b, sp
    return out, bound, support, _RowKept.join(part[3], kp), part[4] + ev, H.n_q


def _region_head_fn(P, eps, leaf, group, threshold, screen=False):
    def fn(arrays, hidx, tree):
        H = _Head(P, arrays, hidx, tree, leaf)
        if not _fast_applicable(H):
            H = _mask_as_bias(H)
        if _fast_applicable(H):
            out, bound, support, kept, evals, walked = _fast_all(H, eps, threshold)
            nsc, kept, sevals = _screen_flagged(H, eps, out, bound, support, kept, threshold) if screen else \
                (0, kept, 0)
            from .screen import screen_evals  # (screen imports this module)

            nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
            counters = {"score_evals": evals + sevals + nfb * H.n_k, "bound_evals": walked * len(H.tree.rep[-1]),
                        "screen_evals": screen_evals(H, nsc), "screened_rows": nsc,
                        "dense_fallback_rows": nfb,
                        "_rho": H.rho}
            return out, bound, support, kept, counters, H.vmax, "region_sparse"
        keep, U, m_lo, best, beta = _plan(H, eps)
        groups = _groups(best, keep, group, H.tree.count[-1])
        out, bound, support, kept, evals = _execute(H, eps, keep, U, beta, groups, threshold, m_lo)
        nfb, kept = _fallback_rows(H, eps, out, bound, support, kept)
        L = H.tree.depth - 1
        counters = {"score_evals": evals + nfb * H.n_k + int(H.tree.count[L][best].sum()),
                    "bound_evals": H.n_q * len(H.tree.rep[L]), "dense_fallback_rows": nfb}
        counters["_rho"] = H.rho
        return out, bound, support, kept, counters, H.vmax, "region_sparse"

    return fn
